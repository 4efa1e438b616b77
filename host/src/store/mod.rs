//! Where the library's records live. The core reaches storage only through
//! the [`Store`] trait; [`SqliteStore`] is the embedded default, and a store
//! that scales beyond one machine implements the same trait.

mod sqlite;

use chrono::NaiveDate;

pub use sqlite::SqliteStore;

use crate::model::Patron;

/// A patron as an importer hands it over: the host model without the
/// derived activity, plus what only the store keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct PatronRecord {
    /// The patron; `activity` and `interests` are ignored, the store derives
    /// them from loans.
    pub patron: Patron,
    /// Whether the ILS marks the patron active. Inactive and expired patrons
    /// are kept: they are the lapsed readers to win back.
    pub active: bool,
    /// The format it came from, such as `folio`.
    pub source: String,
}

/// A loan, current or returned.
#[derive(Debug, Clone, PartialEq)]
pub struct LoanRecord {
    /// The ILS's loan id.
    pub id: String,
    /// The patron's id.
    pub patron: String,
    /// The item's id, where known.
    pub item: Option<String>,
    /// The title, where known.
    pub title: Option<String>,
    /// The subject or classification, where known.
    pub subject: Option<String>,
    /// When it was borrowed.
    pub loaned_on: NaiveDate,
    /// When it is or was due.
    pub due_on: Option<NaiveDate>,
    /// When it came back; `None` while it is out.
    pub returned_on: Option<NaiveDate>,
    /// Renewals.
    pub renewals: u32,
}

/// A hold (a request).
#[derive(Debug, Clone, PartialEq)]
pub struct HoldRecord {
    /// The ILS's request id.
    pub id: String,
    /// The patron's id.
    pub patron: String,
    /// The title, where known.
    pub title: Option<String>,
    /// When it was placed.
    pub placed_on: NaiveDate,
    /// The ILS's status, such as `Open - Awaiting pickup`.
    pub status: Option<String>,
    /// Where it is picked up.
    pub pickup_branch: Option<String>,
    /// When it expires.
    pub expires_on: Option<NaiveDate>,
}

/// Records written together, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Patrons.
    pub patrons: Vec<PatronRecord>,
    /// Loans; each patron must exist in the store or in this batch.
    pub loans: Vec<LoanRecord>,
    /// Holds; each patron must exist in the store or in this batch.
    pub holds: Vec<HoldRecord>,
}

/// How many records a write added and how many it updated in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Records that were new.
    pub imported: usize,
    /// Records that were already there and were updated.
    pub updated: usize,
}

/// What erasing a patron removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Patron rows (0 or 1).
    pub patrons: usize,
    /// Attribute rows.
    pub attributes: usize,
    /// Loans.
    pub loans: usize,
    /// Holds.
    pub holds: usize,
}

/// The library's records.
pub trait Store {
    /// Writes `batch` in one transaction: all of it, or none of it.
    fn write(&mut self, batch: &Batch) -> anyhow::Result<Written>;

    /// Whether a patron with this id is stored.
    fn has_patron(&self, id: &str) -> anyhow::Result<bool>;

    /// Every patron, with the activity summary as of `as_of`. Interests are
    /// counted from loans of the last 365 days that have a subject.
    fn patrons(&self, as_of: NaiveDate) -> anyhow::Result<Vec<Patron>>;

    /// Removes the patron and everything stored about them.
    fn erase_patron(&mut self, id: &str) -> anyhow::Result<Erased>;
}
