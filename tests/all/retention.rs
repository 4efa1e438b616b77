//! Retention: old data is removed, or generalised and unlinked from the
//! patron, and the audit chain stays verifiable.

use chrono::{NaiveDate, TimeZone, Utc};
use lectern::{
    AccessContext, Actor, AuditEntry, Field, HoldRecord, Lectern, LoanRecord, Patron, PatronRecord,
    Purpose, Retention, Runs, ScoreRun, Scored, SqliteStore, Store, UseKind, UseRecord, Written,
};

/// The library over the same file as `store`.
fn lib(store: &SqliteStore) -> Lectern {
    lectern_tests::library_over(SqliteStore::open(store.path()).unwrap())
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("lectern.db")).unwrap();
    let mut tx = store.import("test").unwrap();
    tx.put_patron(&PatronRecord {
        patron: Patron {
            id: "p1".into(),
            name: Some("Ada Lovelace".into()),
            birth_date: Some(day("1991-12-10")),
            category: Some("faculty".into()),
            home_branch: Some("MAIN".into()),
            ..Patron::default()
        },
        active: true,
        source: "test".into(),
    })
    .unwrap();
    let loan = |id: &str, on: &str, back: Option<&str>| LoanRecord {
        id: id.into(),
        patron: "p1".into(),
        item: None,
        title: Some("Notes on the Analytical Engine".into()),
        subject: Some("QA".into()),
        loaned_on: day(on),
        due_on: None,
        returned_on: back.map(day),
        renewals: 2,
    };
    tx.put_loan(&loan("old", "2020-05-02", Some("2020-05-30")))
        .unwrap();
    tx.put_loan(&loan("old-but-out", "2020-06-01", None))
        .unwrap();
    tx.put_loan(&loan("recent", "2026-10-01", Some("2026-10-20")))
        .unwrap();
    let hold = |id: &str, on: &str, status: &str| HoldRecord {
        id: id.into(),
        patron: "p1".into(),
        title: None,
        placed_on: day(on),
        status: Some(status.into()),
        pickup_branch: None,
        expires_on: None,
    };
    tx.put_hold(&hold("h-old", "2024-01-01", "Closed - Filled"))
        .unwrap();
    // Placed long ago and still waiting: a reader in the queue, kept.
    tx.put_hold(&hold("h-waiting", "2024-01-01", "Open - Not yet filled"))
        .unwrap();
    tx.put_hold(&hold("h-new", "2026-11-01", "Open - Awaiting pickup"))
        .unwrap();
    tx.put_use(&UseRecord {
        patron: "p1".into(),
        on: day("2023-03-03"),
        kind: UseKind::Visit,
        count: 1,
    })
    .unwrap();
    tx.put_use(&UseRecord {
        patron: "p1".into(),
        on: day("2026-11-03"),
        kind: UseKind::Visit,
        count: 1,
    })
    .unwrap();
    tx.commit(Written::default(), 0).unwrap();
    for year in [2015, 2017, 2026] {
        let entry = AuditEntry {
            at: Utc.with_ymd_and_hms(year, 6, 1, 12, 0, 0).unwrap(),
            context: AccessContext {
                purpose: Purpose::Scoring,
                actor: Actor::Plugin("engagement".into()),
            },
            fields: vec![Field::Activity],
            patrons: vec!["p-token".into()],
        };
        lib(&store).record_read(&entry).unwrap();
    }
    (dir, store)
}

#[test]
fn old_loans_are_generalised_and_unlinked_the_rest_removed_or_kept() {
    let (_dir, mut store) = store();
    for as_of in ["2023-01-01", "2026-11-01"] {
        let run = ScoreRun {
            plugin: "engagement".into(),
            version: "0.1.0".into(),
            as_of: day(as_of),
            fields: None,
        };
        let score = Scored {
            patron: "p1".into(),
            value: 50.0,
            segment: "active".into(),
            reasons: vec![],
        };
        store.save_run(&run, &[score]).unwrap();
    }
    let r = lib(&store)
        .apply_retention(day("2026-11-28"), &Retention::default())
        .unwrap();
    assert_eq!(
        (
            r.loans_aged,
            r.holds_removed,
            r.uses_removed,
            r.runs_removed,
            r.audit_removed
        ),
        (1, 1, 1, 1, 2)
    );
    assert_eq!(
        (
            store.count("score_runs").unwrap(),
            store.count("scores").unwrap()
        ),
        (1, 1),
        "the old run goes, with its scores"
    );

    assert_eq!(
        store.count("loans").unwrap(),
        2,
        "the recent loan and the one still out stay"
    );
    assert_eq!(
        store.count("holds").unwrap(),
        2,
        "only the closed hold goes; an open one stays however old"
    );
    assert_eq!(store.count("uses").unwrap(), 1);
    assert_eq!(store.count("aged_loans").unwrap(), 1);
    // What is left of the old loan says nothing about who borrowed it.
    for value in [
        "p1",
        "Ada Lovelace",
        "1991-12-10",
        "Notes on the Analytical Engine",
        "old",
    ] {
        assert_eq!(
            store.rows_mentioning("aged_loans", value).unwrap(),
            0,
            "{value}"
        );
    }
    for (value, kept) in [
        ("2020-05", "the month"),
        ("QA", "the subject"),
        ("faculty", "the category"),
        ("MAIN", "the branch"),
        ("1990s", "the birth decade"),
    ] {
        assert_eq!(
            store.rows_mentioning("aged_loans", value).unwrap(),
            1,
            "{kept} is kept"
        );
    }
    // Activity within the year is untouched.
    let a = store.patrons(day("2026-11-28")).unwrap()[0]
        .activity
        .unwrap();
    assert_eq!((a.loans_365d, a.holds_365d, a.visits_365d), (1, 1, Some(1)));
}

#[test]
fn the_audit_chain_survives_retention_and_still_shows_tampering() {
    let (dir, store) = store();
    lib(&store)
        .apply_retention(day("2026-11-28"), &Retention::default())
        .unwrap();
    let check = lib(&store).verify_audit().unwrap();
    // Three reads, and the retention run itself.
    assert_eq!((check.entries, check.broken_at), (4, None));
    assert!(check.removed_through > 0, "{check:?}");
    // Applying it again changes nothing and breaks nothing.
    let again = lib(&store)
        .apply_retention(day("2026-11-28"), &Retention::default())
        .unwrap();
    assert_eq!(again.audit_removed, 0);
    assert_eq!(lib(&store).verify_audit().unwrap().broken_at, None);

    rusqlite::Connection::open(dir.path().join("lectern.db"))
        .unwrap()
        .execute_batch("UPDATE audit_log SET fields = 'name' WHERE seq = 3")
        .unwrap();
    assert_eq!(lib(&store).verify_audit().unwrap().broken_at, Some(3));
}
