//! The registry of installed plugins and the publisher keys a library
//! trusts, as a store keeps them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One installed plugin: which package, what the operator granted it, and
/// the library's configuration for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstalledPlugin {
    /// `plugin.id`; the registry holds one version of each id.
    pub id: String,
    /// `plugin.version`.
    pub version: String,
    /// The world, as the contract spells it.
    pub world: String,
    /// The package's digest (`sha256:…` of its OCI manifest), which the
    /// lockfile pins.
    pub digest: String,
    /// The SHA-256 of the component inside it, in hex.
    pub component_sha256: String,
    /// The trusted key that signed it; `None` if it was installed unsigned
    /// or signed by a key the library does not trust.
    pub signer: Option<String>,
    /// Whether commands may run it.
    pub enabled: bool,
    /// The patron fields granted: the manifest's request, or less.
    pub fields: Vec<String>,
    /// For a messenger, the event kinds granted; `None` when it asked for
    /// every kind and was granted them.
    pub events: Option<Vec<String>>,
    /// The library's values for the plugin's configuration keys, checked
    /// against its schema.
    pub config: BTreeMap<String, String>,
    /// Where it was installed from: a file or an OCI reference.
    pub source: String,
    /// When this version was installed.
    pub installed_at: DateTime<Utc>,
}

/// A publisher's public key the library trusts to sign plugins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrustedKey {
    /// The key's id: the first 16 hex digits of the SHA-256 of its public
    /// key bytes.
    pub key_id: String,
    /// The name the operator gave it.
    pub name: String,
    /// The Ed25519 public key, 32 bytes.
    #[serde(skip)]
    pub public_key: Vec<u8>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

/// Installed plugins, their packages, trusted keys and the library's
/// plugin settings. Every method is one transaction.
pub trait Registry {
    /// Every installed plugin, by id.
    fn installed(&self) -> anyhow::Result<Vec<InstalledPlugin>>;

    /// The installed plugin `id`.
    fn installed_plugin(&self, id: &str) -> anyhow::Result<Option<InstalledPlugin>>;

    /// The package file with `digest`, as installed.
    fn package(&self, digest: &str) -> anyhow::Result<Option<Vec<u8>>>;

    /// Installs `plugin` with its `package` file, replacing the version
    /// installed before, whose package goes unless another plugin uses it.
    fn put_installed(&mut self, plugin: &InstalledPlugin, package: &[u8]) -> anyhow::Result<()>;

    /// Removes plugin `id` and its package; false if it was not installed.
    fn remove_installed(&mut self, id: &str) -> anyhow::Result<bool>;

    /// A library setting, such as the privacy policy in use.
    fn setting(&self, key: &str) -> anyhow::Result<Option<String>>;

    /// Sets a library setting, or clears it with `None`.
    fn set_setting(&mut self, key: &str, value: Option<&str>) -> anyhow::Result<()>;

    /// The keys the library trusts, by id.
    fn trusted_keys(&self) -> anyhow::Result<Vec<TrustedKey>>;

    /// Trusts `key`; false if a key with its id was already trusted.
    fn trust_key(&mut self, key: &TrustedKey) -> anyhow::Result<bool>;

    /// Stops trusting the key `key_id`; false if it was not trusted.
    fn distrust_key(&mut self, key_id: &str) -> anyhow::Result<bool>;
}
