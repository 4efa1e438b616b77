//! The sandbox: a plugin that hangs, allocates, panics, snoops or floods
//! fails alone, with an error that names it, and the host carries on.

use std::time::{Duration, Instant};

use lectern::{CacheStatus, Failure, GuestError, Host, LogSource, Scorer};
use lectern_tests::{host, patron, pipeline, plugins, sample_patrons, testkit};

/// Scores one patron with testkit in `mode`, on `host`.
fn run(host: &Host, mode: &str) -> lectern::Result<Vec<String>> {
    let dir = testkit(mode);
    let scorer = host.load_scorer(dir.path())?;
    Ok(pipeline()
        .score(&scorer, &[patron("P0001")])?
        .remove(0)
        .reasons)
}

/// The host still scores correctly with a good plugin, and with testkit.
fn still_serves(host: &Host) {
    let engagement: Scorer = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    let scores = pipeline().score(&engagement, &sample_patrons()).unwrap();
    assert_eq!(scores[0].segment, "key-reader");
    assert!(
        run(host, "echo")
            .unwrap()
            .contains(&"field:activity".to_string())
    );
}

fn failure(host: &Host, mode: &str) -> (Failure, String) {
    let err = run(host, mode).unwrap_err();
    (
        err.failure()
            .cloned()
            .unwrap_or_else(|| panic!("not a plugin failure: {err}")),
        err.to_string(),
    )
}

#[test]
fn an_infinite_loop_times_out_at_its_deadline() {
    let (host, _) = host();
    let start = Instant::now();
    let (failure, message) = failure(&host, "loop");
    let elapsed = start.elapsed();
    assert_eq!(
        failure,
        Failure::Timeout {
            deadline: Duration::from_millis(500)
        }
    );
    assert!(
        message.starts_with("plugin `testkit` 0.1.0 failed: timed out"),
        "{message}"
    );
    // The manifest's deadline is 500 ms; allow generously for a loaded machine,
    // but a hang would never get here.
    assert!(
        elapsed >= Duration::from_millis(490),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "stopped late: {elapsed:?}"
    );
    still_serves(&host);
}

#[test]
fn a_huge_allocation_is_a_memory_error() {
    let (host, _) = host();
    let (failure, message) = failure(&host, "alloc");
    assert_eq!(failure, Failure::OutOfMemory { limit: 128 << 20 });
    assert!(message.contains("ran out of memory"), "{message}");
    still_serves(&host);
}

#[test]
fn a_panic_is_an_error_with_its_message() {
    let (host, _) = host();
    let (failure, message) = failure(&host, "panic");
    let Failure::Panic { message: why } = failure else {
        panic!("{message}")
    };
    assert!(why.contains("testkit panicked on purpose"), "{why}");
    still_serves(&host);
}

#[test]
fn a_guest_error_is_reported_as_the_guests() {
    let (host, _) = host();
    let (failure, message) = failure(&host, "error");
    assert_eq!(
        failure,
        Failure::Guest(GuestError::Other("testkit failed on purpose".into()))
    );
    assert_eq!(
        message,
        "plugin `testkit` 0.1.0 failed: testkit failed on purpose"
    );
    still_serves(&host);
}

#[test]
fn files_environment_arguments_and_network_are_shut() {
    let (host, _) = host();
    let report = run(&host, "snoop").unwrap();
    let opened: Vec<&String> = report.iter().filter(|r| r.contains("OPENED")).collect();
    assert!(opened.is_empty(), "the sandbox let through: {opened:?}");
    assert!(report.contains(&"env vars: 0".to_string()), "{report:?}");
    assert!(report.contains(&"args: 0".to_string()), "{report:?}");
    for probe in [
        "read /etc/passwd",
        "write /tmp/x",
        "tcp 127.0.0.1:80",
        "udp bind",
        "dns localhost",
    ] {
        assert!(
            report
                .iter()
                .any(|r| r.starts_with(probe) && r.contains("denied")),
            "{probe}: {report:?}"
        );
    }
    still_serves(&host);
}

#[test]
fn output_over_the_cap_is_refused() {
    let (host, _) = host();
    let (failure, _) = failure(&host, "huge-output");
    assert!(
        matches!(failure, Failure::OutputTooLarge { limit, .. } if limit == 4 << 20),
        "{failure:?}"
    );
    still_serves(&host);
}

#[test]
fn a_score_outside_the_contract_is_refused() {
    let (host, _) = host();
    let (failure, _) = failure(&host, "bad-score");
    assert_eq!(
        failure,
        Failure::BadOutput {
            message: format!(
                "score 250 for `{}` is outside 0 to 100",
                pipeline().token("P0001")
            )
        }
    );
}

#[test]
fn a_segment_the_manifest_does_not_list_is_refused() {
    let (host, _) = host();
    let (failure, _) = failure(&host, "bad-segment");
    let Failure::BadOutput { message } = failure else {
        panic!("{failure:?}");
    };
    assert!(
        message.contains("segment `bad-segment`")
            && message.contains("is not one its manifest lists in `outputs.segments`"),
        "{message}"
    );
}

#[test]
fn log_and_output_are_captured_and_capped() {
    let (host, lines) = host();
    // 20,000 lines through a debug host on a loaded machine: this test is
    // about the caps, not the deadline, so it gets a generous one.
    let dir = lectern_tests::plugin_copy(plugins::TESTKIT, |m| {
        m.replace("mode = \"echo\"", "mode = \"chatty\"")
            .replace("deadline-ms = 500", "deadline-ms = 20000")
    });
    let scorer = host.load_scorer(dir.path()).unwrap();
    let reasons = pipeline()
        .score(&scorer, &[patron("P0001")])
        .unwrap()
        .remove(0)
        .reasons;
    assert_eq!(reasons, ["chatted"]);
    let lines = lines.lock().unwrap();
    let kept: usize = lines
        .iter()
        .filter(|l| l.source != LogSource::Host)
        .map(|l| l.message.len())
        .sum();
    assert!(kept <= 64 << 10, "kept {kept} bytes over the 64 KiB cap");
    assert!(
        lines
            .iter()
            .any(|l| l.source == LogSource::Log && l.plugin == "testkit")
    );
    assert!(lines.iter().any(|l| l.source == LogSource::Stdout));
    let dropped = lines
        .iter()
        .find(|l| l.source == LogSource::Host)
        .expect("a note of what was dropped");
    assert!(dropped.message.starts_with("dropped "), "{dropped:?}");
}

#[test]
fn compiled_components_are_cached() {
    let cache = tempfile::tempdir().unwrap();
    let host = Host::builder().cache_dir(cache.path()).build().unwrap();
    let first = host.load(plugins::ENGAGEMENT).unwrap();
    assert_eq!(first.component().cache, CacheStatus::Stored);
    let second = host.load(plugins::ENGAGEMENT).unwrap();
    assert_eq!(second.component().cache, CacheStatus::Hit);

    // A damaged entry is compiled again, not trusted. (It is replaced, not
    // edited in place: loaded entries are mapped into memory.)
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not compiled code").unwrap();
    }
    let again = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    assert_eq!(again.plugin().component().cache, CacheStatus::Stored);
    let scores = pipeline().score(&again, &sample_patrons()).unwrap();
    assert_eq!(scores.len(), sample_patrons().len());
}

#[test]
fn the_testkit_echo_works_from_its_packaged_directory() {
    let (host, _) = host();
    let scorer = host.load_scorer(plugins::TESTKIT).unwrap();
    assert_eq!(scorer.plugin().config()["mode"], "echo");
    let reasons = pipeline()
        .score(&scorer, &[patron("P0002")])
        .unwrap()
        .remove(0)
        .reasons;
    assert_eq!(reasons[1..], ["field:category", "field:activity"]);
}

#[test]
fn hosts_compiling_the_same_component_at_once_share_the_cache_safely() {
    let cache = tempfile::tempdir().unwrap();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let host = Host::builder().cache_dir(cache.path()).build().unwrap();
                barrier.wait();
                host.load_scorer(plugins::ENGAGEMENT).unwrap();
            });
        }
    });
    // Beside the cache's key, one entry with its MAC, perhaps the
    // remembered hash of the component, and no temporary file.
    let names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "cache.key")
        .collect();
    let entries = names.iter().filter(|n| n.ends_with(".cwasm")).count();
    let others = names
        .iter()
        .filter(|n| !n.ends_with(".cwasm") && !n.ends_with(".cwasm.mac") && !n.ends_with(".memo"))
        .count();
    assert_eq!(
        (entries, others),
        (1, 0),
        "one entry, no temporary files left: {names:?}"
    );
}

#[test]
fn a_plugin_that_sleeps_fails_at_its_deadline_and_never_holds_the_host() {
    let (host, _) = host();
    // An hour's sleep, and a sleep a millisecond at a time, forever: both
    // through WASI's monotonic clock, which the epoch deadline cannot
    // interrupt. The plugin's own clock turns each into a timeout at the
    // deadline (500 ms in testkit's manifest) without the host waiting.
    for mode in ["sleep", "doze"] {
        let started = Instant::now();
        let (failure, _) = failure(&host, mode);
        assert_eq!(
            failure,
            Failure::Timeout {
                deadline: Duration::from_millis(500)
            },
            "{mode}"
        );
        // Not a speed target: an hour's sleep that held the host would take
        // an hour.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{mode} held the host for {:?}",
            started.elapsed()
        );
    }
    // A short sleep still works, and the plugin's clock says it slept: the
    // 50 ms, plus the moment the call itself took on a busy machine.
    let nap = run(&host, "nap").unwrap();
    let slept: u64 = nap[0]
        .strip_prefix("slept ")
        .and_then(|s| s.strip_suffix(" ms"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{nap:?}"));
    assert!((50..500).contains(&slept), "{nap:?}");
    still_serves(&host);
}

#[test]
fn plugin_text_cannot_forge_lines_or_drive_the_terminal_and_errors_are_capped() {
    let (host, lines) = host();
    let reasons = run(&host, "inject").unwrap();
    assert_eq!(reasons, ["\\u{1b}[2Jcleared the screen"]);
    let logged: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.source == LogSource::Log)
        .map(|l| l.message.clone())
        .collect();
    assert_eq!(logged, ["first\\nlectern: error: forged line"]);

    let (failure, message) = failure(&host, "long-error");
    assert!(
        matches!(failure, Failure::Guest(GuestError::Other(_))),
        "{failure:?}"
    );
    assert!(message.len() < 2048, "{} bytes of error", message.len());
}

/// testkit in `mode` with a fuel budget of `fuel` and a deadline long
/// enough that only the budget can stop it.
fn fueled(host: &Host, mode: &str, fuel: u64) -> lectern::Result<Vec<String>> {
    let dir = lectern_tests::plugin_copy(plugins::TESTKIT, |m| {
        m.replace("mode = \"echo\"", &format!("mode = \"{mode}\""))
            .replace(
                "deadline-ms = 500",
                &format!("deadline-ms = 30000\nfuel = {fuel}"),
            )
    });
    let scorer = host.load_scorer(dir.path())?;
    assert_eq!(scorer.plugin().limits().fuel, Some(fuel));
    Ok(pipeline()
        .score(&scorer, &[patron("P0001")])?
        .remove(0)
        .reasons)
}

#[test]
fn a_fuel_budget_stops_a_loop_the_same_way_on_every_machine() {
    let (host, _) = host();
    // A loop that would run for the whole 30 s deadline stops when its
    // budget is spent, whatever the machine's speed.
    let err = fueled(&host, "loop", 50_000_000).unwrap_err();
    assert_eq!(
        err.failure(),
        Some(&Failure::OutOfFuel { fuel: 50_000_000 }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("plugin `testkit` 0.1.0 failed: used up its budget of 50000000 fuel"),
        "{message}"
    );
    assert!(message.contains("raise `limits.fuel`"), "{message}");
    // The same budget is plenty for honest work, and unmetered plugins in
    // the same host go on as before.
    assert!(fueled(&host, "echo", 50_000_000).unwrap()[0].starts_with("id:"));
    still_serves(&host);
}

/// A scorer that lies in its columnar results, written against the raw
/// export: each lie fails it alone, by name, before any of its text is
/// built, and the host carries on.
#[test]
fn a_columnar_scorer_that_lies_about_rows_codes_or_offsets_is_refused() {
    let (host, _) = host();
    let patrons = sample_patrons();
    for (mode, want) in [
        ("short", "values and"),
        ("bad-code", "a segment code 7 names nothing"),
        ("bad-offsets", "reason-starts are not"),
    ] {
        let dir = lectern_tests::plugin_copy(plugins::ROGUE_SCORER, |m| {
            m.replace("mode = \"short\"", &format!("mode = \"{mode}\""))
        });
        let rogue = host.load_scorer(dir.path()).unwrap();
        assert!(rogue.is_columnar(), "{mode}");
        let err = pipeline().score(&rogue, &patrons).unwrap_err();
        let Some(Failure::BadOutput { message }) = err.failure() else {
            panic!("{mode}: {err}");
        };
        assert!(message.contains(want), "{mode}: {message}");
        assert!(err.to_string().starts_with("plugin `rogue-scorer"), "{err}");
    }
    // A few bytes of codes that would expand to 10 MB of reasons per patron.
    let dir = lectern_tests::plugin_copy(plugins::ROGUE_SCORER, |m| {
        m.replace("mode = \"short\"", "mode = \"amplify\"")
    });
    let rogue = host.load_scorer(dir.path()).unwrap();
    let err = pipeline().score(&rogue, &patrons).unwrap_err();
    assert!(
        matches!(err.failure(), Some(Failure::OutputTooLarge { size, limit }) if size > limit),
        "{err}"
    );
    still_serves(&host);
}
