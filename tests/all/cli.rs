//! The `lectern` command as a librarian or a vendor's script runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

use lectern_tests::{lectern_command, plugins, repo};

/// The `lectern` binary, without the compiled-plugin cache.
fn lectern() -> Command {
    let mut c = lectern_command();
    c.arg("--no-cache");
    c
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn samples(name: &str) -> PathBuf {
    repo().join("samples").join(name)
}

#[test]
fn score_prints_a_table_and_json() {
    let args = |json: bool| {
        let mut c = lectern();
        c.args([
            "score",
            "--plugin",
            plugins::ENGAGEMENT,
            "--policy",
            plugins::BASELINE_PRIVACY,
            "--input",
        ])
        .arg(samples("patrons.jsonl"))
        .args(["--as-of", "2026-11-28"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let table = ok(args(false));
    assert!(table.contains("│ P0001  ┆ 97.0  ┆ key-reader"), "{table}");
    assert!(
        table.contains(
            "12 patrons scored by engagement 0.1.0: active 5, dormant 2, key-reader 3, lapsing 2"
        ),
        "{table}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(args(true))).unwrap();
    assert_eq!(json["plugin"], "engagement");
    assert_eq!(json["scores"][0]["patron"], "P0001");
    assert_eq!(json["scores"][0]["segment"], "key-reader");
}

#[test]
fn compose_prints_each_notice() {
    let out = ok(lectern()
        .args(["compose", "--plugin", plugins::NOTICES, "--events"])
        .arg(samples("events.jsonl"))
        .arg("--patrons")
        .arg(samples("patrons.jsonl"))
        .args(["--as-of", "2026-11-28"])
        .output()
        .unwrap());
    assert!(
        out.contains("── P0002 · email · en · E1002:due-soon:email ──"),
        "{out}"
    );
    assert!(
        out.contains("6 messages composed by notices from 6 events (0 skipped)"),
        "{out}"
    );
}

#[test]
fn filter_shows_only_what_the_role_may_see() {
    let out = ok(lectern()
        .args([
            "filter",
            "--plugin",
            plugins::BASELINE_PRIVACY,
            "--purpose",
            "staff-view",
            "--role",
            "analyst",
            "--input",
        ])
        .arg(samples("patrons.jsonl"))
        .output()
        .unwrap());
    assert!(
        !out.contains("Wang Li") && !out.contains("@univ.example.edu"),
        "{out}"
    );
    assert!(
        out.contains("fields passed: card-number, age-band, category"),
        "{out}"
    );
}

#[test]
fn bad_input_names_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("patrons.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"A\"}\n{\"id\":\"B\",\"activity\":{\"loans_30d\":-1}}\n",
    )
    .unwrap();
    let out = lectern()
        .args(["score", "--plugin", plugins::ENGAGEMENT, "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("patrons.jsonl:2: field `activity.loans_30d`: invalid value: integer `-1`"),
        "{err}"
    );

    std::fs::write(&input, "{\"id\":\"A\"}\n{\"id\":\"A\"}\n").unwrap();
    let out = lectern()
        .args(["score", "--plugin", plugins::ENGAGEMENT, "--input"])
        .arg(&input)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("record 2: field `id`: patron `A` appears twice"),
        "{err}"
    );
}

#[test]
fn inspect_describes_a_plugin_and_a_bare_component() {
    let out = ok(lectern()
        .args(["plugin", "inspect", plugins::ENGAGEMENT])
        .output()
        .unwrap());
    assert!(out.contains("plugin     engagement 0.1.0"), "{out}");
    assert!(
        out.contains("world      scorer (lectern:crm@0.2.0)"),
        "{out}"
    );
    assert!(
        out.contains("fields     category, enrolled-on, attributes, activity, interests"),
        "{out}"
    );
    assert!(
        out.contains("limits     deadline 5000 ms, memory 128 MiB"),
        "{out}"
    );
    assert!(
        out.contains("exports    lectern:crm/scoring@0.2.0"),
        "{out}"
    );

    let wasm = PathBuf::from(plugins::NOTICES).join("notices.wasm");
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("notices.wasm");
    std::fs::copy(wasm, &bare).unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(lectern()
        .args(["plugin", "inspect", "--json"])
        .arg(&bare)
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(json["world"], "messenger");
    assert!(
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "lectern:crm/host@0.2.0")
    );
}

#[test]
fn import_folio_then_score_the_store_then_erase_a_patron() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let folio = repo().join("tests/fixtures/folio");
    let mut import = lectern();
    import
        .arg("--db")
        .arg(&db)
        .args(["import", "--format", "folio"]);
    for sub in ["groups", "users", "loans"] {
        for e in std::fs::read_dir(folio.join(sub)).unwrap() {
            import.arg(e.unwrap().path());
        }
    }
    let out = ok(import.output().unwrap());
    assert!(out.contains("imported 308, updated 0, skipped 0"), "{out}");

    let out = ok(lectern()
        .arg("--db")
        .arg(&db)
        .args([
            "score",
            "--plugin",
            plugins::ENGAGEMENT,
            "--as-of",
            "2017-03-20",
            "--json",
        ])
        .output()
        .unwrap());
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["runs"][0]["scores"].as_array().unwrap().len(), 303);

    let penelope = "d0fc4228-2e42-49b2-a5b0-9df48897e8c0";
    let out = ok(lectern()
        .arg("--db")
        .arg(&db)
        .args(["patron", "erase", penelope])
        .output()
        .unwrap());
    assert_eq!(
        out.trim(),
        format!(
            "erased patron {penelope}: 1 loans, 0 holds, 0 attributes, 1 scores, 0 messages, 0 delivered files"
        )
    );
    let again = lectern()
        .arg("--db")
        .arg(&db)
        .args(["patron", "erase", penelope])
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn reads_are_audited_keys_rotate_and_a_patron_can_take_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let run = |args: &[&str]| ok(lectern().arg("--db").arg(&db).args(args).output().unwrap());
    let users = repo().join("tests/fixtures/folio/users");
    let mut import = lectern();
    import
        .arg("--db")
        .arg(&db)
        .args(["import", "--format", "folio"]);
    import.args(
        std::fs::read_dir(&users)
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    ok(import.output().unwrap());

    let score = [
        "score",
        "--plugin",
        plugins::ENGAGEMENT,
        "--policy",
        plugins::BASELINE_PRIVACY,
        "--json",
    ];
    let first: serde_json::Value = serde_json::from_str(&run(&score)).unwrap();
    assert!(
        dir.path().join("lectern.key").is_file(),
        "the keyring is made beside the store"
    );
    assert!(run(&["key", "rotate"]).contains("pseudonym key 2 is now current"));
    let second: serde_json::Value = serde_json::from_str(&run(&score)).unwrap();
    assert_eq!(
        first["runs"][0]["scores"], second["runs"][0]["scores"],
        "rotation changes tokens, not results"
    );

    assert_eq!(
        run(&["audit", "verify"]).trim(),
        "the audit log is intact: 3 entries",
        "two reads, and the rotation between them"
    );
    let penelope = "d0fc4228-2e42-49b2-a5b0-9df48897e8c0";
    let export: serde_json::Value =
        serde_json::from_str(&run(&["patron", "export", penelope])).unwrap();
    assert_eq!(export["patron"]["name"], "Penelope Feil");
    let reads = export["reads_of_their_data"].as_array().unwrap();
    assert_eq!(
        reads.len(),
        3,
        "one read under each key, and the export: {reads:?}"
    );
    assert!(
        reads[..2]
            .iter()
            .all(|r| r["actor"] == "engagement" && r["purpose"] == "scoring")
    );
    assert_eq!(
        (&reads[2]["actor"], &reads[2]["purpose"]),
        (
            &serde_json::json!("administrator"),
            &serde_json::json!("patron-export")
        )
    );
}

#[test]
fn scoring_the_store_stores_each_run_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let run = |args: &[&str]| lectern().arg("--db").arg(&db).args(args).output().unwrap();
    let mut import = lectern();
    import
        .arg("--db")
        .arg(&db)
        .args(["import", "--format", "csv"]);
    import.args(
        ["patrons.csv", "loans.csv", "use.csv"].map(|f| repo().join("tests/fixtures/csv").join(f)),
    );
    ok(import.output().unwrap());

    let out = ok(run(&[
        "score",
        "--plugin",
        plugins::KEY_READERS,
        "--plugin",
        plugins::CHURN_RISK,
        "--as-of",
        "2026-11-28",
    ]));
    assert!(
        out.contains("2 patrons scored by key-readers 0.1.0, stored as run 1"),
        "{out}"
    );
    assert!(
        out.contains("2 patrons scored by churn-risk 0.1.0, stored as run 2"),
        "{out}"
    );

    // A scorer that panics leaves no run behind and does not stop the
    // scorer after it; the command still fails, for the scheduler.
    let panics = lectern_tests::testkit("panic");
    let failed = run(&[
        "score",
        "--plugin",
        panics.path().to_str().unwrap(),
        "--plugin",
        plugins::KEY_READERS,
        "--as-of",
        "2026-11-28",
    ]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("plugin `testkit` 0.1.0 failed: panicked"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 scorers failed"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&failed.stdout)
            .contains("2 patrons scored by key-readers 0.1.0, stored as run 3"),
        "the scorer after the failing one still ran"
    );

    let export: serde_json::Value = serde_json::from_str(&ok(run(&[
        "patron",
        "export",
        "R1",
        "--as-of",
        "2026-11-28",
    ])))
    .unwrap();
    let runs: Vec<(i64, &str)> = export["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["run"].as_i64().unwrap(), s["plugin"].as_str().unwrap()))
        .collect();
    assert_eq!(
        runs,
        [(1, "key-readers"), (2, "churn-risk"), (3, "key-readers")]
    );

    let erased = ok(run(&["patron", "erase", "R1"]));
    assert!(erased.contains(" 3 scores,"), "{erased}");
}

#[test]
fn every_read_of_patron_data_from_the_command_line_is_audited_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let run = |args: &[&str]| ok(lectern().arg("--db").arg(&db).args(args).output().unwrap());
    let mut import = lectern();
    import
        .arg("--db")
        .arg(&db)
        .args(["import", "--format", "csv"]);
    import.args(
        ["patrons.csv", "loans.csv", "use.csv"].map(|f| repo().join("tests/fixtures/csv").join(f)),
    );
    ok(import.output().unwrap());
    run(&[
        "score",
        "--plugin",
        plugins::ENGAGEMENT,
        "--as-of",
        "2026-11-28",
    ]);
    // R1's loan is due on 2026-12-08: a due-soon notice, queued.
    run(&[
        "notify",
        "--plugin",
        plugins::NOTICES,
        "--now",
        "2026-12-06T02:00:00Z",
    ]);
    let log = || -> Vec<(String, String, String)> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT actor_kind, actor, purpose FROM audit_log ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let input = samples("patrons.jsonl");
    for (args, actor, purpose) in [
        (
            vec!["outbox", "--list", "5"],
            "circulation-desk",
            "staff-view",
        ),
        (
            vec!["report", "segments", "--scorer", "engagement", "--k", "5"],
            "analyst",
            "analytics",
        ),
        (
            vec![
                "filter",
                "--purpose",
                "staff-view",
                "--role",
                "analyst",
                "--input",
                input.to_str().unwrap(),
            ],
            "analyst",
            "staff-view",
        ),
        (
            vec!["patron", "export", "R1"],
            "administrator",
            "patron-export",
        ),
        (vec!["patron", "erase", "R1"], "administrator", "staff-view"),
    ] {
        let before = log();
        run(&args);
        let after = log();
        // baseline-privacy refines each record for the analyst: its own read
        // of their consents comes first, audited as the plugin's.
        let filter_reads = usize::from(args[0] == "filter");
        assert_eq!(
            after.len(),
            before.len() + 1 + filter_reads,
            "{args:?} wrote its entries"
        );
        if filter_reads == 1 {
            assert_eq!(
                after[before.len()],
                (
                    "plugin".to_string(),
                    "baseline-privacy".to_string(),
                    "staff-view".to_string()
                )
            );
        }
        assert_eq!(
            after.last().unwrap(),
            &("staff".to_string(), actor.to_string(), purpose.to_string()),
            "{args:?}"
        );
    }
    assert!(run(&["audit", "verify"]).contains("the audit log is intact"));
}

#[test]
fn cache_prune_shrinks_the_cache_to_the_size_asked() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut c = lectern_command();
        c.args(["--cache-dir", dir]).args(args);
        c.output().unwrap()
    };
    ok(run(&["plugin", "inspect", plugins::ENGAGEMENT]));
    ok(run(&["plugin", "inspect", plugins::TESTKIT]));
    let entries = || {
        std::fs::read_dir(cache.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "cwasm")
            })
            .count()
    };
    assert_eq!(entries(), 2);
    // Under the cap, nothing goes.
    let kept: serde_json::Value =
        serde_json::from_str(&ok(run(&["--json", "cache", "prune"]))).unwrap();
    assert_eq!(
        (kept["removed"].as_u64(), kept["kept"].as_u64()),
        (Some(0), Some(2))
    );
    let pruned: serde_json::Value =
        serde_json::from_str(&ok(run(&["--json", "cache", "prune", "--max-mib", "0"]))).unwrap();
    assert_eq!(pruned["kept"], 0, "{pruned}");
    assert!(pruned["freed_bytes"].as_u64().unwrap() > 0, "{pruned}");
    assert_eq!(entries(), 0);
    // A plugin whose entry went is compiled again.
    ok(run(&["plugin", "inspect", plugins::ENGAGEMENT]));
    assert_eq!(entries(), 1);
    // Without a cache, there is nothing to prune, and it says so.
    let out = lectern().args(["cache", "prune"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no cache to prune"),
        "{out:?}"
    );
}

#[test]
fn verbose_shows_plugin_log_lines_without_the_runtime_s_internals() {
    // This test is about which lines show, not about time: a deadline far
    // above what ten thousand lines take on a loaded machine.
    let chatty = lectern_tests::plugin_copy(plugins::TESTKIT, |m| {
        m.replace("mode = \"echo\"", "mode = \"chatty\"")
            .replace("deadline-ms = 500", "deadline-ms = 30000")
    });
    // One patron, ten thousand lines of each kind.
    let one = chatty.path().join("one.jsonl");
    let all = std::fs::read_to_string(samples("patrons.jsonl")).unwrap();
    std::fs::write(&one, all.lines().next().unwrap()).unwrap();
    let run = |verbosity: &[&str]| {
        let mut c = lectern();
        c.args(verbosity).args([
            "score",
            "--plugin",
            chatty.path().to_str().unwrap(),
            "--policy",
            plugins::BASELINE_PRIVACY,
            "--input",
        ]);
        c.arg(&one);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let quiet = run(&[]);
    assert!(!quiet.contains("log line 0"), "{quiet}");
    for v in ["-v", "-vv"] {
        let said = run(&[v]);
        assert!(said.contains("log line 0"), "{v}: {said}");
        assert!(said.contains("stdout line 0"), "{v}: {said}");
        // Compiling (there is no cache here) tells nothing of cranelift.
        assert!(
            !said.contains("cranelift") && !said.contains("wasmtime"),
            "{v}: {}",
            &said[..said.len().min(2000)]
        );
    }
}

#[test]
fn plugin_test_runs_fixtures_reports_costs_and_fails_on_a_mismatch() {
    // The engagement plugin's own fixtures, as its author keeps them.
    let fixtures = repo().join("plugins/engagement/fixtures");
    let test = |plugin: &str, fixtures: &std::path::Path, extra: &[&str]| {
        let mut c = lectern();
        c.args([
            "--json",
            "plugin",
            "test",
            plugin,
            "--policy",
            plugins::BASELINE_PRIVACY,
        ]);
        c.arg("--fixtures").arg(fixtures).args(extra);
        c.output().unwrap()
    };
    let report: serde_json::Value =
        serde_json::from_str(&ok(test(plugins::ENGAGEMENT, &fixtures, &[]))).unwrap();
    let case = &report["cases"][0];
    assert_eq!(case["outcome"], "passed", "{report}");
    assert!(case["fuel_used"].as_u64().unwrap() > 1000, "{case}");
    assert!(
        case["peak_memory_bytes"].as_u64().unwrap() >= 64 << 10,
        "{case}"
    );
    assert!(case["output_bytes"].as_u64().unwrap() > 100, "{case}");

    // An expected file that no longer holds: exit 1, and where it differs.
    let copy = tempfile::tempdir().unwrap();
    for f in ["samples.patrons.jsonl", "samples.expected.json"] {
        std::fs::copy(fixtures.join(f), copy.path().join(f)).unwrap();
    }
    let expected = copy.path().join("samples.expected.json");
    let text = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(&expected, text.replacen("\"key-reader\"", "\"regular\"", 1)).unwrap();
    let out = test(plugins::ENGAGEMENT, copy.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cases"][0]["outcome"], "mismatch");
    assert!(
        report["cases"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("expected \"regular\", got \"key-reader\""),
        "{report}"
    );
    // --bless writes what the plugin gives now, and then it passes.
    ok(test(plugins::ENGAGEMENT, copy.path(), &["--bless"]));
    assert_eq!(std::fs::read_to_string(&expected).unwrap(), text);

    // A plugin that fails, and one asking for a field the policy withholds.
    let failing = lectern_tests::plugin_copy(plugins::TESTKIT, |m| {
        m.replace("mode = \"echo\"", "mode = \"error\"").replace(
            r#"fields = ["category", "activity"]"#,
            r#"fields = ["category", "email"]"#,
        )
    });
    let out = test(failing.path().to_str().unwrap(), copy.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cases"][0]["outcome"], "failed", "{report}");
    assert!(
        report["cases"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("testkit failed on purpose"),
        "{report}"
    );
    assert_eq!(report["withheld_fields"], serde_json::json!(["email"]));
}

#[test]
fn a_messenger_that_cannot_name_or_reach_readers_is_warned_about() {
    let mute = lectern_tests::plugin_copy(plugins::NOTICES, |m| {
        m.replace(
            r#"fields = ["name", "email", "phone", "locale", "channels"]"#,
            r#"fields = ["locale"]"#,
        )
    });
    let out = ok(lectern()
        .args(["--json", "plugin", "inspect", mute.path().to_str().unwrap()])
        .output()
        .unwrap());
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    let warnings: Vec<&str> = info["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("cannot address readers by name"));
    assert!(warnings[1].contains("only print can reach readers"));
    // The bundled messenger asks for both, and is not warned about.
    let out = ok(lectern()
        .args(["--json", "plugin", "inspect", plugins::NOTICES])
        .output()
        .unwrap());
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["warnings"], serde_json::json!([]));
}
