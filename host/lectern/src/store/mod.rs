//! Where the library's records live. The core reaches storage only through
//! these traits, gathered in [`Backend`]: [`Store`] for patrons, import,
//! activity summaries and preferences, [`Outbox`] for the message queue,
//! [`Runs`] for scoring runs, [`Records`] for export, erasure checks and
//! retention, and [`AuditStore`] for the audit log's rows. [`SqliteStore`]
//! is the embedded default; [`PgStore`], for a consortium or a library
//! beyond one machine, implements the same traits and passes the same
//! conformance suite (`lectern::conformance`, behind the `conformance`
//! feature).

mod consortium;
mod demand;
mod outbox;
mod postgres;
mod readers;
mod registry;
mod rows;
mod service;
mod shared;
mod sqlite;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use consortium::{ConsortiumStore, Published};
pub use demand::{Demand, MonthlyLoans, queued};
pub use outbox::{
    ChannelStats, Claimed, Enqueued, MessageState, Outbox, OutboxRow, Queued, Settle,
};

pub use self::postgres::{PgStore, shown as store_shown};
pub use readers::{
    Answer, CampaignMember, CampaignStore, MemberActivity, ReaderLink, Readers, SurveyAnswers,
};
pub use registry::{InstalledPlugin, Registry, TrustedKey};
pub use service::{
    Circulation, HoldFields, Inbox, InboxEvent, InboxRow, InboxStats, JobRun, Jobs, LoanFields,
    Outcome, StaffAccount, StaffStore,
};
pub use shared::{DailyLock, RangeClaim, RangeStored, SharedWork};
pub use sqlite::SqliteStore;

use crate::audit::{AuditAnchor, AuditHead, AuditRow};
use crate::model::{Channel, Patron, Scored};

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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoanRecord {
    /// The ILS's loan id.
    pub id: String,
    /// The patron's id.
    pub patron: String,
    /// The item's barcode where the export gives it, or else the ILS's id
    /// for the item, where known.
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Use of the library on one day that is not a loan: visits through the
/// gate, and e-resource sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UseRecord {
    /// The patron's id.
    pub patron: String,
    /// The day.
    pub on: NaiveDate,
    /// What kind of use.
    pub kind: UseKind,
    /// How many, that day.
    pub count: u32,
}

/// A kind of use that is not a loan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UseKind {
    /// A visit to a branch.
    Visit,
    /// A session on an e-resource.
    Eresource,
}

/// What a write did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// It was new.
    New,
    /// It was there from an earlier import, and was updated.
    Updated,
    /// This import already wrote a record with the same id; nothing changed.
    Duplicate,
}

/// How many records an import added and how many it updated in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Records that were new.
    pub imported: usize,
    /// Records that were already there and were updated.
    pub updated: usize,
}

impl Written {
    /// Counts one [`Put`].
    pub fn count(&mut self, put: Put) {
        match put {
            Put::New => self.imported += 1,
            Put::Updated => self.updated += 1,
            Put::Duplicate => {}
        }
    }
}

/// What erasing a patron removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Patron rows (0 or 1).
    pub patrons: usize,
    /// Attribute rows.
    pub attributes: usize,
    /// Loans.
    pub loans: usize,
    /// Holds.
    pub holds: usize,
    /// Days of visits and e-resource use.
    pub uses: usize,
    /// Scores from scoring runs.
    pub scores: usize,
    /// Messages in the outbox, whatever their state.
    pub messages: usize,
    /// Events the ILS pushed about them, processed or not.
    pub events: usize,
    /// Links to reader pages they were sent.
    pub links: usize,
    /// Survey answers linked to them.
    pub answers: usize,
    /// Campaigns they were in.
    pub campaigns: usize,
    /// Delivered message files (letters, emails in a maildir) removed.
    pub files: usize,
}

/// Which scorer made a run of scores, as of when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoreRun {
    /// The scorer's id.
    pub plugin: String,
    /// The scorer's version.
    pub version: String,
    /// The date the run scored as of.
    pub as_of: NaiveDate,
    /// The patron fields the scorer received, which its reasons may
    /// reveal; `None` for a run stored before Lectern kept them, which is
    /// treated as every field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<crate::privacy::Field>>,
}

/// How long each kind of data is kept, in days, before retention removes
/// it or generalises it.
///
/// | data | default | what happens after |
/// |---|---|---|
/// | returned loans | 1,095 (3 years) | generalised into `aged_loans` (month, subject, category, branch, birth decade), unlinked from the patron |
/// | holds | 365 | removed |
/// | days of visits and e-resource use | 730 | removed |
/// | scoring runs (by their as-of date) | 730 | removed, with their scores |
/// | messages sent, failed or cancelled | 90 | removed from the outbox |
/// | audit log | 2,555 (7 years) | removed; the chain goes on from the last removed entry |
///
/// Current loans are never removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Returned loans.
    pub loan_history: u32,
    /// Holds.
    pub holds: u32,
    /// Days of use.
    pub uses: u32,
    /// Scoring runs.
    pub scores: u32,
    /// Messages in a final state (sent, failed, cancelled), by when they
    /// were queued.
    pub messages: u32,
    /// Audit entries.
    pub audit_log: u32,
    /// Survey answers, by the day they were given. Links to reader pages
    /// go when they expire, with the messages' period after.
    pub survey_answers: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            loan_history: 1095,
            holds: 365,
            uses: 730,
            scores: 730,
            messages: 90,
            audit_log: 2555,
            survey_answers: 730,
        }
    }
}

/// What retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Loans generalised into aged loans.
    pub loans_aged: usize,
    /// Holds removed.
    pub holds_removed: usize,
    /// Days of use removed.
    pub uses_removed: usize,
    /// Scoring runs removed, with their scores.
    pub runs_removed: usize,
    /// Messages removed from the outbox.
    pub messages_removed: usize,
    /// Processed events removed from the inbox, with the messages.
    pub events_removed: usize,
    /// Audit entries removed.
    pub audit_removed: usize,
    /// Survey answers removed.
    pub answers_removed: usize,
    /// Expired links to reader pages removed.
    pub links_removed: usize,
}

/// One import, open as a transaction. Records stream in one at a time, so
/// memory stays flat whatever the size of the import. Dropping it without
/// [`ImportTx::commit`] writes nothing.
pub trait ImportTx {
    /// Writes a patron, keyed by id.
    fn put_patron(&mut self, r: &PatronRecord) -> anyhow::Result<Put>;
    /// Writes a loan, keyed by id. Its patron must exist.
    fn put_loan(&mut self, r: &LoanRecord) -> anyhow::Result<Put>;
    /// Writes a hold, keyed by id. Its patron must exist.
    fn put_hold(&mut self, r: &HoldRecord) -> anyhow::Result<Put>;
    /// Writes a day of use, keyed by patron, day and kind. Its patron must
    /// exist.
    fn put_use(&mut self, r: &UseRecord) -> anyhow::Result<Put>;
    /// Whether the patron exists, counting what this import wrote.
    fn has_patron(&mut self, id: &str) -> anyhow::Result<bool>;
    /// The id of the patron who holds card number `card`, if one does.
    fn card_holder(&mut self, card: &str) -> anyhow::Result<Option<String>>;
    /// Gives patron `from`, and everything stored about them, the id `to`,
    /// which no patron has.
    fn rekey_patron(&mut self, from: &str, to: &str) -> anyhow::Result<()>;
    /// Whether any patron was erased before this import began: when none
    /// was, no record needs its token made and looked up.
    fn has_tombstones(&self) -> bool;
    /// Whether a patron with this keyed token was erased.
    fn is_erased(&mut self, token: &str) -> anyhow::Result<bool>;
    /// Lifts the erasure tombstone `token`: the library imports the patron
    /// again on purpose.
    fn readmit(&mut self, token: &str) -> anyhow::Result<()>;
    /// Makes the import permanent, with its counts recorded as an import run.
    fn commit(self: Box<Self>, written: Written, skipped: usize) -> anyhow::Result<()>;
}

/// The library's records.
pub trait Store {
    /// Starts an import of `format`.
    fn import(&mut self, format: &str) -> anyhow::Result<Box<dyn ImportTx + '_>>;

    /// Whether a patron with this id is stored.
    fn has_patron(&self, id: &str) -> anyhow::Result<bool>;

    /// Every patron, with the activity summary as of `as_of`. Interests are
    /// counted from loans of the last 365 days that have a subject.
    fn patrons(&self, as_of: NaiveDate) -> anyhow::Result<Vec<Patron>>;

    /// The same, `batch` patrons at a time in order of id, so that memory is
    /// bounded by the batch, not by the library.
    fn for_each_patron(
        &self,
        as_of: NaiveDate,
        batch: usize,
        f: &mut dyn FnMut(Vec<Patron>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// Splits the patrons, in order of id, into ranges of at most `batch`:
    /// the first and last id of each, both included.
    fn patron_ranges(&self, batch: usize) -> anyhow::Result<Vec<(String, String)>>;

    /// A second handle for reading patrons on another thread.
    fn patron_reader(&self) -> anyhow::Result<Box<dyn PatronReader>>;

    /// Removes the patron and everything stored about them, and keeps
    /// `tombstones` (keyed tokens of their id and of their card number) so
    /// that a later import, keyed either way, does not bring them back
    /// unasked.
    fn erase_patron(&mut self, id: &str, tombstones: &[String]) -> anyhow::Result<Erased>;

    /// One patron with their activity summary as of `as_of`, and their
    /// segments.
    fn patron(&self, id: &str, as_of: NaiveDate) -> anyhow::Result<Option<Patron>>;

    /// The patrons among `ids` that exist, each as [`Store::patron`] gives
    /// them, in any order: what reads the recipients of a day's notices in
    /// a few statements rather than one each.
    fn patrons_among(&self, ids: &[String], as_of: NaiveDate) -> anyhow::Result<Vec<Patron>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.patron(id, as_of)?);
        }
        Ok(out)
    }

    /// Loans that are out (not returned) and due on or before `due_by`,
    /// oldest due date first.
    fn open_loans(&self, due_by: NaiveDate) -> anyhow::Result<Vec<OpenLoan>>;

    /// How many holds wait in the queue for each title: placed, neither
    /// ready for pickup nor in transit to it, and not finished.
    fn holds_queued(&self) -> anyhow::Result<std::collections::HashMap<String, u32>>;

    /// Holds whose status says they wait for pickup (FOLIO's `Open -
    /// Awaiting pickup`, Koha's `W` or `waiting`, or `ready`).
    fn holds_waiting(&self) -> anyhow::Result<Vec<HoldRecord>>;

    /// Patrons whose membership expires from `from` to `to`, both included.
    fn memberships_expiring(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<(String, NaiveDate)>>;

    /// Which patrons borrowed in each of `subjects` in the 365 days up to
    /// `as_of`: pairs of patron id and subject. This reads reading history;
    /// callers use it only for patrons who consented to that.
    fn readers_of(
        &self,
        subjects: &[String],
        as_of: NaiveDate,
    ) -> anyhow::Result<Vec<(String, String)>>;

    /// The patrons that the latest run of `scorer` put in `segment`.
    fn segment_members(&self, scorer: &str, segment: &str) -> anyhow::Result<Vec<String>>;

    /// The patrons who asked for current-awareness digests from the
    /// preference centre, by id.
    fn awareness_readers(&self) -> anyhow::Result<Vec<String>>;

    /// The patron's messaging preferences; `None` if there is no such patron.
    fn preferences(&self, id: &str) -> anyhow::Result<Option<Preferences>>;

    /// Replaces the patron's messaging preferences. In the same transaction,
    /// queued marketing is cancelled if they opted out of it, and queued
    /// messages on channels they opted out of are cancelled. Returns how
    /// many messages were cancelled.
    fn set_preferences(&mut self, id: &str, prefs: &Preferences) -> anyhow::Result<usize>;
}

/// A loan that is out, as notices need it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoan {
    /// The ILS's loan id.
    pub id: String,
    /// The patron's id.
    pub patron: String,
    /// The title, where known.
    pub title: Option<String>,
    /// The item's barcode where the export gives it, or else the ILS's id
    /// for the item, where known.
    pub item: Option<String>,
    /// When it is due.
    pub due_on: NaiveDate,
    /// Renewals so far.
    pub renewals: u32,
}

/// A patron's messaging preferences. Lectern keeps them itself: an import
/// from the ILS never changes them, so an opt-out stays an opt-out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct Preferences {
    /// Days of notice before a due date, as Koha's advance notice; `None`
    /// takes the library's default.
    pub notice_days: Option<u32>,
    /// One message a day per channel, gathering the day's notices.
    pub digest: bool,
    /// Channels the patron does not want to be reached on.
    pub opted_out: Vec<Channel>,
    /// The patron opted out of marketing, whatever the ILS says.
    pub no_marketing: bool,
    /// The patron withdrew consent to the use of their reading history,
    /// whatever the ILS says.
    pub no_reading_history: bool,
    /// The language the patron chose for their messages (a BCP 47 tag),
    /// over the ILS's.
    pub locale: Option<String>,
    /// The patron asked for current-awareness digests, which key readers
    /// get without asking.
    #[serde(default)]
    pub awareness: bool,
}

/// A scoring run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRun {
    /// The run's id.
    pub id: i64,
    /// Which scorer, as of when.
    #[serde(flatten)]
    pub run: ScoreRun,
    /// How many patrons it scored.
    pub patrons: usize,
}

/// One patron's score in a stored run, with the coarse fields reports group
/// by.
#[derive(Debug, Clone, PartialEq)]
pub struct RunScore {
    /// The patron's id.
    pub patron: String,
    /// The score.
    pub value: f32,
    /// The segment.
    pub segment: String,
    /// The reasons.
    pub reasons: Vec<String>,
    /// The patron's category.
    pub category: Option<String>,
    /// The patron's home branch.
    pub home_branch: Option<String>,
}

/// A run being stored. Scores go in a batch at a time as they are made, so
/// memory holds one batch and not the library; the run becomes visible,
/// whole, only at [`RunWriter::commit`]. Dropped before that, it removes
/// what it wrote; a process killed mid-run leaves a run no reader sees,
/// which a later [`Runs::begin_run`] removes.
pub trait RunWriter: Send {
    /// Stores a batch of scores.
    fn append(&mut self, scores: &[Scored]) -> anyhow::Result<()>;

    /// Makes the run visible, with every score appended; returns its id.
    fn commit(self: Box<Self>) -> anyhow::Result<i64>;
}

/// A handle that reads patrons with their summaries, for a thread of its
/// own: a run reads several id ranges at once, each on its own handle.
pub trait PatronReader: Send {
    /// The patrons with ids from `lo` to `hi`, both included, in order of
    /// id, with their activity summaries as of `as_of`.
    fn patrons_between(&self, lo: &str, hi: &str, as_of: NaiveDate) -> anyhow::Result<Vec<Patron>>;
}

/// Scoring runs: each one stored whole or not at all.
pub trait Runs {
    /// Starts storing `run`; see [`RunWriter`].
    fn begin_run(&self, run: &ScoreRun) -> anyhow::Result<Box<dyn RunWriter>>;

    /// Stores one run, all of it or nothing: a run that fails or is stopped
    /// leaves the earlier runs as they were. Returns the run's id.
    fn save_run(&mut self, run: &ScoreRun, scores: &[Scored]) -> anyhow::Result<i64> {
        let mut writer = self.begin_run(run)?;
        writer.append(scores)?;
        writer.commit()
    }

    /// Every stored run, newest first.
    fn runs(&self) -> anyhow::Result<Vec<StoredRun>>;

    /// The `n` latest runs of `scorer`, newest first.
    fn latest_runs(&self, scorer: &str, n: usize) -> anyhow::Result<Vec<StoredRun>>;

    /// The scores of run `id`, highest first, then by patron id.
    fn run_scores(&self, id: i64) -> anyhow::Result<Vec<RunScore>>;
}

/// A patron's score in one run, in their export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredScore {
    /// The run's id.
    pub run: i64,
    /// Which scorer, as of when.
    #[serde(flatten)]
    pub scorer: ScoreRun,
    /// The score.
    pub value: f32,
    /// The segment.
    pub segment: String,
    /// The reasons.
    pub reasons: Vec<String>,
}

/// A message to the patron, in their export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMessage {
    /// The kind of event it is about.
    pub event_kind: String,
    /// The channel.
    pub channel: String,
    /// The language it is written in.
    pub locale: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// Where it is: queued, sending, sent, failed or cancelled.
    pub state: MessageState,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error or why it was cancelled.
    pub last_error: Option<String>,
    /// The library's day it was queued for.
    pub day: NaiveDate,
}

/// Everything a store holds about one patron, by section: what an export
/// hands the patron, and what an erasure must leave nothing of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatronData {
    /// The record with its attributes, and the activity summary derived
    /// from their loans and use.
    pub patron: Patron,
    /// Whether the ILS marks them active.
    pub active: bool,
    /// The format the record came from.
    pub source: String,
    /// Their messaging preferences, as Lectern keeps them.
    pub preferences: Preferences,
    /// Every loan, oldest first.
    pub loans: Vec<LoanRecord>,
    /// Every hold, oldest first.
    pub holds: Vec<HoldRecord>,
    /// Every day of use, oldest first.
    pub uses: Vec<UseRecord>,
    /// Their score in every stored run.
    pub scores: Vec<StoredScore>,
    /// Every message to them in the outbox.
    pub messages: Vec<StoredMessage>,
}

/// The audit chain's new anchor after retention, from the last removed
/// entry (number and link) and the last entry left, if any.
pub type Reanchor<'a> = dyn Fn((u64, String), Option<(u64, String)>) -> AuditAnchor + 'a;

/// What a store holds about each patron, as a whole, and what retention
/// removes.
pub trait Records {
    /// Everything stored about patron `id`, with the activity summary as of
    /// `as_of`; `None` if there is no such patron.
    fn patron_data(&self, id: &str, as_of: NaiveDate) -> anyhow::Result<Option<PatronData>>;

    /// Where the store still holds `id` in any form: the names of the
    /// tables, collections or keys. Empty after the patron was erased;
    /// this is how an erasure is checked, by the store that knows its own
    /// layout.
    fn traces_of(&self, id: &str) -> anyhow::Result<Vec<String>>;

    /// How many patrons are stored.
    fn patron_count(&self) -> anyhow::Result<usize>;

    /// Applies `retention` as of `as_of`, in one transaction. When audit
    /// entries go, `reanchor` gives the chain's new anchor from the last
    /// removed entry (number and link) and the last entry left, if any.
    fn apply_retention(
        &mut self,
        as_of: NaiveDate,
        retention: &Retention,
        reanchor: &Reanchor<'_>,
    ) -> anyhow::Result<Retained>;
}

/// The audit log's rows and anchor. The chain's text, links and anchor are
/// computed by the core, never here: a backend stores and returns rows.
pub trait AuditStore: Send {
    /// In one transaction: reads the head, asks `next` for the row and the
    /// anchor that follow it, and writes both.
    fn append_audit(
        &mut self,
        next: &mut dyn FnMut(&AuditHead) -> (AuditRow, AuditAnchor),
    ) -> anyhow::Result<()>;

    /// Hands every row to `each` in order of number, and returns the
    /// anchor, if one was ever written.
    fn read_audit(
        &self,
        each: &mut dyn FnMut(AuditRow) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<AuditAnchor>>;

    /// The rows that name any of `tokens` among their patrons, in order.
    fn audit_rows_naming(&self, tokens: &[String]) -> anyhow::Result<Vec<AuditRow>>;

    /// The link of entry `seq`: its row's, or the anchor's base link when
    /// `seq` is the last entry retention removed; `None` when neither is
    /// there.
    fn audit_link(&self, seq: u64) -> anyhow::Result<Option<String>>;

    /// The fingerprint of the keyring the store was made with, once one
    /// is recorded.
    fn key_fingerprint(&self) -> anyhow::Result<Option<String>>;

    /// Records the keyring's fingerprint, unless one is recorded already:
    /// a store records one only once, and never replaces it.
    fn set_key_fingerprint(&mut self, fingerprint: &str) -> anyhow::Result<()>;
}

/// A complete store: what [`crate::Lectern`] opens.
pub trait Backend:
    Store
    + Outbox
    + Runs
    + Records
    + AuditStore
    + Registry
    + StaffStore
    + Inbox
    + Jobs
    + CampaignStore
    + SharedWork
    + Demand
    + Send
{
    /// A second handle on the same audit log, for appends from pipelines
    /// that run beside the store's own work (a scoring thread, a
    /// deliverer).
    fn audit_handle(&self) -> anyhow::Result<Box<dyn AuditStore>>;

    /// Which store this is, for messages: a file's path, a database's name.
    fn describe(&self) -> String;

    /// The consortium this store's library may belong to: its tables on
    /// the same server, beside the member libraries. `None` for a store
    /// that cannot hold one (a SQLite file serves one library).
    fn consortium(&self) -> anyhow::Result<Option<Box<dyn ConsortiumStore>>> {
        Ok(None)
    }

    /// The member library this store holds, on a server that holds
    /// several; `None` for a store of one library.
    fn member_library(&self) -> Option<String> {
        None
    }
}
