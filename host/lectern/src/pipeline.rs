//! The pipelines: patrons through the privacy filter into a scorer, events
//! and recipients into a messenger, and patrons through the filter into an
//! output. This is where the privacy invariant is enforced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::{AuditEntry, AuditLog};
use crate::config::DEFAULT_K_FLOOR;
use crate::error::{Error, Failure, Result};
use crate::manifest::ILS_ROLE;
use crate::model::{Composed, Event, Patron, Scored, Skipped};
use crate::outputs;
use crate::plugin::{Composition, Messenger, Plugin, PrivacyFilter, Scorer};
use crate::privacy::{AccessContext, Action, Actor, Field, Pseudonyms, Purpose, Rules};

/// Runs plugins over the library's records, with the privacy policy
/// applied to every record on the way in and every read audited. Get one
/// from [`Lectern::pipeline`](crate::Lectern::pipeline).
///
/// A plugin gets the fields its manifest declares *and* the policy allows
/// for the call's purpose and actor. A policy is always in force: the
/// library's, one given with [`Pipeline::with_policy`], or, when neither
/// is, a built-in one that lets no field out. The patron's consent has the
/// last word: reading history (`interests`)
/// leaves the host only for patrons who consented to its use, except in
/// their own export, and marketing events for patrons without marketing
/// consent are skipped before any plugin sees them.
pub struct Pipeline {
    policy: Option<PrivacyFilter>,
    /// A trial on synthetic records ([`crate::Lectern::trial`]): without a
    /// policy, every field a plugin declares passes instead of none.
    trial: bool,
    audit: Arc<dyn AuditLog>,
    keys: Pseudonyms,
    as_of: NaiveDate,
    batch_size: usize,
    /// The smallest k an aggregate may ask for.
    k_floor: usize,
    policies: Mutex<HashMap<AccessContext, Arc<(Rules, bool)>>>,
}

/// An aggregate over patrons: counts per group, with every group smaller
/// than `k` hidden.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    /// The fields grouped by.
    pub by: Vec<Field>,
    /// The smallest group shown.
    pub k: usize,
    /// The groups shown, largest first.
    pub groups: Vec<Group>,
    /// How many groups were hidden for being smaller than `k`.
    pub hidden_groups: usize,
    /// The readers in them together, only when that is at least `k`, so
    /// that no total tells the size of one small group.
    pub hidden_readers: Option<usize>,
}

impl Aggregate {
    /// What was hidden, as one note.
    pub fn hidden(&self) -> Hidden {
        Hidden {
            groups: self.hidden_groups,
            readers: self.hidden_readers,
            k: self.k,
        }
    }
}

/// One group of an [`Aggregate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The group's value of each field, as text; `—` where unknown.
    pub key: Vec<String>,
    /// Patrons in the group.
    pub patrons: usize,
    /// Mean loans in the last year, where the policy lets activity out.
    pub mean_loans_365d: Option<f64>,
}

/// The smallest group an aggregate shows by default.
pub const DEFAULT_K: usize = 10;

/// Refuses `k` below `floor`.
pub(crate) fn check_k(k: usize, floor: usize) -> Result<()> {
    if k < floor {
        return Err(Error::Denied(format!(
            "k = {k} is below the library's floor of {floor}: groups smaller than {floor} are \
             never shown; ask for k = {floor} or more (the floor is `[privacy] k-floor` in \
             lectern.toml)"
        )));
    }
    Ok(())
}

/// What k-suppression hid: how many groups, holding how many readers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Hidden {
    /// Groups smaller than k.
    pub groups: usize,
    /// The readers in them together, only when that is at least k: a
    /// smaller total would tell the size of a hidden group.
    pub readers: Option<usize>,
    /// The k the groups were held to.
    pub k: usize,
}

impl std::fmt::Display for Hidden {
    /// `12 readers in 3 groups of fewer than 10 readers each are not shown`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = match self.groups {
            1 => "1 group".to_string(),
            n => format!("{n} groups"),
        };
        let k = self.k;
        match (self.groups, self.readers) {
            (0, _) => write!(f, "no group is smaller than {k} readers; none is hidden"),
            (1, Some(n)) => write!(f, "{n} readers in 1 group of fewer than {k} are not shown"),
            (_, Some(n)) => write!(
                f,
                "{n} readers in {groups} of fewer than {k} readers each are not shown"
            ),
            (_, None) => write!(
                f,
                "fewer than {k} readers, in {groups} of fewer than {k}, are not shown"
            ),
        }
    }
}

/// Keeps the groups of at least `k`; returns them and what was hidden.
pub fn suppress_small_groups<K, V>(
    groups: Vec<(K, V)>,
    k: usize,
    size: impl Fn(&V) -> usize,
) -> (Vec<(K, V)>, Hidden) {
    let (mut hidden_groups, mut readers) = (0, 0);
    let mut kept = Vec::with_capacity(groups.len());
    for (key, v) in groups {
        let n = size(&v);
        if n >= k {
            kept.push((key, v));
        } else {
            hidden_groups += 1;
            readers += n;
        }
    }
    let hidden = Hidden {
        groups: hidden_groups,
        readers: (readers >= k).then_some(readers),
        k,
    };
    (kept, hidden)
}

/// Refuses `role` unless the policy in force declares it or it is the
/// host's [`ILS_ROLE`]: there are no other roles.
pub(crate) fn check_role(policy: Option<&PrivacyFilter>, role: &str) -> Result<()> {
    if role == ILS_ROLE {
        return Ok(());
    }
    let declared: &[String] = policy.map_or(&[], |p| &p.plugin().manifest().roles);
    if declared.iter().any(|r| r == role) {
        return Ok(());
    }
    let which = match policy {
        Some(p) => format!("the privacy policy `{}`", p.plugin().id()),
        None => "the built-in policy (no `[privacy] policy` is configured)".to_string(),
    };
    let known = if declared.is_empty() {
        "none; declare them in its plugin.toml, `[policy] roles = [...]`".to_string()
    } else {
        declared.join(", ")
    };
    Err(Error::Denied(format!(
        "unknown staff role `{}`: {which} declares these roles: {known}",
        role.escape_default()
    )))
}

/// What [`Pipeline::compose`] produced.
#[derive(Debug, Default)]
pub struct ComposeReport {
    /// The messages, in event order.
    pub messages: Vec<Composed>,
    /// Events that produced nothing, with the patron and the reason.
    pub skipped: Vec<Skipped>,
}

impl Pipeline {
    /// A pipeline as of today (UTC) that audits every read in `audit`,
    /// makes tokens under `keys`, and applies `policy`, or the built-in
    /// deny-by-default policy when there is none; batches of 1,000.
    pub(crate) fn new(
        audit: Arc<dyn AuditLog>,
        keys: Pseudonyms,
        policy: Option<PrivacyFilter>,
    ) -> Pipeline {
        Pipeline {
            policy,
            trial: false,
            audit,
            keys,
            as_of: Utc::now().date_naive(),
            batch_size: 1000,
            k_floor: DEFAULT_K_FLOOR,
            policies: Mutex::default(),
        }
    }

    /// The smallest k an aggregate may ask for: the library's floor.
    pub(crate) fn k_floor(mut self, k: usize) -> Pipeline {
        self.k_floor = k.max(1);
        self
    }

    /// Refuses a k below the library's floor: a request may raise k, never
    /// lower it.
    pub fn check_k(&self, k: usize) -> Result<()> {
        check_k(k, self.k_floor)
    }

    /// A pipeline for a trial store of synthetic records; see
    /// [`crate::Lectern::trial`].
    pub(crate) fn trial(mut self, trial: bool) -> Pipeline {
        self.trial = trial;
        self
    }

    /// Applies `policy` to every record before any plugin or output sees it.
    pub fn with_policy(mut self, policy: PrivacyFilter) -> Pipeline {
        self.policy = Some(policy);
        self.policies = Mutex::default();
        self
    }

    /// The date plugins see as "today".
    pub fn as_of(mut self, date: NaiveDate) -> Pipeline {
        self.as_of = date;
        self
    }

    /// How many records go to a plugin in one call.
    pub fn batch_size(mut self, n: usize) -> Pipeline {
        self.batch_size = n.max(1);
        self
    }

    /// The pseudonym a plugin or an output sees for `patron_id`.
    pub fn token(&self, patron_id: &str) -> String {
        self.keys.patron_token(patron_id)
    }

    /// Scores `patrons`, in batches; the result is in the same order.
    pub fn score(&self, scorer: &Scorer, patrons: &[Patron]) -> Result<Vec<Scored>> {
        let plugin = scorer.plugin();
        let ctx = plugin_context(plugin, Purpose::Scoring);
        let mut out = Vec::with_capacity(patrons.len());
        for chunk in patrons.chunks(self.batch_size) {
            let refs: Vec<&Patron> = chunk.iter().collect();
            let batch = self.project(&ctx, Some(plugin), &refs)?;
            let tokens: Vec<String> = batch.iter().map(|p| p.id.clone()).collect();
            let scores = scorer.score_batch(self.as_of, batch)?;
            let text: usize = scores
                .iter()
                .map(|s| s.segment.len() + s.reasons.iter().map(String::len).sum::<usize>())
                .sum();
            plugin.check_output(text)?;
            let scores = outputs::scores(&plugin.manifest().segments, &tokens, scores)
                .map_err(|message| plugin.fail(Failure::BadOutput { message }))?;
            for (score, patron) in scores.into_iter().zip(chunk) {
                out.push(Scored {
                    patron: patron.id.clone(),
                    ..score
                });
            }
        }
        Ok(out)
    }

    /// Composes notices for `events`, each addressed to one of `patrons`.
    /// Transactional notices and marketing go through the policy under their
    /// own purposes.
    pub fn compose(
        &self,
        messenger: &Messenger,
        events: &[Event],
        patrons: &[Patron],
    ) -> Result<ComposeReport> {
        let plugin = messenger.plugin();
        let by_id: HashMap<&str, &Patron> = patrons.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut report = ComposeReport::default();
        let mut queued: Vec<(&Event, &Patron)> = Vec::new();
        for e in events {
            match by_id.get(e.patron.as_str()) {
                // Marketing goes only to patrons who asked for it; notices
                // about their own loans and holds always go.
                Some(p) if e.kind.is_marketing() && !p.consents.is_some_and(|c| c.marketing) => {
                    report
                        .skipped
                        .push(Skipped::new(e, "the patron has not consented to marketing"))
                }
                Some(p) => queued.push((e, p)),
                None => report
                    .skipped
                    .push(Skipped::new(e, format!("no patron with id `{}`", e.patron))),
            }
        }

        for purpose in [Purpose::MessagingTransactional, Purpose::MessagingMarketing] {
            let ctx = plugin_context(plugin, purpose);
            let mine: Vec<_> = queued
                .iter()
                .filter(|(e, _)| (purpose == Purpose::MessagingMarketing) == e.kind.is_marketing())
                .collect();
            for chunk in mine.chunks(self.batch_size) {
                let recipients: Vec<&Patron> = chunk.iter().map(|(_, p)| *p).collect();
                let projected = self.project(&ctx, Some(plugin), &recipients)?;
                let requests: Vec<(&Event, Patron)> = chunk
                    .iter()
                    .zip(projected)
                    .map(|((e, _), p)| (*e, p))
                    .collect();
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let results = compose_per_patron(messenger, self.as_of, requests, threads)?;
                let text: usize = results
                    .iter()
                    .flatten()
                    .flatten()
                    .map(|m| m.subject.len() + m.body.len() + m.dedupe_key.len() + m.locale.len())
                    .sum();
                plugin.check_output(text)?;
                for ((event, patron), result) in chunk.iter().zip(results) {
                    let messages = match result {
                        Ok(m) if m.is_empty() => {
                            report
                                .skipped
                                .push(Skipped::new(event, "no notice for this event"));
                            continue;
                        }
                        Ok(m) => m,
                        Err(e) => {
                            report
                                .skipped
                                .push(Skipped::new(event, format!("plugin error: {e}")));
                            continue;
                        }
                    };
                    outputs::messages(&event.id, &messages)
                        .map_err(|message| plugin.fail(Failure::BadOutput { message }))?;
                    for m in messages {
                        report.messages.push(Composed {
                            patron: patron.id.clone(),
                            event: event.id.clone(),
                            channel: m.channel,
                            locale: m.locale,
                            subject: m.subject,
                            body: m.body,
                            dedupe_key: m.dedupe_key,
                            send_after: m.send_after.and_then(|s| DateTime::from_timestamp(s, 0)),
                        });
                    }
                }
            }
        }
        Ok(report)
    }

    /// What `ctx` may see of `patrons`, as the policy decides: the records
    /// that go to an output, with tokens for ids.
    pub fn filter(&self, ctx: &AccessContext, patrons: &[Patron]) -> Result<Vec<Patron>> {
        let mut out = Vec::with_capacity(patrons.len());
        for chunk in patrons.chunks(self.batch_size) {
            let refs: Vec<&Patron> = chunk.iter().collect();
            out.extend(self.project(ctx, None, &refs)?);
        }
        Ok(out)
    }

    /// Counts `patrons` per group of `by`, as `ctx` may see them, hiding
    /// every group smaller than `k`. Each field of `by` must be one the
    /// policy lets out for `ctx`.
    pub fn aggregate(
        &self,
        ctx: &AccessContext,
        patrons: &[Patron],
        by: &[Field],
        k: usize,
    ) -> Result<Aggregate> {
        self.check_k(k)?;
        let rules = self.rules_for(ctx, None)?;
        if let Some(f) = by.iter().find(|f| rules.get(**f) == Action::Drop) {
            return Err(Error::Denied(format!(
                "the privacy policy does not let `{f}` out for {} by {}; group by one of: {}",
                ctx.purpose,
                ctx.actor,
                rules
                    .passed()
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut groups: std::collections::BTreeMap<Vec<String>, (usize, u64, usize)> =
            Default::default();
        for p in self.filter(ctx, patrons)? {
            // Once per patron: the record as its fields' JSON values.
            let record = serde_json::to_value(&p).unwrap_or_default();
            let key = by
                .iter()
                .map(|f| match record.get(f.as_str().replace('-', "_")) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "—".to_string(),
                })
                .collect();
            let g = groups.entry(key).or_default();
            g.0 += 1;
            if let Some(a) = p.activity {
                g.1 += u64::from(a.loans_365d);
                g.2 += 1;
            }
        }
        let (kept, hidden) = suppress_small_groups(groups.into_iter().collect(), k.max(1), |g| g.0);
        let mut groups: Vec<Group> = kept
            .into_iter()
            .map(|(key, (n, loans, with))| Group {
                key,
                patrons: n,
                mean_loans_365d: (with > 0).then(|| loans as f64 / with as f64),
            })
            .collect();
        groups.sort_by(|a, b| b.patrons.cmp(&a.patrons).then_with(|| a.key.cmp(&b.key)));
        Ok(Aggregate {
            by: by.to_vec(),
            k,
            groups,
            hidden_groups: hidden.groups,
            hidden_readers: hidden.readers,
        })
    }

    /// The fields that leave the host for `ctx`, before any per-record
    /// refinement: the policy's rules, intersected with what `plugin`
    /// declares.
    pub fn rules_for(&self, ctx: &AccessContext, plugin: Option<&Plugin>) -> Result<Rules> {
        let (policy, _) = *self.policy_rules(ctx)?;
        Ok(match plugin {
            Some(p) => Rules::keeping(p.declared_fields().iter().copied()).intersect(&policy),
            None => policy,
        })
    }

    /// What the policy lets a patron's export show to `ctx`'s role: the
    /// one use of `patron-export`, asked by [`crate::Lectern`] before an
    /// export or an erasure.
    pub(crate) fn export_rules(&self, ctx: &AccessContext) -> Result<Rules> {
        Ok(self.policy_rules_for(ctx, true)?.0)
    }

    /// The policy for `ctx`, asked of the plugin once per context.
    fn policy_rules(&self, ctx: &AccessContext) -> Result<Arc<(Rules, bool)>> {
        self.policy_rules_for(ctx, false)
    }

    fn policy_rules_for(&self, ctx: &AccessContext, export: bool) -> Result<Arc<(Rules, bool)>> {
        if let Actor::Reader(page) = &ctx.actor {
            return Err(Error::Denied(format!(
                "a reader's own {page} page shows them their own settings; it passes no patron \
                 field through a plugin, so no policy is asked about it"
            )));
        }
        if matches!(ctx.purpose, Purpose::Maintenance | Purpose::SelfService)
            || matches!(ctx.actor, Actor::Task(_))
        {
            return Err(Error::Denied(
                "the host's own upkeep reads no patron field; no policy is asked about it".into(),
            ));
        }
        if !self.trial {
            self.check_context(ctx, export)?;
        }
        // No policy configured: the built-in one lets nothing out, except
        // in a trial on synthetic records, where what a plugin declares
        // passes (the caller narrows these rules to the declaration).
        let Some(filter) = &self.policy else {
            let rules = if self.trial {
                Rules::keeping(Field::ALL.into_iter().filter(|f| *f != Field::Address))
            } else {
                Rules::NONE
            };
            return Ok(Arc::new((rules, false)));
        };
        if let Some(cached) = self.policies.lock().unwrap().get(ctx) {
            return Ok(cached.clone());
        }
        let policy = filter.policy_for(self.as_of, ctx)?;
        let rules = outputs::policy(&policy.rules)
            .map_err(|message| filter.plugin().fail(Failure::BadOutput { message }))?;
        let entry = Arc::new((rules, policy.refine_per_record));
        self.policies
            .lock()
            .unwrap()
            .insert(ctx.clone(), entry.clone());
        Ok(entry)
    }

    /// Refuses an access that cannot be: a staff role the policy in force
    /// does not declare, or a patron's export outside the export of that
    /// one patron.
    fn check_context(&self, ctx: &AccessContext, export: bool) -> Result<()> {
        if ctx.purpose == Purpose::PatronExport && !export {
            return Err(Error::Denied(
                "`patron-export` is the purpose of one patron's own export and of nothing else; \
                 export the patron with `lectern patron export ID` (or the service's \
                 /v1/patrons/{id}/export)"
                    .into(),
            ));
        }
        if let Actor::Staff(role) = &ctx.actor {
            check_role(self.policy.as_ref(), role)?;
            if role == ILS_ROLE {
                return Err(Error::Denied(format!(
                    "the `{ILS_ROLE}` role pushes patrons and events and reads nothing"
                )));
            }
        }
        Ok(())
    }

    /// Projects each record for `ctx`: the policy, refined per record when
    /// the policy asks for it, intersected with what `plugin` declares.
    fn project(
        &self,
        ctx: &AccessContext,
        plugin: Option<&Plugin>,
        patrons: &[&Patron],
    ) -> Result<Vec<Patron>> {
        let projected = self.project_unaudited(ctx, plugin, patrons)?;
        self.audit_read(ctx, &projected)?;
        Ok(projected)
    }

    /// Writes the audit entry for `ctx` reading `projected`: the fields that
    /// left, and the patrons by the tokens the projection carries, so the
    /// log never holds an id.
    fn audit_read(&self, ctx: &AccessContext, projected: &[Patron]) -> Result<()> {
        let fields: Vec<Field> = Field::ALL
            .into_iter()
            .filter(|f| projected.iter().any(|p| has(p, *f)))
            .collect();
        self.audit
            .append(&AuditEntry {
                at: Utc::now(),
                context: ctx.clone(),
                fields,
                patrons: projected.iter().map(|p| p.id.clone()).collect(),
            })
            .map_err(|e| Error::store(e.context("failed to write the audit log; nothing was read")))
    }

    fn project_unaudited(
        &self,
        ctx: &AccessContext,
        plugin: Option<&Plugin>,
        patrons: &[&Patron],
    ) -> Result<Vec<Patron>> {
        let (policy, refine) = *self.policy_rules(ctx)?;
        let declared = plugin.map(|p| Rules::keeping(p.declared_fields().iter().copied()));
        // The third set: what the patron consented to, whatever the policy.
        let consented = |mut rules: Rules, p: &Patron| {
            if ctx.purpose != Purpose::PatronExport
                && !p.consents.is_some_and(|c| c.reading_history)
            {
                rules.set(Field::Interests, Action::Drop);
            }
            rules
        };
        let narrow = |rules: Rules| declared.map_or(rules, |d| d.intersect(&rules));
        let base = narrow(policy);
        let filter = match &self.policy {
            Some(f) if refine => f,
            _ => {
                return Ok(patrons
                    .iter()
                    .map(|p| consented(base, p).project(p, &self.keys))
                    .collect());
            }
        };
        // The refinement sees the record as the policy filtered it, narrowed
        // to the fields the filter's own manifest declares, after consent;
        // and that read is audited as the filter's own, before the call.
        let own = Rules::keeping(filter.plugin().declared_fields().iter().copied());
        let seen: Vec<Patron> = patrons
            .iter()
            .map(|p| consented(own.intersect(&policy), p).project(p, &self.keys))
            .collect();
        self.audit_read(&plugin_context(filter.plugin(), ctx.purpose), &seen)?;
        let refinements = filter.refine_batch(self.as_of, ctx, seen)?;
        patrons
            .iter()
            .zip(refinements)
            .map(|(p, refinement)| {
                let refinement: Vec<(Field, Action)> = refinement;
                let rules = outputs::refinement(&policy, &refinement)
                    .map_err(|message| filter.plugin().fail(Failure::BadOutput { message }))?;
                Ok(consented(narrow(rules), p).project(p, &self.keys))
            })
            .collect::<Result<Vec<_>, Error>>()
    }
}

/// Composes each patron's requests in a call of their own, on a fresh
/// instance of the pre-instantiated component, so that a messenger never
/// holds two patrons' data at once. The results come back in the order
/// of `requests`.
pub(crate) fn compose_per_patron(
    messenger: &Messenger,
    as_of: NaiveDate,
    requests: Vec<(&Event, Patron)>,
    threads: usize,
) -> Result<Vec<Composition>> {
    let plugin = messenger.plugin();
    let total = requests.len();
    let mut order: Vec<String> = Vec::new();
    // Each patron's requests, with where their results go.
    type Slotted<'e> = Vec<(usize, (&'e Event, Patron))>;
    let mut groups: HashMap<String, Slotted<'_>> = HashMap::new();
    for (i, (event, patron)) in requests.into_iter().enumerate() {
        let group = groups.entry(patron.id.clone()).or_insert_with(|| {
            order.push(patron.id.clone());
            Vec::new()
        });
        group.push((i, (event, patron)));
    }
    // Each patron's call on its own fresh instance, on up to `threads`
    // threads; results go back to their requests' places.
    // Each call: the requests' places, and the requests.
    type Call<'e> = (Vec<usize>, Vec<(&'e Event, Patron)>);
    let calls: Vec<Call<'_>> = order
        .into_iter()
        .map(|token| {
            groups
                .remove(&token)
                .unwrap_or_default()
                .into_iter()
                .unzip()
        })
        .collect();
    let workers = threads.min(calls.len() / 16 + 1);
    let calls = Mutex::new(calls.into_iter());
    let call = || -> Result<Vec<(usize, Composition)>> {
        let mut mine = Vec::new();
        loop {
            let next = calls.lock().expect("a composing thread panicked").next();
            let Some((slots, batch)) = next else {
                return Ok(mine);
            };
            let results = messenger
                .compose_batch(as_of, batch)
                .and_then(|results| {
                    if results.len() == slots.len() {
                        Ok(results)
                    } else {
                        Err(plugin.fail(Failure::BadOutput {
                            message: format!(
                                "{} results for {} requests",
                                results.len(),
                                slots.len()
                            ),
                        }))
                    }
                })
                .inspect_err(|_| {
                    // The messenger has failed: no other thread starts a call.
                    *calls.lock().expect("a composing thread panicked") = Vec::new().into_iter();
                })?;
            mine.extend(slots.into_iter().zip(results));
        }
    };
    let done: Vec<Result<Vec<(usize, Composition)>>> = if workers <= 1 {
        vec![call()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|_| s.spawn(call)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a composing thread panicked"))
                .collect()
        })
    };
    let mut out: Vec<Option<Composition>> = (0..total).map(|_| None).collect();
    for part in done {
        for (slot, result) in part? {
            out[slot] = Some(result);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every request is in one patron's call"))
        .collect())
}

/// Whether `field` left the host for `p`.
fn has(p: &Patron, field: Field) -> bool {
    match field {
        Field::CardNumber => p.card_number.is_some(),
        Field::Name => p.name.is_some(),
        Field::Email => p.email.is_some(),
        Field::Phone => p.phone.is_some(),
        Field::BirthDate => p.birth_date.is_some(),
        Field::AgeBand => p.age_band.is_some(),
        Field::Category => p.category.is_some(),
        Field::HomeBranch => p.home_branch.is_some(),
        Field::EnrolledOn => p.enrolled_on.is_some(),
        Field::ExpiresOn => p.expires_on.is_some(),
        Field::Attributes => p.attributes.is_some(),
        Field::Consents => p.consents.is_some(),
        Field::Locale => p.locale.is_some(),
        Field::Channels => p.channels.is_some(),
        Field::Activity => p.activity.is_some(),
        Field::Interests => p.interests.is_some(),
        Field::Segments => p.segments.is_some(),
        Field::Address => p.address.is_some(),
    }
}

fn plugin_context(plugin: &Plugin, purpose: Purpose) -> AccessContext {
    AccessContext {
        purpose,
        actor: Actor::Plugin(plugin.id().to_string()),
    }
}
