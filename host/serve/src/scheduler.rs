//! The scheduler inside the service: the inbox and delivery every few
//! seconds; scoring, notices and retention once a day at the library's
//! times. Jobs run one at a time, each recorded in the job history; the
//! CLI's commands do the same work for a library that runs them from cron.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use lectern::{Campaigns, Keep, Lectern, Retention, Until, local_day};

use crate::App;

/// The jobs there are, as the history and `POST /v1/jobs/{job}` name them.
pub(crate) const JOBS: [&str; 6] = ["inbox", "deliver", "sync", "score", "notify", "retention"];

/// Runs `job` now on the library, recorded in the history. The frequent
/// jobs (inbox, deliver) are recorded only when they did something, or
/// failed differently from their last failure, so that the history does
/// not fill with a row every few seconds.
pub(crate) fn run(app: &App, job: &str) -> lectern::Result<String> {
    let mut library = app.library.lock().unwrap_or_else(|e| e.into_inner());
    let frequent = matches!(job, "inbox" | "deliver");
    let started = Utc::now();
    let outcome = if frequent {
        let outcome = work(app, &mut library, job, started);
        let record = match &outcome {
            Ok((_, active)) => {
                app.last_failure(job, None);
                *active
            }
            Err(e) => app.last_failure(job, Some(e.to_string())),
        };
        if record {
            let (ok, summary) = match &outcome {
                Ok((s, _)) => (true, s.clone()),
                Err(e) => (false, e.to_string()),
            };
            library.record_job(job, started, ok, &summary)?;
        }
        outcome.map(|(s, _)| s)
    } else {
        library.run_job(job, |library: &mut Lectern| {
            work(app, library, job, started).map(|(s, _)| s)
        })
    };
    app.metrics.job(job, outcome.is_ok());
    outcome
}

/// Does `job`'s work: what it says it did, and whether it did anything.
fn work(
    app: &App,
    library: &mut Lectern,
    job: &str,
    now: chrono::DateTime<Utc>,
) -> lectern::Result<(String, bool)> {
    let messengers = &app.messengers;
    let scorers = &app.rules.scorers;
    match job {
        "inbox" => {
            let r = library.process_inbox(messengers, now, 1000)?;
            Ok((
                format!(
                    "{} applied, {} skipped, {} notices queued",
                    r.applied, r.skipped, r.queued
                ),
                r.applied + r.skipped > 0,
            ))
        }
        "deliver" => {
            let r = library.deliver(Until::NothingDue, &mut |_| {})?;
            Ok((
                format!(
                    "{} sent, {} retried, {} failed",
                    r.sent, r.retried, r.failed
                ),
                r.sent + r.retried + r.failed + r.cancelled > 0,
            ))
        }
        "sync" => {
            let var =
                |name: &str| {
                    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                    lectern::Error::Config(anyhow::anyhow!(
                        "the sync needs {name}: set LECTERN_KOHA_URL, LECTERN_KOHA_CLIENT_ID \
                         and LECTERN_KOHA_CLIENT_SECRET for `lectern serve`"
                    ))
                })
                };
            let source = lectern::KohaSource {
                url: var("LECTERN_KOHA_URL")?,
                client_id: var("LECTERN_KOHA_CLIENT_ID")?,
                client_secret: lectern::Secret::new(var("LECTERN_KOHA_CLIENT_SECRET")?),
                per_page: 100,
                full: false,
            };
            let options = lectern::ImportOptions {
                clock: library.config().notify.clock,
                ..Default::default()
            };
            let r = library.sync_koha(&source, options, &mut |_, _| {})?;
            Ok((
                format!(
                    "{} patrons read from Koha: {} new, {} updated, {} skipped",
                    r.patrons,
                    r.import.written.imported,
                    r.import.written.updated,
                    r.import.skipped.len()
                ),
                true,
            ))
        }
        "score" => {
            let today = local_day(&library.config().notify, now);
            let mut done = Vec::new();
            for s in scorers {
                let scorer = library.plugin_at(s)?.into_scorer()?;
                let run = library.score_store(&scorer, today, Keep::Top(0), &mut |_, _| {})?;
                done.push(format!(
                    "{s}: run {} of {} patrons",
                    run.run.id, run.run.patrons
                ));
            }
            let summary = if done.is_empty() {
                "no scorer configured (`serve.scorers`)".to_string()
            } else {
                done.join("; ")
            };
            Ok((summary, true))
        }
        "notify" => {
            let r = library.notify(messengers, &Campaigns::default(), true, Vec::new(), now)?;
            // The library's campaigns run with the day's notices, under
            // the same rules.
            let mut campaigns = Vec::new();
            for def in library.campaigns()? {
                let c = library.run_campaign(&def, now)?;
                campaigns.push(format!("{} {} queued", c.campaign, c.queued));
            }
            let campaigns = if campaigns.is_empty() {
                String::new()
            } else {
                format!("; campaigns: {}", campaigns.join(", "))
            };
            Ok((
                format!("{} events, {} queued{campaigns}", r.events, r.queued),
                true,
            ))
        }
        "retention" => {
            let today = local_day(&library.config().notify, now);
            let r = library.apply_retention(today, &Retention::default())?;
            Ok((
                format!(
                    "{} loans aged, {} messages and {} events removed",
                    r.loans_aged, r.messages_removed, r.events_removed
                ),
                true,
            ))
        }
        other => Err(lectern::Error::NotFound(format!("no job `{other}`"))),
    }
}

/// The day each daily job last ran, from the history, so that a restart
/// does not run it twice.
fn last_day(app: &App, job: &str) -> Option<NaiveDate> {
    let library = app.library.lock().unwrap_or_else(|e| e.into_inner());
    let rules = &library.config().notify;
    library
        .job_runs(Some(job), 1)
        .ok()?
        .first()
        .map(|r| local_day(rules, r.started_at))
}

/// Runs until the service stops.
pub(crate) async fn run_loop(app: Arc<App>) {
    let mut stopping = app.stopping.subscribe();
    let mut daily = vec![
        ("score", app.rules.score_at),
        ("notify", app.rules.notify_at),
        ("retention", app.rules.retention_at),
    ];
    if let Some(at) = app.rules.sync_at {
        daily.insert(0, ("sync", at));
    }
    let mut last: Vec<Option<NaiveDate>> = Vec::new();
    for &(job, _) in &daily {
        let app = app.clone();
        last.push(
            tokio::task::spawn_blocking(move || last_day(&app, job))
                .await
                .ok()
                .flatten(),
        );
    }
    // The clock, once: the loop never waits for the library's lock.
    let rules = app
        .library
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .config()
        .notify
        .clone();
    let mut retry_later: Vec<Option<Instant>> = vec![None; daily.len()];
    let mut next_inbox = Instant::now();
    let mut next_deliver = Instant::now();
    loop {
        if *stopping.borrow() {
            return;
        }
        let now = Instant::now();
        let mut due: Vec<(Option<usize>, &'static str)> = Vec::new();
        if now >= next_inbox {
            due.push((None, "inbox"));
            next_inbox = now + app.rules.inbox_every;
        }
        if now >= next_deliver {
            due.push((None, "deliver"));
            next_deliver = now + app.rules.deliver_every;
        }
        {
            let utc = Utc::now();
            let today = local_day(&rules, utc);
            let time = rules.clock.local(utc).time();
            for (i, (job, at)) in daily.iter().enumerate() {
                if time >= *at && last[i] != Some(today) && retry_later[i].is_none_or(|t| now >= t)
                {
                    due.push((Some(i), job));
                }
            }
        }
        for (daily_index, job) in due {
            if *stopping.borrow() {
                return;
            }
            let app2 = app.clone();
            let ok = match tokio::task::spawn_blocking(move || run(&app2, job)).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    tracing::warn!("job {job} failed: {e}");
                    false
                }
                Err(_) => {
                    tracing::warn!("job {job} panicked");
                    false
                }
            };
            // A daily job that failed (Koha down for the sync) is tried
            // again in ten minutes, not tomorrow.
            if let Some(i) = daily_index {
                if ok {
                    last[i] = Some(local_day(&rules, Utc::now()));
                    retry_later[i] = None;
                } else {
                    retry_later[i] = Some(Instant::now() + Duration::from_secs(600));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stopping.changed() => {}
        }
    }
}
