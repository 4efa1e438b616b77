//! `churn-risk`: how likely a reader is to be lapsing, so the library can win
//! them back before they go: use falling against their own past year, time
//! since they last came, and a membership about to expire.

use lectern_plugin::host::{config_f32, today};
use lectern_plugin::{Patron, PluginError, Score, Scorer};

struct ChurnRisk;

impl Scorer for ChurnRisk {
    fn score(p: &Patron) -> Result<Score, PluginError> {
        let warning = config_f32("expiry-warning-days", 60.0)? as i64;
        let a = p.activity.unwrap_or_default();
        let mut reasons = Vec::new();
        let mut risk = 0.0f32;

        // Falling use: the last 90 days against a quarter of the year.
        let expected = a.loans_365d as f32 / 4.0;
        if a.loans_365d >= 4 && (a.loans_90d as f32) < expected / 2.0 {
            let drop = 100.0 * (1.0 - a.loans_90d as f32 / expected);
            risk += 35.0 * drop / 100.0;
            reasons.push(format!(
                "borrowing fell {drop:.0}%: {} loans in the last 90 days against {expected:.1} a quarter this year",
                a.loans_90d
            ));
        }
        // Time since the last visit, loan or hold.
        match a.days_since_last_activity {
            None => {
                risk += 40.0;
                reasons.push("has never used the library".to_string());
            }
            Some(d) if d > 60 => {
                let points = (d as f32 / 365.0 * 45.0).min(45.0);
                risk += points;
                reasons.push(format!("last active {d} days ago"));
            }
            Some(_) => {}
        }
        // A membership about to run out, or already out.
        if let Some(expires) = &p.expires_on {
            let left = today().days_until(expires);
            if left < 0 {
                risk += 20.0;
                reasons.push(format!("membership expired {} days ago", -left));
            } else if left <= warning {
                risk += 15.0;
                reasons.push(format!("membership expires in {left} days"));
            }
        }
        let value = risk.min(100.0);
        let segment = match value {
            v if v >= 60.0 => "high-risk",
            v if v >= 30.0 => "at-risk",
            _ => "steady",
        };
        if reasons.is_empty() {
            reasons.push("use is steady".to_string());
        }
        Ok(Score {
            reasons,
            ..Score::new(p, value, segment)
        })
    }
}

lectern_plugin::export_scorer!(ChurnRisk);
