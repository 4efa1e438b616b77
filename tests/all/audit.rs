//! The audit log and the patron's rights: every read is chained, any edit
//! or deletion shows, the log holds no personal value, and a patron's
//! export is complete.

use std::sync::Arc;

use chrono::NaiveDate;
use lectern::{Format, ImportOptions, Pipeline, Pseudonyms, SqliteAudit, SqliteStore, Store};
use lectern_tests::{host, plugins, repo};

const KEY: &[u8] = b"an audit key of thirty-two bytes";
const PENELOPE: &str = "d0fc4228-2e42-49b2-a5b0-9df48897e8c0";

/// A store with FOLIO's samples, scored three times in batches of 100 with
/// auditing on: three entries per run (303 patrons).
fn audited_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let files: Vec<_> = ["groups", "users", "loans"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join("tests/fixtures/folio").join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    lectern::import(
        &mut store,
        Format::Folio,
        &files,
        ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap();

    let (host, _) = host();
    let engagement = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    let pipeline = Pipeline::new()
        .as_of(NaiveDate::from_ymd_opt(2017, 3, 20).unwrap())
        .with_pseudonyms(Pseudonyms::new(KEY))
        .with_audit(Arc::new(SqliteAudit::open(&db, KEY).unwrap()))
        .batch_size(100);
    let patrons = store
        .patrons(NaiveDate::from_ymd_opt(2017, 3, 20).unwrap())
        .unwrap();
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
    SqliteStore::open(db)
        .unwrap()
        .verify_audit(KEY)
        .unwrap()
        .broken_at
}

#[test]
fn every_read_is_chained_and_the_chain_holds() {
    let (_dir, db) = audited_store();
    let check = SqliteStore::open(&db).unwrap().verify_audit(KEY).unwrap();
    assert_eq!(
        (check.entries, check.broken_at),
        (12, None),
        "4 batches × 3 runs"
    );
    // The wrong key cannot vouch for it.
    assert_eq!(
        SqliteStore::open(&db)
            .unwrap()
            .verify_audit(b"another key")
            .unwrap()
            .broken_at,
        Some(1)
    );
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
        log.contains(&Pseudonyms::new(KEY).patron_token(PENELOPE)),
        "it names patrons by token"
    );
}

#[test]
fn a_patrons_export_is_complete_and_erasure_removes_it() {
    let (_dir, db) = audited_store();
    let mut store = SqliteStore::open(&db).unwrap();
    let token = Pseudonyms::new(KEY).patron_token(PENELOPE);
    let as_of = NaiveDate::from_ymd_opt(2017, 3, 20).unwrap();
    let export = store
        .export_patron(PENELOPE, std::slice::from_ref(&token), as_of)
        .unwrap()
        .unwrap();
    assert_eq!(export["patron"]["name"], "Penelope Feil");
    assert_eq!(export["patron"]["birth_date"], "2000-09-26");
    assert_eq!(export["loans"].as_array().unwrap().len(), 1);
    assert_eq!(export["derived"]["summary"]["activity"]["loans_30d"], 1);
    let reads = export["reads_of_their_data"].as_array().unwrap();
    assert_eq!(reads.len(), 3, "one read per scoring run");
    assert_eq!(
        (reads[0]["actor"].as_str(), reads[0]["purpose"].as_str()),
        (Some("engagement"), Some("scoring"))
    );
    // Every column of every table the patron has a row in is in the export.
    let text = export.to_string();
    for column in [
        "card_number",
        "email",
        "phone",
        "enrolled_on",
        "expires_on",
        "loaned_on",
        "due_on",
    ] {
        assert!(text.contains(column), "{column} is missing from the export");
    }

    store.erase_patron(PENELOPE).unwrap();
    assert!(
        store
            .export_patron(PENELOPE, std::slice::from_ref(&token), as_of)
            .unwrap()
            .is_none()
    );
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
