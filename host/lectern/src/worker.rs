//! What a worker does on a store it shares with other workers: score the
//! ranges of planned runs, and run a daily job once per library per day.
//! `lectern worker` is a loop over these, the inbox and delivery.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::plugin::Scorer;
use crate::privacy::{AccessContext, Actor, Purpose};
use crate::store::{RangeClaim, RangeStored, ScoreRun};

/// Each scorer as `plugin@version`: a run is scored only by the version
/// it was planned with.
fn versions(scorers: &[Scorer]) -> Vec<String> {
    scorers
        .iter()
        .map(|s| format!("{}@{}", s.plugin().id(), s.plugin().version()))
        .collect()
}

/// One range a worker scored.
#[derive(Debug, Clone)]
pub struct RangeDone {
    /// The range, as claimed.
    pub claim: RangeClaim,
    /// The patrons it scored.
    pub patrons: usize,
    /// Whether its scores were stored, and whether that completed the run.
    pub stored: RangeStored,
}

impl Lectern {
    /// Plans a run of `scorer` over every stored patron as of `as_of`,
    /// split into ranges of `batch` ids, for workers to score
    /// ([`Lectern::score_next_range`]). The run is invisible until every
    /// range is stored. Returns its id.
    pub fn plan_score(&mut self, scorer: &Scorer, as_of: NaiveDate, batch: usize) -> Result<i64> {
        let ctx = AccessContext {
            purpose: Purpose::Scoring,
            actor: Actor::Plugin(scorer.plugin().id().to_string()),
        };
        let received = self
            .pipeline(as_of)
            .rules_for(&ctx, Some(scorer.plugin()))?
            .passed();
        let run = ScoreRun {
            plugin: scorer.plugin().id().to_string(),
            version: scorer.plugin().version().to_string(),
            as_of,
            fields: Some(received),
        };
        let ranges = self.store().patron_ranges(batch).map_err(Error::store)?;
        self.store_mut()
            .plan_run(&run, &ranges)
            .map_err(Error::store)
    }

    /// Claims the next range of a planned run by one of `scorers` for
    /// `lease`, reads and scores its patrons (audited, as every scoring
    /// is), and stores its scores whole. `None` when no range can be
    /// claimed now.
    pub fn score_next_range(
        &mut self,
        scorers: &[Scorer],
        worker: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RangeDone>> {
        let ids = versions(scorers);
        let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX / 2);
        let Some(claim) = self
            .store_mut()
            .claim_range(worker, &ids, now.timestamp(), lease)
            .map_err(Error::store)?
        else {
            return Ok(None);
        };
        let Some(scorer) = scorers.iter().find(|s| {
            s.plugin().id() == claim.scorer.plugin && *s.plugin().version() == claim.scorer.version
        }) else {
            return Err(Error::Config(anyhow::anyhow!(
                "run {} was planned with {} {}, and this worker has another version; give every \
                 worker the same plugin",
                claim.run,
                claim.scorer.plugin,
                claim.scorer.version
            )));
        };
        let patrons = self
            .store()
            .patron_reader()
            .and_then(|r| r.patrons_between(&claim.lo, &claim.hi, claim.scorer.as_of))
            .map_err(Error::store)?;
        let scores = self.pipeline(claim.scorer.as_of).score(scorer, &patrons)?;
        let stored = self
            .store_mut()
            .store_range(&claim, worker, &scores)
            .map_err(Error::store)?;
        Ok(Some(RangeDone {
            patrons: scores.len(),
            claim,
            stored,
        }))
    }

    /// Planned runs of `scorers` not complete yet: ranges another worker
    /// holds, or that wait for a lease to end.
    pub fn runs_in_progress(&self, scorers: &[Scorer]) -> Result<usize> {
        let ids = versions(scorers);
        self.store().runs_in_progress(&ids).map_err(Error::store)
    }

    /// Runs the daily `job` through `work`, recorded in the job history,
    /// unless it already ran well on `day` or another process is running
    /// it now: `None` then. However many workers call this, the job runs
    /// once per library per day; one that dies in it lets the next in.
    pub fn once_today(
        &mut self,
        job: &str,
        day: NaiveDate,
        work: impl FnOnce(&mut Lectern) -> Result<String>,
    ) -> Result<Option<String>> {
        let rules = self.config().notify.clone();
        let ran = |l: &Lectern| -> Result<bool> {
            Ok(l.job_runs(Some(job), 20)?
                .iter()
                .any(|r| r.state == "ok" && crate::config::local_day(&rules, r.started_at) == day))
        };
        // The history first, so that a worker looking every second opens
        // no lock once the day's run is done; and again under the lock.
        if ran(self)? {
            return Ok(None);
        }
        let Some(lock) = self.store().daily_lock(job).map_err(Error::store)? else {
            return Ok(None);
        };
        if ran(self)? {
            return Ok(None);
        }
        let out = self.run_job(job, work);
        drop(lock);
        out.map(Some)
    }
}
