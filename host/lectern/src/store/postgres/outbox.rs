//! What notices read from the PostgreSQL store, and its outbox.
//!
//! Several deliverers, in several processes, may share one library's
//! outbox. A claim takes its rows with `FOR UPDATE SKIP LOCKED`, so that two
//! deliverers never take the same message, and claims in one library take
//! turns on an advisory lock, so that a digest or a letter is taken whole by
//! one deliverer, as under SQLite's single writer.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Days, NaiveDate, Utc};
use postgres::{GenericClient, Row};

use super::{PgStore, parse_date};
use crate::model::Channel;
use crate::store::rows::{channel_named, channels_from, unix_time as time};
use crate::store::{
    ChannelStats, Claimed, Enqueued, HoldRecord, MessageState, OpenLoan, Outbox, OutboxRow,
    Preferences, Queued, Settle,
};

/// The loans out and due by `due_by`, by due date.
pub(super) fn open_loans(db: &mut impl GenericClient, due_by: NaiveDate) -> Result<Vec<OpenLoan>> {
    let rows = db.query(
        "SELECT id, patron_id, title, item_id, due_on, renewals FROM loans \
         WHERE returned_on IS NULL AND due_on IS NOT NULL AND due_on <= $1 \
         ORDER BY due_on, id",
        &[&due_by.to_string()],
    )?;
    let loans = rows
        .iter()
        .filter_map(|r| {
            let due_on = parse_date(r.get(4))?;
            Some(OpenLoan {
                id: r.get(0),
                patron: r.get(1),
                title: r.get(2),
                item: r.get(3),
                due_on,
                renewals: r.get::<_, i64>(5) as u32,
            })
        })
        .collect();
    Ok(loans)
}

/// The holds waiting on the shelf for their reader, by id.
pub(super) fn holds_waiting(db: &mut impl GenericClient) -> Result<Vec<HoldRecord>> {
    let rows = db.query(
        "SELECT id, patron_id, title, placed_on, status, pickup_branch, expires_on FROM holds \
         WHERE lower(status) LIKE '%awaiting pickup%' OR lower(status) IN ('w', 'waiting', 'ready') \
         ORDER BY id",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| HoldRecord {
            id: r.get(0),
            patron: r.get(1),
            title: r.get(2),
            placed_on: parse_date(r.get(3)).unwrap_or_default(),
            status: r.get(4),
            pickup_branch: r.get(5),
            expires_on: parse_date(r.get(6)),
        })
        .collect())
}

/// How many holds wait their turn, by title.
pub(super) fn holds_queued(db: &mut impl GenericClient) -> Result<HashMap<String, u32>> {
    // Koha's `found` is empty while a hold waits its turn, `W`, `T` or `P`
    // once an item is on its way; FOLIO's queued status is `Open - Not yet
    // filled`. Anything ready, in transit or closed is not in the queue.
    let rows = db.query(
        "SELECT title, COUNT(*) FROM holds WHERE title IS NOT NULL AND ( \
           status IS NULL OR trim(status) = '' OR lower(status) LIKE '%not yet filled%' \
           OR lower(status) IN ('pending', 'queued', 'open', 'placed', 'waiting in queue') \
         ) GROUP BY title",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u32))
        .collect())
}

/// The patrons whose membership expires from `from` to `to`, by id.
pub(super) fn memberships_expiring(
    db: &mut impl GenericClient,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, NaiveDate)>> {
    let rows = db.query(
        "SELECT id, expires_on FROM patrons WHERE expires_on BETWEEN $1 AND $2 \
         ORDER BY id",
        &[&from.to_string(), &to.to_string()],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get::<_, String>(0), parse_date(r.get(1))?)))
        .collect())
}

/// The patrons who borrowed in each of `subjects` in the year to `as_of`:
/// subject by subject, by patron.
pub(super) fn readers_of(
    db: &mut impl GenericClient,
    subjects: &[String],
    as_of: NaiveDate,
) -> Result<Vec<(String, String)>> {
    // SQLite's `date(as_of, '-365 days')`.
    let since = as_of
        .checked_sub_days(Days::new(365))
        .unwrap_or(NaiveDate::MIN)
        .to_string();
    let as_of = as_of.to_string();
    let stmt = db.prepare(
        "SELECT DISTINCT patron_id, subject FROM loans \
         WHERE subject = $1 AND loaned_on <= $2 AND loaned_on > $3 \
         ORDER BY patron_id",
    )?;
    let mut out = Vec::new();
    for subject in subjects {
        for r in db.query(&stmt, &[subject, &as_of, &since])? {
            out.push((r.get(0), r.get(1)));
        }
    }
    Ok(out)
}

/// The patrons in `segment` of the scorer's latest complete run, by id.
pub(super) fn segment_members(
    db: &mut impl GenericClient,
    scorer: &str,
    segment: &str,
) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT patron_id FROM scores WHERE segment = $2 AND run_id = \
         (SELECT MAX(id) FROM score_runs WHERE plugin = $1 AND complete) \
         ORDER BY patron_id",
        &[&scorer, &segment],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The patron's messaging preferences; `None` if there is no such patron.
pub(super) fn preferences(db: &mut impl GenericClient, id: &str) -> Result<Option<Preferences>> {
    Ok(db
        .query_opt(
            "SELECT notice_days, digest, opted_out, no_marketing, no_reading_history, pref_locale, \
             awareness \
             FROM patrons WHERE id = $1",
            &[&id],
        )?
        .map(|r| Preferences {
            notice_days: r.get::<_, Option<i64>>(0).map(|n| n as u32),
            digest: r.get(1),
            opted_out: channels_from(r.get(2)),
            no_marketing: r.get(3),
            no_reading_history: r.get(4),
            locale: r.get(5),
            awareness: r.get(6),
        }))
}

/// Sets the patron's preferences and cancels the queued messages they now
/// refuse, in one transaction: how many were cancelled.
pub(super) fn set_preferences(
    db: &mut impl GenericClient,
    id: &str,
    prefs: &Preferences,
) -> Result<usize> {
    let opted_out = serde_json::to_string(&prefs.opted_out)?;
    let mut tx = db.transaction()?;
    let changed = tx.execute(
        "UPDATE patrons SET notice_days = $2, digest = $3, opted_out = $4, no_marketing = $5, \
         no_reading_history = $6, pref_locale = $7, awareness = $8 WHERE id = $1",
        &[
            &id,
            &prefs.notice_days.map(i64::from),
            &prefs.digest,
            &opted_out,
            &prefs.no_marketing,
            &prefs.no_reading_history,
            &prefs.locale,
            &prefs.awareness,
        ],
    )?;
    anyhow::ensure!(changed == 1, "no patron with id `{id}`");
    let now = Utc::now().timestamp();
    let mut cancelled = 0;
    if prefs.no_marketing {
        cancelled += tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = 'the patron opted out of marketing', \
             settled_at = $2 WHERE patron_id = $1 AND state = 'queued' AND marketing",
            &[&id, &now],
        )?;
    }
    if prefs.no_reading_history {
        cancelled += tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = 'the patron withdrew consent to \
             the use of their reading history', settled_at = $2 \
             WHERE patron_id = $1 AND state = 'queued' AND event_kind IN ('new-arrival', 'current-awareness')",
            &[&id, &now],
        )?;
    }
    for channel in &prefs.opted_out {
        cancelled += tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = $3, settled_at = $2 \
             WHERE patron_id = $1 AND state = 'queued' AND channel = $4",
            &[
                &id,
                &now,
                &format!("the patron opted out of {}", channel.as_str()),
                &channel.as_str(),
            ],
        )?;
    }
    tx.commit()?;
    Ok(cancelled as usize)
}

/// The channels' names, as a `text[]` parameter.
fn channel_names(channels: &[Channel]) -> Vec<&'static str> {
    channels.iter().map(|c| c.as_str()).collect()
}

/// The key of the advisory lock that claims in library `library` take
/// turns on: FNV-1a of the name, spelled out here so that every process
/// and every version agrees on it.
fn claim_lock(library: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "lectern outbox claim:".bytes().chain(library.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

/// The message a claim starts from: what picks the others that go with it.
struct Head {
    id: i64,
    patron: String,
    channel: String,
    day: String,
    marketing: bool,
    digest: bool,
    not_before: i64,
}

const HEAD: &str = "SELECT id, patron_id, channel, day, marketing, digest, not_before FROM outbox";

fn head(r: &Row) -> Head {
    Head {
        id: r.get(0),
        patron: r.get(1),
        channel: r.get(2),
        day: r.get(3),
        marketing: r.get(4),
        digest: r.get(5),
        not_before: r.get(6),
    }
}

/// What a claim returns of each message it took, `o` the outbox row after
/// the claim and `p` its patron.
const CLAIMED: &str = "o.id, o.dedupe_key, o.patron_id, o.event_kind, o.marketing, o.channel, \
     o.locale, o.subject, o.body, o.day, o.digest, o.attempts, p.email, p.phone, \
     COALESCE(p.consent_marketing, FALSE) AND NOT p.no_marketing, p.opted_out, o.not_before, \
     COALESCE(p.consent_reading_history, FALSE) AND NOT p.no_reading_history, p.name, \
     p.card_number, p.address";

fn claimed(r: &Row) -> Claimed {
    Claimed {
        id: r.get(0),
        dedupe_key: r.get(1),
        patron: r.get(2),
        event_kind: r.get(3),
        marketing: r.get(4),
        channel: channel_named(r.get(5)),
        locale: r.get(6),
        subject: r.get(7),
        body: r.get(8),
        day: parse_date(r.get(9)).unwrap_or_default(),
        digest: r.get(10),
        // Read after the claim counted this attempt.
        attempts: r.get::<_, i64>(11) as u32,
        email: r.get(12),
        phone: r.get(13),
        marketing_consent: r.get(14),
        opted_out: channels_from(r.get(15)),
        history_consent: r.get(17),
        name: r.get(18),
        card_number: r.get(19),
        address: r
            .get::<_, Option<String>>(20)
            .and_then(|a| serde_json::from_str(&a).ok()),
    }
}

/// Takes the messages of the outbox that `group` picks and that are due at
/// `$1`, under a lease until `$2`, skipping any another transaction holds.
fn take(group: &str) -> String {
    format!(
        "UPDATE outbox o SET state = 'sending', lease_until = $2, attempts = o.attempts + 1 \
         FROM patrons p WHERE p.id = o.patron_id AND o.id IN ( \
           SELECT id FROM outbox WHERE {group} \
           AND ((state = 'queued' AND not_before <= $1) OR (state = 'sending' AND lease_until < $1)) \
           FOR UPDATE SKIP LOCKED) \
         RETURNING {CLAIMED}"
    )
}

impl Outbox for PgStore {
    fn enqueue(&mut self, messages: &[Queued]) -> Result<Enqueued> {
        let mut db = self.db();
        let mut tx = db.transaction()?;
        let mut out = Enqueued::default();
        let insert = tx.prepare(
            "INSERT INTO outbox (dedupe_key, patron_id, event_id, event_kind, marketing, plugin, \
             channel, locale, subject, body, day, digest, state, not_before, queued_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $14) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )?;
        let now = Utc::now().timestamp();
        for m in messages {
            let n = tx
                .execute(
                    &insert,
                    &[
                        &m.dedupe_key,
                        &m.patron,
                        &m.event,
                        &m.event_kind,
                        &m.marketing,
                        &m.plugin,
                        &m.channel.as_str(),
                        &m.locale,
                        &m.subject,
                        &m.body,
                        &m.day.to_string(),
                        &m.digest,
                        &m.not_before.timestamp(),
                        &now,
                    ],
                )
                .with_context(|| format!("failed to queue a message for event `{}`", m.event))?;
            if n == 1 {
                out.added += 1;
            } else {
                out.duplicates += 1;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn has_message(&self, dedupe_key: &str) -> Result<bool> {
        Ok(self
            .db()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE dedupe_key = $1)",
                &[&dedupe_key],
            )?
            .get(0))
    }

    fn messages_on(&self, patron: &str, day: NaiveDate) -> Result<usize> {
        let n: i64 = self
            .db()
            .query_one(
                "SELECT COUNT(*) FROM outbox WHERE patron_id = $1 AND day = $2 \
                 AND state != 'cancelled'",
                &[&patron, &day.to_string()],
            )?
            .get(0);
        Ok(n as usize)
    }

    fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        channels: &[Channel],
    ) -> Result<Vec<Claimed>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let lock = claim_lock(self.library());
        let mut db = self.db();
        let mut tx = db.transaction()?;
        // Claims in one library take turns, as under SQLite's write lock:
        // rows alone would let a second deliverer take the second message
        // of a digest while the first holds the first. The lock goes with
        // the transaction.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])?;
        let now_ts = now.timestamp();
        let names = channel_names(channels);
        // A message left `sending` by a deliverer that stopped comes first;
        // then the earliest due on each channel, each one index lookup.
        // A row another transaction holds is passed over.
        let mut first = tx
            .query_opt(
                &format!(
                    "{HEAD} WHERE state = 'sending' AND lease_until < $1 \
                     AND channel = ANY($2::text[]) ORDER BY lease_until, id LIMIT 1 \
                     FOR UPDATE SKIP LOCKED"
                ),
                &[&now_ts, &names],
            )?
            .map(|r| head(&r));
        if first.is_none() {
            let next = tx.prepare(&format!(
                "{HEAD} WHERE state = 'queued' AND channel = $2 AND not_before <= $1 \
                 ORDER BY not_before, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ))?;
            for name in &names {
                if let Some(row) = tx.query_opt(&next, &[&now_ts, name])? {
                    let candidate = head(&row);
                    if first
                        .as_ref()
                        .is_none_or(|f| (candidate.not_before, candidate.id) < (f.not_before, f.id))
                    {
                        first = Some(candidate);
                    }
                }
            }
        }
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let lease = lease_until.timestamp();
        let rows = if first.digest {
            tx.query(
                &take("patron_id = $3 AND channel = $4 AND digest"),
                &[&now_ts, &lease, &first.patron, &first.channel],
            )?
        } else if channel_named(&first.channel).is_letter() {
            tx.query(
                &take(
                    "patron_id = $3 AND channel = $4 AND day = $5 AND marketing = $6 \
                     AND NOT digest",
                ),
                &[
                    &now_ts,
                    &lease,
                    &first.patron,
                    &first.channel,
                    &first.day,
                    &first.marketing,
                ],
            )?
        } else {
            tx.query(&take("id = $3"), &[&now_ts, &lease, &first.id])?
        };
        let mut batch: Vec<Claimed> = rows.iter().map(claimed).collect();
        batch.sort_by_key(|c| c.id);
        tx.commit()?;
        Ok(batch)
    }

    fn settle(&mut self, ids: &[i64], outcome: &Settle, now: DateTime<Utc>) -> Result<()> {
        let now = now.timestamp();
        let mut db = self.db();
        match outcome {
            Settle::Sent => db.execute(
                "UPDATE outbox SET state = 'sent', lease_until = NULL, last_error = NULL, \
                 settled_at = $2 WHERE id = ANY($1::bigint[])",
                &[&ids, &now],
            )?,
            Settle::Retry { not_before, error } => db.execute(
                "UPDATE outbox SET state = 'queued', lease_until = NULL, last_error = $2, \
                 not_before = $3, retries = retries + 1 WHERE id = ANY($1::bigint[])",
                &[&ids, error, &not_before.timestamp()],
            )?,
            Settle::Postpone { not_before } => db.execute(
                "UPDATE outbox SET state = 'queued', lease_until = NULL, not_before = $2, \
                 attempts = GREATEST(attempts - 1, 0) WHERE id = ANY($1::bigint[])",
                &[&ids, &not_before.timestamp()],
            )?,
            Settle::Failed { error } => db.execute(
                "UPDATE outbox SET state = 'failed', lease_until = NULL, last_error = $2, \
                 settled_at = $3 WHERE id = ANY($1::bigint[])",
                &[&ids, error, &now],
            )?,
            Settle::Cancelled { reason } => db.execute(
                "UPDATE outbox SET state = 'cancelled', lease_until = NULL, last_error = $2, \
                 settled_at = $3 WHERE id = ANY($1::bigint[])",
                &[&ids, reason, &now],
            )?,
        };
        Ok(())
    }

    fn digest_sent_since(
        &self,
        patron: &str,
        channel: Channel,
        since: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(self
            .db()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE patron_id = $1 AND channel = $2 \
                 AND digest AND state = 'sent' AND settled_at >= $3)",
                &[&patron, &channel.as_str(), &since.timestamp()],
            )?
            .get(0))
    }

    fn next_due(&self, channels: &[Channel]) -> Result<Option<DateTime<Utc>>> {
        if channels.is_empty() {
            return Ok(None);
        }
        let next: Option<i64> = self
            .db()
            .query_one(
                "SELECT MIN(CASE state WHEN 'queued' THEN not_before ELSE lease_until END) \
                 FROM outbox WHERE channel = ANY($1::text[]) AND state IN ('queued', 'sending')",
                &[&channel_names(channels)],
            )?
            .get(0);
        Ok(next.map(time))
    }

    fn outbox_stats(&self) -> Result<Vec<ChannelStats>> {
        let rows = self.db().query(
            "SELECT channel, state, COUNT(*), SUM(retries)::bigint, MIN(queued_at) FROM outbox \
             GROUP BY channel, state ORDER BY channel",
            &[],
        )?;
        let mut out: Vec<ChannelStats> = Vec::new();
        for r in &rows {
            let channel: String = r.get(0);
            let state: String = r.get(1);
            let n = r.get::<_, i64>(2) as usize;
            let retries = r.get::<_, i64>(3) as usize;
            let oldest: i64 = r.get(4);
            if out.last().is_none_or(|s| s.channel != channel) {
                out.push(ChannelStats {
                    channel: channel.clone(),
                    ..ChannelStats::default()
                });
            }
            let stats = out.last_mut().expect("pushed above");
            stats.retries += retries;
            match state.parse::<MessageState>() {
                Ok(MessageState::Queued) => {
                    stats.queued = n;
                    stats.oldest_queued = Some(time(oldest));
                }
                Ok(MessageState::Sending) => stats.sending = n,
                Ok(MessageState::Sent) => stats.sent = n,
                Ok(MessageState::Failed) => stats.failed = n,
                Ok(MessageState::Cancelled) => stats.cancelled = n,
                Err(e) => anyhow::bail!("the outbox holds a message in {e}"),
            }
        }
        Ok(out)
    }

    fn outbox_messages(&self, state: Option<MessageState>, limit: usize) -> Result<Vec<OutboxRow>> {
        let rows = self.db().query(
            "SELECT id, patron_id, event_kind, channel, state, attempts, subject, last_error, \
             queued_at FROM outbox WHERE $1::text IS NULL OR state = $1 \
             ORDER BY id DESC LIMIT $2",
            &[&state.map(MessageState::as_str), &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                patron: r.get(1),
                event_kind: r.get(2),
                channel: r.get(3),
                state: r
                    .get::<_, String>(4)
                    .parse()
                    .unwrap_or(MessageState::Queued),
                attempts: r.get::<_, i64>(5) as u32,
                subject: r.get(6),
                error: r.get(7),
                queued_at: time(r.get(8)),
            })
            .collect())
    }
}
