//! `lectern plugin pack|sign|push|pull|install|…`, `lectern trust` and
//! `lectern policy use`: plugins as a library installs and trusts them.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use lectern::{Field, Grant, InstallOptions, Lectern, Package, RegistryOptions, Review, Signer};
use serde_json::json;

use crate::Ctx;
use crate::output::print_json;

/// How to reach an OCI registry.
#[derive(Args, Clone, Default)]
pub struct Remote {
    /// Speak plain HTTP to the registry, for one on this machine
    #[arg(long)]
    plain_http: bool,
}

impl Remote {
    fn options(&self) -> RegistryOptions {
        RegistryOptions {
            plain_http: self.plain_http,
            basic_auth: std::env::var("LECTERN_REGISTRY_USER")
                .ok()
                .zip(std::env::var("LECTERN_REGISTRY_PASSWORD").ok()),
        }
    }
}

/// What to install and what to grant it.
#[derive(Args)]
pub struct InstallArgs {
    /// A package file (from `plugin pack`), or an OCI reference such as
    /// registry.example.org/lectern/engagement:0.2.0
    source: String,
    /// Install a package that is unsigned or signed by a key this library
    /// does not trust; the registry shows that it is
    #[arg(long)]
    allow_unsigned: bool,
    /// The patron fields to grant: `all` for what the manifest asks, or a
    /// comma-separated list of some of them, or `none`. Without it, a
    /// terminal asks for each
    #[arg(long, value_name = "FIELDS")]
    grant: Option<String>,
    /// For a messenger, the event kinds to grant: `all`, or a list
    #[arg(long, value_name = "KINDS")]
    grant_events: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a publisher's public key (the .pub file from `plugin keygen`)
    Add {
        /// The public key file
        key: PathBuf,
        /// A name to show for it [default: the file's name]
        #[arg(long)]
        name: Option<String>,
    },
    /// List the keys this library trusts
    List,
    /// Stop trusting a key; plugins it signed stay installed
    Remove {
        /// The key's id, as `trust list` shows it
        key_id: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Make an installed privacy-filter plugin the library's policy, for
    /// every command from now on
    Use {
        /// The installed plugin's id
        id: String,
    },
    /// Show which policy is in force
    Show,
}

fn read_package(ctx: &Ctx, source: &str, remote: &Remote) -> Result<Package> {
    let max = ctx.host.max_package_bytes();
    let path = Path::new(source);
    if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {source}"))?;
        return Ok(Package::from_layout(&bytes, source, max)?);
    }
    if !source.contains('/') || source.ends_with(".tar") {
        anyhow::bail!(lectern::Error::NotFound(format!(
            "no package file {source}; give a file from `lectern plugin pack`, or an OCI \
             reference such as registry.example.org/lectern/{source}:1.0.0"
        )));
    }
    Ok(lectern::pull(source, &remote.options(), max)?)
}

/// `plugin keygen`.
pub fn keygen(ctx: &Ctx, out: &Path) -> Result<()> {
    let secret = out.with_extension("key");
    let public = out.with_extension("pub");
    for p in [&secret, &public] {
        anyhow::ensure!(
            !p.exists(),
            "{} exists already; choose another name, or remove it",
            p.display()
        );
    }
    let key = lectern::SigningKey::generate();
    write_private(&secret, key.secret_pem().as_bytes())?;
    std::fs::write(&public, key.public_pem())
        .with_context(|| format!("cannot write {}", public.display()))?;
    if ctx.json {
        return print_json(&json!({
            "key_id": key.key_id(),
            "secret": secret,
            "public": public,
        }));
    }
    out!("key {} written:", key.key_id());
    out!(
        "  {}  secret: keep it private; sign with it",
        secret.display()
    );
    out!(
        "  {}  public: libraries `lectern trust add` it",
        public.display()
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut f = open
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// `plugin pack`.
pub fn pack(ctx: &Ctx, dir: &Path, out: Option<&Path>) -> Result<()> {
    let plugin = ctx.host.load(dir)?;
    let info = plugin.component();
    let package = Package::pack(plugin.manifest(), &info.exports, &info.imports)?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.tar", plugin.id(), plugin.version())));
    write_package(&out, &package)?;
    if ctx.json {
        return print_json(&json!({
            "id": plugin.id(),
            "version": plugin.version(),
            "file": out,
            "digest": package.digest(),
        }));
    }
    out!(
        "packed {} {} into {} ({})",
        plugin.id(),
        plugin.version(),
        out.display(),
        package.digest()
    );
    out!(
        "next: `lectern plugin sign {} --key YOUR.key`",
        out.display()
    );
    Ok(())
}

fn write_package(path: &Path, package: &Package) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(&package.to_layout())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `plugin sign`.
pub fn sign(ctx: &Ctx, file: &Path, key: &Path, out: Option<&Path>) -> Result<()> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
    let package = Package::from_layout(&bytes, &name, ctx.host.max_package_bytes())?;
    let manifest = package.manifest(&name)?;
    let key = lectern::SigningKey::from_file(key)?;
    let signed = package.sign(&key, &manifest)?;
    let out = out.unwrap_or(file);
    write_package(out, &signed)?;
    if ctx.json {
        return print_json(&json!({
            "file": out,
            "digest": signed.digest(),
            "key_id": key.key_id(),
        }));
    }
    out!(
        "signed {} {} with key {}: {} ({})",
        manifest.id,
        manifest.version,
        key.key_id(),
        out.display(),
        signed.digest()
    );
    Ok(())
}

/// `plugin push`.
pub fn push(ctx: &Ctx, file: &Path, target: &str, remote: &Remote) -> Result<()> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
    let package = Package::from_layout(&bytes, &name, ctx.host.max_package_bytes())?;
    let digest = lectern::push(&package, target, &remote.options())?;
    if ctx.json {
        return print_json(&json!({ "reference": target, "digest": digest }));
    }
    out!("pushed {} to {target} ({digest})", file.display());
    Ok(())
}

/// `plugin pull`.
pub fn pull(ctx: &Ctx, source: &str, out: Option<&Path>, remote: &Remote) -> Result<()> {
    let package = lectern::pull(source, &remote.options(), ctx.host.max_package_bytes())?;
    let manifest = package.manifest(source)?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.tar", manifest.id, manifest.version)));
    write_package(&out, &package)?;
    if ctx.json {
        return print_json(&json!({ "file": out, "digest": package.digest() }));
    }
    out!(
        "pulled {} {} from {source} into {} ({})",
        manifest.id,
        manifest.version,
        out.display(),
        package.digest()
    );
    Ok(())
}

fn signer_words(s: &Signer) -> String {
    match s {
        Signer::Trusted { key_id, name } => format!("signed by {name} (key {key_id})"),
        Signer::Unsigned => "UNSIGNED".into(),
        Signer::Untrusted(ids) => format!("signed by an UNTRUSTED key {}", ids.join(", ")),
    }
}

/// Shows what a package asks for, and decides what to grant: the flags, or
/// a terminal's answers. A non-interactive install without `--grant` is
/// refused rather than granting by default.
fn decide_grant(ctx: &Ctx, review: &Review, args: &InstallArgs) -> Result<Grant> {
    let m = review.manifest();
    let asked: Vec<&str> = review.fields().iter().map(|f| f.as_str()).collect();
    if !ctx.json {
        eprintln!(
            "{} {} ({}), {}",
            m.id,
            m.version,
            m.world,
            signer_words(review.signer())
        );
        eprintln!(
            "  asks for patron fields: {}",
            if asked.is_empty() {
                "none".to_string()
            } else {
                asked.join(", ")
            }
        );
        if let Some(events) = review.events() {
            eprintln!("  asks for event kinds: {}", events.join(", "));
        } else if m.world == lectern::World::Messenger {
            eprintln!("  asks for event kinds: all");
        }
        eprintln!("  imports: {}", review.imports().join(", "));
        for w in m.warnings() {
            eprintln!("  warning: {w}");
        }
    }
    let fields = match args.grant.as_deref() {
        Some("all") => None,
        Some("none") | Some("") => Some(Vec::new()),
        Some(list) => Some(
            list.split(',')
                .map(|f| {
                    f.trim().parse::<Field>().map_err(|_| {
                        lectern::Error::invalid(
                            "--grant",
                            format!("unknown field {f:?}; it asks for: {}", asked.join(", ")),
                        )
                    })
                })
                .collect::<lectern::Result<Vec<Field>>>()?,
        ),
        None if std::io::stdin().is_terminal() && !review.fields().is_empty() => {
            let mut granted = Vec::new();
            let stdin = std::io::stdin();
            for f in review.fields() {
                eprint!("  grant `{f}`? [y/N] ");
                let mut line = String::new();
                stdin.lock().read_line(&mut line)?;
                if matches!(line.trim(), "y" | "Y" | "yes") {
                    granted.push(*f);
                }
            }
            Some(granted)
        }
        None if review.fields().is_empty() => None,
        None => anyhow::bail!(lectern::Error::invalid(
            "--grant",
            format!(
                "{} asks for patron fields ({}); say what to grant: --grant all, or --grant \
                 with some of them, or --grant none",
                m.id,
                asked.join(", ")
            )
        )),
    };
    let events = match args.grant_events.as_deref() {
        None | Some("all") => None,
        Some(list) => Some(list.split(',').map(|e| e.trim().to_string()).collect()),
    };
    Ok(Grant { fields, events })
}

/// `plugin install` and `plugin upgrade`.
pub fn install(ctx: &Ctx, args: &InstallArgs, upgrade: Option<&str>) -> Result<()> {
    let package = read_package(ctx, &args.source, &args.remote)?;
    let mut library = ctx.open(None)?;
    let review = library.review(package, args.allow_unsigned)?;
    let grant = match upgrade {
        // An upgrade keeps the grant unless told otherwise.
        Some(_) if args.grant.is_none() && args.grant_events.is_none() => Grant::default(),
        _ => decide_grant(ctx, &review, args)?,
    };
    let options = InstallOptions {
        allow_unsigned: args.allow_unsigned,
        grant,
        source: args.source.clone(),
    };
    let signer = signer_words(review.signer());
    let asked: Vec<String> = review
        .fields()
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    let before = upgrade.map(|id| library.installed_plugin(id)).transpose()?;
    let row = match upgrade {
        Some(id) => library.upgrade(id, review, &options)?,
        None => library.install(review, &options)?,
    };
    if ctx.json {
        return print_json(&json!({
            "installed": row,
            "previous": before.map(|b| b.version),
        }));
    }
    let verb = match &before {
        Some(b) => format!("upgraded {} from {} to {}", row.id, b.version, row.version),
        None => format!("installed {} {}", row.id, row.version),
    };
    out!("{verb}, {signer}");
    out!(
        "  granted fields: {}",
        if row.fields.is_empty() {
            "none".into()
        } else {
            row.fields.join(", ")
        }
    );
    let withheld: Vec<&str> = asked
        .iter()
        .filter(|f| !row.fields.contains(f))
        .map(String::as_str)
        .collect();
    if !withheld.is_empty() {
        out!("  asked for, not granted: {}", withheld.join(", "));
    }
    out!("  digest {}", row.digest);
    Ok(())
}

/// `plugin list`.
pub fn list(ctx: &Ctx) -> Result<()> {
    let library = ctx.open(None)?;
    let rows = library.installed()?;
    let policy = library.policy_in_use()?;
    if ctx.json {
        return print_json(&json!({ "plugins": rows, "policy": policy }));
    }
    if rows.is_empty() {
        out!("no plugins installed; `lectern plugin install FILE|REF` installs one");
        return Ok(());
    }
    let mut table =
        crate::output::table(["id", "version", "world", "state", "signed by", "fields"]);
    for r in &rows {
        let mut state = if r.enabled { "enabled" } else { "disabled" }.to_string();
        if policy.as_deref() == Some(&r.id) {
            state += ", policy";
        }
        table.add_row(vec![
            r.id.clone(),
            r.version.clone(),
            r.world.clone(),
            state,
            r.signer.clone().unwrap_or_else(|| "UNSIGNED".into()),
            r.fields.join(", "),
        ]);
    }
    out!("{table}");
    Ok(())
}

/// `plugin info`.
pub fn info(ctx: &Ctx, id: &str) -> Result<()> {
    let library = ctx.open(None)?;
    let row = library.installed_plugin(id)?;
    let package = library.installed_package(id)?;
    let manifest = package.manifest(id)?;
    if ctx.json {
        return print_json(&json!({
            "installed": row,
            "description": manifest.description,
            "authors": manifest.authors,
            "asked_fields": manifest.fields.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            "config_schema": manifest.config_schema,
        }));
    }
    out!("plugin     {} {} ({})", row.id, row.version, row.world);
    if !manifest.description.is_empty() {
        out!("           {}", manifest.description);
    }
    out!(
        "state      {}",
        if row.enabled { "enabled" } else { "disabled" }
    );
    out!(
        "signed by  {}",
        row.signer
            .as_deref()
            .unwrap_or("nobody trusted: installed unsigned")
    );
    out!("granted    {}", row.fields.join(", "));
    let asked: Vec<&str> = manifest.fields.iter().map(|f| f.as_str()).collect();
    out!("asked for  {}", asked.join(", "));
    for (k, key) in &manifest.config_schema {
        let value = row.config.get(k);
        out!(
            "config     {k} = {}{}  ({}){}",
            value.unwrap_or(&key.default),
            if value.is_some() { "" } else { " (default)" },
            key.describe(),
            if key.description.is_empty() {
                String::new()
            } else {
                format!(": {}", key.description)
            }
        );
    }
    out!("digest     {}", row.digest);
    out!("component  sha256:{}", row.component_sha256);
    out!("source     {}", row.source);
    out!(
        "installed  {}",
        row.installed_at.format("%Y-%m-%d %H:%M UTC")
    );
    Ok(())
}

/// `plugin enable|disable|remove`.
pub fn set_state(ctx: &Ctx, id: &str, state: Option<bool>) -> Result<()> {
    let mut library = ctx.open(None)?;
    match state {
        Some(on) => library.set_enabled(id, on)?,
        None => library.remove_plugin(id)?,
    }
    let word = match state {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "removed",
    };
    if ctx.json {
        return print_json(&json!({ "id": id, "state": word }));
    }
    out!("{word} {id}");
    Ok(())
}

/// `plugin config`.
pub fn config(
    ctx: &Ctx,
    id: &str,
    key: Option<&str>,
    value: Option<&str>,
    unset: bool,
) -> Result<()> {
    let mut library = ctx.open(None)?;
    let Some(key) = key else {
        return info(ctx, id);
    };
    anyhow::ensure!(
        value.is_some() || unset,
        "give a VALUE for `{key}`, or --unset to go back to its default"
    );
    let stored = library.configure_plugin(id, key, if unset { None } else { value })?;
    // The plugin must still load with its new settings.
    library.plugin(id)?;
    if ctx.json {
        return print_json(&json!({ "id": id, "key": key, "value": stored }));
    }
    match stored {
        Some(v) => out!("{id}: {key} = {v}"),
        None => out!("{id}: {key} is back to its default"),
    }
    Ok(())
}

/// `lectern trust`.
pub fn trust(ctx: &Ctx, command: TrustCommand) -> Result<()> {
    let mut library = ctx.open(None)?;
    match command {
        TrustCommand::Add { key, name } => {
            let name = name.unwrap_or_else(|| {
                key.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let k = lectern::read_public_key(&key, &name)?;
            let added = library.trust(&k)?;
            if ctx.json {
                return print_json(&json!({ "key_id": k.key_id, "name": name, "added": added }));
            }
            if added {
                out!("trusting key {} ({name})", k.key_id);
            } else {
                out!("key {} is trusted already", k.key_id);
            }
        }
        TrustCommand::List => {
            let keys = library.trusted_keys()?;
            if ctx.json {
                return print_json(&json!({ "keys": keys }));
            }
            if keys.is_empty() {
                out!("no keys trusted; `lectern trust add PUBLISHER.pub` trusts one");
            }
            for k in keys {
                out!(
                    "{}  {}  added {}",
                    k.key_id,
                    k.name,
                    k.added_at.format("%Y-%m-%d")
                );
            }
        }
        TrustCommand::Remove { key_id } => {
            let removed = library.distrust(&key_id)?;
            if !removed {
                anyhow::bail!(lectern::Error::NotFound(format!(
                    "no trusted key {key_id}; `lectern trust list` shows them"
                )));
            }
            if ctx.json {
                return print_json(&json!({ "key_id": key_id, "removed": true }));
            }
            out!("no longer trusting key {key_id}");
        }
    }
    Ok(())
}

/// `lectern policy`.
pub fn policy(ctx: &Ctx, command: PolicyCommand) -> Result<()> {
    let mut library: Lectern = ctx.open(None)?;
    match command {
        PolicyCommand::Use { id } => {
            library.use_policy(&id)?;
            if ctx.json {
                return print_json(&json!({ "policy": id }));
            }
            out!("the privacy policy is now {id}, for every command");
        }
        PolicyCommand::Show => {
            let configured = library.config().policy.clone();
            let chosen = library.policy_in_use()?;
            let words = match (&configured, &chosen) {
                (Some(p), _) => format!("{} (from the configuration)", p.display()),
                (None, Some(id)) => format!("{id} (installed, chosen with `policy use`)"),
                (None, None) => {
                    "the built-in policy that lets no field out; `lectern policy use ID` \
                     chooses an installed privacy filter"
                        .into()
                }
            };
            if ctx.json {
                return print_json(&json!({ "configured": configured, "installed": chosen }));
            }
            out!("{words}");
        }
    }
    Ok(())
}
