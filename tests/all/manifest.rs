//! Manifests and loading: every error names the file, the key and the
//! value, and says what to do.
//!
//! The data-driven cases live in `tests/ui/manifest/`: each `NAME.toml` sits
//! beside the `NAME.err` it must produce. Run with `BLESS=1` to rewrite the
//! `.err` files after an intended change, and review the diff.

use std::path::Path;

use lectern::{Limits, Manifest};
use lectern_tests::{host, plugin_copy, plugins, repo};

fn check(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let name = Path::new(path.file_name().unwrap());
    match Manifest::parse(name, &text).and_then(|m| m.limits(&Limits::default(), &Limits::maxima()))
    {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn manifest_errors_match_their_expected_messages() {
    let dir = repo().join("tests/ui/manifest");
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        cases += 1;
        let got = check(&path) + "\n";
        let expected_path = path.with_extension("err");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            wrong.push(format!(
                "{}:\n  expected: {expected}  got:      {got}",
                path.display()
            ));
        }
    }
    assert!(cases >= 10, "only {cases} cases found in {}", dir.display());
    assert!(
        wrong.is_empty(),
        "{} cases differ (BLESS=1 rewrites them):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_component_of_another_world_is_refused_by_name() {
    let (host, _) = host();
    let dir = plugin_copy(plugins::ENGAGEMENT, |m| {
        // A messenger names no segments: drop the scorer's list with the world.
        let m = m.replace("world = \"scorer\"", "world = \"messenger\"");
        m[..m.find("\n# Every segment").unwrap_or(m.len())].to_string()
    });
    let err = host.load(dir.path()).unwrap_err().to_string();
    assert!(err.starts_with("plugin `engagement`: "), "{err}");
    assert!(
        err.contains("says world `messenger`, which exports `lectern:crm/messaging@0.2.0`"),
        "{err}"
    );
    assert!(
        err.contains("it exports lectern:crm/scoring@0.2.0, lectern:crm/columnar-scoring@0.2.0"),
        "{err}"
    );
    assert!(err.contains("so it was built for world `scorer`"), "{err}");
    assert!(err.contains("lectern_plugin::export_messenger!"), "{err}");
}

#[test]
fn a_plugin_of_one_world_cannot_be_used_as_another() {
    let (host, _) = host();
    let err = host
        .load_messenger(plugins::ENGAGEMENT)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "plugin `engagement`: is a `scorer` plugin, not a `messenger` plugin"
    );
}

#[test]
fn a_core_module_or_a_missing_component_says_how_to_build_one() {
    let (host, _) = host();
    let dir = plugin_copy(plugins::ENGAGEMENT, |m| m);
    std::fs::write(dir.path().join("engagement.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let err = host.load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("is a core WebAssembly module, not a component"),
        "{err}"
    );
    assert!(err.contains("--target wasm32-wasip2"), "{err}");

    std::fs::remove_file(dir.path().join("engagement.wasm")).unwrap();
    let err = host.load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("there is no component"), "{err}");
    assert!(err.contains("there is no .wasm file beside it"), "{err}");
    // Advice for every language, not Rust's alone.
    for how in ["wasm32-wasip2", "componentize-py", "jco componentize"] {
        assert!(err.contains(how), "{how}: {err}");
    }
    // A component under another name is pointed at.
    std::fs::write(dir.path().join("engagement-0.2.wasm"), b"").unwrap();
    let err = host.load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("beside it are engagement-0.2.wasm; name the right one with `component = "),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = host.load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no plugin.toml at"), "{err}");
}

#[test]
fn manifest_limits_override_the_defaults_within_the_maxima() {
    let (host, _) = host();
    let dir = plugin_copy(plugins::ENGAGEMENT, |m| {
        m.replace("deadline-ms = 5000", "deadline-ms = 1234\nmemory-mib = 64")
    });
    let plugin = host.load(dir.path()).unwrap();
    assert_eq!(plugin.limits().deadline.as_millis(), 1234);
    assert_eq!(plugin.limits().memory_bytes, 64 << 20);
    assert_eq!(plugin.limits().output_bytes, Limits::default().output_bytes);
}

#[test]
fn links_out_of_the_plugin_directory_are_refused_and_never_quoted() {
    let (host, _) = host();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "root:x:0:0:the secret first line\n").unwrap();

    // plugin.toml itself is a link to a file elsewhere.
    let linked_manifest = plugin_copy(plugins::TESTKIT, |m| m);
    let manifest = linked_manifest.path().join("plugin.toml");
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink(&secret, &manifest).unwrap();
    let err = host.load(linked_manifest.path()).unwrap_err().to_string();
    assert!(
        err.contains("is a link to a file outside the plugin's directory"),
        "{err}"
    );
    assert!(!err.contains("secret"), "the error quotes the file: {err}");

    // The component is a link out of the directory.
    let linked_component = plugin_copy(plugins::TESTKIT, |m| m);
    let component = linked_component.path().join("testkit.wasm");
    let elsewhere = outside.path().join("testkit.wasm");
    std::fs::rename(&component, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &component).unwrap();
    let err = host.load(linked_component.path()).unwrap_err().to_string();
    assert!(
        err.contains("is a link to a file outside the plugin's directory"),
        "{err}"
    );

    // A bad manifest's error names the line, never its text.
    let bad = plugin_copy(plugins::TESTKIT, |m| {
        m.replace("[plugin]", "[plugin\nroot:x:0:0:secret")
    });
    let err = host.load(bad.path()).unwrap_err().to_string();
    assert!(err.contains("line "), "{err}");
    assert!(!err.contains("secret"), "the error quotes the file: {err}");
}
