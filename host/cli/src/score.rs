//! Running plugins over patrons: `score` and `compose`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveDate;
use clap::Subcommand;
use lectern::{Event, Keep, Patron, Scored, ScoredRun, read_jsonl};
use serde_json::json;

use crate::output::{bar, print_json, table};
use crate::{Ctx, today_or};

#[derive(Subcommand)]
pub enum Command {
    /// Score patrons with a scorer plugin
    Score {
        /// The scorer: a plugin directory, its plugin.toml or its .wasm.
        /// Repeat it to run several scorers over the store, each stored as a
        /// run of its own
        #[arg(long, value_name = "PLUGIN", required = true)]
        plugin: Vec<PathBuf>,
        /// Patrons, one JSON object per line [default: every patron in the
        /// store, with activity as of --as-of]
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Show only the N highest scores in the table (JSON has them all)
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Compose notices for events with a messenger plugin
    Compose {
        /// The messenger plugin
        #[arg(long, value_name = "PLUGIN")]
        plugin: PathBuf,
        /// Events, one JSON object per line
        #[arg(long, value_name = "FILE")]
        events: PathBuf,
        /// Patrons the events refer to, one JSON object per line
        #[arg(long, value_name = "FILE")]
        patrons: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

/// The flags every plugin run shares.
#[derive(clap::Args)]
pub struct Common {
    /// A privacy-filter plugin to apply before any plugin sees a record
    /// [default: the configured policy; without one, no field leaves]
    #[arg(long, value_name = "PLUGIN")]
    pub policy: Option<PathBuf>,
    /// The date plugins see as today [default: today]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Score {
            plugin,
            input,
            top,
            common,
        } => score(ctx, &plugin, input.as_deref(), top, &common),
        Command::Compose {
            plugin,
            events,
            patrons,
            common,
        } => compose(ctx, &plugin, &events, &patrons, &common),
    }
}

fn score(
    ctx: &Ctx,
    plugins: &[PathBuf],
    input: Option<&Path>,
    top: Option<usize>,
    common: &Common,
) -> Result<()> {
    let as_of = today_or(common.as_of);
    if let Some(input) = input {
        anyhow::ensure!(
            plugins.len() == 1,
            "--input scores with one plugin; give one --plugin, or score the store"
        );
        let patrons = read_patrons(input)?;
        let library = ctx.open(common.policy.as_deref())?;
        let scorer = library
            .plugin_at(&plugins[0].to_string_lossy())?
            .into_scorer()?;
        let scores = library.score(&scorer, &patrons, as_of)?;
        return print_scores(ctx, &scorer, None, &scores, &segment_counts(&scores), top);
    }
    let mut library = ctx.open_existing(
        common.policy.as_deref(),
        "import patrons with `lectern import`, or pass --input",
    )?;
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    // Each scorer runs alone: one that fails is reported, and the others
    // still run and store their runs.
    let keep = match top {
        Some(n) if !ctx.json => Keep::Top(n),
        _ => Keep::All,
    };
    for path in plugins {
        match score_one(ctx, &mut library, path, as_of, keep) {
            Ok((scored, _)) if ctx.json => runs.push(json!({
                "run": scored.run.id,
                "plugin": scored.run.run.plugin,
                "version": scored.run.run.version,
                "as_of": as_of,
                "scores": scored.scores,
            })),
            Ok((scored, scorer)) => print_scores(
                ctx,
                &scorer,
                Some(scored.run.id),
                &scored.scores,
                &scored.segments,
                top,
            )?,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed.push(json!({"plugin": path, "error": format!("{e:#}")}));
            }
        }
    }
    if ctx.json {
        // One document for machines, however many scorers ran.
        print_json(&json!({ "runs": runs, "failed": failed }))?;
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} scorers failed, and stored no run; the others' runs are stored",
            failed.len(),
            plugins.len()
        );
    }
    Ok(())
}

/// Scores the store with the scorer at `path` and stores the run. Every
/// score is handed back only where it is printed: for `--top`, the highest
/// are, and memory stays flat however large the library.
fn score_one(
    ctx: &Ctx,
    library: &mut lectern::Lectern,
    path: &Path,
    as_of: NaiveDate,
    keep: Keep,
) -> Result<(ScoredRun, lectern::Scorer)> {
    let scorer = library.plugin_at(&path.to_string_lossy())?.into_scorer()?;
    let bar = bar(
        ctx.json,
        Some(0),
        "{msg} {bar:40} {pos}/{len} patrons [{elapsed}, {eta} left]",
    );
    bar.set_message(scorer.plugin().id().to_string());
    let run = library.score_store(&scorer, as_of, keep, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    Ok((run?, scorer))
}

/// How many patrons each segment holds.
fn segment_counts(scores: &[Scored]) -> BTreeMap<String, usize> {
    let mut segments = BTreeMap::new();
    for s in scores {
        *segments.entry(s.segment.clone()).or_default() += 1;
    }
    segments
}

fn print_scores(
    ctx: &Ctx,
    scorer: &lectern::Scorer,
    run: Option<i64>,
    scores: &[Scored],
    segments: &BTreeMap<String, usize>,
    top: Option<usize>,
) -> Result<()> {
    if ctx.json {
        return print_json(&json!({
            "run": run,
            "plugin": scorer.plugin().id(),
            "version": scorer.plugin().version(),
            "scores": scores,
        }));
    }
    let mut shown: Vec<&Scored> = scores.iter().collect();
    if let Some(n) = top {
        shown.sort_by(|a, b| b.value.total_cmp(&a.value));
        shown.truncate(n);
    }
    if !shown.is_empty() {
        let mut t = table(["patron", "score", "segment", "reasons"]);
        for s in shown {
            t.add_row([
                s.patron.clone(),
                format!("{:.1}", s.value),
                s.segment.clone(),
                s.reasons.join("\n"),
            ]);
        }
        out!("{t}");
    }
    let summary: Vec<String> = segments.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let stored = run
        .map(|id| format!(", stored as run {id}"))
        .unwrap_or_default();
    out!(
        "{} patrons scored by {} {}{stored}: {}",
        segments.values().sum::<usize>(),
        scorer.plugin().id(),
        scorer.plugin().version(),
        summary.join(", ")
    );
    Ok(())
}

fn compose(ctx: &Ctx, plugin: &Path, events: &Path, patrons: &Path, common: &Common) -> Result<()> {
    let event_list: Vec<Event> = read_jsonl(events)?;
    let patron_list = read_patrons(patrons)?;
    let library = ctx.open(common.policy.as_deref())?;
    let messenger = library
        .plugin_at(&plugin.to_string_lossy())?
        .into_messenger()?;
    let report =
        library
            .pipeline(today_or(common.as_of))
            .compose(&messenger, &event_list, &patron_list)?;
    if ctx.json {
        return print_json(&json!({"messages": report.messages, "skipped": report.skipped}));
    }
    for m in &report.messages {
        out!(
            "── {} · {} · {} · {} ──",
            m.patron,
            m.channel.as_str(),
            m.locale,
            m.dedupe_key
        );
        if !m.subject.is_empty() {
            out!("Subject: {}\n", m.subject);
        }
        out!("{}\n", m.body);
    }
    for s in &report.skipped {
        out!("skipped event {} for {}: {}", s.event, s.patron, s.reason);
    }
    out!(
        "{} messages composed by {} from {} events ({} skipped)",
        report.messages.len(),
        messenger.plugin().id(),
        event_list.len(),
        report.skipped.len()
    );
    Ok(())
}

/// Reads patrons, refusing a file that holds one patron twice.
pub fn read_patrons(path: &Path) -> Result<Vec<Patron>> {
    let patrons: Vec<Patron> = read_jsonl(path).map_err(lectern::Error::from)?;
    let mut seen = HashSet::new();
    for (i, p) in patrons.iter().enumerate() {
        if !seen.insert(p.id.as_str()) {
            return Err(lectern::Error::invalid(
                format!("{}: record {}: field `id`", path.display(), i + 1),
                format!(
                    "patron `{}` appears twice; keep one record per patron",
                    p.id
                ),
            )
            .into());
        }
    }
    Ok(patrons)
}
