//! A plugin's whole life, as its authors and a library live it: a project
//! from each template in each language, built with the language's own
//! tools and tested with `plugin test`; packed, signed, pushed to a real
//! OCI registry (the CNCF distribution registry, Debian's
//! `docker-registry`) and pulled back; installed with a grant, configured
//! and run by id; upgraded, refused an upgrade, and removed. Tampered,
//! untrusted and unsigned packages are refused, each saying why.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use lectern_tests::{lectern_bin, plugins, repo};

/// A registry on a free port of this machine, with its storage in a
/// temporary directory; stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Registry {
    let bin = std::env::var_os("DOCKER_REGISTRY")
        .map_or_else(|| PathBuf::from("/usr/bin/docker-registry"), PathBuf::from);
    assert!(
        bin.is_file(),
        "these tests need an OCI registry: install Debian's docker-registry (`cargo xtask test` \
         does), or set DOCKER_REGISTRY to its binary"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // Its log (every HEAD for a blob it lacks is an error to it) goes to
    // a file, out of the test's output.
    let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry {
        child,
        addr,
        _dir: dir,
    }
}

/// The library under test: its own store, configuration and cache.
struct Library {
    dir: PathBuf,
}

impl Library {
    fn lectern(&self) -> Command {
        let mut c = Command::new(lectern_bin());
        c.current_dir(&self.dir)
            .env("LECTERN_DB", self.dir.join("lectern.db"))
            .env("LECTERN_CONFIG", self.dir.join("lectern.toml"))
            .env("LECTERN_CACHE_DIR", repo().join("target/test-cache"))
            .env_remove("LECTERN_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.lectern().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "`lectern {}` failed: {}\n{stdout}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs a command that must fail with `code`; gives its error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "`lectern {}` should exit {code}: {stderr}",
            args.join(" ")
        );
        stderr
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn succeeds(c: &mut Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the project in `dir` the way its README says, with the pinned
/// tools the test command installed.
fn build(lang: &str, dir: &Path, id: &str, world: &str) {
    match lang {
        "rust" => {
            // The template depends on the SDK by version; here that version
            // is the checkout's.
            let manifest = dir.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap();
            std::fs::write(
                &manifest,
                format!(
                    "{text}\n[patch.crates-io]\nlectern-plugin = {{ path = {:?} }}\n",
                    repo().join("plugins/sdk")
                ),
            )
            .unwrap();
            // One target directory for the three, so the SDK builds once.
            let target = repo().join("target/template-plugins");
            succeeds(
                Command::new(env!("CARGO"))
                    .current_dir(dir)
                    .env("CARGO_TARGET_DIR", &target)
                    .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]),
                "cargo build",
            );
            let file = format!("{}.wasm", id.replace('-', "_"));
            let dest = dir.join("target/wasm32-wasip2/release");
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::copy(
                target.join("wasm32-wasip2/release").join(&file),
                dest.join(&file),
            )
            .unwrap();
        }
        "python" => succeeds(
            Command::new("componentize-py").current_dir(dir).args([
                "-d",
                "wit",
                "-w",
                world,
                "componentize",
                "--stub-wasi",
                "app",
                "-o",
                &format!("{id}.wasm"),
            ]),
            "componentize-py",
        ),
        _ => {
            // The pinned jco and componentize-js the build script installed.
            #[cfg(unix)]
            std::os::unix::fs::symlink(
                repo().join("target/js-tools/node_modules"),
                dir.join("node_modules"),
            )
            .unwrap();
            succeeds(
                Command::new("npm")
                    .current_dir(dir)
                    .args(["run", "--silent", "build"]),
                "npm run build",
            );
        }
    }
}

/// Flips one byte of the component inside a package file.
fn tamper(package: &Path, out: &Path) {
    let mut bytes = std::fs::read(package).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"\0asm\x0d\0\x01\0")
        .expect("a component in the package");
    bytes[at + 4096] ^= 1;
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn a_library_takes_plugins_from_every_template_through_their_whole_life() {
    let work = tempfile::tempdir().unwrap();
    let lib = Library {
        dir: work.path().to_path_buf(),
    };
    std::fs::write(work.path().join("lectern.toml"), "").unwrap();
    let registry = start_registry();
    let fixtures = work.path().join("rust-scorer/fixtures");

    // 1 and 2: every template, built and tested as it comes.
    let mut ids = Vec::new();
    for lang in ["rust", "python", "js"] {
        for world in ["scorer", "messenger", "privacy-filter"] {
            let id = format!("{lang}-{world}");
            let dir = work.path().join(&id);
            lib.ok(&[
                "plugin",
                "new",
                &id,
                "--world",
                world,
                "--lang",
                lang,
                "--dir",
                path(&dir),
            ]);
            build(lang, &dir, &id, world);
            let report = lib.json(&["plugin", "test", path(&dir)]);
            assert_eq!(report["plugin"], id.as_str());
            for case in report["cases"].as_array().unwrap() {
                assert_eq!(case["outcome"], "passed", "{id}: {report:#}");
                assert!(case["fuel_used"].as_u64().unwrap() > 0, "{report:#}");
                assert!(case["peak_memory_bytes"].as_u64().unwrap() > 0);
            }
            ids.push((id, dir));
        }
    }

    // 3: packed, signed, pushed, pulled back byte for byte.
    lib.ok(&["plugin", "keygen", "publisher"]);
    lib.ok(&["plugin", "keygen", "stranger"]);
    let pulled = work.path().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    for (id, dir) in &ids {
        let file = work.path().join(format!("{id}.tar"));
        lib.ok(&["plugin", "pack", path(dir), "-o", path(&file)]);
        lib.ok(&["plugin", "sign", path(&file), "--key", "publisher.key"]);
        let reference = format!("{}/lectern/{id}:0.1.0", registry.addr);
        lib.ok(&["plugin", "push", path(&file), &reference, "--plain-http"]);
        let back = pulled.join(format!("{id}.tar"));
        lib.ok(&[
            "plugin",
            "pull",
            &reference,
            "-o",
            path(&back),
            "--plain-http",
        ]);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(&back).unwrap(),
            "{id} comes back from the registry as it went"
        );
    }

    // Refused, each with its reason, before any trust is given.
    let signed = pulled.join("rust-scorer.tar");
    let err = lib.fails(&["plugin", "install", path(&signed), "--grant", "all"], 77);
    assert!(err.contains("which this library does not trust"), "{err}");
    lib.ok(&[
        "trust",
        "add",
        "publisher.pub",
        "--name",
        "Template publisher",
    ]);
    let tampered = work.path().join("tampered.tar");
    tamper(&signed, &tampered);
    let err = lib.fails(
        &["plugin", "install", path(&tampered), "--grant", "all"],
        65,
    );
    assert!(
        err.contains("does not match its digest") && err.contains("changed after it was packed"),
        "{err}"
    );
    let strangers = work.path().join("strangers.tar");
    std::fs::copy(work.path().join("rust-scorer.tar"), &strangers).unwrap();
    lib.ok(&["plugin", "sign", path(&strangers), "--key", "stranger.key"]);
    let err = lib.fails(
        &["plugin", "install", path(&strangers), "--grant", "all"],
        77,
    );
    assert!(
        err.contains("is signed by key") && err.contains("does not trust"),
        "{err}"
    );
    let unsigned = work.path().join("unsigned.tar");
    lib.ok(&[
        "plugin",
        "pack",
        path(&work.path().join("rust-scorer")),
        "-o",
        path(&unsigned),
    ]);
    let err = lib.fails(
        &["plugin", "install", path(&unsigned), "--grant", "all"],
        77,
    );
    assert!(err.contains("is not signed"), "{err}");
    // Without a grant, and with no terminal to ask, nothing is assumed.
    let err = lib.fails(&["plugin", "install", path(&signed)], 65);
    assert!(err.contains("say what to grant"), "{err}");

    // 4: installed with their grants; the messengers get less than they ask.
    for (id, _) in &ids {
        let file = pulled.join(format!("{id}.tar"));
        let grant = if id.ends_with("messenger") {
            "name,channels"
        } else {
            "all"
        };
        lib.ok(&["plugin", "install", path(&file), "--grant", grant]);
    }
    let list = lib.json(&["plugin", "list"]);
    assert_eq!(list["plugins"].as_array().unwrap().len(), 9, "{list:#}");
    let lock = std::fs::read_to_string(work.path().join("lectern.lock")).unwrap();
    assert_eq!(lock.matches("[[plugin]]").count(), 9, "{lock}");
    // An unsigned package goes in only when the operator says so, and the
    // registry shows it.
    let unsigned_dir = tempfile::tempdir().unwrap();
    let copy = lectern_tests::plugin_copy(plugins::KEEP_ALL_PRIVACY, |m| m);
    let keep_all = unsigned_dir.path().join("keep-all.tar");
    lib.ok(&["plugin", "pack", path(copy.path()), "-o", path(&keep_all)]);
    lib.ok(&["plugin", "install", path(&keep_all), "--allow-unsigned"]);
    let table = lib.ok(&["plugin", "list"]);
    assert!(
        table.contains("keep-all-privacy") && table.contains("UNSIGNED"),
        "{table}"
    );

    // 5: the library's policy, chosen by id, and plugins run by id.
    lib.ok(&["policy", "use", "python-privacy-filter"]);
    let err = lib.fails(&["plugin", "remove", "python-privacy-filter"], 65);
    assert!(err.contains("the library's privacy policy"), "{err}");
    let patrons = fixtures.join("example.patrons.jsonl");
    let score = |id: &str| {
        lib.json(&[
            "score",
            "--plugin",
            id,
            "--input",
            path(&patrons),
            "--as-of",
            "2026-11-28",
        ])
    };
    for id in ["rust-scorer", "python-scorer", "js-scorer"] {
        let run = score(id);
        assert_eq!(run["scores"][1]["patron"], "T002", "{run:#}");
        assert_eq!(run["scores"][1]["segment"], "quiet", "{id}: {run:#}");
    }
    lib.ok(&["plugin", "config", "rust-scorer", "busy-at", "10"]);
    let err = lib.fails(&["plugin", "config", "rust-scorer", "busy-at", "0"], 65);
    assert!(err.contains("below the minimum of 1"), "{err}");
    let err = lib.fails(&["plugin", "config", "rust-scorer", "colour", "red"], 65);
    assert!(err.contains("no configuration key `colour`"), "{err}");
    let run = score("rust-scorer");
    assert_eq!(run["scores"][1]["segment"], "busy", "{run:#}");
    assert_eq!(run["scores"][1]["value"], 75.0, "{run:#}");

    // The messenger runs under the library's policy and its own grant: a
    // policy that lets everything out, and a grant without `email`.
    lib.ok(&["policy", "use", "keep-all-privacy"]);
    let composed = lib.json(&[
        "compose",
        "--plugin",
        "js-messenger",
        "--events",
        path(
            &work
                .path()
                .join("js-messenger/fixtures/example.events.jsonl"),
        ),
        "--patrons",
        path(&patrons),
        "--as-of",
        "2026-11-28",
    ]);
    let first = &composed["messages"][0];
    assert_eq!(first["patron"], "T001", "{composed:#}");
    assert!(
        first["body"]
            .as_str()
            .unwrap()
            .starts_with("Dear Ada Reader"),
        "{composed:#}"
    );
    assert_eq!(
        first["channel"], "print",
        "email was not granted, so it never reached the plugin: {composed:#}"
    );

    // Disabled plugins do not run, and come back when enabled.
    lib.ok(&["plugin", "disable", "js-scorer"]);
    let err = lib.fails(
        &["score", "--plugin", "js-scorer", "--input", path(&patrons)],
        77,
    );
    assert!(err.contains("disabled"), "{err}");
    lib.ok(&["plugin", "enable", "js-scorer"]);
    score("js-scorer");

    // 6: an upgrade keeps the grant and the configuration; a version whose
    // schema refuses the library's setting is refused, and the installed
    // one stays.
    let project = work.path().join("rust-scorer");
    let manifest = project.join("plugin.toml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        original.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let v2 = work.path().join("rust-scorer-0.2.0.tar");
    lib.ok(&["plugin", "pack", path(&project), "-o", path(&v2)]);
    lib.ok(&["plugin", "sign", path(&v2), "--key", "publisher.key"]);
    let out = lib.ok(&["plugin", "upgrade", "rust-scorer", path(&v2)]);
    assert!(
        out.contains("upgraded rust-scorer from 0.1.0 to 0.2.0"),
        "{out}"
    );
    let run = score("rust-scorer");
    assert_eq!(run["version"], "0.2.0", "{run:#}");
    assert_eq!(
        run["scores"][1]["segment"], "busy",
        "the setting carried over"
    );
    std::fs::write(
        &manifest,
        original
            .replace("version = \"0.1.0\"", "version = \"0.3.0\"")
            .replace("default = 20", "default = 3")
            .replace("max = 1000", "max = 5"),
    )
    .unwrap();
    let v3 = work.path().join("rust-scorer-0.3.0.tar");
    lib.ok(&["plugin", "pack", path(&project), "-o", path(&v3)]);
    lib.ok(&["plugin", "sign", path(&v3), "--key", "publisher.key"]);
    let err = lib.fails(&["plugin", "upgrade", "rust-scorer", path(&v3)], 70);
    assert!(
        err.contains("`busy-at`") && err.contains("above the maximum of 5"),
        "{err}"
    );
    let info = lib.json(&["plugin", "info", "rust-scorer"]);
    assert_eq!(info["installed"]["version"], "0.2.0", "{info:#}");
    assert_eq!(score("rust-scorer")["version"], "0.2.0");

    // A lockfile that no longer matches stops the plugin before it runs.
    let lock_path = work.path().join("lectern.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    let digest = info["installed"]["digest"].as_str().unwrap();
    std::fs::write(
        &lock_path,
        lock.replace(digest, &format!("sha256:{}", "0".repeat(64))),
    )
    .unwrap();
    let err = lib.fails(
        &[
            "score",
            "--plugin",
            "rust-scorer",
            "--input",
            path(&patrons),
        ],
        65,
    );
    assert!(err.contains("the lockfile"), "{err}");
    std::fs::write(&lock_path, lock).unwrap();

    // And removed, from the store and the lockfile.
    lib.ok(&["plugin", "remove", "rust-scorer"]);
    let list = lib.json(&["plugin", "list"]);
    assert!(
        !list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "rust-scorer"),
        "{list:#}"
    );
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(!lock.contains("rust-scorer"), "{lock}");
    let err = lib.fails(&["plugin", "info", "rust-scorer"], 66);
    assert!(
        err.contains("no plugin \"rust-scorer\" is installed"),
        "{err}"
    );
}
