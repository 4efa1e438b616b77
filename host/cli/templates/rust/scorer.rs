//! `{{id}}`: scores readers by how much they borrowed in the last year.

use lectern_plugin::host::config;
use lectern_plugin::{Patron, PluginError, Score, Scorer};

struct Plugin;

impl Scorer for Plugin {
    fn score(patron: &Patron) -> Result<Score, PluginError> {
        // The host checked the value against the manifest's schema.
        let busy_at: u32 = config("busy-at")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let loans = patron.activity.as_ref().map_or(0, |a| a.loans_365d);
        let value = (f64::from(loans) * 100.0 / (2.0 * f64::from(busy_at))).min(100.0);
        let segment = if loans >= busy_at { "busy" } else { "quiet" };
        Ok(Score::new(patron, value as f32, segment)
            .reason(format!("{loans} loans in the last year")))
    }
}

lectern_plugin::export_scorer!(Plugin);
