//! What the service keeps in the store: staff accounts, the inbox of
//! events the ILS pushed, and the history of scheduled jobs.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{HoldRecord, LoanRecord};

/// A staff account: a name, a role the privacy policy declares, and the
/// hash of its token. The token itself is shown once, when it is made, and
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffAccount {
    /// The account's name, unique in the library.
    pub name: String,
    /// The role every request with its token acts as.
    pub role: String,
    /// The token's public prefix, which finds the account; the rest of the
    /// token is secret.
    pub key_id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its token stops working; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Staff accounts. Every method is one transaction.
pub trait StaffStore {
    /// Adds an account with the SHA-256 (hex) of its token, or gives a
    /// revoked account's name a new one; false if an account of that name
    /// is in use.
    fn add_staff(&mut self, account: &StaffAccount, token_sha256: &str) -> anyhow::Result<bool>;

    /// Every account, by name.
    fn staff_accounts(&self) -> anyhow::Result<Vec<StaffAccount>>;

    /// The account whose token has the public prefix `key_id`, with its
    /// token's hash.
    fn staff_by_key(&self, key_id: &str) -> anyhow::Result<Option<(StaffAccount, String)>>;

    /// Revokes the account `name` at `at`; false if there is no such
    /// account or it was revoked already.
    fn revoke_staff(&mut self, name: &str, at: DateTime<Utc>) -> anyhow::Result<bool>;
}

/// A change to the library's records that an ILS event brings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Circulation {
    /// A loan, new or updated: written whole.
    Loan(LoanFields),
    /// A loan came back.
    Returned {
        /// The ILS's loan id.
        loan: String,
        /// The day.
        on: NaiveDate,
    },
    /// A loan's due date moved: a renewal or a change at the desk.
    DueDate {
        /// The ILS's loan id.
        loan: String,
        /// The new due date.
        due_on: NaiveDate,
        /// Renewals so far, where the ILS says.
        renewals: Option<u32>,
    },
    /// A hold, new or updated: written whole.
    Hold(HoldFields),
    /// A hold changed state: waiting for pickup, cancelled, filled.
    HoldState {
        /// The ILS's hold id.
        hold: String,
        /// The new status, in the words the store uses for holds
        /// (`waiting`, `cancelled`, `filled`, `placed`).
        status: String,
        /// Until when it waits, where the ILS says.
        expires_on: Option<NaiveDate>,
    },
}

/// A loan as an event carries it: the store's record, without the patron,
/// which the event names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoanFields {
    /// The ILS's loan id.
    pub id: String,
    /// The item's barcode or id.
    pub item: Option<String>,
    /// The title.
    pub title: Option<String>,
    /// The subject.
    pub subject: Option<String>,
    /// When it was borrowed.
    pub loaned_on: NaiveDate,
    /// When it is due.
    pub due_on: Option<NaiveDate>,
    /// When it came back.
    pub returned_on: Option<NaiveDate>,
    /// Renewals so far.
    #[serde(default)]
    pub renewals: u32,
}

/// A hold as an event carries it, without the patron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldFields {
    /// The ILS's hold id.
    pub id: String,
    /// The title.
    pub title: Option<String>,
    /// When it was placed.
    pub placed_on: NaiveDate,
    /// The status (`placed`, `waiting`, `cancelled`, `filled`).
    pub status: Option<String>,
    /// Where it is picked up.
    pub pickup_branch: Option<String>,
    /// Until when it waits.
    pub expires_on: Option<NaiveDate>,
}

impl LoanFields {
    /// The store's record of this loan for `patron`.
    pub fn record(&self, patron: &str) -> LoanRecord {
        LoanRecord {
            id: self.id.clone(),
            patron: patron.to_string(),
            item: self.item.clone(),
            title: self.title.clone(),
            subject: self.subject.clone(),
            loaned_on: self.loaned_on,
            due_on: self.due_on,
            returned_on: self.returned_on,
            renewals: self.renewals,
        }
    }
}

impl HoldFields {
    /// The store's record of this hold for `patron`.
    pub fn record(&self, patron: &str) -> HoldRecord {
        HoldRecord {
            id: self.id.clone(),
            patron: patron.to_string(),
            title: self.title.clone(),
            placed_on: self.placed_on,
            status: self.status.clone(),
            pickup_branch: self.pickup_branch.clone(),
            expires_on: self.expires_on,
        }
    }
}

/// An event as the ILS pushed it, reduced to what the library keeps: who,
/// when, and the change it brings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxEvent {
    /// Which ILS or connection sent it (`koha`, `folio`, `alma`,
    /// `evergreen`, or an `ils` account's own name).
    pub source: String,
    /// The sender's id for it: the same id from the same source is the
    /// same event, accepted once.
    pub id: String,
    /// What happened, in the sender's words (`checkout`, `ITEM_CHECKED_IN`,
    /// `LOAN_RETURNED`), for the job history.
    pub kind: String,
    /// When it happened, as the sender says.
    pub at: DateTime<Utc>,
    /// The patron's id in the ILS; `None` for an anonymised event, which is
    /// kept with no link to anyone.
    pub patron: Option<String>,
    /// The change to the records; `None` for an event that changes none.
    pub change: Option<Circulation>,
}

/// An accepted event, waiting or processed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxRow {
    /// Its place in the inbox: events are processed in this order.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: InboxEvent,
    /// When it was accepted.
    pub received_at: DateTime<Utc>,
}

/// What processing made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Its change was written.
    Applied,
    /// It names a patron or a record the store does not hold, or changes
    /// nothing: kept, and counted, but nothing was written.
    Skipped,
}

/// How many events the inbox holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InboxStats {
    /// Accepted and not yet processed.
    pub pending: usize,
    /// Processed, their change written.
    pub applied: usize,
    /// Processed, nothing to write.
    pub skipped: usize,
    /// Processed, their notices not yet queued.
    pub unnotified: usize,
}

/// The inbox: every event accepted is committed before the sender hears
/// so, and processed once.
pub trait Inbox {
    /// Commits `event`; false if an event with its source and id was
    /// accepted before, in which case nothing changes.
    fn accept_event(&mut self, event: &InboxEvent, at: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Up to `n` events not yet processed, oldest first.
    fn pending_events(&self, n: usize) -> anyhow::Result<Vec<InboxRow>>;

    /// In one transaction: writes event `seq`'s change, if it has one and
    /// its patron and records are there, and marks it processed. An event
    /// processed already is left alone, so a second call changes nothing.
    fn apply_event(&mut self, seq: i64, at: DateTime<Utc>) -> anyhow::Result<Option<Outcome>>;

    /// Up to `n` processed events whose notices are not yet queued, oldest
    /// first.
    fn unnotified_events(&self, n: usize) -> anyhow::Result<Vec<InboxRow>>;

    /// Marks event `seq`'s notices as queued.
    fn mark_notified(&mut self, seq: i64) -> anyhow::Result<()>;

    /// Counts of the inbox by state.
    fn inbox_stats(&self) -> anyhow::Result<InboxStats>;

    /// Puts back in line the events skipped for a patron the store did
    /// not hold then and holds now: after an import brought the patron,
    /// their earlier checkouts and holds apply. Returns how many.
    fn requeue_skipped(&mut self) -> anyhow::Result<usize>;

    /// The loan `id`, as stored.
    fn loan(&self, id: &str) -> anyhow::Result<Option<LoanRecord>>;

    /// The hold `id`, as stored.
    fn hold(&self, id: &str) -> anyhow::Result<Option<HoldRecord>>;
}

/// One run of a scheduled job, as its history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// The run's number.
    pub id: i64,
    /// Which job: `sync`, `score`, `notify`, `deliver`, `retention`,
    /// `inbox`.
    pub job: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while it runs, or if the process died in it.
    pub ended_at: Option<DateTime<Utc>>,
    /// `running`, `ok` or `failed`.
    pub state: String,
    /// What it did, or why it failed: counts and messages, never patron
    /// data.
    pub summary: String,
}

/// The history of scheduled jobs.
pub trait Jobs {
    /// Records that `job` started at `at`; returns the run's number.
    fn start_job(&mut self, job: &str, at: DateTime<Utc>) -> anyhow::Result<i64>;

    /// Records how run `id` ended.
    fn end_job(
        &mut self,
        id: i64,
        at: DateTime<Utc>,
        ok: bool,
        summary: &str,
    ) -> anyhow::Result<()>;

    /// The newest `n` runs, of `job` if given, newest first.
    fn job_runs(&self, job: Option<&str>, n: usize) -> anyhow::Result<Vec<JobRun>>;
}
