//! What a consortium keeps beside its member libraries: which libraries
//! have joined, the segment counts each has published, and the accounts of
//! staff who read the consortium's aggregates.
//!
//! Nothing here names a patron. A member publishes counts per segment from
//! its own latest run, through its own library (audited in its own chain);
//! the consortium reads only those counts, and hides small ones when it
//! shows them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::StaffStore;

/// One member's published counts of one scorer's latest run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The member library.
    pub library: String,
    /// The scorer whose run was counted.
    pub scorer: String,
    /// Its version.
    pub version: String,
    /// The member's run id.
    pub run: i64,
    /// The run's as-of date.
    pub as_of: NaiveDate,
    /// When the member published.
    pub published_at: DateTime<Utc>,
    /// Readers per segment, unsuppressed: the consortium suppresses when it
    /// shows them.
    pub counts: Vec<(String, usize)>,
}

/// The consortium's own tables. Every method is one transaction.
pub trait ConsortiumStore: StaffStore + Send {
    /// Adds `library` to the members; false if it is one already.
    fn join(&mut self, library: &str, at: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Removes `library` and everything it published; false if it was
    /// not a member.
    fn leave(&mut self, library: &str) -> anyhow::Result<bool>;

    /// The members, by name.
    fn members(&self) -> anyhow::Result<Vec<String>>;

    /// Replaces what `p.library` published for `p.scorer`. Refused unless
    /// the library is a member.
    fn publish(&mut self, p: &Published) -> anyhow::Result<()>;

    /// What the members published for `scorer`, by library.
    fn published(&self, scorer: &str) -> anyhow::Result<Vec<Published>>;
}
