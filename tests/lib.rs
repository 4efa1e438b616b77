//! Shared helpers for the end-to-end tests: the packaged plugins, the
//! bundled sample data, and a host whose plugin log the test can read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::NaiveDate;
use lectern::{Config, Event, Host, Keyring, Lectern, LogLine, Patron, Pipeline, SqliteStore};

/// The plugins the build script built and packaged, one directory each.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The date the tests score and compose as of.
pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
}

/// The bundled sample patrons.
pub fn sample_patrons() -> Vec<Patron> {
    lectern::read_jsonl(&repo().join("samples/patrons.jsonl")).unwrap()
}

/// The bundled sample events.
pub fn sample_events() -> Vec<Event> {
    lectern::read_jsonl(&repo().join("samples/events.jsonl")).unwrap()
}

/// One sample patron by id.
pub fn patron(id: &str) -> Patron {
    sample_patrons().into_iter().find(|p| p.id == id).unwrap()
}

/// A host that keeps every plugin log line for the test to read.
pub fn host() -> (Host, Arc<Mutex<Vec<LogLine>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    // A shared cache: a debug build compiles each component in about 0.5 s.
    let host = Host::builder()
        .cache_dir(repo().join("target/test-cache"))
        .log_sink(move |l: &LogLine| sink.lock().unwrap().push(l.clone()))
        .build()
        .unwrap();
    (host, lines)
}

/// The tests' keys: fixed, so tokens are the same in every run.
pub const TEST_KEY: &[u8] = b"lectern tests: a fixed 32-byte k";

/// A keyring of [`TEST_KEY`] for both the audit chain and pseudonyms.
pub fn keyring() -> Keyring {
    Keyring::from_keys(TEST_KEY, TEST_KEY).unwrap()
}

/// One host for the tests that do not read plugin logs.
pub fn shared_host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| host().0)
}

/// The library configuration the tests run under: the defaults, with
/// `baseline-privacy` as the policy, as a library would set it.
pub fn config() -> Config {
    Config {
        policy: Some(plugins::BASELINE_PRIVACY.into()),
        ..Config::default()
    }
}

/// A scratch directory for this test process, removed by the OS's temp
/// cleaning, never inside the repository.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// A `lectern.toml` that puts `baseline-privacy` in force, as a library
/// configures its policy.
pub fn config_file() -> PathBuf {
    let path = scratch().join("lectern.toml");
    if !path.is_file() {
        std::fs::write(
            &path,
            format!("[privacy]\npolicy = {:?}\n", plugins::BASELINE_PRIVACY),
        )
        .unwrap();
    }
    path
}

/// The `lectern` binary as the tests run it: under [`config_file`], with
/// its default store in [`scratch`] rather than the working directory.
pub fn lectern_command() -> std::process::Command {
    let mut c = std::process::Command::new(lectern_bin());
    c.env("LECTERN_CONFIG", config_file())
        .env("LECTERN_DB", scratch().join("lectern.db"));
    c
}

/// A library over a fresh temporary store, under [`config`] and
/// [`keyring`].
pub fn library() -> Lectern {
    library_over(SqliteStore::temporary().unwrap())
}

/// A library over `store`, under [`config`] and [`keyring`]. The keyring
/// is also saved beside the store's file, where the `lectern` command looks
/// for it, as it would be had the command made the store.
pub fn library_over(store: SqliteStore) -> Lectern {
    keyring_beside(store.path());
    Lectern::open(shared_host(), store, keyring(), config()).unwrap()
}

/// Saves [`keyring`] beside the store at `db`, where the `lectern` command
/// looks for it, unless one is there.
pub fn keyring_beside(db: &Path) {
    let beside = db.with_extension("key");
    if !beside.exists() {
        keyring().save(&beside).unwrap();
    }
}

/// A pipeline as of [`as_of`] of a fresh [`library`]: `baseline-privacy`
/// in force, every read audited in its temporary store.
pub fn pipeline() -> Pipeline {
    library().pipeline(as_of())
}

/// A copy of a packaged plugin whose `plugin.toml` the test may rewrite.
pub fn plugin_copy(packaged: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(packaged).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let manifest = dir.path().join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(text)).unwrap();
    dir
}

/// A copy of `testkit` in `mode`.
pub fn testkit(mode: &str) -> tempfile::TempDir {
    plugin_copy(plugins::TESTKIT, |m| {
        m.replace("mode = \"echo\"", &format!("mode = \"{mode}\""))
    })
}

/// The `lectern` binary, built once per test process, as a library's staff
/// or a vendor's script runs it.
pub fn lectern_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(repo())
            .args(["build", "--quiet", "-p", "lectern-cli", "--bin", "lectern"])
            .status()
            .unwrap();
        assert!(status.success(), "building lectern failed");
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| repo().join("target"), PathBuf::from)
            .join("debug/lectern")
    })
    .clone()
}

/// Generates a library of `patrons` readers (seed 1, ending on
/// [`as_of`]) into `dir` as Lectern's CSV; returns what was written and the
/// files, patrons first.
pub fn generated_library(dir: &Path, patrons: u64) -> (lectern::GenSummary, Vec<PathBuf>) {
    let summary = lectern::generate(
        &lectern::GenOptions {
            patrons,
            seed: 1,
            end: as_of(),
        },
        dir,
        &mut |_| {},
    )
    .unwrap();
    let files = ["patrons.csv", "loans.csv", "holds.csv", "use.csv"]
        .map(|f| dir.join(f))
        .to_vec();
    (summary, files)
}

/// The process's peak resident memory (VmHWM), in KiB: what a bench
/// reports beside its times.
pub fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A bench's size: its first numeric argument (`cargo xtask bench store
/// 100000`), or `default`.
pub fn bench_size(default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// A Koha sample from `tests/fixtures/koha/`, as text.
pub fn koha_fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/koha").join(name)).unwrap()
}

/// Writes `bytes` to `dir/name`, and returns its path.
pub fn write_file(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The files in the maildir `dir`'s `new`, as text, in order.
pub fn maildir_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join("new"))
        .map(|d| {
            d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The `lectern` binary on the store `lectern.db` and the configuration
/// `lectern.toml` in `dir`, as a library's own folder runs it.
pub fn lectern_in(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(lectern_bin());
    c.current_dir(dir)
        .arg("--no-cache")
        .arg("--db")
        .arg(dir.join("lectern.db"))
        .arg("--config")
        .arg(dir.join("lectern.toml"))
        .env_remove("LECTERN_DB")
        .env_remove("LECTERN_CONFIG");
    c
}

/// Runs `c`, which must succeed; its standard output.
pub fn stdout_of(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A TCP port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
