//! What notices read from the SQLite store, and its outbox.

use anyhow::{Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, parse_date};
use crate::model::Channel;
use crate::store::rows::{channel_named, channels_from, unix_time as time};
use crate::store::{
    ChannelStats, Claimed, Enqueued, HoldRecord, MessageState, OpenLoan, Outbox, OutboxRow,
    Preferences, Queued, Settle,
};

pub(super) fn open_loans(conn: &Connection, due_by: NaiveDate) -> Result<Vec<OpenLoan>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, patron_id, title, item_id, due_on, renewals FROM loans \
         WHERE returned_on IS NULL AND due_on IS NOT NULL AND due_on <= ?1 ORDER BY due_on, id",
    )?;
    let loans = stmt
        .query_map([due_by.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, u32>(5)?,
            ))
        })?
        .filter_map(|row| match row {
            Ok((id, patron, title, item, due, renewals)) => {
                let due_on = parse_date(due)?;
                Some(Ok(OpenLoan {
                    id,
                    patron,
                    title,
                    item,
                    due_on,
                    renewals,
                }))
            }
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(loans)
}

pub(super) fn holds_waiting(conn: &Connection) -> Result<Vec<HoldRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, patron_id, title, placed_on, status, pickup_branch, expires_on FROM holds \
         WHERE lower(status) LIKE '%awaiting pickup%' OR lower(status) IN ('w', 'waiting', 'ready') \
         ORDER BY id",
    )?;
    let holds = stmt
        .query_map([], |r| {
            Ok(HoldRecord {
                id: r.get(0)?,
                patron: r.get(1)?,
                title: r.get(2)?,
                placed_on: parse_date(r.get(3)?).unwrap_or_default(),
                status: r.get(4)?,
                pickup_branch: r.get(5)?,
                expires_on: parse_date(r.get(6)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(holds)
}

pub(super) fn holds_queued(conn: &Connection) -> Result<std::collections::HashMap<String, u32>> {
    // Koha's `found` is empty while a hold waits its turn, `W`, `T` or `P`
    // once an item is on its way; FOLIO's queued status is `Open - Not yet
    // filled`. Anything ready, in transit or closed is not in the queue.
    let mut stmt = conn.prepare_cached(
        "SELECT title, COUNT(*) FROM holds WHERE title IS NOT NULL AND ( \
           status IS NULL OR trim(status) = '' OR lower(status) LIKE '%not yet filled%' \
           OR lower(status) IN ('pending', 'queued', 'open', 'placed', 'waiting in queue') \
         ) GROUP BY title",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn memberships_expiring(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, NaiveDate)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, expires_on FROM patrons WHERE expires_on BETWEEN ?1 AND ?2 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([from.to_string(), to.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?
        .filter_map(|row| match row {
            Ok((id, d)) => Some(Ok((id, parse_date(d)?))),
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn readers_of(
    conn: &Connection,
    subjects: &[String],
    as_of: NaiveDate,
) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT patron_id, subject FROM loans \
         WHERE subject = ?1 AND loaned_on <= ?2 AND loaned_on > date(?2, '-365 days') \
         ORDER BY patron_id",
    )?;
    let mut out = Vec::new();
    for subject in subjects {
        for row in stmt.query_map(params![subject, as_of.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            out.push(row?);
        }
    }
    Ok(out)
}

pub(super) fn segment_members(
    conn: &Connection,
    scorer: &str,
    segment: &str,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT patron_id FROM scores WHERE segment = ?2 AND run_id = \
         (SELECT MAX(id) FROM score_runs WHERE plugin = ?1 AND complete = 1) ORDER BY patron_id",
    )?;
    let ids = stmt
        .query_map([scorer, segment], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

pub(super) fn preferences(conn: &Connection, id: &str) -> Result<Option<Preferences>> {
    Ok(conn
        .query_row(
            "SELECT notice_days, digest, opted_out, no_marketing, no_reading_history, pref_locale, \
             awareness \
             FROM patrons WHERE id = ?1",
            [id],
            |r| {
                Ok(Preferences {
                    notice_days: r.get(0)?,
                    digest: r.get(1)?,
                    opted_out: channels_from(r.get(2)?),
                    no_marketing: r.get(3)?,
                    no_reading_history: r.get(4)?,
                    locale: r.get(5)?,
                    awareness: r.get(6)?,
                })
            },
        )
        .optional()?)
}

pub(super) fn set_preferences(
    conn: &mut Connection,
    id: &str,
    prefs: &Preferences,
) -> Result<usize> {
    let tx = conn.transaction()?;
    let changed = tx.execute(
        "UPDATE patrons SET notice_days = ?2, digest = ?3, opted_out = ?4, no_marketing = ?5, \
         no_reading_history = ?6, pref_locale = ?7, awareness = ?8 WHERE id = ?1",
        params![
            id,
            prefs.notice_days,
            prefs.digest,
            serde_json::to_string(&prefs.opted_out)?,
            prefs.no_marketing,
            prefs.no_reading_history,
            prefs.locale,
            prefs.awareness,
        ],
    )?;
    anyhow::ensure!(changed == 1, "no patron with id `{id}`");
    let now = Utc::now().timestamp();
    let mut cancelled = 0;
    if prefs.no_marketing {
        cancelled += tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = 'the patron opted out of marketing', \
             settled_at = ?2 WHERE patron_id = ?1 AND state = 'queued' AND marketing = 1",
            params![id, now],
        )?;
    }
    if prefs.no_reading_history {
        cancelled += tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = 'the patron withdrew consent to \
             the use of their reading history', settled_at = ?2 \
             WHERE patron_id = ?1 AND state = 'queued' AND event_kind IN ('new-arrival', 'current-awareness')",
            params![id, now],
        )?;
    }
    for channel in &prefs.opted_out {
        cancelled += tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = ?3, settled_at = ?2 \
             WHERE patron_id = ?1 AND state = 'queued' AND channel = ?4",
            params![
                id,
                now,
                format!("the patron opted out of {}", channel.as_str()),
                channel.as_str()
            ],
        )?;
    }
    tx.commit()?;
    Ok(cancelled)
}

fn channel_list(channels: &[Channel]) -> String {
    // Fixed names from an enum, never user text.
    channels
        .iter()
        .map(|c| format!("'{}'", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

const CLAIMED: &str = "SELECT o.id, o.dedupe_key, o.patron_id, o.event_kind, o.marketing, o.channel, \
     o.locale, o.subject, o.body, o.day, o.digest, o.attempts, p.email, p.phone, \
     COALESCE(p.consent_marketing, 0) AND NOT p.no_marketing, p.opted_out, o.not_before, \
     COALESCE(p.consent_reading_history, 0) AND NOT p.no_reading_history, p.name, p.card_number, p.address \
     FROM outbox o JOIN patrons p ON p.id = o.patron_id";

fn claimed(r: &rusqlite::Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        id: r.get(0)?,
        dedupe_key: r.get(1)?,
        patron: r.get(2)?,
        event_kind: r.get(3)?,
        marketing: r.get(4)?,
        channel: channel_named(&r.get::<_, String>(5)?),
        locale: r.get(6)?,
        subject: r.get(7)?,
        body: r.get(8)?,
        day: parse_date(r.get(9)?).unwrap_or_default(),
        digest: r.get(10)?,
        attempts: r.get::<_, u32>(11)? + 1,
        email: r.get(12)?,
        phone: r.get(13)?,
        marketing_consent: r.get(14)?,
        opted_out: channels_from(r.get(15)?),
        history_consent: r.get(17)?,
        name: r.get(18)?,
        card_number: r.get(19)?,
        address: r
            .get::<_, Option<String>>(20)?
            .and_then(|a| serde_json::from_str(&a).ok()),
    })
}

impl Outbox for SqliteStore {
    fn enqueue(&mut self, messages: &[Queued]) -> Result<Enqueued> {
        let tx = self.conn.transaction()?;
        let mut out = Enqueued::default();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox (dedupe_key, patron_id, event_id, event_kind, marketing, plugin, \
                 channel, locale, subject, body, day, digest, state, not_before, queued_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'queued', ?13, ?14) \
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )?;
            let now = Utc::now().timestamp();
            for m in messages {
                let n = insert
                    .execute(params![
                        m.dedupe_key,
                        m.patron,
                        m.event,
                        m.event_kind,
                        m.marketing,
                        m.plugin,
                        m.channel.as_str(),
                        m.locale,
                        m.subject,
                        m.body,
                        m.day.to_string(),
                        m.digest,
                        m.not_before.timestamp(),
                        now,
                    ])
                    .with_context(|| {
                        format!("failed to queue a message for event `{}`", m.event)
                    })?;
                if n == 1 {
                    out.added += 1;
                } else {
                    out.duplicates += 1;
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn has_message(&self, dedupe_key: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM outbox WHERE dedupe_key = ?1")?
            .exists([dedupe_key])?)
    }

    fn messages_on(&self, patron: &str, day: NaiveDate) -> Result<usize> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE patron_id = ?1 AND day = ?2 AND state != 'cancelled'",
            [patron, &day.to_string()],
            |r| r.get::<_, i64>(0),
        )? as usize)
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
        // Immediate: two deliverers on one store never take the same row.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now_ts = now.timestamp();
        // A message left `sending` by a deliverer that stopped comes first;
        // then the earliest due on each channel, each one index lookup.
        let mut first = tx
            .query_row(
                &format!(
                    "{CLAIMED} WHERE o.state = 'sending' AND o.lease_until < ?1 \
                     AND o.channel IN ({}) ORDER BY o.lease_until LIMIT 1",
                    channel_list(channels)
                ),
                [now_ts],
                claimed,
            )
            .optional()?;
        if first.is_none() {
            let mut next = tx.prepare_cached(&format!(
                "{CLAIMED} WHERE o.state = 'queued' AND o.channel = ?2 AND o.not_before <= ?1 \
                 ORDER BY o.not_before, o.id LIMIT 1"
            ))?;
            let mut earliest: Option<(i64, Claimed)> = None;
            for c in channels {
                let row = next
                    .query_row(params![now_ts, c.as_str()], |r| {
                        Ok((r.get::<_, i64>(16)?, claimed(r)?))
                    })
                    .optional()?;
                if let Some((at, row)) = row
                    && earliest
                        .as_ref()
                        .is_none_or(|(t, e)| (at, row.id) < (*t, e.id))
                {
                    earliest = Some((at, row));
                }
            }
            first = earliest.map(|(_, c)| c);
        }
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let due = "((o.state = 'queued' AND o.not_before <= ?1) \
             OR (o.state = 'sending' AND o.lease_until < ?1))";
        let batch = if first.digest {
            let mut stmt = tx.prepare(&format!(
                "{CLAIMED} WHERE o.patron_id = ?2 AND o.channel = ?3 AND o.digest = 1 AND {due} \
                 ORDER BY o.id"
            ))?;
            stmt.query_map(
                params![now_ts, first.patron, first.channel.as_str()],
                claimed,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?
        } else if first.channel.is_letter() {
            let mut stmt = tx.prepare(&format!(
                "{CLAIMED} WHERE o.patron_id = ?2 AND o.channel = ?3 AND o.day = ?4 \
                 AND o.marketing = ?5 AND o.digest = 0 AND {due} ORDER BY o.id"
            ))?;
            stmt.query_map(
                params![
                    now_ts,
                    first.patron,
                    first.channel.as_str(),
                    first.day.to_string(),
                    first.marketing
                ],
                claimed,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?
        } else {
            vec![first]
        };
        {
            let mut take = tx.prepare_cached(
                "UPDATE outbox SET state = 'sending', lease_until = ?2, attempts = attempts + 1 \
                 WHERE id = ?1",
            )?;
            for c in &batch {
                take.execute(params![c.id, lease_until.timestamp()])?;
            }
        }
        tx.commit()?;
        Ok(batch)
    }

    fn settle(&mut self, ids: &[i64], outcome: &Settle, now: DateTime<Utc>) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now = now.timestamp();
        for id in ids {
            match outcome {
                Settle::Sent => tx.execute(
                    "UPDATE outbox SET state = 'sent', lease_until = NULL, last_error = NULL, \
                     settled_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?,
                Settle::Retry { not_before, error } => tx.execute(
                    "UPDATE outbox SET state = 'queued', lease_until = NULL, last_error = ?2, \
                     not_before = ?3, retries = retries + 1 WHERE id = ?1",
                    params![id, error, not_before.timestamp()],
                )?,
                Settle::Postpone { not_before } => tx.execute(
                    "UPDATE outbox SET state = 'queued', lease_until = NULL, not_before = ?2, \
                     attempts = MAX(attempts - 1, 0) WHERE id = ?1",
                    params![id, not_before.timestamp()],
                )?,
                Settle::Failed { error } => tx.execute(
                    "UPDATE outbox SET state = 'failed', lease_until = NULL, last_error = ?2, \
                     settled_at = ?3 WHERE id = ?1",
                    params![id, error, now],
                )?,
                Settle::Cancelled { reason } => tx.execute(
                    "UPDATE outbox SET state = 'cancelled', lease_until = NULL, last_error = ?2, \
                     settled_at = ?3 WHERE id = ?1",
                    params![id, reason, now],
                )?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    fn digest_sent_since(
        &self,
        patron: &str,
        channel: Channel,
        since: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM outbox WHERE patron_id = ?1 AND channel = ?2 AND digest = 1 \
                 AND state = 'sent' AND settled_at >= ?3 LIMIT 1",
            )?
            .exists(params![patron, channel.as_str(), since.timestamp()])?)
    }

    fn next_due(&self, channels: &[Channel]) -> Result<Option<DateTime<Utc>>> {
        if channels.is_empty() {
            return Ok(None);
        }
        let next: Option<i64> = self.conn.query_row(
            &format!(
                "SELECT MIN(CASE state WHEN 'queued' THEN not_before ELSE lease_until END) FROM outbox \
                 WHERE channel IN ({}) AND state IN ('queued', 'sending')",
                channel_list(channels)
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(next.map(time))
    }

    fn outbox_stats(&self) -> Result<Vec<ChannelStats>> {
        let mut stmt = self.conn.prepare(
            "SELECT channel, state, COUNT(*), SUM(retries), MIN(queued_at) FROM outbox \
             GROUP BY channel, state ORDER BY channel",
        )?;
        let mut out: Vec<ChannelStats> = Vec::new();
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? as usize,
                r.get::<_, i64>(3)? as usize,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (channel, state, n, retries, oldest) = row?;
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
        let mut stmt = self.conn.prepare(
            "SELECT id, patron_id, event_kind, channel, state, attempts, subject, last_error, queued_at \
             FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(
                params![state.map(MessageState::as_str), limit as i64],
                |r| {
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        patron: r.get(1)?,
                        event_kind: r.get(2)?,
                        channel: r.get(3)?,
                        state: r
                            .get::<_, String>(4)?
                            .parse()
                            .unwrap_or(MessageState::Queued),
                        attempts: r.get(5)?,
                        subject: r.get(6)?,
                        error: r.get(7)?,
                        queued_at: time(r.get(8)?),
                    })
                },
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
