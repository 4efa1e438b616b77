//! Lectern: customer relationship management for libraries, as a host for
//! sandboxed WebAssembly plugins.
//!
//! An integrated library system (ILS) embeds this crate to score its
//! patrons, compose notices and filter what each purpose and staff role may
//! see. Each of those jobs is a plugin: a WebAssembly component written
//! against a `lectern:crm` contract in `wit/`, loaded beside its
//! `plugin.toml`. Plugins get no files, network, environment or clock, only
//! the patron fields their manifest declares and the privacy policy allows,
//! and a plugin that hangs, panics or runs out of memory fails alone.
//!
//! Embedding it takes a few lines:
//!
//! ```no_run
//! use lectern::{Config, Host, Keyring, Lectern, Patron, SqliteStore};
//!
//! fn main() -> anyhow::Result<()> {
//!     let host = Host::builder().cache_dir("/var/cache/lectern").build()?;
//!     let mut config = Config::default();
//!     config.policy = Some("plugins/baseline-privacy".into());
//!     let library = Lectern::open(
//!         &host,
//!         SqliteStore::open("lectern.db".as_ref())?,
//!         Keyring::load_or_create("lectern.key".as_ref())?,
//!         config,
//!     )?;
//!     let engagement = host.load_scorer("plugins/engagement")?;
//!
//!     // Patrons as the ILS holds them; the plugin sees only a projection,
//!     // and every read is in the store's audit log.
//!     let patrons: Vec<Patron> = lectern::read_jsonl("patrons.jsonl".as_ref())?;
//!     let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
//!     for s in library.score(&engagement, &patrons, today)? {
//!         println!("{} {:5.1} {:12} {}", s.patron, s.value, s.segment, s.reasons.join("; "));
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The pieces an embedder reaches for:
//!
//! - [`Lectern`] is the one way in: it holds a store, the [`Keyring`] and
//!   the [`Config`], and every use case (scoring the store, reader lists,
//!   segment reports, export, erasure, retention, notices, delivery,
//!   aggregates) is one of its methods. The audit log and a privacy policy
//!   are always on.
//! - [`Host`] loads plugins ([`Scorer`], [`Messenger`], [`PrivacyFilter`]);
//!   a [`Pipeline`] from [`Lectern::pipeline`] runs them with the policy,
//!   consent and the audit log applied to every record.
//! - [`Backend`] is everything a store implements; [`SqliteStore`] is the
//!   embedded default. [`import()`] reads FOLIO, Koha and CSV exports into
//!   any store; [`generate()`] writes a synthetic library.
//! - Errors are one [`Error`] whose [`ErrorKind`] a front end maps to an
//!   exit code or an HTTP status.
//!
//! See `ARCHITECTURE.md` for how the pieces fit, and [`Limits`] and
//! [`HostBuilder`] for every default.

mod api;
mod audit;
mod cache;
mod campaign;
mod config;
mod consortium;
mod deliver;
mod error;
mod facade;
mod forecast;
mod generate;
mod host;
mod import;
mod inbox;
mod input;
mod intake;
mod keys;
mod lifecycle;
mod limits;
mod links;
mod log;
mod manifest;
mod model;
mod needs;
mod notify;
mod oci;
mod outputs;
mod package;
mod pipeline;
mod plugin;
mod privacy;
mod readers;
mod registry;
mod report;
mod runtime;
mod staff;
mod store;
mod survey;
mod sync;
mod text;
mod witness;
mod worker;

/// The backend-agnostic conformance suite every store must pass.
#[cfg(feature = "conformance")]
pub mod conformance;

/// The messenger's two calling shapes, for the benchmark; not part of the
/// API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;

/// Entry points for the fuzz targets; not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use crate::api::SUPPORTED_API_VERSIONS;
pub use crate::audit::{AuditAnchor, AuditCheck, AuditEntry, AuditHead, AuditRow};
pub use crate::cache::Pruned as CachePruned;
pub use crate::campaign::{
    Audience, CampaignDef, CampaignOutcome, CampaignRun, Step, Stop, Uplift,
};
pub use crate::config::{
    Clock, Config, DEFAULT_K_FLOOR, DeliveryRules, NoticeRules, ReaderRules, Secret, Segments,
    ServeRules, SmtpTls, TransportConfig, local_day, quiet_until,
};
pub use crate::consortium::{
    CONSORTIUM_ROLE, Cell as ConsortiumCell, Consortium, ConsortiumReport, LibraryRow,
};
pub use crate::deliver::{
    DeliverReport, Deliverer, Maildir, Outgoing, SendError, Smtp, Transport, Until, Webhook,
    webhook_signature,
};
pub use crate::error::{Error, ErrorKind, Failure, GuestError, PluginRef, Result};
pub use crate::facade::{
    AuditRead, Keep, Lectern, ListKind, MIN_AUDIT_DAYS, PatronExport, Progress, ScoredRun,
};
pub use crate::forecast::{
    Backtest, BacktestLine, Forecast, Forecasted, Forecaster, MAX_HORIZON, MonthlySeries,
};
pub use crate::generate::{
    FALLING_FACTOR, FALLING_SUBJECT, GenOptions, GenSummary, RISING_FACTOR, RISING_SUBJECT,
    generate,
};
pub use crate::host::{CacheStatus, Host, HostBuilder};
pub use crate::import::{
    Encoding, Format, ImportOptions, ImportReport, MAX_FIELD_BYTES, Skip, import,
};
pub use crate::inbox::InboxReport;
pub use crate::input::{InputError, read_jsonl};
pub use crate::intake::{
    alma_signature_ok, alma_webhook, evergreen, folio_domain, folio_pubsub, koha_hook,
};
pub use crate::keys::Keyring;
pub use crate::limits::Limits;
pub use crate::links::{LinkProblem, LinkPurpose, SESSION_MINUTES};
pub use crate::log::{CallObserver, CallStats, LogLevel, LogLine, LogSink, LogSource};
pub use crate::manifest::{
    ConfigKey, ConfigType, ILS_ROLE, LimitOverrides, MANIFEST_FILE, MANIFEST_VERSION, Manifest,
    World, is_plugin_id,
};
pub use crate::model::{
    Activity, Channel, Composed, Consents, DigestTitle, Event, EventKind, Hold, Loan, Patron, Pick,
    Scored, Skipped,
};
pub use crate::needs::{
    GroupNeed, GroupSubject, NeedsOptions, NeedsReport, SubjectForecast, SubjectNeed, WaitingTitle,
};
pub use crate::notify::{
    Arrival, Awareness, Campaigns, DIGEST_TITLES, NotifyReport, Survey, dedupe_key,
};
pub use crate::oci::{RegistryOptions, pull, push};
pub use crate::package::{Package, Signer, SigningKey, digest_of, read_public_key};
pub use crate::pipeline::{
    Aggregate, ComposeReport, DEFAULT_K, Group, Hidden, Pipeline, suppress_small_groups,
};
pub use crate::plugin::{ComponentInfo, Messenger, Plugin, PrivacyFilter, Scorer};
pub use crate::privacy::{AccessContext, Action, Actor, Field, Pseudonyms, Purpose, Rules};
pub use crate::readers::{
    AnswerProblem, LOCALES, ReaderChoice, ReaderPrefs, Registered, Registration, WEB_SOURCE,
    koha_patron_csv, page_locale,
};
pub use crate::registry::{Grant, InstallOptions, Review, default_lockfile};
pub use crate::report::{Count, ListedReader, Move, ReaderList, SegmentReport, segment_report};
pub use crate::store::{
    Answer, AuditStore, Backend, CampaignMember, CampaignStore, ChannelStats, Circulation, Claimed,
    ConsortiumStore, DailyLock, Demand, Enqueued, Erased, HoldFields, HoldRecord, ImportTx, Inbox,
    InboxEvent, InboxRow, InboxStats, InstalledPlugin, JobRun, Jobs, LoanFields, LoanRecord,
    MemberActivity, MessageState, MonthlyLoans, OpenLoan, Outbox, OutboxRow, Outcome, PatronData,
    PatronReader, PatronRecord, PgStore, Preferences, Published, Put, Queued, RangeClaim,
    RangeStored, ReaderLink, Readers, Records, Registry, Retained, Retention, RunScore, RunWriter,
    Runs, ScoreRun, Settle, SharedWork, SqliteStore, StaffAccount, StaffStore, Store,
    StoredMessage, StoredRun, StoredScore, SurveyAnswers, TrustedKey, UseKind, UseRecord, Written,
    store_shown,
};
pub use crate::survey::{
    Choice, Feeds, GroupBy, GroupResult, Kind as QuestionKind, Question, QuestionResult, Sampling,
    SurveyDef, SurveyResults, Text as SurveyText,
};
pub use crate::sync::{KohaSource, SyncReport};
pub use crate::worker::RangeDone;
