//! Staff accounts, the inbox and the job history in PostgreSQL.
//!
//! Several workers may drain one inbox. An event is applied once: applying
//! locks its row and leaves it alone if another worker processed it
//! first. A patron's events are applied in the order they came: an event
//! waits for any earlier one of the same patron that another worker is
//! applying, and is left for a later round while an earlier one is still
//! unprocessed.

use anyhow::{Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};
use postgres::{Row, Transaction};

use super::{PgStore, date, parse_date};
use crate::store::rows::{opt_time, time};
use crate::store::service::{
    Circulation, Inbox, InboxEvent, InboxRow, InboxStats, JobRun, Jobs, Outcome, StaffAccount,
    StaffStore,
};
use crate::store::{HoldRecord, LoanRecord};

const STAFF_COLUMNS: &str = "name, role, key_id, created_at, expires_at, revoked_at, token_sha256";

fn staff_decode(r: &Row) -> Result<(StaffAccount, String)> {
    let get = |i: usize| -> Result<Option<String>> { Ok(r.try_get(i)?) };
    let need = |v: Option<String>| v.context("a staff account's row is damaged");
    Ok((
        StaffAccount {
            name: need(get(0)?)?,
            role: need(get(1)?)?,
            key_id: need(get(2)?)?,
            created_at: time(&need(get(3)?)?)?,
            expires_at: opt_time(get(4)?)?,
            revoked_at: opt_time(get(5)?)?,
        },
        need(get(6)?)?,
    ))
}

impl StaffStore for PgStore {
    fn add_staff(&mut self, a: &StaffAccount, token_sha256: &str) -> Result<bool> {
        let added = self.db().execute(
            &format!(
                "INSERT INTO staff ({STAFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
                 key_id = excluded.key_id, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at, revoked_at = NULL, \
                 token_sha256 = excluded.token_sha256 WHERE staff.revoked_at IS NOT NULL"
            ),
            &[
                &a.name,
                &a.role,
                &a.key_id,
                &a.created_at.to_rfc3339(),
                &a.expires_at.map(|t| t.to_rfc3339()),
                &a.revoked_at.map(|t| t.to_rfc3339()),
                &token_sha256,
            ],
        )?;
        Ok(added > 0)
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        let rows = self.db().query(
            &format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY name"),
            &[],
        )?;
        rows.iter().map(|r| Ok(staff_decode(r)?.0)).collect()
    }

    fn staff_by_key(&self, key_id: &str) -> Result<Option<(StaffAccount, String)>> {
        let row = self.db().query_opt(
            &format!("SELECT {STAFF_COLUMNS} FROM staff WHERE key_id = $1"),
            &[&key_id],
        )?;
        row.as_ref().map(staff_decode).transpose()
    }

    fn revoke_staff(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.db().execute(
            "UPDATE staff SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            &[&name, &at.to_rfc3339()],
        )? > 0)
    }
}

const INBOX_COLUMNS: &str = "seq, source, event_id, kind, at, patron_id, change, received_at";

fn inbox_decode(r: &Row) -> Result<InboxRow> {
    let seq: i64 = r.try_get(0)?;
    let get = |i: usize| -> Result<Option<String>> { Ok(r.try_get(i)?) };
    let damaged = || format!("the inbox's event {seq} is damaged");
    let need = |v: Option<String>| v.with_context(damaged);
    let change = get(6)?;
    Ok(InboxRow {
        seq,
        event: InboxEvent {
            source: need(get(1)?)?,
            id: need(get(2)?)?,
            kind: need(get(3)?)?,
            at: time(&need(get(4)?)?)?,
            patron: get(5)?,
            change: change
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .with_context(damaged)?,
        },
        received_at: time(&need(get(7)?)?)?,
    })
}

fn inbox_rows(store: &PgStore, filter: &str, n: usize) -> Result<Vec<InboxRow>> {
    let rows = store.db().query(
        &format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE {filter} ORDER BY seq LIMIT $1"),
        &[&(n as i64)],
    )?;
    rows.iter().map(inbox_decode).collect()
}

/// Whether patron `id` is stored; if so, they stay so (neither erased
/// nor given another id) until `tx` ends.
fn has_patron(tx: &mut Transaction<'_>, id: &str) -> Result<bool> {
    Ok(tx
        .query_opt("SELECT 1 FROM patrons WHERE id = $1 FOR KEY SHARE", &[&id])?
        .is_some())
}

/// Writes `change` for `patron`; whether there was anything to write it
/// to.
fn write_change(
    tx: &mut Transaction<'_>,
    patron: Option<&str>,
    change: &Circulation,
) -> Result<bool> {
    Ok(match change {
        Circulation::Loan(l) => {
            let patron = match patron {
                Some(p) if has_patron(tx, p)? => p,
                _ => return Ok(false),
            };
            tx.execute(
                "INSERT INTO loans (id, patron_id, item_id, title, subject, loaned_on, due_on, \
                 returned_on, renewals) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, \
                 item_id = coalesce(excluded.item_id, loans.item_id), \
                 title = coalesce(excluded.title, loans.title), \
                 subject = coalesce(excluded.subject, loans.subject), \
                 loaned_on = excluded.loaned_on, \
                 due_on = coalesce(excluded.due_on, loans.due_on), \
                 returned_on = coalesce(excluded.returned_on, loans.returned_on), \
                 renewals = GREATEST(excluded.renewals, loans.renewals)",
                &[
                    &l.id,
                    &patron,
                    &l.item,
                    &l.title,
                    &l.subject,
                    &l.loaned_on.to_string(),
                    &date(l.due_on),
                    &date(l.returned_on),
                    &(l.renewals as i64),
                ],
            )? > 0
        }
        Circulation::Returned { loan, on } => {
            tx.execute(
                "UPDATE loans SET returned_on = $2 WHERE id = $1",
                &[loan, &on.to_string()],
            )? > 0
        }
        Circulation::DueDate {
            loan,
            due_on,
            renewals,
        } => {
            tx.execute(
                "UPDATE loans SET due_on = $2, renewals = coalesce($3::bigint, renewals) \
                 WHERE id = $1",
                &[loan, &due_on.to_string(), &renewals.map(|r| r as i64)],
            )? > 0
        }
        Circulation::Hold(h) => {
            let patron = match patron {
                Some(p) if has_patron(tx, p)? => p,
                _ => return Ok(false),
            };
            tx.execute(
                "INSERT INTO holds (id, patron_id, title, placed_on, status, pickup_branch, \
                 expires_on) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, \
                 title = coalesce(excluded.title, holds.title), \
                 placed_on = excluded.placed_on, status = excluded.status, \
                 pickup_branch = coalesce(excluded.pickup_branch, holds.pickup_branch), \
                 expires_on = excluded.expires_on",
                &[
                    &h.id,
                    &patron,
                    &h.title,
                    &h.placed_on.to_string(),
                    &h.status,
                    &h.pickup_branch,
                    &date(h.expires_on),
                ],
            )? > 0
        }
        Circulation::HoldState {
            hold,
            status,
            expires_on,
        } => {
            tx.execute(
                "UPDATE holds SET status = $2, expires_on = coalesce($3::text, expires_on) \
                 WHERE id = $1",
                &[hold, status, &date(*expires_on)],
            )? > 0
        }
    })
}

impl Inbox for PgStore {
    fn accept_event(&mut self, e: &InboxEvent, at: DateTime<Utc>) -> Result<bool> {
        let change = e.change.as_ref().map(serde_json::to_string).transpose()?;
        let added = self.db().execute(
            "INSERT INTO inbox (source, event_id, kind, at, patron_id, change, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, event_id) DO NOTHING",
            &[
                &e.source,
                &e.id,
                &e.kind,
                &e.at.to_rfc3339(),
                &e.patron,
                &change,
                &at.to_rfc3339(),
            ],
        )?;
        Ok(added > 0)
    }

    /// The oldest events not yet processed, as in SQLite, less those that
    /// other workers are applying (their rows are locked) and any event
    /// of a patron with an earlier event in another worker's hands: it
    /// comes in a later round, after that one.
    fn pending_events(&self, n: usize) -> Result<Vec<InboxRow>> {
        let rows = self.db().query(
            &format!(
                "WITH free AS MATERIALIZED ( \
                     SELECT seq FROM inbox WHERE processed_at IS NULL \
                     ORDER BY seq LIMIT $1 FOR SHARE SKIP LOCKED \
                 ) \
                 SELECT {INBOX_COLUMNS} FROM inbox i \
                 WHERE i.seq IN (SELECT f.seq FROM free f) \
                 AND NOT EXISTS ( \
                     SELECT 1 FROM inbox e \
                     WHERE e.patron_id = i.patron_id AND e.seq < i.seq \
                     AND e.processed_at IS NULL \
                     AND e.seq NOT IN (SELECT f.seq FROM free f) \
                 ) \
                 ORDER BY i.seq"
            ),
            &[&(n as i64)],
        )?;
        rows.iter().map(inbox_decode).collect()
    }

    fn apply_event(&mut self, seq: i64, at: DateTime<Utc>) -> Result<Option<Outcome>> {
        let mut db = self.db();
        let mut tx = db.transaction()?;
        // Waits for a worker applying it; then finds it processed, and
        // leaves it.
        let row = tx.query_opt(
            &format!(
                "SELECT {INBOX_COLUMNS} FROM inbox WHERE seq = $1 AND processed_at IS NULL \
                 FOR UPDATE"
            ),
            &[&seq],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let row = inbox_decode(&row)?;
        if let Some(patron) = &row.event.patron {
            // The patron's events go in order: this waits for a worker
            // applying an earlier one, and leaves this one for a later
            // round if an earlier one is still unprocessed. Rows are
            // locked in falling order of seq, so two workers never wait
            // on each other.
            let earlier = tx.query_opt(
                "SELECT seq FROM inbox WHERE patron_id = $1 AND seq < $2 \
                 AND processed_at IS NULL ORDER BY seq LIMIT 1 FOR UPDATE",
                &[patron, &seq],
            )?;
            if earlier.is_some() {
                return Ok(None);
            }
        }
        let written = match &row.event.change {
            Some(change) => write_change(&mut tx, row.event.patron.as_deref(), change)?,
            None => false,
        };
        let outcome = if written {
            Outcome::Applied
        } else {
            Outcome::Skipped
        };
        tx.execute(
            "UPDATE inbox SET processed_at = $2, outcome = $3 WHERE seq = $1",
            &[
                &seq,
                &at.to_rfc3339(),
                &match outcome {
                    Outcome::Applied => "applied",
                    Outcome::Skipped => "skipped",
                },
            ],
        )?;
        tx.commit()?;
        Ok(Some(outcome))
    }

    fn unnotified_events(&self, n: usize) -> Result<Vec<InboxRow>> {
        inbox_rows(
            self,
            "processed_at IS NOT NULL AND outcome = 'applied' AND NOT notified",
            n,
        )
    }

    fn mark_notified(&mut self, seq: i64) -> Result<()> {
        self.db()
            .execute("UPDATE inbox SET notified = TRUE WHERE seq = $1", &[&seq])?;
        Ok(())
    }

    fn inbox_stats(&self) -> Result<InboxStats> {
        let r = self.db().query_one(
            "SELECT COUNT(*) FILTER (WHERE processed_at IS NULL), \
             COUNT(*) FILTER (WHERE outcome = 'applied'), \
             COUNT(*) FILTER (WHERE outcome = 'skipped'), \
             COUNT(*) FILTER (WHERE outcome = 'applied' AND NOT notified) FROM inbox",
            &[],
        )?;
        Ok(InboxStats {
            pending: r.try_get::<_, i64>(0)? as usize,
            applied: r.try_get::<_, i64>(1)? as usize,
            skipped: r.try_get::<_, i64>(2)? as usize,
            unnotified: r.try_get::<_, i64>(3)? as usize,
        })
    }

    fn requeue_skipped(&mut self) -> Result<usize> {
        Ok(self.db().execute(
            "UPDATE inbox SET processed_at = NULL, outcome = NULL \
             WHERE outcome = 'skipped' AND patron_id IN (SELECT id FROM patrons)",
            &[],
        )? as usize)
    }

    fn loan(&self, id: &str) -> Result<Option<LoanRecord>> {
        let row = self.db().query_opt(
            "SELECT id, patron_id, item_id, title, subject, loaned_on, due_on, returned_on, \
             renewals FROM loans WHERE id = $1",
            &[&id],
        )?;
        row.map(|r| -> Result<LoanRecord> {
            Ok(LoanRecord {
                id: r.try_get(0)?,
                patron: r.try_get(1)?,
                item: r.try_get(2)?,
                title: r.try_get(3)?,
                subject: r.try_get(4)?,
                loaned_on: r.try_get::<_, String>(5)?.parse().unwrap_or(NaiveDate::MIN),
                due_on: parse_date(r.try_get(6)?),
                returned_on: parse_date(r.try_get(7)?),
                renewals: r.try_get::<_, i64>(8)? as u32,
            })
        })
        .transpose()
    }

    fn hold(&self, id: &str) -> Result<Option<HoldRecord>> {
        let row = self.db().query_opt(
            "SELECT id, patron_id, title, placed_on, status, pickup_branch, expires_on \
             FROM holds WHERE id = $1",
            &[&id],
        )?;
        row.map(|r| -> Result<HoldRecord> {
            Ok(HoldRecord {
                id: r.try_get(0)?,
                patron: r.try_get(1)?,
                title: r.try_get(2)?,
                placed_on: parse_date(r.try_get(3)?).unwrap_or(NaiveDate::MIN),
                status: r.try_get(4)?,
                pickup_branch: r.try_get(5)?,
                expires_on: parse_date(r.try_get(6)?),
            })
        })
        .transpose()
    }
}

impl Jobs for PgStore {
    fn start_job(&mut self, job: &str, at: DateTime<Utc>) -> Result<i64> {
        let row = self.db().query_one(
            "INSERT INTO job_runs (job, started_at, state) VALUES ($1, $2, 'running') \
             RETURNING id",
            &[&job, &at.to_rfc3339()],
        )?;
        Ok(row.try_get(0)?)
    }

    fn end_job(&mut self, id: i64, at: DateTime<Utc>, ok: bool, summary: &str) -> Result<()> {
        self.db().execute(
            "UPDATE job_runs SET ended_at = $2, state = $3, summary = $4 WHERE id = $1",
            &[
                &id,
                &at.to_rfc3339(),
                &if ok { "ok" } else { "failed" },
                &summary,
            ],
        )?;
        Ok(())
    }

    fn job_runs(&self, job: Option<&str>, n: usize) -> Result<Vec<JobRun>> {
        let rows = self.db().query(
            "SELECT id, job, started_at, ended_at, state, summary FROM job_runs \
             WHERE $1::text IS NULL OR job = $1 ORDER BY id DESC LIMIT $2",
            &[&job, &(n as i64)],
        )?;
        rows.iter()
            .map(|r| -> Result<JobRun> {
                let started: String = r.try_get(2)?;
                let ended: Option<String> = r.try_get(3)?;
                Ok(JobRun {
                    id: r.try_get(0)?,
                    job: r.try_get(1)?,
                    started_at: time(&started)?,
                    ended_at: opt_time(ended)?,
                    state: r.try_get(4)?,
                    summary: r.try_get(5)?,
                })
            })
            .collect()
    }
}
