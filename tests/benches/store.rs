//! `cargo xtask bench store [PATRONS]`: importing and summarising a large
//! generated library, each against a native baseline in the same process.
//!
//! - Import: records per second into SQLite, against parsing the same CSV
//!   files without storing them.
//! - Summaries: the activity summary of every patron, against a plain scan
//!   of the loans table.
//! - Peak memory (VmHWM) after each step.

use std::time::Instant;

use lectern::{Format, ImportOptions, SqliteStore, Store};

fn main() {
    let patrons = lectern_tests::bench_size(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let end = lectern_tests::as_of();
    println!("| measure | value |\n|---|---|");

    let t = Instant::now();
    let (g, files) = lectern_tests::generated_library(dir.path(), patrons);
    let records = g.patrons + g.loans + g.holds + g.uses;
    println!(
        "| generated | {} patrons, {} loans, {} holds, {} days of use in {:.1} s |",
        g.patrons,
        g.loans,
        g.holds,
        g.uses,
        t.elapsed().as_secs_f64()
    );

    // Baseline: parse every row of every file, store nothing.
    let t = Instant::now();
    let mut rows = 0u64;
    for f in &files {
        let mut r = csv::Reader::from_path(f).unwrap();
        let mut rec = csv::StringRecord::new();
        while r.read_record(&mut rec).unwrap() {
            rows += std::hint::black_box(rec.len() as u64).min(1);
        }
    }
    let parse = t.elapsed();
    assert_eq!(rows, records);

    let db = dir.path().join("lectern.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let before = lectern_tests::peak_kib();
    let t = Instant::now();
    let report = lectern::import(
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
    let import = t.elapsed();
    assert_eq!(report.written.imported as u64, records);
    let after = lectern_tests::peak_kib();
    println!(
        "| CSV parse only (baseline) | {:.0} records/s |",
        records as f64 / parse.as_secs_f64()
    );
    println!(
        "| **import into SQLite** | **{:.0} records/s** ({:.1} s) |",
        records as f64 / import.as_secs_f64(),
        import.as_secs_f64()
    );
    println!(
        "| ratio, import / parse | {:.1}× |",
        import.as_secs_f64() / parse.as_secs_f64()
    );
    println!("| peak memory before the import | {} MiB |", before >> 10);
    println!("| peak memory after the import | {} MiB |", after >> 10);
    println!(
        "| store size | {} MiB |",
        std::fs::metadata(&db).unwrap().len() >> 20
    );

    // Baseline: one plain pass over the loans table.
    let conn = rusqlite_scan(&db);
    let t = Instant::now();
    let mut summarised = 0u64;
    store
        .for_each_patron(end, 10_000, &mut |batch| {
            summarised += std::hint::black_box(batch).len() as u64;
            Ok(())
        })
        .unwrap();
    let summarise = t.elapsed();
    assert_eq!(summarised, patrons);
    println!(
        "| plain scan of the loans table (baseline) | {:.1} s |",
        conn.as_secs_f64()
    );
    println!(
        "| **activity summaries for every patron**, 10,000 at a time | **{:.1} s** ({:.1} µs per patron) |",
        summarise.as_secs_f64(),
        summarise.as_secs_f64() * 1e6 / patrons as f64
    );
    println!(
        "| ratio, summaries / scan | {:.1}× |",
        summarise.as_secs_f64() / conn.as_secs_f64()
    );
    println!(
        "| peak memory after the summaries | {} MiB |",
        lectern_tests::peak_kib() >> 10
    );
}

/// Times reading every loan's patron and date, through a second connection.
fn rusqlite_scan(db: &std::path::Path) -> std::time::Duration {
    let conn = rusqlite::Connection::open(db).unwrap();
    let t = Instant::now();
    let mut stmt = conn
        .prepare("SELECT patron_id, loaned_on, returned_on FROM loans")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0u64;
    while let Some(r) = rows.next().unwrap() {
        let s: String = r.get(0).unwrap();
        n += std::hint::black_box(s.len() as u64).min(1);
    }
    assert!(n > 0);
    t.elapsed()
}
