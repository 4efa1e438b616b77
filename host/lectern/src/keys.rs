//! The host's keystore: the key that chains the audit log, and the
//! versioned keys that make pseudonyms. Keys never leave the host; no plugin
//! ever receives one.
//!
//! The keyring is a small JSON file, readable by its owner only:
//!
//! ```json
//! {"audit": "<hex>", "pseudonym": [{"version": 1, "key": "<hex>", "created": "2026-11-28"}]}
//! ```
//!
//! Rotating adds a pseudonym key and makes it current. Tokens are stable
//! under one key, so after a rotation every patron gets a new token, and
//! nothing made under the old key can be linked to the new one. The audit
//! key does not rotate, so the chain stays verifiable; old pseudonym keys
//! stay in the ring so that a patron's export still finds reads recorded
//! under them.
//!
//! A keyring file is checked the way ssh checks its own keys: it must be
//! a keyring (a damaged one is an error, never read as a raw key), belong
//! to the user running Lectern, and be readable by nobody else. A store
//! records its keyring's [`Keyring::fingerprint`], so a keyring that is
//! not the store's is refused before it is used.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::privacy::Pseudonyms;

/// The host's keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct Keyring {
    #[serde(with = "hex_bytes")]
    audit: Vec<u8>,
    pseudonym: Vec<PseudonymKey>,
    /// The file it was read from or saved to, if any.
    #[serde(skip)]
    file: Option<std::path::PathBuf>,
}

#[derive(Clone, Serialize, Deserialize)]
struct PseudonymKey {
    version: u32,
    #[serde(with = "hex_bytes")]
    key: Vec<u8>,
    created: chrono::NaiveDate,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring {{ pseudonym versions: {} }}",
            self.pseudonym.len()
        )
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// A key file must belong to the user running Lectern and be readable by
/// nobody else, and may not be a link.
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let shown = path.display();
        let link = std::fs::symlink_metadata(path)?;
        anyhow::ensure!(
            !link.file_type().is_symlink(),
            "the keyring {shown} is a link; keep the keyring itself there"
        );
        let me = rustix::process::geteuid().as_raw();
        anyhow::ensure!(
            meta.uid() == me,
            "the keyring {shown} belongs to user {}, not to the user running Lectern ({me}); a \
             keyring someone else planted is refused. Check where it came from, then `chown` it",
            meta.uid()
        );
        let mode = meta.mode() & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "the keyring {shown} is readable or writable by others (mode {mode:03o}); run \
             `chmod 600 {shown}`, and if others may have read it, make a new store"
        );
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

fn random_key() -> Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    Ok(key)
}

impl Keyring {
    /// A keyring with fresh random keys.
    pub fn generate() -> crate::Result<Keyring> {
        Keyring::generate_inner().map_err(crate::Error::config)
    }

    fn generate_inner() -> Result<Keyring> {
        Ok(Keyring {
            audit: random_key()?,
            pseudonym: vec![PseudonymKey {
                version: 1,
                key: random_key()?,
                created: chrono::Utc::now().date_naive(),
            }],
            file: None,
        })
    }

    /// Reads the keyring at `path`.
    pub fn load(path: &Path) -> crate::Result<Keyring> {
        Keyring::load_inner(path).map_err(crate::Error::config)
    }

    fn load_inner(path: &Path) -> Result<Keyring> {
        let shown = path.display();
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "the keyring {shown} cannot be read; it holds the keys this library's store was \
                 made with, so restore it from your backup (a new key cannot read the old \
                 tokens or verify the audit log)"
            )
        })?;
        check_private(path, &meta)?;
        let bytes =
            std::fs::read(path).with_context(|| format!("failed to read the keyring {shown}"))?;
        let mut ring: Keyring = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "the keyring {shown} is damaged ({:?} at line {} column {}); restore it from your \
                 backup",
                e.classify(),
                e.line(),
                e.column()
            )
        })?;
        anyhow::ensure!(
            !ring.pseudonym.is_empty() && ring.audit.len() >= 16,
            "the keyring {shown} has no pseudonym key or a short audit key; restore it from \
             your backup"
        );
        ring.file = Some(path.to_path_buf());
        Ok(ring)
    }

    /// Reads the keyring at `path`, making one the first time.
    pub fn load_or_create(path: &Path) -> crate::Result<Keyring> {
        Keyring::load_or_create_inner(path).map_err(crate::Error::config)
    }

    fn load_or_create_inner(path: &Path) -> Result<Keyring> {
        if !path.exists() {
            let mut ring = Keyring::generate_inner()?;
            // Never over another process's new keyring: the first one made
            // is the one, and this process reads it.
            if ring.write(path, false)? {
                ring.file = Some(path.to_path_buf());
                return Ok(ring);
            }
        }
        Keyring::load_inner(path)
    }

    /// The file the keyring was read from or saved to, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Where the audit log's head is kept outside the store: beside the
    /// keyring's file, as `NAME.audit-head`. `None` for a keyring that came
    /// from a vault ([`Keyring::from_keys`]) and has no file.
    pub fn audit_head_file(&self) -> Option<std::path::PathBuf> {
        self.file.as_ref().map(|f| f.with_extension("audit-head"))
    }

    /// The keyring's fingerprint, as ssh shows a key's: `SHA256:` and the
    /// hash of its audit key, which never rotates. A store records it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(&self.audit);
        format!("SHA256:{}", hex::encode(&hash[..16]))
    }

    /// Writes the keyring, readable by its owner only, replacing the file in
    /// one step.
    pub fn save(&self, path: &Path) -> crate::Result<()> {
        self.save_inner(path).map_err(crate::Error::config)
    }

    fn save_inner(&self, path: &Path) -> Result<()> {
        self.write(path, true).map(|_| ())
    }

    /// Writes the keyring to `path` in one step, readable by its owner
    /// only; over a keyring already there only when `replace`. Returns
    /// whether it was written.
    fn write(&self, path: &Path, replace: bool) -> Result<bool> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("failed to write the keyring into {}", dir.display()))?;
        #[cfg(unix)]
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        tmp.write_all(&serde_json::to_vec_pretty(self)?)?;
        tmp.as_file().sync_all()?;
        let persisted = if replace {
            tmp.persist(path)
        } else {
            tmp.persist_noclobber(path)
        };
        match persisted {
            Ok(_) => Ok(true),
            Err(e) if !replace && e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("failed to write the keyring {}", path.display()))
            }
        }
    }

    /// Adds a new pseudonym key and makes it current; returns its version.
    pub fn rotate(&mut self) -> crate::Result<u32> {
        self.rotate_inner().map_err(crate::Error::config)
    }

    fn rotate_inner(&mut self) -> Result<u32> {
        let version = self.pseudonym.iter().map(|k| k.version).max().unwrap_or(0) + 1;
        self.pseudonym.push(PseudonymKey {
            version,
            key: random_key()?,
            created: chrono::Utc::now().date_naive(),
        });
        Ok(version)
    }

    /// A keyring of the given keys, as a library that keeps its keys in
    /// its own vault hands them over: `audit` chains the audit log and
    /// `pseudonym` makes tokens. Each must be at least 16 bytes.
    pub fn from_keys(audit: &[u8], pseudonym: &[u8]) -> crate::Result<Keyring> {
        if audit.len() < 16 || pseudonym.len() < 16 {
            return Err(crate::Error::invalid(
                "keyring",
                "a key must be at least 16 bytes; use 32 random bytes",
            ));
        }
        Ok(Keyring {
            audit: audit.to_vec(),
            pseudonym: vec![PseudonymKey {
                version: 1,
                key: pseudonym.to_vec(),
                created: chrono::NaiveDate::MIN,
            }],
            file: None,
        })
    }

    /// The key that chains the audit log.
    pub fn audit_key(&self) -> &[u8] {
        &self.audit
    }

    /// Pseudonyms under the current key.
    pub fn pseudonyms(&self) -> Pseudonyms {
        Pseudonyms::new(
            &self
                .pseudonym
                .last()
                .expect("a keyring has a pseudonym key")
                .key,
        )
    }

    /// The current pseudonym key's version.
    pub fn version(&self) -> u32 {
        self.pseudonym.last().map_or(0, |k| k.version)
    }

    /// Pseudonyms under every key the ring has held, newest first.
    pub fn all_pseudonyms(&self) -> Vec<Pseudonyms> {
        self.pseudonym
            .iter()
            .rev()
            .map(|k| Pseudonyms::new(&k.key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_changes_tokens_and_keeps_the_audit_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lectern.key");
        let mut ring = Keyring::load_or_create(&path).unwrap();
        let before = ring.pseudonyms().patron_token("P1");
        assert_eq!(
            Keyring::load(&path)
                .unwrap()
                .pseudonyms()
                .patron_token("P1"),
            before,
            "stable under one key"
        );

        let audit = ring.audit_key().to_vec();
        assert_eq!(ring.rotate().unwrap(), 2);
        ring.save(&path).unwrap();
        let ring = Keyring::load(&path).unwrap();
        assert_ne!(ring.pseudonyms().patron_token("P1"), before);
        assert_eq!(ring.audit_key(), audit);
        assert_eq!(
            ring.all_pseudonyms()[1].patron_token("P1"),
            before,
            "the old key is kept for lookups"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn a_damaged_open_or_missing_keyring_is_an_error_never_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lectern.key");
        let err = |path: &Path| Keyring::load(path).unwrap_err().to_string();
        assert!(err(&path).contains("restore it from your backup"));
        assert!(!path.exists(), "no key is made by loading");

        let ring = Keyring::load_or_create(&path).unwrap();
        let fingerprint = ring.fingerprint();
        assert!(fingerprint.starts_with("SHA256:"));
        assert_eq!(Keyring::load(&path).unwrap().fingerprint(), fingerprint);
        assert_eq!(
            ring.audit_head_file().unwrap(),
            dir.path().join("lectern.audit-head")
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(err(&path).contains("chmod 600"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let link = dir.path().join("link.key");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert!(err(&link).contains("is a link"));
        }

        // A raw key, or a keyring cut short, is damaged: never read as a key.
        let raw = dir.path().join("raw.key");
        tempfile::NamedTempFile::new_in(dir.path())
            .unwrap()
            .persist(&raw)
            .unwrap();
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert!(err(&raw).contains("is damaged"));
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&raw, &text[..text.len() / 2]).unwrap();
        assert!(err(&raw).contains("is damaged"));
    }
}
