//! Shared work in SQLite: planned runs and their ranges, and daily locks
//! as file locks beside the store.

use anyhow::{Context as _, Result};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, fields_of, fields_text, now, parse_date};
use crate::model::Scored;
use crate::store::ScoreRun;
use crate::store::shared::{DailyLock, RangeClaim, RangeStored, SharedWork};

/// What an erasure does to the ranges of runs still being scored, whose
/// first or last id may be the erased patron's: the boundary moves to the
/// nearest patron still in the range, and a range left with nobody is
/// done. A complete run's ranges keep no id at all.
pub(super) const FORGET_BOUNDARY: [&str; 4] = [
    "UPDATE run_ranges SET done = 1, lo = '', hi = '', lease_until = NULL \
     WHERE (lo = ?1 OR hi = ?1) AND NOT EXISTS (SELECT 1 FROM patrons p \
       WHERE p.id >= run_ranges.lo AND p.id <= run_ranges.hi AND p.id <> ?1)",
    "UPDATE run_ranges SET lo = (SELECT MIN(p.id) FROM patrons p \
       WHERE p.id > run_ranges.lo AND p.id <= run_ranges.hi) WHERE lo = ?1",
    "UPDATE run_ranges SET hi = (SELECT MAX(p.id) FROM patrons p \
       WHERE p.id >= run_ranges.lo AND p.id < run_ranges.hi) WHERE hi = ?1",
    "UPDATE score_runs SET complete = 1 WHERE complete = 0 AND ?1 IS NOT NULL \
     AND id IN (SELECT run_id FROM run_ranges) \
     AND NOT EXISTS (SELECT 1 FROM run_ranges r WHERE r.run_id = score_runs.id AND NOT r.done)",
];

/// A daily job's lock: an exclusive `flock` on a file beside the store,
/// let go when the file is closed, by the process or by its death.
struct FileLock(#[allow(dead_code)] std::fs::File);

impl DailyLock for FileLock {}

impl SharedWork for SqliteStore {
    fn plan_run(&mut self, run: &ScoreRun, ranges: &[(String, String)]) -> Result<i64> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO score_runs (plugin, version, as_of, finished_at, patrons, fields, complete) \
             VALUES (?1, ?2, ?3, ?4, 0, ?5, 0)",
            params![
                run.plugin,
                run.version,
                run.as_of.to_string(),
                now(),
                run.fields.as_ref().map(|f| fields_text(f))
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut insert =
                tx.prepare("INSERT INTO run_ranges (run_id, seq, lo, hi) VALUES (?1, ?2, ?3, ?4)")?;
            for (seq, (lo, hi)) in ranges.iter().enumerate() {
                insert.execute(params![id, seq as i64, lo, hi])?;
            }
        }
        if ranges.is_empty() {
            tx.execute("UPDATE score_runs SET complete = 1 WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(id)
    }

    fn claim_range(
        &mut self,
        worker: &str,
        scorers: &[String],
        now: i64,
        lease_secs: i64,
    ) -> Result<Option<RangeClaim>> {
        let tx = self.conn.transaction()?;
        let found = tx
            .query_row(
                "SELECT x.run_id, x.seq, x.lo, x.hi, r.plugin, r.version, r.as_of, r.fields, x.claims \
                 FROM run_ranges x JOIN score_runs r ON r.id = x.run_id \
                 WHERE NOT x.done AND NOT r.complete \
                   AND r.plugin || '@' || r.version IN (SELECT value FROM json_each(?1)) \
                   AND (x.lease_until IS NULL OR x.lease_until < ?2) \
                 ORDER BY x.run_id, x.seq LIMIT 1",
                params![serde_json::to_string(scorers)?, now],
                |r| {
                    Ok(RangeClaim {
                        run: r.get(0)?,
                        range: r.get(1)?,
                        lo: r.get(2)?,
                        hi: r.get(3)?,
                        scorer: ScoreRun {
                            plugin: r.get(4)?,
                            version: r.get(5)?,
                            as_of: parse_date(r.get(6)?).unwrap_or_default(),
                            fields: fields_of(r.get(7)?),
                        },
                        claims: r.get::<_, u32>(8)? + 1,
                    })
                },
            )
            .optional()?;
        if let Some(claim) = &found {
            tx.execute(
                "UPDATE run_ranges SET worker = ?3, lease_until = ?4, claims = claims + 1 \
                 WHERE run_id = ?1 AND seq = ?2",
                params![claim.run, claim.range, worker, now + lease_secs],
            )?;
        }
        tx.commit()?;
        Ok(found)
    }

    fn store_range(
        &mut self,
        claim: &RangeClaim,
        worker: &str,
        scores: &[Scored],
    ) -> Result<RangeStored> {
        let tx = self.conn.transaction()?;
        let held = tx.execute(
            "UPDATE run_ranges SET done = 1, lease_until = NULL \
             WHERE run_id = ?1 AND seq = ?2 AND worker = ?3 AND NOT done",
            params![claim.run, claim.range, worker],
        )?;
        if held == 0 {
            return Ok(RangeStored::Lost);
        }
        let mut stored = 0usize;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO scores (run_id, patron_id, value, segment, reasons) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM patrons WHERE id = ?2)",
            )?;
            for s in scores {
                stored += insert
                    .execute(params![
                        claim.run,
                        s.patron,
                        s.value,
                        s.segment,
                        serde_json::to_string(&s.reasons)?
                    ])
                    .with_context(|| {
                        format!("failed to store the score of patron `{}`", s.patron)
                    })?;
            }
        }
        tx.execute(
            "UPDATE score_runs SET patrons = patrons + ?2 WHERE id = ?1",
            params![claim.run, stored as i64],
        )?;
        let run_complete = tx.execute(
            "UPDATE score_runs SET complete = 1, finished_at = ?2 WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM run_ranges WHERE run_id = ?1 AND NOT done)",
            params![claim.run, now()],
        )? > 0;
        if run_complete {
            // The run is whole: its ranges keep no patron's id.
            tx.execute(
                "UPDATE run_ranges SET lo = '', hi = '' WHERE run_id = ?1",
                [claim.run],
            )?;
        }
        tx.commit()?;
        Ok(RangeStored::Stored { run_complete })
    }

    fn runs_in_progress(&self, scorers: &[String]) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM score_runs WHERE NOT complete \
             AND id IN (SELECT run_id FROM run_ranges) \
             AND plugin || '@' || version IN (SELECT value FROM json_each(?1))",
            [serde_json::to_string(scorers)?],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    fn daily_lock(&self, job: &str) -> Result<Option<Box<dyn DailyLock>>> {
        anyhow::ensure!(
            job.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "bad job name `{job}`"
        );
        if self.path.as_os_str() == ":memory:" {
            return Ok(Some(Box::new(FileLock(tempfile::tempfile()?))));
        }
        let path = self.path.with_extension(format!("{job}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open the lock {}", path.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Box::new(FileLock(file)))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("failed to lock {}", path.display())),
        }
    }
}
