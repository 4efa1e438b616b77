//! `lectern gen`: a synthetic library that is deterministic, realistic in
//! shape, and imports cleanly.

use chrono::NaiveDate;
use lectern::{Format, GenOptions, ImportOptions, SqliteStore, Store};

fn generate(dir: &std::path::Path, seed: u64) -> lectern::GenSummary {
    let end = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
    lectern::generate(
        &GenOptions {
            patrons: 3000,
            seed,
            end,
        },
        dir,
        &mut |_| {},
    )
    .unwrap()
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    ["patrons.csv", "loans.csv", "holds.csv", "use.csv"]
        .map(|f| dir.join(f))
        .to_vec()
}

#[test]
fn the_same_seed_gives_the_same_library() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), 42);
    generate(b.path(), 42);
    generate(c.path(), 43);
    for f in files(a.path()) {
        let name = f.file_name().unwrap();
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(b.path().join(name)).unwrap(),
            "{name:?} differs for one seed"
        );
        assert_ne!(
            bytes,
            std::fs::read(c.path().join(name)).unwrap(),
            "{name:?} is the same for two seeds"
        );
    }
}

#[test]
fn a_generated_library_imports_cleanly_and_looks_like_a_library() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), 1);
    let loans_per_patron = summary.loans as f64 / summary.patrons as f64;
    assert!(
        (6.0..16.0).contains(&loans_per_patron),
        "{loans_per_patron} loans per patron"
    );

    let mut store = SqliteStore::temporary().unwrap();
    let report = lectern::import(
        &mut store,
        Format::Csv,
        &files(dir.path()),
        ImportOptions {
            strict: true,
            ..Default::default()
        },
        &lectern::Pseudonyms::ephemeral(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        report.written.imported as u64,
        summary.patrons + summary.loans + summary.holds + summary.uses
    );

    let patrons = store
        .patrons(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap())
        .unwrap();
    let share = |f: &dyn Fn(&lectern::Patron) -> bool| {
        patrons.iter().filter(|p| f(p)).count() as f64 / patrons.len() as f64
    };
    let undergraduates = share(&|p| p.category.as_deref() == Some("undergraduate"));
    assert!((0.50..0.60).contains(&undergraduates), "{undergraduates}");
    let researchers = share(&|p| {
        p.attributes
            .as_ref()
            .is_some_and(|a| a.contains_key("research-project"))
    });
    assert!((0.02..0.10).contains(&researchers), "{researchers}");
    let dormant = share(&|p| {
        p.activity
            .unwrap()
            .days_since_last_activity
            .is_none_or(|d| d > 365)
    });
    assert!((0.15..0.50).contains(&dormant), "{dormant} dormant");
    // Zipf-like: the busiest 1% borrow far more than the median reader.
    let mut loans: Vec<u32> = patrons
        .iter()
        .map(|p| p.activity.unwrap().loans_365d)
        .collect();
    loans.sort_unstable();
    let (median, top) = (loans[loans.len() / 2], loans[loans.len() * 99 / 100]);
    assert!(top >= 10 * median.max(1), "median {median}, top 1% {top}");
}
