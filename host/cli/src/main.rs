//! The `lectern` command, over the library's public API only.

mod notices;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use lectern::{
    AccessContext, Actor, CacheStatus, Event, Field, Format, Host, ImportOptions, Keyring, Patron,
    Pipeline, Purpose, Retention, ScoreRun, Scored, SqliteAudit, SqliteStore, Store, read_jsonl,
};
use serde_json::json;

/// Customer relationship management for libraries: score patrons, compose
/// notices and filter patron data with sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "lectern", version)]
struct Cli {
    /// Where compiled plugins are cached [default: $LECTERN_CACHE_DIR, else
    /// the user's cache directory]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every plugin afresh, without the cache
    #[arg(long, global = true)]
    no_cache: bool,
    /// Print machine-readable JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    /// The store [default: $LECTERN_DB, else lectern.db in this directory]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "LECTERN_DB",
        default_value = "lectern.db"
    )]
    db: PathBuf,
    /// The host's key, for pseudonyms and the audit chain [default: the
    /// store's name with .key, made with 32 random bytes the first time;
    /// without a store, a fresh key per run]
    #[arg(long, global = true, value_name = "FILE", env = "LECTERN_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The library's notice rules and channels [default: $LECTERN_CONFIG,
    /// else lectern.toml in this directory if there is one]
    #[arg(long, global = true, value_name = "FILE", env = "LECTERN_CONFIG")]
    config: Option<PathBuf>,
    /// Show plugin log lines and more (-vv for debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugins
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Import patrons, loans and holds from ILS exports into the store
    Import {
        /// The export format: folio, koha, koha-csv or csv
        #[arg(long)]
        format: Format,
        /// Stop at the first bad record and write nothing
        #[arg(long)]
        strict: bool,
        /// The files to import
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write a realistic synthetic library in Lectern's CSV
    Gen {
        /// How many patrons
        #[arg(long, default_value_t = 1000)]
        patrons: u64,
        /// The seed: the same seed and end date give the same files
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The last day of activity
        #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-11-28")]
        end: NaiveDate,
        /// Where to write patrons.csv, loans.csv, holds.csv and use.csv
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Remove or generalise data past its retention period
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The host's keys
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// The audit log of every read of personal data
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with one patron's data
    Patron {
        #[command(subcommand)]
        command: PatronCommand,
    },
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
    /// Find the notices due, compose them with messenger plugins, and queue
    /// them in the outbox
    Notify {
        #[command(flatten)]
        args: notices::NotifyArgs,
        /// A privacy-filter plugin to apply before any plugin sees a record
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
        state: Option<lectern::MessageState>,
    },
    /// Reports from the stored scoring runs
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Count the store's patrons per group, hiding groups smaller than k
    Analytics {
        /// Fields to group by, such as category,home-branch
        #[arg(long, value_delimiter = ',', required = true)]
        by: Vec<Field>,
        /// The smallest group to show
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
        /// The staff role asking
        #[arg(long, default_value = "analyst")]
        role: String,
        /// The privacy-filter plugin
        #[arg(long, value_name = "PLUGIN")]
        plugin: PathBuf,
        /// The date of the activity summaries [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
    /// Show what a purpose and staff role may see of patrons
    Filter {
        /// The privacy-filter plugin
        #[arg(long, value_name = "PLUGIN")]
        plugin: PathBuf,
        /// scoring, messaging-transactional, messaging-marketing, staff-view,
        /// analytics or patron-export
        #[arg(long)]
        purpose: Purpose,
        /// The staff role, such as circulation-desk, analyst or administrator
        #[arg(long)]
        role: String,
        /// Patrons, one JSON object per line
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Show a plugin's world, exports, declared fields, limits and load time
    Inspect {
        /// A plugin directory, its plugin.toml, or a .wasm component
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum PatronCommand {
    /// Remove a patron and everything stored about them
    Erase {
        /// The patron's id
        id: String,
    },
    /// Show or change a patron's messaging preferences
    Prefs(notices::PrefsArgs),
    /// Everything stored about a patron and derived from them, as JSON
    Export {
        /// The patron's id
        id: String,
        /// The date of the activity summary [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Apply the retention periods now
    Apply {
        /// The day to count back from [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
        /// Days returned loans are kept before they are generalised
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().loan_history)]
        loan_history_days: u32,
        /// Days holds are kept
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().holds)]
        holds_days: u32,
        /// Days visits and e-resource sessions are kept
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().uses)]
        uses_days: u32,
        /// Days scoring runs are kept
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().scores)]
        scores_days: u32,
        /// Days sent, failed and cancelled messages are kept in the outbox
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().messages)]
        messages_days: u32,
        /// Days audit entries are kept
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().audit_log)]
        audit_days: u32,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Readers per segment, branch and category, and the movement since the
    /// previous run
    Segments {
        /// The scorer whose runs to report
        #[arg(long, default_value = "engagement")]
        scorer: String,
        /// The smallest group to show
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
        /// Also write the groups as CSV
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Also write a self-contained HTML page with charts
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// The key readers (重点读者), highest contribution first
    KeyReaders {
        /// How many
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// The scorer whose latest run to use
        #[arg(long, default_value = "key-readers")]
        scorer: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// The readers to win back: lapsing first, then dormant
    Lapsed {
        /// How many
        #[arg(long, default_value_t = 50)]
        top: usize,
        /// The scorer whose latest run to use
        #[arg(long, default_value = "engagement")]
        scorer: String,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(clap::Args)]
struct ListArgs {
    /// The privacy-filter plugin that decides what the role sees
    #[arg(long, value_name = "PLUGIN")]
    policy: PathBuf,
    /// The staff role reading the list; names show only if it may see them
    #[arg(long, default_value = "analyst")]
    role: String,
    /// Also write the list as CSV
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also write a self-contained HTML page
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make a new pseudonym key current: every patron gets a new token
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that no entry of the audit log was edited, inserted or deleted
    Verify,
}

#[derive(clap::Args)]
struct Common {
    /// A privacy-filter plugin to apply before any plugin sees a record
    #[arg(long, value_name = "PLUGIN")]
    policy: Option<PathBuf>,
    /// The date plugins see as today [default: today]
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<NaiveDate>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LECTERN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut builder = Host::builder();
    if !cli.no_cache
        && let Some(dir) = cli.cache_dir.clone().or_else(default_cache_dir)
    {
        builder = builder.cache_dir(dir);
    }
    let host = builder.build()?;
    let json = cli.json;
    let db = cli.db;
    let keys = Keys {
        db: db.clone(),
        file: cli.key_file,
    };
    let config_file = cli.config;
    match cli.command {
        Command::Notify { args, policy } => {
            let config = notices::config(config_file.as_deref())?;
            let common = Common {
                policy,
                as_of: None,
            };
            let pipeline = pipeline(&host, &common, &keys)?;
            // The survey sample is drawn under the store's pseudonym key.
            let sample_keys = keys.store_ring()?.pseudonyms();
            notices::notify(&host, &db, &config, (pipeline, sample_keys), args, json)
        }
        Command::Deliver { wait } => {
            let config = notices::config(config_file.as_deref())?;
            notices::deliver(&db, &config, &keys.store_ring()?, wait, json)
        }
        Command::Outbox { list, state } => notices::outbox(&db, state, list, json),
        Command::Patron {
            command: PatronCommand::Prefs(args),
        } => notices::prefs(&db, args, json),
        Command::Retention {
            command:
                RetentionCommand::Apply {
                    as_of,
                    loan_history_days,
                    holds_days,
                    uses_days,
                    scores_days,
                    messages_days,
                    audit_days,
                },
        } => {
            anyhow::ensure!(db.is_file(), "no store at {}", db.display());
            let retention = Retention {
                loan_history: loan_history_days,
                holds: holds_days,
                uses: uses_days,
                scores: scores_days,
                messages: messages_days,
                audit_log: audit_days,
            };
            let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let r = SqliteStore::open(&db)?.apply_retention(
                as_of,
                &retention,
                keys.store_ring()?.audit_key(),
            )?;
            if json {
                return print_json(&json!({
                    "loans_aged": r.loans_aged,
                    "holds_removed": r.holds_removed,
                    "uses_removed": r.uses_removed,
                    "runs_removed": r.runs_removed,
                    "messages_removed": r.messages_removed,
                    "audit_removed": r.audit_removed,
                }));
            }
            println!(
                "generalised {} loans, removed {} holds, {} days of use, {} scoring runs, {} \
                 messages and {} audit entries",
                r.loans_aged,
                r.holds_removed,
                r.uses_removed,
                r.runs_removed,
                r.messages_removed,
                r.audit_removed
            );
            Ok(())
        }
        Command::Report {
            command:
                ReportCommand::Segments {
                    scorer,
                    k,
                    csv,
                    html,
                },
        } => {
            anyhow::ensure!(
                db.is_file(),
                "no store at {}; import and score patrons first",
                db.display()
            );
            let store = SqliteStore::open(&db)?;
            let runs = store.latest_runs(&scorer)?;
            let Some((run, meta)) = runs.first() else {
                anyhow::bail!(
                    "no run of `{scorer}` is stored; run `lectern score --plugin …` first"
                );
            };
            let current = store.run_scores(*run)?;
            let previous = match runs.get(1) {
                Some((id, _)) => Some((*id, store.run_scores(*id)?)),
                None => None,
            };
            let report = lectern::segment_report(
                (*run, meta, &current),
                previous.as_ref().map(|(id, s)| (*id, s.as_slice())),
                k,
            );
            if let Some(path) = &csv {
                std::fs::write(path, report.to_csv())
                    .with_context(|| format!("failed to write {}", path.display()))?;
            }
            if let Some(path) = &html {
                std::fs::write(path, report.to_html())
                    .with_context(|| format!("failed to write {}", path.display()))?;
            }
            if json {
                return print_json(&serde_json::to_value(&report)?);
            }
            let mut t = table(["segment", "readers"]);
            for c in &report.segments {
                t.add_row([c.segment.clone(), c.patrons.to_string()]);
            }
            println!("{t}");
            if !report.movement.is_empty() {
                let mut m = table(["from", "to", "readers"]);
                for mv in &report.movement {
                    m.add_row([mv.from.clone(), mv.to.clone(), mv.patrons.to_string()]);
                }
                println!(
                    "Movement since run {}:\n{m}",
                    report.previous_run.unwrap_or_default()
                );
            }
            println!(
                "run {} of {} {} as of {}; {} groups of fewer than {k} readers hidden",
                report.run, report.plugin, report.version, report.as_of, report.hidden
            );
            Ok(())
        }
        Command::Report {
            command: ReportCommand::KeyReaders { top, scorer, list },
        } => {
            let title = format!("Key readers (重点读者), by {scorer}");
            let pick = |scores: Vec<lectern::RunScore>| {
                let mut keys: Vec<_> = scores
                    .into_iter()
                    .filter(|s| s.segment == "key-reader")
                    .collect();
                keys.truncate(top);
                keys
            };
            reader_list(&host, &keys, &db, &scorer, &title, &list, json, pick)
        }
        Command::Report {
            command: ReportCommand::Lapsed { top, scorer, list },
        } => {
            let title = format!("Readers to win back, by {scorer}");
            let pick = |scores: Vec<lectern::RunScore>| {
                let rank = |s: &str| match s {
                    "lapsing" | "at-risk" => 0,
                    "dormant" | "high-risk" => 1,
                    _ => 2,
                };
                let mut lapsed: Vec<_> = scores
                    .into_iter()
                    .filter(|s| rank(&s.segment) < 2)
                    .collect();
                lapsed.sort_by_key(|s| rank(&s.segment));
                lapsed.truncate(top);
                lapsed
            };
            reader_list(&host, &keys, &db, &scorer, &title, &list, json, pick)
        }
        Command::Analytics {
            by,
            k,
            role,
            plugin,
            as_of,
        } => {
            anyhow::ensure!(
                db.is_file(),
                "no store at {}; import patrons first",
                db.display()
            );
            let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let common = Common {
                policy: Some(plugin),
                as_of: Some(as_of),
            };
            let pipeline = pipeline(&host, &common, &keys)?;
            let patrons = SqliteStore::open(&db)?.patrons(as_of)?;
            let ctx = AccessContext {
                purpose: Purpose::Analytics,
                actor: Actor::Staff(role),
            };
            let agg = pipeline.aggregate(&ctx, &patrons, &by, k)?;
            if json {
                return print_json(&serde_json::to_value(&agg)?);
            }
            let mut header: Vec<&str> = by.iter().map(|f| f.as_str()).collect();
            header.extend(["patrons", "mean loans / year"]);
            let mut t = table(header);
            for g in &agg.groups {
                let mut row = g.key.clone();
                row.push(g.patrons.to_string());
                row.push(g.mean_loans_365d.map_or("—".into(), |m| format!("{m:.1}")));
                t.add_row(row);
            }
            println!("{t}");
            println!(
                "{} groups shown; {} groups of fewer than {k} patrons hidden",
                agg.groups.len(),
                agg.hidden_groups
            );
            Ok(())
        }
        Command::Key {
            command: KeyCommand::Rotate,
        } => {
            let path = keys
                .file
                .clone()
                .unwrap_or_else(|| db.with_extension("key"));
            let mut ring = Keyring::load_or_create(&path)?;
            let version = ring.rotate()?;
            ring.save(&path)?;
            println!(
                "pseudonym key {version} is now current in {}; tokens made before are no longer \
                 produced",
                path.display()
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            anyhow::ensure!(db.is_file(), "no store at {}", db.display());
            let check = SqliteStore::open(&db)?.verify_audit(keys.store_ring()?.audit_key())?;
            if json {
                return print_json(
                    &json!({"entries": check.entries, "broken_at": check.broken_at}),
                );
            }
            match check.broken_at {
                None => {
                    println!("the audit log is intact: {} entries", check.entries);
                    Ok(())
                }
                Some(n) => anyhow::bail!(
                    "the audit log is broken at entry {n} of {}: an entry was edited, inserted or \
                     deleted there; keep the store as it is and report it to the privacy officer",
                    check.entries
                ),
            }
        }
        Command::Patron {
            command: PatronCommand::Export { id, as_of },
        } => {
            anyhow::ensure!(db.is_file(), "no store at {}", db.display());
            let tokens: Vec<String> = keys
                .store_ring()?
                .all_pseudonyms()
                .iter()
                .map(|p| p.patron_token(&id))
                .collect();
            let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let export = SqliteStore::open(&db)?
                .export_patron(&id, &tokens, as_of)?
                .with_context(|| format!("no patron with id `{id}` in {}", db.display()))?;
            print_json(&export)
        }
        Command::Import {
            format,
            strict,
            files,
        } => {
            let mut store = SqliteStore::open(&db)?;
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new_spinner()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            let mut progress = |n: u64| bar.set_message(format!("{n} records read"));
            let report = lectern::import(
                &mut store,
                format,
                &files,
                ImportOptions { strict },
                &mut progress,
            );
            bar.finish_and_clear();
            let report = report?;
            if json {
                let skipped: Vec<_> = report
                    .skipped
                    .iter()
                    .map(|s| json!({"file": s.file, "record": s.record, "field": s.field, "reason": s.reason}))
                    .collect();
                return print_json(&json!({
                    "imported": report.written.imported,
                    "updated": report.written.updated,
                    "skipped": skipped,
                }));
            }
            for s in &report.skipped {
                println!("skipped {s}");
            }
            println!(
                "imported {}, updated {}, skipped {} into {}",
                report.written.imported,
                report.written.updated,
                report.skipped.len(),
                db.display()
            );
            Ok(())
        }
        Command::Gen {
            patrons,
            seed,
            end,
            out,
        } => {
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(patrons)
            };
            let summary = lectern::generate(
                &lectern::GenOptions { patrons, seed, end },
                &out,
                &mut |n| bar.set_position(n),
            );
            bar.finish_and_clear();
            let s = summary?;
            if json {
                return print_json(&json!({
                    "patrons": s.patrons, "loans": s.loans, "holds": s.holds, "uses": s.uses, "dir": out,
                }));
            }
            println!(
                "wrote {} patrons, {} loans, {} holds and {} days of use to {}; import them with \
                 `lectern import --format csv {}/*.csv`",
                s.patrons,
                s.loans,
                s.holds,
                s.uses,
                out.display(),
                out.display()
            );
            Ok(())
        }
        Command::Patron {
            command: PatronCommand::Erase { id },
        } => {
            let mut store = SqliteStore::open(&db)?;
            let e = store.erase_patron(&id)?;
            anyhow::ensure!(
                e.patrons == 1,
                "no patron with id `{id}` in {}",
                db.display()
            );
            if json {
                return print_json(
                    &json!({"patron": id, "loans": e.loans, "holds": e.holds, "attributes": e.attributes}),
                );
            }
            println!(
                "erased patron {id}: {} loans, {} holds, {} attributes, {} scores",
                e.loans, e.holds, e.attributes, e.scores
            );
            Ok(())
        }
        Command::Plugin {
            command: PluginCommand::Inspect { path },
        } => inspect(&host, &path, json),
        Command::Score {
            plugin,
            input,
            top,
            common,
        } => {
            let pipeline = pipeline(&host, &common, &keys)?;
            if let Some(input) = &input {
                anyhow::ensure!(
                    plugin.len() == 1,
                    "--input scores with one plugin; give one --plugin, or score the store"
                );
                let scorer = host.load_scorer(&plugin[0])?;
                let scores = pipeline.score(&scorer, &read_patrons(input)?)?;
                return print_scores(&scorer, None, &scores, top, json);
            }
            anyhow::ensure!(
                db.is_file(),
                "no store at {}; import patrons with `lectern import`, or pass --input",
                db.display()
            );
            let as_of = pipeline_date(&common);
            let mut store = SqliteStore::open(&db)?;
            let mut runs = Vec::new();
            for path in &plugin {
                let scorer = host.load_scorer(path)?;
                let bar = if json {
                    indicatif::ProgressBar::hidden()
                } else {
                    indicatif::ProgressBar::new(store.count("patrons")? as u64)
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} {bar:40} {pos}/{len} patrons [{elapsed}, {eta} left]",
                    )
                    .expect("a valid template"),
                );
                bar.set_message(scorer.plugin().id().to_string());
                let scores = score_in_parallel(&store, &pipeline, &scorer, as_of, &bar);
                bar.finish_and_clear();
                let scores = scores?;
                let run = ScoreRun {
                    plugin: scorer.plugin().id().to_string(),
                    version: scorer.plugin().version().to_string(),
                    as_of,
                };
                let id = store.save_scores(&run, &scores)?;
                if json {
                    runs.push(json!({
                        "run": id,
                        "plugin": run.plugin,
                        "version": run.version,
                        "as_of": as_of,
                        "scores": scores,
                    }));
                } else {
                    print_scores(&scorer, Some(id), &scores, top, false)?;
                }
            }
            if json {
                // One document for machines, however many scorers ran.
                return print_json(&json!({ "runs": runs }));
            }
            Ok(())
        }
        Command::Compose {
            plugin,
            events,
            patrons,
            common,
        } => {
            let messenger = host.load_messenger(&plugin)?;
            let event_list: Vec<Event> = read_jsonl(&events)?;
            let patron_list = read_patrons(&patrons)?;
            let pipeline = pipeline(&host, &common, &keys)?;
            let report = pipeline.compose(&messenger, &event_list, &patron_list)?;
            if json {
                return print_json(
                    &json!({"messages": report.messages, "skipped": report.skipped}),
                );
            }
            for m in &report.messages {
                println!(
                    "── {} · {} · {} · {} ──",
                    m.patron,
                    m.channel.as_str(),
                    m.locale,
                    m.dedupe_key
                );
                if !m.subject.is_empty() {
                    println!("Subject: {}\n", m.subject);
                }
                println!("{}\n", m.body);
            }
            for s in &report.skipped {
                println!("skipped event {} for {}: {}", s.event, s.patron, s.reason);
            }
            println!(
                "{} messages composed by {} from {} events ({} skipped)",
                report.messages.len(),
                messenger.plugin().id(),
                event_list.len(),
                report.skipped.len()
            );
            Ok(())
        }
        Command::Filter {
            plugin,
            purpose,
            role,
            input,
            common,
        } => {
            let policy = host.load_privacy_filter(&plugin)?;
            let patrons = read_patrons(&input)?;
            let pipeline = pipeline(&host, &common, &keys)?.with_policy(policy);
            let ctx = AccessContext {
                purpose,
                actor: Actor::Staff(role),
            };
            let filtered = pipeline.filter(&ctx, &patrons)?;
            if json {
                return print_json(&json!(filtered));
            }
            let rows: Vec<BTreeMap<String, serde_json::Value>> = filtered
                .iter()
                .map(|p| match serde_json::to_value(p) {
                    Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
                    _ => BTreeMap::new(),
                })
                .collect();
            let passed = pipeline.rules_for(&ctx, None)?.passed();
            let columns: Vec<String> = std::iter::once("id".to_string())
                .chain(passed.iter().map(|f| f.as_str().replace('-', "_")))
                .collect();
            let mut t = table(columns.iter().map(|c| c.as_str()));
            for row in &rows {
                t.add_row(columns.iter().map(|c| match row.get(c) {
                    None => "—".to_string(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                }));
            }
            println!("{t}");
            let shown: Vec<&str> = passed.iter().map(|f| f.as_str()).collect();
            println!(
                "{} patrons as {} sees them for {}; fields passed: {}",
                rows.len(),
                match &ctx.actor {
                    Actor::Staff(r) | Actor::Plugin(r) | Actor::Channel(r) => r,
                },
                purpose,
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(", ")
                }
            );
            Ok(())
        }
    }
}

fn pipeline_date(common: &Common) -> NaiveDate {
    common
        .as_of
        .unwrap_or_else(|| chrono::Utc::now().date_naive())
}

/// Scores every patron in the store, a batch at a time, on every core: one
/// thread reads batches, the others score them.
fn score_in_parallel(
    store: &SqliteStore,
    pipeline: &Pipeline,
    scorer: &lectern::Scorer,
    as_of: NaiveDate,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Scored>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (send, receive) = std::sync::mpsc::sync_channel::<(usize, Vec<Patron>)>(workers * 2);
    let receive = std::sync::Mutex::new(receive);
    let done = std::sync::Mutex::new(Vec::new());
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let job = receive.lock().unwrap().recv();
                    let Ok((i, batch)) = job else { return };
                    // After a failure, keep draining so the reader never
                    // blocks, but score nothing more.
                    if failed.lock().unwrap().is_some() {
                        continue;
                    }
                    match pipeline.score(scorer, &batch) {
                        Ok(scores) => {
                            bar.inc(batch.len() as u64);
                            done.lock().unwrap().push((i, scores));
                        }
                        Err(e) => {
                            failed.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
            });
        }
        let mut i = 0;
        let read = store.for_each_patron(as_of, 1000, &mut |batch| {
            anyhow::ensure!(failed.lock().unwrap().is_none(), "scoring stopped");
            send.send((i, batch))
                .map_err(|_| anyhow::anyhow!("scoring stopped"))?;
            i += 1;
            Ok(())
        });
        drop(send);
        read
    })
    .or_else(|e| {
        if failed.lock().unwrap().is_some() {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(e.into());
    }
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().flat_map(|(_, s)| s).collect())
}

fn print_scores(
    scorer: &lectern::Scorer,
    run: Option<i64>,
    scores: &[Scored],
    top: Option<usize>,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(&json!({
            "run": run,
            "plugin": scorer.plugin().id(),
            "version": scorer.plugin().version(),
            "scores": scores,
        }));
    }
    let mut segments: BTreeMap<&str, usize> = BTreeMap::new();
    for s in scores {
        *segments.entry(&s.segment).or_default() += 1;
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
        println!("{t}");
    }
    let summary: Vec<String> = segments.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let stored = run
        .map(|id| format!(", stored as run {id}"))
        .unwrap_or_default();
    println!(
        "{} patrons scored by {} {}{stored}: {}",
        scores.len(),
        scorer.plugin().id(),
        scorer.plugin().version(),
        summary.join(", ")
    );
    Ok(())
}

/// Prints (and writes) a list of readers from the latest run of `scorer`,
/// each shown only as far as the role may see them.
#[allow(clippy::too_many_arguments)]
fn reader_list(
    host: &Host,
    keys: &Keys,
    db: &Path,
    scorer: &str,
    title: &str,
    list: &ListArgs,
    json: bool,
    pick: impl FnOnce(Vec<lectern::RunScore>) -> Vec<lectern::RunScore>,
) -> Result<()> {
    anyhow::ensure!(
        db.is_file(),
        "no store at {}; import and score patrons first",
        db.display()
    );
    let store = SqliteStore::open(db)?;
    let Some((run, meta)) = store.latest_runs(scorer)?.into_iter().next() else {
        anyhow::bail!("no run of `{scorer}` is stored; run `lectern score --plugin …` first");
    };
    let picked = pick(store.run_scores(run)?);
    let patrons: Vec<Patron> = picked
        .iter()
        .map(|s| store.patron(&s.patron, meta.as_of))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let common = Common {
        policy: Some(list.policy.clone()),
        as_of: Some(meta.as_of),
    };
    let pipeline = pipeline(host, &common, keys)?;
    let ctx = AccessContext {
        purpose: Purpose::StaffView,
        actor: Actor::Staff(list.role.clone()),
    };
    let seen = pipeline.filter(&ctx, &patrons)?;
    let readers = picked
        .iter()
        .zip(seen)
        .map(|(s, p)| lectern::ListedReader {
            who: p.name.unwrap_or(p.id),
            card_number: p.card_number,
            segment: s.segment.clone(),
            value: s.value,
            reasons: s.reasons.clone(),
        })
        .collect();
    let report = lectern::ReaderList {
        title: format!("{title}, run {run} as of {}", meta.as_of),
        readers,
    };
    if let Some(path) = &list.csv {
        std::fs::write(path, report.to_csv())
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if let Some(path) = &list.html {
        std::fs::write(path, report.to_html())
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if json {
        return print_json(&serde_json::to_value(&report)?);
    }
    let mut t = table(["reader", "card", "segment", "score", "why"]);
    for r in &report.readers {
        t.add_row([
            r.who.clone(),
            r.card_number.clone().unwrap_or_else(|| "—".into()),
            r.segment.clone(),
            format!("{:.1}", r.value),
            r.reasons.join("\n"),
        ]);
    }
    println!("{t}");
    println!(
        "{}: {} readers, as the {} role sees them",
        report.title,
        report.readers.len(),
        list.role
    );
    Ok(())
}

/// Where the host's keyring is.
struct Keys {
    db: PathBuf,
    file: Option<PathBuf>,
}

impl Keys {
    /// The store's keyring: the given file, or the store's name with .key,
    /// made the first time it is needed.
    fn store_ring(&self) -> Result<Keyring> {
        match &self.file {
            Some(path) => Keyring::load(path),
            None => Keyring::load_or_create(&self.db.with_extension("key")),
        }
    }

    /// The keyring for this run: the given file, or the store's if there is
    /// a store, or none.
    fn for_run(&self) -> Result<Option<Keyring>> {
        if self.file.is_some() || self.db.is_file() {
            return self.store_ring().map(Some);
        }
        Ok(None)
    }
}

fn pipeline(host: &Host, common: &Common, keys: &Keys) -> Result<Pipeline> {
    let mut p = Pipeline::new().as_of(pipeline_date(common));
    if let Some(ring) = keys.for_run()? {
        p = p.with_pseudonyms(ring.pseudonyms());
        // With a store, every read is audited in it.
        if keys.db.is_file() {
            p = p.with_audit(std::sync::Arc::new(SqliteAudit::open(
                &keys.db,
                ring.audit_key(),
            )?));
        }
    }
    if let Some(policy) = &common.policy {
        p = p.with_policy(host.load_privacy_filter(policy)?);
    }
    Ok(p)
}

/// Reads patrons, refusing a file that holds one patron twice.
fn read_patrons(path: &Path) -> Result<Vec<Patron>> {
    let patrons: Vec<Patron> = read_jsonl(path)?;
    let mut seen = std::collections::HashSet::new();
    for (i, p) in patrons.iter().enumerate() {
        anyhow::ensure!(
            seen.insert(p.id.as_str()),
            "{}: record {}: field `id`: patron `{}` appears twice; keep one record per patron",
            path.display(),
            i + 1,
            p.id
        );
    }
    Ok(patrons)
}

fn inspect(host: &Host, path: &Path, json: bool) -> Result<()> {
    let bare = path.extension().is_some_and(|e| e == "wasm")
        && !path.with_file_name(lectern::MANIFEST_FILE).is_file();
    if bare {
        let info = host.inspect_component(path)?;
        if json {
            return print_json(&component_json(&info));
        }
        println!("component  {}", info.path.display());
        println!("manifest   none (no plugin.toml beside it)");
        println!(
            "world      {}",
            info.world.map_or("none of lectern:crm", |w| w.as_str())
        );
        print_component(&info);
        return Ok(());
    }
    let plugin = host.load(path)?;
    let m = plugin.manifest();
    let info = plugin.component();
    let limits = plugin.limits();
    let fields: Vec<&str> = plugin
        .declared_fields()
        .iter()
        .map(|f| f.as_str())
        .collect();
    if json {
        let mut out = component_json(info);
        out.as_object_mut().unwrap().extend(
            json!({
                "id": plugin.id(),
                "version": plugin.version(),
                "api_version": m.api_version,
                "description": m.description,
                "authors": m.authors,
                "fields": fields,
                "config": plugin.config(),
                "limits": {
                    "deadline_ms": limits.deadline.as_millis() as u64,
                    "memory_bytes": limits.memory_bytes,
                    "output_bytes": limits.output_bytes,
                    "log_bytes": limits.log_bytes,
                },
            })
            .as_object()
            .unwrap()
            .clone(),
        );
        return print_json(&out);
    }
    println!("plugin     {} {}", plugin.id(), plugin.version());
    if !m.description.is_empty() {
        println!("           {}", m.description);
    }
    if !m.authors.is_empty() {
        println!("authors    {}", m.authors.join(", "));
    }
    println!(
        "world      {} (lectern:crm@{})",
        plugin.world(),
        m.api_version
    );
    println!(
        "fields     {}",
        if fields.is_empty() {
            "none".into()
        } else {
            fields.join(", ")
        }
    );
    for (k, v) in plugin.config() {
        println!("config     {k} = {v}");
    }
    println!(
        "limits     deadline {} ms, memory {} MiB, output {} KiB, log {} KiB",
        limits.deadline.as_millis(),
        limits.memory_bytes >> 20,
        limits.output_bytes >> 10,
        limits.log_bytes >> 10
    );
    println!("component  {}", info.path.display());
    print_component(info);
    Ok(())
}

fn component_json(info: &lectern::ComponentInfo) -> serde_json::Value {
    json!({
        "component": info.path,
        "world": info.world.map(|w| w.as_str()),
        "size": info.size,
        "sha256": info.sha256,
        "exports": info.exports,
        "imports": info.imports,
        "cache": cache_word(info.cache),
        "load_ms": info.load_time.as_secs_f64() * 1e3,
    })
}

fn print_component(info: &lectern::ComponentInfo) {
    println!(
        "size       {} bytes, sha256 {}",
        info.size,
        &info.sha256[..16]
    );
    println!("exports    {}", info.exports.join(", "));
    println!("imports    {}", info.imports.join(", "));
    println!(
        "loaded     in {:.1} ms ({})",
        info.load_time.as_secs_f64() * 1e3,
        cache_word(info.cache)
    );
}

fn cache_word(c: CacheStatus) -> &'static str {
    match c {
        CacheStatus::Hit => "from the cache",
        CacheStatus::Stored => "compiled, now cached",
        CacheStatus::Uncached => "compiled, no cache",
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LECTERN_CACHE_DIR") {
        return Some(dir.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("lectern"))
}

fn table<'a>(header: impl IntoIterator<Item = &'a str>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        // A reader that stopped reading, such as `head`, is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
