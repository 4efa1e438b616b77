//! Forecasting demand with a plugin of the `forecaster` world, and
//! measuring a forecaster against the seasonal naive forecast.
//!
//! A forecaster never sees a patron: it gets monthly series of demand that
//! have already passed k-suppression (a hidden month is `None`), and gives
//! back values with an interval and reasons. Whatever it answers is
//! checked: one forecast per series, `horizon` values, finite, with the
//! value inside its interval. A forecaster that answers otherwise has
//! broken the contract, and the call fails with its name.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::api::v0_2;
use crate::error::{Error, Failure, GuestError, Result};
use crate::manifest::World;
use crate::plugin::Plugin;
use crate::runtime::StoreState;

/// The longest forecast a forecaster is asked for, in months.
pub const MAX_HORIZON: u32 = 36;

/// Demand per month of one subject in one group, as a forecaster sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlySeries {
    /// The subject.
    pub subject: String,
    /// The group: `all`, or `department=chemistry` and the like.
    pub group: String,
    /// The first month, `YYYY-MM`.
    pub start: String,
    /// Demand per month from `start`; `None` where hidden.
    pub values: Vec<Option<f64>>,
}

/// A forecast for the months after a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// One value per month ahead.
    pub values: Vec<f64>,
    /// The interval's lower bounds.
    pub low: Vec<f64>,
    /// Its upper bounds.
    pub high: Vec<f64>,
    /// Its nominal coverage, such as 0.8.
    pub level: f64,
    /// Why, in plain words.
    pub reasons: Vec<String>,
}

/// One series' forecast, or the plugin's error for it.
pub type Forecasted = std::result::Result<Forecast, GuestError>;

/// A plugin of the `forecaster` world.
#[derive(Clone)]
pub struct Forecaster {
    plugin: Plugin,
    pre: v0_2::forecaster::ForecasterPre<StoreState>,
}

impl std::fmt::Debug for Forecaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.plugin.fmt(f)
    }
}

fn month_of(s: &str) -> Option<(i32, u8)> {
    let d = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?;
    Some((d.year(), d.month() as u8))
}

impl Forecaster {
    /// `plugin` as a forecaster, if it is one.
    pub fn new(plugin: Plugin) -> Result<Forecaster> {
        let pre = plugin.typed(World::Forecaster, v0_2::forecaster::ForecasterPre::new)?;
        Ok(Forecaster { plugin, pre })
    }

    /// The plugin behind it.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Forecasts `horizon` months after each of `series`, on the host's
    /// day `today`. One result per series, in order.
    pub fn forecast(
        &self,
        series: &[MonthlySeries],
        horizon: u32,
        today: NaiveDate,
    ) -> Result<Vec<Forecasted>> {
        if horizon == 0 || horizon > MAX_HORIZON {
            return Err(Error::Invalid {
                where_: "the horizon".into(),
                message: format!("{horizon} months: forecast 1 to {MAX_HORIZON} months ahead"),
            });
        }
        let mut asked = Vec::with_capacity(series.len());
        for s in series {
            let Some((year, month)) = month_of(&s.start) else {
                return Err(Error::Invalid {
                    where_: format!("the series of {} ({})", s.subject, s.group),
                    message: format!("start {:?} is not a month; give YYYY-MM", s.start),
                });
            };
            if let Some(bad) = s
                .values
                .iter()
                .flatten()
                .find(|v| !v.is_finite() || **v < 0.0)
            {
                return Err(Error::Invalid {
                    where_: format!("the series of {} ({})", s.subject, s.group),
                    message: format!("{bad} is not a demand; give counts of 0 or more"),
                });
            }
            asked.push(v0_2::forecaster::Series {
                subject: s.subject.clone(),
                group: s.group.clone(),
                start: v0_2::forecaster::Month { year, month },
                values: s.values.clone(),
            });
        }
        let out = self.plugin.call(today, |store| {
            let f = self.pre.instantiate(&mut *store)?;
            f.lectern_crm_forecasting()
                .call_forecast_batch(store, &asked, horizon)
        })?;
        if out.len() != asked.len() {
            return Err(self.plugin.fail(Failure::BadOutput {
                message: format!("{} forecasts for {} series", out.len(), asked.len()),
            }));
        }
        let size: usize = out
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|f| f.reasons.iter().map(String::len).sum::<usize>() + 24 * f.values.len())
            .sum();
        self.plugin.check_output(size)?;
        out.into_iter()
            .zip(series)
            .map(|(r, s)| match r {
                Ok(f) => self.checked(f, horizon, s).map(Ok),
                Err(e) => Ok(Err(v0_2::guest_error(e))),
            })
            .collect()
    }

    /// The forecast, if it keeps the contract.
    fn checked(
        &self,
        f: v0_2::forecaster::Forecast,
        horizon: u32,
        s: &MonthlySeries,
    ) -> Result<Forecast> {
        let lie = |what: String| {
            self.plugin.fail(Failure::BadOutput {
                message: format!("the forecast of {} ({}) {what}", s.subject, s.group),
            })
        };
        let n = horizon as usize;
        if f.values.len() != n || f.low.len() != n || f.high.len() != n {
            return Err(lie(format!(
                "has {} values, {} lower and {} upper bounds for {n} months",
                f.values.len(),
                f.low.len(),
                f.high.len()
            )));
        }
        for i in 0..n {
            let (v, lo, hi) = (f.values[i], f.low[i], f.high[i]);
            if !(v.is_finite() && lo.is_finite() && hi.is_finite()) {
                return Err(lie(format!("month {} is not a number", i + 1)));
            }
            // A rounding error's slack, no more.
            let slack = 1e-9 * v.abs().max(1.0);
            if lo > v + slack || v > hi + slack {
                return Err(lie(format!(
                    "puts month {} at {v} outside its interval {lo} to {hi}",
                    i + 1
                )));
            }
        }
        if !(f.level > 0.0 && f.level < 1.0) {
            return Err(lie(format!("gives a coverage of {}", f.level)));
        }
        Ok(Forecast {
            values: f.values,
            low: f.low,
            high: f.high,
            level: f.level,
            reasons: f
                .reasons
                .into_iter()
                .take(12)
                .map(|r| crate::text::neutralise(&r, crate::text::MAX_ERROR_BYTES))
                .collect(),
        })
    }
}

/// The months after the series that starts at `start` and has `len`
/// values: the months a forecast of `horizon` covers, `YYYY-MM`.
pub(crate) fn months_after(start: &str, len: usize, horizon: u32) -> Vec<String> {
    let Some((year, month)) = month_of(start) else {
        return Vec::new();
    };
    let Some(first) = NaiveDate::from_ymd_opt(year, u32::from(month), 1) else {
        return Vec::new();
    };
    (0..horizon)
        .filter_map(|i| first.checked_add_months(Months::new(len as u32 + i)))
        .map(|d| format!("{:04}-{:02}", d.year(), d.month()))
        .collect()
}

/// How a forecaster did on held-out months, against the seasonal naive
/// forecast (each month as the same month a year before).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    /// The forecaster, `id@version`.
    pub forecaster: String,
    /// Months trained on.
    pub train_months: usize,
    /// Months held out and forecast.
    pub test_months: usize,
    /// One line per series scored.
    pub series: Vec<BacktestLine>,
    /// Series left out: too many hidden months, or the forecaster failed
    /// on them.
    pub skipped: usize,
    /// The forecaster's mean MASE over the series.
    pub mase: f64,
    /// The seasonal naive forecast's mean MASE.
    pub naive_mase: f64,
    /// The forecaster's MAPE over months with demand, in percent.
    pub mape: f64,
    /// The seasonal naive forecast's.
    pub naive_mape: f64,
    /// The share of held-out months inside the forecaster's interval.
    pub coverage: f64,
    /// The interval's nominal coverage.
    pub level: f64,
    /// Series where the forecaster's error was below the naive one's.
    pub wins: usize,
}

/// One series in a backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestLine {
    /// The subject.
    pub subject: String,
    /// The forecaster's MASE.
    pub mase: f64,
    /// The seasonal naive forecast's.
    pub naive_mase: f64,
}

/// The season of the naive forecast and of MASE's scale: a year of months.
const SEASON: usize = 12;

impl Forecaster {
    /// Trains on all but the last `test_months` of each series and
    /// forecasts those, scoring the forecaster and the seasonal naive
    /// forecast by MASE (mean absolute error scaled by the in-sample error
    /// of the seasonal naive forecast) and MAPE, on the months that show.
    pub fn backtest(
        &self,
        series: &[MonthlySeries],
        test_months: usize,
        today: NaiveDate,
    ) -> Result<Backtest> {
        let len = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        if test_months == 0 || len < test_months + 2 * SEASON {
            return Err(Error::Invalid {
                where_: "the backtest".into(),
                message: format!(
                    "{len} months with {test_months} held out leave too little to train on; \
                     give at least two years more than the months held out"
                ),
            });
        }
        let train_len = len - test_months;
        // A series is scored on the held-out months that show, against a
        // scale from the training months that show a year apart; one with
        // fewer than half its held-out months showing is left out.
        let usable: Vec<&MonthlySeries> = series
            .iter()
            .filter(|s| s.values.len() == len)
            .filter(|s| s.values[train_len..].iter().flatten().count() * 2 >= test_months)
            .collect();
        let trains: Vec<MonthlySeries> = usable
            .iter()
            .map(|s| MonthlySeries {
                values: s.values[..train_len].to_vec(),
                ..(*s).clone()
            })
            .collect();
        let forecasts = self.forecast(&trains, test_months as u32, today)?;
        let mut lines = Vec::new();
        let (mut ape, mut naive_ape, mut n_ape) = (0.0, 0.0, 0usize);
        let (mut inside, mut months) = (0usize, 0usize);
        let mut level = 0.0;
        for (s, f) in usable.iter().zip(forecasts) {
            let Ok(f) = f else {
                continue;
            };
            level = f.level;
            let (train, test) = s.values.split_at(train_len);
            let pairs: Vec<f64> = (SEASON..train.len())
                .filter_map(|t| Some((train[t]? - train[t - SEASON]?).abs()))
                .collect();
            let scale = pairs.iter().sum::<f64>() / pairs.len().max(1) as f64;
            // The seasonal naive forecast needs last year's month.
            let naive = |h: usize| train[train.len() - SEASON + h % SEASON];
            let (mut err, mut naive_err, mut scored) = (0.0, 0.0, 0usize);
            let (mut s_ape, mut s_naive_ape, mut s_n_ape, mut s_inside) =
                (0.0, 0.0, 0usize, 0usize);
            for (h, actual) in test.iter().enumerate() {
                let (Some(actual), Some(naive)) = (*actual, naive(h)) else {
                    continue;
                };
                err += (actual - f.values[h]).abs();
                naive_err += (actual - naive).abs();
                if actual > 0.0 {
                    s_ape += (actual - f.values[h]).abs() / actual;
                    s_naive_ape += (actual - naive).abs() / actual;
                    s_n_ape += 1;
                }
                scored += 1;
                s_inside += usize::from(f.low[h] <= actual && actual <= f.high[h]);
            }
            if scale <= 0.0 || scored == 0 {
                continue;
            }
            // Only series that are scored count in every figure.
            ape += s_ape;
            naive_ape += s_naive_ape;
            n_ape += s_n_ape;
            inside += s_inside;
            months += scored;
            lines.push(BacktestLine {
                subject: s.subject.clone(),
                mase: err / scored as f64 / scale,
                naive_mase: naive_err / scored as f64 / scale,
            });
        }
        let mean = |f: &dyn Fn(&BacktestLine) -> f64| {
            lines.iter().map(f).sum::<f64>() / lines.len().max(1) as f64
        };
        let plugin = self.plugin.manifest();
        Ok(Backtest {
            forecaster: format!("{}@{}", plugin.id, plugin.version),
            train_months: train_len,
            test_months,
            skipped: series.len() - lines.len(),
            mase: mean(&|l| l.mase),
            naive_mase: mean(&|l| l.naive_mase),
            mape: 100.0 * ape / n_ape.max(1) as f64,
            naive_mape: 100.0 * naive_ape / n_ape.max(1) as f64,
            coverage: inside as f64 / months.max(1) as f64,
            level,
            wins: lines.iter().filter(|l| l.mase < l.naive_mase).count(),
            series: lines,
        })
    }
}

impl Backtest {
    /// The result for a terminal.
    pub fn to_table(&self) -> String {
        format!(
            "{} trained on {} months, forecast {} held out, over {} subjects ({} left out with \
             too many hidden months):\n  MASE {:.3} against {:.3} for the seasonal naive forecast \
             (ratio {:.2}); better on {} of {} subjects\n  MAPE {:.1}% against {:.1}%\n  \
             {:.0}% of held-out months fell inside the {:.0}% interval\n",
            self.forecaster,
            self.train_months,
            self.test_months,
            self.series.len(),
            self.skipped,
            self.mase,
            self.naive_mase,
            self.mase / self.naive_mase.max(f64::MIN_POSITIVE),
            self.wins,
            self.series.len(),
            self.mape,
            self.naive_mape,
            100.0 * self.coverage,
            100.0 * self.level
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_months_after_a_series_run_on_across_years() {
        assert_eq!(
            super::months_after("2025-11", 2, 3),
            vec!["2026-01", "2026-02", "2026-03"]
        );
        assert!(super::months_after("2025-13", 2, 3).is_empty());
    }
}
