//! `cargo xtask bench forecast [PATRONS]`: the bundled forecaster's
//! accuracy on a generated library with term-time seasons and planted
//! subject trends, against the seasonal naive forecast in the same run.
//!
//! The library's three whole years (January 2024 to December 2026) go
//! through `lectern report needs` as the analyst sees them (k = 10, small
//! months hidden); each subject's line is cut after two years, and the
//! third is forecast by each of the forecaster's models and by the
//! seasonal naive forecast (each month as the same month a year before).
//! Reported: mean MASE (scaled by the in-sample seasonal naive error), MAPE,
//! the share of held-out months inside the 80% interval, and on how many
//! subjects the model beat the naive forecast. The defaults were chosen on
//! seed 1; seed 7 is a library they never saw.

use std::path::Path;

use chrono::NaiveDate;
use lectern::{
    Config, Forecaster, Format, Host, ImportOptions, Lectern, NeedsOptions, SqliteStore,
};
use lectern_tests::{keyring, plugins, repo};

fn main() {
    let patrons = lectern_tests::bench_size(20_000);
    // The defaults were chosen on seed 1; seed 7 is a library they never
    // saw.
    for seed in [1, 7] {
        run(patrons, seed);
    }
}

fn run(patrons: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
    let summary = lectern::generate(
        &lectern::GenOptions { patrons, seed, end },
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    let files = ["patrons.csv", "loans.csv", "holds.csv", "use.csv"].map(|f| dir.path().join(f));
    let db = dir.path().join("lectern.db");
    let mut store = SqliteStore::open(&db).unwrap();
    lectern::import(
        &mut store,
        Format::Csv,
        &files,
        ImportOptions {
            strict: true,
            ..Default::default()
        },
        &lectern::Pseudonyms::ephemeral(),
        &mut |_| {},
    )
    .unwrap();
    drop(store);
    let host = Host::builder()
        .cache_dir(repo().join("target/bench-cache"))
        .build()
        .unwrap();
    let config = Config::parse(
        &format!("[privacy]\npolicy = {:?}\n", plugins::BASELINE_PRIVACY),
        Path::new("."),
    )
    .unwrap();
    let library = Lectern::open(&host, SqliteStore::open(&db).unwrap(), keyring(), config).unwrap();
    let options = NeedsOptions::new(end, 10);
    println!(
        "forecast: {patrons} patrons (seed {seed}), {} loans, {} holds; train 2024-01..2025-12, \
         forecast 2026-01..2026-12, k = 10",
        summary.loans, summary.holds
    );
    println!(
        "{:<16} {:>8} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10}",
        "model", "MASE", "naive MASE", "ratio", "MAPE", "naive MAPE", "coverage", "better on"
    );
    for model in ["shared-season", "holt-winters", "seasonal-naive"] {
        let copy = lectern_tests::plugin_copy(plugins::FORECASTER, |m| {
            m.replace(
                "default = \"shared-season\"",
                &format!("default = \"{model}\""),
            )
        });
        let forecaster = Forecaster::new(host.load(copy.path()).unwrap()).unwrap();
        let b = library
            .backtest_needs("analyst", &options, &forecaster, 12)
            .unwrap();
        println!(
            "{model:<16} {:>8.3} {:>10.3} {:>8.2} {:>7.1}% {:>9.1}% {:>8.0}% {:>5}/{:<4}",
            b.mase,
            b.naive_mase,
            b.mase / b.naive_mase,
            b.mape,
            b.naive_mape,
            100.0 * b.coverage,
            b.wins,
            b.series.len()
        );
    }
}
