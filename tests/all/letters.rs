//! Letters a library can post: Koha's patrons with their addresses, their
//! checkouts joined to Koha's items for titles and barcodes, a day's
//! notices to one reader in one letter under a name, address and card
//! number block the policy allows, and the letters gone when the reader is
//! erased.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lectern::{Campaigns, Config, Format, ImportOptions, Lectern, SqliteStore, Until};
use lectern_tests::{
    keyring, koha_fixture as koha, maildir_files as letters, plugins, shared_host,
    write_file as write,
};

/// 10:00 on 28 November 2026 in the library (Asia/Shanghai).
fn now() -> DateTime<Utc> {
    "2026-11-28T02:00:00Z".parse().unwrap()
}

/// Koha's sample library, in which Jean Moreau has no email and so is
/// written to on paper, with two books due soon and one overdue.
fn koha_files(dir: &Path) -> Vec<PathBuf> {
    let patrons = koha("patrons.json").replace("\"jmoreau@example.org\"", "null");
    let checkouts = r#"[
      {"checkout_id": 9101, "patron_id": 53, "item_id": 771, "checkout_date": "2026-11-01T10:12:00+08:00", "due_date": "2026-11-29T23:59:00+08:00", "checkin_date": null, "renewals_count": 0, "library_id": "CPL"},
      {"checkout_id": 9102, "patron_id": 53, "item_id": 772, "checkout_date": "2026-11-02T10:12:00+08:00", "due_date": "2026-11-30T23:59:00+08:00", "checkin_date": null, "renewals_count": 1, "library_id": "CPL"},
      {"checkout_id": 9103, "patron_id": 53, "item_id": 773, "checkout_date": "2026-10-01T10:12:00+08:00", "due_date": "2026-11-27T23:59:00+08:00", "checkin_date": null, "renewals_count": 0, "library_id": "CPL"},
      {"checkout_id": 9104, "patron_id": 51, "item_id": 999, "checkout_date": "2026-11-03T10:12:00+08:00", "due_date": "2026-11-29T23:59:00+08:00", "checkin_date": null, "renewals_count": 0, "library_id": "CPL"}
    ]"#;
    vec![
        write(dir, "patrons.json", &patrons),
        write(dir, "checkouts.json", checkouts),
        write(dir, "items.json", koha("items.json")),
    ]
}

fn config(dir: &Path, policy: Option<&str>) -> Config {
    let mut config = Config::parse(
        &format!(
            "[notify]\ntimezone = \"Asia/Shanghai\"\nquiet-hours = \"none\"\n\
             [channels.email]\ntransport = \"maildir\"\ndir = \"{0}/email\"\n\
             [channels.sms]\ntransport = \"maildir\"\ndir = \"{0}/sms\"\n\
             [channels.print]\ntransport = \"maildir\"\ndir = \"{0}/print\"\n",
            dir.display()
        ),
        Path::new("."),
    )
    .unwrap();
    config.policy = policy.map(PathBuf::from);
    config
}

/// The library, its Koha records imported, its notices queued and
/// delivered into maildirs under `dir`.
fn delivered(dir: &Path, policy: Option<&str>) -> Lectern {
    let db = dir.join("lectern.db");
    lectern_tests::keyring_beside(&db);
    let mut library = Lectern::open(
        shared_host(),
        SqliteStore::open(&db).unwrap(),
        keyring(),
        config(dir, policy),
    )
    .unwrap();
    let options = ImportOptions {
        clock: library.config().notify.clock,
        ..ImportOptions::default()
    };
    let report = library
        .import(Format::Koha, &koha_files(dir), options, &mut |_| {})
        .unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let notices = shared_host().load_messenger(plugins::NOTICES).unwrap();
    let queued = library
        .notify(&[notices], &Campaigns::default(), true, Vec::new(), now())
        .unwrap();
    assert!(queued.queued >= 4, "{queued:#?}");
    library.deliver(Until::NothingDue, &mut |_| {}).unwrap();
    library
}

#[test]
fn a_day_of_notices_is_one_letter_with_the_name_address_and_card_number() {
    let dir = tempfile::tempdir().unwrap();
    let library = delivered(dir.path(), Some(plugins::BASELINE_PRIVACY));
    let print = letters(&dir.path().join("print"));
    assert_eq!(print.len(), 1, "one letter for Jean's day: {print:#?}");
    let letter = &print[0];
    let body = letter.split_once("\n\n").unwrap().1;
    // The window-envelope block: name, the address as Koha holds it, and
    // the card number.
    assert!(
        body.starts_with(
            "Jean Moreau\n12 rue des Lilas\nBâtiment B\nLyon 69003\nFrance\n\n\
             Card number: 23529000197062\n\n"
        ),
        "{letter}"
    );
    assert!(letter.contains("Subject: Your library notices for today (3)"));
    // Every item by the title and barcode Koha's items give it.
    for (title, barcode) in [
        ("The Feynman Lectures on Physics", "39000000771"),
        ("Les Misérables", "39000000772"),
        ("Dream of the Red Chamber", "39000000773"),
    ] {
        assert!(
            letter.contains(&format!("\"{title}\" (barcode {barcode})")),
            "{title}: {letter}"
        );
    }
    assert!(!letter.contains("(untitled)"), "{letter}");
    // A checkout whose item is not in the items file keeps Koha's id.
    let email = letters(&dir.path().join("email")).join("\n");
    assert!(email.contains("(untitled)\" (barcode 999)"), "{email}");

    // The print room's hand-over is audited with the fields it carried.
    let export = library
        .export_patron("53", "2026-11-28".parse().unwrap(), "administrator")
        .unwrap();
    let export = serde_json::to_value(&export).unwrap();
    let print_reads: Vec<&str> = export["reads_of_their_data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "print")
        .map(|r| r["fields"].as_str().unwrap())
        .collect();
    assert!(
        print_reads
            .iter()
            .any(|f| f.contains("address") && f.contains("card-number") && f.contains("name")),
        "{print_reads:?}"
    );
}

#[test]
fn without_a_policy_letting_them_out_a_letter_carries_no_name_or_address() {
    let dir = tempfile::tempdir().unwrap();
    // No policy: the built-in one lets nothing out, to the print room too
    // (nor the readers' channels to the messenger, so every notice falls
    // back to paper).
    let _library = delivered(dir.path(), None);
    let print = letters(&dir.path().join("print"));
    assert_eq!(print.len(), 2, "Jean's day and Ada's");
    for letter in &print {
        for withheld in [
            "Jean",
            "Moreau",
            "rue des Lilas",
            "23529000197062",
            "Lyon",
            "Okonkwo",
            "Campus Drive",
            "23529000197047",
        ] {
            assert!(!letter.contains(withheld), "{withheld}: {letter}");
        }
    }
}

#[test]
fn erasing_a_reader_removes_their_delivered_letters_and_keeps_them_out_of_the_next_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut library = delivered(dir.path(), Some(plugins::BASELINE_PRIVACY));
    assert_eq!(letters(&dir.path().join("print")).len(), 1);
    let ada_mail = letters(&dir.path().join("email"));
    assert!(!ada_mail.is_empty());

    let erased = library.erase_patron("53", "privacy-officer").unwrap();
    assert_eq!(erased.files, 1, "{erased:?}");
    assert!(letters(&dir.path().join("print")).is_empty());
    assert_eq!(
        letters(&dir.path().join("email")),
        ada_mail,
        "no one else's mail is touched"
    );

    // The nightly import from Koha does not bring him back...
    let again = library
        .import(
            Format::Koha,
            &koha_files(dir.path()),
            ImportOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    assert!(again.skipped.is_empty(), "{:?}", again.skipped);
    // ...neither the patron nor his three loans.
    assert_eq!(again.withheld_erased, 4);
    assert!(!library.store().has_patron("53").unwrap());
    // Unless the library says so.
    let readmitted = library
        .import(
            Format::Koha,
            &koha_files(dir.path()),
            ImportOptions {
                readmit: true,
                ..ImportOptions::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert_eq!((readmitted.readmitted, readmitted.withheld_erased), (1, 0));
    assert!(library.store().has_patron("53").unwrap());

    // Nor does Koha's patron CSV, keyed by his card alone.
    library.erase_patron("53", "privacy-officer").unwrap();
    let csv = write(
        dir.path(),
        "patrons.csv",
        "cardnumber,surname,firstname,branchcode,categorycode\n\
         23529000197062,Moreau,Jean,CPL,PT\n",
    );
    let by_card = library
        .import(
            Format::KohaCsv,
            &[csv],
            ImportOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(by_card.withheld_erased, 1, "{by_card:?}");
    assert_eq!(library.store().patron_count().unwrap(), 2);
}
