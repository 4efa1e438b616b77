//! `key-readers`: each reader's contribution to the library, to find the
//! key readers (重点读者) who deserve differentiated service: heavy users,
//! readers across many subjects, and researchers who carry major projects
//! or lead their discipline. Every point of the score is explained.

use lectern_plugin::host::config_f32;
use lectern_plugin::{Patron, PluginError, Score, Scorer};

struct KeyReaders;

impl Scorer for KeyReaders {
    fn score(p: &Patron) -> Result<Score, PluginError> {
        let threshold = config_f32("key-reader-score", 70.0)?;
        let a = p.activity.unwrap_or_default();
        let mut reasons = Vec::new();

        // Volume: up to 40 points, 1 per loan up to 40 a year.
        let volume = (a.loans_365d as f32).min(40.0);
        if a.loans_365d > 0 {
            let items = if a.loans_365d == 1 { "item" } else { "items" };
            reasons.push(format!(
                "+{volume:.0}: borrowed {} {items} this year",
                a.loans_365d
            ));
        }
        // Breadth: 4 points per subject, up to 20.
        let subjects = p
            .interests
            .as_ref()
            .map_or(0, |i| i.iter().filter(|s| s.loans > 0).count());
        let breadth = (subjects as f32 * 4.0).min(20.0);
        if subjects > 0 {
            reasons.push(format!("+{breadth:.0}: reads in {subjects} subjects"));
        }
        // Holds show a reader who seeks things out: 1 point each, up to 10.
        let holds = (a.holds_365d as f32).min(10.0);
        if a.holds_365d > 0 {
            reasons.push(format!("+{holds:.0}: placed {} holds", a.holds_365d));
        }
        // Research roles.
        let mut research = 0.0;
        if p.attribute("research-project").is_some() {
            research += 15.0;
            reasons.push("+15: carries a research project".to_string());
        }
        if p.attribute("academic-leader")
            .is_some_and(|v| matches!(v, "yes" | "true" | ""))
        {
            research += 15.0;
            reasons.push("+15: leads their discipline".to_string());
        }
        if p.category.as_deref() == Some("faculty") && research == 0.0 {
            research += 5.0;
            reasons.push("+5: faculty member".to_string());
        }
        let value = (volume + breadth + holds + research).min(100.0);
        let segment = if value >= threshold {
            "key-reader"
        } else if value >= threshold / 2.0 {
            "contributor"
        } else {
            "reader"
        };
        if reasons.is_empty() {
            reasons.push("no use recorded this year".to_string());
        }
        Ok(Score {
            reasons,
            ..Score::new(p, value, segment)
        })
    }
}

lectern_plugin::export_scorer!(KeyReaders);
