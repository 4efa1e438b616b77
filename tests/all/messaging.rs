//! The `messenger` world end to end, with the `notices` plugin.

use chrono::NaiveDate;
use lectern::{Channel, ComposeReport, Event, EventKind, Loan, Patron};
use lectern_tests::{host, patron, pipeline, plugins, sample_events, sample_patrons};

fn compose(events: &[Event], patrons: &[Patron]) -> ComposeReport {
    let (host, _) = host();
    let notices = host.load_messenger(plugins::NOTICES).unwrap();
    pipeline().compose(&notices, events, patrons).unwrap()
}

fn overdue(id: &str, patron: &str, days: u32) -> Event {
    Event {
        id: id.into(),
        patron: patron.into(),
        at: "2026-11-28T08:00:00Z".parse().unwrap(),
        kind: EventKind::Overdue {
            loan: Loan {
                title: "Mechanics of Materials".into(),
                barcode: None,
                due_on: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                renewals: 0,
            },
            days_overdue: days,
        },
    }
}

#[test]
fn notices_are_written_in_the_patrons_language() {
    let report = compose(&sample_events(), &sample_patrons());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let for_event = |e: &str| report.messages.iter().find(|m| m.event == e).unwrap();

    let hold = for_event("E1001"); // Wang Li, zh-CN
    assert_eq!(hold.locale, "zh-CN");
    assert!(hold.subject.contains("预约到馆"), "{hold:?}");
    assert!(hold.body.starts_with("Wang Li，您好"), "{hold:?}");

    let due = for_event("E1002"); // Margaret Okafor, en
    assert_eq!(due.locale, "en");
    assert_eq!(due.subject, "Due in 2 days: Evidence in the Digital Age");
    assert!(due.body.contains("Dear Margaret Okafor,"), "{due:?}");
}

#[test]
fn today_comes_from_the_host() {
    let (host, _) = host();
    let notices = host.load_messenger(plugins::NOTICES).unwrap();
    let events = sample_events();
    let tomorrow = pipeline()
        .as_of(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap())
        .compose(&notices, &events, &sample_patrons())
        .unwrap();
    let due = tomorrow
        .messages
        .iter()
        .find(|m| m.event == "E1002")
        .unwrap();
    assert_eq!(due.subject, "Due tomorrow: Evidence in the Digital Age");
}

#[test]
fn overdue_notices_escalate() {
    let events = [
        overdue("O1", "P0002", 2),
        overdue("O2", "P0002", 8),
        overdue("O3", "P0002", 30),
    ];
    let report = compose(&events, &sample_patrons());
    let subjects: Vec<&str> = report.messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "Overdue reminder: Mechanics of Materials",
            "Second overdue notice: Mechanics of Materials",
            "Final overdue notice: Mechanics of Materials",
        ]
    );
    let keys: std::collections::HashSet<_> =
        report.messages.iter().map(|m| &m.dedupe_key).collect();
    assert_eq!(keys.len(), 3, "each stage is its own notice");
}

#[test]
fn the_first_reachable_preferred_channel_is_used() {
    // Chen Jie prefers SMS and has a phone.
    let chen = compose(&[overdue("O1", "P0003", 1)], &sample_patrons());
    assert_eq!(chen.messages[0].channel, Channel::Sms);
    assert_eq!(chen.messages[0].subject, "", "an SMS has no subject");

    // Without a phone, the next preference, email.
    let mut no_phone = patron("P0003");
    no_phone.phone = None;
    let chen = compose(&[overdue("O1", "P0003", 1)], &[no_phone]);
    assert_eq!(chen.messages[0].channel, Channel::Email);

    // Tom prefers print.
    let tom = compose(&[overdue("O1", "P0005", 1)], &sample_patrons());
    assert_eq!(tom.messages[0].channel, Channel::Print);
}

#[test]
fn events_for_unknown_patrons_or_unhandled_kinds_are_reported_not_dropped() {
    let survey = Event {
        id: "S1".into(),
        patron: "P0001".into(),
        at: "2026-11-28T08:00:00Z".parse().unwrap(),
        kind: EventKind::SurveyInvitation {
            title: "Reader survey".into(),
            url: "https://lib.example/s".into(),
        },
    };
    let report = compose(&[overdue("O1", "NOBODY", 3), survey], &sample_patrons());
    assert!(report.messages.is_empty());
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.event.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("O1", "no patron with id `NOBODY`"),
            ("S1", "no notice for this event"),
        ]
    );
}

#[test]
fn dedupe_keys_are_deterministic() {
    let a = compose(&sample_events(), &sample_patrons());
    let b = compose(&sample_events(), &sample_patrons());
    let keys = |r: &ComposeReport| {
        r.messages
            .iter()
            .map(|m| m.dedupe_key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&a), keys(&b));
}

/// A copy of `rogue-messenger` in `mode`.
fn rogue(mode: &str) -> tempfile::TempDir {
    lectern_tests::plugin_copy(plugins::ROGUE_MESSENGER, |m| {
        m.replace("mode = \"neighbour\"", &format!("mode = \"{mode}\""))
    })
}

#[test]
fn a_messenger_never_sees_two_patrons_in_one_call() {
    let (host, _) = host();
    let dir = rogue("neighbour");
    let messenger = host.load_messenger(dir.path()).unwrap();
    // Three overdue loans of three readers, composed in one batch.
    let readers = ["P0002", "P0003", "P0004"];
    let events: Vec<Event> = readers
        .iter()
        .enumerate()
        .map(|(i, p)| overdue(&format!("E{i}"), p, 3))
        .collect();
    let patrons: Vec<Patron> = readers.iter().map(|p| patron(p)).collect();
    let report = pipeline().compose(&messenger, &events, &patrons).unwrap();
    assert_eq!(report.messages.len(), 3, "{:?}", report.skipped);
    for m in &report.messages {
        let own = patrons.iter().find(|p| p.id == m.patron).unwrap();
        for other in patrons.iter().filter(|p| p.id != m.patron) {
            let name = other.name.as_deref().unwrap();
            assert!(
                !m.body.contains(name),
                "{}'s message carries {name}: {}",
                m.patron,
                m.body
            );
        }
        assert!(m.body.contains(own.name.as_deref().unwrap()), "{}", m.body);
    }
}

#[test]
fn a_messenger_that_floods_or_overflows_a_channel_fails_alone() {
    let (host, _) = host();
    let event = overdue("E1", "P0002", 3);
    for (mode, says) in [
        (
            "flood",
            "5000 messages for event `E1`; at most one per channel",
        ),
        (
            "twice",
            "2 messages on email for event `E1`; at most one per channel",
        ),
        (
            "long-sms",
            "10008 bytes on sms for event `E1`, over the cap of 1600",
        ),
    ] {
        let dir = rogue(mode);
        let messenger = host.load_messenger(dir.path()).unwrap();
        let err = pipeline()
            .compose(&messenger, std::slice::from_ref(&event), &[patron("P0002")])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("plugin `rogue-messenger`"), "{mode}: {text}");
        assert!(text.contains(says), "{mode}: {text}");
    }
    // The real messenger is unaffected.
    assert_eq!(compose(&[event], &[patron("P0002")]).messages.len(), 1);
}
