//! Notices from the store to the reader: `notify`, `deliver`, `outbox`
//! and `patron prefs`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use lectern::{Arrival, Campaigns, Event, MessageState, Survey, Until, read_jsonl};
use serde_json::json;

use crate::Ctx;
use crate::output::{bar, print_json, table};

#[derive(Subcommand)]
pub enum Command {
    /// Find the notices due, compose them with messenger plugins, and queue
    /// them in the outbox
    Notify {
        #[command(flatten)]
        args: Box<NotifyArgs>,
        /// A privacy-filter plugin to apply before any plugin sees a record
        /// [default: the configured policy; without one, no field leaves]
        #[arg(long, value_name = "PLUGIN")]
        policy: Option<PathBuf>,
    },
    /// Send what is due in the outbox, retrying failures with exponential
    /// backoff. Channels are set up in lectern.toml: [channels.email] with
    /// transport = "smtp", [channels.sms] or [channels.webhook] with
    /// transport = "webhook", [channels.print] with transport = "maildir"
    Deliver {
        /// Keep going until the outbox is empty (waiting out retries and
        /// quiet hours), for at most this many seconds
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// The outbox: messages per channel and state
    Outbox {
        /// List the newest N messages too
        #[arg(long, value_name = "N")]
        list: Option<usize>,
        /// Only messages in this state: queued, sending, sent, failed, cancelled
        #[arg(long, value_name = "STATE")]
        state: Option<MessageState>,
        /// The staff role listing messages, for the audit log
        #[arg(long, default_value = "circulation-desk")]
        role: String,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Notify { args, policy } => notify(ctx, *args, policy),
        Command::Deliver { wait } => deliver(ctx, wait),
        Command::Outbox { list, state, role } => outbox(ctx, state, list, &role),
    }
}

/// What `lectern notify` takes beyond the common flags.
#[derive(clap::Args)]
pub struct NotifyArgs {
    /// A messenger plugin; repeat it for several. Each composes the event
    /// kinds its manifest lists
    #[arg(long, value_name = "PLUGIN", required = true)]
    pub plugin: Vec<PathBuf>,
    /// Events pushed by the ILS, one JSON object per line, besides those
    /// found in the store
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Do not look for events in the store; only --events
    #[arg(long)]
    pub no_detect: bool,
    /// New titles to match against readers' subjects, one JSON object per
    /// line: {"id", "title", "subject"}
    #[arg(long, value_name = "FILE")]
    pub arrivals: Option<PathBuf>,
    /// Invite a sample of a segment to a survey the library's reader pages
    /// host (`[readers] surveys`), by its id: each reader gets their own
    /// one-time link. Without --survey-segment, the survey's own
    /// `[sampling]` says who
    #[arg(long, value_name = "ID", conflicts_with = "survey_title")]
    pub survey: Option<String>,
    /// Invite a sample of a segment to a survey elsewhere: its title
    #[arg(long, value_name = "TITLE", requires_all = ["survey_url", "survey_segment"])]
    pub survey_title: Option<String>,
    /// The survey's URL
    #[arg(long, value_name = "URL")]
    pub survey_url: Option<String>,
    /// The segment to sample, as scorer/segment (such as key-readers/key-reader)
    #[arg(long, value_name = "SCORER/SEGMENT")]
    pub survey_segment: Option<String>,
    /// The share of the segment to invite, from 0 to 1
    #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
    pub survey_sample: f64,
    /// Send this month's current-awareness digests: key readers, and
    /// readers who asked in the preference centre, get new arrivals
    /// (--arrivals) and titles readers queue for, in their own subjects and
    /// those rising in their department; once a month each
    #[arg(long)]
    pub awareness: bool,
    /// The scorer whose latest run names the key readers for --awareness
    #[arg(long, value_name = "SCORER", default_value = "key-readers")]
    pub awareness_from: String,
    /// The staff role whose analytics view finds the rising subjects for
    /// --awareness; only aggregates of at least k readers are used
    #[arg(long, value_name = "ROLE", default_value = "analyst")]
    pub awareness_role: String,
    /// The moment to notify as of, in RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,
}

fn notify(ctx: &Ctx, args: NotifyArgs, policy: Option<PathBuf>) -> Result<()> {
    let mut campaigns = Campaigns::default();
    if let Some(path) = &args.arrivals {
        campaigns.arrivals = read_jsonl::<Arrival>(path)?;
    }
    let segment = match &args.survey_segment {
        Some(segment) => {
            let (scorer, seg) = segment.split_once('/').with_context(|| {
                format!(
                    "--survey-segment {segment:?}: write scorer/segment, such as \
                     key-readers/key-reader"
                )
            })?;
            anyhow::ensure!(
                (0.0..=1.0).contains(&args.survey_sample),
                "--survey-sample {}: give a share from 0 to 1",
                args.survey_sample
            );
            Some((scorer.to_string(), seg.to_string()))
        }
        None => None,
    };
    if let (Some(title), Some(url), Some(segment)) =
        (&args.survey_title, &args.survey_url, &segment)
    {
        campaigns.survey = Some(Survey::new(title, url, segment.clone(), args.survey_sample));
    }
    let mut extra: Vec<Event> = Vec::new();
    if let Some(path) = &args.events {
        extra = read_jsonl::<Event>(path)?;
    }
    let mut library = ctx.open_existing(
        policy.as_deref(),
        "import patrons first with `lectern import`",
    )?;
    if let Some(id) = &args.survey {
        let def = library.survey(id)?;
        library.reader_pages()?;
        let strata = match (segment, &def.sampling) {
            (Some((scorer, seg)), _) => vec![(scorer, seg, args.survey_sample)],
            (None, Some(s)) => s
                .shares
                .iter()
                .map(|(seg, share)| (s.scorer.clone(), seg.clone(), *share))
                .collect(),
            (None, None) => anyhow::bail!(
                "--survey {id}: the survey has no [sampling]; give --survey-segment \
                 scorer/segment and --survey-sample"
            ),
        };
        campaigns.survey = Some(Survey::hosted_by(&def, strata));
    }
    let messengers = args
        .plugin
        .iter()
        .map(|p| library.plugin_at(&p.to_string_lossy())?.into_messenger())
        .collect::<lectern::Result<Vec<_>>>()?;
    let now = args.now.unwrap_or_else(Utc::now);
    if args.awareness {
        let today = lectern::local_day(&library.config().notify, now);
        campaigns.awareness =
            Some(library.awareness_round(&args.awareness_role, &args.awareness_from, today)?);
    }
    let report = library.notify(&messengers, &campaigns, !args.no_detect, extra, now)?;
    if ctx.json {
        print_json(&report)?;
    } else {
        print_notify_report(&report);
    }
    // The others' messages are queued; a failed messenger still fails the
    // command, so that a scheduler notices.
    if let Some(first) = report.failed.first() {
        anyhow::bail!(
            "{} of {} messengers failed, and their events were not composed: {first}",
            report.failed.len(),
            messengers.len()
        );
    }
    Ok(())
}

fn print_notify_report(report: &lectern::NotifyReport) {
    let mut t = table(["event kind", "events"]);
    for (kind, n) in &report.by_kind {
        t.add_row(vec![kind.clone(), n.to_string()]);
    }
    out!("{t}");
    // Reasons without the plugin or patron in them, counted.
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &report.skipped {
        *reasons.entry(s.reason.as_str()).or_default() += 1;
    }
    if !reasons.is_empty() {
        let mut t = table(["skipped because", "events or messages"]);
        for (reason, n) in reasons {
            t.add_row(vec![reason.to_string(), n.to_string()]);
        }
        out!("{t}");
    }
    out!(
        "{} events, {} messages composed, {} queued, {} already queued, {} skipped{}",
        report.events,
        report.composed,
        report.queued,
        report.duplicates,
        report.skipped.len(),
        if report.held_for_quiet_hours > 0 {
            format!(
                "; {} wait for quiet hours to end",
                report.held_for_quiet_hours
            )
        } else {
            String::new()
        }
    );
}

fn deliver(ctx: &Ctx, wait: Option<u64>) -> Result<()> {
    let mut library = ctx.open_existing(None, "import patrons and run `lectern notify` first")?;
    if library.config().channels.is_empty() {
        anyhow::bail!(
            "no channel has a transport: add [channels.email], [channels.sms], [channels.webhook] \
             or [channels.print] to lectern.toml (see `lectern deliver --help`)"
        );
    }
    let until = match wait {
        Some(secs) => Until::Empty {
            deadline: Utc::now() + chrono::Duration::seconds(secs as i64),
        },
        None => Until::NothingDue,
    };
    let bar = bar(ctx.json, None, "{spinner} {elapsed} {msg}");
    let report = library.deliver(until, &mut |r| {
        bar.set_message(format!(
            "{} sent, {} to retry, {} failed, {} cancelled",
            r.sent, r.retried, r.failed, r.cancelled
        ));
        bar.tick();
    })?;
    bar.finish_and_clear();
    if ctx.json {
        print_json(&report)?;
    } else {
        print_deliver_report(&library, &report)?;
    }
    // Messages that can go nowhere fail the run, so that a scheduler sees it.
    let stranded: usize = report.no_transport.values().sum();
    if stranded > 0 {
        let channels: Vec<&str> = report.no_transport.keys().map(String::as_str).collect();
        return Err(lectern::Error::Config(anyhow::anyhow!(
            "{stranded} messages wait on {} with no transport; add [channels.{}] to \
             lectern.toml, or opt the patrons out of the channel",
            channels.join(", "),
            channels[0]
        ))
        .into());
    }
    Ok(())
}

fn print_deliver_report(library: &lectern::Lectern, report: &lectern::DeliverReport) -> Result<()> {
    out!(
        "{} messages sent in {} sends, {} to retry later, {} failed, {} cancelled, {} postponed",
        report.sent,
        report.sends,
        report.retried,
        report.failed,
        report.cancelled,
        report.postponed
    );
    if let Some(until) = report.quiet_until {
        let stats = library.outbox_stats()?;
        let waiting: usize = stats.iter().map(|s| s.queued).sum();
        out!(
            "quiet hours: {waiting} queued messages wait until {} (print still goes)",
            until
                .with_timezone(&library.config().notify.clock.offset_at(until))
                .format("%Y-%m-%d %H:%M %:z")
        );
    }
    for (channel, n) in &report.no_transport {
        out!("{n} messages on {channel} wait: lectern.toml has no [channels.{channel}]");
    }
    Ok(())
}

fn outbox(ctx: &Ctx, state: Option<MessageState>, list: Option<usize>, role: &str) -> Result<()> {
    if state.is_some() && list.is_none() {
        return Err(lectern::Error::invalid(
            "--state",
            "it filters the messages listed; add --list N to list them",
        )
        .into());
    }
    let library = ctx.open_existing(None, "there is no outbox yet")?;
    let stats = library.outbox_stats()?;
    let messages = match list {
        Some(n) => library.outbox_messages(state, n, role)?,
        None => Vec::new(),
    };
    if ctx.json {
        return print_json(&json!({"channels": stats, "messages": messages}));
    }
    let mut t = table([
        "channel",
        "queued",
        "sending",
        "sent",
        "failed",
        "cancelled",
        "retries",
        "oldest queued",
    ]);
    for s in &stats {
        t.add_row(vec![
            s.channel.clone(),
            s.queued.to_string(),
            s.sending.to_string(),
            s.sent.to_string(),
            s.failed.to_string(),
            s.cancelled.to_string(),
            s.retries.to_string(),
            s.oldest_queued
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        ]);
    }
    out!("{t}");
    if !messages.is_empty() {
        let mut t = table([
            "id", "patron", "event", "channel", "state", "attempts", "subject", "error",
        ]);
        for m in &messages {
            t.add_row(vec![
                m.id.to_string(),
                m.patron.clone(),
                m.event_kind.clone(),
                m.channel.clone(),
                m.state.to_string(),
                m.attempts.to_string(),
                m.subject.clone(),
                m.error.clone().unwrap_or_default(),
            ]);
        }
        out!("{t}");
    }
    Ok(())
}
