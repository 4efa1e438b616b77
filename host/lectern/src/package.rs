//! Plugin packages: one file per plugin version, in the ecosystem's format.
//!
//! A package is an OCI artifact as `wkg` and wasm-pkg-tools write one: a
//! manifest whose config is `application/vnd.wasm.config.v0+json` and whose
//! first layer is the component, `application/wasm`. Lectern adds the
//! plugin's `plugin.toml`, README and licence as further layers, each named
//! by an `org.opencontainers.image.title` annotation. On disk it is an OCI
//! image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) in one tar
//! file; in a registry it is the same manifest and blobs, byte for byte, so
//! its digest is the same in both places.
//!
//! The component carries its own `plugin.toml`, and the digests of the
//! README and licence, in a custom section, so that a signature over the
//! component (the WebAssembly tool-conventions format, from `wasmsign2`)
//! covers everything that decides what the plugin may do.
//!
//! Reading a package checks every digest and size before anything in it
//! is used; a package is hostile input like any other file.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::store::TrustedKey;

/// The component's layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The config of a WebAssembly OCI artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The `plugin.toml` layer.
pub const MANIFEST_LAYER: &str = "application/vnd.lectern.plugin.manifest.v1+toml";
const README_LAYER: &str = "text/markdown";
const LICENSE_LAYER: &str = "text/plain";
const TITLE: &str = "org.opencontainers.image.title";
const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The custom section of the component that holds its `plugin.toml` and
/// the digests of the other files.
const EMBEDDED: &str = "lectern:package";
/// The files beside `plugin.toml` that go into a package when present.
const README_FILES: [&str; 2] = ["README.md", "README"];
const LICENSE_FILES: [&str; 3] = ["LICENSE", "LICENSE.md", "LICENSE.txt"];
/// Nothing else in a package may be larger than this.
const MAX_SMALL_FILE: u64 = 1 << 20;

/// A plugin package, read and checked: every blob matches its digest.
#[derive(Clone)]
pub struct Package {
    digest: String,
    manifest_bytes: Vec<u8>,
    manifest: OciImageManifest,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// What the component's custom section says.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Embedded {
    #[serde(rename = "plugin.toml")]
    plugin_toml: String,
    /// File name to `sha256:…` of the README and licence.
    files: BTreeMap<String, String>,
}

/// The wasm config, after the CNCF TAG Runtime's WebAssembly OCI artifact
/// layout.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    architecture: String,
    os: String,
    layer_digests: Vec<String>,
    component: ComponentConfig,
}

#[derive(Serialize, Deserialize)]
struct ComponentConfig {
    exports: Vec<String>,
    imports: Vec<String>,
    target: String,
}

/// Who signed a package, as a library's trusted keys see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// No signature.
    Unsigned,
    /// Signed by this trusted key (its id and name).
    Trusted {
        /// The key's id.
        key_id: String,
        /// The name the library gave it.
        name: String,
    },
    /// Signed, but by no key the library trusts; the ids the signature
    /// names, if any.
    Untrusted(Vec<String>),
}

/// `sha256:` and the hex digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A publisher's Ed25519 key pair, for signing packages.
pub struct SigningKey(wasmsign2::KeyPair);

impl SigningKey {
    /// A new random key pair.
    pub fn generate() -> SigningKey {
        SigningKey(wasmsign2::KeyPair::generate())
    }

    /// The secret key in PEM, to keep private.
    pub fn secret_pem(&self) -> String {
        self.0.sk.to_pem()
    }

    /// The public key in PEM, to give to libraries.
    pub fn public_pem(&self) -> String {
        self.0.pk.to_pem()
    }

    /// The public key's id.
    pub fn key_id(&self) -> String {
        // wasmsign2's bytes have a one-byte algorithm prefix.
        key_id(&self.0.pk.to_bytes()[1..])
    }

    /// Reads a secret key written by [`SigningKey::secret_pem`] (or any
    /// Ed25519 secret key in PEM or DER).
    pub fn from_file(path: &Path) -> Result<SigningKey> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::NotFound(format!(
                "cannot read the signing key {}: {e}",
                path.display()
            ))
        })?;
        let sk = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|pem| wasmsign2::SecretKey::from_pem(pem).ok())
            .or_else(|| wasmsign2::SecretKey::from_der(&bytes).ok())
            .ok_or_else(|| {
                Error::invalid(
                    path.display().to_string(),
                    "not an Ed25519 secret key in PEM or DER; make one with `lectern plugin keygen`",
                )
            })?;
        let sk_bytes = sk.to_bytes();
        // An Ed25519 secret key holds its public key in its last 32 bytes.
        let pk = ed25519_public(&sk_bytes[sk_bytes.len() - 32..])
            .ok_or_else(|| Error::invalid(path.display().to_string(), "not an Ed25519 key"))?;
        Ok(SigningKey(wasmsign2::KeyPair { pk, sk }))
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
fn key_id(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// A public key to trust, read from a PEM, DER or raw file, with its id.
pub fn read_public_key(path: &Path, name: &str) -> Result<TrustedKey> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::NotFound(format!("cannot read the key {}: {e}", path.display())))?;
    let pk = wasmsign2::PublicKey::from_any(&bytes).map_err(|_| {
        Error::invalid(
            path.display().to_string(),
            "not an Ed25519 public key in PEM, DER or raw form; a publisher's public key is the \
             .pub file that `lectern plugin keygen` writes",
        )
    })?;
    let raw = pk.to_bytes();
    // wasmsign2's raw form has a one-byte algorithm prefix.
    let public_key = raw[raw.len() - 32..].to_vec();
    Ok(TrustedKey {
        key_id: key_id(&public_key),
        name: name.to_string(),
        public_key,
        added_at: chrono::Utc::now(),
    })
}

fn public_key(k: &TrustedKey) -> Option<wasmsign2::PublicKey> {
    ed25519_public(&k.public_key)
}

/// A public key from its 32 raw bytes (wasmsign2's own form has a one-byte
/// algorithm prefix, 0x01 for Ed25519).
fn ed25519_public(raw: &[u8]) -> Option<wasmsign2::PublicKey> {
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(raw);
    wasmsign2::PublicKey::from_bytes(&bytes).ok()
}

impl Package {
    /// Packs the plugin whose `plugin.toml` is `manifest`: its component,
    /// the manifest, and a README and licence if they are beside it. The
    /// caller has loaded it with the host, so it is a working plugin, and
    /// gives what the component exports and imports.
    pub fn pack(manifest: &Manifest, exports: &[String], imports: &[String]) -> Result<Package> {
        let dir = manifest.path.parent().unwrap_or(Path::new("."));
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                Error::NotFound(format!("cannot read {} to pack it: {e}", p.display()))
            })
        };
        let plugin_toml = String::from_utf8(read(&manifest.path)?)
            .map_err(|_| Error::invalid(manifest.path.display().to_string(), "not UTF-8 text"))?;
        let mut extra = Vec::new();
        for (names, media_type) in [
            (&README_FILES[..], README_LAYER),
            (&LICENSE_FILES[..], LICENSE_LAYER),
        ] {
            if let Some(name) = names.iter().find(|n| dir.join(n).is_file()) {
                extra.push((name.to_string(), media_type, read(&dir.join(name))?));
            }
        }
        let embedded = Embedded {
            plugin_toml: plugin_toml.clone(),
            files: extra
                .iter()
                .map(|(name, _, bytes)| (name.clone(), digest_of(bytes)))
                .collect(),
        };
        let component = embed(&read(&manifest.component)?, &embedded)?;
        let component_name = manifest
            .component
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{}.wasm", manifest.id));
        let config = WasmConfig {
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: Vec::new(),
            component: ComponentConfig {
                exports: exports.to_vec(),
                imports: imports.to_vec(),
                target: manifest.world.interface(&manifest.api_version),
            },
        };
        let mut layers = vec![(component_name, WASM_LAYER, component)];
        layers.push((
            MANIFEST_FILE.to_string(),
            MANIFEST_LAYER,
            plugin_toml.into_bytes(),
        ));
        layers.extend(extra);
        Package::assemble(config, layers, manifest)
    }

    fn assemble(
        mut config: WasmConfig,
        layers: Vec<(String, &str, Vec<u8>)>,
        manifest: &Manifest,
    ) -> Result<Package> {
        let mut blobs = BTreeMap::new();
        let mut descriptors = Vec::new();
        for (title, media_type, bytes) in layers {
            let digest = digest_of(&bytes);
            descriptors.push(OciDescriptor {
                media_type: media_type.to_string(),
                digest: digest.clone(),
                size: bytes.len() as i64,
                annotations: Some(BTreeMap::from([(TITLE.to_string(), title)])),
                ..Default::default()
            });
            config.layer_digests.push(digest.clone());
            blobs.insert(digest, bytes);
        }
        let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Config(e.into()))?;
        let config_digest = digest_of(&config_bytes);
        let oci = OciImageManifest {
            schema_version: 2,
            media_type: Some(IMAGE_MANIFEST.to_string()),
            config: OciDescriptor {
                media_type: WASM_CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_bytes.len() as i64,
                ..Default::default()
            },
            layers: descriptors,
            subject: None,
            artifact_type: Some(WASM_CONFIG.to_string()),
            annotations: Some(BTreeMap::from([
                ("org.opencontainers.image.title".into(), manifest.id.clone()),
                (
                    "org.opencontainers.image.version".into(),
                    manifest.version.clone(),
                ),
                (
                    "org.opencontainers.image.description".into(),
                    manifest.description.clone(),
                ),
                (
                    "org.opencontainers.image.authors".into(),
                    manifest.authors.join(", "),
                ),
            ])),
        };
        blobs.insert(config_digest, config_bytes);
        let manifest_bytes = serde_json::to_vec(&oci).map_err(|e| Error::Config(e.into()))?;
        Ok(Package {
            digest: digest_of(&manifest_bytes),
            manifest_bytes,
            manifest: oci,
            blobs,
        })
    }

    /// The package's digest: the SHA-256 of its OCI manifest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The OCI manifest, as pushed to a registry.
    pub fn oci_manifest(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Every blob (config and layers) with its digest.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.blobs.iter().map(|(d, b)| (d.as_str(), b.as_slice()))
    }

    fn layer(&self, media_type: &str) -> Option<(&OciDescriptor, &[u8])> {
        let d = self
            .manifest
            .layers
            .iter()
            .find(|l| l.media_type == media_type)?;
        Some((d, self.blobs.get(&d.digest)?.as_slice()))
    }

    fn title(d: &OciDescriptor) -> Option<&str> {
        d.annotations.as_ref()?.get(TITLE).map(String::as_str)
    }

    /// The component, as it will run.
    pub fn component(&self) -> &[u8] {
        self.layer(WASM_LAYER).map(|(_, b)| b).unwrap_or_default()
    }

    /// The SHA-256 of the component, in hex.
    pub fn component_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.component()))
    }

    /// The plugin's `plugin.toml`, as signed with the component.
    pub fn plugin_toml(&self) -> &str {
        self.layer(MANIFEST_LAYER)
            .and_then(|(_, b)| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The README, if the package has one.
    pub fn readme(&self) -> Option<&str> {
        self.layer(README_LAYER)
            .and_then(|(_, b)| std::str::from_utf8(b).ok())
    }

    /// The parsed, checked manifest. Its paths name the package, for
    /// messages: `<name>/plugin.toml` and `<name>/<component>`.
    pub fn manifest(&self, name: &str) -> Result<Manifest> {
        let base = Path::new(name);
        let mut m = Manifest::parse(&base.join(MANIFEST_FILE), self.plugin_toml())?;
        let file = self
            .layer(WASM_LAYER)
            .and_then(|(d, _)| Package::title(d))
            .unwrap_or("component.wasm");
        m.component = base.join(file);
        Ok(m)
    }

    /// Reads a package from an OCI image layout tar file's bytes, checking
    /// every digest and size; `name` is the file, for messages. At most
    /// `max_bytes` are read.
    pub fn from_layout(bytes: &[u8], name: &str, max_bytes: u64) -> Result<Package> {
        let bad = |m: String| Error::invalid(name.to_string(), m);
        if bytes.len() as u64 > max_bytes {
            return Err(bad(format!(
                "the package is {} bytes, over the host's cap of {max_bytes}",
                bytes.len()
            )));
        }
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut archive = tar::Archive::new(bytes);
        let entries = archive
            .entries()
            .map_err(|e| bad(format!("not a tar file: {e}; a package is an OCI image layout in a tar file, as `lectern plugin pack` writes")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(format!("the tar file is damaged: {e}")))?;
            let kind = entry.header().entry_type();
            let path = entry
                .path()
                .map_err(|e| bad(format!("an entry has a bad name: {e}")))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                return Err(bad(format!(
                    "`{path}` is not a plain file; a package holds only files"
                )));
            }
            let ok_name = path == "oci-layout"
                || path == "index.json"
                || path
                    .strip_prefix("blobs/sha256/")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()));
            if !ok_name {
                return Err(bad(format!(
                    "`{}` has no place in an OCI image layout",
                    path.escape_default()
                )));
            }
            let mut data = Vec::new();
            entry
                .by_ref()
                .take(max_bytes)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("cannot read `{path}`: {e}")))?;
            files.insert(path, data);
        }
        let blob = |digest: &str, what: &str, size: Option<i64>| -> Result<Vec<u8>> {
            let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
                bad(format!(
                    "{what} has digest {digest:?}; only sha256 digests are read"
                ))
            })?;
            let data = files
                .get(&format!("blobs/sha256/{hex}"))
                .ok_or_else(|| bad(format!("{what} ({digest}) is missing from the package")))?;
            if digest_of(data) != digest || size.is_some_and(|s| s != data.len() as i64) {
                return Err(bad(format!(
                    "{what} does not match its digest {digest}: the package was changed after \
                     it was packed; get it again from its publisher"
                )));
            }
            Ok(data.clone())
        };
        let index: OciImageIndex = serde_json::from_slice(
            files
                .get("index.json")
                .ok_or_else(|| bad("it has no index.json; is it an OCI image layout?".into()))?,
        )
        .map_err(|e| bad(format!("index.json: {e}")))?;
        let [entry] = index.manifests.as_slice() else {
            return Err(bad(format!(
                "index.json lists {} manifests; a plugin package has exactly one",
                index.manifests.len()
            )));
        };
        let manifest_bytes = blob(&entry.digest, "the OCI manifest", Some(entry.size))?;
        Package::from_parts(manifest_bytes, name, |d: &OciDescriptor, what: &str| {
            blob(&d.digest, what, Some(d.size))
        })
    }

    /// A package from its OCI manifest and a way to fetch each blob by
    /// descriptor, as a registry serves them; every blob is checked.
    pub(crate) fn from_parts(
        manifest_bytes: Vec<u8>,
        name: &str,
        mut fetch: impl FnMut(&OciDescriptor, &str) -> Result<Vec<u8>>,
    ) -> Result<Package> {
        let bad = |m: String| Error::invalid(name.to_string(), m);
        let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| bad(format!("the OCI manifest: {e}")))?;
        if manifest.config.media_type != WASM_CONFIG {
            return Err(bad(format!(
                "its config is {:?}, not {WASM_CONFIG}: it is not a WebAssembly package",
                manifest.config.media_type
            )));
        }
        let mut blobs = BTreeMap::new();
        let config = fetch(&manifest.config, "the wasm config")?;
        if config.len() as u64 > MAX_SMALL_FILE {
            return Err(bad("the wasm config is over 1 MiB".into()));
        }
        blobs.insert(manifest.config.digest.clone(), config);
        for media_type in [WASM_LAYER, MANIFEST_LAYER] {
            let n = manifest
                .layers
                .iter()
                .filter(|l| l.media_type == media_type)
                .count();
            if n != 1 {
                return Err(bad(format!(
                    "it has {n} layers of type {media_type}; a plugin package has exactly one"
                )));
            }
        }
        for layer in &manifest.layers {
            let title = Package::title(layer).unwrap_or("a layer");
            if layer.media_type != WASM_LAYER && layer.size as u64 > MAX_SMALL_FILE {
                return Err(bad(format!("`{title}` is over 1 MiB")));
            }
            let data = fetch(layer, &format!("layer `{}`", title.escape_default()))?;
            blobs.insert(layer.digest.clone(), data);
        }
        let package = Package {
            digest: digest_of(&manifest_bytes),
            manifest_bytes,
            manifest,
            blobs,
        };
        package.check_embedded(name)?;
        Ok(package)
    }

    /// Checks that the files match what the component says of them.
    fn check_embedded(&self, name: &str) -> Result<()> {
        let bad = |m: String| Error::invalid(name.to_string(), m);
        let Some(embedded) = embedded(self.component()).map_err(&bad)? else {
            return Err(bad(format!(
                "its component has no `{EMBEDDED}` section; pack it with `lectern plugin pack`"
            )));
        };
        if embedded.plugin_toml != self.plugin_toml() {
            return Err(bad(
                "its plugin.toml is not the one packed into its component: the package was \
                 changed after it was packed"
                    .into(),
            ));
        }
        for layer in &self.manifest.layers {
            if matches!(layer.media_type.as_str(), WASM_LAYER | MANIFEST_LAYER) {
                continue;
            }
            let title = Package::title(layer).unwrap_or_default();
            if embedded.files.get(title) != Some(&layer.digest) {
                return Err(bad(format!(
                    "its `{}` is not the one packed into its component: the package was \
                     changed after it was packed",
                    title.escape_default()
                )));
            }
        }
        Ok(())
    }

    /// Writes the package as an OCI image layout in a tar file.
    pub fn to_layout(&self) -> Vec<u8> {
        let mut out = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            out.append_data(&mut h, path, data)
                .expect("writing a tar file to memory cannot fail");
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let version = self
            .manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.version"))
            .cloned()
            .unwrap_or_default();
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(IMAGE_INDEX.to_string()),
            manifests: vec![ImageIndexEntry {
                media_type: IMAGE_MANIFEST.to_string(),
                digest: self.digest.clone(),
                size: self.manifest_bytes.len() as i64,
                platform: None,
                annotations: Some(BTreeMap::from([(
                    "org.opencontainers.image.ref.name".to_string(),
                    version,
                )])),
                artifact_type: Some(WASM_CONFIG.to_string()),
            }],
            artifact_type: None,
            annotations: None,
        };
        add(
            "index.json",
            &serde_json::to_vec(&index).expect("an index serialises"),
        );
        let blob_path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        add(&blob_path(&self.digest), &self.manifest_bytes);
        for (digest, data) in &self.blobs {
            add(&blob_path(digest), data);
        }
        out.into_inner()
            .expect("writing a tar file to memory cannot fail")
    }

    /// The package signed with `key`, in the WebAssembly tool-conventions
    /// signature format, embedded in the component. A signature already
    /// there is replaced.
    pub fn sign(&self, key: &SigningKey, manifest: &Manifest) -> Result<Package> {
        let module = wasmsign2::Module::deserialize(&mut self.component())
            .map_err(|e| Error::invalid(manifest.id.clone(), format!("cannot sign it: {e}")))?;
        let id = key.key_id().into_bytes();
        let signed = key
            .0
            .sk
            .sign(module, Some(&id))
            .map_err(|e| Error::invalid(manifest.id.clone(), format!("cannot sign it: {e}")))?;
        let mut component = Vec::new();
        signed
            .serialize(&mut component)
            .map_err(|e| Error::invalid(manifest.id.clone(), format!("cannot sign it: {e}")))?;
        let config: WasmConfig = serde_json::from_slice(&self.blobs[&self.manifest.config.digest])
            .map_err(|e| Error::Config(e.into()))?;
        let layers = self
            .manifest
            .layers
            .iter()
            .map(|d| {
                let title = Package::title(d).unwrap_or_default().to_string();
                let data = if d.media_type == WASM_LAYER {
                    component.clone()
                } else {
                    self.blobs[&d.digest].clone()
                };
                (title, d.media_type.as_str(), data)
            })
            .collect();
        Package::assemble(
            WasmConfig {
                layer_digests: Vec::new(),
                ..config
            },
            layers,
            manifest,
        )
    }

    /// Who signed the package, among `trusted`. A signature that names a
    /// trusted key but does not verify is an error: the component was
    /// changed after it was signed.
    pub fn signer(&self, trusted: &[TrustedKey], name: &str) -> Result<Signer> {
        let info = match wasmsign2::signature_info_from_reader(&mut self.component(), None) {
            Ok(info) if info.is_signed() => info,
            _ => return Ok(Signer::Unsigned),
        };
        let ids: Vec<String> = info
            .key_ids()
            .iter()
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .collect();
        for key in trusted {
            let Some(pk) = public_key(key) else { continue };
            if pk.verify(&mut self.component(), None).is_ok() {
                return Ok(Signer::Trusted {
                    key_id: key.key_id.clone(),
                    name: key.name.clone(),
                });
            }
            if ids.contains(&key.key_id) {
                return Err(Error::invalid(
                    name.to_string(),
                    format!(
                        "its signature by trusted key {} ({}) does not verify: the component \
                         was changed after it was signed; do not install it",
                        key.key_id, key.name
                    ),
                ));
            }
        }
        Ok(Signer::Untrusted(ids))
    }
}

/// The component with `embedded` in a custom section at its end.
fn embed(component: &[u8], embedded: &Embedded) -> Result<Vec<u8>> {
    let mut module = wasmsign2::Module::deserialize(&mut &component[..]).map_err(|e| {
        Error::invalid("the component", format!("not a WebAssembly component: {e}"))
    })?;
    module
        .sections
        .retain(|s| !matches!(s, wasmsign2::Section::Custom(c) if c.name() == EMBEDDED));
    module
        .sections
        .push(wasmsign2::Section::Custom(wasmsign2::CustomSection::new(
            EMBEDDED.to_string(),
            serde_json::to_vec(embedded).map_err(|e| Error::Config(e.into()))?,
        )));
    let mut out = Vec::new();
    module
        .serialize(&mut out)
        .map_err(|e| Error::invalid("the component", e.to_string()))?;
    Ok(out)
}

/// What the component's custom section says, if it has one.
fn embedded(component: &[u8]) -> std::result::Result<Option<Embedded>, String> {
    let module = wasmsign2::Module::deserialize(&mut &component[..])
        .map_err(|e| format!("its component is not WebAssembly: {e}"))?;
    for s in module.sections {
        if let wasmsign2::Section::Custom(c) = s
            && c.name() == EMBEDDED
        {
            let outer = c.outer_payload().map_err(|e| e.to_string())?;
            // The outer payload is the name's length, the name, the data.
            let data = &outer[1 + EMBEDDED.len()..];
            return serde_json::from_slice(data)
                .map(Some)
                .map_err(|e| format!("its component's `{EMBEDDED}` section is damaged: {e}"));
        }
    }
    Ok(None)
}
