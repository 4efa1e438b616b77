//! `lectern serve`, `lectern staff` and `lectern jobs`: the service, its
//! staff accounts, and its job history.

use anyhow::Result;
use chrono::{DateTime, Days, Utc};
use clap::Subcommand;
use lectern::{Lectern, StaffAccount};
use serde_json::json;

use crate::Ctx;
use crate::output::{print_json, table};

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Add a staff account; its token is printed once and only its hash is
    /// kept
    Add {
        /// The account's name, such as a person or an ILS
        name: String,
        /// Its role: one the privacy policy declares, or `ils` for an ILS
        /// that pushes patrons and events and reads nothing
        #[arg(long)]
        role: String,
        /// The token stops working after this many days [default: never]
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u64>,
    },
    /// The staff accounts, with their roles and states
    List,
    /// Revoke an account: its token stops working at once
    Revoke {
        /// The account's name
        name: String,
    },
}

pub fn serve(ctx: &Ctx) -> Result<()> {
    // The store is made, and the keyring checked, before anything listens.
    drop(ctx.open(None)?);
    let json = ctx.json;
    lectern_serve::serve(
        || ctx.open_for_service().map_err(to_library_error),
        |addr| {
            // The line a supervisor or a test waits for.
            if json {
                out!("{}", json!({ "listening": addr.to_string() }));
            } else {
                out!("lectern serve: listening on http://{addr}");
            }
        },
    )
}

/// The library's own error, kept as it is; any other becomes a
/// configuration error.
fn to_library_error(e: anyhow::Error) -> lectern::Error {
    match e.downcast::<lectern::Error>() {
        Ok(e) => e,
        Err(e) => lectern::Error::Config(e),
    }
}

/// Where staff accounts are kept: a library, or a consortium.
pub trait Accounts {
    fn add(
        &mut self,
        name: &str,
        role: &str,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> lectern::Result<(StaffAccount, String)>;
    fn list(&self) -> lectern::Result<Vec<StaffAccount>>;
    fn revoke(&mut self, name: &str, now: DateTime<Utc>) -> lectern::Result<()>;
}

impl Accounts for Lectern {
    fn add(
        &mut self,
        name: &str,
        role: &str,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> lectern::Result<(StaffAccount, String)> {
        self.add_staff(name, role, expires, now)
    }
    fn list(&self) -> lectern::Result<Vec<StaffAccount>> {
        self.staff_accounts()
    }
    fn revoke(&mut self, name: &str, now: DateTime<Utc>) -> lectern::Result<()> {
        self.revoke_staff(name, now)
    }
}

pub fn staff(ctx: &Ctx, command: StaffCommand) -> Result<()> {
    let mut library = ctx.open(None)?;
    accounts(ctx, &mut library, command)
}

/// Adds, lists or revokes the accounts of `store`.
pub fn accounts(ctx: &Ctx, store: &mut dyn Accounts, command: StaffCommand) -> Result<()> {
    let now = Utc::now();
    match command {
        StaffCommand::Add {
            name,
            role,
            expires_in_days,
        } => {
            let expires = match expires_in_days {
                Some(d) => Some(
                    now.checked_add_days(Days::new(d))
                        .ok_or_else(|| anyhow::anyhow!("--expires-in-days {d}: give fewer days"))?,
                ),
                None => None,
            };
            let (account, token) = store.add(&name, &role, expires, now)?;
            if ctx.json {
                return print_json(&json!({ "account": account, "token": token }));
            }
            out!("{token}");
            eprintln!(
                "staff account `{}` ({} role) made; the token above is shown once and never \
                 again: give it to them now{}",
                account.name,
                account.role,
                account
                    .expires_at
                    .map(|t| format!("; it expires at {}", t.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default()
            );
            Ok(())
        }
        StaffCommand::List => {
            let accounts = store.list()?;
            if ctx.json {
                return print_json(&accounts);
            }
            let mut t = table(["name", "role", "token", "made", "expires", "state"]);
            for a in &accounts {
                let state = if a.revoked_at.is_some() {
                    "revoked"
                } else if a.expires_at.is_some_and(|t| t <= now) {
                    "expired"
                } else {
                    "active"
                };
                t.add_row([
                    a.name.clone(),
                    a.role.clone(),
                    format!("lct_{}_…", a.key_id),
                    a.created_at.format("%Y-%m-%d").to_string(),
                    a.expires_at
                        .map_or("never".into(), |t| t.format("%Y-%m-%d").to_string()),
                    state.to_string(),
                ]);
            }
            out!("{t}");
            out!("{} accounts", accounts.len());
            Ok(())
        }
        StaffCommand::Revoke { name } => {
            store.revoke(&name, now)?;
            if ctx.json {
                return print_json(&json!({ "revoked": name }));
            }
            out!("revoked `{name}`: its token no longer works");
            Ok(())
        }
    }
}

pub fn jobs(ctx: &Ctx, job: Option<String>, limit: usize) -> Result<()> {
    let library = ctx.open_existing(None, "start `lectern serve` first")?;
    let runs = library.job_runs(job.as_deref(), limit)?;
    if ctx.json {
        return print_json(&runs);
    }
    let mut t = table(["run", "job", "started", "ended", "state", "summary"]);
    for r in &runs {
        t.add_row([
            r.id.to_string(),
            r.job.clone(),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.ended_at
                .map_or("—".into(), |t| t.format("%H:%M:%S").to_string()),
            r.state.clone(),
            r.summary.clone(),
        ]);
    }
    out!("{t}");
    Ok(())
}

pub fn registrations(ctx: &Ctx, role: &str, koha_csv: Option<std::path::PathBuf>) -> Result<()> {
    let list = ctx
        .open_existing(None, "readers register through `lectern serve`")?
        .registrations(role)?;
    if let Some(path) = &koha_csv {
        crate::output::write_file(path, lectern::koha_patron_csv(&list))?;
    }
    if ctx.json {
        return print_json(&list);
    }
    let mut t = table(["id", "name", "email", "category", "registered", "verified"]);
    for r in &list {
        t.add_row([
            r.id.clone(),
            format!("{} {}", r.given_name, r.family_name),
            r.email.clone().unwrap_or_default(),
            r.category.clone().unwrap_or_default(),
            r.registered_on.map(|d| d.to_string()).unwrap_or_default(),
            if r.verified { "yes" } else { "no" }.to_string(),
        ]);
    }
    out!("{t}");
    let verified = list.iter().filter(|r| r.verified).count();
    out!(
        "{} readers registered on the web, {verified} with a confirmed email address",
        list.len()
    );
    if let Some(path) = &koha_csv {
        out!(
            "wrote the {verified} confirmed ones to {} for Koha's patron import",
            path.display()
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Run campaigns now: by id, or every one under `[readers] campaigns`
    Run {
        /// The campaigns' ids [default: all]
        ids: Vec<String>,
        /// The moment to run as of, in RFC 3339 [default: now]
        #[arg(long, value_name = "TIME")]
        now: Option<DateTime<Utc>>,
    },
    /// The campaigns the library runs
    List,
}

pub fn campaign(ctx: &Ctx, command: CampaignCommand) -> Result<()> {
    let mut library = ctx.open_existing(None, "import patrons first with `lectern import`")?;
    match command {
        CampaignCommand::List => {
            let list = library.campaigns()?;
            if ctx.json {
                return print_json(&list);
            }
            let mut t = table(["id", "title", "holdout", "steps", "stops when"]);
            for c in &list {
                t.add_row([
                    c.id.clone(),
                    c.title.clone(),
                    format!("{:.0}%", c.holdout * 100.0),
                    c.steps.len().to_string(),
                    c.stop_when
                        .iter()
                        .map(|s| format!("{s:?}").to_lowercase())
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            out!("{t}");
            Ok(())
        }
        CampaignCommand::Run { ids, now } => {
            let now = now.unwrap_or_else(Utc::now);
            let defs = match ids.is_empty() {
                true => library.campaigns()?,
                false => ids
                    .iter()
                    .map(|id| library.campaign(id))
                    .collect::<lectern::Result<Vec<_>>>()?,
            };
            anyhow::ensure!(
                !defs.is_empty(),
                "no campaigns: list their files under `[readers] campaigns` in lectern.toml"
            );
            let mut runs = Vec::new();
            for def in &defs {
                runs.push(library.run_campaign(def, now)?);
            }
            if ctx.json {
                return print_json(&runs);
            }
            for r in &runs {
                out!(
                    "{}: {} entered ({} held out), {} queued, {} stopped by a stop condition{}",
                    r.campaign,
                    r.entered,
                    r.held_out,
                    r.queued,
                    r.stopped,
                    if r.skipped.is_empty() {
                        String::new()
                    } else {
                        format!(", {} held back by the library's rules", r.skipped.len())
                    }
                );
            }
            Ok(())
        }
    }
}
