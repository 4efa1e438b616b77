//! The store conformance suite: every method of the store traits and every
//! invariant a backend must keep, written against [`Backend`] alone. The
//! SQLite store runs it in this crate's tests; another backend runs the same
//! suite, unchanged, with its own `fresh` store:
//!
//! ```no_run
//! # #[cfg(feature = "conformance")]
//! lectern::conformance::run(&mut || lectern::SqliteStore::temporary().unwrap());
//! ```
//!
//! Each check panics with what broke, so the suite reads as a test.

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};

use crate::audit::{AuditChain, AuditEntry};
use crate::facade::verify;
use crate::model::{Channel, Consents, Patron, Scored};
use crate::privacy::{AccessContext, Actor, Field, Purpose};
use crate::store::{
    Backend, Circulation, HoldRecord, InboxEvent, LoanFields, LoanRecord, MessageState, Outcome,
    PatronRecord, Preferences, Put, Queued, RangeStored, Retention, ScoreRun, Settle, StaffAccount,
    UseKind, UseRecord, Written,
};

/// One check: its name and what it runs on a fresh store.
pub type Check = (&'static str, fn(&mut dyn Backend));

/// Every check.
pub const CHECKS: &[Check] = &[
    ("import is idempotent", import_is_idempotent),
    (
        "the first import into empty tables still finds duplicates",
        first_import_finds_duplicates,
    ),
    (
        "an import not committed writes nothing",
        uncommitted_import_writes_nothing,
    ),
    ("summaries count activity", summaries_count_activity),
    (
        "demand reads loans by month and subject, holds placed, and titles' subjects",
        demand_by_month_and_subject,
    ),
    (
        "batches cover every patron in id order",
        batches_cover_every_patron,
    ),
    ("erasure leaves nothing", erasure_leaves_nothing),
    (
        "erasure leaves a tombstone, which a readmission lifts",
        erasure_leaves_a_tombstone,
    ),
    (
        "a card number finds its patron, and a patron takes a new id whole",
        card_numbers_and_rekeying,
    ),
    (
        "a postal address is kept line by line",
        addresses_round_trip,
    ),
    ("the export has every section", export_has_every_section),
    ("runs are atomic and ordered", runs_are_atomic_and_ordered),
    (
        "a run written a batch at a time is seen only once committed",
        streamed_runs_are_seen_only_once_committed,
    ),
    (
        "ranges and readers cover every patron in id order",
        ranges_cover_every_patron,
    ),
    (
        "patrons read at once are the patrons read one by one",
        patrons_among_are_patrons_one_by_one,
    ),
    ("outbox leases", outbox_leases),
    (
        "a run planned in ranges is seen once every range is stored, and a lost lease stores nothing",
        planned_runs_are_shared_by_lease,
    ),
    (
        "erasing a patron at the edge of a planned range leaves no trace, and the run completes",
        erasure_moves_range_edges,
    ),
    (
        "a daily lock has one holder at a time",
        daily_locks_have_one_holder,
    ),
    (
        "the plugin registry keeps one version per id, and its packages",
        registry_round_trips,
    ),
    (
        "trusted keys and library settings round-trip",
        trust_and_settings_round_trip,
    ),
    (
        "preferences cancel what they refuse",
        preferences_cancel_what_they_refuse,
    ),
    (
        "the audit chain verifies and shows cuts",
        audit_chain_verifies,
    ),
    (
        "retention keeps the chain verifiable",
        retention_keeps_the_chain,
    ),
    (
        "the key fingerprint is recorded once",
        the_key_fingerprint_is_recorded_once,
    ),
    (
        "the inbox takes an event once and applies it once",
        inbox_takes_and_applies_once,
    ),
    (
        "staff accounts keep a hash, and revocation frees the name",
        staff_accounts_round_trip,
    ),
    ("the job history is newest first", job_history_newest_first),
    (
        "a reader link is used once, and an answer uses its link",
        reader_links_and_answers,
    ),
];

/// Runs every check, each on a store from `fresh`.
pub fn run<B: Backend>(fresh: &mut dyn FnMut() -> B) {
    for (name, check) in CHECKS {
        let mut store = fresh();
        eprintln!("conformance: {name}");
        check(&mut store);
    }
}

const KEY: &[u8] = b"conformance audit key";

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn at(s: &str) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day(s).and_hms_opt(12, 0, 0).expect("noon"))
}

fn patron(id: &str) -> PatronRecord {
    PatronRecord {
        patron: Patron {
            id: id.into(),
            name: Some(format!("Reader {id}")),
            email: Some(format!("{id}@example.org")),
            category: Some("staff".into()),
            home_branch: Some("main".into()),
            attributes: Some([("department".to_string(), "History".to_string())].into()),
            consents: Some(Consents {
                reading_history: true,
                marketing: true,
            }),
            channels: Some(vec![Channel::Email]),
            ..Patron::default()
        },
        active: true,
        source: "csv".into(),
    }
}

fn loan(id: &str, patron: &str, on: &str) -> LoanRecord {
    LoanRecord {
        id: id.into(),
        patron: patron.into(),
        item: Some(format!("item-{id}")),
        title: Some("A book".into()),
        subject: Some("history".into()),
        loaned_on: day(on),
        due_on: Some(day(on) + Duration::days(21)),
        returned_on: None,
        renewals: 1,
    }
}

/// Imports `ids`, each with one loan on 2026-11-01, a hold and a visit.
fn library(store: &mut dyn Backend, ids: &[&str]) -> Written {
    let mut written = Written::default();
    let mut tx = store.import("csv").expect("an import starts");
    for id in ids {
        written.count(tx.put_patron(&patron(id)).expect("a patron is written"));
        written.count(
            tx.put_loan(&loan(&format!("L-{id}"), id, "2026-11-01"))
                .expect("a loan is written"),
        );
        written.count(
            tx.put_hold(&HoldRecord {
                id: format!("H-{id}"),
                patron: id.to_string(),
                title: Some("Another book".into()),
                placed_on: day("2026-11-10"),
                status: Some("Open - Awaiting pickup".into()),
                pickup_branch: Some("main".into()),
                expires_on: Some(day("2026-12-10")),
            })
            .expect("a hold is written"),
        );
        written.count(
            tx.put_use(&UseRecord {
                patron: id.to_string(),
                on: day("2026-11-20"),
                kind: UseKind::Visit,
                count: 2,
            })
            .expect("a use is written"),
        );
    }
    tx.commit(written, 0).expect("the import commits");
    written
}

fn queued(patron: &str, key: &str) -> Queued {
    Queued {
        dedupe_key: key.into(),
        patron: patron.into(),
        event: format!("event-{key}"),
        event_kind: "new-arrival".into(),
        marketing: true,
        plugin: "outreach".into(),
        channel: Channel::Email,
        locale: "en".into(),
        subject: "New in history".into(),
        body: "Dear reader".into(),
        day: day("2026-11-28"),
        digest: false,
        not_before: at("2026-11-28"),
    }
}

fn audit(store: &mut dyn Backend, key: &[u8], when: &str, token: &str) {
    let chain = AuditChain::new(key);
    let entry = AuditEntry {
        at: at(when),
        context: AccessContext {
            purpose: Purpose::Scoring,
            actor: Actor::Plugin("engagement".into()),
        },
        fields: vec![Field::Category, Field::Activity],
        patrons: vec![token.to_string()],
    };
    store
        .append_audit(&mut |head| chain.next(head, &entry))
        .expect("an audit entry is written");
}

fn import_is_idempotent(store: &mut dyn Backend) {
    let first = library(store, &["a", "b"]);
    assert_eq!((first.imported, first.updated), (8, 0));
    let second = library(store, &["a", "b"]);
    assert_eq!(
        (second.imported, second.updated),
        (0, 8),
        "a second import of the same records updates them in place"
    );
    assert_eq!(store.patron_count().unwrap(), 2);
    let mut tx = store.import("csv").unwrap();
    assert_eq!(tx.put_patron(&patron("c")).unwrap(), Put::New);
    assert_eq!(
        tx.put_patron(&patron("c")).unwrap(),
        Put::Duplicate,
        "one import holding one id twice writes it once"
    );
    assert!(tx.has_patron("c").unwrap());
    tx.commit(Written::default(), 0).unwrap();
    assert!(store.has_patron("c").unwrap());
}

fn first_import_finds_duplicates(store: &mut dyn Backend) {
    let mut tx = store.import("csv").unwrap();
    assert_eq!(tx.put_patron(&patron("a")).unwrap(), Put::New);
    assert_eq!(tx.put_patron(&patron("a")).unwrap(), Put::Duplicate);
    let l = loan("L1", "a", "2026-11-01");
    assert_eq!(tx.put_loan(&l).unwrap(), Put::New);
    assert_eq!(tx.put_loan(&l).unwrap(), Put::Duplicate);
    let h = HoldRecord {
        id: "H1".into(),
        patron: "a".into(),
        title: None,
        placed_on: day("2026-11-10"),
        status: None,
        pickup_branch: None,
        expires_on: None,
    };
    assert_eq!(tx.put_hold(&h).unwrap(), Put::New);
    assert_eq!(tx.put_hold(&h).unwrap(), Put::Duplicate);
    let u = UseRecord {
        patron: "a".into(),
        on: day("2026-11-12"),
        kind: UseKind::Visit,
        count: 2,
    };
    assert_eq!(tx.put_use(&u).unwrap(), Put::New);
    assert_eq!(tx.put_use(&u).unwrap(), Put::Duplicate);
    tx.commit(Written::default(), 0).unwrap();
    // The first record of each stands.
    assert_eq!(store.patron_count().unwrap(), 1);
    let mut tx = store.import("csv").unwrap();
    assert_eq!(tx.put_patron(&patron("a")).unwrap(), Put::Updated);
}

fn uncommitted_import_writes_nothing(store: &mut dyn Backend) {
    {
        let mut tx = store.import("csv").unwrap();
        tx.put_patron(&patron("a")).unwrap();
        tx.put_loan(&loan("L1", "a", "2026-11-01")).unwrap();
        // Dropped without commit.
    }
    assert_eq!(store.patron_count().unwrap(), 0);
    assert!(!store.has_patron("a").unwrap());
    let mut tx = store.import("csv").unwrap();
    assert!(
        tx.put_loan(&loan("L2", "nobody", "2026-11-01")).is_err(),
        "a loan of a patron who does not exist is refused"
    );
}

fn summaries_count_activity(store: &mut dyn Backend) {
    library(store, &["a"]);
    let p = store
        .patron("a", day("2026-11-28"))
        .unwrap()
        .expect("patron a");
    let a = p.activity.expect("an activity summary");
    assert_eq!((a.loans_30d, a.loans_365d, a.renewals_365d), (1, 1, 1));
    assert_eq!(a.holds_365d, 1);
    assert_eq!(a.visits_365d, Some(2));
    assert_eq!(a.days_since_last_activity, Some(8));
    assert_eq!(p.interests.expect("interests").get("history"), Some(&1));
    assert_eq!(
        p.attributes
            .expect("attributes")
            .get("department")
            .map(String::as_str),
        Some("History")
    );
    assert_eq!(store.patron("nobody", day("2026-11-28")).unwrap(), None);
    // As of a day before the loan, it does not count.
    let before = store.patron("a", day("2026-10-01")).unwrap().unwrap();
    assert_eq!(before.activity.unwrap().loans_365d, 0);
}

fn demand_by_month_and_subject(store: &mut dyn Backend) {
    library(store, &["a", "b"]);
    let mut tx = store.import("csv").expect("an import starts");
    let mut written = Written::default();
    for (id, patron, on, subject, title) in [
        ("L2", "a", "2026-10-30", Some("history"), "A book"),
        ("L3", "a", "2026-10-02", Some("law"), "A book"),
        ("L4", "b", "2026-11-15", Some("law"), "Torts"),
        ("L5", "b", "2026-11-16", None, "Torts"),
        ("L6", "b", "2025-01-01", Some("law"), "Torts"),
    ] {
        let mut l = loan(id, patron, on);
        l.subject = subject.map(str::to_string);
        l.title = Some(title.into());
        l.renewals = 2;
        written.count(tx.put_loan(&l).expect("a loan is written"));
    }
    tx.commit(written, 0).expect("the import commits");

    let rows = store
        .loans_by_month(day("2026-01-01"), day("2026-11-30"))
        .unwrap();
    let got: Vec<(&str, &str, &str, u32, u32)> = rows
        .iter()
        .map(|r| {
            (
                r.patron.as_str(),
                r.month.as_str(),
                r.subject.as_str(),
                r.loans,
                r.renewals,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", "2026-10", "history", 1, 2),
            ("a", "2026-10", "law", 1, 2),
            ("a", "2026-11", "history", 1, 1),
            ("b", "2026-11", "history", 1, 1),
            ("b", "2026-11", "law", 1, 2),
        ],
        "no subject, no row; the window's ends are both in"
    );
    let holds = store
        .holds_placed(day("2026-11-10"), day("2026-11-10"))
        .unwrap();
    let ids: Vec<&str> = holds.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["H-a", "H-b"]);
    assert!(
        store
            .holds_placed(day("2026-11-11"), day("2026-12-31"))
            .unwrap()
            .is_empty()
    );
    // "A book": history twice (a's two loans and b's), law once.
    assert_eq!(
        store.title_subjects().unwrap(),
        [
            ("A book".to_string(), "history".to_string()),
            ("Torts".to_string(), "law".to_string())
        ]
    );
}

fn batches_cover_every_patron(store: &mut dyn Backend) {
    let ids: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    library(store, &refs);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    store
        .for_each_patron(day("2026-11-28"), 10, &mut |batch| {
            sizes.push(batch.len());
            seen.extend(batch.into_iter().map(|p| p.id));
            Ok(())
        })
        .unwrap();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(seen, ids);
    let all: Vec<String> = store
        .patrons(day("2026-11-28"))
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(all, ids);
}

fn ranges_cover_every_patron(store: &mut dyn Backend) {
    let ids: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    library(store, &refs);
    let ranges = store.patron_ranges(10).unwrap();
    assert_eq!(
        ranges,
        [("p00", "p09"), ("p10", "p19"), ("p20", "p24")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Readers on other threads see what the store's own batches see.
    let mut batches = Vec::new();
    store
        .for_each_patron(day("2026-11-28"), 10, &mut |b| {
            batches.push(b);
            Ok(())
        })
        .unwrap();
    let readers: Vec<_> = (0..2).map(|_| store.patron_reader().unwrap()).collect();
    std::thread::scope(|s| {
        for (i, reader) in readers.into_iter().enumerate() {
            let (ranges, batches) = (&ranges, &batches);
            s.spawn(move || {
                for (j, (lo, hi)) in ranges.iter().enumerate().skip(i).step_by(2) {
                    let read = reader.patrons_between(lo, hi, day("2026-11-28")).unwrap();
                    assert_eq!(read, batches[j], "range {lo}..={hi}");
                }
            });
        }
    });
    assert!(store.patron_ranges(10).is_ok_and(|r| r.len() == 3));
}

fn patrons_among_are_patrons_one_by_one(store: &mut dyn Backend) {
    library(store, &["a", "b", "c"]);
    let run = ScoreRun {
        plugin: "engagement".into(),
        version: "1".into(),
        as_of: day("2026-11-28"),
        fields: None,
    };
    let scored = Scored {
        patron: "c".into(),
        value: 1.0,
        segment: "regular".into(),
        reasons: Vec::new(),
    };
    store.save_run(&run, &[scored]).unwrap();
    // More ids than one statement may take, unknown and repeated ones
    // among them, out of order.
    let mut ids: Vec<String> = (0..1200).map(|i| format!("nobody{i}")).collect();
    ids.extend(["c", "a", "a"].map(String::from));
    for as_of in [day("2026-11-28"), day("2026-10-01")] {
        let mut read = store.patrons_among(&ids, as_of).unwrap();
        read.sort_by(|x, y| x.id.cmp(&y.id));
        let one_by_one: Vec<_> = ["a", "c"]
            .iter()
            .map(|id| store.patron(id, as_of).unwrap().unwrap())
            .collect();
        assert_eq!(read, one_by_one, "as of {as_of}");
        assert!(read[1].segments.is_some() && read[0].attributes.is_some());
    }
    assert!(
        store
            .patrons_among(&[], day("2026-11-28"))
            .unwrap()
            .is_empty()
    );
}

fn streamed_runs_are_seen_only_once_committed(store: &mut dyn Backend) {
    library(store, &["a", "b", "c"]);
    let run = ScoreRun {
        plugin: "engagement".into(),
        version: "1".into(),
        as_of: day("2026-11-28"),
        fields: None,
    };
    let score = |p: &str| Scored {
        patron: p.into(),
        value: 60.0,
        segment: "key-reader".into(),
        reasons: Vec::new(),
    };
    let mut writer = store.begin_run(&run).unwrap();
    writer.append(&[score("a"), score("b")]).unwrap();
    writer.append(&[score("c")]).unwrap();
    assert!(
        store.runs().unwrap().is_empty(),
        "a run showed before its end"
    );
    assert!(
        store
            .segment_members("engagement", "key-reader")
            .unwrap()
            .is_empty()
    );
    let id = writer.commit().unwrap();
    let runs = store.runs().unwrap();
    assert_eq!((runs.len(), runs[0].id, runs[0].patrons), (1, id, 3));
    assert_eq!(
        store.segment_members("engagement", "key-reader").unwrap(),
        ["a", "b", "c"]
    );

    // A run given up half-way leaves nothing, not even its scores.
    let mut writer = store.begin_run(&run).unwrap();
    writer.append(&[score("a")]).unwrap();
    drop(writer);
    assert_eq!(store.runs().unwrap().len(), 1);
    let a = store.patron_data("a", day("2026-11-28")).unwrap().unwrap();
    assert_eq!(a.scores.len(), 1, "the abandoned run's score is gone");
    // A batch that fails (a patron who does not exist) fails the append.
    let mut writer = store.begin_run(&run).unwrap();
    assert!(writer.append(&[score("ghost")]).is_err());
}

fn planned_runs_are_shared_by_lease(store: &mut dyn Backend) {
    library(store, &["a", "b", "c", "d", "e"]);
    let run = ScoreRun {
        plugin: "engagement".into(),
        version: "1".into(),
        as_of: day("2026-11-28"),
        fields: None,
    };
    let score = |p: &str| Scored {
        patron: p.into(),
        value: 60.0,
        segment: "key-reader".into(),
        reasons: Vec::new(),
    };
    let ranges = store.patron_ranges(2).unwrap();
    assert_eq!(ranges.len(), 3);
    let id = store.plan_run(&run, &ranges).unwrap();
    assert!(store.runs().unwrap().is_empty(), "a planned run is unseen");
    let scorers = ["engagement@1".to_string()];
    assert_eq!(store.runs_in_progress(&scorers).unwrap(), 1);
    assert!(
        store
            .claim_range("w1", &["engagement@2".to_string()], 100, 10)
            .unwrap()
            .is_none(),
        "only a worker with the run's scorer, in its version, claims its ranges"
    );
    let first = store.claim_range("w1", &scorers, 100, 10).unwrap().unwrap();
    let second = store.claim_range("w2", &scorers, 100, 10).unwrap().unwrap();
    assert_eq!((first.run, first.range, second.range), (id, 0, 1));
    assert_eq!((first.lo.as_str(), first.hi.as_str()), ("a", "b"));
    assert_eq!(first.scorer.plugin, "engagement");
    let third = store.claim_range("w2", &scorers, 100, 10).unwrap().unwrap();
    assert_eq!(third.range, 2);
    assert!(
        store
            .claim_range("w3", &scorers, 105, 10)
            .unwrap()
            .is_none(),
        "every range is held"
    );
    // w1's lease ends unused; w3 takes the range over, and w1's late
    // scores are refused.
    let retaken = store.claim_range("w3", &scorers, 111, 10).unwrap().unwrap();
    assert_eq!((retaken.range, retaken.claims), (0, 2));
    assert_eq!(
        store
            .store_range(&first, "w1", &[score("a"), score("b")])
            .unwrap(),
        RangeStored::Lost
    );
    assert_eq!(
        store
            .store_range(&second, "w2", &[score("c"), score("d")])
            .unwrap(),
        RangeStored::Stored {
            run_complete: false
        }
    );
    assert_eq!(
        store
            .store_range(&second, "w2", &[score("c"), score("d")])
            .unwrap(),
        RangeStored::Lost,
        "a range is stored once"
    );
    assert_eq!(
        store.store_range(&third, "w2", &[score("e")]).unwrap(),
        RangeStored::Stored {
            run_complete: false
        }
    );
    assert!(store.runs().unwrap().is_empty(), "one range is missing");
    assert_eq!(
        store
            .store_range(&retaken, "w3", &[score("a"), score("b")])
            .unwrap(),
        RangeStored::Stored { run_complete: true }
    );
    let runs = store.runs().unwrap();
    assert_eq!((runs.len(), runs[0].id, runs[0].patrons), (1, id, 5));
    assert_eq!(
        store.segment_members("engagement", "key-reader").unwrap(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(store.runs_in_progress(&scorers).unwrap(), 0);
    assert!(
        store
            .claim_range("w1", &scorers, 200, 10)
            .unwrap()
            .is_none()
    );
}

fn erasure_moves_range_edges(store: &mut dyn Backend) {
    library(store, &["a", "b", "c", "d"]);
    let run = ScoreRun {
        plugin: "engagement".into(),
        version: "1".into(),
        as_of: day("2026-11-28"),
        fields: None,
    };
    let score = |p: &str| Scored {
        patron: p.into(),
        value: 60.0,
        segment: "key-reader".into(),
        reasons: Vec::new(),
    };
    let scorers = ["engagement@1".to_string()];
    let ranges = store.patron_ranges(2).unwrap();
    let id = store.plan_run(&run, &ranges).unwrap();
    for gone in ["a", "d"] {
        store.erase_patron(gone, &[]).unwrap();
        assert!(
            store.traces_of(gone).unwrap().is_empty(),
            "{gone} is still in {:?}",
            store.traces_of(gone).unwrap()
        );
    }
    let first = store.claim_range("w", &scorers, 100, 10).unwrap().unwrap();
    let second = store.claim_range("w", &scorers, 100, 10).unwrap().unwrap();
    assert_eq!(
        (
            first.lo.as_str(),
            first.hi.as_str(),
            second.lo.as_str(),
            second.hi.as_str()
        ),
        ("b", "b", "c", "c")
    );
    store.store_range(&first, "w", &[score("b")]).unwrap();
    // A patron erased while their range was being scored is not stored.
    assert_eq!(
        store
            .store_range(&second, "w", &[score("c"), score("d")])
            .unwrap(),
        RangeStored::Stored { run_complete: true }
    );
    let runs = store.runs().unwrap();
    assert_eq!((runs[0].id, runs[0].patrons), (id, 2));

    // A range that loses its only patron is done, and the run completes
    // without it; a complete run's ranges name nobody.
    let ranges = store.patron_ranges(1).unwrap();
    let id = store.plan_run(&run, &ranges).unwrap();
    store.erase_patron("b", &[]).unwrap();
    assert!(store.traces_of("b").unwrap().is_empty());
    let only = store.claim_range("w", &scorers, 200, 10).unwrap().unwrap();
    assert_eq!((only.run, only.lo.as_str()), (id, "c"));
    assert!(store.claim_range("w", &scorers, 200, 10).unwrap().is_none());
    assert_eq!(
        store.store_range(&only, "w", &[score("c")]).unwrap(),
        RangeStored::Stored { run_complete: true }
    );
    store.erase_patron("c", &[]).unwrap();
    assert!(store.traces_of("c").unwrap().is_empty());
    store
        .plan_run(&run, &[("x".to_string(), "x".to_string())])
        .unwrap();
    store.erase_patron("x", &[]).unwrap();
    assert_eq!(
        store.runs_in_progress(&scorers).unwrap(),
        0,
        "a run whose every range lost its patrons is complete"
    );
}

fn daily_locks_have_one_holder(store: &mut dyn Backend) {
    let held = store.daily_lock("notify").unwrap().expect("a free lock");
    assert!(
        store.daily_lock("notify").unwrap().is_none(),
        "a held lock is refused"
    );
    let other = store.daily_lock("score").unwrap();
    assert!(other.is_some(), "each job has its own lock");
    drop(held);
    assert!(
        store.daily_lock("notify").unwrap().is_some(),
        "a lock let go is free again"
    );
}

/// A patron with a row of every kind: record, attributes, loan, hold, use,
/// score, message, preferences.
fn everything_about(store: &mut dyn Backend, id: &str) {
    library(store, &[id, "other"]);
    let run = ScoreRun {
        plugin: "engagement".into(),
        version: "1.0.0".into(),
        as_of: day("2026-11-28"),
        fields: None,
    };
    let scores = [id, "other"].map(|p| Scored {
        patron: p.to_string(),
        value: 50.0,
        segment: "regular".into(),
        reasons: vec!["borrows".into()],
    });
    store.save_run(&run, &scores).unwrap();
    store
        .enqueue(&[queued(id, &format!("k-{id}")), queued("other", "k-other")])
        .unwrap();
    store
        .set_preferences(
            id,
            &Preferences {
                notice_days: Some(5),
                ..Preferences::default()
            },
        )
        .unwrap();
    store
        .accept_event(&checkout_event("koha", &format!("ev-{id}"), id), Utc::now())
        .unwrap();
}

fn erasure_leaves_nothing(store: &mut dyn Backend) {
    let id = "erase-me";
    everything_about(store, id);
    assert!(!store.traces_of(id).unwrap().is_empty());
    let erased = store.erase_patron(id, &["t-erase-me".to_string()]).unwrap();
    assert_eq!(
        (erased.patrons, erased.loans, erased.holds, erased.uses),
        (1, 1, 1, 1)
    );
    assert_eq!((erased.scores, erased.messages, erased.events), (1, 1, 1));
    assert_eq!(
        store.traces_of(id).unwrap(),
        Vec::<String>::new(),
        "the store still holds the erased patron"
    );
    assert_eq!(store.patron_data(id, day("2026-11-28")).unwrap(), None);
    assert!(!store.has_patron(id).unwrap());
    // The other patron is untouched.
    assert!(store.has_patron("other").unwrap());
    assert_eq!(
        store.run_scores(store.runs().unwrap()[0].id).unwrap().len(),
        1
    );
    assert_eq!(
        store
            .erase_patron(id, &["t-erase-me".to_string()])
            .unwrap()
            .patrons,
        0
    );
}

fn erasure_leaves_a_tombstone(store: &mut dyn Backend) {
    library(store, &["gone"]);
    assert!(!store.import("csv").unwrap().has_tombstones());
    store.erase_patron("gone", &["t-gone".to_string()]).unwrap();
    let mut tx = store.import("csv").unwrap();
    assert!(tx.has_tombstones());
    assert!(tx.is_erased("t-gone").unwrap(), "the tombstone is kept");
    assert!(!tx.is_erased("t-other").unwrap());
    tx.readmit("t-gone").unwrap();
    assert!(!tx.is_erased("t-gone").unwrap(), "a readmission lifts it");
    drop(tx);
    let mut tx = store.import("csv").unwrap();
    assert!(
        tx.is_erased("t-gone").unwrap(),
        "a readmission not committed lifts nothing"
    );
}

fn card_numbers_and_rekeying(store: &mut dyn Backend) {
    let mut tx = store.import("koha-csv").unwrap();
    let mut by_card = patron("2900123");
    by_card.patron.card_number = Some("2900123".into());
    tx.put_patron(&by_card).unwrap();
    tx.put_loan(&loan("L-card", "2900123", "2026-11-01"))
        .unwrap();
    assert_eq!(
        tx.card_holder("2900123").unwrap().as_deref(),
        Some("2900123")
    );
    assert_eq!(tx.card_holder("nobody's").unwrap(), None);
    tx.commit(Written::default(), 0).unwrap();
    let mut tx = store.import("koha").unwrap();
    tx.rekey_patron("2900123", "51").unwrap();
    let mut by_id = patron("51");
    by_id.patron.card_number = Some("2900123".into());
    assert_eq!(tx.put_patron(&by_id).unwrap(), Put::Updated);
    assert_eq!(tx.card_holder("2900123").unwrap().as_deref(), Some("51"));
    tx.commit(Written::default(), 0).unwrap();
    assert!(!store.has_patron("2900123").unwrap());
    let p = store.patron("51", day("2026-11-28")).unwrap().unwrap();
    assert_eq!(
        p.activity.unwrap().loans_30d,
        1,
        "the loan followed its patron to the new id"
    );
    assert_eq!(store.patron_count().unwrap(), 1);
}

fn addresses_round_trip(store: &mut dyn Backend) {
    let mut tx = store.import("csv").unwrap();
    let mut p = patron("a");
    let lines = vec!["12 Main Street".to_string(), "Springfield IL 62701".into()];
    p.patron.address = Some(lines.clone());
    tx.put_patron(&p).unwrap();
    tx.commit(Written::default(), 0).unwrap();
    let back = store.patron("a", day("2026-11-28")).unwrap().unwrap();
    assert_eq!(back.address, Some(lines));
}

fn export_has_every_section(store: &mut dyn Backend) {
    let id = "export-me";
    everything_about(store, id);
    let data = store
        .patron_data(id, day("2026-11-28"))
        .unwrap()
        .expect("the patron's data");
    assert_eq!(data.patron.name.as_deref(), Some("Reader export-me"));
    assert!(data.patron.attributes.is_some());
    assert_eq!(data.patron.activity.map(|a| a.loans_30d), Some(1));
    assert!(data.active);
    assert_eq!(data.source, "csv");
    assert_eq!(data.preferences.notice_days, Some(5));
    assert_eq!(
        (data.loans.len(), data.holds.len(), data.uses.len()),
        (1, 1, 1)
    );
    assert_eq!(data.loans[0].patron, id);
    assert_eq!(data.scores.len(), 1);
    assert_eq!(data.scores[0].scorer.plugin, "engagement");
    assert_eq!(data.messages.len(), 1);
    assert_eq!(data.messages[0].state, MessageState::Queued);
    assert_eq!(
        store.patron_data("nobody", day("2026-11-28")).unwrap(),
        None
    );
}

fn runs_are_atomic_and_ordered(store: &mut dyn Backend) {
    library(store, &["a", "b"]);
    let run = |v: &str| ScoreRun {
        plugin: "engagement".into(),
        version: v.into(),
        as_of: day("2026-11-28"),
        fields: None,
    };
    let score = |p: &str, value: f32| Scored {
        patron: p.into(),
        value,
        segment: if value > 50.0 {
            "key-reader"
        } else {
            "regular"
        }
        .into(),
        reasons: vec![format!("{value}")],
    };
    let first = store
        .save_run(&run("1"), &[score("a", 40.0), score("b", 90.0)])
        .unwrap();
    // A run with a score for a patron who does not exist fails whole.
    assert!(
        store
            .save_run(&run("2"), &[score("a", 10.0), score("ghost", 10.0)])
            .is_err()
    );
    assert_eq!(store.runs().unwrap().len(), 1, "a failed run left a trace");
    let with_fields = ScoreRun {
        fields: Some(vec![Field::Category, Field::Activity]),
        ..run("3")
    };
    let second = store.save_run(&with_fields, &[score("a", 70.0)]).unwrap();
    assert!(second > first);
    let latest = store.latest_runs("engagement", 2).unwrap();
    assert_eq!(
        latest.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!(latest[1].patrons, 2);
    assert_eq!(latest[0].run.version, "3");
    assert_eq!(
        latest[0].run.fields,
        Some(vec![Field::Category, Field::Activity]),
        "a run keeps the fields its scorer received"
    );
    assert_eq!(latest[1].run.fields, None);
    assert!(store.latest_runs("other-scorer", 2).unwrap().is_empty());
    let scores = store.run_scores(first).unwrap();
    assert_eq!(
        scores.iter().map(|s| s.patron.as_str()).collect::<Vec<_>>(),
        ["b", "a"],
        "highest first"
    );
    assert_eq!(scores[0].category.as_deref(), Some("staff"));
    assert_eq!(scores[0].reasons, ["90"]);
    assert_eq!(
        store.segment_members("engagement", "key-reader").unwrap(),
        ["a"]
    );
}

fn outbox_leases(store: &mut dyn Backend) {
    library(store, &["a"]);
    let added = store
        .enqueue(&[queued("a", "k1"), queued("a", "k1")])
        .unwrap();
    assert_eq!((added.added, added.duplicates), (1, 1));
    assert!(store.has_message("k1").unwrap());
    assert_eq!(store.messages_on("a", day("2026-11-28")).unwrap(), 1);
    let now = at("2026-11-28") + Duration::hours(1);
    let lease = now + Duration::minutes(5);
    let claimed = store.claim(now, lease, &[Channel::Email]).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].email.as_deref(), Some("a@example.org"));
    assert!(
        store
            .claim(now, lease, &[Channel::Email])
            .unwrap()
            .is_empty(),
        "a leased message is not claimed twice"
    );
    // The deliverer died: after its lease, another takes the message.
    let later = lease + Duration::seconds(1);
    let again = store
        .claim(later, later + Duration::minutes(5), &[Channel::Email])
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    store.settle(&[again[0].id], &Settle::Sent, later).unwrap();
    assert!(
        store
            .claim(
                later + Duration::hours(1),
                later + Duration::hours(2),
                &[Channel::Email]
            )
            .unwrap()
            .is_empty()
    );
    let stats = store.outbox_stats().unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].sent, 1);
    let listed = store.outbox_messages(Some(MessageState::Sent), 10).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(store.next_due(&[Channel::Email]).unwrap(), None);
}

fn preferences_cancel_what_they_refuse(store: &mut dyn Backend) {
    library(store, &["a"]);
    assert_eq!(
        store.preferences("a").unwrap(),
        Some(Preferences::default())
    );
    assert_eq!(store.preferences("nobody").unwrap(), None);
    store
        .enqueue(&[queued("a", "k1"), queued("a", "k2")])
        .unwrap();
    let prefs = Preferences {
        no_marketing: true,
        opted_out: vec![Channel::Sms],
        ..Preferences::default()
    };
    assert_eq!(store.set_preferences("a", &prefs).unwrap(), 2);
    assert_eq!(store.preferences("a").unwrap(), Some(prefs));
    // An import from the ILS leaves them as they are.
    library(store, &["a"]);
    assert!(store.preferences("a").unwrap().unwrap().no_marketing);
}

fn audit_chain_verifies(store: &mut dyn Backend) {
    assert_eq!(verify(store, KEY).unwrap().broken_at, None);
    for (i, when) in ["2026-11-01", "2026-11-02", "2026-11-03"]
        .iter()
        .enumerate()
    {
        audit(store, KEY, when, &format!("tok{i}"));
    }
    let check = verify(store, KEY).unwrap();
    assert_eq!((check.entries, check.broken_at), (3, None));
    assert_eq!(
        verify(store, b"another key").unwrap().broken_at,
        Some(1),
        "the chain holds under its own key only"
    );
    let naming = store.audit_rows_naming(&["tok1".to_string()]).unwrap();
    assert_eq!(naming.len(), 1);
    assert_eq!(naming[0].seq, 2);
    assert_eq!(naming[0].fields, "category,activity");
    assert!(
        store
            .audit_rows_naming(&["tok9".to_string()])
            .unwrap()
            .is_empty()
    );
}

fn retention_keeps_the_chain(store: &mut dyn Backend) {
    library(store, &["a"]);
    for when in ["2019-01-01", "2019-06-01", "2026-11-01"] {
        audit(store, KEY, when, "tok");
    }
    let chain = AuditChain::new(KEY);
    let retained = store
        .apply_retention(
            day("2026-11-28"),
            &Retention::default(),
            &|removed, head| chain.reanchor(removed, head),
        )
        .unwrap();
    assert_eq!(retained.audit_removed, 2);
    let check = verify(store, KEY).unwrap();
    assert_eq!((check.entries, check.broken_at), (3, None));
    audit(store, KEY, "2026-11-29", "tok");
    assert_eq!(verify(store, KEY).unwrap().broken_at, None);
    // The loan, hold and use are recent: nothing else went.
    assert_eq!(
        (
            retained.loans_aged,
            retained.holds_removed,
            retained.uses_removed
        ),
        (0, 0, 0)
    );
    let far = store
        .apply_retention(
            day("2032-01-01"),
            &Retention::default(),
            &|removed, head| chain.reanchor(removed, head),
        )
        .unwrap();
    assert_eq!(
        (far.holds_removed, far.uses_removed),
        (0, 1),
        "an open hold stays"
    );
    assert_eq!(far.loans_aged, 0, "a loan still out is never removed");
    assert_eq!(verify(store, KEY).unwrap().broken_at, None);
    // The link of the last entry retention removed is the anchor's base;
    // the link of one still there is its row's.
    assert!(store.audit_link(2).unwrap().is_some());
    assert!(store.audit_link(1).unwrap().is_none());
    assert!(store.audit_link(4).unwrap().is_some());
    assert!(store.audit_link(99).unwrap().is_none());
}

fn the_key_fingerprint_is_recorded_once(store: &mut dyn Backend) {
    assert_eq!(store.key_fingerprint().unwrap(), None);
    store.set_key_fingerprint("SHA256:aa").unwrap();
    assert_eq!(
        store.key_fingerprint().unwrap().as_deref(),
        Some("SHA256:aa")
    );
    store.set_key_fingerprint("SHA256:bb").unwrap();
    assert_eq!(
        store.key_fingerprint().unwrap().as_deref(),
        Some("SHA256:aa"),
        "a recorded fingerprint is never replaced"
    );
}

fn installed(id: &str, version: &str, digest: &str) -> crate::store::InstalledPlugin {
    crate::store::InstalledPlugin {
        id: id.into(),
        version: version.into(),
        world: "scorer".into(),
        digest: digest.into(),
        component_sha256: "ab".repeat(32),
        signer: Some("0123456789abcdef".into()),
        enabled: true,
        fields: vec!["category".into(), "activity".into()],
        events: None,
        config: [("busy-at".to_string(), "12".to_string())].into(),
        source: "engagement-0.1.0.tar".into(),
        installed_at: at("2026-11-28"),
    }
}

fn registry_round_trips(store: &mut dyn Backend) {
    assert!(
        store.installed().unwrap().is_empty(),
        "a new store has no plugins"
    );
    let v1 = installed("engagement", "0.1.0", "sha256:01");
    store.put_installed(&v1, b"package one").unwrap();
    let mut other = installed("alpha", "1.0.0", "sha256:02");
    other.events = Some(vec!["hold-ready".into()]);
    other.signer = None;
    store.put_installed(&other, b"package two").unwrap();
    assert_eq!(
        store.installed_plugin("engagement").unwrap(),
        Some(v1.clone())
    );
    let ids: Vec<String> = store
        .installed()
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["alpha", "engagement"], "listed by id");
    assert_eq!(
        store.package("sha256:01").unwrap().as_deref(),
        Some(&b"package one"[..])
    );

    // An upgrade replaces the row, and the old package goes with it.
    let v2 = installed("engagement", "0.2.0", "sha256:03");
    store.put_installed(&v2, b"package three").unwrap();
    assert_eq!(store.installed_plugin("engagement").unwrap(), Some(v2));
    assert_eq!(
        store.package("sha256:01").unwrap(),
        None,
        "the old package is gone"
    );
    assert_eq!(store.installed().unwrap().len(), 2);

    assert!(store.remove_installed("engagement").unwrap());
    assert!(
        !store.remove_installed("engagement").unwrap(),
        "removed once"
    );
    assert_eq!(store.package("sha256:03").unwrap(), None);
    assert_eq!(store.installed_plugin("alpha").unwrap(), Some(other));
}

fn trust_and_settings_round_trip(store: &mut dyn Backend) {
    let key = crate::store::TrustedKey {
        key_id: "0123456789abcdef".into(),
        name: "Publisher".into(),
        public_key: vec![7; 32],
        added_at: at("2026-11-28"),
    };
    assert!(store.trust_key(&key).unwrap());
    assert!(!store.trust_key(&key).unwrap(), "trusted once");
    assert_eq!(store.trusted_keys().unwrap(), vec![key.clone()]);
    assert!(store.distrust_key(&key.key_id).unwrap());
    assert!(store.trusted_keys().unwrap().is_empty());

    assert_eq!(store.setting("privacy-policy").unwrap(), None);
    store.set_setting("privacy-policy", Some("strict")).unwrap();
    store
        .set_setting("privacy-policy", Some("baseline"))
        .unwrap();
    assert_eq!(
        store.setting("privacy-policy").unwrap().as_deref(),
        Some("baseline")
    );
    store.set_setting("privacy-policy", None).unwrap();
    assert_eq!(store.setting("privacy-policy").unwrap(), None);
}

/// A checkout event from `source` with `id`, for `patron`.
fn checkout_event(source: &str, id: &str, patron: &str) -> InboxEvent {
    InboxEvent {
        source: source.into(),
        id: id.into(),
        kind: "checkout".into(),
        at: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
        patron: Some(patron.into()),
        change: Some(Circulation::Loan(LoanFields {
            id: format!("loan-{id}"),
            item: None,
            title: Some("A Book".into()),
            subject: None,
            loaned_on: day("2026-11-20"),
            due_on: Some(day("2026-12-18")),
            returned_on: None,
            renewals: 0,
        })),
    }
}

fn inbox_takes_and_applies_once(store: &mut dyn Backend) {
    library(store, &["a"]);
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 1).unwrap();
    let event = checkout_event("koha", "e1", "a");
    assert!(store.accept_event(&event, now).unwrap(), "a new event");
    assert!(
        !store.accept_event(&event, now).unwrap(),
        "the same event again"
    );
    // The same id from another source is another event.
    assert!(
        store
            .accept_event(&checkout_event("folio", "e1", "a"), now)
            .unwrap()
    );
    let pending = store.pending_events(10).unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].event, event, "in order of arrival, as accepted");
    assert_eq!(
        store.apply_event(pending[0].seq, now).unwrap(),
        Some(Outcome::Applied)
    );
    assert_eq!(
        store.apply_event(pending[0].seq, now).unwrap(),
        None,
        "applied once"
    );
    assert!(store.loan("loan-e1").unwrap().is_some());
    assert_eq!(store.unnotified_events(10).unwrap().len(), 1);
    store.mark_notified(pending[0].seq).unwrap();
    assert!(store.unnotified_events(10).unwrap().is_empty());
    // One for a patron not held yet is skipped, kept, and put back in line
    // once the patron is there.
    store
        .accept_event(&checkout_event("koha", "e2", "b"), now)
        .unwrap();
    let later = store.pending_events(10).unwrap();
    let seq = later.iter().find(|r| r.event.id == "e2").unwrap().seq;
    assert_eq!(store.apply_event(seq, now).unwrap(), Some(Outcome::Skipped));
    assert_eq!(store.requeue_skipped().unwrap(), 0, "b is still not held");
    library(store, &["a", "b"]);
    assert_eq!(store.requeue_skipped().unwrap(), 1);
    assert_eq!(store.apply_event(seq, now).unwrap(), Some(Outcome::Applied));
    let stats = store.inbox_stats().unwrap();
    assert_eq!((stats.pending, stats.applied, stats.skipped), (1, 2, 0));
}

fn staff_accounts_round_trip(store: &mut dyn Backend) {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
    let account = StaffAccount {
        name: "desk".into(),
        role: "circulation-desk".into(),
        key_id: "0123456789ab".into(),
        created_at: at,
        expires_at: Some(at + Duration::days(30)),
        revoked_at: None,
    };
    assert!(store.add_staff(&account, "hash-1").unwrap());
    assert!(
        !store.add_staff(&account, "hash-2").unwrap(),
        "the name is in use"
    );
    let (found, hash) = store.staff_by_key("0123456789ab").unwrap().unwrap();
    assert_eq!((found, hash.as_str()), (account.clone(), "hash-1"));
    assert!(store.staff_by_key("ba9876543210").unwrap().is_none());
    assert!(store.revoke_staff("desk", at).unwrap());
    assert!(!store.revoke_staff("desk", at).unwrap(), "revoked already");
    assert_eq!(store.staff_accounts().unwrap()[0].revoked_at, Some(at));
    let renewed = StaffAccount {
        key_id: "fedcba987654".into(),
        ..account
    };
    assert!(
        store.add_staff(&renewed, "hash-3").unwrap(),
        "a revoked name is free"
    );
    assert!(store.staff_by_key("0123456789ab").unwrap().is_none());
    let (found, _) = store.staff_by_key("fedcba987654").unwrap().unwrap();
    assert_eq!(found.revoked_at, None);
}

fn job_history_newest_first(store: &mut dyn Backend) {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
    let first = store.start_job("score", at).unwrap();
    store
        .end_job(first, at + Duration::minutes(1), true, "run 1")
        .unwrap();
    let second = store.start_job("notify", at + Duration::hours(5)).unwrap();
    store
        .end_job(second, at + Duration::hours(5), false, "a plugin failed")
        .unwrap();
    let runs = store.job_runs(None, 10).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second, first]
    );
    assert_eq!(
        (runs[0].state.as_str(), runs[1].state.as_str()),
        ("failed", "ok")
    );
    let scores = store.job_runs(Some("score"), 10).unwrap();
    assert_eq!((scores.len(), scores[0].summary.as_str()), (1, "run 1"));
}

fn reader_links_and_answers(store: &mut dyn Backend) {
    use crate::store::{Answer, ReaderLink, SurveyAnswers};
    library(store, &["a", "b"]);
    let link = |id: &str, patron: &str, purpose: &str| ReaderLink {
        id: id.into(),
        patron: patron.into(),
        purpose: purpose.into(),
        expires_at: at("2026-12-30"),
        used_at: None,
    };
    assert!(store.add_link(&link("l1", "a", "preferences")).unwrap());
    assert!(
        !store.add_link(&link("l1", "b", "verify")).unwrap(),
        "an id is issued once; the first row stays"
    );
    assert_eq!(
        store.link("l1").unwrap(),
        Some(link("l1", "a", "preferences"))
    );
    assert!(store.use_link("l1", at("2026-12-01")).unwrap());
    assert!(
        !store.use_link("l1", at("2026-12-02")).unwrap(),
        "used once"
    );
    assert_eq!(
        store.link("l1").unwrap().unwrap().used_at,
        Some(at("2026-12-01"))
    );
    assert!(!store.use_link("nope", at("2026-12-01")).unwrap());

    let answers = |patron: Option<&str>| SurveyAnswers {
        survey: "reading".into(),
        patron: patron.map(str::to_string),
        category: Some("staff".into()),
        segment: None,
        locale: "zh-CN".into(),
        answered_on: day("2026-12-01"),
        use_for_service: patron.is_some(),
        answers: [
            (
                "formats".to_string(),
                Answer::Multiple(vec!["ebook".into()]),
            ),
            ("wish".to_string(), Answer::Text("更多, \"电子书\"".into())),
        ]
        .into(),
        attributes: Vec::new(),
    };
    store.add_link(&link("s1", "a", "survey:reading")).unwrap();
    store.add_link(&link("s2", "b", "survey:reading")).unwrap();
    assert!(
        store
            .add_answers("s1", &answers(None), at("2026-12-01"))
            .unwrap()
    );
    assert!(
        !store
            .add_answers("s1", &answers(None), at("2026-12-01"))
            .unwrap(),
        "a used link stores nothing"
    );
    assert!(
        store
            .add_answers("s2", &answers(Some("b")), at("2026-12-01"))
            .unwrap()
    );
    // Answers of one day come in no order: nothing tells an anonymous one
    // by when it arrived.
    let mut got = store.survey_answers("reading").unwrap();
    got.sort_by(|x, y| x.patron.cmp(&y.patron));
    assert_eq!(got, vec![answers(None), answers(Some("b"))]);
    assert_eq!(
        store.link("s1").unwrap().unwrap().used_at,
        Some(Utc.from_utc_datetime(&day("2026-12-01").and_hms_opt(0, 0, 0).unwrap())),
        "an anonymous answer's link keeps the day only"
    );
    // One answer per reader per survey, whichever invitation's link.
    store.add_link(&link("s2b", "b", "survey:reading")).unwrap();
    assert!(
        !store
            .add_answers("s2b", &answers(Some("b")), at("2026-12-02"))
            .unwrap(),
        "a second invitation's link cannot answer again"
    );
    assert_eq!(store.answers_of("b").unwrap(), vec![answers(Some("b"))]);
    assert!(
        store.answers_of("a").unwrap().is_empty(),
        "anonymous answers name no one"
    );
    assert_eq!(store.patrons_from("csv").unwrap(), vec!["a", "b"]);
    assert!(store.patrons_from("web").unwrap().is_empty());

    let erased = store.erase_patron("b", &[]).unwrap();
    assert_eq!((erased.links, erased.answers), (2, 1));
    assert_eq!(
        store.survey_answers("reading").unwrap(),
        vec![answers(None)]
    );
    assert!(
        store.link("s2").unwrap().is_none(),
        "erasure takes the patron's links"
    );

    // A linked answer the reader lets the library use becomes an
    // attribute, which the next import keeps.
    store.add_link(&link("s3", "a", "survey:needs")).unwrap();
    let used = SurveyAnswers {
        survey: "needs".into(),
        attributes: vec![("survey.formats".into(), "ebook".into())],
        use_for_service: true,
        ..answers(Some("a"))
    };
    assert!(store.add_answers("s3", &used, at("2026-12-01")).unwrap());
    library(store, &["a"]);
    let a = store.patron("a", day("2026-12-01")).unwrap().unwrap();
    let attrs = a.attributes.unwrap_or_default();
    assert_eq!(
        attrs.get("survey.formats").map(String::as_str),
        Some("ebook")
    );
    assert_eq!(attrs.get("department").map(String::as_str), Some("History"));
}
