//! The library's data: `import`, `gen`, `patron`, `retention`, `key` and
//! `audit`.

use std::path::PathBuf;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Subcommand;
use lectern::{Format, ImportOptions, Retention};
use serde_json::json;

use crate::output::{bar, print_json};
use crate::{Ctx, prefs, today_or};

/// Where `lectern sync` pulls from.
#[derive(Subcommand)]
pub enum SyncSource {
    /// Patrons changed in Koha since the last sync, from its REST API with
    /// an API key (OAuth2 client credentials); the secret is read from
    /// LECTERN_KOHA_CLIENT_SECRET, never from the command line
    Koha {
        /// Koha's base URL, such as https://koha.example.org
        #[arg(long, env = "LECTERN_KOHA_URL")]
        url: String,
        /// The API key's client id
        #[arg(long, env = "LECTERN_KOHA_CLIENT_ID")]
        client_id: String,
        /// Patrons per page
        #[arg(long, default_value_t = 100)]
        per_page: u32,
        /// Every patron, not only those changed since the last sync
        #[arg(long)]
        full: bool,
        /// Write nothing if any patron is bad
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Subcommand)]
pub enum Command {
    /// Pull patrons from an ILS's API: `lectern sync koha`
    Sync {
        #[command(subcommand)]
        source: SyncSource,
    },
    /// Import patrons, loans and holds from ILS exports into the store
    Import {
        /// The export format: folio, koha, koha-csv or csv
        #[arg(long)]
        format: Format,
        /// Stop at the first bad record and write nothing
        #[arg(long)]
        strict: bool,
        /// The files' encoding: utf-8 (with or without a byte-order mark)
        /// or latin1
        #[arg(long, default_value = "utf-8")]
        encoding: lectern::Encoding,
        /// Import patrons who were erased, too: the library has decided to
        /// bring them back. Without it their records are withheld
        #[arg(long)]
        readmit: bool,
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
}

#[derive(Subcommand)]
pub enum PatronCommand {
    /// Remove a patron and everything stored about them
    Erase {
        /// The patron's id
        id: String,
        /// The staff role erasing, for the audit log
        #[arg(long, default_value = "administrator")]
        role: String,
    },
    /// Show or change a patron's messaging preferences
    Prefs(prefs::PrefsArgs),
    /// Everything stored about a patron and derived from them, as JSON
    Export {
        /// The patron's id
        id: String,
        /// The date of the activity summary [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
        /// The staff role exporting, for the audit log
        #[arg(long, default_value = "administrator")]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum RetentionCommand {
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
        /// Days survey answers are kept
        #[arg(long, value_name = "DAYS", default_value_t = Retention::default().survey_answers)]
        survey_days: u32,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a new pseudonym key current: every patron gets a new token
    Rotate,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no entry of the audit log was edited, inserted or deleted
    Verify,
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Sync { source } => sync(ctx, source),
        Command::Import {
            format,
            strict,
            encoding,
            readmit,
            files,
        } => import(
            ctx,
            format,
            ImportOptions {
                strict,
                encoding,
                readmit,
                ..ImportOptions::default()
            },
            &files,
        ),
        Command::Gen {
            patrons,
            seed,
            end,
            out,
        } => generate(ctx, lectern::GenOptions { patrons, seed, end }, out),
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
                    survey_days,
                },
        } => {
            let retention = Retention {
                loan_history: loan_history_days,
                holds: holds_days,
                uses: uses_days,
                scores: scores_days,
                messages: messages_days,
                audit_log: audit_days,
                survey_answers: survey_days,
            };
            let r = ctx
                .open_existing(None, "there is nothing to remove")?
                .apply_retention(today_or(as_of), &retention)?;
            if ctx.json {
                return print_json(&json!({
                    "loans_aged": r.loans_aged,
                    "holds_removed": r.holds_removed,
                    "uses_removed": r.uses_removed,
                    "runs_removed": r.runs_removed,
                    "messages_removed": r.messages_removed,
                    "audit_removed": r.audit_removed,
                    "answers_removed": r.answers_removed,
                    "links_removed": r.links_removed,
                }));
            }
            out!(
                "generalised {} loans, removed {} holds, {} days of use, {} scoring runs, {} \
                 messages, {} audit entries, {} survey answers and {} expired reader links",
                r.loans_aged,
                r.holds_removed,
                r.uses_removed,
                r.runs_removed,
                r.messages_removed,
                r.audit_removed,
                r.answers_removed,
                r.links_removed
            );
            Ok(())
        }
        Command::Key {
            command: KeyCommand::Rotate,
        } => {
            let path = ctx.key_path();
            let version = ctx
                .open_existing(None, "a keyring is made with its store")?
                .rotate_pseudonym_key()?;
            out!(
                "pseudonym key {version} is now current in {}; tokens made before are no longer \
                 produced",
                path.display()
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let check = ctx
                .open_existing(None, "there is no audit log to verify")?
                .verify_audit()?;
            if ctx.json {
                print_json(&json!({
                    "intact": check.intact(),
                    "entries": check.entries,
                    "broken_at": check.broken_at,
                    "removed_by_retention_through": check.removed_through,
                    "head": check.head,
                    "cut": check.cut,
                }))?;
            } else if check.intact() {
                out!("the audit log is intact: {} entries", check.entries);
                if check.removed_through > 0 {
                    out!(
                        "entries 1 to {} were removed by retention, as its own entries record",
                        check.removed_through
                    );
                }
                if check.head.is_none() {
                    out!(
                        "no head is kept outside the store yet; the next read of patron data \
                         writes one beside the keyring"
                    );
                }
            }
            if let Some(n) = check.broken_at {
                anyhow::bail!(
                    "the audit log is broken at entry {n} of {}: an entry was edited, inserted or \
                     deleted there; keep the store as it is and report it to the privacy officer",
                    check.entries
                );
            }
            if let Some(cut) = check.cut {
                anyhow::bail!(
                    "the audit log is cut: {cut}; keep the store as it is and report it to the \
                     privacy officer"
                );
            }
            Ok(())
        }
        Command::Patron { command } => patron(ctx, command),
    }
}

fn patron(ctx: &Ctx, command: PatronCommand) -> Result<()> {
    match command {
        PatronCommand::Export { id, as_of, role } => {
            let library = ctx.open_existing(None, "import patrons first")?;
            print_json(&library.export_patron(&id, today_or(as_of), &role)?)
        }
        PatronCommand::Erase { id, role } => {
            let e = ctx
                .open_existing(None, "import patrons first")?
                .erase_patron(&id, &role)?;
            if ctx.json {
                return print_json(&json!({
                    "patron": id, "loans": e.loans, "holds": e.holds, "attributes": e.attributes,
                    "uses": e.uses, "scores": e.scores, "messages": e.messages,
                    "files": e.files,
                }));
            }
            out!(
                "erased patron {id}: {} loans, {} holds, {} attributes, {} scores, {} messages, \
                 {} delivered files",
                e.loans,
                e.holds,
                e.attributes,
                e.scores,
                e.messages,
                e.files
            );
            Ok(())
        }
        PatronCommand::Prefs(args) => prefs::prefs(ctx, args),
    }
}

/// Imports `files`. Exits 0 when every record was written, 3 when the
/// import completed with records skipped (each reported), and 65 when
/// nothing was imported.
fn import(ctx: &Ctx, format: Format, options: ImportOptions, files: &[PathBuf]) -> Result<()> {
    let mut library = ctx.open(None)?;
    // Date-times with a zone count on the library's own days.
    let options = ImportOptions {
        clock: library.config().notify.clock,
        ..options
    };
    let bar = bar(ctx.json, None, "{spinner} {msg} [{elapsed}]");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = library.import(format, files, options, &mut |n| {
        bar.set_message(format!("{n} records read"))
    });
    bar.finish_and_clear();
    print_import(ctx, &report?)
}

/// Prints what an import or a sync wrote and skipped; an import that
/// skipped records exits 3, one that wrote nothing is an error.
fn print_import(ctx: &Ctx, report: &lectern::ImportReport) -> Result<()> {
    if ctx.json {
        let skipped: Vec<_> = report
            .skipped
            .iter()
            .map(|s| json!({"file": s.file, "record": s.record, "line": s.line, "field": s.field, "reason": s.reason}))
            .collect();
        print_json(&json!({
            "imported": report.written.imported,
            "updated": report.written.updated,
            "skipped": skipped,
            "impossible_dates": report.impossible_dates,
            "withheld_erased": report.withheld_erased,
            "readmitted": report.readmitted,
        }))?;
    } else {
        for s in &report.skipped {
            out!("skipped {s}");
        }
        if report.withheld_erased > 0 {
            out!(
                "{} records of erased patrons were withheld; to bring a patron back on purpose, \
                 import with --readmit",
                report.withheld_erased
            );
        }
        if report.readmitted > 0 {
            out!(
                "{} erased patrons were imported again (--readmit)",
                report.readmitted
            );
        }
        if report.impossible_dates > 0 {
            out!(
                "{} impossible dates (such as 0000-00-00) were read as unknown; their records \
                 were kept",
                report.impossible_dates
            );
        }
        out!(
            "imported {}, updated {}, skipped {} into {}",
            report.written.imported,
            report.written.updated,
            report.skipped.len(),
            ctx.store_name()
        );
    }
    if report.written.imported + report.written.updated == 0 && report.withheld_erased == 0 {
        return Err(lectern::Error::invalid(
            "import",
            "nothing was imported; see what was skipped above, fix the files and import again",
        )
        .into());
    }
    if !report.skipped.is_empty() {
        return Err(crate::Exit(3).into());
    }
    Ok(())
}

fn sync(ctx: &Ctx, source: SyncSource) -> Result<()> {
    let SyncSource::Koha {
        url,
        client_id,
        per_page,
        full,
        strict,
    } = source;
    let secret = std::env::var("LECTERN_KOHA_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            lectern::Error::Config(anyhow::anyhow!(
                "LECTERN_KOHA_CLIENT_SECRET is not set; export the secret of the Koha API key \
                 {client_id}"
            ))
        })?;
    let mut library = ctx.open(None)?;
    let options = ImportOptions {
        strict,
        clock: library.config().notify.clock,
        ..ImportOptions::default()
    };
    let source = lectern::KohaSource {
        url,
        client_id,
        client_secret: lectern::Secret::new(secret),
        per_page,
        full,
    };
    let bar = bar(ctx.json, None, "{spinner} {msg} [{elapsed}]");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = library.sync_koha(&source, options, &mut |n, total| {
        bar.set_message(format!("{n} of {total} patrons read"))
    });
    bar.finish_and_clear();
    let report = report?;
    if !ctx.json {
        out!(
            "read {} patrons in {} pages from Koha, {}",
            report.patrons,
            report.pages,
            match &report.since {
                Some(s) => format!("changed since {s}"),
                None => "all of them".to_string(),
            }
        );
    }
    if report.patrons == 0 {
        if ctx.json {
            print_json(&json!({"imported": 0, "updated": 0, "skipped": [], "patrons": 0}))?;
        } else {
            out!("nothing changed in Koha since the last sync");
        }
        return Ok(());
    }
    print_import(ctx, &report.import)
}

fn generate(ctx: &Ctx, options: lectern::GenOptions, out: PathBuf) -> Result<()> {
    let bar = bar(
        ctx.json,
        Some(options.patrons),
        "{bar:40} {pos}/{len} patrons",
    );
    let summary = lectern::generate(&options, &out, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let s = summary?;
    if ctx.json {
        return print_json(&json!({
            "patrons": s.patrons, "loans": s.loans, "holds": s.holds, "uses": s.uses, "dir": out,
        }));
    }
    out!(
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
