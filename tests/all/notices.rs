//! Notices end to end: events found in the store, composed by the real
//! messenger plugins, queued in the outbox under the library's rules, and
//! delivered to a real SMTP server, a signed webhook and a maildir.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use lectern::{
    Campaigns, Channel, Config, Consents, DeliverReport, Event, HoldRecord, Lectern, LoanRecord,
    MessageState, Messenger, Outbox, Patron, PatronRecord, Preferences, Queued, Runs, ScoreRun,
    Scored, SqliteStore, Store, Until, Written,
};
use lectern_tests::{
    host, keyring, lectern_bin, maildir_files as files, plugins, repo, shared_host,
};

/// The library over the same file as `store`, under `config` with
/// `baseline-privacy` as its policy unless it names one: what `lectern
/// notify` and `lectern deliver` open.
fn lib(store: &SqliteStore, config: &Config) -> Lectern {
    let mut config = config.clone();
    config
        .policy
        .get_or_insert_with(|| plugins::BASELINE_PRIVACY.into());
    lectern_tests::keyring_beside(store.path());
    Lectern::open(
        shared_host(),
        SqliteStore::open(store.path()).unwrap(),
        keyring(),
        config,
    )
    .unwrap()
}

/// 10:00 in the library (Asia/Shanghai, UTC+8) on the tests' day.
fn now() -> DateTime<Utc> {
    "2026-11-28T02:00:00Z".parse().unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
}

fn day(offset: i64) -> NaiveDate {
    if offset >= 0 {
        today() + Days::new(offset as u64)
    } else {
        today() - Days::new((-offset) as u64)
    }
}

fn reader(id: &str, name: &str, locale: &str, channels: &[Channel], marketing: bool) -> Patron {
    Patron {
        id: id.into(),
        name: Some(name.into()),
        email: Some(format!("{}@example.org", id.to_lowercase())),
        phone: Some(format!("+86 138 0000 {id}")),
        locale: Some(locale.into()),
        category: Some("graduate".into()),
        expires_on: Some(day(400)),
        channels: Some(channels.to_vec()),
        consents: Some(Consents {
            reading_history: marketing,
            marketing,
        }),
        ..Patron::default()
    }
}

fn loan(id: &str, patron: &str, title: &str, subject: &str, due: i64) -> LoanRecord {
    LoanRecord {
        id: id.into(),
        patron: patron.into(),
        item: Some(format!("item-{id}")),
        title: Some(title.into()),
        subject: Some(subject.into()),
        loaned_on: day(due - 28),
        due_on: Some(day(due)),
        returned_on: None,
        renewals: 0,
    }
}

/// A small library:
/// - `ana` (English, email, consents to everything): a loan due in 2 days,
///   one 8 days overdue, a hold waiting that expires tomorrow;
/// - `li` (Chinese, SMS, no marketing): a loan due in 2 days, membership
///   expiring in 10 days;
/// - `cleo` (English, email, consents): chemistry reader, returned loans only;
/// - `dev` (English, email, no consent): chemistry reader too.
fn library(path: &Path) -> SqliteStore {
    let mut store = SqliteStore::open(path).unwrap();
    let mut li = reader("li", "李明", "zh-CN", &[Channel::Sms], false);
    li.expires_on = Some(day(10));
    let patrons = [
        reader("ana", "Ana Souza", "en", &[Channel::Email], true),
        li,
        reader("cleo", "Cleo Park", "en", &[Channel::Email], true),
        reader("dev", "Dev Rao", "en", &[Channel::Email], false),
    ];
    let mut tx = store.import("test").unwrap();
    for p in &patrons {
        tx.put_patron(&PatronRecord {
            patron: p.clone(),
            active: true,
            source: "test".into(),
        })
        .unwrap();
    }
    for l in [
        loan("L1", "ana", "Organic Chemistry", "QD", 2),
        loan("L2", "ana", "Physical Chemistry", "QD", -8),
        loan("L3", "li", "红楼梦", "I", 2),
        LoanRecord {
            returned_on: Some(day(-20)),
            ..loan("L4", "cleo", "Inorganic Chemistry", "QD", -30)
        },
        LoanRecord {
            returned_on: Some(day(-20)),
            ..loan("L5", "dev", "Analytical Chemistry", "QD", -30)
        },
    ] {
        tx.put_loan(&l).unwrap();
    }
    tx.put_hold(&HoldRecord {
        id: "H1".into(),
        patron: "ana".into(),
        title: Some("Molecular Biology of the Cell".into()),
        placed_on: day(-10),
        status: Some("Open - Awaiting pickup".into()),
        pickup_branch: Some("MAIN".into()),
        expires_on: Some(day(1)),
    })
    .unwrap();
    tx.commit(Written::default(), 0).unwrap();
    store
}

/// The library's rules in Asia/Shanghai without quiet hours, and a daily limit of
/// 10 unless `extra` sets one.
fn config(extra: &str) -> Config {
    let limit = if extra.contains("daily-limit") {
        ""
    } else {
        "daily-limit = 10\n"
    };
    Config::parse(
        &format!("[notify]\ntimezone = \"Asia/Shanghai\"\nquiet-hours = \"none\"\n{limit}{extra}"),
        Path::new("."),
    )
    .unwrap()
}

fn messengers() -> Vec<Messenger> {
    let (host, _) = host();
    [
        plugins::NOTICES,
        plugins::RECOMMENDATIONS,
        plugins::OUTREACH,
    ]
    .iter()
    .map(|p| host.load_messenger(p).unwrap())
    .collect()
}

fn arrivals() -> Campaigns {
    Campaigns {
        arrivals: vec![lectern::Arrival {
            id: "b1".into(),
            title: "Green Chemistry".into(),
            subject: "QD".into(),
        }],
        ..Campaigns::default()
    }
}

/// Detects and queues as of `at`.
fn notify_at(
    store: &mut SqliteStore,
    config: &Config,
    campaigns: &Campaigns,
    at: DateTime<Utc>,
) -> lectern::NotifyReport {
    lib(store, config)
        .notify(&messengers(), campaigns, true, Vec::new(), at)
        .unwrap()
}

fn maildir_config(dir: &Path, extra: &str) -> Config {
    config(&format!(
        "{extra}\n[channels.email]\ntransport = \"maildir\"\ndir = \"{0}/email\"\n\
         [channels.sms]\ntransport = \"maildir\"\ndir = \"{0}/sms\"\n\
         [channels.print]\ntransport = \"maildir\"\ndir = \"{0}/print\"\n",
        dir.display()
    ))
}

fn deliver(store: &mut SqliteStore, config: &Config) -> DeliverReport {
    lib(store, config)
        .deliverer()
        .unwrap()
        .run(store, Until::NothingDue, &mut |_| {})
        .unwrap()
}

/// Delivers until the outbox is empty, waiting out retries, for at most
/// `secs` seconds.
fn deliver_all(store: &mut SqliteStore, config: &Config, secs: i64) -> DeliverReport {
    lib(store, config)
        .deliverer()
        .unwrap()
        .run(
            store,
            Until::Empty {
                deadline: Utc::now() + chrono::Duration::seconds(secs),
            },
            &mut |_| {},
        )
        .unwrap()
}

/// Writes (or rewrites) `patrons`, as an import from the ILS does.
fn put_patrons(store: &mut SqliteStore, patrons: impl IntoIterator<Item = Patron>) {
    let mut tx = store.import("test").unwrap();
    for patron in patrons {
        tx.put_patron(&PatronRecord {
            patron,
            active: true,
            source: "test".into(),
        })
        .unwrap();
    }
    tx.commit(Written::default(), 0).unwrap();
}

/// Runs `c`, which must succeed, and reads its `--json` output.
fn json_of(c: &mut Command) -> serde_json::Value {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn circulation_events_are_found_composed_and_queued_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let config = config("");
    let events = lib(&store, &config)
        .detect(&Campaigns::default(), now())
        .unwrap();
    let mut kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.patron.clone(), e.kind.name().to_string()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("ana", "due-soon"),
            ("ana", "hold-expiring"),
            ("ana", "hold-ready"),
            ("ana", "overdue"),
            ("li", "due-soon"),
            ("li", "membership-expiring"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Eight days overdue is past the 7-day step, not yet the 14-day one.
    let overdue = events.iter().find(|e| e.kind.name() == "overdue").unwrap();
    assert!(overdue.id.ends_with("/7"), "{}", overdue.id);

    let first = notify_at(&mut store, &config, &Campaigns::default(), now());
    assert_eq!(first.queued, 6, "{first:#?}");
    assert!(first.skipped.is_empty(), "{:#?}", first.skipped);
    // The same day, and the next: nothing is queued twice.
    let again = notify_at(&mut store, &config, &Campaigns::default(), now());
    assert_eq!((again.queued, again.duplicates), (0, 6));
    let tomorrow = notify_at(
        &mut store,
        &config,
        &Campaigns::default(),
        now() + chrono::Duration::days(1),
    );
    assert_eq!(tomorrow.queued, 0, "{tomorrow:#?}");

    let messages = store.outbox_messages(None, 100).unwrap();
    let li: Vec<_> = messages.iter().filter(|m| m.patron == "li").collect();
    assert!(li.iter().all(|m| m.channel == "sms"), "{li:#?}");
    assert_eq!(li.len(), 2, "{li:#?}");
}

#[test]
fn a_patrons_advance_notice_days_decide_when_due_soon_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    store
        .set_preferences(
            "li",
            &Preferences {
                notice_days: Some(1),
                ..Preferences::default()
            },
        )
        .unwrap();
    let found = |at: DateTime<Utc>| -> Vec<String> {
        lib(&store, &config(""))
            .detect(&Campaigns::default(), at)
            .unwrap()
            .into_iter()
            .filter(|e| e.patron == "li" && e.kind.name() == "due-soon")
            .map(|e| e.id)
            .collect()
    };
    assert!(found(now()).is_empty(), "due in 2 days, notice 1 day");
    assert_eq!(found(now() + chrono::Duration::days(1)).len(), 1);
}

#[test]
fn marketing_needs_consent_and_reading_history_and_stops_at_the_daily_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let report = notify_at(&mut store, &config(""), &arrivals(), now());
    let arrivals: Vec<_> = store
        .outbox_messages(None, 100)
        .unwrap()
        .into_iter()
        .filter(|m| m.event_kind == "new-arrival")
        .collect();
    let to: HashSet<&str> = arrivals.iter().map(|m| m.patron.as_str()).collect();
    // ana and cleo consented; dev did not, and no one else borrows in QD.
    assert_eq!(to, HashSet::from(["ana", "cleo"]));
    let dev: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| s.patron == "dev")
        .collect();
    assert_eq!(dev.len(), 1, "{dev:#?}");
    assert!(dev[0].reason.contains("reading history"), "{dev:#?}");

    // Consent is read again at sending: cleo withdraws the use of her
    // reading history, and her new-arrival message, built on it, is
    // cancelled; ana's still goes.
    rusqlite::Connection::open(store.path())
        .unwrap()
        .execute_batch("UPDATE patrons SET consent_reading_history = 0 WHERE id = 'cleo'")
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    deliver(&mut store, &maildir_config(out.path(), ""));
    let states: Vec<(String, MessageState, Option<String>)> = store
        .outbox_messages(None, 100)
        .unwrap()
        .into_iter()
        .filter(|m| m.event_kind == "new-arrival")
        .map(|m| (m.patron, m.state, m.error))
        .collect();
    for (patron, state, why) in &states {
        match patron.as_str() {
            "cleo" => {
                assert_eq!(*state, MessageState::Cancelled, "{states:?}");
                assert!(why.as_deref().unwrap_or("").contains("reading history"));
            }
            _ => assert_eq!(*state, MessageState::Sent, "{states:?}"),
        }
    }

    // ana already has four notices today: with a limit of 3, marketing stops.
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let report = notify_at(
        &mut store,
        &config("daily-limit = 3\n"),
        &self::arrivals(),
        now(),
    );
    let limited: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| s.reason.contains("daily limit"))
        .collect();
    assert_eq!(limited.len(), 1, "{:#?}", report.skipped);
    assert_eq!(limited[0].patron, "ana");
    // Transactional notices still all went.
    let ana = store.outbox_messages(None, 100).unwrap();
    assert_eq!(
        ana.iter()
            .filter(|m| m.patron == "ana" && m.event_kind != "new-arrival")
            .count(),
        4
    );
}

#[test]
fn key_readers_get_the_early_hold_and_lapsed_readers_a_win_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let scored = |patron: &str, segment: &str| Scored {
        patron: patron.into(),
        value: 80.0,
        segment: segment.into(),
        reasons: vec![],
    };
    let run = |plugin: &str| ScoreRun {
        plugin: plugin.into(),
        version: "0.1.0".into(),
        as_of: today(),
        fields: None,
    };
    store
        .save_run(
            &run("key-readers"),
            &[scored("ana", "key-reader"), scored("cleo", "regular")],
        )
        .unwrap();
    store
        .save_run(
            &run("churn-risk"),
            &[scored("cleo", "high-risk"), scored("dev", "high-risk")],
        )
        .unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let config = maildir_config(dirs.path(), "");
    let report = notify_at(&mut store, &config, &arrivals(), now());
    // dev has not consented to marketing: no win-back for them.
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.patron == "dev" && s.reason.contains("marketing")),
        "{report:#?}"
    );
    deliver(&mut store, &config);
    let mail = files(&dirs.path().join("email"));
    let find = |to: &str, subject: &str| {
        mail.iter()
            .find(|m| m.contains(&format!("To: {to}")) && m.contains(subject))
            .unwrap_or_else(|| panic!("no `{subject}` to {to} in {mail:#?}"))
            .clone()
    };
    assert!(find("ana@example.org", "Green Chemistry").contains("place the first hold"));
    assert!(!find("cleo@example.org", "Green Chemistry").contains("place the first hold"));
    let win_back = find("cleo@example.org", "missed you");
    // cleo consented to reading history: the message names her subject.
    assert!(win_back.contains("new in QD"), "{win_back}");
}

#[test]
fn quiet_hours_hold_everything_but_print_until_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    // Quiet from an hour ago to an hour from now, on the library's clock.
    let real = Utc::now();
    let hm = |t: DateTime<Utc>| t.format("%H:%M").to_string();
    let quiet = format!(
        "quiet-hours = \"{}-{}\"\n",
        hm(real - chrono::Duration::hours(1)),
        hm(real + chrono::Duration::hours(1))
    );
    let dirs = tempfile::tempdir().unwrap();
    let mut full = maildir_config(dirs.path(), "");
    full.notify = Config::parse(
        &format!("[notify]\nutc-offset = \"+00:00\"\n{quiet}"),
        Path::new("."),
    )
    .unwrap()
    .notify;
    let report = notify_at(&mut store, &full, &Campaigns::default(), real);
    assert_eq!(report.held_for_quiet_hours, report.queued, "{report:#?}");
    let sent = deliver(&mut store, &full);
    assert_eq!(sent.sent, 0, "nothing goes in quiet hours: {sent:?}");
    let stats = store.outbox_stats().unwrap();
    assert!(
        stats.iter().all(|s| s.sent == 0 && s.queued > 0),
        "{stats:#?}"
    );
    assert!(files(&dirs.path().join("email")).is_empty());
}

#[test]
fn opting_out_cancels_queued_marketing_and_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    notify_at(&mut store, &config(""), &arrivals(), now());
    let queued = |store: &SqliteStore, patron: &str| {
        store
            .outbox_messages(Some(MessageState::Queued), 100)
            .unwrap()
            .into_iter()
            .filter(|m| m.patron == patron)
            .map(|m| m.event_kind)
            .collect::<Vec<_>>()
    };
    assert!(queued(&store, "ana").contains(&"new-arrival".to_string()));
    let cancelled = store
        .set_preferences(
            "ana",
            &Preferences {
                no_marketing: true,
                ..Preferences::default()
            },
        )
        .unwrap();
    assert_eq!(cancelled, 1);
    assert!(!queued(&store, "ana").contains(&"new-arrival".to_string()));
    assert_eq!(queued(&store, "ana").len(), 4, "transactional notices stay");
    // A re-import of the patron from the ILS does not undo the opt-out.
    put_patrons(
        &mut store,
        [reader("ana", "Ana Souza", "en", &[Channel::Email], true)],
    );
    assert!(store.preferences("ana").unwrap().unwrap().no_marketing);
    let report = notify_at(&mut store, &config(""), &arrivals(), now());
    assert_eq!(report.queued, 0, "{report:#?}");

    // Opting out of SMS cancels li's queued SMS; her notices come on paper.
    assert_eq!(
        store
            .set_preferences(
                "li",
                &Preferences {
                    opted_out: vec![Channel::Sms],
                    ..Preferences::default()
                },
            )
            .unwrap(),
        2
    );
    notify_at(&mut store, &config(""), &Campaigns::default(), now());
    let li: Vec<_> = store
        .outbox_messages(Some(MessageState::Queued), 100)
        .unwrap()
        .into_iter()
        .filter(|m| m.patron == "li")
        .map(|m| m.channel)
        .collect();
    assert_eq!(li, ["print", "print"]);
}

#[test]
fn a_digest_gathers_the_days_notices_into_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    store
        .set_preferences(
            "ana",
            &Preferences {
                digest: true,
                ..Preferences::default()
            },
        )
        .unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let config = maildir_config(dirs.path(), "");
    notify_at(&mut store, &config, &Campaigns::default(), now());
    let report = deliver(&mut store, &config);
    let ana: Vec<String> = files(&dirs.path().join("email"))
        .into_iter()
        .filter(|m| m.contains("To: ana@example.org"))
        .collect();
    assert_eq!(ana.len(), 1, "{ana:#?}");
    for subject in [
        "Due in 2 days",
        "overdue",
        "Ready for pickup",
        "Last days to pick up",
    ] {
        assert!(ana[0].contains(subject), "no {subject} in {}", ana[0]);
    }
    assert!(ana[0].contains("Subject: Your library notices for today (4)"));
    assert_eq!(
        report.sends,
        1 + 2,
        "one digest, and li's SMS and membership notice"
    );

    // A notice that comes later the same day waits for tomorrow's digest.
    let events = vec![Event {
        id: "checkout/late".into(),
        patron: "ana".into(),
        at: now(),
        kind: lectern::EventKind::DueSoon {
            loan: lectern::Loan {
                title: "A late loan".into(),
                barcode: None,
                due_on: day(1),
                renewals: 0,
            },
        },
    }];
    lib(&store, &config)
        .compose_and_queue(&messengers(), &events, now())
        .unwrap();
    let later = deliver(&mut store, &config);
    assert_eq!((later.sent, later.postponed), (0, 1), "{later:?}");
}

/// A local SMTP server (aiosmtpd), writing what it receives as JSON lines.
struct SmtpSink {
    child: Child,
    port: u16,
    out: tempfile::NamedTempFile,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let port = lectern_tests::free_port();
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("python3")
            .arg(repo().join("tests/support/smtp_sink.py"))
            .arg(port.to_string())
            .arg(out.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start; `cargo xtask test` installs aiosmtpd"
        );
        SmtpSink { child, port, out }
    }

    fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.out.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_config(port: u16, extra: &str) -> Config {
    config(&format!(
        "{extra}\n[channels.email]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nfrom = \"City Library <library@example.org>\"\ntimeout-secs = 5\n"
    ))
}

#[test]
fn email_arrives_at_a_real_smtp_server_with_subject_body_and_locale() {
    let smtp = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    // li reads Chinese; let her be reached by email this time.
    let mut li = reader("li", "李明", "zh-CN", &[Channel::Email], false);
    li.expires_on = Some(day(10));
    put_patrons(&mut store, [li]);
    let config = smtp_config(
        smtp.port,
        "[readers]\npublic-url = \"https://crm.library.example\"\n",
    );
    notify_at(&mut store, &config, &Campaigns::default(), now());
    let report = deliver(&mut store, &config);
    assert_eq!((report.sent, report.failed), (6, 0), "{report:?}");
    // One letter per reader for the day, listing every notice.
    assert_eq!(report.sends, 2, "{report:?}");
    let mail = smtp.received();
    assert_eq!(mail.len(), 2);
    let to = |addr: &str| -> Vec<&serde_json::Value> {
        mail.iter().filter(|m| m["to"][0] == addr).collect()
    };
    let ana = to("ana@example.org");
    assert_eq!(ana.len(), 1);
    let letter = ana[0];
    assert_eq!(letter["subject"], "Your library notices for today (4)");
    assert_eq!(letter["language"], "en");
    let body = letter["body"].as_str().unwrap();
    assert!(body.contains("Due in 2 days: Organic Chemistry"), "{body}");
    assert!(body.contains("Dear Ana Souza"), "{body}");
    // A preference centre behind every message, and one-click unsubscribe
    // (RFC 8058) in the headers a mail client reads.
    assert!(
        body.contains(
            "Choose how and when the library writes to you: https://crm.library.example/r/p/"
        ),
        "{body}"
    );
    let unsubscribe = letter["list_unsubscribe"].as_str().unwrap();
    assert!(
        unsubscribe.starts_with("<https://crm.library.example/r/u/") && unsubscribe.ends_with('>'),
        "{unsubscribe}"
    );
    assert_eq!(
        letter["list_unsubscribe_post"],
        "List-Unsubscribe=One-Click"
    );
    assert!(
        letter["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@lectern.invalid>")
    );
    let li = to("li@example.org");
    assert_eq!(li.len(), 1);
    let letter = li[0];
    assert_eq!(
        letter["subject"], "图书馆今日通知（2 条）",
        "subject decoded"
    );
    assert_eq!(letter["language"], "zh-CN");
    let body = letter["body"].as_str().unwrap();
    assert!(body.contains("到期提醒：《红楼梦》"), "{body}");
    assert!(body.contains("李明，您好"), "{body}");
}

#[test]
fn a_refused_address_fails_with_its_reason_and_is_not_retried() {
    let smtp = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let mut ana = reader("ana", "Ana Souza", "en", &[Channel::Email], true);
    ana.email = Some("ana@invalid.example".into());
    let mut cleo = reader("cleo", "Cleo Park", "en", &[Channel::Email], true);
    cleo.email = Some("not an address".into());
    put_patrons(&mut store, [ana, cleo]);
    let config = smtp_config(smtp.port, "[deliver]\nretry-after-secs = 0\n");
    notify_at(&mut store, &config, &arrivals(), now());
    let report = deliver_all(&mut store, &config, 20);
    // ana's 4 notices and new-arrival alert, and cleo's alert: all refused.
    assert_eq!(
        (report.failed, report.retried, report.sent),
        (6, 0, 0),
        "{report:?}"
    );
    let failed = store
        .outbox_messages(Some(MessageState::Failed), 100)
        .unwrap();
    assert!(failed.iter().all(|m| m.attempts == 1), "{failed:#?}");
    let reason = |p: &str| {
        failed
            .iter()
            .find(|m| m.patron == p)
            .unwrap()
            .error
            .clone()
            .unwrap()
    };
    assert!(
        reason("ana").contains("No such mailbox"),
        "{}",
        reason("ana")
    );
    assert!(
        reason("cleo").contains("bad email address"),
        "{}",
        reason("cleo")
    );
    assert!(smtp.received().is_empty());
}

#[test]
fn a_server_that_stays_down_is_retried_with_backoff_then_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let config = smtp_config(
        lectern_tests::free_port(),
        "[deliver]\nmax-attempts = 3\nretry-after-secs = 0\n",
    );
    let d = lib(&store, &config).deliverer().unwrap();
    assert_eq!(d.backoff(1), Duration::ZERO);
    let slow = lib(&store, &self::config("[deliver]\nretry-after-secs = 60\n"))
        .deliverer()
        .unwrap();
    assert_eq!(
        [1, 2, 3, 4].map(|a| slow.backoff(a).as_secs()),
        [60, 120, 240, 480]
    );
    assert_eq!(slow.backoff(40).as_secs(), 86_400, "capped at a day");

    notify_at(&mut store, &config, &Campaigns::default(), now());
    let report = deliver_all(&mut store, &config, 30);
    // ana's four emails, each tried 3 times (li's are SMS: no transport).
    assert_eq!((report.retried, report.failed), (8, 4), "{report:?}");
    let failed = store
        .outbox_messages(Some(MessageState::Failed), 100)
        .unwrap();
    assert!(
        failed.iter().all(|m| m.attempts == 3
            && m.error
                .as_deref()
                .unwrap()
                .starts_with("gave up after 3 attempts")),
        "{failed:#?}"
    );
    assert_eq!(report.no_transport.get("sms"), Some(&2));
}

/// A webhook receiver that checks every signature, as an SMS gateway or an
/// ILS would, and records each request by its idempotency key.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    bad_signatures: Arc<Mutex<usize>>,
}

fn receiver(secret: &'static [u8], delay: Duration) -> Receiver {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/notices", server.server_addr().to_ip().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let bad = Arc::new(Mutex::new(0));
    let (r, b) = (requests.clone(), bad.clone());
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let header = |name: &'static str| {
                req.headers()
                    .iter()
                    .find(|h| h.field.equiv(name))
                    .map(|h| h.value.as_str().to_string())
                    .unwrap_or_default()
            };
            let (ts, sig, key) = (
                header("X-Lectern-Timestamp"),
                header("X-Lectern-Signature"),
                header("Idempotency-Key"),
            );
            let mut body = Vec::new();
            req.as_reader().read_to_end(&mut body).unwrap();
            use hmac::Mac as _;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
            mac.update(format!("{ts}.").as_bytes());
            mac.update(&body);
            let ok = sig
                .strip_prefix("sha256=")
                .and_then(|h| hex::decode(h).ok())
                .is_some_and(|s| mac.verify_slice(&s).is_ok());
            std::thread::sleep(delay);
            if ok {
                r.lock()
                    .unwrap()
                    .push((key, serde_json::from_slice(&body).unwrap()));
                let _ = req.respond(tiny_http::Response::empty(202));
            } else {
                *b.lock().unwrap() += 1;
                let _ = req.respond(tiny_http::Response::empty(401));
            }
        }
    });
    Receiver {
        url,
        requests,
        bad_signatures: bad,
    }
}

#[test]
fn webhooks_are_signed_and_carry_only_what_the_channel_needs() {
    let rx = receiver(b"shared secret", Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let config = config(&format!(
        "[channels.sms]\ntransport = \"webhook\"\nurl = \"{0}\"\nsecret = \"shared secret\"\n\
         [channels.email]\ntransport = \"webhook\"\nurl = \"{0}\"\nsecret = \"wrong secret\"\n",
        rx.url
    ));
    notify_at(&mut store, &config, &Campaigns::default(), now());
    let report = deliver(&mut store, &config);
    // li's two SMS pass; ana's four notices go as one email letter with a
    // signature made under the wrong secret, and the receiver refuses it
    // for good (HTTP 401).
    assert_eq!((report.sent, report.failed), (2, 4), "{report:?}");
    assert_eq!(*rx.bad_signatures.lock().unwrap(), 1);
    let requests = rx.requests.lock().unwrap();
    for (key, body) in requests.iter() {
        assert_eq!(body["id"], key.as_str());
        assert_eq!(body["channel"], "sms");
        assert_eq!(body["to"], "+86 138 0000 li");
        assert!(
            body.get("patron").is_none(),
            "no patron id to an SMS gateway"
        );
    }
}

#[test]
fn killed_mid_delivery_nothing_is_lost_and_keys_are_never_delivered_twice() {
    let rx = receiver(b"s3cret", Duration::from_millis(60));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    // 40 transactional notices to 40 readers, over the webhook channel.
    {
        let mut store = SqliteStore::open(&db).unwrap();
        let mut tx = store.import("test").unwrap();
        for i in 0..40 {
            let id = format!("r{i:02}");
            tx.put_patron(&PatronRecord {
                patron: reader(&id, "Reader", "en", &[Channel::Webhook], false),
                active: true,
                source: "test".into(),
            })
            .unwrap();
            tx.put_loan(&loan(&format!("L{i}"), &id, "Some Book", "QA", 1))
                .unwrap();
        }
        tx.commit(Written::default(), 0).unwrap();
    }
    let toml = dir.path().join("lectern.toml");
    std::fs::write(
        &toml,
        format!(
            "[notify]\nquiet-hours = \"none\"\n[deliver]\nlease-secs = 1\n\
             [channels.webhook]\ntransport = \"webhook\"\nurl = \"{}\"\nsecret-env = \"TEST_WEBHOOK_SECRET\"\n\
             [privacy]\npolicy = {:?}\n",
            rx.url,
            plugins::BASELINE_PRIVACY
        ),
    )
    .unwrap();
    let bin = lectern_bin();
    let lectern = || {
        let mut c = Command::new(&bin);
        c.arg("--db")
            .arg(&db)
            .arg("--config")
            .arg(&toml)
            .arg("--cache-dir")
            .arg(repo().join("target/test-cache"))
            .env("TEST_WEBHOOK_SECRET", "s3cret");
        c
    };
    let report = json_of(
        lectern()
            .args(["notify", "--plugin", plugins::NOTICES, "--json"])
            .arg("--now")
            .arg(now().to_rfc3339()),
    );
    assert_eq!(report["queued"], 40, "{report}");

    // Kill -9 twice in the middle of delivery.
    for _ in 0..2 {
        let before = rx.requests.lock().unwrap().len();
        let mut child = lectern()
            .arg("deliver")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while rx.requests.lock().unwrap().len() < before + 8 {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                panic!("deliver ended ({status}) before it could be killed: {err}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "deliver made no progress"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Let the lease of the message in flight run out.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let delivered = json_of(lectern().args(["deliver", "--wait", "30", "--json"]));
    assert_eq!(delivered["failed"], 0, "{delivered}");

    let requests = rx.requests.lock().unwrap();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for (key, _) in requests.iter() {
        *per_key.entry(key.as_str()).or_default() += 1;
    }
    // Nothing lost: every message arrived.
    assert_eq!(per_key.len(), 40);
    // A kill re-sends at most the messages in flight (`parallel`, 4 by
    // default), each once, and with the same idempotency key, so a receiver
    // that honours it delivers each notice exactly once.
    let resent: usize = per_key.values().map(|n| n - 1).sum();
    assert!(
        resent <= 2 * 4,
        "{resent} re-sends after 2 kills: {per_key:?}"
    );
    assert!(per_key.values().all(|&n| n <= 3), "{per_key:?}");
    let stats = json_of(lectern().args(["outbox", "--json"]));
    assert_eq!(stats["channels"][0]["sent"], 40, "{stats}");
    assert_eq!(stats["channels"][0]["queued"], 0, "{stats}");
}

#[test]
fn erasing_a_patron_removes_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    notify_at(&mut store, &config(""), &Campaigns::default(), now());
    let erased = store.erase_patron("ana", &["t-ana".to_string()]).unwrap();
    assert_eq!(erased.messages, 4);
    assert_eq!(store.rows_mentioning("outbox", "ana").unwrap(), 0);
    let left: BTreeMap<String, usize> =
        store
            .outbox_messages(None, 100)
            .unwrap()
            .into_iter()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.patron).or_default() += 1;
                m
            });
    assert_eq!(left, BTreeMap::from([("li".to_string(), 2)]));
}

#[test]
fn retention_removes_settled_messages_past_their_time_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let message = |key: &str, on: NaiveDate| Queued {
        dedupe_key: key.into(),
        patron: "ana".into(),
        event: format!("e-{key}"),
        event_kind: "due-soon".into(),
        marketing: false,
        plugin: "notices".into(),
        // SMS: one message a send, so each is settled on its own.
        channel: Channel::Sms,
        locale: "en".into(),
        subject: "Due".into(),
        body: "Due soon".into(),
        day: on,
        digest: false,
        not_before: now(),
    };
    store
        .enqueue(&[
            message("old-sent", day(-200)),
            message("old-queued", day(-200)),
            message("new-sent", day(-5)),
        ])
        .unwrap();
    // Take all three, one at a time; send two, put one back in the queue.
    let mut all = Vec::new();
    while let Some(c) = store
        .claim(
            now(),
            now() + chrono::Duration::seconds(60),
            &[Channel::Sms],
        )
        .unwrap()
        .pop()
    {
        all.push(c);
    }
    for c in &all {
        let outcome = if c.dedupe_key == "old-queued" {
            lectern::Settle::Postpone { not_before: now() }
        } else {
            lectern::Settle::Sent
        };
        store.settle(&[c.id], &outcome, now()).unwrap();
    }
    let r = lib(&store, &config(""))
        .apply_retention(today(), &lectern::Retention::default())
        .unwrap();
    assert_eq!(r.messages_removed, 1);
    assert!(!store.has_message("old-sent").unwrap());
    assert!(
        store.has_message("old-queued").unwrap(),
        "the queue is kept"
    );
    assert!(store.has_message("new-sent").unwrap());
}

#[test]
fn patron_prefs_on_the_command_line_cancel_what_they_rule_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    let mut store = library(&db);
    notify_at(&mut store, &config(""), &arrivals(), now());
    drop(store);
    let v = json_of(Command::new(lectern_bin()).arg("--db").arg(&db).args([
        "patron",
        "prefs",
        "ana",
        "--marketing",
        "off",
        "--digest",
        "on",
        "--notice-days",
        "5",
        "--json",
    ]));
    assert_eq!(v["cancelled"], 1, "{v}");
    assert_eq!(v["preferences"]["digest"], true);
    assert_eq!(v["preferences"]["notice-days"], 5);
    let out = Command::new(lectern_bin())
        .arg("--db")
        .arg(&db)
        .args(["patron", "prefs", "nobody", "--digest", "on"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no patron with id `nobody`"));
    let out = Command::new(lectern_bin())
        .arg("--db")
        .arg(&db)
        .args(["patron", "prefs", "ana", "--opt-out", "fax"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown channel `fax`"));
}

#[test]
fn a_survey_goes_to_a_stable_sample_of_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    let everyone: Vec<Scored> = ["ana", "li", "cleo", "dev"]
        .iter()
        .map(|p| Scored {
            patron: (*p).into(),
            value: 90.0,
            segment: "key-reader".into(),
            reasons: vec![],
        })
        .collect();
    store
        .save_run(
            &ScoreRun {
                plugin: "key-readers".into(),
                version: "0.1.0".into(),
                as_of: today(),
                fields: None,
            },
            &everyone,
        )
        .unwrap();
    let survey = |sample: f64| Campaigns {
        arrivals: vec![],
        survey: Some(lectern::Survey {
            id: "reading-room-2026".into(),
            title: "Reading room survey".into(),
            url: "https://lib.example.org/survey".into(),
            strata: vec![("key-readers".into(), "key-reader".into(), sample)],
            hosted: false,
        }),
        awareness: None,
    };
    let invited = |sample: f64| -> Vec<String> {
        lib(&store, &config(""))
            .detect(&survey(sample), now())
            .unwrap()
            .into_iter()
            .filter(|e| e.kind.name() == "survey-invitation")
            .map(|e| e.patron)
            .collect()
    };
    assert_eq!(invited(1.0), ["ana", "cleo", "dev", "li"]);
    assert!(invited(0.0).is_empty());
    let half = invited(0.5);
    assert_eq!(half, invited(0.5), "the same sample every time");

    // Only those who consented to marketing get it, from `outreach`.
    let report = notify_at(&mut store, &config(""), &survey(1.0), now());
    let sent: Vec<_> = store
        .outbox_messages(None, 100)
        .unwrap()
        .into_iter()
        .filter(|m| m.event_kind == "survey-invitation")
        .map(|m| (m.patron, m.subject))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?} {report:#?}");
    assert!(
        sent.iter().all(|(p, s)| (p == "ana" || p == "cleo")
            && s == "Tell us what you think: Reading room survey")
    );
}

#[test]
fn a_failing_messenger_fails_alone_and_the_others_messages_are_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = library(&dir.path().join("lib.db"));
    // `notices` with a memory limit below what the component starts with.
    let starved = lectern_tests::plugin_copy(plugins::NOTICES, |m| {
        format!("{m}\n[limits]\nmemory-mib = 1\n")
    });
    let (host, _) = host();
    let messengers = vec![
        host.load_messenger(starved.path()).unwrap(),
        host.load_messenger(plugins::RECOMMENDATIONS).unwrap(),
    ];
    let config = config("");
    let report = lib(&store, &config)
        .notify(&messengers, &arrivals(), true, Vec::new(), now())
        .unwrap();
    assert_eq!(report.failed.len(), 1, "{report:#?}");
    assert!(
        report.failed[0].contains("plugin `notices`") && report.failed[0].contains("memory"),
        "{}",
        report.failed[0]
    );
    // Six circulation events were not composed, and say why.
    let circulation: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| s.reason.contains("notices"))
        .collect();
    assert_eq!(circulation.len(), 6, "{report:#?}");
    // The new-title alerts went into the outbox all the same.
    let queued: Vec<String> = store
        .outbox_messages(None, 100)
        .unwrap()
        .into_iter()
        .map(|m| m.event_kind)
        .collect();
    assert_eq!(queued, ["new-arrival", "new-arrival"]);
}

#[test]
fn every_hand_over_to_a_channel_is_audited_and_shown_to_the_patron() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lib.db");
    let mut store = library(&db);
    let dirs = tempfile::tempdir().unwrap();
    let config = maildir_config(dirs.path(), "");
    notify_at(&mut store, &config, &arrivals(), now());
    let mut library = lib(&store, &config);
    let composed = library.verify_audit().unwrap().entries;
    let report = library.deliver(Until::NothingDue, &mut |_| {}).unwrap();
    // ana's four notices go in one letter, her new-title alert in another.
    assert_eq!((report.sent, report.sends), (8, 5), "{report:?}");
    let check = library.verify_audit().unwrap();
    assert_eq!(
        (check.entries, check.broken_at),
        (composed + 5, None),
        "one entry per hand-over"
    );

    let export = library
        .export_patron("ana", today(), "administrator")
        .unwrap();
    let export = serde_json::to_value(&export).unwrap();
    let reads = export["reads_of_their_data"].as_array().unwrap();
    let handed: Vec<(&str, &str, &str)> = reads
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap(),
                r["purpose"].as_str().unwrap(),
                r["fields"].as_str().unwrap(),
            )
        })
        .collect();
    // A letter of four notices and one new-title alert, each to her email
    // address.
    assert_eq!(
        handed
            .iter()
            .filter(|r| **r == ("email", "messaging-transactional", "email"))
            .count(),
        1,
        "{handed:?}"
    );
    assert_eq!(
        handed
            .iter()
            .filter(|r| **r == ("email", "messaging-marketing", "email"))
            .count(),
        1,
        "{handed:?}"
    );
    // Her messages are in her export too.
    assert_eq!(export["messages"].as_array().unwrap().len(), 5);
}

#[test]
fn only_the_channels_a_patron_chose_are_used_with_print_as_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let store = library(&dir.path().join("lib.db"));
    let config = config("");
    let (host, _) = host();
    let rogue = |mode: &str| {
        let copy = lectern_tests::plugin_copy(plugins::ROGUE_MESSENGER, |m| {
            m.replace("mode = \"neighbour\"", &format!("mode = \"{mode}\""))
        });
        (host.load_messenger(copy.path()).unwrap(), copy)
    };
    let events = lib(&store, &config)
        .detect(&Campaigns::default(), now())
        .unwrap();
    let ana: Vec<Event> = events.into_iter().filter(|e| e.patron == "ana").collect();
    assert!(!ana.is_empty());

    // ana chose email: nothing goes to her by webhook.
    let (webhook, _keep) = rogue("webhook");
    let report = lib(&store, &config)
        .compose_and_queue(&[webhook], &ana, now())
        .unwrap();
    assert_eq!(report.queued, 0, "{report:#?}");
    assert!(
        report
            .skipped
            .iter()
            .all(|s| s.reason == "the patron did not choose webhook; they are reached on email"),
        "{report:#?}"
    );

    // Paper is the fallback for notices about her own loans and holds.
    let (print, _keep) = rogue("print");
    let report = lib(&store, &config)
        .compose_and_queue(&[print], &ana, now())
        .unwrap();
    assert_eq!(report.queued, ana.len(), "{report:#?}");
}

#[test]
fn a_messenger_written_in_python_composes_like_any_other() {
    // Built by componentize-py from plugins/python/pickup.
    let messenger = shared_host().load_messenger(plugins::PICKUP).unwrap();
    let report = lectern_tests::pipeline()
        .compose(
            &messenger,
            &lectern_tests::sample_events(),
            &lectern_tests::sample_patrons(),
        )
        .unwrap();
    let by_event: HashMap<&str, &lectern::Composed> = report
        .messages
        .iter()
        .map(|m| (m.event.as_str(), m))
        .collect();
    // Wang Li reads Chinese and takes email; Okafor reads English.
    let hold = by_event["E1001"];
    assert_eq!((hold.channel, hold.locale.as_str()), (Channel::Email, "zh"));
    assert!(
        hold.subject.contains("Principles of Physical Chemistry"),
        "{hold:?}"
    );
    assert!(hold.body.starts_with("Wang Li，"), "{hold:?}");
    let due = by_event["E1002"];
    assert_eq!((due.channel, due.locale.as_str()), (Channel::Email, "en"));
    assert!(due.body.contains("is due back on 2026-11-30"), "{due:?}");
    assert!(due.body.ends_with("City University Library"), "{due:?}");
    // An event it does not compose fails alone, with the plugin's words.
    let overdue = report.skipped.iter().find(|s| {
        s.reason
            .contains("pickup does not compose EventKind_Overdue")
    });
    assert!(overdue.is_some(), "{:?}", report.skipped);
}

#[test]
fn a_reader_holding_a_wanted_title_hears_how_many_wait_and_never_who() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = library(&dir.path().join("lib.db"));
    // Two readers queue for Ana's "Organic Chemistry" (due in 2 days), a
    // third's hold for it is ready and no longer in the queue; one reader
    // queues for Li's 红楼梦 and one for Ana's overdue "Physical
    // Chemistry".
    let mut tx = store.import("test").unwrap();
    for (id, patron, title, status) in [
        ("Q1", "cleo", "Organic Chemistry", None),
        (
            "Q2",
            "dev",
            "Organic Chemistry",
            Some("Open - Not yet filled"),
        ),
        (
            "Q3",
            "li",
            "Organic Chemistry",
            Some("Open - Awaiting pickup"),
        ),
        ("Q4", "cleo", "红楼梦", Some("")),
        ("Q5", "dev", "Physical Chemistry", None),
    ] {
        tx.put_hold(&HoldRecord {
            id: id.into(),
            patron: patron.into(),
            title: Some(title.into()),
            placed_on: day(-3),
            status: status.map(str::to_string),
            pickup_branch: Some("MAIN".into()),
            expires_on: None,
        })
        .unwrap();
    }
    tx.commit(Written::default(), 0).unwrap();
    // Ana's "Physical Chemistry" is 8 days overdue: at the first step when
    // the steps are 7, 14 and 28 days.
    let config = config("overdue-steps = [7, 14, 28]\n");
    let events = lib(&store, &config)
        .detect(&Campaigns::default(), now())
        .unwrap();
    let wanted: Vec<(String, u32, bool)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            lectern::EventKind::TitleWanted {
                loan,
                waiting,
                overdue,
            } => Some((loan.title.clone(), *waiting, *overdue)),
            _ => None,
        })
        .collect();
    let mut wanted = wanted;
    wanted.sort();
    assert_eq!(
        wanted,
        vec![
            ("Organic Chemistry".to_string(), 2, false),
            ("Physical Chemistry".to_string(), 1, true),
            ("红楼梦".to_string(), 1, false),
        ]
    );

    let report = notify_at(&mut store, &config, &Campaigns::default(), now());
    assert!(report.failed.is_empty(), "{report:#?}");
    let messages = store.outbox_messages(None, 100).unwrap();
    let notes: Vec<_> = messages
        .iter()
        .filter(|m| m.event_kind == "title-wanted")
        .collect();
    assert_eq!(notes.len(), 3, "{notes:#?}");
    let ana: Vec<&str> = notes
        .iter()
        .filter(|m| m.patron == "ana")
        .map(|m| m.subject.as_str())
        .collect();
    assert!(
        ana.contains(&"Others are waiting for \"Organic Chemistry\""),
        "{ana:?}"
    );
    let li = notes.iter().find(|m| m.patron == "li").unwrap();
    assert_eq!(li.channel, "sms");
    // The texts, as the store holds them: how many, never who.
    let conn = rusqlite::Connection::open(dir.path().join("lib.db")).unwrap();
    let bodies: Vec<String> = conn
        .prepare(
            "SELECT body FROM outbox WHERE event_kind = 'title-wanted' ORDER BY patron_id, body",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("2 readers are waiting for \"Organic Chemistry\"")),
        "{bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("1 reader is waiting") && b.contains("Please return it")),
        "{bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("目前有 1 位读者在预约等候")),
        "{bodies:?}"
    );
    // The waiters are Cleo, Dev and (for a hold already ready) Li; each
    // note names only its own recipient.
    for b in &bodies {
        for name in ["Cleo", "Dev", "cleo", "dev"] {
            assert!(!b.contains(name), "a waiting reader is named: {b}");
        }
        assert!(b.starts_with("李明") || !b.contains("李明"), "{b}");
    }
    // Transactional: it goes to a reader who gave no marketing consent.
    assert!(notes.iter().any(|m| m.patron == "li"));
}
