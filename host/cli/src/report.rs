//! `lectern report`: segment reports and reader lists from the stored
//! scoring runs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use lectern::ListKind;

use crate::Ctx;
use crate::output::{print_json, table, write_file};

#[derive(Subcommand)]
pub enum Command {
    /// Readers per segment, branch and category, and the movement since the
    /// previous run
    Segments {
        /// The scorer whose runs to report
        #[arg(long, default_value = "engagement")]
        scorer: String,
        /// The smallest group to show
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
        /// The staff role reading the report, for the audit log
        #[arg(long, default_value = "analyst")]
        role: String,
        /// Also write the groups as CSV
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Also write a self-contained HTML page with charts
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// The key readers (重点读者), highest contribution first; which
    /// segments count is `[segments] key-readers` in lectern.toml
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
    /// The readers to win back, most urgent segment first; which segments
    /// count, in which order, is `[segments] lapsed` in lectern.toml
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
    /// A campaign's outcome: the share of messaged readers who borrowed,
    /// visited or renewed, against the holdout, with a 95% interval
    Campaign {
        /// The campaign's id, from a file under `[readers] campaigns`
        id: String,
        /// The day to report as of [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<chrono::NaiveDate>,
        /// The smallest group to show
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
        /// The staff role reading the outcome, for the audit log
        #[arg(long, default_value = "analyst")]
        role: String,
        /// Also write the outcome as CSV
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Also write a self-contained HTML page with a chart
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Readers' information needs, for acquisitions and subject librarians:
    /// demand per subject and month (loans, renewals, holds placed), each
    /// group's change on last year, and titles readers queue for; only
    /// aggregates of at least k readers, reading history linked to groups
    /// only for readers who consented
    Needs {
        /// The day to report as of [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<chrono::NaiveDate>,
        /// The smallest number of readers behind a count shown
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
        /// Months of history in each series (24 or more)
        #[arg(long, default_value_t = 36)]
        months: u32,
        /// A hold waiting its turn longer than this many days is unmet
        /// demand
        #[arg(long, default_value_t = 14)]
        waiting_days: u32,
        /// List titles with at least this many readers waiting
        #[arg(long, default_value_t = 3)]
        min_waiting: usize,
        /// The scorer whose latest run gives readers' segments
        #[arg(long, default_value = "engagement")]
        segments_from: String,
        /// The staff role reading the report, for the policy and the audit
        /// log
        #[arg(long, default_value = "analyst")]
        role: String,
        /// Forecast each subject's demand with this forecaster plugin (an
        /// installed id or a directory), from the report's own suppressed
        /// counts
        #[arg(long, value_name = "PLUGIN")]
        forecaster: Option<String>,
        /// Months to forecast
        #[arg(long, default_value_t = 6)]
        horizon: u32,
        /// Instead of the report, backtest the forecaster: train on all but
        /// the last N months of each subject, forecast those, and compare
        /// with the seasonal naive forecast (MASE, MAPE, interval coverage)
        #[arg(long, value_name = "N", requires = "forecaster")]
        backtest: Option<usize>,
        /// Also write every count as CSV
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Also write a self-contained HTML page with charts
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// A survey's answers per question, and per category or segment, with
    /// groups of fewer than k readers withheld
    Survey {
        /// The survey's id, from a file under `[readers] surveys`
        id: String,
        /// Group by `category` or `segment` [default: everyone together]
        #[arg(long, value_enum)]
        by: Option<SurveyBy>,
        /// The smallest group to show
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
        /// The staff role reading the results, for the audit log
        #[arg(long, default_value = "analyst")]
        role: String,
        /// The language of questions and options: en or zh-CN
        #[arg(long, default_value = "en")]
        lang: String,
        /// Also write the results as CSV
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Also write a self-contained HTML page
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

/// How survey answers are grouped.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SurveyBy {
    /// By the reader's category
    Category,
    /// By the reader's segment
    Segment,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The privacy-filter plugin that decides what the role sees [default:
    /// the configured policy]
    #[arg(long, value_name = "PLUGIN")]
    policy: Option<PathBuf>,
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

const NO_STORE: &str = "import and score patrons first";

/// A report that reads as a table, and writes as CSV and as a page.
trait Rendered: serde::Serialize {
    fn table(&self) -> String;
    fn csv(&self) -> String;
    fn html(&self) -> String;
}

macro_rules! rendered {
    ($($ty:ty),*) => {$(
        impl Rendered for $ty {
            fn table(&self) -> String {
                self.to_table()
            }
            fn csv(&self) -> String {
                self.to_csv()
            }
            fn html(&self) -> String {
                self.to_html()
            }
        }
    )*};
}

rendered!(
    lectern::CampaignOutcome,
    lectern::SurveyResults,
    lectern::NeedsReport
);

/// Writes `report` to the `--csv` and `--html` files asked for, then
/// prints it: JSON with `--json`, else the table.
fn emit(
    ctx: &Ctx,
    report: &impl Rendered,
    csv: Option<PathBuf>,
    html: Option<PathBuf>,
) -> Result<()> {
    if let Some(path) = &csv {
        write_file(path, report.csv())?;
    }
    if let Some(path) = &html {
        write_file(path, report.html())?;
    }
    if ctx.json {
        return print_json(report);
    }
    out!("{}", report.table().trim_end());
    Ok(())
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    let (kind, top, scorer, list) = match command {
        Command::Segments {
            scorer,
            k,
            role,
            csv,
            html,
        } => return segments(ctx, &scorer, k, &role, csv, html),
        Command::Campaign {
            id,
            as_of,
            k,
            role,
            csv,
            html,
        } => {
            let library = ctx.open_existing(None, NO_STORE)?;
            let as_of = as_of.unwrap_or_else(|| {
                lectern::local_day(&library.config().notify, chrono::Utc::now())
            });
            let outcome = library.campaign_outcome(&id, as_of, k, &role)?;
            return emit(ctx, &outcome, csv, html);
        }
        Command::Survey {
            id,
            by,
            k,
            role,
            lang,
            csv,
            html,
        } => {
            let by = match by {
                None => lectern::GroupBy::All,
                Some(SurveyBy::Category) => lectern::GroupBy::Category,
                Some(SurveyBy::Segment) => lectern::GroupBy::Segment,
            };
            let results = ctx.open_existing(None, NO_STORE)?.survey_results(
                &id,
                by,
                k,
                &role,
                lectern::page_locale(Some(&lang)),
            )?;
            return emit(ctx, &results, csv, html);
        }
        Command::Needs {
            as_of,
            k,
            months,
            waiting_days,
            min_waiting,
            segments_from,
            role,
            forecaster,
            horizon,
            backtest,
            csv,
            html,
        } => {
            let library = ctx.open_existing(None, NO_STORE)?;
            let as_of = as_of.unwrap_or_else(|| {
                lectern::local_day(&library.config().notify, chrono::Utc::now())
            });
            let mut options = lectern::NeedsOptions::new(as_of, k);
            options.months = months;
            options.waiting_days = waiting_days;
            options.min_waiting = min_waiting;
            options.segments_from = segments_from;
            let forecaster = forecaster
                .map(|f| library.plugin_at(&f).and_then(lectern::Forecaster::new))
                .transpose()?;
            if let Some(n) = backtest {
                anyhow::ensure!(
                    (1..=lectern::MAX_HORIZON as usize).contains(&n),
                    "--backtest {n}: hold out 1 to {} months",
                    lectern::MAX_HORIZON
                );
            }
            if let (Some(test), Some(f)) = (backtest, &forecaster) {
                let result = library.backtest_needs(&role, &options, f, test)?;
                if ctx.json {
                    return print_json(&result);
                }
                out!("{}", result.to_table().trim_end());
                return Ok(());
            }
            let mut report = library.needs_report(&role, &options)?;
            if let Some(f) = &forecaster {
                library.forecast_needs(&mut report, f, horizon)?;
            }
            return emit(ctx, &report, csv, html);
        }
        Command::KeyReaders { top, scorer, list } => (ListKind::KeyReaders, top, scorer, list),
        Command::Lapsed { top, scorer, list } => (ListKind::Lapsed, top, scorer, list),
    };
    let library = ctx.open_existing(list.policy.as_deref(), NO_STORE)?;
    let report = library.reader_list(kind, &scorer, top, &list.role)?;
    if let Some(path) = &list.csv {
        write_file(path, report.to_csv())?;
    }
    if let Some(path) = &list.html {
        write_file(path, report.to_html())?;
    }
    if ctx.json {
        return print_json(&report);
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
    out!("{t}");
    out!(
        "{}: {} readers, as the {} role sees them",
        report.title,
        report.readers.len(),
        list.role
    );
    if report.reasons_withheld {
        out!(
            "the scorer's reasons are withheld: the {} role may not see every field the scorer \
             saw",
            list.role
        );
    }
    Ok(())
}

fn segments(
    ctx: &Ctx,
    scorer: &str,
    k: usize,
    role: &str,
    csv: Option<PathBuf>,
    html: Option<PathBuf>,
) -> Result<()> {
    let report = ctx
        .open_existing(None, NO_STORE)?
        .segment_report(scorer, k, role)?;
    if let Some(path) = &csv {
        write_file(path, report.to_csv())?;
    }
    if let Some(path) = &html {
        write_file(path, report.to_html())?;
    }
    if ctx.json {
        return print_json(&report);
    }
    let mut t = table(["segment", "readers"]);
    for c in &report.segments {
        t.add_row([c.segment.clone(), c.patrons.to_string()]);
    }
    out!("{t}");
    if !report.movement.is_empty() {
        let mut m = table(["from", "to", "readers"]);
        for mv in &report.movement {
            m.add_row([mv.from.clone(), mv.to.clone(), mv.patrons.to_string()]);
        }
        out!(
            "Movement since run {}:\n{m}",
            report.previous_run.unwrap_or_default()
        );
    }
    out!(
        "run {} of {} {} as of {}\nsegments: {}\nmovement: {}",
        report.run,
        report.plugin,
        report.version,
        report.as_of,
        report.hidden_segments,
        report.hidden_moves
    );
    Ok(())
}
