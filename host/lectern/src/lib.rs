//! Lectern: customer relationship management for libraries, as a host for
//! sandboxed WebAssembly plugins.
//!
//! An integrated library system (ILS) embeds this crate to score its
//! patrons, compose notices and filter what each purpose and staff role may
//! see. Each of those jobs is a plugin: a WebAssembly component written
//! against the `lectern:crm@0.1.0` contract in `wit/`, loaded beside its
//! `plugin.toml`. Plugins get no files, network, environment or clock, only
//! the patron fields their manifest declares and the privacy policy allows,
//! and a plugin that hangs, panics or runs out of memory fails alone.
//!
//! Embedding it takes a few lines:
//!
//! ```no_run
//! use lectern::{Host, Patron, Pipeline};
//!
//! fn main() -> anyhow::Result<()> {
//!     let host = Host::builder().cache_dir("/var/cache/lectern").build()?;
//!     let engagement = host.load_scorer("plugins/engagement")?;
//!     let policy = host.load_privacy_filter("plugins/baseline-privacy")?;
//!     let pipeline = Pipeline::new()
//!         .with_policy(policy)
//!         .as_of(chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
//!
//!     // Patrons as the ILS holds them; the plugin sees only a projection.
//!     let patrons: Vec<Patron> = lectern::read_jsonl("patrons.jsonl".as_ref())?;
//!
//!     for s in pipeline.score(&engagement, &patrons)? {
//!         println!("{} {:5.1} {:12} {}", s.patron, s.value, s.segment, s.reasons.join("; "));
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The pieces an embedder reaches for:
//!
//! - [`Host`] loads plugins ([`Scorer`], [`Messenger`], [`PrivacyFilter`]);
//!   [`Pipeline`] runs them with the privacy policy, consent and the audit
//!   log applied to every record.
//! - [`Store`] is where records live; [`SqliteStore`] is the embedded
//!   default. [`import()`] reads FOLIO, Koha and CSV exports into any store;
//!   [`generate()`] writes a synthetic library.
//! - [`detect`] finds the notices due in a store, [`notify`] composes them
//!   through messenger plugins and queues them in the [`Outbox`], and a
//!   [`Deliverer`] sends them by SMTP, signed webhook or maildir;
//!   [`Config`] reads `lectern.toml`.
//! - [`segment_report`] and [`ReaderList`] turn stored runs into reports;
//!   [`Keyring`] holds the keys for pseudonyms and the audit chain.
//!
//! See `ARCHITECTURE.md` for how the pieces fit, and [`Limits`] and
//! [`HostBuilder`] for every default.

mod audit;
mod bindings;
mod config;
mod deliver;
mod error;
mod generate;
mod host;
mod import;
mod input;
mod keys;
mod limits;
mod log;
mod manifest;
mod model;
mod notify;
mod pipeline;
mod plugin;
mod privacy;
mod report;
mod runtime;
mod store;

pub use crate::audit::{AuditCheck, AuditEntry, AuditLog};
pub use crate::config::{
    Clock, Config, DeliveryRules, NoticeRules, Secret, SmtpTls, TransportConfig, local_day,
    quiet_until,
};
pub use crate::deliver::{
    DeliverReport, Deliverer, Maildir, Outgoing, SendError, Smtp, Transport, Until, Webhook,
    webhook_signature,
};
pub use crate::error::{Error, Failure, GuestError, PluginRef, Result};
pub use crate::generate::{GenOptions, GenSummary, generate};
pub use crate::host::{CacheStatus, Host, HostBuilder};
pub use crate::import::{Format, ImportOptions, ImportReport, Skip, import};
pub use crate::input::{InputError, read_jsonl};
pub use crate::keys::Keyring;
pub use crate::limits::Limits;
pub use crate::log::{LogLevel, LogLine, LogSink, LogSource};
pub use crate::manifest::{
    API_VERSION, LimitOverrides, MANIFEST_FILE, MANIFEST_VERSION, Manifest, World,
};
pub use crate::model::{
    Activity, Channel, Composed, Consents, Event, EventKind, Hold, Loan, Patron, Scored, Skipped,
};
pub use crate::notify::{Arrival, Campaigns, NotifyReport, Survey, dedupe_key, detect, notify};
pub use crate::pipeline::{
    Aggregate, ComposeReport, DEFAULT_K, Group, Pipeline, suppress_small_groups,
};
pub use crate::plugin::{ComponentInfo, Messenger, Plugin, PrivacyFilter, Scorer};
pub use crate::privacy::{AccessContext, Action, Actor, Field, Pseudonyms, Purpose, Rules};
pub use crate::report::{Count, ListedReader, Move, ReaderList, SegmentReport, segment_report};
pub use crate::store::{
    ChannelStats, Claimed, Enqueued, Erased, HoldRecord, ImportTx, LoanRecord, MessageState,
    OpenLoan, Outbox, OutboxRow, PatronRecord, Preferences, Put, Queued, Retained, Retention,
    RunScore, ScoreRun, Settle, SqliteAudit, SqliteStore, Store, UseKind, UseRecord, Written,
};
