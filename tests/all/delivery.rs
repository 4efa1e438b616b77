//! Delivery that tells the truth: a webhook's redirect is refused rather
//! than followed, `lectern deliver` fails when messages can go nowhere, and
//! a command whose reader goes away ends quietly.

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use lectern::{
    Channel, Config, Lectern, MessageState, Outbox as _, Patron, PatronRecord, Queued, SqliteStore,
    Store as _, Until, Written,
};
use lectern_tests::{keyring, lectern_command, shared_host};

/// A store at `db` with one reader and `n` messages to them on `channel`.
fn queued(db: &Path, n: usize, channel: Channel) -> SqliteStore {
    lectern_tests::keyring_beside(db);
    let mut store = SqliteStore::open(db).unwrap();
    let mut tx = store.import("test").unwrap();
    tx.put_patron(&PatronRecord {
        patron: Patron {
            id: "r1".into(),
            email: Some("r1@example.org".into()),
            phone: Some("+1 555 0100".into()),
            channels: Some(vec![channel]),
            ..Patron::default()
        },
        active: true,
        source: "test".into(),
    })
    .unwrap();
    tx.commit(Written::default(), 0).unwrap();
    let now = Utc::now();
    let messages: Vec<Queued> = (0..n)
        .map(|i| Queued {
            dedupe_key: format!("{i:032x}"),
            patron: "r1".into(),
            event: format!("e{i}"),
            event_kind: "due-soon".into(),
            marketing: false,
            plugin: "notices".into(),
            channel,
            locale: "en".into(),
            subject: format!("Due soon: book {i}"),
            body: "Please bring it back.".into(),
            // One a day: SMS and webhooks are never letters, but each
            // message on its own day keeps the count plain whatever the
            // channel.
            day: now.date_naive() - chrono::Days::new(i as u64),
            digest: false,
            not_before: now,
        })
        .collect();
    store.enqueue(&messages).unwrap();
    store
}

#[test]
fn a_webhook_that_redirects_is_refused_and_the_redirect_is_never_followed() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let followed = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = followed.clone();
    let elsewhere = format!("{base}/elsewhere");
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            if req.url() == "/hook" {
                let moved = tiny_http::Response::empty(302).with_header(
                    tiny_http::Header::from_bytes("Location", elsewhere.as_bytes()).unwrap(),
                );
                let _ = req.respond(moved);
            } else {
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), req.url()));
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let store = queued(&db, 1, Channel::Webhook);
    let config = Config::parse(
        &format!(
            "[notify]\nquiet-hours = \"none\"\n\
             [channels.webhook]\ntransport = \"webhook\"\nurl = \"{base}/hook\"\n\
             secret = \"s3cret\"\n"
        ),
        Path::new("."),
    )
    .unwrap();
    drop(store);
    let mut library = Lectern::open(
        shared_host(),
        SqliteStore::open(&db).unwrap(),
        keyring(),
        config,
    )
    .unwrap();
    let report = library.deliver(Until::NothingDue, &mut |_| {}).unwrap();
    assert_eq!((report.sent, report.failed), (0, 1), "{report:?}");
    assert!(
        followed.lock().unwrap().is_empty(),
        "the redirect was followed: {:?}",
        followed.lock().unwrap()
    );
    let failed = library
        .store()
        .outbox_messages(Some(MessageState::Failed), 10)
        .unwrap();
    let error = failed[0].error.as_deref().unwrap();
    assert!(error.contains("HTTP 302, a redirect"), "{error}");
}

#[test]
fn deliver_exits_78_when_messages_wait_on_a_channel_with_no_transport() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    drop(queued(&db, 3, Channel::Sms));
    let config = dir.path().join("lectern.toml");
    std::fs::write(
        &config,
        format!(
            "[channels.email]\ntransport = \"maildir\"\ndir = {:?}\n",
            dir.path().join("mail")
        ),
    )
    .unwrap();
    let out = lectern_command()
        .env("LECTERN_CONFIG", &config)
        .arg("--db")
        .arg(&db)
        .arg("deliver")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("3 messages wait on sms with no transport; add [channels.sms]"),
        "{stderr}"
    );
    // Nothing was lost: they wait for a transport.
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.outbox_stats().unwrap()[0].queued, 3);
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    // Far more than a pipe's buffer of listing.
    drop(queued(&db, 3000, Channel::Sms));
    let mut child = lectern_command()
        .arg("--db")
        .arg(&db)
        .args(["outbox", "--list", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first line, as `| head -1` does, and hang up.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let read = stdout.read(&mut first).unwrap();
    assert!(read > 0);
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}
