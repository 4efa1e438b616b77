//! Work that several processes share on one store: a scoring run split
//! into ranges of patron ids that workers claim under a lease, and the
//! lock that lets a daily job run once per library however many workers
//! look at the clock.

use super::ScoreRun;
use crate::model::Scored;

/// A range of a planned run, claimed by one worker until its lease ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeClaim {
    /// The run the range belongs to.
    pub run: i64,
    /// The range's number within its run.
    pub range: i64,
    /// The first patron id of the range.
    pub lo: String,
    /// The last patron id of the range, included.
    pub hi: String,
    /// The scorer and the day the run was planned for.
    pub scorer: ScoreRun,
    /// How many times the range was claimed, this claim included: more
    /// than one means a worker before this one lost its lease.
    pub claims: u32,
}

/// What storing a claimed range did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeStored {
    /// The range's scores are stored; `run_complete` when it was the last
    /// range, and the run is now visible.
    Stored {
        /// The run is complete and visible.
        run_complete: bool,
    },
    /// Another worker holds the range now (this one's lease ran out and
    /// it was claimed again), or it is stored already: nothing was written.
    Lost,
}

/// Held while a daily job runs; dropping it lets the next holder in.
pub trait DailyLock: Send {}

/// Work several processes share on one store.
pub trait SharedWork {
    /// Plans a run of `run` split into `ranges` of patron ids: the run is
    /// invisible until every range is stored. Returns its id.
    fn plan_run(&mut self, run: &ScoreRun, ranges: &[(String, String)]) -> anyhow::Result<i64>;

    /// Claims the first range, of a planned run by one of `scorers`
    /// (`plugin@version`: a worker claims only runs it can score), that
    /// is not stored and whose lease is free or ended before `now` (Unix
    /// seconds), for `lease_secs`. Two workers never hold one range.
    fn claim_range(
        &mut self,
        worker: &str,
        scorers: &[String],
        now: i64,
        lease_secs: i64,
    ) -> anyhow::Result<Option<RangeClaim>>;

    /// Stores the scores of `claim` in one transaction if `worker` still
    /// holds it, and makes the run visible when it was the last range.
    fn store_range(
        &mut self,
        claim: &RangeClaim,
        worker: &str,
        scores: &[Scored],
    ) -> anyhow::Result<RangeStored>;

    /// Planned runs of `scorers` (`plugin@version`) not complete yet.
    fn runs_in_progress(&self, scorers: &[String]) -> anyhow::Result<usize>;

    /// The lock of the daily `job`, if no other process holds it; held
    /// until the returned value is dropped, and let go if the process
    /// dies.
    fn daily_lock(&self, job: &str) -> anyhow::Result<Option<Box<dyn DailyLock>>>;
}
