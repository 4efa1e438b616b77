//! `lectern patron prefs`: a patron's messaging preferences, which
//! Lectern keeps and an import never changes.

use anyhow::Result;
use lectern::Channel;
use serde_json::json;

use crate::Ctx;
use crate::output::print_json;

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
    /// A monthly current-awareness digest, as key readers get: on or off.
    /// It also needs consent to marketing and to the use of reading history
    #[arg(long, value_name = "on|off")]
    pub awareness: Option<Toggle>,
}

/// On or off.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

pub fn prefs(ctx: &Ctx, args: PrefsArgs) -> Result<()> {
    let mut library = ctx.open_existing(None, "import patrons first")?;
    let mut p = library.preferences(&args.id)?;
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
    if let Some(a) = args.awareness {
        p.awareness = a == Toggle::On;
    }
    let cancelled = library.set_preferences(&args.id, &p)?;
    if ctx.json {
        return print_json(&json!({"patron": args.id, "preferences": p, "cancelled": cancelled}));
    }
    let opted: Vec<&str> = p.opted_out.iter().map(|c| c.as_str()).collect();
    out!(
        "{}: digest {}, notice {} days, marketing {}, current awareness {}, opted out of {}",
        args.id,
        if p.digest { "on" } else { "off" },
        p.notice_days
            .map_or("(library default)".to_string(), |n| n.to_string()),
        if p.no_marketing {
            "off"
        } else {
            "as consented"
        },
        if p.awareness {
            "asked for"
        } else {
            "as a key reader"
        },
        if opted.is_empty() {
            "nothing".to_string()
        } else {
            opted.join(", ")
        }
    );
    if cancelled > 0 {
        out!("cancelled {cancelled} queued messages");
    }
    Ok(())
}
