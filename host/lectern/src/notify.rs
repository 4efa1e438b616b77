//! Notices, from events to the outbox: events are detected in the store as
//! of a moment, composed by messenger plugins through the privacy pipeline,
//! passed through the library's own rules, and queued.
//!
//! The host's rules, which no plugin can get around:
//! - transactional notices (the patron's own loans, holds and membership)
//!   always go; marketing (new arrivals, surveys, win-back) needs the
//!   patron's consent, checked again when the message is sent;
//! - a new-arrival match reads reading history, so it is made only for
//!   patrons who consented to that use;
//! - a channel the patron opted out of is never used, a channel they did
//!   not choose is used only for print as the fallback of a transactional
//!   notice, and a message needs an address on its channel;
//! - marketing stops at the daily limit; quiet hours hold everything but
//!   print until they end;
//! - every message has a deterministic dedupe key from its event, patron,
//!   channel and date, so running `notify` twice queues nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, Datelike as _, Days, NaiveDate, NaiveTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::{NoticeRules, local_day, quiet_until};
use crate::model::{
    Channel, Composed, DigestTitle, Event, EventKind, Hold, Loan, Patron, Pick, Skipped,
};
use crate::pipeline::Pipeline;
use crate::plugin::Messenger;
use crate::privacy::Pseudonyms;
use crate::store::{HoldRecord, Outbox, Preferences, Queued, Store};

/// A new title, for matching against readers' subjects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// The catalogue's id for it.
    pub id: String,
    /// The title.
    pub title: String,
    /// Its subject or classification, as loans carry it.
    pub subject: String,
}

/// A survey to invite a sample of readers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// Its id: one invitation per patron per survey.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Where to answer it.
    pub url: String,
    /// Who is invited: for each `(scorer, segment, share)`, that share
    /// (from 0 to 1) of the readers the scorer's latest run put in the
    /// segment. Several strata let heavy users be asked more often. The
    /// sample is drawn by the patrons' keyed tokens, so it is the same each
    /// time.
    pub strata: Vec<(String, String, f64)>,
    /// Whether the library's own reader pages host it: each reader is
    /// then sent their own one-time link to it instead of `url`.
    pub hosted: bool,
}

impl Survey {
    /// A survey at `url`, inviting `sample` (0 to 1) of the readers in
    /// `segment`. Its id is derived from the URL, so the same survey run
    /// again invites nobody twice.
    pub fn new(title: &str, url: &str, segment: (String, String), sample: f64) -> Survey {
        Survey {
            id: hex::encode(&Sha256::digest(url.as_bytes())[..6]),
            title: title.to_string(),
            url: url.to_string(),
            strata: vec![(segment.0, segment.1, sample)],
            hosted: false,
        }
    }

    /// The survey `def` on the library's reader pages, inviting `sample`
    /// of the readers in `segment`, each with their own one-time link.
    pub fn hosted(
        def: &crate::survey::SurveyDef,
        segment: (String, String),
        sample: f64,
    ) -> Survey {
        Survey::hosted_by(def, vec![(segment.0, segment.1, sample)])
    }

    /// The survey `def` on the library's reader pages, inviting each
    /// stratum's share: its own `[sampling]` when it has one.
    pub fn hosted_by(def: &crate::survey::SurveyDef, strata: Vec<(String, String, f64)>) -> Survey {
        Survey {
            id: def.id.clone(),
            title: def.title.en.clone(),
            url: String::new(),
            strata,
            hosted: true,
        }
    }
}

/// What to look for beyond circulation.
#[derive(Debug, Clone, Default)]
pub struct Campaigns {
    /// New titles to tell interested readers about.
    pub arrivals: Vec<Arrival>,
    /// A survey to invite readers to.
    pub survey: Option<Survey>,
    /// A round of current-awareness digests.
    pub awareness: Option<Awareness>,
}

/// A round of current-awareness digests (selective dissemination of
/// information): key readers, and readers who asked from the preference
/// centre, each get the period's new arrivals and in-demand titles in their
/// own subjects and in the subjects rising in their department.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Awareness {
    /// The period, `YYYY-MM`: one digest per reader per period.
    pub period: String,
    /// The scorer whose latest run names the key readers.
    pub scorer: String,
    /// Its segments whose readers are key readers.
    pub key_segments: Vec<String>,
    /// The patron attribute naming a reader's department.
    pub department: String,
    /// Subjects rising in each department, from aggregates.
    pub rising: BTreeMap<String, Vec<String>>,
    /// Titles many readers wait for: `(title, subject)`.
    pub in_demand: Vec<(String, String)>,
}

/// The most titles in one digest.
pub const DIGEST_TITLES: usize = 20;

/// A reader's own subjects: the three they borrow in most.
fn own_subjects(p: &Patron) -> Vec<String> {
    let mut mine: Vec<(&String, &u32)> = p.interests.iter().flatten().collect();
    mine.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    mine.into_iter().take(3).map(|(s, _)| s.clone()).collect()
}

/// The digests of a round: one event per reader who has titles to hear
/// of. Consent is checked where every marketing event's is, when routed.
fn awareness_events(
    store: &dyn Store,
    a: &Awareness,
    arrivals: &[Arrival],
    today: NaiveDate,
) -> Result<Vec<Event>> {
    let mut readers: BTreeSet<String> = BTreeSet::new();
    for segment in &a.key_segments {
        readers.extend(store.segment_members(&a.scorer, segment)?);
    }
    readers.extend(store.awareness_readers()?);
    let ids: Vec<String> = readers.into_iter().collect();
    let mut events = Vec::new();
    for p in store.patrons_among(&ids, today)? {
        let subjects = own_subjects(&p);
        let rising: Vec<String> = p
            .attributes
            .as_ref()
            .and_then(|attrs| attrs.get(&a.department))
            .and_then(|d| a.rising.get(d))
            .cloned()
            .unwrap_or_default();
        let wanted = |s: &str| subjects.iter().chain(&rising).any(|x| x == s);
        let mut titles: Vec<DigestTitle> = arrivals
            .iter()
            .filter(|t| wanted(&t.subject))
            .map(|t| DigestTitle {
                title: t.title.clone(),
                subject: t.subject.clone(),
                why: Pick::NewArrival,
            })
            .collect();
        titles.extend(
            a.in_demand
                .iter()
                .filter(|(_, s)| wanted(s))
                .map(|(t, s)| DigestTitle {
                    title: t.clone(),
                    subject: s.clone(),
                    why: Pick::InDemand,
                }),
        );
        titles.truncate(DIGEST_TITLES);
        if titles.is_empty() {
            continue;
        }
        // The event's day is the period's first, so that the round run on
        // any day of the month has the same dedupe key.
        let first = today.with_day(1).unwrap_or(today);
        events.push(Event {
            id: format!("current-awareness/{}", a.period),
            patron: p.id.clone(),
            at: midnight(first),
            kind: EventKind::CurrentAwareness {
                period: a.period.clone(),
                subjects,
                rising,
                titles,
            },
        });
    }
    Ok(events)
}

pub(crate) fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

/// The hold-ready event for `h`, the same whether the ILS pushed it or
/// detection found it, so that its notice is queued once.
pub(crate) fn hold_ready(h: &HoldRecord) -> Event {
    Event {
        id: format!("hold-ready/{}", h.id),
        patron: h.patron.clone(),
        at: midnight(h.placed_on),
        kind: EventKind::HoldReady {
            hold: Hold {
                title: h.title.clone().unwrap_or_else(|| "(untitled)".into()),
                pickup_branch: h.pickup_branch.clone().unwrap_or_default(),
                expires_on: h.expires_on,
            },
        },
    }
}

/// Finds the events due at `now`: due soon (by each patron's advance
/// notice), overdue at each step, holds ready and about to expire,
/// memberships about to expire, new arrivals in readers' subjects, a survey
/// for a sampled segment, and win-back for lapsed readers.
///
/// Each event's id says what it is about and at which stage, and its time
/// is the day it concerns, so the same event found again tomorrow has the
/// same id and dedupe key.
pub(crate) fn detect(
    store: &dyn Store,
    keys: &Pseudonyms,
    rules: &NoticeRules,
    campaigns: &Campaigns,
    now: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let today = local_day(rules, now);
    let mut events = Vec::new();
    let mut prefs: HashMap<String, Option<Preferences>> = HashMap::new();
    let mut notice_days = |patron: &str| -> Result<u32> {
        if !prefs.contains_key(patron) {
            prefs.insert(patron.to_string(), store.preferences(patron)?);
        }
        Ok(prefs[patron]
            .as_ref()
            .and_then(|p| p.notice_days)
            .unwrap_or(rules.due_soon_days))
    };

    // Titles other readers wait for: the reader who has one hears so,
    // courteously and naming no one, as the loan nears its due date and
    // again at its first overdue step.
    let queued = store.holds_queued()?;
    let first_step = rules.overdue_steps.first().copied();
    for l in store.open_loans(today + Days::new(30))? {
        let waiting = l
            .title
            .as_ref()
            .and_then(|t| queued.get(t))
            .copied()
            .unwrap_or(0);
        let loan = Loan {
            title: l.title.clone().unwrap_or_else(|| "(untitled)".into()),
            barcode: l.item.clone(),
            due_on: l.due_on,
            renewals: l.renewals,
        };
        let until_due = (l.due_on - today).num_days();
        if until_due >= 0 {
            if until_due <= i64::from(notice_days(&l.patron)?) {
                if waiting > 0 {
                    events.push(Event {
                        id: format!("title-wanted/{}/{}/due-soon", l.id, l.due_on),
                        patron: l.patron.clone(),
                        at: midnight(l.due_on),
                        kind: EventKind::TitleWanted {
                            loan: loan.clone(),
                            waiting,
                            overdue: false,
                        },
                    });
                }
                events.push(Event {
                    id: format!("due-soon/{}/{}", l.id, l.due_on),
                    patron: l.patron,
                    at: midnight(l.due_on),
                    kind: EventKind::DueSoon { loan },
                });
            }
            continue;
        }
        let days_overdue = (-until_due) as u32;
        if let Some(&step) = rules
            .overdue_steps
            .iter()
            .rev()
            .find(|&&s| s <= days_overdue)
        {
            if waiting > 0 && Some(step) == first_step {
                events.push(Event {
                    id: format!("title-wanted/{}/{}/overdue", l.id, l.due_on),
                    patron: l.patron.clone(),
                    at: midnight(l.due_on + Days::new(step.into())),
                    kind: EventKind::TitleWanted {
                        loan: loan.clone(),
                        waiting,
                        overdue: true,
                    },
                });
            }
            events.push(Event {
                id: format!("overdue/{}/{}/{step}", l.id, l.due_on),
                patron: l.patron,
                at: midnight(l.due_on + Days::new(step.into())),
                kind: EventKind::Overdue { loan, days_overdue },
            });
        }
    }

    for h in store.holds_waiting()? {
        if h.expires_on.is_some_and(|e| e < today) {
            continue;
        }
        let ready = hold_ready(&h);
        let EventKind::HoldReady { hold } = ready.kind.clone() else {
            unreachable!("hold_ready makes a hold-ready event")
        };
        events.push(ready);
        if let Some(expires) = h.expires_on
            && (expires - today).num_days() <= i64::from(rules.hold_expiring_days)
        {
            events.push(Event {
                id: format!("hold-expiring/{}/{expires}", h.id),
                patron: h.patron,
                at: midnight(expires),
                kind: EventKind::HoldExpiring { hold },
            });
        }
    }

    let horizon = today + Days::new(rules.membership_expiring_days.into());
    for (patron, expires_on) in store.memberships_expiring(today, horizon)? {
        events.push(Event {
            id: format!("membership-expiring/{expires_on}"),
            patron,
            at: midnight(expires_on),
            kind: EventKind::MembershipExpiring { expires_on },
        });
    }

    if !campaigns.arrivals.is_empty() {
        let subjects: Vec<String> = campaigns
            .arrivals
            .iter()
            .map(|a| a.subject.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut readers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let matches = store.readers_of(&subjects, today)?;
        for (patron, subject) in &matches {
            readers.entry(subject).or_default().push(patron.clone());
        }
        for a in &campaigns.arrivals {
            for patron in readers.get(a.subject.as_str()).into_iter().flatten() {
                events.push(Event {
                    id: format!("new-arrival/{}", a.id),
                    patron: patron.clone(),
                    at: midnight(today),
                    kind: EventKind::NewArrival {
                        title: a.title.clone(),
                        subject: a.subject.clone(),
                    },
                });
            }
        }
    }

    if let Some(a) = &campaigns.awareness {
        let digests = awareness_events(store, a, &campaigns.arrivals, today)?;
        // A reader who gets the digest hears of the arrivals in it there,
        // not one message per title as well; arrivals the digest leaves
        // out still come one by one.
        let in_digest: HashSet<(String, String)> = digests
            .iter()
            .flat_map(|e| match &e.kind {
                EventKind::CurrentAwareness { titles, .. } => titles
                    .iter()
                    .filter(|t| t.why == Pick::NewArrival)
                    .map(|t| (e.patron.clone(), t.title.clone()))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        events.retain(|e| match &e.kind {
            EventKind::NewArrival { title, .. } => {
                !in_digest.contains(&(e.patron.clone(), title.clone()))
            }
            _ => true,
        });
        events.extend(digests);
    }

    if let Some(s) = &campaigns.survey {
        let mut invited: BTreeSet<String> = BTreeSet::new();
        for (scorer, segment, share) in &s.strata {
            for patron in store.segment_members(scorer, segment)? {
                if in_sample(keys, &patron, &s.id, *share) {
                    invited.insert(patron);
                }
            }
        }
        for patron in invited {
            events.push(Event {
                id: format!("survey/{}", s.id),
                patron,
                at: midnight(today),
                kind: EventKind::SurveyInvitation {
                    title: s.title.clone(),
                    url: s.url.clone(),
                },
            });
        }
    }

    // One win-back per period, so a reader who stays lapsed is not pressed.
    let period = today.num_days_from_ce() as u32 / rules.win_back_every_days;
    let period_start =
        NaiveDate::from_num_days_from_ce_opt((period * rules.win_back_every_days) as i32)
            .unwrap_or(today);
    for (scorer, segment) in &rules.win_back {
        for patron in store.segment_members(scorer, segment)? {
            events.push(Event {
                id: format!("win-back/{scorer}/{segment}/{period_start}"),
                patron,
                at: midnight(period_start),
                kind: EventKind::WinBack,
            });
        }
    }
    Ok(events)
}

/// Whether `patron` falls in a `share` sample for `survey`: decided by the
/// keyed token, so the sample is stable and cannot be guessed from ids.
pub(crate) fn in_sample(keys: &Pseudonyms, patron: &str, survey: &str, share: f64) -> bool {
    let token = keys.patron_token(&format!("{survey}\u{0}{patron}"));
    let n = u64::from_str_radix(&token[token.len().saturating_sub(12)..], 16).unwrap_or(0);
    (n as f64) < share * (1u64 << 48) as f64
}

/// The outbox key of a message: the same notice (event, patron, channel,
/// the day the event concerns, and the composing plugin's own key) always
/// gets the same one.
pub fn dedupe_key(event: &Event, channel: Channel, plugin: &str, plugin_key: &str) -> String {
    key_of(&Subject::of(event), channel, plugin, plugin_key)
}

fn key_of(event: &Subject<'_>, channel: Channel, plugin: &str, plugin_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        event.id,
        event.patron,
        channel.as_str(),
        &event.at.date_naive().to_string(),
        plugin,
        plugin_key,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// What [`Lectern::notify`](crate::Lectern::notify) did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifyReport {
    /// Events found or given.
    pub events: usize,
    /// Events per kind.
    pub by_kind: BTreeMap<String, usize>,
    /// Messages the plugins composed.
    pub composed: usize,
    /// Messages queued.
    pub queued: usize,
    /// Messages already in the outbox from an earlier run.
    pub duplicates: usize,
    /// Messages held back by quiet hours (queued, to go when they end).
    pub held_for_quiet_hours: usize,
    /// Messages and events that were not queued, with the reason: event id
    /// and why.
    pub skipped: Vec<Skipped>,
    /// Messengers that failed (trapped, timed out, broke the contract),
    /// each with its error, which names the plugin. Their events are in
    /// `skipped`; the other messengers' messages were queued.
    pub failed: Vec<String>,
}

/// Composes `events` with `messengers` and queues what the library's rules
/// let through, in one transaction. Each messenger gets the events its
/// manifest lists (`inputs.events`), or all of them if it lists none.
pub(crate) fn notify<S: Store + Outbox + ?Sized>(
    store: &mut S,
    pipeline: &Pipeline,
    messengers: &[Messenger],
    rules: &NoticeRules,
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<NotifyReport> {
    let today = local_day(rules, now);
    let mut report = NotifyReport {
        events: events.len(),
        ..NotifyReport::default()
    };
    for e in events {
        *report.by_kind.entry(e.kind.name().to_string()).or_default() += 1;
    }

    // Every recipient read at once, in a few statements.
    let mut ids: Vec<String> = events.iter().map(|e| e.patron.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut patrons: HashMap<String, (Patron, Preferences)> = HashMap::new();
    for mut p in store.patrons_among(&ids, today)? {
        if let Some(prefs) = store.preferences(&p.id)? {
            // A messenger picks among the channels the patron still takes.
            if let Some(channels) = &mut p.channels {
                channels.retain(|c| !prefs.opted_out.contains(c));
            }
            patrons.insert(p.id.clone(), (p, prefs));
        }
    }
    // Route events to messengers; matching on reading history needs consent.
    let mut routed: Vec<Vec<Event>> = vec![Vec::new(); messengers.len()];
    for e in events {
        let Some((p, _)) = patrons.get(&e.patron) else {
            report
                .skipped
                .push(Skipped::new(e, format!("no patron with id `{}`", e.patron)));
            continue;
        };
        if matches!(
            e.kind,
            EventKind::NewArrival { .. } | EventKind::CurrentAwareness { .. }
        ) && !p.consents.is_some_and(|c| c.reading_history)
        {
            report.skipped.push(Skipped::new(
                e,
                "matched on reading history, which the patron has not consented to",
            ));
            continue;
        }
        let mut taken = false;
        for (i, m) in messengers.iter().enumerate() {
            let takes = m
                .plugin()
                .manifest()
                .events
                .as_ref()
                .is_none_or(|list| list.iter().any(|k| k == e.kind.name()));
            if takes {
                routed[i].push(e.clone());
                taken = true;
            }
        }
        if !taken {
            report.skipped.push(Skipped::new(
                e,
                format!("no messenger composes `{}` events", e.kind.name()),
            ));
        }
    }

    let recipients: Vec<Patron> = patrons.values().map(|(p, _)| p.clone()).collect();
    let mut composed: Vec<(String, Composed)> = Vec::new();
    for (m, mine) in messengers.iter().zip(&routed) {
        if mine.is_empty() {
            continue;
        }
        // A messenger that fails fails alone: its events are reported, the
        // other messengers' messages are still queued.
        let out = match pipeline.compose(m, mine, &recipients) {
            Ok(out) => out,
            Err(e) => {
                let error = e.to_string();
                tracing::error!(%error, "a messenger failed; its events were not composed");
                for ev in mine {
                    report.skipped.push(Skipped::new(ev, error.clone()));
                }
                report.failed.push(error);
                continue;
            }
        };
        for s in out.skipped {
            report.skipped.push(Skipped {
                reason: format!("{}: {}", m.plugin().id(), s.reason),
                ..s
            });
        }
        composed.extend(
            out.messages
                .into_iter()
                .map(|c| (m.plugin().id().to_string(), c)),
        );
    }
    report.composed = composed.len();

    let subjects: HashMap<(&str, &str), Subject<'_>> = events
        .iter()
        .map(|e| ((e.id.as_str(), e.patron.as_str()), Subject::of(e)))
        .collect();
    admit(
        store,
        rules,
        &patrons,
        composed,
        &subjects,
        now,
        &mut report,
    )?;
    Ok(report)
}

/// What the library's rules need to know of the event a message is about.
pub(crate) struct Subject<'a> {
    pub(crate) id: &'a str,
    pub(crate) patron: &'a str,
    pub(crate) at: DateTime<Utc>,
    pub(crate) kind: &'a str,
    pub(crate) marketing: bool,
}

impl<'a> Subject<'a> {
    fn of(e: &'a Event) -> Subject<'a> {
        Subject {
            id: &e.id,
            patron: &e.patron,
            at: e.at,
            kind: e.kind.name(),
            marketing: e.kind.is_marketing(),
        }
    }
}

/// Queues the `composed` messages that the library's rules let through,
/// whoever composed them: a messenger plugin, or the host for a campaign.
/// `patrons` holds each recipient with their preferences; `subjects` the
/// event each message is about, by (event id, patron). Returns, for each
/// message, whether it is in the outbox now (queued, or queued before).
pub(crate) fn admit<S: Store + Outbox + ?Sized>(
    store: &mut S,
    rules: &NoticeRules,
    patrons: &HashMap<String, (Patron, Preferences)>,
    composed: Vec<(String, Composed)>,
    subjects: &HashMap<(&str, &str), Subject<'_>>,
    now: DateTime<Utc>,
    report: &mut NotifyReport,
) -> Result<Vec<bool>> {
    let today = local_day(rules, now);
    let mut admitted = vec![false; composed.len()];
    // The library's rules, in the order a librarian would apply them.
    let mut today_count: HashMap<String, usize> = HashMap::new();
    let mut queue = Vec::new();
    let quiet = quiet_until(rules, now);
    for (i, (plugin, c)) in composed.into_iter().enumerate() {
        let Some(event) = subjects.get(&(c.event.as_str(), c.patron.as_str())) else {
            continue;
        };
        let Some((patron, prefs)) = patrons.get(&c.patron) else {
            continue;
        };
        let mut refuse = |reason: String| {
            report.skipped.push(Skipped {
                event: c.event.clone(),
                patron: c.patron.clone(),
                reason,
            })
        };
        if prefs.opted_out.contains(&c.channel) {
            refuse(format!("the patron opted out of {}", c.channel.as_str()));
            continue;
        }
        // Only a channel the patron chose; print is the fallback for a
        // notice about their own loans and holds. A patron whose record
        // lists no channels has not chosen, and any channel with an
        // address serves.
        let chosen = patron
            .channels
            .as_ref()
            .filter(|list| !list.is_empty())
            .is_none_or(|list| list.contains(&c.channel));
        let fallback = c.channel == Channel::Print && !event.marketing;
        if !chosen && !fallback {
            refuse(format!(
                "the patron did not choose {}; they are reached on {}",
                c.channel.as_str(),
                patron
                    .channels
                    .iter()
                    .flatten()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        match c.channel {
            Channel::Email if patron.email.is_none() => {
                refuse("no email address".into());
                continue;
            }
            Channel::Sms if patron.phone.is_none() => {
                refuse("no mobile number".into());
                continue;
            }
            _ => {}
        }
        let marketing = event.marketing;
        let key = key_of(event, c.channel, &plugin, &c.dedupe_key);
        if store.has_message(&key)? {
            // Queued by an earlier run: neither new nor counted again.
            report.duplicates += 1;
            admitted[i] = true;
            continue;
        }
        let count = match today_count.get(&c.patron) {
            Some(&n) => n,
            None => store.messages_on(&c.patron, today)?,
        };
        if marketing && count >= rules.daily_limit {
            refuse(format!(
                "the daily limit of {} messages for this patron is reached",
                rules.daily_limit
            ));
            continue;
        }
        today_count.insert(c.patron.clone(), count + 1);
        admitted[i] = true;
        let mut not_before = c.send_after.unwrap_or(now).max(now);
        if c.channel != Channel::Print
            && let Some(end) = quiet
        {
            report.held_for_quiet_hours += 1;
            not_before = not_before.max(end);
        }
        queue.push(Queued {
            dedupe_key: key,
            patron: c.patron.clone(),
            event: c.event.clone(),
            event_kind: event.kind.to_string(),
            marketing,
            plugin,
            channel: c.channel,
            locale: c.locale,
            subject: c.subject,
            body: c.body,
            day: today,
            digest: prefs.digest,
            not_before,
        });
    }
    let done = store.enqueue(&queue)?;
    report.queued += done.added;
    report.duplicates += done.duplicates;
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(offset_h: i32, quiet: &str) -> NoticeRules {
        let c = crate::config::Config::parse(
            &format!(
                "[notify]\nutc-offset = \"{:+03}:00\"\nquiet-hours = \"{quiet}\"\n",
                offset_h
            ),
            std::path::Path::new("."),
        )
        .unwrap();
        c.notify
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn quiet_hours_across_midnight_in_local_time() {
        let r = rules(8, "21:00-08:00");
        // 14:00 UTC is 22:00 in UTC+8: quiet until 08:00 local = 00:00 UTC.
        assert_eq!(
            quiet_until(&r, at("2026-03-02T14:00:00Z")),
            Some(at("2026-03-03T00:00:00Z"))
        );
        // 23:30 UTC is 07:30 local the next day: quiet for half an hour.
        assert_eq!(
            quiet_until(&r, at("2026-03-02T23:30:00Z")),
            Some(at("2026-03-03T00:00:00Z"))
        );
        // 02:00 UTC is 10:00 local: not quiet.
        assert_eq!(quiet_until(&r, at("2026-03-03T02:00:00Z")), None);
        assert_eq!(
            quiet_until(&rules(0, "none"), at("2026-03-03T23:00:00Z")),
            None
        );
    }

    #[test]
    fn survey_samples_are_stable_and_near_their_share() {
        let keys = Pseudonyms::new(b"test key");
        let picked: Vec<bool> = (0..2000)
            .map(|i| in_sample(&keys, &format!("p{i}"), "s1", 0.25))
            .collect();
        let again: Vec<bool> = (0..2000)
            .map(|i| in_sample(&keys, &format!("p{i}"), "s1", 0.25))
            .collect();
        assert_eq!(picked, again);
        let n = picked.iter().filter(|&&b| b).count();
        assert!((400..600).contains(&n), "{n} of 2000 sampled at 25%");
        assert!((0..100).all(|i| !in_sample(&keys, &format!("p{i}"), "s1", 0.0)));
        assert!((0..100).all(|i| in_sample(&keys, &format!("p{i}"), "s1", 1.0)));
    }
}
