//! The audit log: every read of personal data, by whom, for what, which
//! fields and which patrons, in a chain that shows any edit or deletion.
//!
//! Each entry carries an HMAC-SHA256, under a key the store does not hold,
//! of the previous entry's MAC and its own content. Editing, inserting or
//! deleting an entry breaks the chain from there on, and without the key the
//! chain cannot be recomputed. The log holds references only: patron ids,
//! field names, purposes; never a personal value.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::privacy::{AccessContext, Actor, Field};

/// One read of personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who, and why.
    pub context: AccessContext,
    /// The fields that left the host, in any form.
    pub fields: Vec<Field>,
    /// The patrons, by the library's id.
    pub patrons: Vec<String>,
}

impl AuditEntry {
    /// The canonical text the chain's MAC covers.
    pub(crate) fn canonical(&self) -> String {
        let (kind, actor) = match &self.context.actor {
            Actor::Plugin(id) => ("plugin", id.as_str()),
            Actor::Staff(role) => ("staff", role.as_str()),
            Actor::Channel(name) => ("channel", name.as_str()),
        };
        let fields: Vec<&str> = self.fields.iter().map(|f| f.as_str()).collect();
        // Unit separators: none of these strings can contain one.
        format!(
            "{}\u{1f}{kind}\u{1f}{actor}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.context.purpose,
            fields.join(","),
            self.patrons.join(",")
        )
    }
}

/// The link of one entry: the MAC over the previous link and the entry.
pub(crate) fn link(key: &[u8], previous: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(previous.as_bytes());
    mac.update(&[0x1e]);
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Where the pipeline records reads. Implementations must append in order
/// and make each entry durable with the data read, or fail the read.
pub trait AuditLog: Send + Sync {
    /// Appends one entry.
    fn append(&self, entry: &AuditEntry) -> anyhow::Result<()>;
}

/// What checking the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// The number of the last entry. Entries that retention removed count,
    /// though they are no longer there to check.
    pub entries: u64,
    /// The first entry whose link does not hold, if any: edited, inserted,
    /// or following a deleted one.
    pub broken_at: Option<u64>,
}
