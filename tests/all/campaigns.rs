//! Campaigns on a generated library: a series with a holdout that gets
//! nothing, stop conditions that end a reader's series, and the outcome
//! computed from the store's activity against the holdout.

use std::collections::{BTreeMap, HashSet};

use chrono::{Days, NaiveDate, TimeZone as _, Utc};
use lectern::{
    CampaignDef, Format, ImportOptions, Lectern, LoanRecord, SqliteStore, Store as _, Written,
};
use lectern_tests::{as_of, generated_library, keyring, plugins, repo, shared_host};

const CAMPAIGN: &str = r#"
id = "come-back"
title = "Come back"
holdout = 0.3
outcome-days = 30
stop-when = ["borrowed"]
audience = { all = [ { any = [ { category = "undergraduate" }, { category = "graduate" } ] }, { not = { category = "staff" } } ] }

[[steps]]
id = "first"
after-days = 0
subject = { en = "First", zh = "第一" }
body = { en = "Come back.", zh = "欢迎回来。" }

[[steps]]
id = "second"
after-days = 14
subject = { en = "Second", zh = "第二" }
body = { en = "Still here.", zh = "我们仍在这里。" }
"#;

fn noon(d: NaiveDate) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
}

#[test]
fn a_series_spares_its_holdout_stops_when_readers_borrow_and_measures_the_uplift() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("come-back.toml"), CAMPAIGN).unwrap();
    let config = lectern::Config::parse(
        &format!(
            "[privacy]\npolicy = {:?}\n[notify]\nquiet-hours = \"none\"\ndaily-limit = 10\n\
             [readers]\ncampaigns = [\"come-back.toml\"]\n",
            plugins::BASELINE_PRIVACY
        ),
        dir,
    )
    .unwrap();
    let db = dir.join("lectern.db");
    lectern_tests::keyring_beside(&db);
    let open = || {
        Lectern::open(
            shared_host(),
            SqliteStore::open(&db).unwrap(),
            keyring(),
            config.clone(),
        )
        .unwrap()
    };
    let mut lib = open();
    let (_, files) = generated_library(dir, 600);
    lib.import(Format::Csv, &files, ImportOptions::default(), &mut |_| {})
        .unwrap();
    let def = lib.campaign("come-back").unwrap();
    // The day after the library's last recorded activity: no reader has
    // borrowed since entering until the test says so.
    let start = as_of() + Days::new(1);

    let first = lib.run_campaign(&def, noon(start)).unwrap();
    assert!(first.entered > 60, "{first:?}");
    assert!(
        first.held_out > 10 && first.held_out < first.entered / 2,
        "{first:?}"
    );
    let again = lib.run_campaign(&def, noon(start)).unwrap();
    assert_eq!(
        (again.entered, again.queued),
        (0, 0),
        "a second run the same day adds nothing"
    );

    let members = lib.store().members("come-back").unwrap();
    let held: HashSet<&str> = members
        .iter()
        .filter(|m| m.holdout)
        .map(|m| m.patron.as_str())
        .collect();
    let messaged: Vec<&str> = members
        .iter()
        .filter(|m| !m.holdout)
        .map(|m| m.patron.as_str())
        .collect();
    assert_eq!(held.len(), first.held_out);
    // Only readers who consent to marketing entered.
    let patrons: BTreeMap<String, lectern::Patron> = lib
        .store()
        .patrons(start)
        .unwrap()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    assert!(
        members
            .iter()
            .all(|m| patrons[&m.patron].consents.is_some_and(|c| c.marketing))
    );
    // The holdout is the keyed token's draw: a fresh store draws the same.
    let outbox = lib.outbox_messages(None, 100_000, "administrator").unwrap();
    let sent_to: Vec<&str> = outbox
        .iter()
        .filter(|m| m.event_kind == "campaign")
        .map(|m| m.patron.as_str())
        .collect();
    assert!(
        sent_to.iter().all(|p| !held.contains(p)),
        "the holdout gets nothing"
    );
    assert_eq!(
        first.queued + first.skipped.len(),
        messaged.len(),
        "{first:?}"
    );

    // Half the messaged readers and a quarter of the holdout borrow three
    // days in.
    let borrowers: Vec<&str> = messaged
        .iter()
        .step_by(2)
        .chain(
            held.iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .step_by(4),
        )
        .copied()
        .collect();
    {
        let mut store = SqliteStore::open(&db).unwrap();
        let mut tx = store.import("test").unwrap();
        for (i, p) in borrowers.iter().enumerate() {
            tx.put_loan(&LoanRecord {
                id: format!("campaign-loan-{i}"),
                patron: p.to_string(),
                item: None,
                title: Some("A book".into()),
                subject: Some("history".into()),
                loaned_on: start + Days::new(3),
                due_on: Some(start + Days::new(24)),
                returned_on: None,
                renewals: 0,
            })
            .unwrap();
        }
        tx.commit(Written::default(), 0).unwrap();
    }
    let later = start + Days::new(15);
    let second = lib.run_campaign(&def, noon(later)).unwrap();
    let messaged_borrowers = messaged.iter().step_by(2).count();
    assert_eq!(
        second.stopped, messaged_borrowers,
        "borrowing ends the series: {second:?}"
    );
    let outbox = lib.outbox_messages(None, 100_000, "administrator").unwrap();
    let second_step: HashSet<&str> = outbox
        .iter()
        .filter(|m| m.event_kind == "campaign" && m.subject == "Second")
        .map(|m| m.patron.as_str())
        .collect();
    assert!(!second_step.is_empty());
    for p in messaged.iter().step_by(2) {
        assert!(
            !second_step.contains(p),
            "{p} borrowed and got the second step"
        );
    }
    assert!(second_step.iter().all(|p| !held.contains(p)));

    // The outcome, from the stored activity.
    let outcome = lib
        .campaign_outcome("come-back", later, 5, "analyst")
        .unwrap();
    let borrowed = &outcome.uplift[0];
    assert_eq!(borrowed.outcome, "borrowed");
    assert_eq!(outcome.messaged, messaged.len());
    assert_eq!(outcome.holdout, held.len());
    assert_eq!(borrowed.messaged_hits, messaged_borrowers);
    assert_eq!(borrowed.holdout_hits, held.len().div_ceil(4));
    let (p1, p2) = (
        messaged_borrowers as f64 / messaged.len() as f64,
        held.len().div_ceil(4) as f64 / held.len() as f64,
    );
    assert!((borrowed.difference - 100.0 * (p1 - p2)).abs() < 1e-9);
    let se = (p1 * (1.0 - p1) / messaged.len() as f64 + p2 * (1.0 - p2) / held.len() as f64).sqrt();
    assert!((borrowed.ci95.0 - 100.0 * (p1 - p2 - 1.96 * se)).abs() < 1e-9);
    assert!(borrowed.ci95.0 < borrowed.difference && borrowed.difference < borrowed.ci95.1);
    assert!(
        outcome
            .to_csv()
            .starts_with("outcome,messaged_hits,messaged,")
    );
    assert!(
        outcome
            .to_html()
            .contains("Share of readers with each outcome")
    );
    // A group under k shows no shares.
    let withheld = lib
        .campaign_outcome("come-back", later, 10_000, "analyst")
        .unwrap();
    assert!(withheld.uplift.is_empty() && withheld.note.is_some());
    // Erasure takes a reader's campaign membership.
    let erased = lib.erase_patron(messaged[1], "administrator").unwrap();
    assert_eq!(erased.campaigns, 1);
}

#[test]
fn the_bundled_campaigns_parse_and_say_where_one_is_wrong() {
    for name in ["welcome", "lapsed", "renewal"] {
        let def =
            CampaignDef::load(&repo().join(format!("samples/campaigns/{name}.toml"))).unwrap();
        assert_eq!(def.id, name);
        assert!((def.holdout - 0.1).abs() < 1e-9);
    }
    let e = CampaignDef::parse(&CAMPAIGN.replace("holdout = 0.3", "holdout = 0.9"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("0 to 0.5"), "{e}");
    let e = CampaignDef::parse(&CAMPAIGN.replace("after-days = 14", "after-days = -1"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line "), "{e}");
}
