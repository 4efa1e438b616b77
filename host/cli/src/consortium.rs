//! `lectern consortium`: member libraries on one PostgreSQL server join a
//! consortium, publish readers per segment, and the consortium's staff
//! read the table across members with small counts hidden.

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use lectern::{CONSORTIUM_ROLE, Consortium, StaffAccount};
use serde_json::json;

use crate::Ctx;
use crate::output::print_json;
use crate::serve::{Accounts, StaffCommand, accounts};

#[derive(Subcommand)]
pub enum Command {
    /// Join the library of --db to its consortium (`consortium=` in the
    /// URL, else `consortium`)
    Join,
    /// Leave the consortium; what the library published goes with it
    Leave,
    /// The member libraries
    Members,
    /// Publish readers per segment of the library's latest run to the
    /// consortium: counts only, audited in the library's own chain
    Publish {
        /// The scorer whose latest run is counted
        #[arg(long, default_value = "engagement")]
        scorer: String,
        /// The staff role publishing; the policy must let it see segments
        /// for analytics
        #[arg(long, default_value = "administrator")]
        role: String,
    },
    /// Readers per member and segment across the consortium, with counts
    /// under k hidden, and the counts that would give them away
    Report {
        /// The scorer whose published runs are counted
        #[arg(long, default_value = "engagement")]
        scorer: String,
        /// The smallest count shown
        #[arg(long, default_value_t = lectern::DEFAULT_K)]
        k: usize,
    },
    /// The consortium's staff accounts: their tokens read aggregates
    /// across members (`GET /v1/consortium/segments`) and nothing of any
    /// one library
    Staff {
        #[command(subcommand)]
        command: ConsortiumStaff,
    },
}

#[derive(Subcommand)]
pub enum ConsortiumStaff {
    /// Add an account; its token is printed once and only its hash is kept
    Add {
        /// The account's name
        name: String,
        /// The token stops working after this many days [default: never]
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u64>,
    },
    /// The accounts, with their states
    List,
    /// Revoke an account: its token stops working at once
    Revoke {
        /// The account's name
        name: String,
    },
}

impl Accounts for Consortium {
    fn add(
        &mut self,
        name: &str,
        _role: &str,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> lectern::Result<(StaffAccount, String)> {
        self.add_staff(name, expires, now)
    }
    fn list(&self) -> lectern::Result<Vec<StaffAccount>> {
        self.staff_accounts()
    }
    fn revoke(&mut self, name: &str, now: DateTime<Utc>) -> lectern::Result<()> {
        self.revoke_staff(name, now)
    }
}

/// The consortium of --db, without opening a library: its staff need no
/// member's keyring.
fn consortium(ctx: &Ctx) -> Result<Consortium> {
    let Some(url) = ctx.postgres_url() else {
        bail!(
            "{} is a SQLite file, which serves one library; a consortium's members share a \
             PostgreSQL server: give --db postgres://…",
            ctx.db.display()
        );
    };
    Ok(Consortium::open(url)?)
}

pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    let now = Utc::now();
    match command {
        Command::Join | Command::Leave => {
            let mut library = ctx.open(None)?;
            let join = matches!(command, Command::Join);
            let changed = match join {
                true => library.join_consortium(now)?,
                false => library.leave_consortium()?,
            };
            if ctx.json {
                return print_json(&json!({ "member": join, "changed": changed }));
            }
            let what = match (join, changed) {
                (true, true) => "joined the consortium",
                (true, false) => "is a member already",
                (false, true) => "left the consortium; what it published is gone",
                (false, false) => "was not a member",
            };
            out!("{}: {what}", ctx.store_name());
            Ok(())
        }
        Command::Members => {
            let members = consortium(ctx)?.members()?;
            if ctx.json {
                return print_json(&members);
            }
            for m in &members {
                out!("{m}");
            }
            out!("{} members", members.len());
            Ok(())
        }
        Command::Publish { scorer, role } => {
            let mut library = ctx.open(None)?;
            let published = library.publish_to_consortium(&scorer, &role, now)?;
            if ctx.json {
                return print_json(&published);
            }
            let readers: usize = published.counts.iter().map(|(_, n)| n).sum();
            out!(
                "published {} segments ({readers} readers) of run {} of `{scorer}` as of {} \
                 for `{}`",
                published.counts.len(),
                published.run,
                published.as_of,
                published.library
            );
            Ok(())
        }
        Command::Report { scorer, k } => {
            let report = consortium(ctx)?.report(&scorer, k, lectern::DEFAULT_K)?;
            if ctx.json {
                return print_json(&report);
            }
            out!("{}", report.to_table().trim_end());
            Ok(())
        }
        Command::Staff { command } => {
            let command = match command {
                ConsortiumStaff::Add {
                    name,
                    expires_in_days,
                } => StaffCommand::Add {
                    name,
                    role: CONSORTIUM_ROLE.into(),
                    expires_in_days,
                },
                ConsortiumStaff::List => StaffCommand::List,
                ConsortiumStaff::Revoke { name } => StaffCommand::Revoke { name },
            };
            accounts(ctx, &mut consortium(ctx)?, command)
        }
    }
}
