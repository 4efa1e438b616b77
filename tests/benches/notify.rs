//! `cargo xtask bench notify [PATRONS]`: notices for a generated library,
//! each step against a native baseline in the same process.
//!
//! - Compose and enqueue: the real messenger plugins (notices,
//!   recommendations, outreach) through the privacy pipeline and the
//!   library's rules into the outbox, against the same messages formatted
//!   natively and written to the same outbox.
//! - Delivery: to a local SMTP server (aiosmtpd, every hand-over audited, as
//!   `lectern deliver` does), and to a maildir (audited too), against the
//!   same messages claimed from the outbox and written to a maildir by a
//!   plain loop with no audit.
//! - Peak memory (VmHWM).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lectern::{
    Campaigns, Config, EventKind, Format, Host, ImportOptions, Lectern, Outbox, Queued,
    SqliteStore, Store, Transport as _, Until,
};
use lectern_tests::{keyring, plugins, repo};

fn main() {
    let patrons = lectern_tests::bench_size(100_000);
    let dir = tempfile::tempdir().unwrap();
    let today = lectern_tests::as_of();
    let now: DateTime<Utc> = "2026-11-28T02:00:00Z".parse().unwrap();
    let (_, files) = lectern_tests::generated_library(dir.path(), patrons);
    let db = dir.path().join("lectern.db");
    let mut store = SqliteStore::open(&db).unwrap();
    lectern::import(
        &mut store,
        Format::Csv,
        &files,
        ImportOptions {
            strict: true,
            ..Default::default()
        },
        &lectern::Pseudonyms::ephemeral(),
        &mut |_| {},
    )
    .unwrap();

    let host = Host::builder()
        .cache_dir(repo().join("target/bench-cache"))
        .build()
        .unwrap();
    drop(store);
    let config = Config::parse(
        &format!(
            "[notify]\nutc-offset = \"+08:00\"\nquiet-hours = \"none\"\ndaily-limit = 10\n\
             [privacy]\npolicy = {:?}\n",
            plugins::BASELINE_PRIVACY
        ),
        Path::new("."),
    )
    .unwrap();
    let mut library = Lectern::open(
        &host,
        SqliteStore::open(&db).unwrap(),
        keyring(),
        config.clone(),
    )
    .unwrap();
    // Segments for the win-back and the early hold.
    for scorer in [plugins::CHURN_RISK, plugins::KEY_READERS] {
        let scorer = host.load_scorer(scorer).unwrap();
        library
            .score_store(&scorer, today, lectern::Keep::Top(0), &mut |_, _| {})
            .unwrap();
    }
    let campaigns = Campaigns {
        arrivals: ["QD", "HB", "K", "PS", "QA"]
            .iter()
            .enumerate()
            .map(|(i, s)| lectern::Arrival {
                id: format!("b{i}"),
                title: format!("New title {i}"),
                subject: (*s).to_string(),
            })
            .collect(),
        survey: None,
        awareness: None,
    };
    let messengers: Vec<_> = [
        plugins::NOTICES,
        plugins::RECOMMENDATIONS,
        plugins::OUTREACH,
    ]
    .iter()
    .map(|p| host.load_messenger(p).unwrap())
    .collect();
    let baseline_db = dir.path().join("baseline.db");
    std::fs::copy(&db, &baseline_db).unwrap();

    println!("| measure | value |\n|---|---|");
    let t = Instant::now();
    let events = library.detect(&campaigns, now).unwrap();
    let detect = t.elapsed();
    println!(
        "| patrons | {patrons} |\n| events found | {} in {:.2} s |",
        events.len(),
        detect.as_secs_f64()
    );

    let t = Instant::now();
    let report = library
        .compose_and_queue(&messengers, &events, now)
        .unwrap();
    let wasm = t.elapsed();

    // Baseline: the same events, the patrons read at once, a message formatted
    // in Rust, the same outbox written in one transaction.
    let mut baseline = SqliteStore::open(&baseline_db).unwrap();
    let t = Instant::now();
    let mut queue = Vec::new();
    let mut ids: Vec<String> = events.iter().map(|e| e.patron.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let patrons: std::collections::HashMap<String, lectern::Patron> = baseline
        .patrons_among(&ids, today)
        .unwrap()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    for e in &events {
        let Some(p) = patrons.get(&e.patron) else {
            continue;
        };
        if e.kind.is_marketing() && !p.consents.is_some_and(|c| c.marketing) {
            continue;
        }
        let channel = p
            .channels
            .as_ref()
            .and_then(|c| c.first().copied())
            .unwrap_or(lectern::Channel::Print);
        let (subject, body) = native_text(&e.kind, p.name.as_deref().unwrap_or("reader"));
        queue.push(Queued {
            dedupe_key: lectern::dedupe_key(e, channel, "native", ""),
            patron: e.patron.clone(),
            event: e.id.clone(),
            event_kind: e.kind.name().to_string(),
            marketing: e.kind.is_marketing(),
            plugin: "native".into(),
            channel,
            locale: "en".into(),
            subject,
            body,
            day: today,
            digest: false,
            not_before: now,
        });
    }
    let native_queued = baseline.enqueue(&queue).unwrap().added;
    let native = t.elapsed();
    println!(
        "| compose + enqueue, plugins through the privacy pipeline | {} messages in {:.2} s = **{:.0} messages/s** |",
        report.queued,
        wasm.as_secs_f64(),
        report.queued as f64 / wasm.as_secs_f64()
    );
    println!(
        "| compose + enqueue, native baseline | {native_queued} messages in {:.2} s = {:.0} messages/s |",
        native.as_secs_f64(),
        native_queued as f64 / native.as_secs_f64()
    );
    println!(
        "| per message, plugins / native | {:.1}× |",
        (wasm.as_secs_f64() / report.queued as f64) / (native.as_secs_f64() / native_queued as f64)
    );
    println!(
        "| peak RSS after notify | {} MiB |",
        lectern_tests::peak_kib() / 1024
    );

    // Delivery: the same outbox twice, once to SMTP and once to a maildir.
    drop(library);
    let maildir_db = dir.path().join("maildir.db");
    std::fs::copy(&db, &maildir_db).unwrap();
    let native_db = dir.path().join("native.db");
    std::fs::copy(&db, &native_db).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink_out = dir.path().join("smtp.jsonl");
    let mut sink = Command::new("python3")
        .arg(repo().join("tests/support/smtp_sink.py"))
        .arg(port.to_string())
        .arg(&sink_out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sink.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the SMTP sink needs aiosmtpd");
    let deliver = |db: &Path, channel: String| {
        let config = Config::parse(
            &format!("[notify]\nquiet-hours = \"none\"\n[channels.email]\n{channel}"),
            dir.path(),
        )
        .unwrap();
        let mut library =
            Lectern::open(&host, SqliteStore::open(db).unwrap(), keyring(), config).unwrap();
        let t = Instant::now();
        let r = library.deliver(Until::NothingDue, &mut |_| {}).unwrap();
        (r.sent, r.sends, t.elapsed())
    };
    let (smtp_sent, smtp_sends, smtp) = deliver(
        &db,
        format!(
            "transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             from = \"Library <library@example.org>\"\n"
        ),
    );
    let (audited_sent, _, audited) = deliver(
        &maildir_db,
        "transport = \"maildir\"\ndir = \"maildir\"\n".to_string(),
    );
    // The baseline: claim, write, settle, one message at a time, no audit.
    let (dir_sent, maildir) = {
        let mut store = SqliteStore::open(&native_db).unwrap();
        let out = lectern::Maildir::new(dir.path().join("native")).unwrap();
        let t = Instant::now();
        let mut sent = 0;
        loop {
            let at = Utc::now();
            let batch = store
                .claim(
                    at,
                    at + chrono::Duration::minutes(5),
                    &[lectern::Channel::Email],
                )
                .unwrap();
            if batch.is_empty() {
                break;
            }
            for c in &batch {
                out.send(&lectern::Outgoing {
                    id: c.dedupe_key.clone(),
                    channel: c.channel,
                    to: c.email.clone(),
                    patron: None,
                    events: vec![c.event_kind.clone()],
                    locale: c.locale.clone(),
                    subject: c.subject.clone(),
                    body: c.body.clone(),
                    preferences_url: None,
                    unsubscribe_url: None,
                    recipient: None,
                })
                .unwrap();
            }
            let ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
            store.settle(&ids, &lectern::Settle::Sent, at).unwrap();
            sent += ids.len();
        }
        (sent, t.elapsed())
    };
    let _ = sink.kill();
    let _ = sink.wait();
    let received = std::fs::read_to_string(&sink_out).unwrap().lines().count();
    // A letter carries every message of one patron and day: one email.
    assert_eq!(
        received, smtp_sends,
        "every email the deliverer sent arrived"
    );
    println!(
        "| delivery to local SMTP (aiosmtpd) | {smtp_sent} messages in {smtp_sends} emails in {:.2} s = **{:.0} emails/s** |",
        smtp.as_secs_f64(),
        smtp_sends as f64 / smtp.as_secs_f64()
    );
    println!(
        "| delivery to a maildir, native loop without audit (baseline) | {dir_sent} files in {:.2} s = {:.0} files/s |",
        maildir.as_secs_f64(),
        dir_sent as f64 / maildir.as_secs_f64()
    );
    println!(
        "| delivery to a maildir by `deliver`, every hand-over audited | {audited_sent} files in {:.2} s = {:.0} files/s ({:+.0}%) |",
        audited.as_secs_f64(),
        audited_sent as f64 / audited.as_secs_f64(),
        (audited.as_secs_f64() / maildir.as_secs_f64() - 1.0) * 100.0
    );
    println!("| peak RSS | {} MiB |", lectern_tests::peak_kib() / 1024);
}

/// A notice as a native composer would write it: the baseline.
fn native_text(kind: &EventKind, name: &str) -> (String, String) {
    let (subject, what) = match kind {
        EventKind::DueSoon { loan } => (format!("Due soon: {}", loan.title), loan.title.clone()),
        EventKind::Overdue { loan, days_overdue } => (
            format!("Overdue: {}", loan.title),
            format!("{} is {days_overdue} days overdue", loan.title),
        ),
        EventKind::HoldReady { hold } | EventKind::HoldExpiring { hold } => (
            format!("Ready for pickup: {}", hold.title),
            hold.pickup_branch.clone(),
        ),
        EventKind::NewArrival { title, subject } => {
            (format!("New in {subject}: {title}"), title.clone())
        }
        other => (other.name().to_string(), String::new()),
    };
    (
        subject,
        format!("Dear {name},\n\n{what}\n\nCity University Library"),
    )
}
