//! The embedded store and the FOLIO importer, against FOLIO's own sample
//! data (tests/fixtures/folio, Apache-2.0, see its NOTICE) and hand-made
//! damaged files.

use std::path::PathBuf;

use chrono::NaiveDate;
use lectern::{
    Batch, ImportOptions, LoanRecord, Patron, PatronRecord, SqliteStore, Store, import_folio,
};
use lectern_tests::repo;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/folio").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn all_folio() -> Vec<PathBuf> {
    ["groups", "users", "loans"]
        .iter()
        .flat_map(|d| fixtures(d))
        .collect()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn folio_samples_import_whole_and_keep_expired_and_inactive_users() {
    let mut store = SqliteStore::in_memory().unwrap();
    let report = import_folio(&mut store, &all_folio(), ImportOptions::default()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.written.imported, 303 + 5);
    assert_eq!(store.count("patrons").unwrap(), 303);
    assert_eq!(store.count("loans").unwrap(), 5);

    let patrons = store.patrons(day("2017-03-20")).unwrap();
    // User002 (Penelope Feil) expired in 2020 and is still a patron.
    let penelope = patrons
        .iter()
        .find(|p| p.id == "d0fc4228-2e42-49b2-a5b0-9df48897e8c0")
        .unwrap();
    assert_eq!(penelope.name.as_deref(), Some("Penelope Feil"));
    assert_eq!(penelope.expires_on, Some(day("2020-04-08")));
    assert_eq!(penelope.birth_date, Some(day("2000-09-26")));
    // Her group UUID became the group's code.
    assert!(
        patrons
            .iter()
            .any(|p| p.category.as_deref() == Some("faculty"))
    );
    // nod-item.json is her loan, borrowed on 2017-03-03.
    let a = penelope.activity.unwrap();
    assert_eq!((a.loans_30d, a.days_since_last_activity), (1, Some(17)));
}

#[test]
fn importing_again_updates_and_never_duplicates() {
    let mut store = SqliteStore::in_memory().unwrap();
    import_folio(&mut store, &all_folio(), ImportOptions::default()).unwrap();
    let again = import_folio(&mut store, &all_folio(), ImportOptions::default()).unwrap();
    assert_eq!((again.written.imported, again.written.updated), (0, 308));
    assert_eq!(store.count("patrons").unwrap(), 303);
    assert_eq!(store.count("loans").unwrap(), 5);
}

#[test]
fn bad_records_are_skipped_with_file_record_and_field_or_stop_a_strict_import() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let files = vec![
        write(
            "users.json",
            r#"{"users": [
                {"id": "u1", "username": "a", "personal": {"lastName": "A", "dateOfBirth": "2001-02-30"}},
                {"id": "u2", "username": "b"},
                {"username": "c"},
                {"id": "u2", "username": "b again"}
            ]}"#,
        ),
        write(
            "loan.json",
            r#"{"id": "l1", "userId": "nobody", "loanDate": "2020-01-01T10:00:00Z"}"#,
        ),
        write("broken.json", "{\"users\": [ {\"id\": "),
    ];
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();

    let mut strict = SqliteStore::in_memory().unwrap();
    let err = import_folio(&mut strict, &files, ImportOptions { strict: true }).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("5 bad records; nothing was written (--strict)"),
        "{err}"
    );
    assert_eq!(strict.count("patrons").unwrap(), 0);

    let mut store = SqliteStore::in_memory().unwrap();
    let report = import_folio(&mut store, &files, ImportOptions::default()).unwrap();
    let skipped: Vec<(String, usize, Option<&str>)> = report
        .skipped
        .iter()
        .map(|s| (name(&s.file), s.record, s.field.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("broken.json".to_string(), 1, None),
            ("users.json".to_string(), 1, Some("personal.dateOfBirth")),
            ("users.json".to_string(), 3, Some("id")),
            ("users.json".to_string(), 4, Some("id")),
            ("loan.json".to_string(), 1, Some("userId")),
        ]
    );
    assert!(
        report.skipped[1]
            .reason
            .contains("`2001-02-30` is not a real date")
    );
    assert!(report.skipped[3].reason.contains("duplicate id `u2`"));
    assert_eq!(report.written.imported, 1, "only u2 was good");
    assert_eq!(store.count("patrons").unwrap(), 1);
}

#[test]
fn activity_summaries_count_by_window_as_of_a_date() {
    let mut store = SqliteStore::in_memory().unwrap();
    let patron = |id: &str| PatronRecord {
        patron: Patron {
            id: id.into(),
            ..Patron::default()
        },
        active: true,
        source: "test".into(),
    };
    let loan = |id: &str, on: &str, returned: Option<&str>, subject: &str| LoanRecord {
        id: id.into(),
        patron: "p1".into(),
        item: None,
        title: None,
        subject: Some(subject.into()),
        loaned_on: day(on),
        due_on: Some(day(on) + chrono::Days::new(14)),
        returned_on: returned.map(day),
        renewals: 1,
    };
    store
        .write(&Batch {
            patrons: vec![patron("p1"), patron("p2")],
            loans: vec![
                loan("a", "2026-11-20", None, "QD"), // 8 days ago, out, not yet due
                loan("b", "2026-10-01", None, "QD"), // out and overdue
                loan("c", "2026-06-01", Some("2026-06-10"), "QA"), // within the year
                loan("d", "2025-01-01", Some("2025-01-05"), "K"), // older than a year
                loan("e", "2026-12-01", None, "QD"), // after the as-of date
            ],
            holds: vec![],
        })
        .unwrap();
    let patrons = store.patrons(day("2026-11-28")).unwrap();
    let a = patrons[0].activity.unwrap();
    assert_eq!(
        (
            a.loans_30d,
            a.loans_90d,
            a.loans_365d,
            a.renewals_365d,
            a.overdue_now,
            a.days_since_last_activity
        ),
        (1, 2, 3, 3, 1, Some(8))
    );
    assert_eq!(
        patrons[0].interests,
        Some([("QA".to_string(), 1), ("QD".to_string(), 2)].into())
    );
    let never = patrons[1].activity.unwrap();
    assert_eq!(
        (never.loans_365d, never.days_since_last_activity),
        (0, None)
    );
}

#[test]
fn erasure_leaves_nothing_behind_in_any_table() {
    let mut store = SqliteStore::in_memory().unwrap();
    import_folio(&mut store, &all_folio(), ImportOptions::default()).unwrap();
    let penelope = "d0fc4228-2e42-49b2-a5b0-9df48897e8c0";
    let erased = store.erase_patron(penelope).unwrap();
    assert_eq!((erased.patrons, erased.loans), (1, 1));
    assert!(!store.has_patron(penelope).unwrap());
    // Every table, whatever its columns: no row may still hold her id.
    for table in store.tables().unwrap() {
        assert_eq!(
            store.rows_mentioning(&table, penelope).unwrap(),
            0,
            "{table} still mentions her"
        );
    }
    assert_eq!(store.count("patrons").unwrap(), 302);
}
