//! Builds the guest plugins for the end-to-end tests and names each one in
//! a constant. Fails the build when a guest has no test.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let root = xtask::repo_root();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let packaged = xtask::build_plugins(
        &root,
        &root.join("target/wasm-plugins"),
        &out.join("plugins"),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    // Python plugins need componentize-py; `cargo xtask test` installs it.
    let packaged: Vec<_> = packaged
        .into_iter()
        .chain(
            xtask::ensure_componentize_py()
                .and_then(|()| xtask::build_python_plugins(&root, &out.join("plugins")))
                .unwrap_or_else(|e| panic!("{e:#}")),
        )
        // JavaScript plugins need jco, which this installs from npm.
        .chain(
            xtask::build_js_plugins(&root, &out.join("plugins"))
                .unwrap_or_else(|e| panic!("{e:#}")),
        )
        .collect();

    for path in [
        "wit",
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/sdk",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let tests = std::fs::read_dir(root.join("tests/all"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("tests/all").display()
    );

    let mut consts = String::new();
    for p in &packaged {
        let src = root.join("plugins").join(&p.id);
        let src = [
            src,
            root.join("plugins/python").join(&p.id),
            root.join("plugins/js").join(&p.id),
        ]
        .into_iter()
        .find(|d| d.is_dir())
        .expect("a plugin's sources");
        for part in ["src", "Cargo.toml", "plugin.toml", "app.py", "app.js"] {
            // A path that does not exist would make cargo rerun this always.
            if src.join(part).exists() {
                println!("cargo:rerun-if-changed={}", src.join(part).display());
            }
        }
        let name = p.id.to_uppercase().replace('-', "_");
        // Every guest is there to be tested; one no test loads is dead weight.
        assert!(
            tests.contains(&format!("plugins::{name}")),
            "guest plugin `{}` has no test: load `lectern_tests::plugins::{name}` in a test \
             under tests/all/",
            p.id
        );
        writeln!(consts, "/// The packaged `{}` plugin.", p.id).unwrap();
        writeln!(
            consts,
            "pub const {name}: &str = {:?};",
            p.dir.display().to_string()
        )
        .unwrap();
    }
    std::fs::write(out.join("plugins.rs"), consts).unwrap();
}
