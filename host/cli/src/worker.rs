//! `lectern worker`: one of any number of processes, on one machine or
//! many, sharing a library's store. Each drains the inbox, delivers the
//! outbox, scores the ranges of planned runs, and takes its turn at the
//! daily jobs, which run once per library per day whoever starts them.

use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::Utc;
use clap::{Args, ValueEnum};
use lectern::{Campaigns, Lectern, RangeStored, Until, local_day};
use serde_json::json;

use crate::Ctx;

/// What a worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Job {
    /// Apply the events the ILS pushed, and queue the notices they cause
    Inbox,
    /// Send what the outbox holds
    Deliver,
    /// Plan each scorer's daily run, and score ranges of planned runs
    Score,
    /// Find and queue the day's notices and campaign steps, once a day
    Notify,
}

#[derive(Args)]
pub struct WorkerArgs {
    /// This worker's name in leases and logs [default: the host's name and
    /// the process id]
    #[arg(long)]
    name: Option<String>,
    /// The jobs this worker does [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    jobs: Vec<Job>,
    /// Seconds a scoring range stays this worker's before another may take
    /// it over; longer than a range takes to score
    #[arg(long, default_value_t = 300)]
    lease_secs: u64,
    /// Patrons per scoring range
    #[arg(long, default_value_t = 1000)]
    range: usize,
    /// Stop when nothing is left to do (waiting for ranges and messages
    /// other workers hold), instead of waiting for more work
    #[arg(long)]
    once: bool,
    /// Milliseconds to wait when there is nothing to do
    #[arg(long, default_value_t = 1000)]
    idle_ms: u64,
}

pub fn worker(ctx: &Ctx, args: WorkerArgs) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let jobs = if args.jobs.is_empty() {
        vec![Job::Inbox, Job::Deliver, Job::Score, Job::Notify]
    } else {
        args.jobs.clone()
    };
    let mut library = ctx.open(None)?;
    let rules = library.config().serve.clone();
    let messengers = rules
        .messengers
        .iter()
        .map(|m| {
            library
                .plugin_at(m)
                .and_then(|p| p.into_messenger())
                .with_context(|| format!("`serve.messengers`: cannot load {m}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let scorers = rules
        .scorers
        .iter()
        .map(|s| {
            library
                .plugin_at(s)
                .and_then(|p| p.into_scorer())
                .with_context(|| format!("`serve.scorers`: cannot load {s}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let lease = Duration::from_secs(args.lease_secs.max(1));
    let say = |what: &str, detail: serde_json::Value, text: String| {
        if ctx.json {
            out!("{}", json!({"worker": name, "job": what, "did": detail}));
        } else {
            out!("{name}: {what}: {text}");
        }
    };
    loop {
        let now = Utc::now();
        let mut busy = false;
        if jobs.contains(&Job::Inbox) {
            let r = library.process_inbox(&messengers, now, 200)?;
            if r.applied + r.skipped > 0 {
                busy = true;
                say(
                    "inbox",
                    json!({"applied": r.applied, "skipped": r.skipped, "queued": r.queued}),
                    format!(
                        "{} applied, {} skipped, {} queued",
                        r.applied, r.skipped, r.queued
                    ),
                );
            }
        }
        if jobs.contains(&Job::Deliver) {
            let r = library.deliver(Until::NothingDue, &mut |_| {})?;
            if r.sent + r.retried + r.failed + r.cancelled > 0 {
                busy = true;
                say(
                    "deliver",
                    json!({"sent": r.sent, "retried": r.retried, "failed": r.failed}),
                    format!(
                        "{} sent, {} retried, {} failed",
                        r.sent, r.retried, r.failed
                    ),
                );
            }
        }
        let today = local_day(&library.config().notify, now);
        let time = library.config().notify.clock.local(now).time();
        if jobs.contains(&Job::Score) {
            if time >= rules.score_at && !scorers.is_empty() {
                let planned = library.once_today("score", today, |l: &mut Lectern| {
                    let mut runs = Vec::new();
                    for s in &scorers {
                        let id = l.plan_score(s, today, args.range)?;
                        runs.push(format!("{}: run {id} planned", s.plugin().id()));
                    }
                    Ok(runs.join("; "))
                })?;
                if let Some(summary) = planned {
                    busy = true;
                    say("score", json!({"planned": summary}), summary);
                }
            }
            while let Some(done) = library.score_next_range(&scorers, &name, lease, Utc::now())? {
                busy = true;
                let (stored, complete) = match done.stored {
                    RangeStored::Stored { run_complete } => (true, run_complete),
                    RangeStored::Lost => (false, false),
                };
                say(
                    "score",
                    json!({"run": done.claim.run, "range": done.claim.range,
                           "patrons": done.patrons, "stored": stored, "run_complete": complete}),
                    format!(
                        "run {} range {} ({} patrons): {}{}",
                        done.claim.run,
                        done.claim.range,
                        done.patrons,
                        if stored {
                            "stored"
                        } else {
                            "another worker holds it now; nothing stored"
                        },
                        if complete {
                            "; the run is complete"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if jobs.contains(&Job::Notify) && time >= rules.notify_at {
            let ran = library.once_today("notify", today, |l: &mut Lectern| {
                let r = l.notify(&messengers, &Campaigns::default(), true, Vec::new(), now)?;
                let mut queued = r.queued;
                for def in l.campaigns()? {
                    queued += l.run_campaign(&def, now)?.queued;
                }
                Ok(format!("{} events, {queued} queued", r.events))
            })?;
            if let Some(summary) = ran {
                busy = true;
                say("notify", json!({"summary": summary}), summary);
            }
        }
        if !busy {
            if args.once && !waiting_for_others(&library, &jobs, &scorers)? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(args.idle_ms));
        }
    }
}

/// Whether work remains that another worker holds: a planned run not
/// complete, a message being sent (a dead worker's comes back when its
/// lease ends), an event not applied. Messages held back until later (quiet
/// hours, a retry's wait) are not waited for.
fn waiting_for_others(
    library: &Lectern,
    jobs: &[Job],
    scorers: &[lectern::Scorer],
) -> Result<bool> {
    if jobs.contains(&Job::Score) && library.runs_in_progress(scorers)? > 0 {
        return Ok(true);
    }
    if jobs.contains(&Job::Deliver) && library.outbox_stats()?.iter().any(|c| c.sending > 0) {
        return Ok(true);
    }
    if jobs.contains(&Job::Inbox) && library.inbox_stats()?.pending > 0 {
        return Ok(true);
    }
    Ok(false)
}
