//! Shared work in PostgreSQL: ranges claimed `FOR UPDATE SKIP LOCKED`
//! under a lease, stored whole under the run's row lock, and daily jobs
//! under a session advisory lock that the server lets go if the holder
//! dies.

use anyhow::{Context as _, Result};

use super::{PgStore, fields_of, fields_text, now, parse_date};
use crate::model::Scored;
use crate::store::ScoreRun;
use crate::store::shared::{DailyLock, RangeClaim, RangeStored, SharedWork};

/// What an erasure does to the ranges of runs still being scored: as in
/// SQLite (`sqlite/shared.rs`).
pub(super) const FORGET_BOUNDARY: [&str; 4] = [
    "UPDATE run_ranges SET done = TRUE, lo = '', hi = '', lease_until = NULL \
     WHERE (lo = $1 OR hi = $1) AND NOT EXISTS (SELECT 1 FROM patrons p \
       WHERE p.id >= run_ranges.lo AND p.id <= run_ranges.hi AND p.id <> $1)",
    "UPDATE run_ranges SET lo = (SELECT MIN(p.id) FROM patrons p \
       WHERE p.id > run_ranges.lo AND p.id <= run_ranges.hi) WHERE lo = $1",
    "UPDATE run_ranges SET hi = (SELECT MAX(p.id) FROM patrons p \
       WHERE p.id >= run_ranges.lo AND p.id < run_ranges.hi) WHERE hi = $1",
    "UPDATE score_runs SET complete = TRUE WHERE NOT complete AND $1::text IS NOT NULL \
     AND id IN (SELECT run_id FROM run_ranges) \
     AND NOT EXISTS (SELECT 1 FROM run_ranges r WHERE r.run_id = score_runs.id AND NOT r.done)",
];

/// A daily job's advisory lock, held by a connection of its own: closing
/// the connection, or the process's death, lets it go.
struct AdvisoryLock(#[allow(dead_code)] PgStore);

impl DailyLock for AdvisoryLock {}

impl SharedWork for PgStore {
    fn plan_run(&mut self, run: &ScoreRun, ranges: &[(String, String)]) -> Result<i64> {
        let mut tx = self.client.get_mut().transaction()?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO score_runs (plugin, version, as_of, finished_at, patrons, fields, complete) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6) RETURNING id",
                &[
                    &run.plugin,
                    &run.version,
                    &run.as_of.to_string(),
                    &now(),
                    &run.fields.as_ref().map(|f| fields_text(f)),
                    &ranges.is_empty(),
                ],
            )?
            .get(0);
        let insert =
            tx.prepare("INSERT INTO run_ranges (run_id, seq, lo, hi) VALUES ($1, $2, $3, $4)")?;
        for (seq, (lo, hi)) in ranges.iter().enumerate() {
            tx.execute(&insert, &[&id, &(seq as i64), lo, hi])?;
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
        let row = self.client.get_mut().query_opt(
            "UPDATE run_ranges x SET worker = $1, lease_until = $2 + $3, claims = x.claims + 1 \
             FROM score_runs r \
             WHERE r.id = x.run_id AND (x.run_id, x.seq) = ( \
                SELECT q.run_id, q.seq FROM run_ranges q JOIN score_runs s ON s.id = q.run_id \
                WHERE NOT q.done AND NOT s.complete AND s.plugin || '@' || s.version = ANY($4::text[]) \
                  AND (q.lease_until IS NULL OR q.lease_until < $2) \
                ORDER BY q.run_id, q.seq LIMIT 1 FOR UPDATE OF q SKIP LOCKED) \
             RETURNING x.run_id, x.seq, x.lo, x.hi, r.plugin, r.version, r.as_of, r.fields, x.claims",
            &[&worker, &now, &lease_secs, &scorers],
        )?;
        Ok(row.map(|r| RangeClaim {
            run: r.get(0),
            range: r.get(1),
            lo: r.get(2),
            hi: r.get(3),
            scorer: ScoreRun {
                plugin: r.get(4),
                version: r.get(5),
                as_of: parse_date(r.get(6)).unwrap_or_default(),
                fields: fields_of(r.get(7)),
            },
            claims: r.get::<_, i64>(8) as u32,
        }))
    }

    fn store_range(
        &mut self,
        claim: &RangeClaim,
        worker: &str,
        scores: &[Scored],
    ) -> Result<RangeStored> {
        let mut tx = self.client.get_mut().transaction()?;
        // The run's row first: stores of one run take turns, so that the
        // last one sees every other range stored and completes the run.
        tx.execute(
            "SELECT 1 FROM score_runs WHERE id = $1 FOR UPDATE",
            &[&claim.run],
        )?;
        let held = tx.execute(
            "UPDATE run_ranges SET done = TRUE, lease_until = NULL \
             WHERE run_id = $1 AND seq = $2 AND worker = $3 AND NOT done",
            &[&claim.run, &claim.range, &worker],
        )?;
        if held == 0 {
            return Ok(RangeStored::Lost);
        }
        let insert = tx.prepare(
            "INSERT INTO scores (run_id, patron_id, value, segment, reasons) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM patrons WHERE id = $2)",
        )?;
        let mut stored = 0u64;
        for s in scores {
            stored += tx
                .execute(
                    &insert,
                    &[
                        &claim.run,
                        &s.patron,
                        &f64::from(s.value),
                        &s.segment,
                        &serde_json::to_string(&s.reasons)?,
                    ],
                )
                .with_context(|| format!("failed to store the score of patron `{}`", s.patron))?;
        }
        tx.execute(
            "UPDATE score_runs SET patrons = patrons + $2 WHERE id = $1",
            &[&claim.run, &(stored as i64)],
        )?;
        let run_complete = tx.execute(
            "UPDATE score_runs SET complete = TRUE, finished_at = $2 WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM run_ranges WHERE run_id = $1 AND NOT done)",
            &[&claim.run, &now()],
        )? > 0;
        if run_complete {
            // The run is whole: its ranges keep no patron's id.
            tx.execute(
                "UPDATE run_ranges SET lo = '', hi = '' WHERE run_id = $1",
                &[&claim.run],
            )?;
        }
        tx.commit()?;
        Ok(RangeStored::Stored { run_complete })
    }

    fn runs_in_progress(&self, scorers: &[String]) -> Result<usize> {
        let n: i64 = self
            .db()
            .query_one(
                "SELECT COUNT(*) FROM score_runs s WHERE NOT complete \
                 AND EXISTS (SELECT 1 FROM run_ranges WHERE run_id = s.id) \
                 AND plugin || '@' || version = ANY($1::text[])",
                &[&scorers],
            )?
            .get(0);
        Ok(n as usize)
    }

    fn daily_lock(&self, job: &str) -> Result<Option<Box<dyn DailyLock>>> {
        let handle = self.handle()?;
        let got: bool = handle
            .db()
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('lectern-daily:' || current_schema() || ':' || $1, 0))",
                &[&job],
            )?
            .get(0);
        Ok(got.then(|| Box::new(AdvisoryLock(handle)) as Box<dyn DailyLock>))
    }
}
