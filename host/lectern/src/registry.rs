//! The plugins a library installed: install, upgrade, grants, settings,
//! trust, and loading by id with every pin checked before code runs.
//!
//! An installed plugin is its package file, kept in the store, and a row
//! saying what the operator granted and configured. Loading one by id
//! re-reads the package and checks, in order: the row's digest against the
//! lockfile, the package's every blob against its digest, and the
//! component's hash against both; the compiled-code cache then checks its
//! own entry against the component's hash with its MAC. Only then is the
//! component instantiated.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::manifest::Manifest;
use crate::package::{Package, Signer};
use crate::plugin::Plugin;
use crate::privacy::Field;
use crate::store::{Backend, InstalledPlugin};

/// The library setting that names the privacy policy in use.
pub(crate) const POLICY_SETTING: &str = "privacy-policy";

/// What the operator grants a plugin at install: its manifest's request,
/// or less.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The patron fields granted; `None` grants every field requested.
    pub fields: Option<Vec<Field>>,
    /// For a messenger, the event kinds granted; `None` grants every kind
    /// requested.
    pub events: Option<Vec<String>>,
}

/// How to install a package.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Install a package that is unsigned, or signed by a key the library
    /// does not trust. The registry shows that it is.
    pub allow_unsigned: bool,
    /// What to grant.
    pub grant: Grant,
    /// Where the package came from, for the registry: a file or an OCI
    /// reference.
    pub source: String,
}

/// A package checked against this library: who signed it, what it asks
/// for, and the plugin it loads as. Only
/// [`Lectern::review`](crate::Lectern::review) makes one, before the
/// operator decides what to grant, so an install always follows the checks.
#[derive(Debug)]
pub struct Review {
    pub(crate) package: Package,
    pub(crate) manifest: Manifest,
    pub(crate) signer: Signer,
    pub(crate) imports: Vec<String>,
}

impl Review {
    /// The package.
    pub fn package(&self) -> &Package {
        &self.package
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Who signed it.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Every patron field it asks for.
    pub fn fields(&self) -> &[Field] {
        &self.manifest.fields
    }

    /// The event kinds it asks for, for a messenger; `None`: all kinds.
    pub fn events(&self) -> Option<&[String]> {
        self.manifest.events.as_deref()
    }

    /// What its component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Refuses a package that is unsigned or signed by a key the library
    /// does not trust, unless the operator allows it.
    pub(crate) fn check_signer(&self, allow_unsigned: bool) -> Result<()> {
        let name = format!("package {} {}", self.manifest.id, self.manifest.version);
        match &self.signer {
            Signer::Trusted { .. } => Ok(()),
            _ if allow_unsigned => Ok(()),
            Signer::Unsigned => Err(Error::Denied(format!(
                "{name} is not signed; install only what its publisher signed (`lectern \
                 plugin sign`), or pass --allow-unsigned to install it anyway"
            ))),
            Signer::Untrusted(ids) => Err(Error::Denied(format!(
                "{name} is signed by {}, which this library does not trust; if you trust its \
                 publisher, `lectern trust add THEIR-KEY.pub`, or pass --allow-unsigned",
                if ids.is_empty() {
                    "an unnamed key".to_string()
                } else {
                    format!("key {}", ids.join(", "))
                }
            ))),
        }
    }
}

/// The lockfile: each installed plugin's digest, for version control and
/// review, beside the store.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Lockfile {
    version: u32,
    #[serde(default, rename = "plugin")]
    plugins: Vec<Locked>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
struct Locked {
    id: String,
    version: String,
    digest: String,
    component: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
}

const LOCK_HEADER: &str = "# The plugins this library installed, pinned by digest. Lectern writes \
                           this file at every install,\n# upgrade and removal, and refuses to run \
                           an installed plugin that does not match it.\n";

fn read_lock(path: &Path) -> Result<Lockfile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("the lockfile is damaged: {}", e.message().trim_end()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lockfile {
            version: 1,
            plugins: Vec::new(),
        }),
        Err(e) => Err(Error::Config(anyhow::anyhow!(
            "cannot read the lockfile {}: {e}",
            path.display()
        ))),
    }
}

pub(crate) fn write_lock(path: &Path, installed: &[InstalledPlugin]) -> Result<()> {
    let lock = Lockfile {
        version: 1,
        plugins: installed.iter().map(locked).collect(),
    };
    let text = format!(
        "{LOCK_HEADER}{}",
        toml::to_string(&lock).map_err(|e| Error::Config(e.into()))?
    );
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.as_file().sync_all()?;
            Ok(f)
        })
        .map_err(|e| {
            Error::Config(anyhow::anyhow!(
                "cannot write the lockfile {}: {e}",
                path.display()
            ))
        })?;
    tmp.persist(path).map_err(|e| {
        Error::Config(anyhow::anyhow!(
            "cannot write the lockfile {}: {e}",
            path.display()
        ))
    })?;
    Ok(())
}

fn locked(p: &InstalledPlugin) -> Locked {
    Locked {
        id: p.id.clone(),
        version: p.version.clone(),
        digest: p.digest.clone(),
        component: format!("sha256:{}", p.component_sha256),
        signer: p.signer.clone(),
    }
}

/// The manifest with the grant applied: the fields and events it may
/// have, never more than it asked for.
pub(crate) fn granted(mut manifest: Manifest, row: &InstalledPlugin) -> Result<Manifest> {
    let fields = row
        .fields
        .iter()
        .map(|f| {
            f.parse::<Field>().map_err(|_| {
                Error::Store(anyhow::anyhow!(
                    "the registry grants plugin {} the unknown field {f:?}",
                    row.id
                ))
            })
        })
        .collect::<Result<Vec<Field>>>()?;
    manifest.fields.retain(|f| fields.contains(f));
    manifest.events = match (manifest.events.take(), &row.events) {
        (Some(asked), Some(grant)) => {
            Some(asked.into_iter().filter(|e| grant.contains(e)).collect())
        }
        (None, Some(grant)) => Some(grant.clone()),
        (asked, None) => asked,
    };
    Ok(manifest)
}

/// Loads the installed plugin `id` from `store`, checking the lockfile,
/// the package's digests and the component's hash before anything runs.
pub(crate) fn load_installed(
    host: &Host,
    store: &dyn Backend,
    lockfile: Option<&Path>,
    id: &str,
    adjust: impl FnOnce(&mut Manifest),
) -> Result<Plugin> {
    let row = store
        .installed_plugin(id)
        .map_err(Error::store)?
        .ok_or_else(|| not_installed(store, id))?;
    if !row.enabled {
        return Err(Error::Denied(format!(
            "plugin {id} is disabled; `lectern plugin enable {id}` to run it"
        )));
    }
    let tampered = |what: String| {
        Error::invalid(
            format!("installed plugin {id}"),
            format!(
                "{what}; it will not run. Restore the lockfile from your backup, or remove the \
                 plugin and install its package again"
            ),
        )
    };
    if let Some(path) = lockfile {
        let lock = read_lock(path)?;
        match lock.plugins.iter().find(|l| l.id == id) {
            Some(l) if *l == locked(&row) => {}
            Some(l) => {
                return Err(tampered(format!(
                    "the store says {} {} ({}), but the lockfile {} pins {} ({})",
                    row.version,
                    row.digest,
                    row.component_sha256,
                    path.display(),
                    l.digest,
                    l.component
                )));
            }
            None => {
                return Err(tampered(format!(
                    "it is not in the lockfile {}",
                    path.display()
                )));
            }
        }
    }
    let bytes = store
        .package(&row.digest)
        .map_err(Error::store)?
        .ok_or_else(|| {
            tampered(format!(
                "its package {} is missing from the store",
                row.digest
            ))
        })?;
    let package = Package::from_layout(&bytes, &format!("installed plugin {id}"), u64::MAX)
        .map_err(|e| match e {
            Error::Invalid { message, .. } => tampered(message),
            other => other,
        })?;
    if package.digest() != row.digest {
        return Err(tampered(format!(
            "its package is {}, not the {} it was installed as",
            package.digest(),
            row.digest
        )));
    }
    if package.component_sha256() != row.component_sha256 {
        return Err(tampered("its component is not the one installed".into()));
    }
    let mut manifest = granted(package.manifest(id)?, &row)?;
    adjust(&mut manifest);
    host.load_bytes_with_config(manifest, package.component(), &row.config)
}

pub(crate) fn not_installed(store: &dyn Backend, id: &str) -> Error {
    let known: Vec<String> = store
        .installed()
        .map(|v| v.into_iter().map(|p| p.id).collect())
        .unwrap_or_default();
    Error::NotFound(format!(
        "no plugin {id:?} is installed (installed: {}); `lectern plugin install FILE|REF` \
         installs one, and a path to a plugin directory works too",
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    ))
}

/// The privacy policy a library uses: the configured path, else the
/// installed plugin `policy use` chose, else none.
pub(crate) fn chosen_policy(
    host: &Host,
    store: &dyn Backend,
    configured: Option<&Path>,
    lockfile: Option<&Path>,
) -> Result<Option<Plugin>> {
    let chosen = store.setting(POLICY_SETTING).map_err(Error::store)?;
    match (configured, chosen) {
        (Some(path), Some(id)) => Err(Error::Config(anyhow::anyhow!(
            "two privacy policies are named: `[privacy] policy` = {} in the configuration, and \
             installed plugin {id} by `lectern policy use`; remove one",
            path.display()
        ))),
        (Some(path), None) => Ok(Some(host.load(path)?)),
        (None, Some(id)) => Ok(Some(load_installed(host, store, lockfile, &id, |_| {})?)),
        (None, None) => Ok(None),
    }
}

/// Refuses, at install, imports that reach outside the sandbox even where
/// the host answers them with nothing: HTTP, sockets and preopened
/// directories. A plugin that imports them was built for another host.
pub(crate) fn refuse_ambient(id: &str, imports: &[String]) -> Result<()> {
    const REFUSED: [(&str, &str); 3] = [
        ("wasi:http/", "HTTP"),
        ("wasi:sockets/", "sockets"),
        ("wasi:filesystem/preopens", "preopened directories"),
    ];
    for i in imports {
        if let Some((_, what)) = REFUSED.iter().find(|(p, _)| i.starts_with(p)) {
            return Err(Error::Denied(format!(
                "plugin {id} imports `{i}`: it asks for {what}, and a Lectern plugin gets no \
                 network and no files. Build it without them (Python: `componentize-py \
                 componentize --stub-wasi`; JavaScript: `jco componentize -d all`)"
            )));
        }
    }
    Ok(())
}

/// Where a store's lockfile goes by default: beside it, with `.lock`.
pub fn default_lockfile(store: &Path) -> PathBuf {
    store.with_extension("lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_refuses_network_and_files_by_name() {
        for import in [
            "wasi:http/types@0.2.10",
            "wasi:sockets/tcp@0.2.9",
            "wasi:filesystem/preopens@0.2.9",
        ] {
            let err = refuse_ambient("probe", &[import.to_string()]).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Denied);
            let text = err.to_string();
            assert!(text.contains(import) && text.contains("probe"), "{text}");
            assert!(
                text.contains("--stub-wasi") && text.contains("-d all"),
                "{text}"
            );
        }
        // What a Rust guest's standard library imports goes in.
        let rust_std = [
            "lectern:crm/host@0.2.0",
            "wasi:io/streams@0.2.6",
            "wasi:cli/environment@0.2.6",
            "wasi:random/insecure-seed@0.2.6",
        ];
        refuse_ambient("probe", &rust_std.map(String::from)).unwrap();
    }
}
