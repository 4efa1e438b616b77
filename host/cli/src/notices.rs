//! `lectern notify`, `deliver`, `outbox` and `patron prefs`: notices from
//! the store to the reader.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use lectern::{
    Arrival, Campaigns, Channel, Config, Deliverer, Event, Host, MessageState, Outbox, Pipeline,
    Preferences, SqliteStore, Store, Survey, Until, read_jsonl,
};
use serde_json::json;
use sha2::Digest as _;

use super::{print_json, table};

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
    /// Invite a sample of a segment to a survey: its title
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
    /// The moment to notify as of, in RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,
}

/// Reads `lectern.toml`, or the defaults if there is none and none was named.
pub fn config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Config::from_file(p),
        None if Path::new("lectern.toml").is_file() => Config::from_file(Path::new("lectern.toml")),
        None => Ok(Config::default()),
    }
}

pub fn notify(
    host: &Host,
    db: &Path,
    config: &Config,
    (pipeline, keys): (Pipeline, lectern::Pseudonyms),
    args: NotifyArgs,
    json: bool,
) -> Result<()> {
    anyhow::ensure!(
        db.is_file(),
        "no store at {}; import patrons first with `lectern import`",
        db.display()
    );
    let now = args.now.unwrap_or_else(Utc::now);
    let today = lectern::local_day(&config.notify, now);
    let pipeline = pipeline.as_of(today);
    let messengers = args
        .plugin
        .iter()
        .map(|p| host.load_messenger(p))
        .collect::<lectern::Result<Vec<_>>>()?;
    let mut store = SqliteStore::open(db)?;

    let mut campaigns = Campaigns::default();
    if let Some(path) = &args.arrivals {
        campaigns.arrivals = read_jsonl::<Arrival>(path)?;
    }
    if let (Some(title), Some(url), Some(segment)) =
        (&args.survey_title, &args.survey_url, &args.survey_segment)
    {
        let (scorer, seg) = segment.split_once('/').with_context(|| {
            format!(
                "--survey-segment {segment:?}: write scorer/segment, such as key-readers/key-reader"
            )
        })?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&args.survey_sample),
            "--survey-sample {}: give a share from 0 to 1",
            args.survey_sample
        );
        campaigns.survey = Some(Survey {
            id: hex::encode(&sha2::Sha256::digest(url.as_bytes())[..6]),
            title: title.clone(),
            url: url.clone(),
            segment: (scorer.to_string(), seg.to_string()),
            sample: args.survey_sample,
        });
    }
    let mut events: Vec<Event> = Vec::new();
    if !args.no_detect {
        events = lectern::detect(&store, &keys, &config.notify, &campaigns, now)?;
    }
    if let Some(path) = &args.events {
        events.extend(read_jsonl::<Event>(path)?);
    }
    let report = lectern::notify(
        &mut store,
        &pipeline,
        &messengers,
        &config.notify,
        &events,
        now,
    )?;
    if json {
        print_json(&serde_json::to_value(&report)?)?;
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
    println!("{t}");
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
        println!("{t}");
    }
    println!(
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

pub fn deliver(
    db: &Path,
    config: &Config,
    ring: &lectern::Keyring,
    wait: Option<u64>,
    json: bool,
) -> Result<()> {
    anyhow::ensure!(db.is_file(), "no store at {}", db.display());
    if config.channels.is_empty() {
        anyhow::bail!(
            "no channel has a transport: add [channels.email], [channels.sms], [channels.webhook] \
             or [channels.print] to lectern.toml (see `lectern deliver --help`)"
        );
    }
    let mut store = SqliteStore::open(db)?;
    // Every hand-over to a channel is in the audit log, like every read.
    let audit = std::sync::Arc::new(lectern::SqliteAudit::open(db, ring.audit_key())?);
    let mut deliverer = Deliverer::from_config(config)?.with_audit(audit, ring.pseudonyms());
    let until = match wait {
        Some(secs) => Until::Empty {
            deadline: Utc::now() + chrono::Duration::seconds(secs as i64),
        },
        None => Until::NothingDue,
    };
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .expect("a valid template"),
        );
        b
    };
    let report = deliverer.run(&mut store, until, &mut |r| {
        bar.set_message(format!(
            "{} sent, {} to retry, {} failed, {} cancelled",
            r.sent, r.retried, r.failed, r.cancelled
        ));
        bar.tick();
    })?;
    bar.finish_and_clear();
    if json {
        return print_json(&serde_json::to_value(&report)?);
    }
    println!(
        "{} messages sent in {} sends, {} to retry later, {} failed, {} cancelled, {} postponed",
        report.sent,
        report.sends,
        report.retried,
        report.failed,
        report.cancelled,
        report.postponed
    );
    if let Some(until) = report.quiet_until {
        let stats = store.outbox_stats()?;
        let waiting: usize = stats.iter().map(|s| s.queued).sum();
        println!(
            "quiet hours: {waiting} queued messages wait until {} (print still goes)",
            until
                .with_timezone(&config.notify.clock.offset_at(until))
                .format("%Y-%m-%d %H:%M %:z")
        );
    }
    for (channel, n) in &report.no_transport {
        println!("{n} messages on {channel} wait: lectern.toml has no [channels.{channel}]");
    }
    Ok(())
}

pub fn outbox(
    db: &Path,
    state: Option<MessageState>,
    list: Option<usize>,
    json: bool,
) -> Result<()> {
    anyhow::ensure!(db.is_file(), "no store at {}", db.display());
    let store = SqliteStore::open(db)?;
    let stats = store.outbox_stats()?;
    let messages = match list {
        Some(n) => store.outbox_messages(state, n)?,
        None => Vec::new(),
    };
    if json {
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
    println!("{t}");
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
        println!("{t}");
    }
    Ok(())
}

/// What `lectern patron prefs` changes.
#[derive(clap::Args)]
pub struct PrefsArgs {
    /// The patron's id
    pub id: String,
    /// Gather the day's notices into one message a day: on or off
    #[arg(long, value_name = "on|off")]
    pub digest: Option<Toggle>,
    /// Days of notice before a due date (0 to 30)
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=30))]
    pub notice_days: Option<u32>,
    /// Never use this channel; repeat for several
    #[arg(long, value_name = "CHANNEL")]
    pub opt_out: Vec<Channel>,
    /// Use this channel again
    #[arg(long, value_name = "CHANNEL")]
    pub opt_in: Vec<Channel>,
    /// Marketing (new-title suggestions, surveys, win-back): on or off.
    /// Off cancels marketing already queued
    #[arg(long, value_name = "on|off")]
    pub marketing: Option<Toggle>,
}

/// On or off.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

pub fn prefs(db: &Path, args: PrefsArgs, json: bool) -> Result<()> {
    anyhow::ensure!(db.is_file(), "no store at {}", db.display());
    let mut store = SqliteStore::open(db)?;
    let mut p: Preferences = store
        .preferences(&args.id)?
        .with_context(|| format!("no patron with id `{}`", args.id))?;
    if let Some(d) = args.digest {
        p.digest = d == Toggle::On;
    }
    if let Some(n) = args.notice_days {
        p.notice_days = Some(n);
    }
    for c in args.opt_out {
        if !p.opted_out.contains(&c) {
            p.opted_out.push(c);
        }
    }
    p.opted_out.retain(|c| !args.opt_in.contains(c));
    if let Some(m) = args.marketing {
        p.no_marketing = m == Toggle::Off;
    }
    let cancelled = store.set_preferences(&args.id, &p)?;
    if json {
        return print_json(&json!({"patron": args.id, "preferences": p, "cancelled": cancelled}));
    }
    let opted: Vec<&str> = p.opted_out.iter().map(|c| c.as_str()).collect();
    println!(
        "{}: digest {}, notice {} days, marketing {}, opted out of {}",
        args.id,
        if p.digest { "on" } else { "off" },
        p.notice_days
            .map_or("(library default)".to_string(), |n| n.to_string()),
        if p.no_marketing {
            "off"
        } else {
            "as consented"
        },
        if opted.is_empty() {
            "nothing".to_string()
        } else {
            opted.join(", ")
        }
    );
    if cancelled > 0 {
        println!("cancelled {cancelled} queued messages");
    }
    Ok(())
}
