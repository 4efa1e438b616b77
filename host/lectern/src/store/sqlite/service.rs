//! Staff accounts, the inbox and the job history in SQLite.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, date, parse_date};
use crate::store::rows::{opt_time, time};
use crate::store::service::{
    Circulation, Inbox, InboxEvent, InboxRow, InboxStats, JobRun, Jobs, Outcome, StaffAccount,
    StaffStore,
};
use crate::store::{HoldRecord, LoanRecord};

const STAFF_COLUMNS: &str = "name, role, key_id, created_at, expires_at, revoked_at, token_sha256";

fn staff_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 7]> {
    Ok([
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ])
}

fn staff_decode(row: [Option<String>; 7]) -> Result<(StaffAccount, String)> {
    let [name, role, key_id, created, expires, revoked, hash] = row;
    let need = |v: Option<String>| v.context("a staff account's row is damaged");
    Ok((
        StaffAccount {
            name: need(name)?,
            role: need(role)?,
            key_id: need(key_id)?,
            created_at: time(&need(created)?)?,
            expires_at: opt_time(expires)?,
            revoked_at: opt_time(revoked)?,
        },
        need(hash)?,
    ))
}

impl StaffStore for SqliteStore {
    fn add_staff(&mut self, a: &StaffAccount, token_sha256: &str) -> Result<bool> {
        let added = self.conn.execute(
            &format!(
                "INSERT INTO staff ({STAFF_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
                 key_id = excluded.key_id, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at, revoked_at = NULL, \
                 token_sha256 = excluded.token_sha256 WHERE staff.revoked_at IS NOT NULL"
            ),
            params![
                a.name,
                a.role,
                a.key_id,
                a.created_at.to_rfc3339(),
                a.expires_at.map(|t| t.to_rfc3339()),
                a.revoked_at.map(|t| t.to_rfc3339()),
                token_sha256,
            ],
        )?;
        Ok(added > 0)
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY name"))?;
        let rows = stmt.query_map([], staff_row)?;
        rows.map(|r| Ok(staff_decode(r?)?.0)).collect()
    }

    fn staff_by_key(&self, key_id: &str) -> Result<Option<(StaffAccount, String)>> {
        self.conn
            .query_row(
                &format!("SELECT {STAFF_COLUMNS} FROM staff WHERE key_id = ?1"),
                [key_id],
                staff_row,
            )
            .optional()?
            .map(staff_decode)
            .transpose()
    }

    fn revoke_staff(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE staff SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, at.to_rfc3339()],
        )? > 0)
    }
}

const INBOX_COLUMNS: &str = "seq, source, event_id, kind, at, patron_id, change, received_at";

fn inbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, [Option<String>; 7])> {
    Ok((
        r.get(0)?,
        [
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ],
    ))
}

fn inbox_decode((seq, row): (i64, [Option<String>; 7])) -> Result<InboxRow> {
    let [source, id, kind, at, patron, change, received] = row;
    let damaged = || format!("the inbox's event {seq} is damaged");
    let need = |v: Option<String>| v.with_context(damaged);
    Ok(InboxRow {
        seq,
        event: InboxEvent {
            source: need(source)?,
            id: need(id)?,
            kind: need(kind)?,
            at: time(&need(at)?)?,
            patron,
            change: change
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .with_context(damaged)?,
        },
        received_at: time(&need(received)?)?,
    })
}

fn inbox_rows(store: &SqliteStore, filter: &str, n: usize) -> Result<Vec<InboxRow>> {
    let mut stmt = store.conn.prepare(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox WHERE {filter} ORDER BY seq LIMIT ?1"
    ))?;
    let rows = stmt.query_map([n as i64], inbox_row)?;
    rows.map(|r| inbox_decode(r?)).collect()
}

/// Writes `change` for `patron`; whether there was anything to write it
/// to.
fn write_change(tx: &Transaction<'_>, patron: Option<&str>, change: &Circulation) -> Result<bool> {
    let has_patron = |id: &str| -> Result<bool> {
        Ok(tx
            .query_row("SELECT 1 FROM patrons WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    };
    Ok(match change {
        Circulation::Loan(l) => {
            let patron = match patron {
                Some(p) if has_patron(p)? => p,
                _ => return Ok(false),
            };
            tx.execute(
                "INSERT INTO loans (id, patron_id, item_id, title, subject, loaned_on, due_on, \
                 returned_on, renewals) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, \
                 item_id = coalesce(excluded.item_id, item_id), \
                 title = coalesce(excluded.title, title), \
                 subject = coalesce(excluded.subject, subject), \
                 loaned_on = excluded.loaned_on, due_on = coalesce(excluded.due_on, due_on), \
                 returned_on = coalesce(excluded.returned_on, returned_on), \
                 renewals = max(excluded.renewals, renewals)",
                params![
                    l.id,
                    patron,
                    l.item,
                    l.title,
                    l.subject,
                    l.loaned_on.to_string(),
                    date(l.due_on),
                    date(l.returned_on),
                    l.renewals,
                ],
            )? > 0
        }
        Circulation::Returned { loan, on } => {
            tx.execute(
                "UPDATE loans SET returned_on = ?2 WHERE id = ?1",
                params![loan, on.to_string()],
            )? > 0
        }
        Circulation::DueDate {
            loan,
            due_on,
            renewals,
        } => {
            tx.execute(
                "UPDATE loans SET due_on = ?2, renewals = coalesce(?3, renewals) WHERE id = ?1",
                params![loan, due_on.to_string(), renewals],
            )? > 0
        }
        Circulation::Hold(h) => {
            let patron = match patron {
                Some(p) if has_patron(p)? => p,
                _ => return Ok(false),
            };
            tx.execute(
                "INSERT INTO holds (id, patron_id, title, placed_on, status, pickup_branch, \
                 expires_on) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, \
                 title = coalesce(excluded.title, title), placed_on = excluded.placed_on, \
                 status = excluded.status, \
                 pickup_branch = coalesce(excluded.pickup_branch, pickup_branch), \
                 expires_on = excluded.expires_on",
                params![
                    h.id,
                    patron,
                    h.title,
                    h.placed_on.to_string(),
                    h.status,
                    h.pickup_branch,
                    date(h.expires_on),
                ],
            )? > 0
        }
        Circulation::HoldState {
            hold,
            status,
            expires_on,
        } => {
            tx.execute(
                "UPDATE holds SET status = ?2, expires_on = coalesce(?3, expires_on) WHERE id = ?1",
                params![hold, status, date(*expires_on)],
            )? > 0
        }
    })
}

impl Inbox for SqliteStore {
    fn accept_event(&mut self, e: &InboxEvent, at: DateTime<Utc>) -> Result<bool> {
        let change = e.change.as_ref().map(serde_json::to_string).transpose()?;
        let added = self.conn.execute(
            "INSERT INTO inbox (source, event_id, kind, at, patron_id, change, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (source, event_id) DO NOTHING",
            params![
                e.source,
                e.id,
                e.kind,
                e.at.to_rfc3339(),
                e.patron,
                change,
                at.to_rfc3339()
            ],
        )?;
        Ok(added > 0)
    }

    fn pending_events(&self, n: usize) -> Result<Vec<InboxRow>> {
        inbox_rows(self, "processed_at IS NULL", n)
    }

    fn apply_event(&mut self, seq: i64, at: DateTime<Utc>) -> Result<Option<Outcome>> {
        let tx = self.conn.transaction()?;
        let row = tx
            .query_row(
                &format!(
                    "SELECT {INBOX_COLUMNS} FROM inbox WHERE seq = ?1 AND processed_at IS NULL"
                ),
                [seq],
                inbox_row,
            )
            .optional()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let row = inbox_decode(row)?;
        let written = match &row.event.change {
            Some(change) => write_change(&tx, row.event.patron.as_deref(), change)?,
            None => false,
        };
        let outcome = if written {
            Outcome::Applied
        } else {
            Outcome::Skipped
        };
        tx.execute(
            "UPDATE inbox SET processed_at = ?2, outcome = ?3 WHERE seq = ?1",
            params![
                seq,
                at.to_rfc3339(),
                match outcome {
                    Outcome::Applied => "applied",
                    Outcome::Skipped => "skipped",
                }
            ],
        )?;
        tx.commit()?;
        Ok(Some(outcome))
    }

    fn unnotified_events(&self, n: usize) -> Result<Vec<InboxRow>> {
        inbox_rows(
            self,
            "processed_at IS NOT NULL AND outcome = 'applied' AND notified = 0",
            n,
        )
    }

    fn mark_notified(&mut self, seq: i64) -> Result<()> {
        self.conn
            .execute("UPDATE inbox SET notified = 1 WHERE seq = ?1", [seq])?;
        Ok(())
    }

    fn inbox_stats(&self) -> Result<InboxStats> {
        Ok(self.conn.query_row(
            "SELECT coalesce(sum(processed_at IS NULL), 0), \
             coalesce(sum(outcome = 'applied'), 0), coalesce(sum(outcome = 'skipped'), 0), \
             coalesce(sum(outcome = 'applied' AND notified = 0), 0) FROM inbox",
            [],
            |r| {
                Ok(InboxStats {
                    pending: r.get::<_, i64>(0)? as usize,
                    applied: r.get::<_, i64>(1)? as usize,
                    skipped: r.get::<_, i64>(2)? as usize,
                    unnotified: r.get::<_, i64>(3)? as usize,
                })
            },
        )?)
    }

    fn requeue_skipped(&mut self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE inbox SET processed_at = NULL, outcome = NULL \
             WHERE outcome = 'skipped' AND patron_id IN (SELECT id FROM patrons)",
            [],
        )?)
    }

    fn loan(&self, id: &str) -> Result<Option<LoanRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, patron_id, item_id, title, subject, loaned_on, due_on, returned_on, \
                 renewals FROM loans WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        LoanRecord {
                            id: r.get(0)?,
                            patron: r.get(1)?,
                            item: r.get(2)?,
                            title: r.get(3)?,
                            subject: r.get(4)?,
                            loaned_on: chrono::NaiveDate::MIN,
                            due_on: parse_date(r.get(6)?),
                            returned_on: parse_date(r.get(7)?),
                            renewals: r.get(8)?,
                        },
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?
            .map(|(mut l, on)| {
                l.loaned_on = on.parse().unwrap_or(chrono::NaiveDate::MIN);
                l
            }))
    }

    fn hold(&self, id: &str) -> Result<Option<HoldRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, patron_id, title, placed_on, status, pickup_branch, expires_on \
                 FROM holds WHERE id = ?1",
                [id],
                |r| {
                    Ok(HoldRecord {
                        id: r.get(0)?,
                        patron: r.get(1)?,
                        title: r.get(2)?,
                        placed_on: parse_date(r.get(3)?).unwrap_or(chrono::NaiveDate::MIN),
                        status: r.get(4)?,
                        pickup_branch: r.get(5)?,
                        expires_on: parse_date(r.get(6)?),
                    })
                },
            )
            .optional()?)
    }
}

impl Jobs for SqliteStore {
    fn start_job(&mut self, job: &str, at: DateTime<Utc>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO job_runs (job, started_at, state) VALUES (?1, ?2, 'running')",
            params![job, at.to_rfc3339()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn end_job(&mut self, id: i64, at: DateTime<Utc>, ok: bool, summary: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE job_runs SET ended_at = ?2, state = ?3, summary = ?4 WHERE id = ?1",
            params![
                id,
                at.to_rfc3339(),
                if ok { "ok" } else { "failed" },
                summary
            ],
        )?;
        Ok(())
    }

    fn job_runs(&self, job: Option<&str>, n: usize) -> Result<Vec<JobRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, job, started_at, ended_at, state, summary FROM job_runs \
             WHERE ?1 IS NULL OR job = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![job, n as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|r| {
            let (id, job, started, ended, state, summary) = r?;
            Ok(JobRun {
                id,
                job,
                started_at: time(&started)?,
                ended_at: opt_time(ended)?,
                state,
                summary,
            })
        })
        .collect()
    }
}
