//! Real exports are damaged: zero dates, byte-order marks, files cut short,
//! Latin-1 bytes, huge fields, and keys and logs a library must be able to
//! trust. Each case starts from the ILS's own sample shapes in
//! `tests/fixtures/` and damages a copy the way real files are damaged.

use std::path::{Path, PathBuf};
use std::process::Command;

use lectern::{Encoding, Format, ImportOptions, ImportReport, SqliteStore, Store};
use lectern_tests::{koha_fixture as koha, lectern_command, write_file as write};

fn import(format: Format, files: &[PathBuf], encoding: Encoding) -> (SqliteStore, ImportReport) {
    let mut store = SqliteStore::temporary().unwrap();
    let options = ImportOptions {
        strict: false,
        encoding,
        ..ImportOptions::default()
    };
    let keys = lectern::Pseudonyms::ephemeral();
    let report = lectern::import(&mut store, format, files, options, &keys, &mut |_| {}).unwrap();
    (store, report)
}

#[test]
fn a_zero_date_is_read_as_unknown_and_the_record_and_its_loans_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    // Koha's database writes an unknown date as zeros; its dumps are full
    // of them.
    let patrons = koha("patrons.json")
        .replace("\"1975-05-02\"", "\"0000-00-00\"")
        .replace("\"2030-01-15\"", "\"0000-00-00 00:00:00\"");
    let files = [
        write(dir.path(), "patrons.json", patrons),
        write(dir.path(), "checkouts.json", koha("checkouts.json")),
    ];
    let (store, report) = import(Format::Koha, &files, Encoding::Utf8);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.impossible_dates, 2);
    let patrons = store.patrons("2026-11-28".parse().unwrap()).unwrap();
    let ada = patrons.iter().find(|p| p.id == "51").expect("Ada is kept");
    assert_eq!(ada.birth_date, None);
    assert!(ada.activity.unwrap().loans_365d > 0, "her loans are kept");
}

#[test]
fn a_byte_order_mark_is_accepted_in_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(
        dir.path(),
        "patrons.json",
        format!("\u{feff}{}", koha("patrons.json")),
    );
    let (_, report) = import(Format::Koha, &[json], Encoding::Utf8);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.written.imported, 3);
    let csv = write(
        dir.path(),
        "patrons.csv",
        format!("\u{feff}{}", koha("patrons.csv")),
    );
    let (_, report) = import(Format::KohaCsv, &[csv], Encoding::Utf8);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[test]
fn a_file_cut_short_says_where_it_broke_and_how_much_came_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = koha("patrons.json");
    // Cut inside the third record.
    let cut = text.find("\"patron_id\": 53").unwrap() + 20;
    let file = write(dir.path(), "patrons.json", &text[..cut]);
    let (_, report) = import(Format::Koha, &[file], Encoding::Utf8);
    assert_eq!(report.written.imported, 2);
    assert_eq!(report.skipped.len(), 1);
    let why = report.skipped[0].to_string();
    assert!(why.contains("damaged after record 2"), "{why}");
    assert!(why.contains("the 2 records before it were read"), "{why}");
}

#[test]
fn latin1_is_explained_and_read_with_its_encoding() {
    let dir = tempfile::tempdir().unwrap();
    // Otto Schulz becomes Otto Schülz, written in ISO-8859-1.
    let mut bytes = koha("patrons.csv").into_bytes();
    let at = bytes.windows(6).position(|w| w == b"Schulz").unwrap() + 3;
    bytes[at] = 0xFC;
    let file = write(dir.path(), "patrons.csv", &bytes);
    let (_, report) = import(Format::KohaCsv, std::slice::from_ref(&file), Encoding::Utf8);
    let why = report.skipped[0].to_string();
    assert!(why.contains("--encoding latin1"), "{why}");
    assert!(why.contains("`surname`"), "the column is named: {why}");
    let (store, report) = import(Format::KohaCsv, &[file], Encoding::Latin1);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let patrons = store.patrons("2026-11-28".parse().unwrap()).unwrap();
    assert!(
        patrons
            .iter()
            .any(|p| p.name.as_deref() == Some("Otto Schülz")),
        "{patrons:?}"
    );
}

#[test]
fn a_huge_field_is_skipped_with_an_excerpt_never_the_whole_value() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "X".repeat(5_000_000);
    let patrons = koha("patrons.json").replace("\"Okonkwo\"", &format!("\"{huge}\""));
    let file = write(dir.path(), "patrons.json", patrons);
    let (_, report) = import(Format::Koha, &[file], Encoding::Utf8);
    assert_eq!(report.written.imported, 2);
    let why = report.skipped[0].to_string();
    assert!(why.contains("over the cap"), "{why}");
    assert!(
        why.len() < 400,
        "the error quotes an excerpt: {} bytes",
        why.len()
    );
}

#[test]
fn a_line_break_in_an_imported_name_never_reaches_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,name,email\nP1,\"Ada\r\nBcc: everyone@example.org\",ada@example.org\n";
    let (store, report) = import(
        Format::Csv,
        &[write(dir.path(), "patrons.csv", csv)],
        Encoding::Utf8,
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let ada = &store.patrons("2026-11-28".parse().unwrap()).unwrap()[0];
    let name = ada.name.as_deref().unwrap();
    assert!(!name.chars().any(char::is_control), "{name:?}");
    assert!(name.starts_with("Ada"), "{name:?}");
}

fn cli(db: &Path) -> Command {
    let mut c = lectern_command();
    c.arg("--no-cache").arg("--db").arg(db);
    c
}

#[test]
fn import_exit_codes_tell_a_scheduler_clean_partial_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let clean = write(dir.path(), "clean.json", koha("patrons.json"));
    let code = |file: &Path| {
        cli(&db)
            .args(["import", "--format", "koha"])
            .arg(file)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(code(&clean), Some(0));
    let text = koha("patrons.json");
    let cut = text.find("\"patron_id\": 53").unwrap() + 20;
    let partial = write(dir.path(), "partial.json", &text[..cut]);
    assert_eq!(code(&partial), Some(3), "completed with a record skipped");
    let nothing = write(dir.path(), "nothing.json", "{\"patron_id\": ");
    assert_eq!(code(&nothing), Some(65), "nothing was imported");
}

#[test]
fn a_store_without_its_keyring_or_with_another_is_refused_never_rekeyed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let patrons = write(dir.path(), "patrons.json", koha("patrons.json"));
    let run = |args: &[&str]| cli(&db).args(args).output().unwrap();
    let import = |c: &mut Command| {
        c.args(["import", "--format", "koha"])
            .arg(&patrons)
            .output()
    };
    assert!(import(&mut cli(&db)).unwrap().status.success());
    let key = dir.path().join("lectern.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in [&db, &key] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is its owner's alone", file.display());
        }
    }
    let saved = std::fs::read(&key).unwrap();

    // Lost: an error that says what to do, and no new key.
    std::fs::remove_file(&key).unwrap();
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("restore it from your backup"));
    assert!(!key.exists(), "no new key was made");

    // Another library's keyring: refused by its fingerprint.
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("lectern.key");
    lectern::Keyring::load_or_create(&other_key).unwrap();
    let out = cli(&db)
        .arg("--key-file")
        .arg(&other_key)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was made with the keyring SHA256:"));

    // Its own, put back: all is well again.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&key).unwrap(), &saved).unwrap();
    assert!(run(&["audit", "verify"]).status.success());
}

/// A store made by `lectern import` of Koha's sample patrons, with its
/// keyring and audit head beside it.
fn koha_library() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let patrons = write(dir.path(), "patrons.json", koha("patrons.json"));
    let imported = cli(&db)
        .args(["import", "--format", "koha"])
        .arg(&patrons)
        .status()
        .unwrap();
    assert!(imported.success());
    (dir, db)
}

#[test]
fn an_audit_log_deleted_whole_or_rolled_back_is_found() {
    let (_dir, db) = koha_library();
    let export = |id: &str| {
        assert!(
            cli(&db)
                .args(["patron", "export", id, "--role", "privacy-officer"])
                .output()
                .unwrap()
                .status
                .success()
        )
    };
    export("51");
    let verify = || {
        cli(&db)
            .args(["--json", "audit", "verify"])
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["head"], json["entries"], "{json}");

    // Keep a copy of the store, read on, then put the copy back.
    let copy = std::fs::read(&db).unwrap();
    export("52");
    std::fs::write(&db, &copy).unwrap();
    let out = verify();
    assert!(!out.status.success(), "a rolled-back store is found");
    assert!(String::from_utf8_lossy(&out.stderr).contains("older copy"));

    // Delete the log and its anchor whole.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DELETE FROM audit_log; DELETE FROM audit_anchor;")
        .unwrap();
    let out = verify();
    assert!(!out.status.success(), "a deleted log is found");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the log has 0 entries"));
}

#[test]
fn retention_cannot_run_in_the_future_or_empty_the_audit_log() {
    let (_dir, db) = koha_library();
    for args in [
        &["retention", "apply", "--as-of", "2100-01-01"][..],
        &["retention", "apply", "--audit-days", "0"][..],
    ] {
        let out = cli(&db).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(65), "{args:?}");
    }
}
