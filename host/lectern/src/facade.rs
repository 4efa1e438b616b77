//! [`Lectern`]: the one way in. It holds a store, the keyring and the
//! library's configuration, and it is the only way to get a [`Pipeline`], a
//! [`Deliverer`] or any use case, so the audit log and a privacy policy are
//! always in force: there is no unaudited constructor to forget.
//!
//! Every use case returns data and never prints; the `lectern` binary and
//! the service render it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::{AuditChain, AuditCheck, AuditEntry, AuditLog, AuditRow};
use crate::config::{Config, local_day};
use crate::deliver::{DeliverReport, Deliverer, Transport, Until};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::import::{Format, ImportOptions, ImportReport};
use crate::keys::Keyring;
use crate::model::{Event, Patron, Scored};
use crate::notify::{Campaigns, NotifyReport};
use crate::pipeline::{Aggregate, Pipeline};
use crate::plugin::{Messenger, PrivacyFilter, Scorer};
use crate::privacy::{AccessContext, Action, Actor, Field, Purpose};
use crate::report::{ListedReader, ReaderList, SegmentReport};
use crate::store::{
    AuditStore, Backend, ChannelStats, Erased, MessageState, OutboxRow, PatronData, Preferences,
    Retained, Retention, RunScore, RunWriter, ScoreRun, StoredRun,
};
use crate::witness::HeadFile;

/// The keys of every [`Lectern::trial`]: public, since a trial holds only
/// synthetic records.
const TRIAL_KEY: &[u8; 32] = b"lectern trial: synthetic records";

/// The library: its store, keys and configuration, with the audit log and
/// the privacy policy always on.
///
/// ```no_run
/// use lectern::{Config, Host, Keep, Keyring, Lectern, SqliteStore};
///
/// fn main() -> lectern::Result<()> {
///     let host = Host::builder().cache_dir("/var/cache/lectern").build()?;
///     let store = SqliteStore::open("lectern.db".as_ref())?;
///     let keys = Keyring::load_or_create("lectern.key".as_ref())?;
///     let config = Config::from_file("lectern.toml".as_ref())?;
///     let mut library = Lectern::open(&host, store, keys, config)?;
///     let scorer = host.load_scorer("plugins/engagement")?;
///     let today = chrono::Utc::now().date_naive();
///     let scored = library.score_store(&scorer, today, Keep::Top(10), &mut |_done, _total| {})?;
///     println!("run {} scored {} patrons", scored.run.id, scored.run.patrons);
///     Ok(())
/// }
/// ```
pub struct Lectern {
    host: Host,
    store: Box<dyn Backend>,
    keyring: Keyring,
    config: Config,
    policy: Option<PrivacyFilter>,
    audit: Arc<ChainedLog>,
    trial: bool,
}

/// A reader list's kind; which segments it takes come from the library's
/// `[segments]` configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Key readers (重点读者), highest score first.
    KeyReaders,
    /// Readers to win back, most urgent segment first.
    Lapsed,
}

/// A patron's export: everything stored about them, and every read of
/// their data that the audit log holds.
#[derive(Debug, Clone, Serialize)]
pub struct PatronExport {
    /// The date the activity summary is as of.
    pub as_of: NaiveDate,
    /// What the store holds, by section.
    #[serde(flatten)]
    pub data: PatronData,
    /// The survey answers they gave with their name (anonymous answers
    /// keep none and cannot be found).
    pub survey_answers: Vec<crate::store::SurveyAnswers>,
    /// Who read their data, when, why and which fields.
    pub reads_of_their_data: Vec<AuditRead>,
}

/// One read of a patron's data, in their export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRead {
    /// The entry's number.
    pub seq: u64,
    /// When.
    pub at: String,
    /// `plugin`, `staff` or `channel`.
    pub actor_kind: String,
    /// Which plugin, role or channel.
    pub actor: String,
    /// Why.
    pub purpose: String,
    /// Which fields, comma-separated.
    pub fields: String,
}

impl From<AuditRow> for AuditRead {
    fn from(r: AuditRow) -> Self {
        AuditRead {
            seq: r.seq,
            at: r.at,
            actor_kind: r.actor_kind,
            actor: r.actor,
            purpose: r.purpose,
            fields: r.fields,
        }
    }
}

/// Hears how far long work has gone: `done` of `total` (0 when unknown).
pub trait Progress {
    /// Called now and then, and at the end.
    fn advance(&mut self, done: u64, total: u64);
}

impl<F: FnMut(u64, u64)> Progress for F {
    fn advance(&mut self, done: u64, total: u64) {
        self(done, total)
    }
}

/// The audit log as the pipelines and the deliverer append to it: the
/// chain computed here, the rows kept by the backend.
struct ChainedLog {
    rows: Mutex<Box<dyn AuditStore>>,
    key: Vec<u8>,
    /// The head kept outside the store, advanced after each append.
    head: Option<HeadFile>,
}

impl AuditLog for ChainedLog {
    fn append(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let chain = AuditChain::new(&self.key);
        let mut written = None;
        self.rows
            .lock()
            .map_err(|_| anyhow::anyhow!("the audit log's lock was poisoned"))?
            .append_audit(&mut |head| {
                let (row, anchor) = chain.next(head, entry);
                written = Some((row.seq, row.link.clone()));
                (row, anchor)
            })?;
        if let (Some(file), Some((seq, link))) = (&self.head, written) {
            file.advance(seq, &link)?;
        }
        Ok(())
    }
}

impl Lectern {
    /// Opens the library over `store`. The policy configured in
    /// `[privacy] policy` is loaded with `host`; without one, a built-in
    /// policy that lets no field out is in force.
    pub fn open(
        host: &Host,
        store: impl Backend + 'static,
        keyring: Keyring,
        config: Config,
    ) -> Result<Lectern> {
        let mut store = store;
        let policy = crate::registry::chosen_policy(
            host,
            &store,
            config.policy.as_deref(),
            config.lockfile.as_deref(),
        )?
        .map(crate::plugin::Plugin::into_privacy_filter)
        .transpose()?;
        check_fingerprint(&mut store, &keyring)?;
        let audit = Arc::new(ChainedLog {
            rows: Mutex::new(store.audit_handle().map_err(Error::store)?),
            key: keyring.audit_key().to_vec(),
            head: keyring
                .audit_head_file()
                .map(|path| HeadFile::new(path, keyring.audit_key())),
        });
        Ok(Lectern {
            host: host.clone(),
            store: Box::new(store),
            keyring,
            config,
            policy,
            audit,
            trial: false,
        })
    }

    /// A library for trying plugins on synthetic records, such as a
    /// plugin's fixtures: a temporary store and fresh keys, gone when it is
    /// dropped. Under `config`'s policy if it names one; otherwise, unlike
    /// a real library, every field a plugin declares reaches it, so that
    /// an author sees the plugin work before any library's policy applies.
    /// No real patron can be in its store: it starts empty, and nothing
    /// opens it but this library.
    pub fn trial(host: &Host, mut config: Config) -> Result<Lectern> {
        config.lockfile = None;
        let mut library = Lectern::open(
            host,
            crate::store::SqliteStore::temporary()?,
            // Fixed keys, so that a trial's tokens are the same in every
            // run and expected output can hold them.
            Keyring::from_keys(TRIAL_KEY, TRIAL_KEY)?,
            config,
        )?;
        library.trial = true;
        Ok(library)
    }

    /// Puts `policy` in force instead of the configured one.
    pub fn with_policy(mut self, policy: PrivacyFilter) -> Lectern {
        self.policy = Some(policy);
        self
    }

    pub(crate) fn set_policy(&mut self, policy: PrivacyFilter) {
        self.policy = Some(policy);
    }

    pub(crate) fn store_mut(&mut self) -> &mut dyn Backend {
        self.store.as_mut()
    }

    /// The store, for reads that hand nothing to a plugin or an output:
    /// counts, runs, a test's checks.
    pub fn store(&self) -> &dyn Backend {
        self.store.as_ref()
    }

    /// The library's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The host plugins are loaded with.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// A pipeline as of `as_of`: the policy in force, tokens under the
    /// keyring's current key, and every read audited in the store.
    pub fn pipeline(&self, as_of: NaiveDate) -> Pipeline {
        if self.policy.is_none() && !self.trial {
            tracing::warn!(
                "no privacy policy is configured, so no patron field leaves the host; set \
                 `[privacy] policy` in lectern.toml to a privacy-filter plugin"
            );
        }
        Pipeline::new(
            self.audit.clone(),
            self.keyring.pseudonyms(),
            self.policy.clone(),
        )
        .trial(self.trial && self.policy.is_none())
        .k_floor(self.config.k_floor)
        .as_of(as_of)
    }

    /// The staff roles there are: those the policy in force declares, and
    /// the host's `ils`.
    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .policy
            .as_ref()
            .map(|p| p.plugin().manifest().roles.clone())
            .unwrap_or_default();
        roles.push(crate::manifest::ILS_ROLE.to_string());
        roles
    }

    /// Refuses a staff role the policy in force does not declare.
    pub fn check_role(&self, role: &str) -> Result<()> {
        if self.trial && self.policy.is_none() {
            return Ok(());
        }
        crate::pipeline::check_role(self.policy.as_ref(), role)
    }

    /// The context of `role` reading for `purpose`, refused unless the
    /// role is one the policy declares and one that reads.
    pub(crate) fn staff(&self, purpose: Purpose, role: &str) -> Result<AccessContext> {
        self.check_role(role)?;
        if role == crate::manifest::ILS_ROLE {
            return Err(Error::Denied(format!(
                "the `{role}` role pushes patrons and events and reads nothing"
            )));
        }
        Ok(AccessContext {
            purpose,
            actor: Actor::Staff(role.to_string()),
        })
    }

    /// A deliverer with a transport for every channel in the configuration,
    /// auditing every hand-over.
    pub fn deliverer(&self) -> Result<Deliverer> {
        Deliverer::from_config(
            &self.config,
            self.audit.clone(),
            self.keyring.pseudonyms(),
            self.pipeline(Utc::now().date_naive()),
        )
        .map(|d| d.with_links(self.message_links()))
        .map_err(Error::config)
    }

    /// The links every message carries, when reader pages are served.
    pub(crate) fn message_links(&self) -> Option<crate::links::MessageLinks> {
        let base = self.config.readers.public_url.clone()?;
        Some(crate::links::MessageLinks {
            key: crate::links::LinkKey::of(&self.keyring),
            base,
            ttl: chrono::Duration::days(self.config.readers.link_days.into()),
        })
    }

    /// A deliverer with the given transports instead of the configured
    /// ones, auditing every hand-over.
    pub fn deliverer_with(
        &self,
        transports: BTreeMap<crate::Channel, Box<dyn Transport>>,
    ) -> Deliverer {
        Deliverer::new(
            transports,
            self.config.deliver.clone(),
            self.config.notify.clone(),
            self.audit.clone(),
            self.keyring.pseudonyms(),
            self.pipeline(Utc::now().date_naive()),
        )
        .with_links(self.message_links())
    }

    /// Writes one audit entry for `ctx` reading `fields` of `patrons` (by
    /// id), before the read happens.
    pub(crate) fn audit_read(
        &self,
        ctx: AccessContext,
        fields: Vec<Field>,
        patrons: &[&str],
    ) -> Result<()> {
        let keys = self.keyring.pseudonyms();
        self.audit
            .append(&AuditEntry {
                at: Utc::now(),
                context: ctx,
                fields,
                patrons: patrons.iter().map(|p| keys.patron_token(p)).collect(),
            })
            .map_err(|e| Error::store(e.context("failed to write the audit log; nothing was read")))
    }

    /// Records a read of patron data that happened outside Lectern, such as
    /// one by the ILS on Lectern's behalf, in the audit chain.
    pub fn record_read(&self, entry: &AuditEntry) -> Result<()> {
        self.audit
            .append(entry)
            .map_err(|e| Error::store(e.context("failed to write the audit log")))
    }

    /// Imports `body`, one file's content in `format` as the ILS sent it
    /// (Koha's `/api/v1/patrons` list, FOLIO's users), by the same rules
    /// as a file: in one transaction, each bad record skipped and
    /// reported, or, `strict`, nothing written. The body passes through a
    /// private temporary file, removed when the import ends.
    pub fn import_body(
        &mut self,
        format: Format,
        body: &[u8],
        options: ImportOptions,
    ) -> Result<ImportReport> {
        let staged = (|| -> std::io::Result<(tempfile::TempDir, PathBuf)> {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join(match format {
                Format::Csv | Format::KohaCsv => "patrons.csv",
                _ => "patrons.json",
            });
            std::fs::write(&path, body)?;
            Ok((dir, path))
        })()
        .map_err(|e| Error::store(anyhow::anyhow!("cannot stage the records: {e}")))?;
        self.import(format, &[staged.1], options, &mut |_| {})
    }

    /// Imports `paths` in `format`, in one transaction.
    pub fn import(
        &mut self,
        format: Format,
        paths: &[PathBuf],
        options: ImportOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport> {
        let keys = self.keyring.pseudonyms();
        let report =
            crate::import::import(self.store.as_mut(), format, paths, options, &keys, progress)?;
        // Events that came before their patron apply now that the patron
        // is here: once per import, so an event that still cannot apply
        // is not retried without end.
        self.store.requeue_skipped().map_err(|e| {
            Error::store(e.context("the import is in, but skipped events were not put back"))
        })?;
        Ok(report)
    }

    /// Scores every patron in the store as of `as_of`, a batch at a time on
    /// every core, and stores the run, whole or not at all. Each batch's
    /// scores are written as they are made, so memory does not grow with
    /// the library unless `keep` asks for every score back.
    pub fn score_store(
        &mut self,
        scorer: &Scorer,
        as_of: NaiveDate,
        keep: Keep,
        progress: &mut dyn Progress,
    ) -> Result<ScoredRun> {
        let total = self.store.patron_count().map_err(Error::store)? as u64;
        let pipeline = self.pipeline(as_of);
        // What the scorer could see is what its reasons may reveal.
        let ctx = AccessContext {
            purpose: Purpose::Scoring,
            actor: Actor::Plugin(scorer.plugin().id().to_string()),
        };
        let received = pipeline.rules_for(&ctx, Some(scorer.plugin()))?.passed();
        let run = ScoreRun {
            plugin: scorer.plugin().id().to_string(),
            version: scorer.plugin().version().to_string(),
            as_of,
            fields: Some(received),
        };
        let writer = self.store.begin_run(&run).map_err(Error::store)?;
        let mut tally = Tally::new(keep);
        let writer = score_in_parallel(
            self.store.as_ref(),
            &pipeline,
            scorer,
            as_of,
            total,
            Mutex::new((writer, &mut tally)),
            progress,
        )?;
        let id = writer.commit().map_err(Error::store)?;
        let patrons = tally.scored;
        Ok(ScoredRun {
            run: StoredRun { id, run, patrons },
            segments: std::mem::take(&mut tally.segments),
            scores: tally.into_scores(),
        })
    }

    /// Scores `patrons` read from elsewhere (a file, a request), without
    /// storing them; every read is audited.
    pub fn score(
        &self,
        scorer: &Scorer,
        patrons: &[Patron],
        as_of: NaiveDate,
    ) -> Result<Vec<Scored>> {
        self.pipeline(as_of).score(scorer, patrons)
    }

    /// What `ctx` may see of `patrons` read from elsewhere, audited.
    pub fn filter(
        &self,
        ctx: &AccessContext,
        patrons: &[Patron],
        as_of: NaiveDate,
    ) -> Result<Vec<Patron>> {
        self.pipeline(as_of).filter(ctx, patrons)
    }

    /// The fields the policy lets out for `ctx`.
    pub fn fields_passed(&self, ctx: &AccessContext, as_of: NaiveDate) -> Result<Vec<Field>> {
        Ok(self.pipeline(as_of).rules_for(ctx, None)?.passed())
    }

    /// The stored patrons grouped by `by`, as `role` may see them for
    /// analytics, with groups under `k` hidden.
    pub fn aggregate(
        &self,
        role: &str,
        by: &[Field],
        k: usize,
        as_of: NaiveDate,
    ) -> Result<Aggregate> {
        let ctx = self.staff(Purpose::Analytics, role)?;
        let pipeline = self.pipeline(as_of);
        pipeline.check_k(k)?;
        let patrons = self.store.patrons(as_of).map_err(Error::store)?;
        pipeline.aggregate(&ctx, &patrons, by, k)
    }

    /// The latest run of `scorer`, or a not-found error that says what to do.
    fn latest_run(&self, scorer: &str, n: usize) -> Result<Vec<StoredRun>> {
        let runs = self.store.latest_runs(scorer, n).map_err(Error::store)?;
        if runs.is_empty() {
            return Err(Error::NotFound(format!(
                "no run of `{scorer}` is stored; run `lectern score --plugin …` first"
            )));
        }
        Ok(runs)
    }

    /// The segment report of the latest run of `scorer`, with movement since
    /// the run before, groups under `k` hidden. Audited as `role` reading
    /// the segments, categories and branches of the run's patrons.
    pub fn segment_report(&self, scorer: &str, k: usize, role: &str) -> Result<SegmentReport> {
        crate::pipeline::check_k(k, self.config.k_floor)?;
        let ctx = self.staff(Purpose::Analytics, role)?;
        let runs = self.latest_run(scorer, 2)?;
        let current = self.store.run_scores(runs[0].id).map_err(Error::store)?;
        let previous = match runs.get(1) {
            Some(r) => Some((r.id, self.store.run_scores(r.id).map_err(Error::store)?)),
            None => None,
        };
        let ids: Vec<&str> = current.iter().map(|s| s.patron.as_str()).collect();
        self.audit_read(
            ctx,
            vec![Field::Category, Field::HomeBranch, Field::Segments],
            &ids,
        )?;
        Ok(crate::report::segment_report(
            (runs[0].id, &runs[0].run, &current),
            previous.as_ref().map(|(id, s)| (*id, s.as_slice())),
            k,
        ))
    }

    /// A list of readers from the latest run of `scorer`: key readers or
    /// readers to win back, as the configuration names their segments, at
    /// most `top`, each shown only as far as `role` may see them.
    pub fn reader_list(
        &self,
        kind: ListKind,
        scorer: &str,
        top: usize,
        role: &str,
    ) -> Result<ReaderList> {
        let run = self.latest_run(scorer, 1)?.remove(0);
        let scores = self.store.run_scores(run.id).map_err(Error::store)?;
        let segments = &self.config.segments;
        let (title, picked) = match kind {
            ListKind::KeyReaders => (
                format!("Key readers (重点读者), by {scorer}"),
                pick(scores, &segments.key_readers, false, top),
            ),
            ListKind::Lapsed => (
                format!("Readers to win back, by {scorer}"),
                pick(scores, &segments.lapsed, true, top),
            ),
        };
        let mut patrons = Vec::with_capacity(picked.len());
        for s in &picked {
            if let Some(p) = self
                .store
                .patron(&s.patron, run.run.as_of)
                .map_err(Error::store)?
            {
                patrons.push(p);
            }
        }
        let pipeline = self.pipeline(run.run.as_of);
        let view = self.staff(Purpose::StaffView, role)?;
        let seen = pipeline.filter(&view, &patrons)?;
        // A scorer's reasons are its own text about what it saw: shown only
        // to a role that may see every field the scorer received, as kept.
        let rules = pipeline.rules_for(&view, None)?;
        let reasons_shown = match &run.run.fields {
            Some(fields) => fields.iter().all(|f| rules.get(*f) == Action::Keep),
            None => Field::ALL.iter().all(|f| rules.get(*f) == Action::Keep),
        };
        let readers = picked
            .iter()
            .zip(seen)
            .map(|(s, p)| ListedReader {
                who: p.name.unwrap_or(p.id),
                card_number: p.card_number,
                segment: s.segment.clone(),
                value: s.value,
                reasons: if reasons_shown {
                    s.reasons.clone()
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(ReaderList {
            title: format!("{title}, run {} as of {}", run.id, run.run.as_of),
            readers,
            reasons_withheld: !reasons_shown,
        })
    }

    /// Every stored scoring run, newest first.
    pub fn runs(&self) -> Result<Vec<StoredRun>> {
        self.store.runs().map_err(Error::store)
    }

    /// Finds the events due at `now` in the store, adds `extra` (events the
    /// ILS pushed), composes them with `messengers` and queues the result.
    pub fn notify(
        &mut self,
        messengers: &[Messenger],
        campaigns: &Campaigns,
        detect: bool,
        extra: Vec<Event>,
        now: DateTime<Utc>,
    ) -> Result<NotifyReport> {
        let mut events = Vec::new();
        if detect {
            events = self.detect(campaigns, now)?;
            if let Some(s) = campaigns.survey.as_ref().filter(|s| s.hosted) {
                self.link_survey_invitations(&s.id, &mut events, now)?;
            }
        }
        events.extend(extra);
        self.compose_and_queue(messengers, &events, now)
    }

    /// The events due at `now` in the store.
    pub fn detect(&self, campaigns: &Campaigns, now: DateTime<Utc>) -> Result<Vec<Event>> {
        crate::notify::detect(
            self.store.as_ref(),
            &self.keyring.pseudonyms(),
            &self.config.notify,
            campaigns,
            now,
        )
        .map_err(Error::store)
    }

    /// Composes `events` with `messengers` and queues what the rules let
    /// through.
    pub fn compose_and_queue(
        &mut self,
        messengers: &[Messenger],
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<NotifyReport> {
        let pipeline = self.pipeline(local_day(&self.config.notify, now));
        crate::notify::notify(
            self.store.as_mut(),
            &pipeline,
            messengers,
            &self.config.notify,
            events,
            now,
        )
        .map_err(Error::store)
    }

    /// Delivers from the outbox with the configured transports until
    /// `until`; `progress` hears after every send.
    pub fn deliver(
        &mut self,
        until: Until,
        progress: &mut dyn FnMut(&DeliverReport),
    ) -> Result<DeliverReport> {
        let mut deliverer = self.deliverer()?;
        deliverer
            .run(self.store.as_mut(), until, progress)
            .map_err(Error::store)
    }

    /// Delivers with `deliverer`, one of this library's.
    pub fn deliver_with(
        &mut self,
        deliverer: &mut Deliverer,
        until: Until,
        progress: &mut dyn FnMut(&DeliverReport),
    ) -> Result<DeliverReport> {
        deliverer
            .run(self.store.as_mut(), until, progress)
            .map_err(Error::store)
    }

    /// Counts of the outbox per channel and state: no patron in them.
    pub fn outbox_stats(&self) -> Result<Vec<ChannelStats>> {
        self.store.outbox_stats().map_err(Error::store)
    }

    /// The newest `limit` messages, of `state` if given, as `role` lists
    /// them: audited before they are read, as a staff view of the
    /// patrons they go to.
    pub fn outbox_messages(
        &self,
        state: Option<MessageState>,
        limit: usize,
        role: &str,
    ) -> Result<Vec<OutboxRow>> {
        let rows = self
            .store
            .outbox_messages(state, limit)
            .map_err(Error::store)?;
        let ids: Vec<&str> = rows.iter().map(|r| r.patron.as_str()).collect();
        self.audit_read(self.staff(Purpose::StaffView, role)?, Vec::new(), &ids)?;
        Ok(rows)
    }

    /// The patron's messaging preferences.
    pub fn preferences(&self, id: &str) -> Result<Preferences> {
        self.store
            .preferences(id)
            .map_err(Error::store)?
            .ok_or_else(|| not_found(id))
    }

    /// The patron's messaging preferences, read by `role`, which the
    /// policy must let see a patron's channels: audited first.
    pub fn preferences_as(&self, id: &str, role: &str) -> Result<Preferences> {
        let ctx = self.channels_view(role)?;
        if !self.store.has_patron(id).map_err(Error::store)? {
            return Err(not_found(id));
        }
        self.audit_read(ctx, vec![Field::Channels], &[id])?;
        self.preferences(id)
    }

    /// Replaces the patron's messaging preferences as `role`, at the
    /// patron's request, by a role the policy lets see their channels;
    /// audited first. Returns how many queued messages that cancelled.
    pub fn set_preferences_as(
        &mut self,
        id: &str,
        prefs: &Preferences,
        role: &str,
    ) -> Result<usize> {
        let ctx = self.channels_view(role)?;
        if !self.store.has_patron(id).map_err(Error::store)? {
            return Err(not_found(id));
        }
        self.audit_read(ctx, vec![Field::Channels], &[id])?;
        self.set_preferences(id, prefs)
    }

    /// The staff view of `role`, refused unless the policy lets it see a
    /// patron's channels, which is what preferences are about.
    fn channels_view(&self, role: &str) -> Result<AccessContext> {
        self.view_keeping(role, &[Field::Channels], "their preferences")
    }

    /// The staff view of `role`, refused unless the policy lets it see
    /// every one of `fields` as it is, which `what` needs.
    pub(crate) fn view_keeping(
        &self,
        role: &str,
        fields: &[Field],
        what: &str,
    ) -> Result<AccessContext> {
        let ctx = self.staff(Purpose::StaffView, role)?;
        if self.trial && self.policy.is_none() {
            return Ok(ctx);
        }
        let rules = self
            .pipeline(Utc::now().date_naive())
            .rules_for(&ctx, None)?;
        if let Some(f) = fields.iter().find(|f| rules.get(**f) != Action::Keep) {
            return Err(Error::Denied(format!(
                "the privacy policy does not let the `{role}` role see a patron's {}, so not \
                 {what} either",
                f.as_str()
            )));
        }
        Ok(ctx)
    }

    /// Replaces the patron's messaging preferences; returns how many queued
    /// messages that cancelled.
    pub fn set_preferences(&mut self, id: &str, prefs: &Preferences) -> Result<usize> {
        if let Some(days) = prefs.notice_days.filter(|d| *d > 30) {
            return Err(Error::Invalid {
                where_: "the preferences".into(),
                message: format!("notice-days = {days}: give 0 to 30 days"),
            });
        }
        if !self.store.has_patron(id).map_err(Error::store)? {
            return Err(not_found(id));
        }
        self.store.set_preferences(id, prefs).map_err(Error::store)
    }

    /// Everything stored about patron `id`, and every read of their data,
    /// for the patron themself. Audited as `role` exporting every field.
    pub fn export_patron(&self, id: &str, as_of: NaiveDate, role: &str) -> Result<PatronExport> {
        let ctx = self.rights(role, as_of)?;
        if !self.store.has_patron(id).map_err(Error::store)? {
            return Err(not_found(id));
        }
        self.audit_read(ctx, Field::ALL.to_vec(), &[id])?;
        let data = self
            .store
            .patron_data(id, as_of)
            .map_err(Error::store)?
            .ok_or_else(|| not_found(id))?;
        let tokens: Vec<String> = self
            .keyring
            .all_pseudonyms()
            .iter()
            .map(|k| k.patron_token(id))
            .collect();
        let reads = self
            .store
            .audit_rows_naming(&tokens)
            .map_err(Error::store)?
            .into_iter()
            .map(AuditRead::from)
            .collect();
        let survey_answers = self.store.answers_of(id).map_err(Error::store)?;
        Ok(PatronExport {
            as_of,
            data,
            survey_answers,
            reads_of_their_data: reads,
        })
    }

    /// Removes patron `id` and everything stored about them, audited as
    /// `role` before it happens, and checks that the store holds no trace
    /// of them after. Their delivered files in a configured maildir go too.
    ///
    /// What remains, on purpose: the audit log's entries about them, under
    /// their keyed token (the log must stay whole to prove what was done
    /// with their data), and the same token as a tombstone, so that the
    /// next import from the ILS does not bring them back unasked
    /// ([`ImportOptions::readmit`](crate::ImportOptions::readmit)). Neither
    /// leads back to them without the library's key.
    pub fn erase_patron(&mut self, id: &str, role: &str) -> Result<Erased> {
        self.rights(role, Utc::now().date_naive())?;
        // The erasure is a staff action on the patron; no field leaves.
        let ctx = self.staff(Purpose::StaffView, role)?;
        self.erase_as(id, ctx)
    }

    /// The context of `role` acting on a patron's rights (export,
    /// erasure), refused unless the policy lets that role export a patron:
    /// the tiers reach the rights too, so an analyst cannot export a
    /// reader whole.
    fn rights(&self, role: &str, as_of: NaiveDate) -> Result<AccessContext> {
        let ctx = self.staff(Purpose::PatronExport, role)?;
        if self.trial && self.policy.is_none() {
            return Ok(ctx);
        }
        // The export is the whole record: a role that the policy lets see
        // less of it exports nothing.
        let rules = self.pipeline(as_of).export_rules(&ctx)?;
        if Field::ALL.iter().any(|f| rules.get(*f) != Action::Keep) {
            return Err(Error::Denied(format!(
                "the privacy policy lets the `{role}` role export no patron; a patron's export \
                 and erasure are for the roles it lets see them (administrator and \
                 privacy-officer in the bundled policies)"
            )));
        }
        Ok(ctx)
    }

    /// Erases patron `id` because the ILS `source` deleted them, as
    /// [`Lectern::erase_patron`] does, audited as the host's task.
    pub fn erase_deleted_patron(&mut self, id: &str, source: &str) -> Result<Erased> {
        let ctx = AccessContext {
            purpose: Purpose::Maintenance,
            actor: Actor::Task(format!("deleted-in-ils:{source}")),
        };
        self.erase_as(id, ctx)
    }

    fn erase_as(&mut self, id: &str, ctx: AccessContext) -> Result<Erased> {
        if !self.store.has_patron(id).map_err(Error::store)? {
            return Err(not_found(id));
        }
        self.audit_read(ctx, Vec::new(), &[id])?;
        let keys = self.keyring.pseudonyms();
        let token = keys.patron_token(id);
        // Tombstones for the id and the card, so that an import keyed by
        // either (Koha's patron CSV is keyed by card) withholds them.
        let card = self
            .store
            .patron(id, Utc::now().date_naive())
            .map_err(Error::store)?
            .and_then(|p| p.card_number);
        let mut tombstones = vec![token.clone()];
        tombstones.extend(card.map(|c| keys.value_token(Field::CardNumber, &c)));
        let mut erased = self
            .store
            .erase_patron(id, &tombstones)
            .map_err(Error::store)?;
        // Letters and emails already written to a maildir go too.
        for transport in self.config.channels.values() {
            if let crate::config::TransportConfig::Maildir { dir } = transport {
                erased.files += crate::deliver::remove_delivered(dir, &token).map_err(|e| {
                    Error::store(e.context(format!(
                        "patron `{id}` was erased from the store, but their delivered files in \
                         {} could not all be removed; remove them, or run the erasure again",
                        dir.display()
                    )))
                })?;
            }
        }
        let traces = self.store.traces_of(id).map_err(Error::store)?;
        if !traces.is_empty() {
            return Err(Error::store(anyhow::anyhow!(
                "patron `{id}` was erased but the store still holds them in: {}; keep the store \
                 as it is and report it",
                traces.join(", ")
            )));
        }
        Ok(erased)
    }

    /// Applies `retention` as of `as_of`; the audit chain stays verifiable.
    /// The run is itself an audit entry, written before anything goes.
    /// Retention has floors: it cannot run as of a day after today, and it
    /// keeps the audit log for at least [`MIN_AUDIT_DAYS`] days.
    pub fn apply_retention(&mut self, as_of: NaiveDate, retention: &Retention) -> Result<Retained> {
        let today = Utc::now().date_naive();
        if as_of > today {
            return Err(Error::invalid(
                "--as-of",
                format!(
                    "retention cannot run as of {as_of}, after today ({today}): that would \
                     remove data before its time"
                ),
            ));
        }
        if retention.audit_log < MIN_AUDIT_DAYS {
            return Err(Error::invalid(
                "--audit-days",
                format!(
                    "the audit log is kept at least {MIN_AUDIT_DAYS} days; {} is too few",
                    retention.audit_log
                ),
            ));
        }
        self.audit.append(&task_entry("retention")).map_err(|e| {
            Error::store(e.context("failed to write the audit log; nothing was removed"))
        })?;
        let chain = AuditChain::new(self.keyring.audit_key());
        self.store
            .apply_retention(as_of, retention, &|removed, head| {
                chain.reanchor(removed, head)
            })
            .map_err(Error::store)
    }

    /// Adds a pseudonym key to the keyring and makes it current, audited
    /// before it happens, and saves the keyring where it was read from.
    /// Returns the new key's version.
    pub fn rotate_pseudonym_key(&mut self) -> Result<u32> {
        self.audit
            .append(&task_entry("key-rotation"))
            .map_err(|e| {
                Error::store(e.context("failed to write the audit log; the key was not rotated"))
            })?;
        let version = self.keyring.rotate()?;
        if let Some(file) = self.keyring.file().map(Path::to_path_buf) {
            self.keyring.save(&file)?;
        }
        Ok(version)
    }

    /// Recomputes the audit chain under the keyring's audit key, and
    /// compares its length with the head kept beside the keyring.
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        let mut check = verify(self.store.as_ref(), self.keyring.audit_key())?;
        let Some(path) = self.keyring.audit_head_file() else {
            return Ok(check);
        };
        let file = HeadFile::new(path, self.keyring.audit_key());
        let head = file.read().map_err(Error::Config)?;
        check.head = head.as_ref().map(|h| h.entries);
        if let Some(head) = head {
            if check.entries < head.entries {
                check.cut = Some(format!(
                    "the log has {} entries, and its head outside the store ({}) says it has \
                     had {}: entries were cut from the end, the log was deleted, or the store \
                     was put back to an older copy",
                    check.entries,
                    file.path().display(),
                    head.entries
                ));
            } else if let Some(link) = self.store.audit_link(head.entries).map_err(Error::store)?
                && link != head.link
            {
                check.cut = Some(format!(
                    "entry {} is not the entry the head outside the store ({}) recorded: the \
                     store was put back to an older copy and written again",
                    head.entries,
                    file.path().display()
                ));
            }
        }
        Ok(check)
    }
}

/// The fewest days the audit log is kept, whatever retention asks.
pub const MIN_AUDIT_DAYS: u32 = 365;

/// An audit entry for the host's own maintenance: it reads no field and
/// names no patron.
fn task_entry(task: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        context: AccessContext {
            purpose: Purpose::Maintenance,
            actor: Actor::Task(task.to_string()),
        },
        fields: Vec::new(),
        patrons: Vec::new(),
    }
}

/// Records the keyring's fingerprint in a new store, and refuses a keyring
/// that is not the one the store was made with.
fn check_fingerprint(store: &mut dyn Backend, keyring: &Keyring) -> Result<()> {
    let ring = keyring.fingerprint();
    if store.key_fingerprint().map_err(Error::store)?.is_none() {
        // Two processes may open a new store at once: the first to record
        // its keyring wins, and the other is checked against it below.
        store.set_key_fingerprint(&ring).map_err(Error::store)?;
    }
    match store.key_fingerprint().map_err(Error::store)? {
        None => Err(Error::store(anyhow::anyhow!(
            "the store did not keep the keyring's fingerprint"
        ))),
        Some(recorded) if recorded == ring => Ok(()),
        Some(recorded) => Err(Error::Config(anyhow::anyhow!(
            "the store {} was made with the keyring {recorded}, and the keyring given is {ring}{}: \
             use the store's own keyring (--key-file); another key cannot read its tokens or \
             verify its audit log",
            store.describe(),
            keyring
                .file()
                .map(|f| format!(" ({})", f.display()))
                .unwrap_or_default()
        ))),
    }
}

/// Recomputes the chain of `store` under `key`.
pub(crate) fn verify(store: &dyn AuditStore, key: &[u8]) -> Result<AuditCheck> {
    let mut rows = Vec::new();
    let anchor = store
        .read_audit(&mut |row| {
            rows.push(row);
            Ok(())
        })
        .map_err(Error::store)?;
    AuditChain::new(key)
        .verify(anchor.as_ref(), &mut rows.into_iter().map(Ok))
        .map_err(Error::store)
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("no patron with id `{id}` is stored"))
}

/// The scores in `segments`, at most `top`: ranked by the order of
/// `segments` when `by_segment`, else kept in score order.
fn pick(scores: Vec<RunScore>, segments: &[String], by_segment: bool, top: usize) -> Vec<RunScore> {
    let rank = |s: &RunScore| segments.iter().position(|x| *x == s.segment);
    let mut picked: Vec<RunScore> = scores.into_iter().filter(|s| rank(s).is_some()).collect();
    if by_segment {
        // Stable: within a segment, the highest score first.
        picked.sort_by_key(|s| rank(s));
    }
    picked.truncate(top);
    picked
}

/// Which scores [`Lectern::score_store`] hands back; every one is stored
/// either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every score, in order of patron id: memory grows with the library.
    All,
    /// The `n` highest, highest first (ties by patron id).
    Top(usize),
}

/// A stored run, with what [`Keep`] asked for.
#[derive(Debug, Clone)]
pub struct ScoredRun {
    /// The run as stored.
    pub run: StoredRun,
    /// How many patrons each segment holds.
    pub segments: BTreeMap<String, usize>,
    /// The scores kept: see [`Keep`].
    pub scores: Vec<Scored>,
}

/// What a run keeps in memory while its scores go to the store.
struct Tally {
    keep: Keep,
    scored: usize,
    segments: BTreeMap<String, usize>,
    /// Batches by their place in the library, for [`Keep::All`].
    batches: Vec<(usize, Vec<Scored>)>,
    /// The highest so far, for [`Keep::Top`]: at most twice `n`, cut back
    /// to `n` when it fills.
    top: Vec<Scored>,
}

impl Tally {
    fn new(keep: Keep) -> Tally {
        Tally {
            keep,
            scored: 0,
            segments: BTreeMap::new(),
            batches: Vec::new(),
            top: Vec::new(),
        }
    }

    fn add(&mut self, batch: usize, scores: Vec<Scored>) {
        self.scored += scores.len();
        for s in &scores {
            *self.segments.entry(s.segment.clone()).or_default() += 1;
        }
        match self.keep {
            Keep::All => self.batches.push((batch, scores)),
            Keep::Top(n) => {
                self.top.extend(scores);
                if self.top.len() > 2 * n.max(1) {
                    self.cut(n);
                }
            }
        }
    }

    fn cut(&mut self, n: usize) {
        self.top.sort_by(|a, b| {
            b.value
                .total_cmp(&a.value)
                .then_with(|| a.patron.cmp(&b.patron))
        });
        self.top.truncate(n);
    }

    fn into_scores(mut self) -> Vec<Scored> {
        match self.keep {
            Keep::All => {
                self.batches.sort_by_key(|(i, _)| *i);
                self.batches.into_iter().flat_map(|(_, s)| s).collect()
            }
            Keep::Top(n) => {
                self.cut(n);
                self.top
            }
        }
    }
}

/// Scores every patron in the store on every core. Each worker takes the
/// next range of ids, reads it on its own connection (summaries are the
/// costliest part of a run), scores it, and hands the scores to the run's
/// writer; this thread only reports progress. Returns the writer, every
/// score written, for the caller to commit.
fn score_in_parallel(
    store: &dyn Backend,
    pipeline: &Pipeline,
    scorer: &Scorer,
    as_of: NaiveDate,
    total: u64,
    sink: Mutex<(Box<dyn RunWriter>, &mut Tally)>,
    progress: &mut dyn Progress,
) -> Result<Box<dyn RunWriter>> {
    const BATCH: usize = 1000;
    let ranges = store.patron_ranges(BATCH).map_err(Error::store)?;
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(ranges.len().max(1));
    let next = AtomicUsize::new(0);
    let running = AtomicUsize::new(workers);
    let scored = AtomicU64::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        failed.lock().expect("a worker panicked").get_or_insert(e);
    };
    // Opened here: the store itself stays on this thread.
    let readers = (0..workers)
        .map(|_| store.patron_reader())
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(Error::store)?;
    std::thread::scope(|s| {
        for reader in readers {
            let (next, running, scored, ranges, sink) = (&next, &running, &scored, &ranges, &sink);
            let fail = &fail;
            let failed = &failed;
            s.spawn(move || {
                // However this worker ends, the progress loop hears of it.
                struct Done<'a>(&'a AtomicUsize);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Release);
                    }
                }
                let _done = Done(running);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((lo, hi)) = ranges.get(i) else {
                        return;
                    };
                    if failed.lock().expect("a worker panicked").is_some() {
                        return;
                    }
                    let stored = reader
                        .patrons_between(lo, hi, as_of)
                        .map_err(Error::store)
                        .and_then(|batch| {
                            let scores = pipeline.score(scorer, &batch)?;
                            let mut sink = sink.lock().expect("a worker panicked");
                            sink.0.append(&scores).map_err(Error::store)?;
                            sink.1.add(i, scores);
                            Ok(batch.len())
                        });
                    match stored {
                        Ok(n) => {
                            scored.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e) => return fail(e),
                    }
                }
            });
        }
        while running.load(Ordering::Acquire) > 0 {
            progress.advance(scored.load(Ordering::Relaxed), total);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    // On any failure the writer is dropped here, and takes its rows along.
    if let Some(e) = failed.into_inner().expect("a worker panicked") {
        return Err(e);
    }
    progress.advance(scored.load(Ordering::Relaxed), total);
    Ok(sink.into_inner().expect("a worker panicked").0)
}
