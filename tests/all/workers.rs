//! `lectern worker` on a shared PostgreSQL store: two workers share a
//! scoring run, an outbox and an inbox, and one is killed with SIGKILL in
//! the middle of its work. The run completes with each patron scored once,
//! every message goes out with re-sends within the documented bound, every
//! event is applied in order per patron, and the audit chain verifies.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Utc};
use lectern::{
    Channel, Circulation, Inbox as _, InboxEvent, LoanFields, Outbox as _, Patron, PatronRecord,
    PgStore, Queued, Store as _, Written,
};
use lectern_tests::plugins;

use crate::consortium::{Library, lectern, postgres_url};

/// One value from `query`, run in `library`'s schema.
fn sql(library: &Library, query: &str) -> String {
    let out = Command::new("psql")
        .arg(postgres_url())
        .args([
            "-Atqc",
            &format!("SET search_path TO {}; {query}", library.name),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{query}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn number(library: &Library, query: &str) -> i64 {
    sql(library, query).parse().unwrap()
}

/// Waits up to `secs` for `ready`.
fn wait_for(secs: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn worker(dir: &Path, library: &Library, name: &str, jobs: &str) -> Child {
    lectern(dir, library)
        .args([
            "worker",
            "--name",
            name,
            "--jobs",
            jobs,
            "--once",
            "--idle-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a worker to finish, which must succeed; its output.
fn finished(mut child: Child) -> String {
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(status.success(), "the worker failed: {err}\n{out}");
            return out;
        }
        assert!(Instant::now() < until, "the worker did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `SIG<name>` to `child`.
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

fn kill(mut child: Child) {
    // SIGKILL: the worker gets no chance to let anything go.
    child.kill().unwrap();
    child.wait().unwrap();
}

fn write_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\n\n[notify]\nquiet-hours = \"none\"\n\n{extra}",
            plugins::BASELINE_PRIVACY
        ),
    )
    .unwrap();
}

fn audit_verifies(dir: &Path, library: &Library) {
    let out = lectern_tests::stdout_of(lectern(dir, library).args(["audit", "verify"]));
    assert!(out.contains("intact"), "{out}");
}

#[test]
fn a_worker_killed_mid_range_leaves_a_run_that_completes_with_each_patron_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_config(
        dir,
        &format!(
            "[serve]\nscorers = [{:?}]\nscore-at = \"00:00\"\n",
            plugins::ENGAGEMENT
        ),
    );
    let data = dir.join("data");
    lectern_tests::stdout_of(
        Command::new(lectern_tests::lectern_bin())
            .args(["gen", "--patrons", "3000", "--seed", "11", "--out"])
            .arg(&data),
    );
    let library = Library::new("scoring");
    lectern_tests::stdout_of(
        lectern(dir, &library)
            .args(["import", "--format", "csv"])
            .args(["patrons.csv", "loans.csv", "holds.csv", "use.csv"].map(|f| data.join(f))),
    );
    let patrons = number(&library, "SELECT COUNT(*) FROM patrons");

    let range = ["--range", "150", "--lease-secs", "2"];
    let a = {
        let mut c = lectern(dir, &library);
        c.args(["worker", "--name", "a", "--jobs", "score", "--once"])
            .args(range)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.spawn().unwrap()
    };
    let held_by_a = || {
        number(
            &library,
            "SELECT COUNT(*) FROM run_ranges WHERE worker = 'a' AND NOT done",
        )
    };
    wait_for(120, "worker a to claim a range", || {
        sql(&library, "SELECT to_regclass('run_ranges') IS NOT NULL") == "t" && held_by_a() > 0
    });
    let b = {
        let mut c = lectern(dir, &library);
        c.args([
            "--json", "worker", "--name", "b", "--jobs", "score", "--once",
        ])
        .args(range)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    // Worker a is frozen (SIGSTOP) while it holds a range, so that it
    // cannot finish the range between the look and the kill.
    wait_for(120, "both workers to store ranges, a holding one", || {
        if number(
            &library,
            "SELECT COUNT(DISTINCT worker) FROM run_ranges WHERE done",
        ) < 2
        {
            return false;
        }
        signal(&a, "STOP");
        let holding = held_by_a() > 0;
        if !holding {
            signal(&a, "CONT");
        }
        holding
    });
    kill(a);
    assert!(
        held_by_a() > 0,
        "worker a was killed in the middle of a range"
    );
    let out = finished(b);

    assert_eq!(
        sql(
            &library,
            "SELECT COUNT(*), bool_and(complete) FROM score_runs"
        ),
        "1|t",
        "one run, complete"
    );
    assert_eq!(
        sql(
            &library,
            "SELECT COUNT(*) || '|' || COUNT(DISTINCT patron_id) FROM scores"
        ),
        format!("{patrons}|{patrons}"),
        "each patron scored exactly once"
    );
    assert_eq!(number(&library, "SELECT patrons FROM score_runs"), patrons);
    eprintln!(
        "scoring: {patrons} patrons in {} ranges, {} claimed again after a lease ended",
        number(&library, "SELECT COUNT(*) FROM run_ranges"),
        number(&library, "SELECT COUNT(*) FROM run_ranges WHERE claims > 1")
    );
    assert!(
        number(&library, "SELECT COUNT(*) FROM run_ranges WHERE claims > 1") >= 1,
        "the range worker a held came back after its lease"
    );
    assert!(out.contains("\"run_complete\":true"), "{out}");
    audit_verifies(dir, &library);
}

/// A webhook receiver that takes `delay` over each message and records its
/// subject.
fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let record = record.clone();
            std::thread::spawn(move || {
                let mut body = String::new();
                req.as_reader().read_to_string(&mut body).unwrap();
                std::thread::sleep(delay);
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                record
                    .lock()
                    .unwrap()
                    .push(v["subject"].as_str().unwrap().to_string());
                let _ = req.respond(tiny_http::Response::empty(200));
            });
        }
    });
    (url, seen)
}

#[test]
fn a_worker_killed_mid_delivery_loses_no_message_and_resends_within_the_bound() {
    const MESSAGES: usize = 80;
    const PARALLEL: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (url, seen) = slow_receiver(Duration::from_millis(100));
    write_config(
        dir,
        &format!(
            "[deliver]\nparallel = {PARALLEL}\nlease-secs = 2\n\n\
             [channels.webhook]\ntransport = \"webhook\"\nurl = \"{url}\"\nsecret = \"s3cret\"\n"
        ),
    );
    let library = Library::new("delivery");
    {
        let mut store = PgStore::open(&library.url).unwrap();
        let mut tx = store.import("test").unwrap();
        tx.put_patron(&PatronRecord {
            patron: Patron {
                id: "r1".into(),
                channels: Some(vec![Channel::Webhook]),
                ..Patron::default()
            },
            active: true,
            source: "test".into(),
        })
        .unwrap();
        tx.commit(Written::default(), 0).unwrap();
        let now = Utc::now();
        let messages: Vec<Queued> = (0..MESSAGES)
            .map(|i| Queued {
                dedupe_key: format!("{i:032x}"),
                patron: "r1".into(),
                event: format!("e{i}"),
                event_kind: "due-soon".into(),
                marketing: false,
                plugin: "notices".into(),
                channel: Channel::Webhook,
                locale: "en".into(),
                subject: format!("message {i}"),
                body: "Please bring it back.".into(),
                day: now.date_naive() - chrono::Days::new(i as u64),
                digest: false,
                not_before: now,
            })
            .collect();
        store.enqueue(&messages).unwrap();
    }
    let a = worker(dir, &library, "a", "deliver");
    wait_for(60, "worker a to send some", || {
        seen.lock().unwrap().len() >= 10
    });
    kill(a);
    let b = worker(dir, &library, "b", "deliver");
    finished(b);

    let seen = seen.lock().unwrap().clone();
    for i in 0..MESSAGES {
        assert!(
            seen.contains(&format!("message {i}")),
            "message {i} was never sent"
        );
    }
    let resent = seen.len() - MESSAGES;
    eprintln!(
        "delivery: {} sends for {MESSAGES} messages, {resent} re-sent",
        seen.len()
    );
    assert!(
        resent <= PARALLEL,
        "{resent} re-sent; a killed worker re-sends at most `parallel` = {PARALLEL}"
    );
    assert_eq!(
        sql(
            &library,
            "SELECT COUNT(*) FILTER (WHERE state = 'sent') || '|' || COUNT(*) FROM outbox"
        ),
        format!("{MESSAGES}|{MESSAGES}")
    );
    audit_verifies(dir, &library);
}

#[test]
fn a_worker_killed_mid_drain_leaves_every_event_applied_once_in_order() {
    const READERS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_config(dir, "");
    let library = Library::new("inbox");
    {
        let mut store = PgStore::open(&library.url).unwrap();
        let mut tx = store.import("test").unwrap();
        for r in 0..READERS {
            tx.put_patron(&PatronRecord {
                patron: Patron {
                    id: format!("r{r:03}"),
                    ..Patron::default()
                },
                active: true,
                source: "test".into(),
            })
            .unwrap();
        }
        tx.commit(Written::default(), 0).unwrap();
        // Each reader borrows a book and brings it back: applied out of
        // order, the return would find no loan and the loan would stay
        // open.
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        for step in 0..2 {
            for r in 0..READERS {
                let change = if step == 0 {
                    Circulation::Loan(LoanFields {
                        id: format!("loan-{r}"),
                        item: None,
                        title: Some("A Book".into()),
                        subject: None,
                        loaned_on: day,
                        due_on: Some(day + chrono::Days::new(28)),
                        returned_on: None,
                        renewals: 0,
                    })
                } else {
                    Circulation::Returned {
                        loan: format!("loan-{r}"),
                        on: day + chrono::Days::new(7),
                    }
                };
                let event = InboxEvent {
                    source: "test".into(),
                    id: format!("{step}-{r}"),
                    kind: if step == 0 { "checkout" } else { "checkin" }.into(),
                    at,
                    patron: Some(format!("r{r:03}")),
                    change: Some(change),
                };
                assert!(store.accept_event(&event, at).unwrap());
            }
        }
    }
    let a = worker(dir, &library, "a", "inbox");
    let b = worker(dir, &library, "b", "inbox");
    wait_for(120, "the drain to start", || {
        number(
            &library,
            "SELECT COUNT(*) FROM inbox WHERE processed_at IS NOT NULL",
        ) >= 20
    });
    kill(a);
    assert!(
        number(
            &library,
            "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL"
        ) > 0,
        "worker a was killed in the middle of the drain"
    );
    finished(b);
    let c = worker(dir, &library, "c", "inbox");
    finished(c);

    assert_eq!(
        number(
            &library,
            "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL"
        ),
        0,
        "every event applied"
    );
    assert_eq!(
        sql(
            &library,
            "SELECT COUNT(*) || '|' || COUNT(*) FILTER (WHERE returned_on IS NOT NULL) FROM loans"
        ),
        format!("{READERS}|{READERS}"),
        "each reader's return applied after their loan"
    );
    assert_eq!(
        number(
            &library,
            "SELECT COUNT(*) FROM inbox WHERE outcome IS NULL OR outcome NOT LIKE 'applied%'"
        ),
        0,
        "{}",
        sql(
            &library,
            "SELECT string_agg(DISTINCT coalesce(outcome, 'none'), ', ') FROM inbox"
        )
    );
    audit_verifies(dir, &library);
}

#[test]
fn two_workers_run_the_days_notices_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_config(
        dir,
        &format!(
            "[serve]\nmessengers = [{:?}]\nnotify-at = \"00:00\"\n\n\
             [channels.email]\ntransport = \"maildir\"\ndir = \"mail\"\n",
            plugins::NOTICES
        ),
    );
    let data = dir.join("data");
    lectern_tests::stdout_of(
        Command::new(lectern_tests::lectern_bin())
            .args(["gen", "--patrons", "400", "--seed", "4", "--out"])
            .arg(&data),
    );
    let library = Library::new("notify");
    lectern_tests::stdout_of(
        lectern(dir, &library)
            .args(["import", "--format", "csv"])
            .args(["patrons.csv", "loans.csv", "holds.csv", "use.csv"].map(|f| data.join(f))),
    );
    let (a, b) = (
        worker(dir, &library, "a", "notify"),
        worker(dir, &library, "b", "notify"),
    );
    let (a, b) = (finished(a), finished(b));
    assert_eq!(
        number(
            &library,
            "SELECT COUNT(*) FROM job_runs WHERE job = 'notify' AND state = 'ok'"
        ),
        1,
        "one run of the day's notices: {a}\n{b}"
    );
    assert_eq!(
        number(
            &library,
            "SELECT COUNT(*) FROM job_runs WHERE job = 'notify'"
        ),
        1
    );
    // A third worker the same day finds it done.
    finished(worker(dir, &library, "c", "notify"));
    assert_eq!(
        number(
            &library,
            "SELECT COUNT(*) FROM job_runs WHERE job = 'notify'"
        ),
        1
    );
}
