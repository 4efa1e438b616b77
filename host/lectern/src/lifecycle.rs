//! The library's side of the plugin lifecycle: install, upgrade, grants,
//! settings, trust and the policy in use, as methods of [`Lectern`]. The
//! checks and the loading by id are in `registry.rs`, below the facade.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::host::Host;
use crate::manifest::{Manifest, World};
use crate::package::{Package, Signer};
use crate::plugin::Plugin;
use crate::privacy::Field;
use crate::registry::{
    Grant, InstallOptions, POLICY_SETTING, Review, granted, load_installed, not_installed,
    refuse_ambient, write_lock,
};
use crate::store::{InstalledPlugin, TrustedKey};

impl Lectern {
    fn lockfile(&self) -> Option<&Path> {
        self.config().lockfile.as_deref()
    }

    /// Every installed plugin.
    pub fn installed(&self) -> Result<Vec<InstalledPlugin>> {
        self.store().installed().map_err(Error::store)
    }

    /// The installed plugin `id`.
    pub fn installed_plugin(&self, id: &str) -> Result<InstalledPlugin> {
        self.store()
            .installed_plugin(id)
            .map_err(Error::store)?
            .ok_or_else(|| not_installed(self.store(), id))
    }

    /// The package of installed plugin `id`, checked.
    pub fn installed_package(&self, id: &str) -> Result<Package> {
        let row = self.installed_plugin(id)?;
        let bytes = self
            .store()
            .package(&row.digest)
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound(format!("the package of {id} is missing")))?;
        Package::from_layout(&bytes, id, u64::MAX)
    }

    /// Loads installed plugin `id`, with its grant and the library's
    /// configuration, after checking every pin.
    pub fn plugin(&self, id: &str) -> Result<Plugin> {
        load_installed(self.host(), self.store(), self.lockfile(), id, |_| {})
    }

    /// Loads installed plugin `id` as [`Lectern::plugin`] does, but with
    /// `host`, and with every call metered if `metered` (a plugin with a
    /// fuel budget keeps its own): for a harness that counts the work each
    /// call does.
    pub fn plugin_on(&self, host: &Host, id: &str, metered: bool) -> Result<Plugin> {
        load_installed(
            host,
            self.store(),
            self.lockfile(),
            id,
            |m: &mut Manifest| {
                if metered {
                    m.limits.fuel.get_or_insert(u64::MAX / 4);
                }
            },
        )
    }

    /// Loads `spec`: an installed plugin's id, or else a plugin
    /// directory, its `plugin.toml` or its component, for development. An
    /// id wins over a directory of the same name; `./NAME` names the
    /// directory.
    pub fn plugin_at(&self, spec: &str) -> Result<Plugin> {
        if crate::manifest::is_plugin_id(spec)
            && (self
                .store()
                .installed_plugin(spec)
                .map_err(Error::store)?
                .is_some()
                || !Path::new(spec).exists())
        {
            return self.plugin(spec);
        }
        self.host().load(Path::new(spec))
    }

    /// Checks `package` against this library before install: every digest,
    /// who signed it, and that it loads as the plugin its manifest says,
    /// importing nothing the sandbox does not offer.
    pub fn review(&self, package: Package, allow_unsigned: bool) -> Result<Review> {
        let manifest = package.manifest(&format!("package {}", package.digest()))?;
        let trusted = self.store().trusted_keys().map_err(Error::store)?;
        let name = format!("package {} {}", manifest.id, manifest.version);
        let signer = package.signer(&trusted, &name)?;
        // Refused before its code is compiled.
        let unchecked = Review {
            imports: Vec::new(),
            manifest,
            signer,
            package,
        };
        unchecked.check_signer(allow_unsigned)?;
        let Review {
            manifest,
            signer,
            package,
            ..
        } = unchecked;
        let plugin = self
            .host()
            .load_bytes(manifest.clone(), package.component())?;
        refuse_ambient(&manifest.id, &plugin.component().imports)?;
        Ok(Review {
            imports: plugin.component().imports.clone(),
            manifest,
            signer,
            package,
        })
    }

    /// Installs a reviewed package with `options.grant`. Refused if the
    /// plugin is installed already (upgrade it instead).
    pub fn install(&mut self, review: Review, options: &InstallOptions) -> Result<InstalledPlugin> {
        if let Some(old) = self
            .store()
            .installed_plugin(&review.manifest.id)
            .map_err(Error::store)?
        {
            return Err(Error::invalid(
                review.manifest.id.clone(),
                format!(
                    "version {} is installed already; `lectern plugin upgrade {}` replaces it",
                    old.version, old.id
                ),
            ));
        }
        self.put(review, options, BTreeMap::new(), true)
    }

    /// Replaces installed plugin `id` with a reviewed package of the same
    /// id and world, keeping its configuration, grant and state. The new
    /// version is loaded with them first; if anything fails, the previous
    /// version stays installed, untouched.
    pub fn upgrade(
        &mut self,
        id: &str,
        review: Review,
        options: &InstallOptions,
    ) -> Result<InstalledPlugin> {
        let old = self.installed_plugin(id)?;
        let m = &review.manifest;
        if m.id != id {
            return Err(Error::invalid(
                id.to_string(),
                format!("the package is plugin {}, not {id}", m.id),
            ));
        }
        if m.world.as_str() != old.world {
            return Err(Error::invalid(
                id.to_string(),
                format!(
                    "{id} is a {}, and the package is a {}; a plugin keeps its world",
                    old.world, m.world
                ),
            ));
        }
        let (new_v, old_v) = (
            semver::Version::parse(&m.version),
            semver::Version::parse(&old.version),
        );
        if let (Ok(n), Ok(o)) = (new_v, old_v)
            && n <= o
        {
            return Err(Error::invalid(
                id.to_string(),
                format!(
                    "the package is version {n}, and {o} is installed; an upgrade goes to a \
                     later version (remove and install to go back)"
                ),
            ));
        }
        // The grant carries over, never past what the new version asks: a
        // field it newly asks for is not granted until the operator says
        // so, and one it no longer asks for goes.
        let mut options = options.clone();
        if options.grant == Grant::default() {
            options.grant = Grant {
                fields: Some(
                    old.fields
                        .iter()
                        .filter_map(|f| f.parse::<Field>().ok())
                        .filter(|f| m.fields.contains(f))
                        .collect(),
                ),
                events: old.events.clone().map(|granted| {
                    granted
                        .into_iter()
                        .filter(|e| m.events.as_ref().is_none_or(|asked| asked.contains(e)))
                        .collect()
                }),
            };
        }
        self.put(review, &options, old.config, old.enabled)
    }

    fn put(
        &mut self,
        review: Review,
        options: &InstallOptions,
        config: BTreeMap<String, String>,
        enabled: bool,
    ) -> Result<InstalledPlugin> {
        review.check_signer(options.allow_unsigned)?;
        let m = &review.manifest;
        let fields = match &options.grant.fields {
            Some(g) => {
                if let Some(extra) = g.iter().find(|f| !m.fields.contains(f)) {
                    return Err(Error::invalid(
                        m.id.clone(),
                        format!(
                            "cannot grant `{extra}`: the plugin does not ask for it (it asks \
                             for: {})",
                            field_list(&m.fields)
                        ),
                    ));
                }
                m.fields.iter().filter(|f| g.contains(f)).copied().collect()
            }
            None => m.fields.clone(),
        };
        let events = match (&options.grant.events, &m.events) {
            (Some(g), Some(asked)) => {
                if let Some(extra) = g.iter().find(|e| !asked.contains(e)) {
                    return Err(Error::invalid(
                        m.id.clone(),
                        format!(
                            "cannot grant event kind `{extra}`: the plugin does not ask for it"
                        ),
                    ));
                }
                Some(g.clone())
            }
            (Some(g), None) => Some(g.clone()),
            (None, asked) => asked.clone(),
        };
        let row = InstalledPlugin {
            id: m.id.clone(),
            version: m.version.clone(),
            world: m.world.as_str().to_string(),
            digest: review.package.digest().to_string(),
            component_sha256: review.package.component_sha256(),
            signer: match &review.signer {
                Signer::Trusted { key_id, .. } => Some(key_id.clone()),
                _ => None,
            },
            enabled,
            fields: fields.iter().map(|f| f.as_str().to_string()).collect(),
            events,
            config,
            source: options.source.clone(),
            installed_at: chrono::Utc::now(),
        };
        // The plugin as it will run: the grant and the library's settings
        // applied, every setting checked against this version's schema.
        let manifest = granted(review.manifest.clone(), &row)?;
        self.host()
            .load_bytes_with_config(manifest, review.package.component(), &row.config)?;
        let bytes = review.package.to_layout();
        self.store_mut()
            .put_installed(&row, &bytes)
            .map_err(Error::store)?;
        self.write_lock()?;
        Ok(row)
    }

    fn write_lock(&self) -> Result<()> {
        if let Some(path) = self.lockfile() {
            write_lock(path, &self.installed()?)?;
        }
        Ok(())
    }

    /// Refuses to take away the library's privacy policy.
    fn refuse_if_policy(&self, id: &str) -> Result<()> {
        let policy = self.store().setting(POLICY_SETTING).map_err(Error::store)?;
        if policy.as_deref() == Some(id) {
            return Err(Error::invalid(
                id.to_string(),
                "it is the library's privacy policy; `lectern policy use` another first",
            ));
        }
        Ok(())
    }

    /// Writes an installed plugin's changed row, its package unchanged.
    fn save_row(&mut self, row: &InstalledPlugin) -> Result<()> {
        let bytes = self
            .store()
            .package(&row.digest)
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound(format!("the package of {} is missing", row.id)))?;
        self.store_mut()
            .put_installed(row, &bytes)
            .map_err(Error::store)
    }

    /// Removes installed plugin `id`. Refused while it is the library's
    /// privacy policy.
    pub fn remove_plugin(&mut self, id: &str) -> Result<()> {
        self.installed_plugin(id)?;
        self.refuse_if_policy(id)?;
        self.store_mut()
            .remove_installed(id)
            .map_err(Error::store)?;
        self.write_lock()
    }

    /// Enables or disables installed plugin `id`.
    pub fn set_enabled(&mut self, id: &str, enabled: bool) -> Result<()> {
        let mut row = self.installed_plugin(id)?;
        if !enabled {
            self.refuse_if_policy(id)?;
        }
        row.enabled = enabled;
        self.save_row(&row)
    }

    /// Sets configuration key `key` of installed plugin `id` to `value`,
    /// checked against the plugin's schema; `None` goes back to the
    /// default. Gives the value as the plugin will read it.
    pub fn configure_plugin(
        &mut self,
        id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<Option<String>> {
        let mut row = self.installed_plugin(id)?;
        let package = self.installed_package(id)?;
        let manifest = package.manifest(id)?;
        let Some(schema) = manifest.config_schema.get(key) else {
            return Err(Error::invalid(
                format!("{id}.{key}"),
                format!(
                    "{id} {} has no configuration key `{key}`; its keys are: {}",
                    manifest.version,
                    crate::plugin::declared_keys(&manifest)
                ),
            ));
        };
        let stored = match value {
            Some(v) => {
                let v = schema.check(v).map_err(|m| {
                    Error::invalid(
                        format!("{id}.{key}"),
                        format!("{m}; `{key}` takes {}", schema.describe()),
                    )
                })?;
                row.config.insert(key.to_string(), v.clone());
                Some(v)
            }
            None => {
                row.config.remove(key);
                None
            }
        };
        self.save_row(&row)?;
        Ok(stored)
    }

    /// Makes installed privacy filter `id` the library's policy, for every
    /// command from now on. It is loaded first, so a policy that does not
    /// load is never chosen.
    pub fn use_policy(&mut self, id: &str) -> Result<()> {
        if let Some(path) = &self.config().policy {
            return Err(Error::Config(anyhow::anyhow!(
                "the configuration names the policy {} in `[privacy] policy`; remove that line \
                 first, so that one place says which policy is in force",
                path.display()
            )));
        }
        let plugin = self.plugin(id)?;
        if plugin.world() != World::PrivacyFilter {
            return Err(Error::invalid(
                id.to_string(),
                format!("{id} is a {}, not a privacy-filter", plugin.world()),
            ));
        }
        let filter = plugin.into_privacy_filter()?;
        self.store_mut()
            .set_setting(POLICY_SETTING, Some(id))
            .map_err(Error::store)?;
        self.set_policy(filter);
        Ok(())
    }

    /// The installed plugin `policy use` chose, if any.
    pub fn policy_in_use(&self) -> Result<Option<String>> {
        self.store().setting(POLICY_SETTING).map_err(Error::store)
    }

    /// The keys this library trusts.
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKey>> {
        self.store().trusted_keys().map_err(Error::store)
    }

    /// Trusts `key`; false if it was trusted already.
    pub fn trust(&mut self, key: &TrustedKey) -> Result<bool> {
        self.store_mut().trust_key(key).map_err(Error::store)
    }

    /// Stops trusting key `key_id`. Plugins it signed stay installed, and
    /// show as signed by an untrusted key.
    pub fn distrust(&mut self, key_id: &str) -> Result<bool> {
        self.store_mut().distrust_key(key_id).map_err(Error::store)
    }
}

fn field_list(fields: &[Field]) -> String {
    if fields.is_empty() {
        return "no fields".into();
    }
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
