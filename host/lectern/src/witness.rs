//! The audit log's head, kept outside the store: a small file beside the
//! keyring that says how many entries the log has had and the link of the
//! last, under a MAC of the audit key.
//!
//! The chain inside the store shows an edited or deleted entry, and its
//! anchor shows entries cut from the end. What neither can show is the
//! whole log, anchor included, deleted, or the store put back to an older
//! copy of itself: the store's own record of its length went with it. The
//! head file is where a writer of the database alone cannot reach, so
//! verification compares the two. The head only moves forward; it is
//! written after the store commits, so a crash between the two leaves it
//! behind the log, never ahead of it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What the head file records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    /// The number of the last entry the log has had.
    pub(crate) entries: u64,
    /// That entry's link.
    pub(crate) link: String,
    /// The MAC over both, under the audit key.
    mac: String,
}

/// The head file of one audit log.
pub(crate) struct HeadFile {
    path: PathBuf,
    key: Vec<u8>,
}

impl HeadFile {
    /// The head kept at `path`, under the audit `key`.
    pub(crate) fn new(path: PathBuf, key: &[u8]) -> HeadFile {
        HeadFile {
            path,
            key: key.to_vec(),
        }
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn mac(&self, entries: u64, link: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("lectern audit head\u{1f}{entries}\u{1f}{link}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The recorded head, if the file exists. A file that does not parse or
    /// whose MAC does not hold is an error: someone wrote it who does not
    /// hold the key.
    pub(crate) fn read(&self) -> Result<Option<Head>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the audit head {}", self.path.display())
                });
            }
        };
        let head: Head = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the audit head {} is damaged; restore it from the backup made with the keyring",
                self.path.display()
            )
        })?;
        anyhow::ensure!(
            head.mac == self.mac(head.entries, &head.link),
            "the audit head {} was not written under this keyring's audit key: it was edited, \
             or it belongs to another keyring",
            self.path.display()
        );
        Ok(Some(head))
    }

    /// Records that the log now has `entries` entries, the last with
    /// `link`, unless the file already records as many or more.
    pub(crate) fn advance(&self, entries: u64, link: &str) -> Result<()> {
        if self.read()?.is_some_and(|h| h.entries >= entries) {
            return Ok(());
        }
        let head = Head {
            entries,
            link: link.to_string(),
            mac: self.mac(entries, link),
        };
        write_private(&self.path, &serde_json::to_vec(&head)?)
            .with_context(|| format!("cannot write the audit head {}", self.path.display()))
    }
}

/// Writes `bytes` to `path` in one step, readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // tempfile creates the file 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_only_moves_forward_and_shows_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let file = HeadFile::new(dir.path().join("lectern.audit-head"), b"key");
        assert_eq!(file.read().unwrap(), None);
        file.advance(5, "aa").unwrap();
        file.advance(3, "bb").unwrap();
        let head = file.read().unwrap().unwrap();
        assert_eq!((head.entries, head.link.as_str()), (5, "aa"));
        let text = std::fs::read_to_string(file.path()).unwrap();
        std::fs::write(file.path(), text.replace("\"entries\":5", "\"entries\":1")).unwrap();
        assert!(
            file.read()
                .unwrap_err()
                .to_string()
                .contains("not written under")
        );
        let other = HeadFile::new(file.path().to_path_buf(), b"another key");
        std::fs::write(file.path(), text).unwrap();
        assert!(other.read().is_err());
    }
}
