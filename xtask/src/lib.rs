//! Building the guest plugins, shared by `cargo xtask` and the test crate's
//! build script so that both make the same packaged plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The target every plugin is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// A plugin ready to load: a directory with `plugin.toml` and `<id>.wasm`.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The plugin's id, which is its directory's name under `plugins/`.
    pub id: String,
    /// The packaged directory.
    pub dir: PathBuf,
}

/// The repository root, from this crate's location.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository")
        .to_path_buf()
}

/// Makes sure the wasm32-wasip2 standard library is installed, installing it
/// with rustup if it is missing.
pub fn ensure_wasm_target() -> Result<()> {
    let sysroot = Command::new(rustc())
        .args(["--print", "sysroot"])
        .output()
        .context("failed to run rustc")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!(
            "`rustup target add {WASM_TARGET}` failed ({s}); plugins cannot be built without \
             it. Install the target, then run this again"
        ),
        Err(e) => bail!(
            "the {WASM_TARGET} target is missing and rustup could not be run ({e}); install \
             rustup from the Rust project, run `rustup target add {WASM_TARGET}`, then run this \
             again"
        ),
    }
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The plugin directories under `plugins/`: each has a `plugin.toml`.
pub fn plugin_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins")).context("failed to list plugins/")? {
        let path = entry?.path();
        if path.join("plugin.toml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Builds every plugin in release mode into `target_dir`, and packages each
/// into `out/<id>/` with its `plugin.toml`.
pub fn build_plugins(root: &Path, target_dir: &Path, out: &Path) -> Result<Vec<Packaged>> {
    ensure_wasm_target()?;
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root.join("plugins"))
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    // A nested cargo must not inherit the outer build's flags or target; it
    // has its own target directory, so it never waits on the outer lock.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .context("failed to run cargo for the plugins")?;
    if !status.success() {
        bail!("building the plugins failed ({status}); see cargo's output above");
    }
    let built = target_dir.join(WASM_TARGET).join("release");
    let mut packaged = Vec::new();
    for dir in plugin_dirs(root)? {
        let id = dir.file_name().unwrap().to_string_lossy().into_owned();
        let wasm = built.join(format!("{}.wasm", id.replace('-', "_")));
        let dest = out.join(&id);
        std::fs::create_dir_all(&dest)?;
        std::fs::copy(dir.join("plugin.toml"), dest.join("plugin.toml"))?;
        std::fs::copy(&wasm, dest.join(format!("{id}.wasm")))
            .with_context(|| format!("failed to copy {}", wasm.display()))?;
        packaged.push(Packaged { id, dir: dest });
    }
    Ok(packaged)
}
