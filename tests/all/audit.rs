//! The audit log and the patron's rights: every read is chained, any edit
//! or deletion shows, the log holds no personal value, and a patron's
//! export is complete.

use chrono::NaiveDate;
use lectern::{ErrorKind, Format, ImportOptions, Keyring, Lectern, SqliteStore};
use lectern_tests::{TEST_KEY, config, keyring, library_over, plugins, repo, shared_host};

const PENELOPE: &str = "d0fc4228-2e42-49b2-a5b0-9df48897e8c0";

fn open(db: &std::path::Path) -> Lectern {
    library_over(SqliteStore::open(db).unwrap())
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2017, 3, 20).unwrap()
}

/// A store with FOLIO's samples, scored three times in batches of 100 with
/// auditing on: three entries per run (303 patrons).
fn audited_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let mut library = open(&db);
    let files: Vec<_> = ["groups", "users", "loans"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join("tests/fixtures/folio").join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    library
        .import(Format::Folio, &files, ImportOptions::default(), &mut |_| {})
        .unwrap();

    let engagement = shared_host().load_scorer(plugins::ENGAGEMENT).unwrap();
    let pipeline = library.pipeline(as_of()).batch_size(100);
    let patrons = library.store().patrons(as_of()).unwrap();
    for _ in 0..3 {
        pipeline.score(&engagement, &patrons).unwrap();
    }
    (dir, db)
}

fn tamper(db: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn broken_at(db: &std::path::Path) -> Option<u64> {
    open(db).verify_audit().unwrap().broken_at
}

#[test]
fn every_read_is_chained_and_the_chain_holds() {
    let (_dir, db) = audited_store();
    let check = open(&db).verify_audit().unwrap();
    assert_eq!(
        (check.entries, check.broken_at),
        (12, None),
        "4 batches × 3 runs"
    );
    // The store records its keyring's fingerprint: another keyring is
    // refused before it reads or verifies anything.
    let other = Keyring::from_keys(b"another key, also long enough", TEST_KEY).unwrap();
    let under_other = Lectern::open(
        shared_host(),
        SqliteStore::open(&db).unwrap(),
        other.clone(),
        config(),
    );
    let err = under_other.err().expect("another keyring is refused");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains(&other.fingerprint()), "{err}");
    // That the chain cannot be vouched for under another key is the
    // conformance suite's check `audit_chain_verifies`.
}

#[test]
fn any_edit_insertion_or_deletion_is_detected() {
    for (sql, at) in [
        (
            "UPDATE audit_log SET fields = 'activity' WHERE seq = 5",
            Some(5),
        ),
        (
            "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1",
            Some(1),
        ),
        ("DELETE FROM audit_log WHERE seq = 7", Some(7)),
        ("DELETE FROM audit_log WHERE seq = 12", Some(12)),
        (
            "INSERT INTO audit_log (seq, at, actor_kind, actor, purpose, fields, patrons, link) \
             SELECT 13, at, actor_kind, actor, purpose, fields, patrons, link FROM audit_log WHERE seq = 12",
            Some(13),
        ),
    ] {
        let (_dir, db) = audited_store();
        tamper(&db, sql);
        assert_eq!(broken_at(&db), at, "{sql}");
    }
}

#[test]
fn the_log_holds_references_never_personal_values() {
    let (_dir, db) = audited_store();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let log: String = conn
        .query_row(
            "SELECT group_concat(actor || fields || patrons, ' ') FROM audit_log",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT id, name, email, birth_date FROM patrons")
        .unwrap();
    let values: Vec<Option<String>> = stmt
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
        .unwrap()
        .flat_map(|r| r.unwrap())
        .collect();
    for v in values.into_iter().flatten() {
        assert!(!log.contains(&v), "the audit log holds `{v}`");
    }
    assert!(
        log.contains(&keyring().pseudonyms().patron_token(PENELOPE)),
        "it names patrons by token"
    );
}

#[test]
fn a_patrons_export_is_complete_and_audited_and_erasure_removes_it() {
    let (_dir, db) = audited_store();
    let mut library = open(&db);
    let before = library.verify_audit().unwrap().entries;
    let export = library
        .export_patron(PENELOPE, as_of(), "privacy-officer")
        .unwrap();
    // The export itself is the first entry it lists.
    assert_eq!(library.verify_audit().unwrap().entries, before + 1);
    let export = serde_json::to_value(&export).unwrap();
    assert_eq!(export["patron"]["name"], "Penelope Feil");
    assert_eq!(export["patron"]["birth_date"], "2000-09-26");
    assert_eq!(export["patron"]["activity"]["loans_30d"], 1);
    assert_eq!(export["loans"].as_array().unwrap().len(), 1);
    assert_eq!(export["loans"][0]["loaned_on"], "2017-03-03");
    for section in [
        "preferences",
        "holds",
        "uses",
        "scores",
        "messages",
        "source",
        "active",
    ] {
        assert!(
            export.get(section).is_some(),
            "{section} is missing from the export"
        );
    }
    let reads = export["reads_of_their_data"].as_array().unwrap();
    assert_eq!(reads.len(), 4, "one read per scoring run, and the export");
    assert_eq!(
        (reads[0]["actor"].as_str(), reads[0]["purpose"].as_str()),
        (Some("engagement"), Some("scoring"))
    );
    assert_eq!(
        (reads[3]["actor"].as_str(), reads[3]["purpose"].as_str()),
        (Some("privacy-officer"), Some("patron-export"))
    );

    library.erase_patron(PENELOPE, "privacy-officer").unwrap();
    assert_eq!(
        library.verify_audit().unwrap().entries,
        before + 2,
        "the erasure is audited"
    );
    let gone = library
        .export_patron(PENELOPE, as_of(), "privacy-officer")
        .unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
    assert!(library.store().traces_of(PENELOPE).unwrap().is_empty());
    let store = SqliteStore::open(&db).unwrap();
    for table in store.tables().unwrap() {
        assert_eq!(
            store.rows_mentioning(&table, PENELOPE).unwrap(),
            0,
            "{table}"
        );
    }
    // Erasure does not break the chain: the log names her by a token that no
    // longer leads anywhere.
    assert_eq!(broken_at(&db), None);
}
