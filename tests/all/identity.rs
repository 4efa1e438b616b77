//! One reader, one record: the same Koha library imported as JSON and as
//! the patron-import CSV, in either order, and a card number two ids
//! claim; and date-times read on the library's own clock.

use std::path::{Path, PathBuf};
use std::process::Command;

use lectern::{Format, ImportOptions, ImportReport, Records as _, SqliteStore, Store as _};
use lectern_tests::{koha_fixture as koha, lectern_command, repo, write_file as write};

/// Koha's patron-import CSV of the same three readers the JSON holds,
/// keyed, as that file is, by card number only.
fn same_readers_as_csv(dir: &Path) -> PathBuf {
    write(
        dir,
        "patrons.csv",
        "cardnumber,surname,firstname,branchcode,categorycode,dateexpiry,email,smsalertnumber,\
         address,city,zipcode,country\n\
         23529000197047,Okonkwo,Ada,CPL,FACULTY,2028-08-31,ada.okonkwo@example.edu,,\
         1200 Campus Drive,Centerville,62701,USA\n\
         23529000197054,Liu,Mei,MPL,ST,2024-06-30,,555-0102,,,,\n\
         23529000197062,Moreau,Jean,CPL,PT,2030-01-15,jmoreau@example.org,,,,,\n",
    )
}

fn import(store: &mut SqliteStore, format: Format, file: &Path) -> ImportReport {
    let keys = lectern::Pseudonyms::ephemeral();
    lectern::import(
        store,
        format,
        &[file.to_path_buf()],
        ImportOptions::default(),
        &keys,
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn koha_json_then_koha_csv_holds_each_reader_once() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(dir.path(), "patrons.json", koha("patrons.json"));
    let csv = same_readers_as_csv(dir.path());
    let mut store = SqliteStore::temporary().unwrap();
    import(&mut store, Format::Koha, &json);
    let report = import(&mut store, Format::KohaCsv, &csv);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(
        (report.written.imported, report.written.updated),
        (0, 3),
        "the CSV updates the readers the JSON wrote"
    );
    assert_eq!(store.patron_count().unwrap(), 3);
    let ada = store
        .patron("51", "2026-11-28".parse().unwrap())
        .unwrap()
        .expect("Ada keeps Koha's id");
    assert_eq!(
        ada.expires_on,
        "2028-08-31".parse().ok(),
        "updated by the CSV"
    );
}

#[test]
fn koha_csv_then_koha_json_holds_each_reader_once_under_kohas_id() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(dir.path(), "patrons.json", koha("patrons.json"));
    let csv = same_readers_as_csv(dir.path());
    let mut store = SqliteStore::temporary().unwrap();
    import(&mut store, Format::KohaCsv, &csv);
    assert!(store.has_patron("23529000197047").unwrap());
    let report = import(&mut store, Format::Koha, &json);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(store.patron_count().unwrap(), 3);
    assert!(store.has_patron("51").unwrap(), "Koha's id is the key now");
    assert!(!store.has_patron("23529000197047").unwrap());
    // And the CSV again finds them by card.
    let report = import(&mut store, Format::KohaCsv, &csv);
    assert_eq!((report.written.imported, report.written.updated), (0, 3));
    assert_eq!(store.patron_count().unwrap(), 3);
}

#[test]
fn a_card_number_two_ids_claim_is_reported_and_the_second_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    // Jean's record in the ILS was given Ada's card by mistake.
    let json = koha("patrons.json").replace("\"23529000197062\"", "\"23529000197047\"");
    let json = write(dir.path(), "patrons.json", &json);
    let mut store = SqliteStore::temporary().unwrap();
    let report = import(&mut store, Format::Koha, &json);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    let skip = report.skipped[0].to_string();
    assert!(
        skip.contains("record 3: field `card_number`: card number `23529000197047` already belongs to patron `51`"),
        "{skip}"
    );
    assert_eq!(store.patron_count().unwrap(), 2);
}

/// A FOLIO loan in the shape of mod-circulation-storage's example, due at
/// the last second of 13 November in New York, written as UTC.
fn folio_loan(dir: &Path) -> Vec<PathBuf> {
    let users = repo().join("tests/fixtures/folio/users");
    let user = std::fs::read_dir(&users)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let id = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&user).unwrap())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let loan = format!(
        r#"{{"id": "cf23adf0-61ba-4887-bf82-956c4aae2260", "userId": "{id}",
            "itemId": "cb20f34f-b773-462f-a091-b233cc96b9e6",
            "loanDate": "2020-10-16T14:02:11.000+00:00", "dueDate": "2020-11-14T04:59:59Z",
            "status": {{"name": "Open"}}, "action": "checkedout", "renewalCount": 0}}"#
    );
    vec![user, write(dir, "loan.json", &loan)]
}

#[test]
fn a_date_time_with_an_offset_counts_on_the_librarys_own_day() {
    let dir = tempfile::tempdir().unwrap();
    let files = folio_loan(dir.path());
    let due = |clock: &str| {
        let mut store = SqliteStore::temporary().unwrap();
        let config = lectern::Config::parse(
            &format!("[notify]\nutc-offset = \"{clock}\"\n"),
            Path::new("."),
        )
        .unwrap();
        let keys = lectern::Pseudonyms::ephemeral();
        let options = ImportOptions {
            clock: config.notify.clock,
            ..ImportOptions::default()
        };
        let report = lectern::import(
            &mut store,
            Format::Folio,
            &files,
            options,
            &keys,
            &mut |_| {},
        )
        .unwrap();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        let loans = store.open_loans("2021-01-01".parse().unwrap()).unwrap();
        assert_eq!(loans.len(), 1);
        (loans[0].due_on.to_string(), loans[0].item.clone())
    };
    assert_eq!(due("-05:00").0, "2020-11-13", "New York's 13 November");
    assert_eq!(due("+00:00").0, "2020-11-14");
    assert_eq!(due("+08:00").0, "2020-11-14");
}

#[test]
fn lectern_import_reads_date_times_on_the_configured_clock() {
    let dir = tempfile::tempdir().unwrap();
    let files = folio_loan(dir.path());
    let db = dir.path().join("lectern.db");
    let config = write(
        dir.path(),
        "lectern.toml",
        "[notify]\ntimezone = \"America/New_York\"\n",
    );
    let run = |c: &mut Command| c.env("LECTERN_CONFIG", &config).output().unwrap();
    let out = run(lectern_command()
        .arg("--db")
        .arg(&db)
        .args(["import", "--format", "folio"])
        .args(&files));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = SqliteStore::open(&db).unwrap();
    let loans = store.open_loans("2021-01-01".parse().unwrap()).unwrap();
    assert_eq!(loans[0].due_on.to_string(), "2020-11-13");
}
