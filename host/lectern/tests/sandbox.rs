//! The sandbox's load-time checks, with components written inline in WAT:
//! no guest is built, so these run in the fast tier. Each component is
//! hostile or broken in one way, and each must fail with an error that
//! names the plugin and says what to do.

use std::path::Path;

use lectern::{ErrorKind, Host, Manifest};

/// A scorer's manifest, as a registry would hand it over with the bytes.
fn manifest(world: &str) -> Manifest {
    let text = format!(
        "manifest-version = 1\n[plugin]\nid = \"wat-probe\"\nversion = \"0.1.0\"\n\
         world = \"{world}\"\napi-version = \"0.1.0\"\n{}",
        if world == "scorer" {
            "[outputs]\nsegments = [\"probed\"]\n"
        } else {
            ""
        }
    );
    Manifest::parse(Path::new("registry/wat-probe/plugin.toml"), &text).unwrap()
}

/// A component exporting `export` as an instance with one function `f`,
/// and importing `imports`.
fn component(export: &str, imports: &str) -> String {
    format!(
        r#"(component
             {imports}
             (core module $m (func (export "f")))
             (core instance $i (instantiate $m))
             (func $f (canon lift (core func $i "f")))
             (instance $api (export "f" (func $f)))
             (export "{export}" (instance $api)))"#
    )
}

fn load_error(world: &str, wat: &str) -> String {
    let host = Host::new().unwrap();
    let err = host
        .load_bytes(manifest(world), wat.as_bytes())
        .and_then(|p| p.into_scorer().map(|_| ()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("wat-probe"),
        "the error names the plugin: {text}"
    );
    text
}

#[test]
fn a_component_that_exports_nothing_is_refused() {
    let err = load_error("scorer", "(component)");
    assert!(
        err.contains("exports no lectern:crm interface at all"),
        "{err}"
    );
    assert!(err.contains("lectern_plugin::export_scorer!"), "{err}");
}

#[test]
fn a_component_built_for_another_world_is_refused() {
    let err = load_error("scorer", &component("lectern:crm/messaging@0.1.0", ""));
    assert!(
        err.contains("so it was built for world `messenger`"),
        "{err}"
    );
    assert!(
        err.contains("set `plugin.world` to what the component is"),
        "{err}"
    );
    assert!(err.contains("componentize-py -w scorer"), "{err}");
}

#[test]
fn a_component_that_imports_what_the_sandbox_does_not_offer_is_refused() {
    let err = load_error(
        "scorer",
        &component(
            "lectern:crm/scoring@0.1.0",
            r#"(import "evil:net/socket@1.0.0" (instance))"#,
        ),
    );
    assert!(
        err.contains("imports `evil:net/socket@1.0.0`, which the sandbox does not offer"),
        "{err}"
    );
    // WASI the host does not link, as componentize-js adds by default, is
    // refused by name, with the flag that leaves it out.
    let err = load_error(
        "scorer",
        &component(
            "lectern:crm/scoring@0.1.0",
            r#"(import "wasi:http/types@0.2.10" (instance))"#,
        ),
    );
    assert!(
        err.contains("imports `wasi:http/types@0.2.10`, which the sandbox does not offer"),
        "{err}"
    );
    assert!(err.contains("jco componentize -d all"), "{err}");
}

#[test]
fn a_component_whose_exports_lie_about_their_types_is_refused() {
    // The right name, the wrong shape: no `score-batch`.
    let err = load_error("scorer", &component("lectern:crm/scoring@0.1.0", ""));
    assert!(
        err.contains("its exports do not match the `scorer` world of lectern:crm@0.1.0"),
        "{err}"
    );
}

#[test]
fn a_core_module_and_garbage_are_refused_with_how_to_build_a_component() {
    let host = Host::new().unwrap();
    let core = host
        .load_bytes(manifest("scorer"), b"\0asm\x01\0\0\0")
        .unwrap_err()
        .to_string();
    assert!(
        core.contains("is a core WebAssembly module, not a component"),
        "{core}"
    );
    assert!(core.contains("wasm32-wasip2"), "{core}");
    let garbage = host
        .load_bytes(manifest("scorer"), b"\0asm\x0d\0\x01\0 and then nonsense")
        .unwrap_err()
        .to_string();
    assert!(garbage.contains("is not a valid component"), "{garbage}");
}

#[test]
fn bytes_and_a_manifest_load_without_touching_the_disk() {
    // The manifest names a component file that does not exist: loading
    // from bytes never reads it, so the failure is about the bytes.
    let err = load_error("scorer", &component("lectern:crm/scoring@0.1.0", ""));
    assert!(!err.contains("there is no component"), "{err}");
}

#[test]
fn a_component_over_the_size_cap_is_refused_before_it_is_compiled() {
    let host = Host::builder().max_component_bytes(1024).build().unwrap();
    let big = component(
        "lectern:crm/scoring@0.1.0",
        &format!(";; {}", "x".repeat(4096)),
    );
    let err = host
        .load_bytes(manifest("scorer"), big.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bytes, over the host's cap of 1024 bytes"),
        "{err}"
    );
}

#[test]
fn a_plugin_whose_memory_cap_is_over_the_hosts_budget_is_refused() {
    let host = Host::builder().memory_budget(64 << 20).build().unwrap();
    // The default cap is 128 MiB.
    let err = host
        .load_bytes(
            manifest("scorer"),
            component("lectern:crm/scoring@0.1.0", "").as_bytes(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("memory cap of 128 MiB is over the host's whole memory budget of 64 MiB"),
        "{err}"
    );
}
