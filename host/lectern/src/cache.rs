//! The compiled-code cache. Compiled components are native code, so an
//! entry is loaded only if it carries a MAC, under a key kept in the cache
//! directory and readable by its owner alone, over the component's SHA-256
//! and the compiled bytes: an entry swapped for another component's, or
//! edited, is compiled afresh. The directory must belong to the user
//! running the host and be writable by nobody else.
//!
//! Checking that MAC, and hashing the component to find its entry, reads
//! every byte of both: tens of megabytes for a Python or JavaScript
//! plugin. So each check is remembered under a *stamp* of the file it
//! covered (device, inode, size, modification and change times). Any
//! write to a file changes its change time, which only the kernel sets, and
//! a replaced file has a new inode; a stamp that still matches therefore
//! means the same bytes, and the load maps the entry into memory without
//! reading it. A stamp is itself MACed, so it cannot be forged without
//! the key, and a file changed too recently for its times to tell (within
//! [`RACY`]) is never stamped, as git does for its index.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The cache in one directory, with its key.
pub(crate) struct Cache {
    dir: PathBuf,
    key: Vec<u8>,
    /// How recently changed a file must not be, to be stamped: [`RACY`].
    racy: Duration,
}

const MAC_LEN: usize = 32;
/// A stamp: device, inode, size, and the modification and change times
/// in seconds and nanoseconds.
const STAMP_LEN: usize = 7 * 8;
/// A file changed this recently is not stamped: another change within
/// the same clock tick would leave its times as they were.
const RACY: Duration = Duration::from_secs(2);
/// A remembered component hash: its stamp, its SHA-256, the MAC.
const MEMO_LEN: usize = STAMP_LEN + 32 + MAC_LEN;
/// An entry's side file: the MAC over the code, the stamp of the entry
/// when that MAC was last checked, and the MAC of that stamp.
const SIDE_LEN: usize = MAC_LEN + STAMP_LEN + MAC_LEN;
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
            racy: RACY,
        })
    }

    /// The entry for `component` compiled by an engine with compatibility
    /// hash `engine`.
    fn path(&self, engine: u64, component: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{engine:016x}.cwasm", hex::encode(component)))
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn code_mac(&self, component: &[u8; 32], compiled: &[u8]) -> [u8; MAC_LEN] {
        self.hmac(&[b"code", component, compiled])
    }

    fn stamp_mac(&self, what: &[u8], subject: &[u8], stamp: &[u8; STAMP_LEN]) -> [u8; MAC_LEN] {
        self.hmac(&[what, &(subject.len() as u64).to_le_bytes(), subject, stamp])
    }

    /// Where the hash of the component at `real` (a canonical path) is
    /// remembered.
    fn memo_path(&self, real: &Path) -> PathBuf {
        let name: [u8; 32] = Sha256::digest(real.as_os_str().as_encoded_bytes()).into();
        self.dir.join(format!("{}.memo", hex::encode(name)))
    }

    /// The SHA-256 of the component file at `path`, if this host hashed it
    /// before and the file has not changed since.
    pub(crate) fn known_hash(&self, path: &Path) -> Option<[u8; 32]> {
        let real = std::fs::canonicalize(path).ok()?;
        let stamp = stamp(&std::fs::metadata(&real).ok()?)?;
        let memo = read_small(&self.memo_path(&real), MEMO_LEN)?;
        let (kept, rest) = memo.split_at(STAMP_LEN);
        let (hash, mac) = rest.split_at(32);
        let subject = [real.as_os_str().as_encoded_bytes(), hash].concat();
        (kept == stamp && mac == self.stamp_mac(b"memo", &subject, &stamp))
            .then(|| hash.try_into().expect("32 bytes"))
    }

    /// Remembers that the component file at `path`, whose metadata was
    /// `before` when it was read, hashes to `hash`. Nothing is remembered
    /// if the file changed meanwhile or too recently to tell; a memo that
    /// cannot be written only costs the next load a hash.
    pub(crate) fn remember_hash(&self, path: &Path, before: &std::fs::Metadata, hash: &[u8; 32]) {
        let Ok(real) = std::fs::canonicalize(path) else {
            return;
        };
        let (Some(was), Some(now)) = (
            stamp(before),
            std::fs::metadata(&real).ok().as_ref().and_then(stamp),
        ) else {
            return;
        };
        if was != now || racy(before, self.racy) {
            return;
        }
        let subject = [real.as_os_str().as_encoded_bytes(), hash].concat();
        let memo = [&now[..], hash, &self.stamp_mac(b"memo", &subject, &now)].concat();
        if let Err(e) = self.write_atomic(&self.memo_path(&real), &[&memo]) {
            tracing::debug!("not remembering a component's hash: {e:#}");
        }
    }

    /// The entry compiled for `component`, if there is one and its MAC
    /// holds: a file [`wasmtime::component::Component::deserialize_file`]
    /// may map. The reason it is not used otherwise.
    pub(crate) fn get(&self, engine: u64, component: &[u8; 32]) -> Result<Option<PathBuf>> {
        let path = self.path(engine, component);
        let meta = match std::fs::symlink_metadata(&path) {
            Err(_) => return Ok(None),
            Ok(m) if !m.file_type().is_file() => {
                bail!("{} is not a plain file", path.display())
            }
            Ok(m) => m,
        };
        let side_path = side(&path);
        let Some(side) = read_small(&side_path, SIDE_LEN) else {
            bail!("{} has no MAC beside it", path.display());
        };
        let (code_mac, rest) = side.split_at(MAC_LEN);
        let (kept, seen_mac) = rest.split_at(STAMP_LEN);
        let now = stamp(&meta);
        if let Some(now) = now
            && kept == now
            && seen_mac == self.stamp_mac(b"seen", &entry_subject(engine, component), &now)
        {
            used(&side_path);
            return Ok(Some(path));
        }
        // Not checked since it last changed: read it all.
        let compiled = std::fs::read(&path)?;
        if code_mac != self.code_mac(component, &compiled) {
            bail!(
                "{} does not carry this host's MAC for this component: it was edited, swapped \
                 or written by another host",
                path.display()
            );
        }
        if let Some(now) = now
            && !racy(&meta, self.racy)
        {
            let seen = self.stamp_mac(b"seen", &entry_subject(engine, component), &now);
            if let Err(e) = self.write_atomic(&side_path, &[code_mac, &now, &seen]) {
                tracing::debug!("not stamping a checked cache entry: {e:#}");
            }
        }
        Ok(Some(path))
    }

    /// Stores `compiled` for `component`, atomically: a uniquely named
    /// file, renamed into place, then its MAC beside it. Returns the
    /// entry's path.
    pub(crate) fn put(
        &self,
        engine: u64,
        component: &[u8; 32],
        compiled: &[u8],
    ) -> Result<PathBuf> {
        let path = self.path(engine, component);
        self.write_atomic(&path, &[compiled])
            .with_context(|| format!("failed to write the cache entry {}", path.display()))?;
        // The new file is too recent to stamp; the first load that finds
        // it older checks the whole MAC once and stamps it.
        let none = [0u8; STAMP_LEN];
        let code_mac = self.code_mac(component, compiled);
        self.write_atomic(&side(&path), &[&code_mac, &none, &[0u8; MAC_LEN]])
            .with_context(|| format!("failed to write the cache entry {}", path.display()))?;
        Ok(path)
    }

    /// Removes the entries used longest ago until the entries take at most
    /// `max_bytes`, and temporary files that a host killed mid-write left
    /// behind. An entry a running host has mapped stays valid for it; the
    /// next load compiles it again.
    pub(crate) fn prune(&self, max_bytes: u64) -> Result<Pruned> {
        let mut entries = Vec::new();
        let mut pruned = Pruned::default();
        for item in std::fs::read_dir(&self.dir)? {
            let item = item?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let Ok(meta) = item.metadata() else { continue };
            if name.starts_with(".tmp") && is_stale(&meta) {
                if std::fs::remove_file(&path).is_ok() {
                    pruned.removed += 1;
                    pruned.freed_bytes += meta.len();
                }
                continue;
            }
            if !name.ends_with(".cwasm") || !meta.is_file() {
                continue;
            }
            let side = side(&path);
            let side_meta = std::fs::metadata(&side).ok();
            // Last used: a hit touches the side file; else when compiled.
            let last_used = side_meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .or_else(|| meta.modified().ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let size = meta.len() + side_meta.map_or(0, |m| m.len());
            entries.push((last_used, size, path, side));
        }
        entries.sort();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        for (_, size, path, side) in entries {
            if total <= max_bytes {
                pruned.kept += 1;
                pruned.kept_bytes += size;
                continue;
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove the cache entry {}", path.display()))?;
            let _ = std::fs::remove_file(&side);
            total -= size;
            pruned.removed += 1;
            pruned.freed_bytes += size;
        }
        Ok(pruned)
    }

    /// Writes `parts` to `path` through a uniquely named file renamed into
    /// place, so a reader sees the old file or the new one, never half.
    fn write_atomic(&self, path: &Path, parts: &[&[u8]]) -> Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).with_context(|| {
            format!(
                "failed to write to the cache directory {}",
                self.dir.display()
            )
        })?;
        for part in parts {
            std::io::Write::write_all(&mut tmp, part)?;
        }
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// What pruning the cache did ([`Host::prune_cache`](crate::Host::prune_cache)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries (and stale temporary files) removed.
    pub removed: usize,
    /// The bytes they took.
    pub freed_bytes: u64,
    /// Entries kept.
    pub kept: usize,
    /// The bytes they take.
    pub kept_bytes: u64,
}

/// Marks the entry whose side file is `side` as used now, for pruning. The
/// side file is not stamped, so its times are free to change.
fn used(side: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(side) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Whether a temporary file is old enough that no host is still writing it.
fn is_stale(meta: &std::fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > Duration::from_secs(3600))
}

/// The side file holding the MAC of the entry at `entry`.
fn side(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".mac");
    PathBuf::from(name)
}

/// What a stamp of an entry is bound to: the engine and the component.
fn entry_subject(engine: u64, component: &[u8; 32]) -> Vec<u8> {
    [&engine.to_le_bytes()[..], component].concat()
}

/// The whole of a small file that must be exactly `len` bytes long.
fn read_small(path: &Path, len: usize) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// The stamp of a file: what changes whenever its bytes may have. `None`
/// where the platform does not give one; every load then reads the file.
fn stamp(meta: &std::fs::Metadata) -> Option<[u8; STAMP_LEN]> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let fields = [
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ];
        let mut out = [0u8; STAMP_LEN];
        for (chunk, field) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        Some(out)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Whether a file changed so recently that a further change in the same
/// clock tick would not show in its times.
fn racy(meta: &std::fs::Metadata, window: Duration) -> bool {
    #[cfg(unix)]
    let changed = {
        use std::os::unix::fs::MetadataExt as _;
        let ctime = SystemTime::UNIX_EPOCH
            + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
        meta.modified().map_or(ctime, |m| m.max(ctime))
    };
    #[cfg(not(unix))]
    let changed = meta.modified().unwrap_or(SystemTime::now());
    SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age < window)
        || changed > SystemTime::now()
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

    fn hash(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// A cache that stamps files however recent they are; the tests wait
    /// out a clock tick themselves before changing a stamped file.
    fn eager(dir: &Path) -> Cache {
        Cache {
            racy: Duration::ZERO,
            ..Cache::open(dir).unwrap()
        }
    }

    fn tick() {
        std::thread::sleep(Duration::from_millis(30));
    }

    fn stamped(entry: &Path) -> bool {
        std::fs::read(side(entry)).unwrap()[MAC_LEN..MAC_LEN + STAMP_LEN] != [0; STAMP_LEN]
    }

    #[test]
    fn an_entry_swapped_or_edited_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = eager(dir.path());
        let (a, b) = (hash(b"component a"), hash(b"component b"));
        let pa = cache.put(7, &a, b"code of a").unwrap();
        let pb = cache.put(7, &b, b"code of b").unwrap();
        assert!(
            !stamped(&pa),
            "a new entry is checked in full on its first load"
        );
        assert_eq!(cache.get(7, &a).unwrap().as_deref(), Some(pa.as_path()));
        assert!(stamped(&pa), "a checked entry is stamped");
        assert_eq!(std::fs::read(&pa).unwrap(), b"code of a");
        assert_eq!(cache.get(7, &a).unwrap().as_deref(), Some(pa.as_path()));
        // Swap the two entries' code; their side files stay.
        tick();
        let (ea, eb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        std::fs::write(&pa, &eb).unwrap();
        std::fs::write(&pb, &ea).unwrap();
        assert!(cache.get(7, &a).is_err());
        assert!(cache.get(7, &b).is_err());
        // A stamped entry edited in place, same size.
        cache.put(7, &a, b"code of a").unwrap();
        cache.get(7, &a).unwrap();
        assert!(stamped(&pa));
        tick();
        std::fs::write(&pa, b"code of A").unwrap();
        assert!(cache.get(7, &a).is_err(), "the stamp no longer matches");
        // A stamp copied to another entry does not vouch for it.
        let pc = cache.put(7, &hash(b"c"), b"code of a").unwrap();
        cache.put(7, &a, b"code of a").unwrap();
        cache.get(7, &a).unwrap();
        std::fs::copy(side(&pa), side(&pc)).unwrap();
        assert!(cache.get(7, &hash(b"c")).is_err());
        // Another host's key does not vouch for this host's entries.
        let other = Cache {
            key: vec![9; 32],
            ..eager(dir.path())
        };
        assert!(other.get(7, &a).is_err());
        assert_eq!(cache.get(7, &hash(b"component d")).unwrap(), None);
        // An entry without its MAC is not used.
        std::fs::remove_file(side(&pa)).unwrap();
        assert!(cache.get(7, &a).is_err());
    }

    #[test]
    fn pruning_removes_the_entries_used_longest_ago() {
        let dir = tempfile::tempdir().unwrap();
        let cache = eager(dir.path());
        let code = vec![7u8; 1000];
        let paths: Vec<PathBuf> = (0..4u8)
            .map(|i| cache.put(7, &hash(&[i]), &code).unwrap())
            .collect();
        let old = SystemTime::now() - Duration::from_secs(600);
        for (i, p) in paths.iter().enumerate() {
            let f = std::fs::File::options().append(true).open(side(p)).unwrap();
            f.set_modified(old + Duration::from_secs(i as u64)).unwrap();
        }
        // The oldest entry is used now, so the second oldest goes first.
        tick();
        cache.get(7, &hash(&[0])).unwrap();
        cache.get(7, &hash(&[0])).unwrap();
        let each = 1000 + SIDE_LEN as u64;
        let pruned = cache.prune(2 * each).unwrap();
        assert_eq!((pruned.removed, pruned.kept), (2, 2), "{pruned:?}");
        assert_eq!(pruned.kept_bytes, 2 * each);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [true, false, false, true]);
        assert!(!side(&paths[1]).exists());
        assert_eq!(cache.prune(u64::MAX).unwrap().removed, 0);
        assert_eq!(cache.prune(0).unwrap().kept, 0);
    }

    #[test]
    fn a_component_hash_is_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = eager(dir.path());
        let file = dir.path().join("plugin.wasm");
        std::fs::write(&file, b"one").unwrap();
        assert_eq!(cache.known_hash(&file), None);
        let before = std::fs::metadata(&file).unwrap();
        cache.remember_hash(&file, &before, &hash(b"one"));
        assert_eq!(cache.known_hash(&file), Some(hash(b"one")));
        tick();
        std::fs::write(&file, b"two").unwrap();
        assert_eq!(cache.known_hash(&file), None, "same size, new bytes");
        // A file that changed between the stat and the hash is not remembered.
        let before = std::fs::metadata(&file).unwrap();
        tick();
        std::fs::write(&file, b"three").unwrap();
        cache.remember_hash(&file, &before, &hash(b"two"));
        assert_eq!(cache.known_hash(&file), None);
        // Nor is one changed too recently to tell, by a host that waits.
        let careful = Cache::open(dir.path()).unwrap();
        let before = std::fs::metadata(&file).unwrap();
        careful.remember_hash(&file, &before, &hash(b"three"));
        assert_eq!(careful.known_hash(&file), None);
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
