//! What a purpose and a staff role may see: `filter` and `analytics`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveDate;
use clap::Subcommand;
use lectern::{AccessContext, Actor, Field, Purpose};

use crate::output::{print_json, table};
use crate::score::read_patrons;
use crate::{Ctx, today_or};

#[derive(Subcommand)]
pub enum Command {
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
        /// The privacy-filter plugin [default: the configured policy]
        #[arg(long, value_name = "PLUGIN")]
        plugin: Option<PathBuf>,
        /// The date of the activity summaries [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
    /// Show what a purpose and staff role may see of patrons
    Filter {
        /// The privacy-filter plugin [default: the configured policy]
        #[arg(long, value_name = "PLUGIN")]
        plugin: Option<PathBuf>,
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
        /// The date the policy sees as today [default: today]
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Analytics {
            by,
            k,
            role,
            plugin,
            as_of,
        } => {
            let library = ctx.open_existing(plugin.as_deref(), "import patrons first")?;
            let agg = library.aggregate(&role, &by, k, today_or(as_of))?;
            if ctx.json {
                return print_json(&agg);
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
            out!("{t}");
            out!("{} groups shown; {}", agg.groups.len(), agg.hidden());
            Ok(())
        }
        Command::Filter {
            plugin,
            purpose,
            role,
            input,
            as_of,
        } => filter(
            ctx,
            plugin.as_deref(),
            purpose,
            role,
            &input,
            today_or(as_of),
        ),
    }
}

fn filter(
    ctx: &Ctx,
    plugin: Option<&Path>,
    purpose: Purpose,
    role: String,
    input: &Path,
    as_of: NaiveDate,
) -> Result<()> {
    let patrons = read_patrons(input)?;
    let library = ctx.open(plugin)?;
    let ctx_ = AccessContext {
        purpose,
        actor: Actor::Staff(role.clone()),
    };
    // One pipeline, so the policy plugin is asked once for both.
    let pipeline = library.pipeline(as_of);
    let filtered = pipeline.filter(&ctx_, &patrons)?;
    if ctx.json {
        return print_json(&filtered);
    }
    let passed = pipeline.rules_for(&ctx_, None)?.passed();
    let columns: Vec<String> = std::iter::once("id".to_string())
        .chain(passed.iter().map(|f| f.as_str().replace('-', "_")))
        .collect();
    let mut t = table(columns.iter().map(|c| c.as_str()));
    for p in &filtered {
        let row: BTreeMap<String, serde_json::Value> = match serde_json::to_value(p) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        t.add_row(columns.iter().map(|c| match row.get(c) {
            None => "—".to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }));
    }
    out!("{t}");
    let shown: Vec<&str> = passed.iter().map(|f| f.as_str()).collect();
    out!(
        "{} patrons as {role} sees them for {purpose}; fields passed: {}",
        filtered.len(),
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(", ")
        }
    );
    Ok(())
}
