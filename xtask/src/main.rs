//! `cargo xtask`: the one entry point for project tasks, the same locally and
//! in CI.
//!
//! - `cargo xtask demo [--db postgres://…]`: builds the plugins and runs
//!   score, compose and filter on the bundled sample, in SQLite or in the
//!   library `lectern_demo` of a PostgreSQL database.
//! - `cargo xtask test`: every test, then formatting and lints.
//! - `cargo xtask plugins`: builds and packages the plugins into
//!   `target/plugins/`.
//! - `cargo xtask bench`: the benchmarks in BENCHMARKS.md.
//! - `cargo xtask fuzz [--minutes N] [TARGET...]`: the fuzz targets in
//!   `host/fuzz`, each for N minutes (default 10) over its corpus.
//! - `cargo xtask js-types`: writes the TypeScript declarations of each
//!   world into `plugins/js/types/`, after a change to the WIT.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use xtask::{build_plugins, ensure_wasm_target, repo_root};

mod bench_serve;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(),
        Some("lint") => lint(),
        Some("plugins") => plugins().map(|_| ()),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("kpz") => kpz(),
        Some("js-types") => {
            let root = repo_root();
            xtask::write_js_types(&root, &root.join("plugins/js/types"))
        }
        _ => {
            eprintln!("usage: cargo xtask <demo|test|lint|plugins|bench|fuzz|kpz|js-types>");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

/// Packs the Koha connector as the `.kpz` Koha's plugin upload takes: a
/// zip of its `Koha/` tree, written to `target/koha/`.
fn kpz() -> Result<()> {
    let src = repo_root().join("connectors/koha");
    let module = std::fs::read_to_string(src.join("Koha/Plugin/Org/Lectern/Connector.pm"))?;
    let version = module
        .lines()
        .find_map(|l| l.trim().strip_prefix("our $VERSION = '"))
        .and_then(|v| v.strip_suffix("';"))
        .context("Connector.pm has no `our $VERSION = '…';` line")?;
    let out = target().join("koha");
    std::fs::create_dir_all(&out)?;
    let kpz = out.join(format!("koha-plugin-lectern-connector-{version}.kpz"));
    // Python's zipfile is everywhere the tests run; no zip tool needed.
    run(Command::new("python3")
        .current_dir(&src)
        .args(["-m", "zipfile", "-c"])
        .arg(&kpz)
        .arg("Koha"))?;
    println!("{}", kpz.display());
    Ok(())
}

fn target() -> PathBuf {
    repo_root().join("target")
}

fn plugins() -> Result<PathBuf> {
    let out = target().join("plugins");
    let built = build_plugins(&repo_root(), &target().join("wasm-plugins"), &out)?;
    for p in built {
        eprintln!("packaged {}", p.dir.display());
    }
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(repo_root());
    c
}

/// The demo's store: `--db URL` names a PostgreSQL database, in which the
/// demo keeps its own library, `lectern_demo`, emptied first; otherwise a
/// SQLite file under `target/demo`.
fn demo_store(args: &[String], library: &Path) -> Result<(PathBuf, String)> {
    let url = match args {
        [] => {
            let db = library.join("lectern.db");
            return Ok((db, "SQLite".into()));
        }
        [flag, url] if flag == "--db" => url,
        _ => bail!("usage: cargo xtask demo [--db postgres://USER@HOST/DATABASE]"),
    };
    anyhow::ensure!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "--db takes a PostgreSQL URL; without it the demo uses SQLite"
    );
    anyhow::ensure!(
        !url.contains("library="),
        "the demo picks its own library, lectern_demo; give the URL without library="
    );
    let mut client =
        postgres::Client::connect(url.split('?').next().unwrap_or(url), postgres::NoTls)
            .with_context(|| format!("failed to connect to {url}"))?;
    client.batch_execute("DROP SCHEMA IF EXISTS lectern_demo CASCADE")?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok((
        PathBuf::from(format!("{url}{sep}library=lectern_demo")),
        "PostgreSQL".into(),
    ))
}

fn demo(args: &[String]) -> Result<()> {
    let plugins = plugins()?;
    run(cargo().args(["build", "--quiet", "-p", "lectern-cli"]))?;
    let lectern = target().join("debug").join("lectern");
    let samples = repo_root().join("samples");
    let cache = target().join("lectern-cache");
    let p = |id: &str| plugins.join(id);
    let library = target().join("demo");
    std::fs::create_dir_all(&library)?;
    let (db, engine) = demo_store(args, &library)?;
    let lectern_cmd = |title: &str, args: &[&dyn AsRef<std::ffi::OsStr>]| -> Result<()> {
        println!("\n=== {title} ===\n");
        let mut c = Command::new(&lectern);
        // Every command works on the demo's store, whose audit log records
        // each read, under the keyring made with it.
        c.arg("--cache-dir").arg(&cache).arg("--db").arg(&db);
        // A PostgreSQL library's keyring is named after it, in the
        // directory the command runs in.
        c.current_dir(target());
        c.args(args.iter().map(|a| a.as_ref()));
        // Score, compose and filter run as of the sample's date.
        if ["score", "compose", "filter"]
            .iter()
            .any(|cmd| args.iter().any(|a| a.as_ref() == *cmd))
        {
            c.args(["--as-of", "2026-11-28"]);
        }
        run(&mut c)
    };
    let (patrons, events) = (samples.join("patrons.jsonl"), samples.join("events.jsonl"));
    let policy = p("baseline-privacy");

    // A fresh store, and with it a fresh keyring and audit head.
    for suffix in [".db", ".db-wal", ".db-shm", ".key", ".audit-head"] {
        let _ = std::fs::remove_file(library.join(format!("lectern{suffix}")));
        let _ = std::fs::remove_file(target().join(format!("lectern_demo{suffix}")));
    }
    lectern_cmd(
        "A synthetic university library of 5,000 readers",
        &[
            &"gen",
            &"--patrons",
            &"5000",
            &"--seed",
            &"1",
            &"--out",
            &library,
        ],
    )?;
    let csv: Vec<PathBuf> = ["patrons.csv", "loans.csv", "holds.csv", "use.csv"]
        .iter()
        .map(|f| library.join(f))
        .collect();
    let mut import: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"import", &"--format", &"csv"];
    import.extend(csv.iter().map(|p| p as &dyn AsRef<std::ffi::OsStr>));
    lectern_cmd(&format!("Imported into the store ({engine})"), &import)?;
    lectern_cmd(
        "The 15 most engaged readers, and every segment (scoring sees no names or contacts)",
        &[
            &"score",
            &"--plugin",
            &p("engagement"),
            &"--policy",
            &policy,
            &"--top",
            &"15",
        ],
    )?;
    lectern_cmd(
        "Notices in each reader's language, on their preferred channel",
        &[
            &"compose",
            &"--plugin",
            &p("notices"),
            &"--policy",
            &policy,
            &"--events",
            &events,
            &"--patrons",
            &patrons,
        ],
    )?;
    lectern_cmd(
        "Key readers and churn risk, stored as runs: segments for differentiated service",
        &[
            &"score",
            &"--plugin",
            &p("key-readers"),
            &"--plugin",
            &p("churn-risk"),
            &"--policy",
            &policy,
            &"--top",
            &"5",
        ],
    )?;
    // Notices go to maildirs here; a library points email at its SMTP
    // server and SMS at its gateway's webhook instead.
    let config = library.join("lectern.toml");
    std::fs::write(
        &config,
        format!("[privacy]\npolicy = {:?}\n\n", policy.display().to_string())
            + "[notify]\ntimezone = \"Asia/Shanghai\"\n# The demo runs at any hour; a library keeps its quiet hours.\n\
         quiet-hours = \"none\"\n\n\
         [channels.email]\ntransport = \"maildir\"\ndir = \"outbox/email\"\n\
         [channels.sms]\ntransport = \"maildir\"\ndir = \"outbox/sms\"\n\
         [channels.print]\ntransport = \"maildir\"\ndir = \"outbox/print\"\n",
    )?;
    let _ = std::fs::remove_dir_all(library.join("outbox"));
    lectern_cmd(
        "Notices due today: circulation, new titles in readers' subjects (key readers get the first hold and a monthly digest), win-back for lapsed readers",
        &[
            &"--config",
            &config,
            &"notify",
            &"--plugin",
            &p("notices"),
            &"--plugin",
            &p("recommendations"),
            &"--plugin",
            &p("outreach"),
            &"--policy",
            &policy,
            &"--arrivals",
            &samples.join("arrivals.jsonl"),
            &"--awareness",
            &"--now",
            &"2026-11-28T02:00:00Z",
        ],
    )?;
    let needs_page = library.join("needs.html");
    lectern_cmd(
        "Readers' needs for the subject librarians: demand by subject, queues, a forecast of the next six months (page: target/demo/needs.html)",
        &[
            &"--config",
            &config,
            &"report",
            &"needs",
            &"--as-of",
            &"2026-11-28",
            &"--forecaster",
            &p("forecaster"),
            &"--html",
            &needs_page,
        ],
    )?;
    lectern_cmd(
        "Delivered from the outbox (to maildirs under target/demo/outbox)",
        &[&"--config", &config, &"deliver"],
    )?;
    lectern_cmd(
        "The outbox, per channel, as the circulation desk sees it",
        &[&"--config", &config, &"outbox", &"--list", &"5"],
    )?;
    for role in ["circulation-desk", "analyst"] {
        lectern_cmd(
            &format!("What the {role} sees"),
            &[
                &"filter",
                &"--plugin",
                &policy,
                &"--purpose",
                &"staff-view",
                &"--role",
                &role,
                &"--input",
                &patrons,
            ],
        )?;
    }
    lectern_cmd(
        "Every read above, and every hand-over to a channel, is in the audit log",
        &[&"audit", &"verify"],
    )?;
    Ok(())
}

fn test() -> Result<()> {
    ensure_wasm_target()?;
    ensure_debian(
        "/usr/bin/chromium",
        "CHROMIUM",
        "chromium",
        "the report tests render pages in it",
    )?;
    ensure_debian(
        "/usr/bin/chromedriver",
        "CHROMEDRIVER",
        "chromium-driver",
        "the reader-page tests drive Chromium over WebDriver with it",
    )?;
    ensure_debian(
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
        "LECTERN_CJK_FONT",
        "fonts-wqy-zenhei",
        "the reader pages' Chinese screenshots need a font with Chinese characters",
    )?;
    ensure_debian(
        "/usr/bin/docker-registry",
        "DOCKER_REGISTRY",
        "docker-registry",
        "the plugin tests push packages to and pull them from this OCI registry",
    )?;
    ensure_perl_module(
        "DBD::SQLite",
        "libdbd-sqlite3-perl",
        "the Koha connector's tests keep its queue in SQLite",
    )?;
    ensure_perl_module(
        "Template",
        "libtemplate-perl",
        "the Evergreen templates are rendered with Template Toolkit",
    )?;
    ensure_perl_module(
        "Config::General",
        "libconfig-general-perl",
        "Evergreen's CallHTTP reads a rendered template with Config::General",
    )?;
    ensure_postgres()?;
    xtask::ensure_componentize_py()?;
    xtask::ensure_aiosmtpd()?;
    xtask::ensure_schemathesis()?;
    run(cargo().args(["test", "--workspace"]))?;
    // The plugins' own unit tests (models, SDK date arithmetic) run natively.
    run(cargo()
        .current_dir(repo_root().join("plugins"))
        .args([
            "test",
            "--workspace",
            "--target",
            &host_triple()?,
            "--target-dir",
        ])
        .arg(target().join("plugins-native")))?;
    lint()
}

/// Starts the local PostgreSQL cluster if nothing answers on 127.0.0.1:5432:
/// the PostgreSQL store's conformance, consortium and worker tests run
/// against it. `LECTERN_TEST_POSTGRES` names another server instead.
fn ensure_postgres() -> Result<()> {
    if std::env::var_os("LECTERN_TEST_POSTGRES").is_some() {
        return Ok(());
    }
    let up = || {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], 5432)),
            std::time::Duration::from_secs(2),
        )
        .is_ok()
    };
    if up() {
        return Ok(());
    }
    eprintln!("starting the local PostgreSQL: the PostgreSQL store's tests need it");
    let versions = std::fs::read_dir("/etc/postgresql")
        .context("PostgreSQL is not running and not installed (no /etc/postgresql)")?;
    for version in versions {
        let version = version?.file_name();
        run(Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .arg(&version)
            .args(["main", "start"]))?;
    }
    for _ in 0..30 {
        if up() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    bail!("PostgreSQL was started but does not answer on 127.0.0.1:5432")
}

/// Installs Debian's `package`, which provides the Perl `module`, unless
/// Perl finds it already; `why` says which tests need it.
fn ensure_perl_module(module: &str, package: &str, why: &str) -> Result<()> {
    let found = Command::new("perl")
        .args([&format!("-M{module}"), "-e1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    // A path that is never there, so that the package is installed.
    ensure_debian("/nonexistent", "LECTERN_NO_SUCH_VARIABLE", package, why)
}

/// Installs Debian's `package`, which provides `binary`, unless it is there
/// or `env` names another; `why` says which tests need it.
fn ensure_debian(binary: &str, env: &str, package: &str, why: &str) -> Result<()> {
    if Path::new(binary).is_file() || std::env::var_os(env).is_some() {
        return Ok(());
    }
    eprintln!("installing Debian's {package}: {why}");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", package]) {
        return Ok(());
    }
    bail!(
        "`apt-get install {package}` failed, and {why}; install Debian's {package} (or set {env} \
         to its binary) and run this again"
    )
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("failed to run rustc")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV printed no host triple")
}

fn lint() -> Result<()> {
    ensure_wasm_target()?;
    let root = repo_root();
    let plugins = root.join("plugins");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo()
        .current_dir(&plugins)
        .args(["fmt", "--all", "--check"]))?;
    run(cargo()
        .current_dir(root.join("host/fuzz"))
        .args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--quiet",
        "-p",
        "lectern",
        "--no-deps",
    ]))?;
    run(cargo()
        .current_dir(&plugins)
        .args(["clippy", "--workspace", "--target-dir"])
        .arg(target().join("wasm-plugins"))
        .args(["--", "-D", "warnings"]))?;
    // The SDK is published on its own: it must package, and build from the
    // package alone (its WIT inside it).
    run(cargo()
        .current_dir(&plugins)
        .args([
            "package",
            "-p",
            "lectern-plugin",
            "--allow-dirty",
            "--target-dir",
        ])
        .arg(target().join("wasm-plugins")))
}

/// `cargo xtask bench [host|store|notify] [ARGS]`: `host` (the default)
/// measures the sandbox, `store` the import and the summaries of a generated
/// library, `notify` composing, queueing and delivering its notices.
fn bench(args: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    if args.first().map(String::as_str) == Some("serve") {
        return bench_serve::run(&args[1..], &plugins()?, cargo);
    }
    let (which, extra) = match args.first().map(String::as_str) {
        Some(b @ ("host" | "store" | "notify" | "postgres" | "forecast")) => (b, &args[1..]),
        _ => ("host", args),
    };
    run(cargo()
        .args(["bench", "-p", "lectern-tests", "--bench", which, "--"])
        .args(extra))
}

/// `cargo xtask fuzz [--minutes N] [TARGET...]`: runs each fuzz target (all
/// of them by default) for N minutes, 10 by default, with cargo fuzz on the
/// nightly toolchain, growing its corpus in `host/fuzz/corpus/TARGET`.
/// A crash stops the run, and libFuzzer prints the input it saved under
/// `host/fuzz/artifacts/TARGET/`. CI does not run this; the corpora run as
/// the smoke test `host/lectern/tests/fuzz_corpus.rs`.
fn fuzz(args: &[String]) -> Result<()> {
    let mut minutes = 10u64;
    let mut targets: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => {
                minutes = args
                    .next()
                    .and_then(|m| m.parse().ok())
                    .filter(|m| *m > 0)
                    .context("--minutes takes a whole number of minutes, at least 1")?;
            }
            t => targets.push(t.to_string()),
        }
    }
    let fuzz_dir = repo_root().join("host/fuzz");
    if targets.is_empty() {
        let mut all: Vec<String> = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))?
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".rs").map(str::to_string)
            })
            .collect();
        all.sort();
        targets = all;
    }
    ensure_cargo_fuzz()?;
    // The project's code is safe Rust, so AddressSanitizer would find
    // nothing the panics do not; without it a run covers about twice the
    // inputs. Debug assertions stay on.
    let fuzz = |sub: &str| {
        // rustup's `cargo`, not the one running xtask: only the proxy
        // understands `+nightly`.
        let mut c = Command::new("cargo");
        c.current_dir(repo_root())
            .args(["+nightly", "fuzz", sub, "--fuzz-dir"])
            .arg(&fuzz_dir)
            .args(["--sanitizer", "none", "--debug-assertions"]);
        c
    };
    run(&mut fuzz("build"))?;
    for t in &targets {
        eprintln!("fuzzing {t} for {minutes} min");
        let corpus = fuzz_dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        run(fuzz("run").arg(t).arg(&corpus).args([
            "--",
            &format!("-max_total_time={}", minutes * 60),
            "-max_len=65536",
            "-timeout=10",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
        ]))?;
    }
    Ok(())
}

/// cargo fuzz, from crates.io, and the nightly toolchain it needs.
fn ensure_cargo_fuzz() -> Result<()> {
    let has = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&["+nightly", "--version"]) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !has(&["fuzz", "--version"]) {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}
