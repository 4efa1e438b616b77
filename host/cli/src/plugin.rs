//! `lectern plugin`: what a plugin is and asks for.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use lectern::{CacheStatus, Host};
use serde_json::json;

use crate::Ctx;
use crate::output::print_json;

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Lifecycle(Lifecycle),
    /// Show a plugin's world, exports, declared fields, limits and load time
    Inspect {
        /// A plugin directory, its plugin.toml, or a .wasm component
        path: PathBuf,
    },
    /// Run a plugin over its fixtures and compare with what they expect,
    /// showing each case's wall time, peak memory, fuel and output size,
    /// and the declared fields the policy withheld. Exits 1 on a mismatch
    /// or a failure
    Test {
        /// A plugin directory or its plugin.toml, or an installed plugin's
        /// id
        path: PathBuf,
        /// The fixtures: NAME.patrons.jsonl (and NAME.events.jsonl for a
        /// messenger), with NAME.expected.json [default: fixtures/ beside
        /// plugin.toml]
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
        /// Write what the plugin gives now as what each case expects
        #[arg(long)]
        bless: bool,
        /// The privacy-filter plugin in force [default: the library's]
        #[arg(long, value_name = "PLUGIN")]
        policy: Option<PathBuf>,
        /// The day the plugin is told it is (YYYY-MM-DD) [default:
        /// 2026-11-28, so that expected output does not age]
        #[arg(long, value_name = "DATE")]
        as_of: Option<chrono::NaiveDate>,
    },
}

#[derive(Subcommand)]
pub enum Lifecycle {
    /// Write a new plugin project from a template: it builds, and its
    /// fixture test passes, as it is
    New {
        /// The plugin's id: lower-case letters, digits and hyphens
        name: String,
        /// What it does
        #[arg(long, value_enum)]
        world: crate::new::TemplateWorld,
        /// What it is written in
        #[arg(long, value_enum)]
        lang: crate::new::Lang,
        /// Where to write it [default: ./NAME]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Make an Ed25519 key pair for signing packages: NAME.key (secret)
    /// and NAME.pub (for libraries to trust)
    Keygen {
        /// Where to write, without extension
        name: PathBuf,
    },
    /// Pack a plugin directory into one package file: an OCI image layout
    /// holding the component, plugin.toml, README and licence
    Pack {
        /// The plugin directory
        dir: PathBuf,
        /// The package file [default: ID-VERSION.tar]
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Sign a package with a publisher's secret key, in the WebAssembly
    /// tool-conventions signature format
    Sign {
        /// The package file
        file: PathBuf,
        /// The secret key, from `plugin keygen`
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signed package [default: over FILE]
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Push a package to an OCI registry
    Push {
        /// The package file
        file: PathBuf,
        /// REGISTRY/REPOSITORY:TAG
        reference: String,
        #[command(flatten)]
        remote: crate::registry::Remote,
    },
    /// Pull a package from an OCI registry into a file
    Pull {
        /// REGISTRY/REPOSITORY:TAG
        reference: String,
        /// The package file [default: ID-VERSION.tar]
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: crate::registry::Remote,
    },
    /// Install a package, after checking its digests and its signature,
    /// and showing what it asks for
    Install(crate::registry::InstallArgs),
    /// The installed plugins
    List,
    /// One installed plugin: its grant, configuration, signer and digest
    Info {
        /// The plugin's id
        id: String,
    },
    /// Let commands run an installed plugin again
    Enable {
        /// The plugin's id
        id: String,
    },
    /// Stop commands running an installed plugin, keeping it installed
    Disable {
        /// The plugin's id
        id: String,
    },
    /// Replace an installed plugin with a later version of it; if the new
    /// version fails any check, the installed one stays
    Upgrade {
        /// The plugin's id
        id: String,
        #[command(flatten)]
        install: crate::registry::InstallArgs,
    },
    /// Uninstall a plugin
    Remove {
        /// The plugin's id
        id: String,
    },
    /// Show an installed plugin's configuration, or set one key, checked
    /// against the schema in its manifest
    Config {
        /// The plugin's id
        id: String,
        /// The key
        key: Option<String>,
        /// The value
        value: Option<String>,
        /// Go back to the key's default
        #[arg(long)]
        unset: bool,
    },
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Remove the compiled plugins used longest ago until the cache fits
    /// its cap, and temporary files a killed run left behind. Every new
    /// entry also prunes to the cap (2 GiB)
    Prune {
        /// The size to prune to, in MiB [default: the cap]
        #[arg(long, value_name = "MIB")]
        max_mib: Option<u64>,
    },
}

/// `lectern cache`.
pub fn cache(ctx: &Ctx, command: CacheCommand) -> Result<()> {
    match command {
        CacheCommand::Prune { max_mib } => {
            let max = max_mib.map_or(ctx.host.cache_max_bytes(), |m| m << 20);
            let Some(p) = ctx.host.prune_cache(max)? else {
                anyhow::bail!(
                    "there is no cache to prune: --no-cache was given, or no cache directory \
                     could be found; name one with --cache-dir or LECTERN_CACHE_DIR"
                );
            };
            let dir = ctx.host.cache_dir().map(|d| d.display().to_string());
            if ctx.json {
                return print_json(&json!({
                    "dir": dir,
                    "max_bytes": max,
                    "removed": p.removed,
                    "freed_bytes": p.freed_bytes,
                    "kept": p.kept,
                    "kept_bytes": p.kept_bytes,
                }));
            }
            let mib = |b: u64| b as f64 / f64::from(1 << 20);
            out!(
                "removed {} file(s), {:.1} MiB; kept {} compiled plugin(s), {:.1} MiB, in {}",
                p.removed,
                mib(p.freed_bytes),
                p.kept,
                mib(p.kept_bytes),
                dir.unwrap_or_default()
            );
            Ok(())
        }
    }
}

pub fn lifecycle(ctx: &Ctx, command: Lifecycle) -> Result<()> {
    use crate::registry as r;
    match command {
        Lifecycle::New {
            name,
            world,
            lang,
            dir,
        } => crate::new::new(ctx, &name, world, lang, dir.as_deref()),
        Lifecycle::Keygen { name } => r::keygen(ctx, &name),
        Lifecycle::Pack { dir, out } => r::pack(ctx, &dir, out.as_deref()),
        Lifecycle::Sign { file, key, out } => r::sign(ctx, &file, &key, out.as_deref()),
        Lifecycle::Push {
            file,
            reference,
            remote,
        } => r::push(ctx, &file, &reference, &remote),
        Lifecycle::Pull {
            reference,
            out,
            remote,
        } => r::pull(ctx, &reference, out.as_deref(), &remote),
        Lifecycle::Install(args) => r::install(ctx, &args, None),
        Lifecycle::List => r::list(ctx),
        Lifecycle::Info { id } => r::info(ctx, &id),
        Lifecycle::Enable { id } => r::set_state(ctx, &id, Some(true)),
        Lifecycle::Disable { id } => r::set_state(ctx, &id, Some(false)),
        Lifecycle::Remove { id } => r::set_state(ctx, &id, None),
        Lifecycle::Upgrade { id, install } => r::install(ctx, &install, Some(&id)),
        Lifecycle::Config {
            id,
            key,
            value,
            unset,
        } => r::config(ctx, &id, key.as_deref(), value.as_deref(), unset),
    }
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Lifecycle(c) => lifecycle(ctx, c),
        Command::Inspect { path } => inspect(&ctx.host, &path, ctx.json),
        Command::Test {
            path,
            fixtures,
            bless,
            policy,
            as_of,
        } => crate::harness::test(
            ctx,
            &path,
            fixtures.as_deref(),
            bless,
            policy.as_deref(),
            as_of,
        ),
    }
}

fn inspect(host: &Host, path: &Path, json: bool) -> Result<()> {
    let bare = path.extension().is_some_and(|e| e == "wasm")
        && !path.with_file_name(lectern::MANIFEST_FILE).is_file();
    if bare {
        let info = host.inspect_component(path)?;
        if json {
            return print_json(&component_json(&info));
        }
        out!("component  {}", info.path.display());
        out!("manifest   none (no plugin.toml beside it)");
        out!(
            "world      {}",
            info.world.map_or("none of lectern:crm", |w| w.as_str())
        );
        print_component(&info);
        return Ok(());
    }
    let plugin = host.load(path)?;
    let m = plugin.manifest();
    let info = plugin.component();
    let limits = plugin.limits();
    let fields: Vec<&str> = plugin
        .declared_fields()
        .iter()
        .map(|f| f.as_str())
        .collect();
    if json {
        let mut out = component_json(info);
        out.as_object_mut().unwrap().extend(
            json!({
                "id": plugin.id(),
                "version": plugin.version(),
                "api_version": m.api_version,
                "description": m.description,
                "authors": m.authors,
                "fields": fields,
                "warnings": m.warnings(),
                "config": plugin.config(),
                "limits": {
                    "deadline_ms": limits.deadline.as_millis() as u64,
                    "memory_bytes": limits.memory_bytes,
                    "output_bytes": limits.output_bytes,
                    "log_bytes": limits.log_bytes,
                    "fuel": limits.fuel,
                },
            })
            .as_object()
            .unwrap()
            .clone(),
        );
        return print_json(&out);
    }
    out!("plugin     {} {}", plugin.id(), plugin.version());
    if !m.description.is_empty() {
        out!("           {}", m.description);
    }
    if !m.authors.is_empty() {
        out!("authors    {}", m.authors.join(", "));
    }
    out!(
        "world      {} (lectern:crm@{})",
        plugin.world(),
        m.api_version
    );
    out!(
        "fields     {}",
        if fields.is_empty() {
            "none".into()
        } else {
            fields.join(", ")
        }
    );
    for (k, v) in plugin.config() {
        out!("config     {k} = {v}");
    }
    out!(
        "limits     deadline {} ms, memory {} MiB, output {} KiB, log {} KiB{}",
        limits.deadline.as_millis(),
        limits.memory_bytes >> 20,
        limits.output_bytes >> 10,
        limits.log_bytes >> 10,
        limits
            .fuel
            .map(|f| format!(", fuel {f} per call"))
            .unwrap_or_default()
    );
    out!("component  {}", info.path.display());
    print_component(info);
    for w in m.warnings() {
        out!("warning    {w}");
    }
    Ok(())
}

fn component_json(info: &lectern::ComponentInfo) -> serde_json::Value {
    json!({
        "component": info.path,
        "world": info.world.map(|w| w.as_str()),
        "size": info.size,
        "sha256": info.sha256,
        "exports": info.exports,
        "imports": info.imports,
        "cache": cache_word(info.cache),
        "load_ms": info.load_time.as_secs_f64() * 1e3,
    })
}

fn print_component(info: &lectern::ComponentInfo) {
    out!(
        "size       {} bytes, sha256 {}",
        info.size,
        &info.sha256[..16]
    );
    out!("exports    {}", info.exports.join(", "));
    out!("imports    {}", info.imports.join(", "));
    out!(
        "loaded     in {:.1} ms ({})",
        info.load_time.as_secs_f64() * 1e3,
        cache_word(info.cache)
    );
}

fn cache_word(c: CacheStatus) -> &'static str {
    match c {
        CacheStatus::Hit => "from the cache",
        CacheStatus::Stored => "compiled, now cached",
        CacheStatus::Uncached => "compiled, no cache",
    }
}
