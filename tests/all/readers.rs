//! The reader pages in a real browser: Debian's Chromium, driven over
//! WebDriver by chromedriver, against a running `lectern serve`. Two
//! readers, one in English and one in Chinese, register and confirm their
//! address from the email the service delivered, open their preference
//! centre from a delivered message, withdraw marketing consent, and answer
//! a survey. Every page passes axe-core with no critical violation, and
//! its screenshot is a rendered page, kept under `target/screenshots/`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lectern_tests::{plugins, repo};
use serde_json::{Value, json};

const AXE_VERSION: &str = "4.10.3";

fn cli(dir: &Path) -> Command {
    lectern_tests::lectern_in(dir)
}

fn ok(c: &mut Command) -> String {
    lectern_tests::stdout_of(c)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// axe-core's script, installed from npm into `target/tools` the first
/// time.
fn axe_source() -> String {
    let tools = repo().join("target/tools");
    let script = tools.join("node_modules/axe-core/axe.min.js");
    if !script.is_file() {
        std::fs::create_dir_all(&tools).unwrap();
        let status = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(&tools)
            .arg(format!("axe-core@{AXE_VERSION}"))
            .status()
            .expect("npm runs: the accessibility checks install axe-core with it");
        assert!(status.success(), "npm could not install axe-core");
    }
    std::fs::read_to_string(script).unwrap()
}

/// A W3C WebDriver session on chromedriver: the few commands the walk
/// needs.
struct Browser {
    agent: ureq::Agent,
    session: String,
    base: String,
    axe: String,
    shots: PathBuf,
    _driver: Killed,
}

impl Browser {
    fn start() -> Browser {
        let port = lectern_tests::free_port();
        let driver = Command::new(
            std::env::var_os("CHROMEDRIVER").unwrap_or_else(|| "/usr/bin/chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs: `cargo xtask test` installs Debian's chromium-driver");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let start = Instant::now();
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,1300",
                         "--disable-background-networking", "--no-first-run",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v: Value = serde_json::from_str(
            &agent
                .post(format!("{base}/session"))
                .content_type("application/json")
                .send(caps.to_string())
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        let shots = repo().join("target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            agent,
            session,
            base,
            axe: axe_source(),
            shots,
            _driver: Killed(driver),
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut resp = if method == "GET" {
            self.agent.get(&url).call().unwrap()
        } else {
            self.agent
                .post(&url)
                .content_type("application/json")
                .send(body.to_string())
                .unwrap()
        };
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v} on {}", self.text()))
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), json!({}));
    }

    /// Presses the form's button and waits for the page it leads to.
    fn submit(&self) {
        self.script("window.__before = true;", json!([]));
        self.click("button[type=submit]");
        let start = Instant::now();
        loop {
            let done = self.script(
                "return window.__before === undefined && document.readyState === 'complete';",
                json!([]),
            );
            if done == json!(true) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the form led nowhere"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        );
    }

    fn text(&self) -> String {
        self.script("return document.body.innerText;", json!([]))
            .as_str()
            .unwrap()
            .to_string()
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// Checks the page with axe-core and takes its screenshot: no critical
    /// violation, and an image that is a rendered page, not a blank one.
    fn check(&self, name: &str) {
        self.script(&format!("{};return true;", self.axe), json!([]));
        let v = self.cmd(
            "POST",
            "/execute/async",
            json!({"script": "const done = arguments[arguments.length - 1];\
                axe.run(document).then(r => done(r.violations.map(v => \
                ({id: v.id, impact: v.impact, nodes: v.nodes.length})))).catch(e => done(String(e)));",
                "args": []}),
        );
        let violations = v
            .as_array()
            .unwrap_or_else(|| panic!("axe failed on {name}: {v}"));
        let critical: Vec<&Value> = violations
            .iter()
            .filter(|v| v["impact"] == "critical" || v["impact"] == "serious")
            .collect();
        assert!(
            critical.is_empty(),
            "{name}: accessibility violations {critical:?}"
        );
        let lang = self.script("return document.documentElement.lang;", json!([]));
        assert!(
            lang.as_str().is_some_and(|l| !l.is_empty()),
            "{name}: no lang"
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.cmd("GET", "/screenshot", json!({})).as_str().unwrap())
            .unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert!(
            info.width >= 800 && info.height >= 600,
            "{name}: {}x{}",
            info.width,
            info.height
        );
        let inked = pixels
            .chunks(info.color_type.samples())
            .filter(|p| p.iter().take(3).any(|&c| c < 128))
            .count();
        assert!(
            inked > 2_000,
            "{name}: the screenshot is nearly blank ({inked} dark pixels)"
        );
        std::fs::write(self.shots.join(format!("{name}.png")), &png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.agent.delete(&url).call();
    }
}

/// The delivered emails' texts, as the maildir holds them.
fn mails(dir: &Path) -> Vec<String> {
    lectern_tests::maildir_files(&dir.join("mail"))
}

/// The first link to `path` in a delivered email whose text holds `needle`,
/// waiting for delivery for at most a minute.
fn link_in_mail(dir: &Path, needle: &str, path: &str) -> String {
    let start = Instant::now();
    loop {
        for m in mails(dir) {
            if m.contains(needle)
                && let Some(at) = m.find(path)
            {
                let from = m[..at].rfind("http").unwrap();
                let end = m[at..]
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .map_or(m.len(), |e| at + e);
                return m[from..end].to_string();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no email with {needle:?} and a {path} link: {:?}",
            mails(dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_reader_registers_sets_preferences_and_answers_a_survey_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = lectern_tests::free_port();
    std::fs::copy(
        repo().join("samples/surveys/reading.toml"),
        dir.join("reading.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\nk-floor = 1\n\n[notify]\nquiet-hours = \"none\"\n\n\
             [channels.email]\ntransport = \"maildir\"\ndir = \"mail\"\n\n\
             [serve]\nlisten = \"127.0.0.1:{port}\"\ndeliver-every-secs = 1\n\n\
             [readers]\npublic-url = \"http://127.0.0.1:{port}\"\n\
             categories = [\"public\", \"graduate\"]\nsubjects = [\"chemistry\", \"history\"]\n\
             surveys = [\"reading.toml\"]\nregistrations-per-hour = 3\n",
            plugins::BASELINE_PRIVACY,
        ),
    )
    .unwrap();
    let mut child = cli(dir)
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "{line}");
    let _server = Killed(child);
    let site = format!("http://127.0.0.1:{port}");
    let b = Browser::start();

    // 1. Registering, in English and in Chinese, and confirming the address
    //    from the email the service delivered.
    for (lang, given, family, email) in [
        ("en", "Ada", "Lovelace", "ada@example.org"),
        ("zh-CN", "书华", "王", "wang@example.org"),
    ] {
        b.go(&format!("{site}/r/register?lang={lang}"));
        b.check(&format!("register-{lang}"));
        let consent = b.script(
            "return document.getElementById('consent-marketing').checked;",
            json!([]),
        );
        assert_eq!(consent, json!(false), "consent is unticked by default");
        b.type_into("#given", given);
        b.type_into("#family", family);
        b.type_into("#email", email);
        b.click("#interest-0");
        b.click("#consent-marketing");
        b.submit();
        let text = b.text();
        assert!(
            text.contains("Check your email") || text.contains("请查收邮件"),
            "{text}"
        );
        b.check(&format!("registered-{lang}"));
        let verify = link_in_mail(dir, email, "/r/v/");
        b.go(&verify);
        b.check(&format!("verify-{lang}"));
        b.submit();
        let text = b.text();
        assert!(
            text.contains("confirmed") || text.contains("已确认"),
            "{text}"
        );
        b.check(&format!("verified-{lang}"));
        // The link worked once.
        b.go(&verify);
        let text = b.text();
        assert!(text.contains("used") || text.contains("已使用"), "{text}");
    }
    // A form that fills the hidden trap field registers nobody.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let resp = agent
        .post(format!("{site}/r/register"))
        .content_type("application/x-www-form-urlencoded")
        .send("lang=en&given_name=Bot&family_name=Bot&email=bot%40example.org&category=public&locale=en&website=spam")
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The desk sees contacts masked, so it cannot list registrations whole.
    let desk = cli(dir)
        .args(["registrations", "--role", "circulation-desk"])
        .output()
        .unwrap();
    assert_eq!(desk.status.code(), Some(77), "{desk:?}");
    let token = {
        let out = ok(cli(dir).args([
            "--json",
            "staff",
            "add",
            "registrar",
            "--role",
            "administrator",
        ]));
        serde_json::from_str::<Value>(&out).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let list: Value =
        serde_json::from_str(&ok(cli(dir).args(["--json", "registrations"]))).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "the trap caught the bot: {list:?}");
    assert!(list.iter().all(|r| r["verified"] == true), "{list:?}");
    let csv = agent
        .get(format!("{site}/v1/registrations?format=koha-csv"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        csv.starts_with("cardnumber,surname,firstname,branchcode,categorycode,email"),
        "{csv}"
    );
    assert!(
        csv.contains("Lovelace,Ada") && csv.contains("王,书华"),
        "{csv}"
    );

    // 2. The preference centre, from a delivered message: every email
    //    carries a link to it, and List-Unsubscribe (RFC 8058).
    let mail = mails(dir)
        .into_iter()
        .find(|m| m.contains("ada@example.org"))
        .unwrap();
    assert!(mail.contains("List-Unsubscribe: <http"), "{mail}");
    assert!(
        mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{mail}"
    );
    let prefs = link_in_mail(dir, "ada@example.org", "/r/p/");
    b.go(&prefs);
    b.check("prefs-door");
    b.submit();
    b.check("prefs");
    let marketing = b.script(
        "return document.getElementById('marketing').checked;",
        json!([]),
    );
    assert_eq!(
        marketing,
        json!(true),
        "Ada gave marketing consent when she registered"
    );

    // 3. Withdrawing marketing consent, at once; asking for the monthly
    // current-awareness digest.
    b.click("#marketing");
    b.click("#awareness");
    b.click("#lang-zh");
    b.submit();
    let text = b.text();
    assert!(
        text.contains("已保存"),
        "the page comes back in the language chosen: {text}"
    );
    b.check("prefs-saved");
    let marketing = b.script(
        "return document.getElementById('marketing').checked;",
        json!([]),
    );
    assert_eq!(marketing, json!(false));
    let asked = b.script(
        "return document.getElementById('awareness').checked;",
        json!([]),
    );
    assert_eq!(asked, json!(true), "the digest is asked for, and kept");
    // The message's link was used; opening it again shows no data.
    b.go(&prefs);
    let text = b.text();
    assert!(text.contains("used") && !text.contains("Ada"), "{text}");
    b.check("prefs-used");
    // A forged link gets the same kind of page.
    b.go(&format!("{site}/r/p/AAAAAAAAAAAAAAAAAAAAAA.forged"));
    assert!(b.text().contains("does not work"));

    // 4. A survey, in both languages: every reader who consents is invited
    //    with their own one-time link.
    let scored: Value = serde_json::from_str(&ok(cli(dir).args([
        "--json",
        "score",
        "--plugin",
        plugins::ENGAGEMENT,
    ])))
    .unwrap();
    assert!(scored.is_object(), "{scored}");
    // Readers who joined today are new members, not dormant ones.
    ok(cli(dir).args([
        "notify",
        "--plugin",
        plugins::OUTREACH,
        "--survey",
        "reading",
        "--survey-segment",
        "engagement/new-member",
        "--survey-sample",
        "1",
    ]));
    // Ada withdrew marketing consent: only Wang is invited.
    let survey = link_in_mail(dir, "wang@example.org", "/r/s/");
    assert!(
        !mails(dir)
            .iter()
            .any(|m| m.contains("ada@example.org") && m.contains("/r/s/")),
        "a reader who withdrew consent is not invited"
    );
    b.go(&survey);
    let text = b.text();
    assert!(
        text.contains("您如何使用图书馆"),
        "Wang reads Chinese: {text}"
    );
    b.check("survey-zh");
    b.go(&format!("{survey}?lang=en"));
    assert!(b.text().contains("How you use the library"));
    b.check("survey-en");
    b.go(&survey);
    b.click("#formats-ebook");
    b.click("#visits-weekly");
    b.click("#satisfaction-4");
    b.type_into("#wish", "更多中文电子书");
    b.click("#link");
    b.click("#use");
    b.submit();
    let text = b.text();
    assert!(text.contains("感谢"), "{text}");
    b.check("survey-thanks");
    b.go(&survey);
    let text = b.text();
    assert!(
        text.contains("used"),
        "a survey link is answered once: {text}"
    );

    // Wang kept the answers with her record and let the library use them:
    // they are in her export, and her `formats` answer is an attribute a
    // scorer may declare.
    let wang = list
        .iter()
        .find(|r| r["email"] == "wang@example.org")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let export: Value =
        serde_json::from_str(&ok(cli(dir).args(["patron", "export", &wang]))).unwrap();
    assert_eq!(export["survey_answers"][0]["survey"], "reading", "{export}");
    assert_eq!(
        export["patron"]["attributes"]["survey.formats"], "ebook",
        "{}",
        export["patron"]
    );

    // The answers, as staff read them: per question, with the free text,
    // and withheld under k.
    let results: Value = serde_json::from_str(&ok(cli(dir).args([
        "--json", "report", "survey", "reading", "--k", "1", "--lang", "zh-CN",
    ])))
    .unwrap();
    assert_eq!(results["respondents"], 1, "{results}");
    let questions = &results["groups"][0]["questions"];
    assert_eq!(questions[0]["counts"][1], json!(["电子书", 1]), "{results}");
    assert_eq!(questions[3]["texts"][0], "更多中文电子书");
    let withheld: Value = serde_json::from_str(&ok(
        cli(dir).args(["--json", "report", "survey", "reading", "--k", "5"])
    ))
    .unwrap();
    assert_eq!(withheld["groups"][0]["suppressed"], true, "{withheld}");
    assert!(
        withheld["groups"][0]["questions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // One-click unsubscribe as a mail client posts it (RFC 8058).
    let mail = mails(dir)
        .into_iter()
        .find(|m| m.contains("wang@example.org") && m.contains("/r/s/"))
        .unwrap();
    let at = mail.find("List-Unsubscribe: <").unwrap() + "List-Unsubscribe: <".len();
    let url = &mail[at..at + mail[at..].find('>').unwrap()];
    let resp = agent
        .post(url)
        .content_type("application/x-www-form-urlencoded")
        .send("List-Unsubscribe=One-Click")
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Registrations are limited per address: the third goes, the fourth
    // waits an hour.
    for (n, expected) in [(3, 200), (4, 429)] {
        let resp = agent
            .post(format!("{site}/r/register"))
            .content_type("application/x-www-form-urlencoded")
            .send(format!(
                "lang=en&given_name=Reader&family_name=N{n}&email=r{n}%40example.org&category=public&locale=en"
            ))
            .unwrap();
        assert_eq!(resp.status(), expected, "registration {n}");
    }

    // A campaign defined through the service runs like one in a file.
    let campaign = std::fs::read_to_string(repo().join("samples/campaigns/welcome.toml"))
        .unwrap()
        .replace("id = \"welcome\"", "id = \"welcome-web\"");
    let put = |path: &str, body: &str| {
        let mut resp = agent
            .put(format!("{site}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("text/plain; charset=utf-8")
            .send(body)
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    let (status, body) = put("/v1/campaigns/welcome-web", &campaign);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        put("/v1/campaigns/other", &campaign).0,
        400,
        "the path's id must match"
    );
    assert_eq!(put("/v1/campaigns/welcome-web", "id = 3").0, 422);
    let listed = agent
        .get(format!("{site}/v1/campaigns"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(listed.contains("\"welcome-web\""), "{listed}");
    let ran: Value = serde_json::from_str(&ok(cli(dir).args([
        "--json",
        "campaign",
        "run",
        "welcome-web",
    ])))
    .unwrap();
    assert_eq!(ran[0]["campaign"], "welcome-web", "{ran}");
    let delete = |path: &str| {
        agent
            .delete(format!("{site}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(delete("/v1/campaigns/welcome-web"), 204);
    assert_eq!(delete("/v1/campaigns/welcome-web"), 404);

    // Every change a reader made is in the audit log, with the reader as
    // the actor, and the chain verifies.
    let audit = ok(cli(dir).args(["audit", "verify"]));
    assert!(
        audit.contains("intact") || audit.contains("verif"),
        "{audit}"
    );
}

/// The token at the end of the first `path` link in `text`.
fn token_after(text: &str, path: &str) -> String {
    let at = text
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in {text}"))
        + path.len();
    text[at..]
        .split(|c: char| c.is_whitespace() || c == '>')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn reader_links_are_signed_single_purpose_expiring_and_consent_outlasts_an_import() {
    use chrono::{Duration as Days, Utc};
    use lectern::{
        Channel, Config, Consents, Lectern, LinkProblem, LinkPurpose, Outbox as _, Patron,
        PatronRecord, Queued, ReaderChoice, SqliteStore, Store as _, Until, Written,
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = dir.join("lectern.db");
    let config = Config::parse(
        &format!(
            "[privacy]\npolicy = {:?}\n[notify]\nquiet-hours = \"none\"\n\
             [channels.email]\ntransport = \"maildir\"\ndir = \"mail\"\n\
             [readers]\npublic-url = \"https://crm.library.example/\"\nlink-days = 30\n",
            plugins::BASELINE_PRIVACY
        ),
        dir,
    )
    .unwrap();
    let ada = |marketing: bool| Patron {
        id: "p1".into(),
        name: Some("Ada Lovelace".into()),
        email: Some("ada@example.org".into()),
        locale: Some("en".into()),
        consents: Some(Consents {
            marketing,
            reading_history: true,
        }),
        channels: Some(vec![Channel::Email]),
        ..Patron::default()
    };
    let import = |marketing: bool| {
        let mut store = SqliteStore::open(&db).unwrap();
        let mut tx = store.import("test").unwrap();
        tx.put_patron(&PatronRecord {
            patron: ada(marketing),
            active: true,
            source: "test".into(),
        })
        .unwrap();
        tx.commit(Written::default(), 0).unwrap();
    };
    import(true);
    lectern_tests::keyring_beside(&db);
    let open = || {
        Lectern::open(
            lectern_tests::shared_host(),
            SqliteStore::open(&db).unwrap(),
            lectern_tests::keyring(),
            config.clone(),
        )
        .unwrap()
    };
    let mut lib = open();
    let now = Utc::now();
    let queue = |key: &str, marketing: bool| {
        let mut s = SqliteStore::open(&db).unwrap();
        s.enqueue(&[Queued {
            dedupe_key: key.into(),
            patron: "p1".into(),
            event: format!("e/{key}"),
            event_kind: if marketing { "new-arrival" } else { "due-soon" }.into(),
            marketing,
            plugin: "test".into(),
            channel: Channel::Email,
            locale: "en".into(),
            subject: "A notice".into(),
            body: "Text.".into(),
            day: now.date_naive(),
            digest: false,
            not_before: now,
        }])
        .unwrap();
    };
    queue("aa01", false);
    let report = lib.deliver(Until::NothingDue, &mut |_| {}).unwrap();
    assert_eq!(report.sent, 1);
    let mail = lectern_tests::maildir_files(&dir.join("mail")).remove(0);
    assert!(
        mail.contains(
            "Choose how and when the library writes to you: https://crm.library.example/r/p/"
        ),
        "{mail}"
    );
    assert!(
        mail.contains("List-Unsubscribe: <https://crm.library.example/r/u/"),
        "{mail}"
    );
    let prefs = token_after(&mail, "/r/p/");
    let unsub = token_after(&mail, "/r/u/");

    // Forged, tampered, used for another page, or expired: no page.
    let check = |lib: &Lectern, token: &str, purpose: LinkPurpose, at| {
        lib.check_link(token, &purpose, at).unwrap()
    };
    let mut tampered = prefs.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        check(&lib, &tampered, LinkPurpose::Preferences, now),
        Err(LinkProblem::Invalid)
    );
    assert_eq!(
        check(&lib, "nonsense", LinkPurpose::Preferences, now),
        Err(LinkProblem::Invalid)
    );
    assert_eq!(
        check(&lib, &prefs, LinkPurpose::Unsubscribe, now),
        Err(LinkProblem::Invalid)
    );
    assert_eq!(
        check(&lib, &unsub, LinkPurpose::Preferences, now),
        Err(LinkProblem::Invalid)
    );
    assert_eq!(
        check(&lib, &prefs, LinkPurpose::Preferences, now + Days::days(31)),
        Err(LinkProblem::Expired)
    );
    assert_eq!(check(&lib, &prefs, LinkPurpose::Preferences, now), Ok(()));

    // Opened once, then a session for half an hour.
    let page = lib.open_preferences(&prefs, now).unwrap().unwrap();
    assert!(page.marketing);
    assert_eq!(
        lib.open_preferences(&prefs, now).unwrap(),
        Err(LinkProblem::Used)
    );
    assert_eq!(
        lib.reader_preferences(&page.session, now + Days::minutes(31))
            .unwrap(),
        Err(LinkProblem::Expired)
    );
    let mut forged = page.session.clone();
    forged.insert(0, 'x');
    assert_eq!(
        lib.reader_preferences(&forged, now).unwrap(),
        Err(LinkProblem::Invalid)
    );

    // Withdrawing consent cancels what waits, at once, and outlasts the
    // ILS's next import, which still says yes.
    queue("aa02", true);
    let choice = ReaderChoice {
        channels_on: vec![Channel::Email],
        digest: false,
        notice_days: 5,
        locale: "zh-CN".into(),
        marketing: false,
        reading_history: true,
        awareness: true,
    };
    let (saved, cancelled) = lib
        .save_reader_preferences(&page.session, &choice, now)
        .unwrap()
        .unwrap();
    assert_eq!(cancelled, 1, "the queued marketing message is withdrawn");
    assert!(!saved.marketing);
    assert!(saved.awareness, "the reader asked for the digest");
    assert!(lib.preferences("p1").unwrap().awareness);
    assert_eq!(saved.locale, "zh-CN");
    drop(lib);
    import(true);
    let mut lib = open();
    let p = lib.store().patron("p1", now.date_naive()).unwrap().unwrap();
    assert!(
        !p.consents.unwrap().marketing,
        "the withdrawal outlasts the import"
    );
    assert_eq!(
        p.locale.as_deref(),
        Some("zh-CN"),
        "so does the reader's language"
    );

    // One-click unsubscribe works, and works again, as a mail client may
    // post it twice.
    assert_eq!(lib.unsubscribe(&unsub, now).unwrap(), Ok(0));
    assert_eq!(lib.unsubscribe(&unsub, now).unwrap(), Ok(0));
    assert!(lib.preferences("p1").unwrap().no_marketing);
    // A reader who turns news back on and posts the old link again means
    // it.
    let mut back_on = lib.preferences("p1").unwrap();
    back_on.no_marketing = false;
    lib.set_preferences("p1", &back_on).unwrap();
    assert_eq!(lib.unsubscribe(&unsub, now).unwrap(), Ok(0));
    assert!(lib.preferences("p1").unwrap().no_marketing);

    // The reader is the actor of what they did, in the audit log that the
    // patron's export shows them; erasure takes their links.
    let export = lib
        .export_patron("p1", now.date_naive(), "administrator")
        .unwrap();
    let by_reader: Vec<_> = export
        .reads_of_their_data
        .iter()
        .filter(|r| r.actor_kind == "reader")
        .map(|r| r.actor.as_str())
        .collect();
    assert!(
        by_reader.contains(&"preferences") && by_reader.contains(&"unsubscribe"),
        "{by_reader:?}"
    );
    assert!(lib.verify_audit().unwrap().intact());
    let erased = lib.erase_patron("p1", "administrator").unwrap();
    assert_eq!(erased.links, 2, "{erased:?}");
    assert_eq!(
        lib.check_link(&unsub, &LinkPurpose::Unsubscribe, now)
            .unwrap(),
        Err(LinkProblem::Invalid)
    );
}
