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
//! under them. A plain file of at least 16 bytes also works as a keyring
//! with a single key for both uses.

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
        })
    }

    /// Reads the keyring at `path`.
    pub fn load(path: &Path) -> crate::Result<Keyring> {
        Keyring::load_inner(path).map_err(crate::Error::config)
    }

    fn load_inner(path: &Path) -> Result<Keyring> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read the keyring {}", path.display()))?;
        if let Ok(ring) = serde_json::from_slice::<Keyring>(&bytes) {
            anyhow::ensure!(
                !ring.pseudonym.is_empty(),
                "the keyring {} has no pseudonym key",
                path.display()
            );
            return Ok(ring);
        }
        anyhow::ensure!(
            bytes.len() >= 16,
            "{} is neither a keyring nor a key of at least 16 bytes; use 32 random bytes",
            path.display()
        );
        Ok(Keyring {
            audit: bytes.clone(),
            pseudonym: vec![PseudonymKey {
                version: 1,
                key: bytes,
                created: chrono::NaiveDate::MIN,
            }],
        })
    }

    /// Reads the keyring at `path`, making one the first time.
    pub fn load_or_create(path: &Path) -> crate::Result<Keyring> {
        Keyring::load_or_create_inner(path).map_err(crate::Error::config)
    }

    fn load_or_create_inner(path: &Path) -> Result<Keyring> {
        if !path.exists() {
            let ring = Keyring::generate_inner()?;
            ring.save_inner(path)?;
            return Ok(ring);
        }
        Keyring::load_inner(path)
    }

    /// Writes the keyring, readable by its owner only, replacing the file in
    /// one step.
    pub fn save(&self, path: &Path) -> crate::Result<()> {
        self.save_inner(path).map_err(crate::Error::config)
    }

    fn save_inner(&self, path: &Path) -> Result<()> {
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
        tmp.persist(path)
            .with_context(|| format!("failed to write the keyring {}", path.display()))?;
        Ok(())
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
    fn a_plain_key_file_is_a_keyring_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.key");
        std::fs::write(&path, [7u8; 32]).unwrap();
        let ring = Keyring::load(&path).unwrap();
        assert_eq!(ring.audit_key(), [7u8; 32]);
        assert_eq!(
            ring.pseudonyms().patron_token("P1"),
            Pseudonyms::new(&[7u8; 32]).patron_token("P1")
        );
        std::fs::write(&path, b"short").unwrap();
        assert!(
            Keyring::load(&path)
                .unwrap_err()
                .to_string()
                .contains("at least 16 bytes")
        );
    }
}
