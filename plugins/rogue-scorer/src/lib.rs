//! `rogue-scorer`: a scorer that lies in its columnar results on request,
//! written against the raw `columnar-scoring` export (not the SDK's
//! `Scorer` trait, which cannot lie), for the host's tests. Never install
//! it.
//!
//! Its `mode` configuration key picks the lie:
//!
//! | mode | what it returns |
//! |---|---|
//! | `short` | one value and one segment fewer than the batch has rows |
//! | `bad-code` | a segment code past both the described codes and the batch's strings |
//! | `bad-offsets` | reason offsets that do not start at 0 |
//! | `amplify` | ten thousand codes per row, each naming one described reason of 1,000 bytes |

use lectern_plugin::__private::scorer::exports::lectern::crm::columnar_scoring::{
    Codes, Guest as Columnar, PatronColumns, Scores,
};
use lectern_plugin::__private::scorer::exports::lectern::crm::scoring::{Guest as Records, Score};
use lectern_plugin::PluginError;
use lectern_plugin::host::config;

struct Rogue;

impl Records for Rogue {
    fn score_batch(_: Vec<lectern_plugin::Patron>) -> Result<Vec<Score>, PluginError> {
        Err(PluginError::Other(
            "rogue-scorer lies only in columns".to_string(),
        ))
    }
}

impl Columnar for Rogue {
    fn describe() -> Codes {
        Codes {
            segments: vec!["rogue".to_string()],
            reasons: vec!["x".repeat(1000)],
        }
    }

    fn score_columns(batch: PatronColumns) -> Result<Scores, PluginError> {
        let rows = batch.rows as usize;
        let mut scores = Scores {
            values: vec![50.0; rows],
            segments: vec![0; rows],
            reason_starts: vec![0; rows + 1],
            reasons: Vec::new(),
            strings: Vec::new(),
        };
        match config("mode").as_deref().unwrap_or("short") {
            "short" => {
                scores.values.pop();
                scores.segments.pop();
            }
            "bad-code" => scores.segments[0] = 7,
            "bad-offsets" => {
                // Offsets that start past the first reason: row 0 would
                // begin inside nothing.
                scores.reasons = vec![0];
                scores.reason_starts = vec![1; rows + 1];
            }
            "amplify" => {
                scores.reasons = vec![0; 10_000 * rows];
                scores.reason_starts = (0..=rows as u32).map(|r| r * 10_000).collect();
            }
            other => return Err(PluginError::BadConfig(format!("unknown mode `{other}`"))),
        }
        Ok(scores)
    }
}

lectern_plugin::__private::scorer::export_columnar_scorer_world!(
    Rogue with_types_in lectern_plugin::__private::scorer
);
