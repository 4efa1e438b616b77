//! `forecaster`: demand per subject and group of readers for the months
//! ahead, from monthly aggregates the host has already k-suppressed. By
//! default the yearly rhythm of academic terms is learnt from every series
//! of a group together, and each series keeps its own level and damped
//! trend; additive Holt–Winters per series, and seasonal naive with drift,
//! are the alternatives. Every parameter comes from the plugin's
//! configuration.

mod model;

use lectern_plugin::{Forecast, Forecaster, PluginError, Series, host};

struct Demand;

impl Forecaster for Demand {
    fn forecast(series: &Series, horizon: u32) -> Result<Forecast, PluginError> {
        let p = params()?;
        let profile = match p.method {
            model::Method::SharedSeason => {
                model::shared_profile(&[(series.values.as_slice(), series.start.month)], p.season)
            }
            _ => None,
        };
        forecast(series, horizon, &p, profile.as_ref())
    }

    fn forecast_batch(series: Vec<Series>, horizon: u32) -> Vec<Result<Forecast, PluginError>> {
        // Read the configuration once per batch; if it is wrong, every
        // series says so.
        let params = params();
        // The shared season is made from the series of each group
        // together, once per group: a group's terms, not another's.
        let mut profiles: std::collections::BTreeMap<&str, Option<model::Profile>> =
            std::collections::BTreeMap::new();
        if let Ok(p) = &params
            && p.method == model::Method::SharedSeason
        {
            for s in &series {
                profiles.entry(s.group.as_str()).or_insert_with(|| {
                    let batch: Vec<(&[Option<f64>], u8)> = series
                        .iter()
                        .filter(|o| o.group == s.group)
                        .map(|o| (o.values.as_slice(), o.start.month))
                        .collect();
                    model::shared_profile(&batch, p.season)
                });
            }
        }
        series
            .iter()
            .map(|s| match &params {
                Ok(p) => forecast(
                    s,
                    horizon,
                    p,
                    profiles.get(s.group.as_str()).and_then(Option::as_ref),
                ),
                Err(e) => Err(e.clone()),
            })
            .collect()
    }
}

fn forecast(
    s: &Series,
    horizon: u32,
    params: &model::Params,
    profile: Option<&model::Profile>,
) -> Result<Forecast, PluginError> {
    let out = model::forecast_with(
        &s.values,
        (s.start.year, s.start.month),
        horizon,
        params,
        profile,
    )
    .map_err(|m| {
        PluginError::InvalidInput(format!("series `{}` for `{}`: {m}", s.subject, s.group))
    })?;
    Ok(Forecast {
        values: out.values,
        low: out.low,
        high: out.high,
        level: out.level,
        reasons: out.reasons,
    })
}

/// The model's parameters, from the configuration, each key checked.
fn params() -> Result<model::Params, PluginError> {
    let d = model::Params::default();
    let method = match host::config("model").as_deref().map(str::trim) {
        None | Some("shared-season") => model::Method::SharedSeason,
        Some("holt-winters") => model::Method::HoltWinters,
        Some("seasonal-naive") => model::Method::SeasonalNaive,
        Some(other) => {
            return Err(PluginError::BadConfig(format!(
                "`model` is `{other}`; it must be `shared-season`, `holt-winters` or \
                 `seasonal-naive`"
            )));
        }
    };
    let p = model::Params {
        method,
        alpha: number("alpha", d.alpha)?,
        beta: number("beta", d.beta)?,
        gamma: number("gamma", d.gamma)?,
        phi: number("phi", d.phi)?,
        season: whole("season", d.season)?,
        level: number("level", d.level)?,
        min_history: whole("min-history", d.min_history)?,
    };
    p.check().map_err(PluginError::BadConfig)?;
    Ok(p)
}

/// A number from the configuration, or `default` when unset.
fn number(key: &str, default: f64) -> Result<f64, PluginError> {
    match host::config(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| PluginError::BadConfig(format!("`{key}` must be a number, got `{v}`"))),
    }
}

/// A whole number from the configuration, or `default` when unset.
fn whole(key: &str, default: usize) -> Result<usize, PluginError> {
    match host::config(key) {
        None => Ok(default),
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            PluginError::BadConfig(format!("`{key}` must be a whole number, got `{v}`"))
        }),
    }
}

lectern_plugin::export_forecaster!(Demand);

#[cfg(test)]
mod tests {
    //! The model's behaviour on synthetic series, run natively: the host's
    //! `config` import exists only inside the sandbox, so these call the
    //! model with [`model::Params`] directly.

    use super::model::{self, Method, Output, Params};

    /// A deterministic generator for noise in `[-1, 1)`.
    struct Noise(u64);

    impl Noise {
        fn sample(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
    }

    /// Monthly demand from January, peaking in March–May and
    /// October–November, quiet in the summer, growing 40% a year, with ±3%
    /// noise.
    fn termly(years: usize) -> Vec<f64> {
        const PROFILE: [f64; 12] = [0.9, 1.0, 1.3, 1.4, 1.3, 0.8, 0.5, 0.5, 1.0, 1.3, 1.4, 0.8];
        let mut noise = Noise(7);
        (0..12 * years)
            .map(|t| {
                100.0
                    * PROFILE[t % 12]
                    * 1.4f64.powf(t as f64 / 12.0)
                    * (1.0 + 0.03 * noise.sample())
            })
            .collect()
    }

    /// Parameters that follow a strong trend: the defaults are steadier,
    /// tuned on generated libraries where most subjects are flat, and a
    /// library whose subjects grow fast raises these in its configuration.
    fn tracking() -> Params {
        Params {
            alpha: 0.3,
            beta: 0.1,
            phi: 0.95,
            ..Params::default()
        }
    }

    fn run(values: &[f64], horizon: u32, params: &Params) -> Output {
        let values: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
        model::forecast(&values, (2021, 1), horizon, params).expect("a forecast")
    }

    /// Mean absolute scaled error: the forecast's mean absolute error over
    /// that of the in-sample seasonal naive forecast.
    fn mase(forecast: &[f64], actual: &[f64], train: &[f64]) -> f64 {
        let mae = forecast
            .iter()
            .zip(actual)
            .map(|(f, a)| (f - a).abs())
            .sum::<f64>()
            / actual.len() as f64;
        let scale = (12..train.len())
            .map(|t| (train[t] - train[t - 12]).abs())
            .sum::<f64>()
            / (train.len() - 12) as f64;
        mae / scale
    }

    fn assert_well_formed(out: &Output, horizon: u32) {
        let h = horizon as usize;
        assert_eq!(out.values.len(), h, "{out:?}");
        assert_eq!(out.low.len(), h, "{out:?}");
        assert_eq!(out.high.len(), h, "{out:?}");
        for ((low, value), high) in out.low.iter().zip(&out.values).zip(&out.high) {
            assert!(0.0 <= *low && low <= value && value <= high, "{out:?}");
        }
        assert!(!out.reasons.is_empty());
    }

    #[test]
    fn holt_winters_beats_last_year_on_growing_termly_demand() {
        let y = termly(5);
        let (train, test) = y.split_at(48);
        let out = run(train, 12, &tracking());
        assert_well_formed(&out, 12);
        let holt_winters = mase(&out.values, test, train);
        // Seasonal naive without drift: the same month last year.
        let last_year = mase(&train[36..], test, train);
        assert!(
            holt_winters < 0.8 * last_year,
            "Holt–Winters {holt_winters:.3} against last year {last_year:.3}"
        );
        let reasons = out.reasons.join("; ");
        assert!(reasons.contains("grew about 4"), "{reasons}");
        assert!(
            reasons.contains("peaks in March–May and October–November"),
            "{reasons}"
        );
    }

    #[test]
    fn seasonal_naive_with_drift_follows_the_growth() {
        let y = termly(5);
        let (train, test) = y.split_at(48);
        let params = Params {
            method: Method::SeasonalNaive,
            ..Params::default()
        };
        let out = run(train, 12, &params);
        assert_well_formed(&out, 12);
        assert!(mase(&out.values, test, train) < mase(&train[36..], test, train));
        assert!(
            out.reasons[0].starts_with("seasonal naive"),
            "{:?}",
            out.reasons
        );
    }

    #[test]
    fn a_flat_series_stays_flat() {
        for method in [Method::HoltWinters, Method::SeasonalNaive] {
            let params = Params {
                method,
                ..Params::default()
            };
            let out = run(&[50.0; 36], 24, &params);
            assert_well_formed(&out, 24);
            for v in out.values.iter().chain(&out.low).chain(&out.high) {
                assert!((v - 50.0).abs() < 1e-9, "{method:?}: {out:?}");
            }
            let reasons = out.reasons.join("; ");
            assert!(reasons.contains("held steady"), "{reasons}");
            assert!(!reasons.contains("peaks"), "{reasons}");
        }
    }

    #[test]
    fn a_short_history_falls_back_to_the_level() {
        let y = [10.0, 12.0, 14.0, 9.0, 11.0, 13.0, 10.0, 12.0, 8.0];
        let out = run(&y, 6, &Params::default());
        assert_well_formed(&out, 6);
        for v in &out.values {
            assert!((v - 11.0).abs() < 1e-9, "{out:?}");
        }
        assert!(
            out.reasons
                .iter()
                .any(|r| r.starts_with("only 9 months of history")),
            "{:?}",
            out.reasons
        );
    }

    #[test]
    fn one_month_of_history_is_enough_for_a_level() {
        let out = run(&[4.0], 3, &Params::default());
        assert_well_formed(&out, 3);
        assert_eq!(out.values, vec![4.0; 3]);
    }

    #[test]
    fn hidden_months_are_filled_in_and_said_so() {
        let mut values: Vec<Option<f64>> = termly(3).into_iter().map(Some).collect();
        values[0] = None;
        values[14] = None;
        values[30] = None;
        let out = model::forecast(&values, (2021, 1), 12, &Params::default()).unwrap();
        assert_well_formed(&out, 12);
        assert!(
            out.reasons[0].starts_with("3 hidden months (too few readers) filled in"),
            "{:?}",
            out.reasons
        );
    }

    #[test]
    fn negative_or_nan_or_infinite_values_are_rejected() {
        let mut values: Vec<Option<f64>> = vec![Some(5.0); 30];
        for (bad, says) in [
            (-1.0, "2022-04 is -1, and demand is never negative"),
            (f64::NAN, "2022-04 is NaN"),
            (f64::INFINITY, "2022-04 is inf"),
        ] {
            values[15] = Some(bad);
            let err = model::forecast(&values, (2021, 1), 12, &Params::default()).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn bad_horizons_starts_and_empty_series_are_rejected() {
        let values = vec![Some(5.0); 30];
        let p = Params::default();
        for horizon in [0, 37] {
            let err = model::forecast(&values, (2021, 1), horizon, &p).unwrap_err();
            assert!(err.contains("horizon"), "{err}");
        }
        assert!(model::forecast(&values, (2021, 13), 6, &p).is_err());
        assert!(model::forecast(&[], (2021, 1), 6, &p).is_err());
        assert!(model::forecast(&[None, None], (2021, 1), 6, &p).is_err());
    }

    #[test]
    fn outputs_have_horizon_values_within_their_bounds_at_every_length() {
        let y = termly(4);
        for method in [Method::HoltWinters, Method::SeasonalNaive] {
            let params = Params {
                method,
                ..Params::default()
            };
            for n in 1..=y.len() {
                for horizon in [1, 7, 12, 36] {
                    let out = run(&y[..n], horizon, &params);
                    assert_well_formed(&out, horizon);
                }
            }
        }
    }

    #[test]
    fn falling_demand_is_held_at_zero() {
        let y: Vec<f64> = (0..36)
            .map(|t| (360.0 - 10.0 * t as f64).max(0.0))
            .collect();
        let params = Params {
            phi: 1.0,
            ..Params::default()
        };
        let out = run(&y, 36, &params);
        assert_well_formed(&out, 36);
        assert_eq!(out.values.last(), Some(&0.0));
        assert!(
            out.reasons.iter().any(|r| r.contains("held at zero")),
            "{:?}",
            out.reasons
        );
    }

    #[test]
    fn parameters_out_of_range_name_their_key() {
        let bad = Params {
            phi: 1.5,
            ..Params::default()
        };
        assert!(bad.check().unwrap_err().contains("`phi`"));
        let bad = Params {
            level: 1.0,
            ..Params::default()
        };
        assert!(bad.check().unwrap_err().contains("`level`"));
        let bad = Params {
            season: 1,
            ..Params::default()
        };
        assert!(bad.check().unwrap_err().contains("`season`"));
    }

    #[test]
    fn the_normal_quantile_matches_the_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281551566),
            (0.975, 1.959963985),
            (0.01, -2.326347874),
        ] {
            assert!((model::normal_quantile(p) - z).abs() < 1e-6, "{p}");
        }
    }

    #[test]
    fn a_shared_season_beats_the_seasonal_naive_forecast_on_noisy_subjects() {
        // Twenty subjects with the same terms, different levels and
        // trends, and ±30% noise: one subject's two years say little about
        // its season; twenty say a lot.
        const PROFILE: [f64; 12] = [0.6, 1.0, 1.4, 1.4, 1.3, 0.7, 0.3, 0.4, 1.1, 1.4, 1.4, 1.0];
        let mut noise = Noise(11);
        let subjects: Vec<Vec<f64>> = (0..20)
            .map(|i| {
                let growth = 0.8 + 0.03 * i as f64;
                (0..36)
                    .map(|t| {
                        (20.0 + 3.0 * i as f64)
                            * PROFILE[t % 12]
                            * f64::powf(growth, t as f64 / 12.0)
                            * (1.0 + 0.3 * noise.sample())
                    })
                    .collect()
            })
            .collect();
        let trains: Vec<Vec<Option<f64>>> = subjects
            .iter()
            .map(|s| s[..24].iter().map(|v| Some(*v)).collect())
            .collect();
        let batch: Vec<(&[Option<f64>], u8)> = trains.iter().map(|t| (t.as_slice(), 1)).collect();
        let profile = model::shared_profile(&batch, 12).expect("a profile");
        assert_eq!(profile.series, 20);
        let p = Params {
            alpha: 0.2,
            phi: 0.9,
            ..tracking()
        };
        let (mut shared, mut naive) = (0.0, 0.0);
        for (s, train) in subjects.iter().zip(&trains) {
            let out = model::forecast_with(train, (2021, 1), 12, &p, Some(&profile)).unwrap();
            for h in 0..12 {
                shared += (s[24 + h] - out.values[h]).abs();
                naive += (s[24 + h] - s[12 + h]).abs();
            }
        }
        assert!(
            shared < 0.9 * naive,
            "shared {shared:.0} against naive {naive:.0}"
        );
    }
}
