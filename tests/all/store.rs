//! The embedded store and the importers: FOLIO against FOLIO's own sample
//! data (tests/fixtures/folio, Apache-2.0, see its NOTICE), Koha and
//! Lectern's CSV against hand-made files in their shapes, and damaged files.

use std::path::PathBuf;

use chrono::NaiveDate;
use lectern::{
    Format, ImportOptions, ImportReport, LoanRecord, Patron, PatronRecord, SqliteStore, Store,
    UseKind, UseRecord, Written,
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

fn import(
    store: &mut SqliteStore,
    format: Format,
    files: &[PathBuf],
    strict: bool,
) -> lectern::Result<ImportReport> {
    lectern::import(
        store,
        format,
        files,
        ImportOptions {
            strict,
            ..Default::default()
        },
        &lectern::Pseudonyms::ephemeral(),
        &mut |_| {},
    )
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
    let mut store = SqliteStore::temporary().unwrap();
    let report = import(&mut store, Format::Folio, &all_folio(), false).unwrap();
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
fn summaries_in_batches_match_the_whole() {
    let mut store = SqliteStore::temporary().unwrap();
    import(&mut store, Format::Folio, &all_folio(), false).unwrap();
    let as_of = day("2017-03-20");
    let mut batches = Vec::new();
    store
        .for_each_patron(as_of, 7, &mut |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
    assert!(batches.iter().all(|b| b.len() <= 7));
    assert_eq!(batches.len(), 303_usize.div_ceil(7));
    assert_eq!(batches.concat(), store.patrons(as_of).unwrap());
}

#[test]
fn importing_again_updates_and_never_duplicates() {
    let mut store = SqliteStore::temporary().unwrap();
    import(&mut store, Format::Folio, &all_folio(), false).unwrap();
    let again = import(&mut store, Format::Folio, &all_folio(), false).unwrap();
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

    let mut strict = SqliteStore::temporary().unwrap();
    let err = import(&mut strict, Format::Folio, &files, true)
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("; nothing was written (--strict)"), "{err}");
    assert!(
        err.contains("users.json: record 1: field `personal.dateOfBirth`"),
        "{err}"
    );
    assert_eq!(strict.count("patrons").unwrap(), 0);
    assert_eq!(strict.count("import_runs").unwrap(), 0, "not even the run");

    let mut store = SqliteStore::temporary().unwrap();
    let report = import(&mut store, Format::Folio, &files, false).unwrap();
    let skipped: Vec<(String, usize, Option<&str>)> = report
        .skipped
        .iter()
        .map(|s| (name(&s.file), s.record, s.field.as_deref()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("users.json".to_string(), 1, Some("personal.dateOfBirth")),
            ("users.json".to_string(), 3, Some("id")),
            ("users.json".to_string(), 4, Some("id")),
            ("broken.json".to_string(), 0, None),
            ("loan.json".to_string(), 1, Some("userId")),
        ]
    );
    assert!(
        report.skipped[0]
            .reason
            .contains("`2001-02-30` is not a real date")
    );
    assert!(
        report.skipped[2]
            .reason
            .contains("already has a record with id `u2`")
    );
    assert!(
        report.skipped[3]
            .to_string()
            .contains("broken.json: not valid JSON"),
        "{}",
        report.skipped[3]
    );
    assert_eq!(
        report.written,
        Written {
            imported: 1,
            updated: 0
        },
        "only u2 was good"
    );
    assert_eq!(store.count("patrons").unwrap(), 1);
}

#[test]
fn activity_summaries_count_by_window_as_of_a_date() {
    let mut store = SqliteStore::temporary().unwrap();
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
    let mut tx = store.import("test").unwrap();
    for p in [patron("p1"), patron("p2")] {
        tx.put_patron(&p).unwrap();
    }
    for l in [
        loan("a", "2026-11-20", None, "QD"), // 8 days ago, out, not yet due
        loan("b", "2026-10-01", None, "QD"), // out and overdue
        loan("c", "2026-06-01", Some("2026-06-10"), "QA"), // within the year
        loan("d", "2025-01-01", Some("2025-01-05"), "K"), // older than a year
        loan("e", "2026-12-01", None, "QD"), // after the as-of date
    ] {
        tx.put_loan(&l).unwrap();
    }
    tx.put_use(&UseRecord {
        patron: "p1".into(),
        on: day("2026-11-25"),
        kind: UseKind::Visit,
        count: 2,
    })
    .unwrap();
    tx.commit(Written::default(), 0).unwrap();
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
        (1, 2, 3, 3, 1, Some(3)),
        "the visit three days ago is the latest activity"
    );
    assert_eq!(
        (a.visits_365d, a.eresource_sessions_365d),
        (Some(2), None),
        "visits are counted; e-resources are not"
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
    let mut store = SqliteStore::temporary().unwrap();
    import(&mut store, Format::Folio, &all_folio(), false).unwrap();
    let penelope = "d0fc4228-2e42-49b2-a5b0-9df48897e8c0";
    let erased = store
        .erase_patron(penelope, &["t-penelope".to_string()])
        .unwrap();
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
    // Nor any byte of the files: not in a free page, not in the log.
    let values = [
        penelope,
        "Penelope",
        "Feil",
        "109322966933845",
        "anastacio@hansen-dickens-and-mante.vu",
    ];
    let mut scanned = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", store.path().display());
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        scanned += bytes.len();
        for value in values {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{path} still holds `{value}`"
            );
        }
    }
    assert!(
        scanned > 100_000,
        "the store's files were read: {scanned} bytes"
    );
}

#[test]
fn koha_rest_json_and_patron_csv_import() {
    let koha = repo().join("tests/fixtures/koha");
    let mut store = SqliteStore::temporary().unwrap();
    // Checkouts before patrons on the command line: the order does not matter.
    let files = ["checkouts.json", "holds.json", "patrons.json"].map(|f| koha.join(f));
    let report = import(&mut store, Format::Koha, &files, false).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.written.imported, 3 + 3 + 2);

    let patrons = store.patrons(day("2026-11-28")).unwrap();
    let ada = patrons.iter().find(|p| p.id == "51").unwrap();
    assert_eq!(ada.name.as_deref(), Some("Ada Okonkwo"));
    assert!(
        ada.consents.unwrap().reading_history,
        "privacy 0 keeps history"
    );
    assert_eq!(ada.attributes.as_ref().unwrap()["PROJECT"], "NSF-2231");
    let a = ada.activity.unwrap();
    assert_eq!(
        (a.loans_30d, a.loans_365d, a.holds_365d, a.renewals_365d),
        (1, 2, 1, 1)
    );
    let mei = patrons.iter().find(|p| p.id == "52").unwrap();
    assert!(!mei.consents.unwrap().reading_history, "privacy 2 is never");
    assert_eq!(mei.locale.as_deref(), Some("zh-Hans-CN"));
    assert_eq!(
        mei.expires_on,
        Some(day("2024-06-30")),
        "expired patrons are kept"
    );
    assert_eq!(mei.channels.as_deref(), Some(&[lectern::Channel::Sms][..]));
    assert_eq!(
        patrons.iter().find(|p| p.id == "53").unwrap().locale,
        None,
        "`default` is no locale"
    );

    let csv = import(
        &mut store,
        Format::KohaCsv,
        &[koha.join("patrons.csv")],
        false,
    )
    .unwrap();
    assert_eq!(csv.written.imported, 2);
    let yui = store
        .patrons(day("2026-11-28"))
        .unwrap()
        .into_iter()
        .find(|p| p.id == "23529000300001")
        .unwrap();
    assert_eq!(yui.attributes.unwrap()["DEPT"], "history");
    assert_eq!(yui.phone.as_deref(), Some("555-0201"));
}

#[test]
fn lectern_csv_imports_patrons_loans_and_use() {
    let dir = repo().join("tests/fixtures/csv");
    let files = ["use.csv", "loans.csv", "patrons.csv"].map(|f| dir.join(f));
    let mut store = SqliteStore::temporary().unwrap();
    let report = import(&mut store, Format::Csv, &files, false).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.written.imported, 2 + 3 + 3);
    let patrons = store.patrons(day("2026-11-28")).unwrap();
    let ana = &patrons[0];
    assert_eq!(
        ana.channels.as_deref(),
        Some(&[lectern::Channel::Email, lectern::Channel::Sms][..])
    );
    assert_eq!(
        ana.attributes.as_ref().unwrap()["research-project"],
        "FAPESP-77"
    );
    let a = ana.activity.unwrap();
    assert_eq!(
        (
            a.loans_365d,
            a.visits_365d,
            a.eresource_sessions_365d,
            a.days_since_last_activity
        ),
        (2, Some(1), Some(4), Some(2))
    );
    assert_eq!(ana.interests, Some([("QH".to_string(), 2)].into()));
}

#[test]
fn a_csv_with_bad_rows_skips_them_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patrons.csv");
    // The same lines, as Unix and as Windows write them: the same lines
    // are named.
    for eol in ["\n", "\r\n"] {
        let lines = [
            "id,name,expires_on,consent_marketing",
            "A,Ann,2027-01-01,yes",
            "B,Bob,2027-13-01,no",
            "C,Cy",
            ",Nobody,,",
            "A,Ann again,,",
        ];
        std::fs::write(&path, lines.join(eol) + eol).unwrap();
        let mut store = SqliteStore::temporary().unwrap();
        let report = import(&mut store, Format::Csv, std::slice::from_ref(&path), false).unwrap();
        let got: Vec<String> = report
            .skipped
            .iter()
            .map(|s| {
                s.to_string()
                    .replace(&path.display().to_string(), "patrons.csv")
            })
            .collect();
        assert_eq!(
            got,
            [
                "patrons.csv: record 2 (line 3): field `expires_on`: `2027-13-01` is not a real date (YYYY-MM-DD)",
                "patrons.csv: record 3 (line 4): not a valid CSV row: 2 fields where the header has 4",
                "patrons.csv: record 4 (line 5): field `id`: missing",
                "patrons.csv: record 5 (line 6): field `id`: duplicate: this import already has a record with id `A`; keep one",
            ],
            "{eol:?}"
        );
        assert_eq!(store.count("patrons").unwrap(), 1);
    }
    let mut store = SqliteStore::temporary().unwrap();
    let missing = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(missing.path(), "patron,when\nA,2020-01-01\n").unwrap();
    let report = import(
        &mut store,
        Format::Csv,
        &[missing.path().to_path_buf()],
        false,
    )
    .unwrap();
    assert!(
        report.skipped[0]
            .reason
            .contains("the header has no `id` column"),
        "{:?}",
        report.skipped
    );
}
