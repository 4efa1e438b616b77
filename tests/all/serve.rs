//! `lectern serve` as a library runs it: staff accounts of two roles and
//! an ILS account, events pushed as Koha, FOLIO and Alma send them, the
//! notices they cause in the outbox, reports that differ by role, a
//! patron exported and erased, and every refusal the service owes.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::Mac as _;
use lectern_tests::{plugins, repo};
use serde_json::{Value, json};

const ALMA_SECRET: &str = "alma webhook secret for the tests";

fn cli(dir: &Path) -> Command {
    lectern_tests::lectern_in(dir)
}

fn ok(c: &mut Command) -> String {
    lectern_tests::stdout_of(c)
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/ils").join(path)).unwrap()
}

/// A token for a new staff account.
fn staff(dir: &Path, name: &str, role: &str) -> String {
    let out = ok(cli(dir).args(["--json", "staff", "add", name, "--role", role]));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["token"].as_str().unwrap().to_string()
}

struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = cli(dir)
            .arg("serve")
            .env("LECTERN_TEST_ALMA_SECRET", ALMA_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        // A connection each: a refusal answered before its body is read
        // ends the connection, and a pooled one would race that close.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .build()
            .new_agent();
        Server {
            child,
            base: format!("http://{addr}"),
            agent,
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(body.unwrap_or_default().to_vec()).unwrap();
        let mut resp = self.agent.run(req).unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    fn get(&self, path: &str, token: &str) -> (u16, String) {
        self.call("GET", path, Some(token), &[], None)
    }

    fn post(&self, path: &str, token: &str, body: &[u8]) -> (u16, String) {
        self.call("POST", path, Some(token), &[], Some(body))
    }

    fn json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until `check` holds of `path`'s JSON, for at most a minute.
    fn wait_for(&self, path: &str, token: &str, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let v = self.json(path, token);
            if check(&v) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{path} never got there: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn library(dir: &Path) {
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\nk-floor = 5\n\n[serve]\nlisten = \"127.0.0.1:0\"\n\
             messengers = [{:?}]\nscorers = [{:?}]\ninbox-every-secs = 1\n\
             deliver-every-secs = 3600\nalma-secret-env = \"LECTERN_TEST_ALMA_SECRET\"\n\
             koha-anonymous-patron = 99\nbody-limit-kb = 256\n",
            plugins::BASELINE_PRIVACY,
            plugins::NOTICES,
            plugins::ENGAGEMENT
        ),
    )
    .unwrap();
    // A generated library, for reports with groups of five and more, and
    // Koha's sample patrons, whom the Koha events are about.
    let (_, files) = lectern_tests::generated_library(dir, 300);
    ok(cli(dir).args(["import", "--format", "csv"]).args(&files));
}

#[test]
fn a_library_connects_its_ils_and_its_staff_to_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);

    // Staff of two roles, the administrator, and the ILS.
    let ils = staff(dir, "koha", "ils");
    let analyst = staff(dir, "ana", "analyst");
    let desk = staff(dir, "desk", "circulation-desk");
    let admin = staff(dir, "root", "administrator");
    // A role the policy does not declare is refused, with the roles there are.
    let out = cli(dir)
        .args(["staff", "add", "lib", "--role", "librarian"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown staff role `librarian`"), "{err}");
    assert!(err.contains("circulation-desk, analyst"), "{err}");
    // And in every other command.
    let out = cli(dir)
        .args(["report", "segments", "--role", "librarian"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));

    let server = Server::start(dir);
    assert_eq!(server.call("GET", "/healthz", None, &[], None).0, 200);
    assert_eq!(server.call("GET", "/readyz", None, &[], None).0, 200);

    // The ILS syncs Koha's patrons: once written, once again updated, and
    // a damaged record skipped with its place and field.
    let patrons = std::fs::read(repo().join("tests/fixtures/koha/patrons.json")).unwrap();
    let sync = |body: &[u8]| -> Value {
        let (s, b) = server.post("/v1/patrons/sync?format=koha", &ils, body);
        assert_eq!(s, 200, "{b}");
        serde_json::from_str(&b).unwrap()
    };
    let first = sync(&patrons);
    assert!(first["imported"].as_u64().unwrap() >= 3, "{first}");
    let again = sync(&patrons);
    assert_eq!(
        (again["imported"].as_u64(), again["updated"].clone()),
        (Some(0), first["imported"].clone())
    );
    let damaged = sync(br#"[{"patron_id": 70, "surname": "Ok"}, {"surname": "No id"}]"#);
    assert_eq!(damaged["imported"], 1, "{damaged}");
    assert_eq!(damaged["skipped"][0]["record"], 2, "{damaged}");
    assert_eq!(damaged["skipped"][0]["field"], "patron_id", "{damaged}");
    let (s, _) = server.post("/v1/patrons/sync?format=marc", &ils, &patrons);
    assert_eq!(s, 400);
    // A patron deleted in Koha is erased; deleting again finds nobody.
    assert_eq!(
        server
            .call("DELETE", "/v1/patrons/70", Some(&ils), &[], None)
            .0,
        200
    );
    assert_eq!(
        server
            .call("DELETE", "/v1/patrons/70", Some(&ils), &[], None)
            .0,
        404
    );
    assert_eq!(
        server
            .call("DELETE", "/v1/patrons/53", Some(&analyst), &[], None)
            .0,
        403
    );

    // Koha's hooks: a checkout and a hold now waiting, for patron 51; a
    // check-in by the AnonymousPatron; the same checkout sent again.
    let checkout = fixture("koha/after_circ_action-checkout.json");
    let (s, body) = server.post("/v1/ils/koha/events", &ils, &checkout);
    assert_eq!((s, body.as_str()), (200, r#"{"duplicate":false}"#));
    let (s, body) = server.post("/v1/ils/koha/events", &ils, &checkout);
    assert_eq!((s, body.as_str()), (200, r#"{"duplicate":true}"#));
    let waiting = fixture("koha/after_hold_action-waiting.json");
    assert_eq!(server.post("/v1/ils/koha/events", &ils, &waiting).0, 200);
    let mut anonymised: Value =
        serde_json::from_slice(&fixture("koha/after_circ_action-checkin-anonymised.json")).unwrap();
    anonymised["payload"]["checkout"]["borrowernumber"] = json!(99);
    let anonymised = serde_json::to_vec(&anonymised).unwrap();
    assert_eq!(server.post("/v1/ils/koha/events", &ils, &anonymised).0, 200);

    // FOLIO's mod-pubsub, payload alone as it reaches a subscriber, and
    // the envelope.
    let envelope = fixture("folio/pubsub-ITEM_CHECKED_OUT.json");
    let payload: Value = serde_json::from_slice(&envelope).unwrap();
    let bare = payload["eventPayload"]
        .as_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    let (s, b) = server.post("/v1/ils/folio/pubsub/ITEM_CHECKED_OUT", &ils, &bare);
    assert_eq!(s, 200, "{b}");
    let (s, b) = server.post("/v1/ils/folio/pubsub", &ils, &envelope);
    assert_eq!(s, 200, "{b}");
    let domain = fixture("folio/domain-request-UPDATED.json");
    assert_eq!(
        server.post("/v1/ils/folio/domain/request", &ils, &domain).0,
        200
    );

    // Alma: the challenge, a signed loan, and a forged one.
    let (s, body) = server.call(
        "GET",
        "/v1/ils/alma/webhook?challenge=abc123",
        None,
        &[],
        None,
    );
    assert_eq!((s, body.as_str()), (200, r#"{"challenge":"abc123"}"#));
    let loan = fixture("alma/loan-created.json");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(ALMA_SECRET.as_bytes()).unwrap();
    mac.update(&loan);
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        mac.finalize().into_bytes(),
    );
    let signed = [("X-Exl-Signature", signature.as_str())];
    let (s, b) = server.call("POST", "/v1/ils/alma/webhook", None, &signed, Some(&loan));
    assert_eq!(s, 200, "{b}");
    let forged = [("X-Exl-Signature", "bm90IHRoZSBzaWduYXR1cmU=")];
    assert_eq!(
        server
            .call("POST", "/v1/ils/alma/webhook", None, &forged, Some(&loan))
            .0,
        401
    );

    // The refusals: no token, a made-up token, a reader pushing, the ILS
    // reading.
    assert_eq!(
        server
            .call("POST", "/v1/ils/koha/events", None, &[], Some(&checkout))
            .0,
        401
    );
    let forged_token = format!("lct_{}_{}", "0".repeat(12), "0".repeat(64));
    assert_eq!(
        server
            .post("/v1/ils/koha/events", &forged_token, &checkout)
            .0,
        401
    );
    assert_eq!(
        server.post("/v1/ils/koha/events", &analyst, &checkout).0,
        403
    );
    assert_eq!(server.get("/v1/outbox", &ils).0, 403);

    // The scheduler processes the inbox; the waiting hold's notice is in
    // the outbox.
    server.wait_for("/v1/inbox", &analyst, |v| {
        v["pending"] == 0 && v["unnotified"] == 0
    });
    let outbox = server.json("/v1/outbox", &analyst);
    let queued: u64 = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["queued"].as_u64().unwrap())
        .sum();
    assert!(queued >= 1, "no notice was queued: {outbox}");

    // A scoring run, started through the API and seen in the history.
    assert_eq!(server.post("/v1/jobs/score", &admin, b"").0, 202);
    assert_eq!(server.post("/v1/jobs/score", &analyst, b"").0, 403);
    server.wait_for("/v1/jobs?job=score", &analyst, |v| {
        v.as_array()
            .is_some_and(|runs| runs.iter().any(|r| r["state"] == "ok"))
    });
    let jobs = ok(cli(dir).args(["--json", "jobs", "--job", "score"]));
    assert!(
        jobs.contains("\"state\": \"ok\"") || jobs.contains("\"state\":\"ok\""),
        "{jobs}"
    );

    // Reports: k below the floor is refused; the lists differ by role.
    let (s, body) = server.get("/v1/reports/segments?k=1", &analyst);
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("below the library's floor of 5"), "{body}");
    let report = server.json("/v1/reports/segments?k=5", &analyst);
    assert_eq!(report["plugin"], "engagement");
    let (s, page) = server.get("/v1/reports/segments?format=html", &analyst);
    assert_eq!(s, 200);
    assert!(page.starts_with("<!DOCTYPE html>") || page.starts_with("<!doctype html>"));
    let by_desk = server.json("/v1/reports/lapsed?top=5", &desk);
    let by_analyst = server.json("/v1/reports/lapsed?top=5", &analyst);
    let first = |v: &Value| v["readers"][0].clone();
    assert!(first(&by_desk)["card_number"].is_string(), "{by_desk}");
    assert!(first(&by_analyst)["card_number"] != first(&by_desk)["card_number"]);
    assert_ne!(first(&by_desk)["who"], first(&by_analyst)["who"]);

    // A patron's rights are for the roles the policy lets export: the
    // analyst may neither export nor erase a reader.
    assert_eq!(server.get("/v1/patrons/51/export", &analyst).0, 403);
    assert_eq!(server.post("/v1/patrons/51/erase", &analyst, b"").0, 403);
    // Reading a reader's preferences is audited, as any staff view.
    assert_eq!(server.get("/v1/patrons/51/preferences", &desk).0, 200);

    // A patron's export holds the loan Koha pushed; erased, they are gone.
    let export = server.json("/v1/patrons/51/export", &admin);
    let loans = export["loans"].as_array().unwrap();
    assert!(loans.iter().any(|l| l["id"] == "9101"), "{export}");
    let (s, body) = server.post("/v1/patrons/51/erase", &admin, b"");
    assert_eq!(s, 200, "{body}");
    assert_eq!(server.get("/v1/patrons/51/export", &admin).0, 404);

    // The spec is served, and metrics count requests by route, not path.
    let spec = server.json("/v1/openapi.json", &analyst);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let (_, metrics) = server.call("GET", "/metrics", None, &[], None);
    assert!(
        metrics.contains("route=\"/v1/patrons/{id}/export\""),
        "{metrics}"
    );
    assert!(!metrics.contains("/v1/patrons/51"));

    // A body over the limit is refused before it is read: the head alone
    // announcing it gets the answer.
    {
        use std::io::{Read as _, Write as _};
        let mut stream =
            std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ils}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            300 * 1024
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
    }

    // A revoked account's token stops working at once; the list says so,
    // and the name can be given a new token.
    ok(cli(dir).args(["staff", "revoke", "desk"]));
    assert_eq!(server.get("/v1/outbox", &desk).0, 401);
    let list: Value =
        serde_json::from_str(&ok(cli(dir).args(["--json", "staff", "list"]))).unwrap();
    let desk_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "desk")
        .unwrap();
    assert!(desk_row["revoked_at"].is_string(), "{list}");
    assert!(!list.to_string().contains(&desk), "no token is ever listed");
    let desk_again = staff(dir, "desk", "circulation-desk");
    assert_eq!(server.get("/v1/reports/lapsed?top=1", &desk_again).0, 200);
    assert_eq!(server.get("/v1/outbox", &desk).0, 401);

    // Failed authentications from one address are limited: after ten in
    // a minute (some made above), even a good token waits.
    let mut refused = 0;
    while server.get("/v1/outbox", &forged_token).0 == 401 {
        refused += 1;
        assert!(refused <= 10, "never limited");
    }
    assert_eq!(server.get("/v1/outbox", &forged_token).0, 429);
    assert_eq!(server.get("/v1/outbox", &analyst).0, 429);

    // SIGTERM: it drains and exits cleanly.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "it did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    ok(cli(dir).args(["audit", "verify"]));
}

/// A checkout for generated patron `n`, in Lectern's own event shape.
fn checkout_event(n: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": format!("evt-{n}"),
        "kind": "checkout",
        "at": "2026-11-20T10:00:00Z",
        "patron": format!("G{:08}", n % 300),
        "change": {
            "change": "loan",
            "id": format!("kill-loan-{n}"),
            "item": null, "title": "A Book", "subject": null,
            "loaned_on": "2026-11-20", "due_on": "2026-12-18", "returned_on": null
        }
    }))
    .unwrap()
}

#[test]
fn an_event_accepted_before_kill_9_is_kept_and_processed_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    let ils = staff(dir, "ils", "ils");
    const EVENTS: usize = 400;

    // The ILS pushes events one after another while the scheduler
    // processes them; the service is killed with SIGKILL mid-stream.
    let server = Server::start(dir);
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let pusher = {
        let base = server.base.clone();
        let token = ils.clone();
        std::thread::spawn(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .new_agent();
            for n in 0..EVENTS {
                let sent = agent
                    .post(format!("{base}/v1/events"))
                    .header("Authorization", format!("Bearer {token}"))
                    .header("Content-Type", "application/json")
                    .send(&checkout_event(n)[..]);
                match sent {
                    Ok(r) if r.status() == 200 => tx.send(n).unwrap(),
                    // Killed: what has no 2xx was not accepted.
                    _ => return,
                }
            }
        })
    };
    // Kill once some events are in and the scheduler has started on them.
    let mut acknowledged: Vec<usize> = Vec::new();
    while acknowledged.len() < 150 {
        acknowledged.push(rx.recv_timeout(Duration::from_secs(60)).unwrap());
    }
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    pusher.join().unwrap();
    acknowledged.extend(rx.try_iter());
    drop(server);

    // After a restart, every acknowledged event is there already: sent
    // again, each is a duplicate. The ILS then sends the rest.
    let server = Server::start(dir);
    for &n in &acknowledged {
        let (s, body) = server.post("/v1/events", &ils, &checkout_event(n));
        assert_eq!(
            (s, body.as_str()),
            (200, r#"{"duplicate":true}"#),
            "event {n}"
        );
    }
    for n in (0..EVENTS).filter(|n| !acknowledged.contains(n)) {
        assert_eq!(server.post("/v1/events", &ils, &checkout_event(n)).0, 200);
    }
    let analyst = staff(dir, "ana", "analyst");
    let stats = server.wait_for("/v1/inbox", &analyst, |v| {
        v["pending"] == 0 && v["unnotified"] == 0
    });
    // Each event applied once: one loan each, no event left or repeated.
    assert_eq!(stats["applied"], EVENTS, "{stats}");
    assert_eq!(stats["skipped"], 0, "{stats}");
    let db = rusqlite::Connection::open(dir.join("lectern.db")).unwrap();
    let loans: usize = db
        .query_row(
            "SELECT COUNT(*) FROM loans WHERE id LIKE 'kill-loan-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(loans, EVENTS);
    drop(server);
    ok(cli(dir).args(["audit", "verify"]));
}

/// Koha's side: the connector plugin's own tests, run with `prove`
/// against this service, with Koha's objects stubbed. Its hooks only
/// queue; its flush sends, and the events land in the inbox.
#[test]
fn the_koha_connector_queues_in_its_hooks_and_flushes_to_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    let ils = staff(dir, "koha", "ils");
    let analyst = staff(dir, "ana", "analyst");
    let server = Server::start(dir);
    let patrons = std::fs::read(repo().join("tests/fixtures/koha/patrons.json")).unwrap();
    assert_eq!(
        server
            .post("/v1/patrons/sync?format=koha", &ils, &patrons)
            .0,
        200
    );

    let koha = repo().join("connectors/koha");
    let out = Command::new("prove")
        .current_dir(repo())
        .arg("-I")
        .arg(&koha)
        .arg("-I")
        .arg(koha.join("t/lib"))
        .arg(koha.join("t"))
        .env("LECTERN_URL", &server.base)
        .env("LECTERN_TOKEN", &ils)
        .output()
        .expect("prove runs (Debian's perl, with libdbd-sqlite3-perl)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!report.contains("skipped"), "the live test ran: {report}");
    let stats = server.wait_for("/v1/inbox", &analyst, |v| {
        v["pending"] == 0 && v["unnotified"] == 0
    });
    // The checkout, the waiting hold and its cancellation, each once.
    assert_eq!(stats["applied"], 3, "{stats}");
}

/// Evergreen's side: each Action/Trigger template in
/// `connectors/evergreen/`, rendered by real Template Toolkit, parsed by
/// Config::General and sent by LWP as the CallHTTP reactor does, is an
/// event the service takes, even with a title full of quotes,
/// backslashes and non-ASCII letters.
#[test]
fn evergreen_templates_render_with_template_toolkit_and_reach_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    // A library five hours behind UTC, as Evergreen's times say.
    let toml = std::fs::read_to_string(dir.join("lectern.toml")).unwrap();
    std::fs::write(
        dir.join("lectern.toml"),
        format!("[notify]\nutc-offset = \"-05:00\"\n\n{toml}"),
    )
    .unwrap();
    let ils = staff(dir, "evergreen", "ils");
    let admin = staff(dir, "root", "administrator");
    let server = Server::start(dir);
    let patrons = std::fs::read(repo().join("tests/fixtures/koha/patrons.json")).unwrap();
    assert_eq!(
        server
            .post("/v1/patrons/sync?format=koha", &ils, &patrons)
            .0,
        200
    );

    let connector = repo().join("connectors/evergreen");
    for hook in ["checkout", "checkout.due", "hold.available", "checkin"] {
        let out = Command::new("perl")
            .arg(connector.join("t/callhttp.pl"))
            .arg(connector.join(format!("templates/{hook}.tt")))
            .arg(repo().join(format!("tests/fixtures/ils/evergreen/env/{hook}.json")))
            .env("LECTERN_URL", &server.base)
            .env("LECTERN_TOKEN", &ils)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{hook}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains(r#"{"duplicate":false}"#), "{hook}: {said}");
    }
    let analyst = staff(dir, "ana", "analyst");
    let stats = server.wait_for("/v1/inbox", &analyst, |v| {
        v["pending"] == 0 && v["unnotified"] == 0
    });
    assert_eq!(stats["applied"], 4, "{stats}");
    // The loan as Evergreen described it, title intact, returned on the
    // library's day of the check-in.
    let export = server.json("/v1/patrons/51/export", &admin);
    let loan = export["loans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "5501")
        .cloned()
        .unwrap_or_else(|| panic!("{export}"));
    assert_eq!(loan["title"], "The \"Best\" of C:\\Windows, Þórr's saga");
    // Due at 23:59:59-05:00 on the 16th: the 16th on the library's clock.
    assert_eq!(loan["due_on"], "2026-03-16");
    assert_eq!(loan["returned_on"], "2026-03-02");
    let hold = &export["holds"][0];
    assert_eq!(
        (hold["id"].as_str(), hold["status"].as_str()),
        (Some("7701"), Some("waiting"))
    );
}

/// The OpenAPI document against the running service, with schemathesis:
/// every operation, each with a token of the role it needs, every check.
/// The ILS adapters' bodies are the ILSes' own formats, which Lectern
/// reads leniently (a field it does not need may be anything, as an ILS's
/// next version adds and changes columns), so for them the two checks that
/// compare generated bodies with the document are off; every other check
/// (no server error, documented statuses, content types, response
/// schemas, authentication) still runs on them. A campaign's body is
/// TOML, which OpenAPI can only call a string: any string is "valid" to
/// the document, so acceptance of generated bodies is off for it alone.
#[test]
fn schemathesis_finds_nothing_the_document_does_not_say() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    // Key readers too, so that every report has a run to show.
    let toml = std::fs::read_to_string(dir.join("lectern.toml"))
        .unwrap()
        .replace(
            &format!("scorers = [{:?}]", plugins::ENGAGEMENT),
            &format!(
                "scorers = [{:?}, {:?}]\nauth-failures-per-minute = 1000000",
                plugins::ENGAGEMENT,
                plugins::KEY_READERS
            ),
        );
    std::fs::write(dir.join("lectern.toml"), toml).unwrap();
    let ils = staff(dir, "ils", "ils");
    let admin = staff(dir, "root", "administrator");
    let server = Server::start(dir);
    assert_eq!(server.post("/v1/jobs/score", &admin, b"").0, 202);
    server.wait_for("/v1/jobs?job=score", &admin, |v| v[0]["state"] == "ok");

    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"headers = {{ Authorization = "Bearer {admin}" }}
seed = 20261201

[[operations]]
include-path-regex = "^/v1/(ils/|patrons/sync$)"
headers = {{ Authorization = "Bearer {ils}" }}
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false

[[operations]]
include-path = "/v1/events"
headers = {{ Authorization = "Bearer {ils}" }}

[[operations]]
include-path-regex = "^/v1/campaigns/"
include-method = "PUT"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path-regex = "^/v1/patrons/[^/]+$"
include-method = "DELETE"
headers = {{ Authorization = "Bearer {ils}" }}
"#
        ),
    )
    .unwrap();
    let out = Command::new("schemathesis")
        .current_dir(dir)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/v1/openapi.json", server.base)])
        .args(["--max-examples", "40", "--no-color"])
        .output()
        .expect("schemathesis runs (cargo xtask test installs it from PyPI)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("API Operations"), "{report}");
}

/// A token is shown once, kept as a hash, and stops at its expiry.
#[test]
fn a_token_expires_and_a_role_must_exist() {
    let mut library = lectern_tests::library();
    let now = chrono::Utc::now();
    let soon = now + chrono::Duration::seconds(60);
    let (account, token) = library
        .add_staff("temp", "analyst", Some(soon), now)
        .unwrap();
    assert_eq!(library.authenticate(&token, now).unwrap(), account);
    let later = soon + chrono::Duration::seconds(1);
    assert_eq!(
        library.authenticate(&token, later).unwrap_err().kind(),
        lectern::ErrorKind::Denied
    );
    // The store holds the hash, never the token.
    let (_, hash) = library
        .store()
        .staff_by_key(&account.key_id)
        .unwrap()
        .unwrap();
    assert_ne!(hash, token);
    assert!(!hash.contains(&token[16..]));
    // An unknown role is refused, and so is the same name twice.
    let err = library.add_staff("x", "librarian", None, now).unwrap_err();
    assert_eq!(err.kind(), lectern::ErrorKind::Denied);
    let err = library.add_staff("temp", "analyst", None, now).unwrap_err();
    assert_eq!(err.kind(), lectern::ErrorKind::Invalid);
    // A token one character off is refused.
    let mut wrong = token.clone();
    wrong.pop();
    wrong.push(if token.ends_with('0') { '1' } else { '0' });
    assert!(library.authenticate(&wrong, now).is_err());
}

/// An erasure checks that no trace is left; a numeric id, as Koha's, is
/// not mistaken for the numbers in the store's own counters.
#[test]
fn a_numeric_patron_id_is_erased_without_false_traces() {
    let mut library = lectern_tests::library();
    let patrons = repo().join("tests/fixtures/koha/patrons.json");
    library
        .import(
            lectern::Format::Koha,
            &[patrons],
            Default::default(),
            &mut |_| {},
        )
        .unwrap();
    // Job runs numbered past the patron's id.
    for _ in 0..60 {
        library
            .record_job("deliver", chrono::Utc::now(), true, "1 sent")
            .unwrap();
    }
    library.erase_patron("51", "administrator").unwrap();
    assert!(library.store().traces_of("51").unwrap().is_empty());
}

/// A checkout Koha sends before Lectern has its patron (the daily sync
/// has not run yet) is kept, and applies once an import brings the
/// patron: once, however often the inbox is processed after.
#[test]
fn an_event_that_came_before_its_patron_applies_once_the_patron_arrives() {
    let mut library = lectern_tests::library();
    let now = chrono::Utc::now();
    let hook: Value =
        serde_json::from_slice(&fixture("koha/after_circ_action-checkout.json")).unwrap();
    let event = lectern::koha_hook(&hook, None, now, lectern::Clock::default()).unwrap();
    assert!(library.accept_event(&event, now).unwrap());
    let first = library.process_inbox(&[], now, 100).unwrap();
    assert_eq!((first.applied, first.skipped), (0, 1));
    let patrons = repo().join("tests/fixtures/koha/patrons.json");
    library
        .import(
            lectern::Format::Koha,
            &[patrons],
            Default::default(),
            &mut |_| {},
        )
        .unwrap();
    let then = library.process_inbox(&[], now, 100).unwrap();
    assert_eq!((then.applied, then.skipped), (1, 0));
    assert!(library.store().loan("9101").unwrap().is_some());
    let again = library.process_inbox(&[], now, 100).unwrap();
    assert_eq!((again.applied, again.skipped), (0, 0));
}
