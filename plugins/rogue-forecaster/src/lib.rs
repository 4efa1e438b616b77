//! `rogue-forecaster`: a forecaster that breaks the contract on request,
//! for the host's tests. Never install it.
//!
//! Its `mode` configuration key picks the lie:
//!
//! | mode | what it does |
//! |---|---|
//! | `short` | one value fewer than the horizon |
//! | `outside` | a value above its interval's upper bound |
//! | `nan` | a value that is not a number |
//! | `fewer` | one forecast fewer than the series asked for |
//! | `flood` | a megabyte of reasons per series |
//! | `spin` | never returns |

use lectern_plugin::host::config;
use lectern_plugin::{Forecast, Forecaster, PluginError, Series};

struct Rogue;

fn honest(horizon: u32) -> Forecast {
    let n = horizon as usize;
    Forecast {
        values: vec![10.0; n],
        low: vec![5.0; n],
        high: vec![15.0; n],
        level: 0.8,
        reasons: vec!["steady".to_string()],
    }
}

impl Forecaster for Rogue {
    fn forecast(_: &Series, horizon: u32) -> Result<Forecast, PluginError> {
        let mut f = honest(horizon);
        match config("mode").as_deref().unwrap_or("short") {
            "short" => {
                f.values.pop();
            }
            "outside" => f.values[0] = 99.0,
            "nan" => f.values[0] = f64::NAN,
            "flood" => f.reasons = vec!["x".repeat(1 << 20)],
            "spin" => {
                // A loop the optimiser cannot remove: it reads the host.
                let mut n: u64 = 0;
                while config("mode").is_some() {
                    n = n.wrapping_add(1);
                }
                f.values[0] = n as f64;
            }
            "fewer" => {}
            other => return Err(PluginError::BadConfig(format!("unknown mode `{other}`"))),
        }
        Ok(f)
    }

    fn forecast_batch(series: Vec<Series>, horizon: u32) -> Vec<Result<Forecast, PluginError>> {
        let mut out: Vec<_> = series.iter().map(|s| Self::forecast(s, horizon)).collect();
        if config("mode").as_deref() == Some("fewer") {
            out.pop();
        }
        out
    }
}

lectern_plugin::export_forecaster!(Rogue);
