//! Building the guest plugins, shared by `cargo xtask` and the test crate's
//! build script so that both make the same packaged plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The target every plugin is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// The `lectern:crm` version the bundled plugins are built against: the
/// newest, whose package is `wit/v<API_VERSION>/`.
pub const API_VERSION: &str = "0.2.0";

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

/// The componentize-py release the Python plugins are built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// Makes sure componentize-py is installed, installing it from PyPI with pip
/// if it is missing.
pub fn ensure_componentize_py() -> Result<()> {
    let version = Command::new("componentize-py").arg("--version").output();
    if version.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(COMPONENTIZE_PY)) {
        return Ok(());
    }
    pip_install("componentize-py", COMPONENTIZE_PY, "for the Python plugins")
}

/// Installs `package==version` from PyPI with the machine's python3, or says
/// what to run by hand.
fn pip_install(package: &str, version: &str, why: &str) -> Result<()> {
    eprintln!("installing {package} {version} from PyPI {why}");
    let pip = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("{package}=={version}"),
        ])
        .status();
    match pip {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "{package} {version} is missing and pip could not install it; run \
             `python3 -m pip install {package}=={version}` and run this again"
        ),
    }
}

/// The jco that builds the JavaScript plugins, and the componentize-js it
/// drives: versions known to build `lectern:crm@0.2.0` components.
pub const JCO: &str = "1.24.6";
/// See [`JCO`].
pub const COMPONENTIZE_JS: &str = "0.19.3";

/// Where the JavaScript tools are installed: `target/js-tools`, so that a
/// clean clone needs nothing but npm.
fn js_tools(root: &Path) -> PathBuf {
    root.join("target/js-tools")
}

/// Installs the pinned jco and componentize-js from npm into
/// `target/js-tools`, unless they are there already.
pub fn ensure_jco(root: &Path) -> Result<PathBuf> {
    let tools = js_tools(root);
    let jco = tools.join("node_modules/.bin/jco");
    let pinned = tools.join(format!("pinned-{JCO}-{COMPONENTIZE_JS}"));
    if jco.is_file() && pinned.is_file() {
        return Ok(jco);
    }
    eprintln!(
        "installing jco {JCO} and componentize-js {COMPONENTIZE_JS} from npm for the JavaScript plugins"
    );
    std::fs::create_dir_all(&tools)?;
    let status = Command::new("npm")
        .current_dir(&tools)
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "--prefix",
            ".",
        ])
        .arg(format!("@bytecodealliance/jco@{JCO}"))
        .arg(format!(
            "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
        ))
        .status();
    match status {
        Ok(s) if s.success() && jco.is_file() => {
            std::fs::write(&pinned, b"")?;
            Ok(jco)
        }
        _ => bail!(
            "jco {JCO} is missing and npm could not install it (Node.js 18 or later and npm \
             are needed); run `npm install --prefix target/js-tools \
             @bytecodealliance/jco@{JCO} @bytecodealliance/componentize-js@{COMPONENTIZE_JS}`"
        ),
    }
}

/// The worlds a JavaScript plugin may implement, each with its
/// TypeScript declarations in `plugins/js/types/<world>/`.
pub const JS_WORLDS: [&str; 4] = ["scorer", "messenger", "privacy-filter", "forecaster"];

/// Writes the TypeScript declarations of each world of the current WIT
/// into `out/<world>/`, with jco's `guest-types`.
pub fn write_js_types(root: &Path, out: &Path) -> Result<()> {
    let jco = ensure_jco(root)?;
    for world in JS_WORLDS {
        let output = Command::new(&jco)
            .arg("guest-types")
            .arg(root.join("wit").join(format!("v{API_VERSION}")))
            .args(["-n", world, "-q", "-o"])
            .arg(out.join(world))
            .output()
            .context("failed to run jco")?;
        if !output.status.success() {
            bail!(
                "jco guest-types failed for world `{world}`: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

/// Builds every JavaScript plugin under `plugins/js` (a directory with
/// `app.js` and `plugin.toml`) with jco, into `out/<id>/`. Every WASI
/// feature is left out (`-d all`): the sandbox offers no network and no
/// files, and install refuses a component that imports them.
pub fn build_js_plugins(root: &Path, out: &Path) -> Result<Vec<Packaged>> {
    let mut packaged = Vec::new();
    let plugins = script_plugins(&root.join("plugins/js"), "app.js")?;
    if plugins.is_empty() {
        return Ok(packaged);
    }
    let jco = ensure_jco(root)?;
    for (id, src, world) in plugins {
        let dest = out.join(&id);
        std::fs::create_dir_all(&dest)?;
        let status = Command::new(&jco)
            .arg("componentize")
            .arg(src.join("app.js"))
            .arg("--wit")
            .arg(root.join("wit").join(format!("v{API_VERSION}")))
            .args(["-n", &world, "-d", "all", "-o"])
            .arg(dest.join(format!("{id}.wasm")))
            .status()
            .context("failed to run jco")?;
        if !status.success() {
            bail!("jco could not build the JavaScript plugin `{id}` ({status})");
        }
        std::fs::copy(src.join("plugin.toml"), dest.join("plugin.toml"))?;
        packaged.push(Packaged { id, dir: dest });
    }
    Ok(packaged)
}

/// The aiosmtpd the delivery tests run as a local SMTP server.
pub const AIOSMTPD: &str = "1.4.6";

/// The schemathesis the API tests run, from PyPI.
pub const SCHEMATHESIS: &str = "4.32.5";

/// Installs schemathesis unless it is on the PATH.
pub fn ensure_schemathesis() -> Result<()> {
    let found = Command::new("schemathesis").arg("--version").output();
    if found.is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    pip_install(
        "schemathesis",
        SCHEMATHESIS,
        "for the test of the service's OpenAPI document",
    )
}

/// Installs aiosmtpd from PyPI if `python3` cannot import it: the delivery
/// tests send real email to a local server.
pub fn ensure_aiosmtpd() -> Result<()> {
    let import = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output();
    if import.is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    pip_install("aiosmtpd", AIOSMTPD, "for the email delivery tests")
}

/// The plugins in `dir` written in a language other than Rust: each
/// directory holding `entry` (`app.py`, `app.js`) and a `plugin.toml`, with
/// its id and the world its manifest names, in id order.
fn script_plugins(dir: &Path, entry: &str) -> Result<Vec<(String, PathBuf, String)>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join(entry).is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|src| {
            let id = src.file_name().unwrap().to_string_lossy().into_owned();
            let manifest = std::fs::read_to_string(src.join("plugin.toml"))
                .with_context(|| format!("failed to read {}/plugin.toml", src.display()))?;
            let world = manifest
                .lines()
                .find_map(|l| l.trim().strip_prefix("world = "))
                .map(|w| w.trim_matches('"').to_string())
                .with_context(|| format!("{}/plugin.toml names no world", src.display()))?;
            Ok((id, src, world))
        })
        .collect()
}

/// Builds every Python plugin under `plugins/python/` (a directory with
/// `app.py` and `plugin.toml`) with componentize-py, and packages each into
/// `out/<id>/`. WASI is stubbed out (`--stub-wasi`): the component imports
/// only the contract, so install finds no socket or preopen to refuse.
pub fn build_python_plugins(root: &Path, out: &Path) -> Result<Vec<Packaged>> {
    let mut packaged = Vec::new();
    for (id, src, world) in script_plugins(&root.join("plugins/python"), "app.py")? {
        // A scorer that also implements the columnar export is built for
        // the world with both; its manifest's role is still `scorer`.
        let app = std::fs::read_to_string(src.join("app.py"))?;
        let world = if world == "scorer" && app.contains("class ColumnarScoring(") {
            "columnar-scorer".to_string()
        } else {
            world
        };
        let dest = out.join(&id);
        std::fs::create_dir_all(&dest)?;
        let status = Command::new("componentize-py")
            .arg("-d")
            .arg(root.join("wit").join(format!("v{API_VERSION}")))
            .args(["-w", &world, "componentize", "--stub-wasi", "app", "-p"])
            .arg(&src)
            .arg("-o")
            .arg(dest.join(format!("{id}.wasm")))
            .status()
            .context("failed to run componentize-py")?;
        if !status.success() {
            bail!("componentize-py could not build the Python plugin `{id}` ({status})");
        }
        std::fs::copy(src.join("plugin.toml"), dest.join("plugin.toml"))?;
        packaged.push(Packaged { id, dir: dest });
    }
    Ok(packaged)
}
