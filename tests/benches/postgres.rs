//! `cargo xtask bench postgres [PATRONS]`: the PostgreSQL store on a
//! generated library, each figure against a baseline in the same run.
//!
//! - Import: records per second into an empty library, by binary `COPY`
//!   into staging tables and set-based upserts, against PostgreSQL's own
//!   `COPY` of the same CSV files into bare tables with no key, index or
//!   upsert.
//! - Peak memory (VmHWM) of the importing process, before and after.
//! - Workers: a planned scoring run of `engagement` scored by one
//!   `lectern worker` process, then another run by two at once, on the
//!   same server: patrons per second and the ratio.
//!
//! Needs the local PostgreSQL (`LECTERN_TEST_POSTGRES` to name another).

use std::io::Write as _;
use std::process::Command;
use std::time::Instant;

use lectern::{Format, ImportOptions, Keyring, Lectern, PgStore};
use lectern_tests::{plugins, repo};

fn main() {
    let patrons = lectern_tests::bench_size(100_000);
    let server = std::env::var("LECTERN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    println!("| measure | value |\n|---|---|");
    let t = Instant::now();
    let (g, files) = lectern_tests::generated_library(&dir.join("data"), patrons);
    let records = g.patrons + g.loans + g.holds + g.uses;
    println!(
        "| generated | {} patrons, {} loans, {} holds, {} days of use in {:.1} s |",
        g.patrons,
        g.loans,
        g.holds,
        g.uses,
        t.elapsed().as_secs_f64()
    );
    let library = format!("bench_{}", std::process::id());
    let url = format!("{server}?library={library}");
    let drop_schemas = || {
        let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {library} CASCADE; DROP SCHEMA IF EXISTS {library}_copy CASCADE"
            ))
            .unwrap();
    };
    drop_schemas();

    // Baseline: the server's own COPY of the same files, into bare tables.
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE SCHEMA {library}_copy"))
        .unwrap();
    let t = Instant::now();
    let mut tx = client.transaction().unwrap();
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read(file).unwrap();
        let header =
            String::from_utf8_lossy(&text[..text.iter().position(|&b| b == b'\n').unwrap()])
                .to_string();
        let columns: Vec<String> = header.split(',').map(|c| format!("\"{c}\" TEXT")).collect();
        tx.batch_execute(&format!(
            "CREATE TABLE {library}_copy.t{i} ({})",
            columns.join(", ")
        ))
        .unwrap();
        let mut sink = tx
            .copy_in(&format!(
                "COPY {library}_copy.t{i} FROM STDIN (FORMAT csv, HEADER true)"
            ))
            .unwrap();
        sink.write_all(&text).unwrap();
        sink.finish().unwrap();
    }
    tx.commit().unwrap();
    let copy = t.elapsed();

    let before = lectern_tests::peak_kib();
    let mut store = PgStore::open(&url).unwrap();
    let server_before = server_cpu();
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
    let import_server = server_cpu() - server_before;
    assert_eq!(report.written.imported as u64, records);
    let after = lectern_tests::peak_kib();
    let rate = |d: std::time::Duration| records as f64 / d.as_secs_f64();
    println!(
        "| import into an empty PostgreSQL library | **{:.0} records/s** ({:.1} s) |",
        rate(import),
        import.as_secs_f64()
    );
    println!(
        "| baseline: COPY of the same CSV into bare tables | {:.0} records/s ({:.1} s) |",
        rate(copy),
        copy.as_secs_f64()
    );
    println!(
        "| import time against the baseline | **{:.2}×** |",
        import.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "| server CPU during the import | {:.1} s ({:.1} µs a record) |",
        import_server,
        import_server * 1e6 / records as f64
    );
    println!(
        "| peak memory of the process (VmHWM) before → after the import | {} MiB → {} MiB |",
        before / 1024,
        after / 1024
    );
    drop(store);

    // Workers: the release binary, its plugins compiled once into a cache
    // both runs share.
    let status = Command::new(env!("CARGO"))
        .current_dir(repo())
        .args(["build", "--release", "--quiet", "-p", "lectern-cli"])
        .status()
        .unwrap();
    assert!(status.success());
    let bin = repo().join("target/release/lectern");
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\n\n[serve]\nscorers = [{:?}]\nscore-at = \"23:59\"\n",
            plugins::BASELINE_PRIVACY,
            plugins::ENGAGEMENT
        ),
    )
    .unwrap();
    let keyring = Keyring::load_or_create(&dir.join(format!("{library}.key"))).unwrap();
    let host = lectern_tests::shared_host();
    let mut library_handle = Lectern::open(
        host,
        PgStore::open(&url).unwrap(),
        keyring,
        lectern::Config::from_file(&dir.join("lectern.toml")).unwrap(),
    )
    .unwrap();
    let scorer = library_handle
        .plugin_at(plugins::ENGAGEMENT)
        .unwrap()
        .into_scorer()
        .unwrap();
    let worker = |name: &str| {
        let mut c = Command::new(&bin);
        c.current_dir(dir)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--db")
            .arg(&url)
            .args([
                "--config",
                "lectern.toml",
                "worker",
                "--jobs",
                "score",
                "--once",
            ])
            .args(["--name", name, "--lease-secs", "600"])
            .stdout(std::process::Stdio::null());
        c
    };
    // Nothing is planned yet: this only compiles the plugin into the cache.
    assert!(worker("warm").status().unwrap().success());
    let mut timings = Vec::new();
    for workers in [1, 2] {
        let run = library_handle
            .plan_score(&scorer, lectern_tests::as_of(), 2000)
            .unwrap();
        let server_before = server_cpu();
        let t = Instant::now();
        let children: Vec<_> = (0..workers)
            .map(|w| worker(&format!("w{w}")).spawn().unwrap())
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let took = t.elapsed();
        let server = server_cpu() - server_before;
        let runs = library_handle.runs().unwrap();
        let stored = runs
            .iter()
            .find(|r| r.id == run)
            .expect("the run is complete");
        assert_eq!(stored.patrons as u64, g.patrons);
        timings.push(took);
        println!(
            "| scoring run {run} by {workers} worker{} | **{:.0} patrons/s** ({:.1} s); server CPU {:.1} s ({:.0} µs a patron) |",
            if workers == 1 { "" } else { "s" },
            g.patrons as f64 / took.as_secs_f64(),
            took.as_secs_f64(),
            server,
            server * 1e6 / g.patrons as f64
        );
    }
    println!(
        "| 2 workers against 1 | **{:.2}×** the throughput |",
        timings[0].as_secs_f64() / timings[1].as_secs_f64()
    );
    drop(library_handle);
    drop_schemas();
}

/// CPU seconds the PostgreSQL server's processes on this machine have used:
/// how much of a step's cost lands on the primary.
fn server_cpu() -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let used = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total += used(11) + used(12);
    }
    total as f64 / tick
}
