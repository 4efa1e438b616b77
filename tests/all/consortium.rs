//! A consortium on the PostgreSQL store: two member libraries in one
//! database, each in its own schema under its own keyring, the same
//! patron ids in both, and one library's staff reading nothing of the
//! other's, through the command line and through the service. And TLS to
//! the server, verified.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lectern_tests::plugins;

/// The PostgreSQL server: `LECTERN_TEST_POSTGRES`, else the local one
/// `cargo xtask test` makes sure is running.
pub(crate) fn postgres_url() -> String {
    std::env::var("LECTERN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A member library's name no other test run uses.
pub(crate) fn fresh_library(stem: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{stem}_{}_{nanos}", std::process::id())
}

/// Drops a member library's schema when the test ends, however it ends.
pub(crate) struct Library {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Library {
    pub(crate) fn new(stem: &str) -> Library {
        let name = fresh_library(stem);
        Library {
            url: format!("{}?library={name}", postgres_url()),
            name,
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(postgres_url())
            .args([
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}

/// `lectern` on `library`, run in `dir`, where its keyring is.
pub(crate) fn lectern(dir: &Path, library: &Library) -> Command {
    let mut c = Command::new(lectern_tests::lectern_bin());
    c.current_dir(dir)
        .arg("--no-cache")
        .arg("--db")
        .arg(&library.url)
        .arg("--config")
        .arg(dir.join("lectern.toml"))
        .env_remove("LECTERN_DB")
        .env_remove("LECTERN_CONFIG")
        .env_remove("LECTERN_KEY_FILE");
    c
}

fn ok(c: &mut Command) -> String {
    lectern_tests::stdout_of(c)
}

fn generated(dir: &Path) -> Vec<PathBuf> {
    let data = dir.join("data");
    let out = Command::new(lectern_tests::lectern_bin())
        .args(["gen", "--patrons", "60", "--seed", "7", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ["patrons.csv", "loans.csv", "holds.csv", "use.csv"]
        .iter()
        .map(|f| data.join(f))
        .collect()
}

struct Server(Child, String);

impl Server {
    fn start(dir: &Path, library: &Library) -> Server {
        let mut child = lectern(dir, library)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().to_string();
        Server(child, format!("http://{addr}"))
    }

    fn get(&self, path: &str, token: &str) -> (u16, String) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut resp = agent
            .get(format!("{}{path}", self.1))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_patron(csv: &Path) -> String {
    let text = std::fs::read_to_string(csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "id").unwrap();
    text.lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(column)
        .unwrap()
        .to_string()
}

#[test]
fn member_libraries_read_nothing_of_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\n\n[serve]\nlisten = \"127.0.0.1:0\"\n",
            plugins::BASELINE_PRIVACY
        ),
    )
    .unwrap();
    let files = generated(dir);
    let (north, south) = (Library::new("north"), Library::new("south"));
    for library in [&north, &south] {
        let out = ok(lectern(dir, library)
            .args(["import", "--format", "csv"])
            .args(&files));
        assert!(out.contains("imported"), "{out}");
    }
    // Each library has a keyring of its own, named after it.
    let keys: Vec<Vec<u8>> = [&north, &south]
        .iter()
        .map(|l| std::fs::read(dir.join(format!("{}.key", l.name))).unwrap())
        .collect();
    assert_ne!(keys[0], keys[1], "one keyring per member library");

    // The same patron id in both: erased in the north, kept in the south.
    let id = first_patron(&files[0]);
    ok(lectern(dir, &north).args(["patron", "erase", &id]));
    let gone = lectern(dir, &north)
        .args(["patron", "export", &id])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the north erased {id}");
    let kept: serde_json::Value =
        serde_json::from_str(&ok(lectern(dir, &south).args(["patron", "export", &id]))).unwrap();
    assert_eq!(kept["patron"]["id"], id.as_str());
    // The south's export shows only the south's own reads of the patron.
    let reads = kept["reads_of_their_data"].as_array().unwrap();
    assert!(
        reads.iter().all(|r| !r.to_string().contains("erase")),
        "the north's erasure is not in the south's audit log: {reads:?}"
    );

    // One library's keyring cannot open another's store.
    let mut wrong_key = lectern(dir, &south);
    wrong_key
        .arg("--key-file")
        .arg(dir.join(format!("{}.key", north.name)))
        .args(["patron", "export", &id]);
    let refused = wrong_key.output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("keyring"), "{stderr}");

    // Staff tokens belong to one library.
    let token = |library: &Library| -> String {
        let out = ok(lectern(dir, library).args([
            "--json",
            "staff",
            "add",
            "records",
            "--role",
            "administrator",
        ]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let (north_token, south_token) = (token(&north), token(&south));
    let north_service = Server::start(dir, &north);
    let south_service = Server::start(dir, &south);
    let export = format!("/v1/patrons/{id}/export");
    assert_eq!(south_service.get(&export, &south_token).0, 200);
    let (status, body) = south_service.get(&export, &north_token);
    assert_eq!(status, 401, "the north's token at the south: {body}");
    assert!(!body.contains(&id), "{body}");
    assert_eq!(north_service.get(&export, &north_token).0, 404);
    assert_eq!(north_service.get(&export, &south_token).0, 401);
    // And both audit logs still verify, each on its own.
    for library in [&north, &south] {
        let out = ok(lectern(dir, library).args(["audit", "verify"]));
        assert!(out.contains("intact"), "{out}");
    }
}

#[test]
fn tls_to_the_server_is_verified() {
    // The local server's certificate is Debian's snakeoil one, made for
    // `localhost`: trusted as a root, and checked against the host name.
    let cert = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    assert!(
        Path::new(cert).is_file(),
        "the local PostgreSQL serves TLS with {cert}"
    );
    let base = postgres_url().replace("127.0.0.1", "localhost");
    let store =
        lectern::PgStore::temporary(&format!("{base}?sslmode=require&sslrootcert={cert}")).unwrap();
    assert!(store.encrypted().unwrap(), "the connection is TLS");

    // Another name than the certificate's is refused, and so is a
    // certificate no root vouches for.
    let wrong_name = postgres_url().replace("localhost", "127.0.0.1");
    let e =
        lectern::PgStore::temporary(&format!("{wrong_name}?sslmode=require&sslrootcert={cert}"))
            .err()
            .expect("a certificate for another name is refused");
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
    let e = lectern::PgStore::temporary(&format!("{base}?sslmode=require"))
        .err()
        .expect("a self-signed certificate without sslrootcert is refused");
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");
}

#[test]
fn a_damaged_export_gives_the_same_report_on_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("lectern.toml"),
        format!("[privacy]\npolicy = {:?}\n", plugins::BASELINE_PRIVACY),
    )
    .unwrap();
    let files = generated(dir);
    // A loan twice, a loan of nobody, a patron twice, a truncated line.
    let loans = std::fs::read_to_string(&files[1]).unwrap();
    let lines: Vec<&str> = loans.lines().collect();
    let mut orphan: Vec<String> = lines[6].split(',').map(String::from).collect();
    orphan[0].push('x');
    orphan[1] = "NOBODY".into();
    let damaged = format!(
        "{loans}{}\n{}\n{}\n",
        lines[5],
        orphan.join(","),
        &lines[7][..lines[7].len() / 2]
    );
    std::fs::write(&files[1], damaged).unwrap();
    let patrons = std::fs::read_to_string(&files[0]).unwrap();
    let again = patrons.lines().nth(3).unwrap().to_string();
    std::fs::write(&files[0], format!("{patrons}{again}\n")).unwrap();

    let report = |c: &mut Command| -> (Option<i32>, serde_json::Value) {
        let out = c
            .args(["--json", "import", "--format", "csv"])
            .args(&files)
            .output()
            .unwrap();
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr))),
        )
    };
    let sqlite = report(&mut lectern_tests::lectern_in(dir));
    let library = Library::new("damaged");
    let postgres = report(&mut lectern(dir, &library));
    assert_eq!(
        sqlite, postgres,
        "the same records skipped for the same reasons"
    );
    assert!(
        sqlite.1["skipped"].as_array().unwrap().len() >= 4,
        "{}",
        sqlite.1
    );
    // And a strict import writes nothing on either.
    let strict = Library::new("strict");
    let out = lectern(dir, &strict)
        .args(["import", "--strict", "--format", "csv"])
        .args(&files)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let store = lectern::PgStore::open(&strict.url).unwrap();
    assert_eq!(lectern::Records::patron_count(&store).unwrap(), 0);
}

/// Drops a consortium's schema when the test ends.
struct ConsortiumSchema(String);

impl Drop for ConsortiumSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(postgres_url())
            .args(["-qc", &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0)])
            .output();
    }
}

/// A generated library of `patrons` readers, imported and scored.
fn scored_member(dir: &Path, library: &Library, patrons: usize, seed: u64) {
    let data = dir.join(format!("data-{}", library.name));
    let out = Command::new(lectern_tests::lectern_bin())
        .args(["gen", "--patrons", &patrons.to_string()])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ok(lectern(dir, library)
        .args(["import", "--format", "csv"])
        .args(["patrons.csv", "loans.csv", "holds.csv", "use.csv"].map(|f| data.join(f))));
    ok(lectern(dir, library).args(["score", "--plugin", plugins::ENGAGEMENT]));
}

/// Every positive count under k is hidden, and no line whose total is
/// shown hides exactly one count: the total less the others would give it
/// away.
fn assert_suppressed(report: &serde_json::Value, k: u64) {
    let rows: Vec<Vec<Option<u64>>> = report["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64())
                .collect()
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        assert!(
            row.iter().flatten().all(|n| *n == 0 || *n >= k),
            "row {i} shows a count under {k}: {row:?}"
        );
        let hidden = row.iter().filter(|c| c.is_none()).count();
        let total = &report["libraries"][i]["total"];
        assert!(total.is_null() || hidden != 1, "row {i}: {report}");
    }
    for j in 0..rows[0].len() {
        let hidden = rows.iter().filter(|r| r[j].is_none()).count();
        let total = &report["totals"][j];
        assert!(total.is_null() || total.as_u64().unwrap() >= k);
        assert!(total.is_null() || hidden != 1, "column {j}: {report}");
    }
}

#[test]
fn consortium_staff_read_aggregates_across_members_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\n\n[serve]\nlisten = \"127.0.0.1:0\"\n",
            plugins::BASELINE_PRIVACY
        ),
    )
    .unwrap();
    let consortium = ConsortiumSchema(fresh_library("consortium"));
    let member = |stem: &str| {
        let mut l = Library::new(stem);
        l.url = format!("{}&consortium={}", l.url, consortium.0);
        l
    };
    let (north, south, small) = (member("north"), member("south"), member("small"));
    scored_member(dir, &north, 300, 3);
    scored_member(dir, &south, 200, 5);
    scored_member(dir, &small, 14, 9);

    // Only a member publishes, and only as a role that may see segments.
    let refused = lectern(dir, &north)
        .args(["consortium", "publish"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(65), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("consortium join"), "{stderr}");
    for library in [&north, &south, &small] {
        let out = ok(lectern(dir, library).args(["consortium", "join"]));
        assert!(out.contains("joined"), "{out}");
        ok(lectern(dir, library).args(["consortium", "publish"]));
    }
    let members = ok(lectern(dir, &north).args(["--json", "consortium", "members"]));
    let members: Vec<String> = serde_json::from_str(&members).unwrap();
    assert_eq!(members.len(), 3);

    // The consortium's table, from the command line: small counts hidden,
    // with partners, and the totals across members add up.
    let report: serde_json::Value = serde_json::from_str(&ok(lectern(dir, &south).args([
        "--json",
        "consortium",
        "report",
        "--k",
        "10",
    ])))
    .unwrap();
    assert_suppressed(&report, 10);
    assert!(report["hidden"].as_u64().unwrap() >= 2, "{report}");
    let small_row = report["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["library"] == small.name.as_str())
        .unwrap();
    assert!(
        small_row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.is_null()),
        "a library of 14 readers has segments under 10: {report}"
    );
    let table = ok(lectern(dir, &south).args(["consortium", "report", "--k", "10"]));
    assert!(table.contains("hidden (·)"), "{table}");

    // Its staff: a consortium token reads the table through any member's
    // service, and nothing of any library; a library's token does not
    // read the table.
    let out = ok(lectern(dir, &north).args(["--json", "consortium", "staff", "add", "office"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["account"]["role"], "consortium");
    let office = v["token"].as_str().unwrap().to_string();
    let out = ok(lectern(dir, &north).args([
        "--json",
        "staff",
        "add",
        "records",
        "--role",
        "administrator",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let records = v["token"].as_str().unwrap().to_string();

    let service = Server::start(dir, &north);
    let (status, body) = service.get("/v1/consortium/segments?k=10", &office);
    assert_eq!(status, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served, report, "the service and the command line agree");
    let (status, body) = service.get("/v1/consortium/segments?k=10", &records);
    assert_eq!(status, 401, "a library's token at the consortium: {body}");
    let (status, body) = service.get("/v1/consortium/segments?k=2", &office);
    assert_eq!(status, 403, "k under the floor: {body}");
    let id = first_patron(&dir.join(format!("data-{}/patrons.csv", north.name)));
    for path in [
        format!("/v1/patrons/{id}/export"),
        "/v1/reports/segments".to_string(),
        "/v1/reports/key-readers".to_string(),
    ] {
        let (status, body) = service.get(&path, &office);
        assert_eq!(status, 401, "the consortium's token at {path}: {body}");
    }
    drop(service);

    // A revoked consortium token stops working; a library that leaves
    // takes its counts with it.
    ok(lectern(dir, &north).args(["consortium", "staff", "revoke", "office"]));
    ok(lectern(dir, &small).args(["consortium", "leave"]));
    let after: serde_json::Value = serde_json::from_str(&ok(lectern(dir, &north).args([
        "--json",
        "consortium",
        "report",
    ])))
    .unwrap();
    assert_eq!(after["libraries"].as_array().unwrap().len(), 2, "{after}");
    let service = Server::start(dir, &north);
    assert_eq!(service.get("/v1/consortium/segments", &office).0, 401);

    // The reads behind the counts are in each member's own chain, which
    // still verifies.
    for library in [&north, &south] {
        let out = ok(lectern(dir, library).args(["audit", "verify"]));
        assert!(out.contains("intact"), "{out}");
    }
}
