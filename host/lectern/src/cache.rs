//! The compiled-code cache. Compiled components are native code, so an
//! entry is loaded only if it carries a MAC, under a key kept in the cache
//! directory and readable by its owner alone, over the component's SHA-256
//! and the compiled bytes: an entry swapped for another component's, or
//! edited, is compiled afresh. The directory must belong to the user
//! running the host and be writable by nobody else.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The cache in one directory, with its key.
pub(crate) struct Cache {
    dir: PathBuf,
    key: Vec<u8>,
}

const MAC_LEN: usize = 32;

impl Cache {
    /// Opens the cache in `dir`, making it (mode 0700) and its key the
    /// first time; refuses a directory someone else could write to.
    pub(crate) fn open(dir: &Path) -> Result<Cache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create the cache directory {}", dir.display()))?;
        check_private(dir)?;
        let key_path = dir.join("cache.key");
        let key = match std::fs::symlink_metadata(&key_path) {
            Ok(m) if m.file_type().is_file() => std::fs::read(&key_path)
                .with_context(|| format!("failed to read {}", key_path.display()))?,
            Ok(_) => bail!(
                "{} is not a plain file; remove it and the host makes a new key",
                key_path.display()
            ),
            Err(_) => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("no randomness for the cache key: {e}"))?;
                let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
                #[cfg(unix)]
                std::fs::set_permissions(
                    tmp.path(),
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
                std::io::Write::write_all(&mut tmp, &key)?;
                // Another host may have made one meanwhile: theirs wins.
                match tmp.persist_noclobber(&key_path) {
                    Ok(_) => key,
                    Err(_) => std::fs::read(&key_path)?,
                }
            }
        };
        if key.len() < 16 {
            bail!("{} is too short to be a key; remove it", key_path.display());
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// The entry for `component` compiled by an engine with compatibility
    /// hash `engine`.
    fn path(&self, engine: u64, component: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{engine:016x}.cwasm", hex::encode(component)))
    }

    fn mac(&self, component: &[u8; 32], compiled: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(component);
        mac.update(compiled);
        mac.finalize().into_bytes().into()
    }

    /// The compiled bytes for `bytes`, if an entry is there and its MAC
    /// holds; the reason it is not used otherwise.
    pub(crate) fn get(&self, engine: u64, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let component: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.path(engine, &component);
        match std::fs::symlink_metadata(&path) {
            Err(_) => return Ok(None),
            Ok(m) if !m.file_type().is_file() => {
                bail!("{} is not a plain file", path.display())
            }
            Ok(_) => {}
        }
        let mut entry = std::fs::read(&path)?;
        if entry.len() < MAC_LEN {
            bail!("{} is truncated", path.display());
        }
        let compiled = entry.split_off(MAC_LEN);
        if entry != self.mac(&component, &compiled) {
            bail!(
                "{} does not carry this host's MAC for this component: it was edited, swapped \
                 or written by another host",
                path.display()
            );
        }
        Ok(Some(compiled))
    }

    /// Stores `compiled` for `bytes`, atomically: a uniquely named file,
    /// renamed into place.
    pub(crate) fn put(&self, engine: u64, bytes: &[u8], compiled: &[u8]) -> Result<()> {
        let component: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.path(engine, &component);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).with_context(|| {
            format!(
                "failed to write to the cache directory {}",
                self.dir.display()
            )
        })?;
        std::io::Write::write_all(&mut tmp, &self.mac(&component, compiled))?;
        std::io::Write::write_all(&mut tmp, compiled)?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("failed to write the cache entry {}", path.display()))?;
        Ok(())
    }
}

/// Refuses a cache directory that is a link, belongs to another user, or
/// that others may write to.
fn check_private(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        bail!(
            "the cache directory {} is a symbolic link; name the directory itself",
            dir.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let me = rustix::process::getuid().as_raw();
        if meta.uid() != me {
            bail!(
                "the cache directory {} belongs to user {}, not to this user ({me}); compiled \
                 code is loaded from it, so use a directory of your own",
                dir.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o022 != 0 {
            bail!(
                "the cache directory {} is writable by others (mode {:o}); compiled code is \
                 loaded from it, so run `chmod go-w` on it or use another",
                dir.display(),
                meta.mode() & 0o777
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_swapped_or_edited_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.put(7, b"component a", b"code of a").unwrap();
        cache.put(7, b"component b", b"code of b").unwrap();
        assert_eq!(
            cache.get(7, b"component a").unwrap().as_deref(),
            Some(&b"code of a"[..])
        );
        // Swap the two entries' files.
        let a = cache.path(7, &Sha256::digest(b"component a").into());
        let b = cache.path(7, &Sha256::digest(b"component b").into());
        let (ea, eb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::write(&a, &eb).unwrap();
        std::fs::write(&b, &ea).unwrap();
        assert!(cache.get(7, b"component a").is_err());
        // An entry with its code edited.
        cache.put(7, b"component a", b"code of a").unwrap();
        let mut edited = std::fs::read(&a).unwrap();
        *edited.last_mut().unwrap() ^= 1;
        std::fs::write(&a, &edited).unwrap();
        assert!(cache.get(7, b"component a").is_err());
        // Another host's key does not vouch for this host's entries.
        let other = Cache {
            dir: dir.path().to_path_buf(),
            key: vec![9; 32],
        };
        cache.put(7, b"component a", b"code of a").unwrap();
        assert!(other.get(7, b"component a").is_err());
        assert_eq!(cache.get(7, b"component c").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Cache::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("writable by others (mode 777)"), "{err}");
        let link = tempfile::tempdir().unwrap();
        let path = link.path().join("cache");
        std::os::unix::fs::symlink(dir.path(), &path).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(Cache::open(&path).is_err());
    }
}
