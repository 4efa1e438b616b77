//! The `lectern` command: it parses arguments, calls the library and
//! prints. Every use case lives in the library, behind [`lectern::Lectern`];
//! the commands are grouped by area, one module each.

/// Prints a line on standard output. A reader that stopped reading, such
/// as `head`, ends the command quietly and successfully, as it does for
/// any Unix tool, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

mod consortium;
mod data;
mod harness;
mod new;
mod notices;
mod output;
mod plugin;
mod prefs;
mod privacy;
mod registry;
mod report;
mod score;
mod serve;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use lectern::{Config, ErrorKind, Host, Keyring, Lectern};

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
    /// The store, made the first time it is needed; every read of patron
    /// data is audited in it: a SQLite file, or a PostgreSQL URL such as
    /// postgres://lectern@db.example/consortium?library=north
    /// [default: $LECTERN_DB, else lectern.db in this directory]
    #[arg(
        long,
        global = true,
        value_name = "FILE|URL",
        env = "LECTERN_DB",
        default_value = "lectern.db"
    )]
    db: PathBuf,
    /// The host's keys, for pseudonyms and the audit chain [default: the
    /// store's name with .key, made with random keys the first time]
    #[arg(long, global = true, value_name = "FILE", env = "LECTERN_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The library's configuration: privacy policy, segments, notice rules
    /// and channels [default: $LECTERN_CONFIG, else lectern.toml in this
    /// directory if there is one]
    #[arg(long, global = true, value_name = "FILE", env = "LECTERN_CONFIG")]
    config: Option<PathBuf>,
    /// Show every plugin log line and what Lectern does (-vv: Lectern's
    /// debug output too; -vvv: the runtime's as well). LECTERN_LOG, in
    /// tracing's filter syntax, overrides it
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Data(data::Command),
    #[command(flatten)]
    Score(score::Command),
    #[command(flatten)]
    Privacy(privacy::Command),
    #[command(flatten)]
    Notices(notices::Command),
    /// Reports from the stored scoring runs
    Report {
        #[command(subcommand)]
        command: report::Command,
    },
    /// Work with plugins
    Plugin {
        #[command(subcommand)]
        command: plugin::Command,
    },
    /// The publisher keys this library trusts to sign plugins
    Trust {
        #[command(subcommand)]
        command: registry::TrustCommand,
    },
    /// The library's privacy policy
    Policy {
        #[command(subcommand)]
        command: registry::PolicyCommand,
    },
    /// Run the HTTP service an ILS connects to: events, reports, patron
    /// rights and the scheduler, configured in lectern.toml [serve]
    Serve,
    /// Work beside other workers on a shared store: the inbox, delivery,
    /// scoring by range and the daily notices, with the plugins of
    /// lectern.toml [serve]
    Worker(worker::WorkerArgs),
    /// A consortium on one PostgreSQL server: join it, publish readers
    /// per segment, read the table across members, manage its staff
    Consortium {
        #[command(subcommand)]
        command: consortium::Command,
    },
    /// Staff accounts and their tokens for the service
    Staff {
        #[command(subcommand)]
        command: serve::StaffCommand,
    },
    /// Run the library's campaigns: readers enter, a share is held out,
    /// due steps are queued, stop conditions end a series
    Campaign {
        #[command(subcommand)]
        command: serve::CampaignCommand,
    },
    /// Readers who registered on the web and have no card yet
    Registrations {
        /// The staff role listing them; the policy must let it see names and
        /// contacts whole, as the ILS will receive them
        #[arg(long, default_value = "administrator")]
        role: String,
        /// Write the verified ones as Koha's patron import CSV (Tools →
        /// Import patrons), with `LECTERNID` as the matching attribute
        #[arg(long, value_name = "FILE")]
        koha_csv: Option<PathBuf>,
    },
    /// The history of the service's scheduled jobs
    Jobs {
        /// Only this job: inbox, deliver, sync, score, notify or retention
        #[arg(long)]
        job: Option<String>,
        /// How many runs, newest first
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The compiled-plugin cache
    Cache {
        #[command(subcommand)]
        command: plugin::CacheCommand,
    },
}

/// What every command shares: the host, where the store and keys are, and
/// how to print.
pub struct Ctx {
    /// The plugin host.
    pub host: Host,
    /// The store: a SQLite file, or a PostgreSQL URL.
    pub db: PathBuf,
    key_file: Option<PathBuf>,
    config: Option<PathBuf>,
    /// Print JSON.
    pub json: bool,
}

impl Ctx {
    /// The configuration: the named file, else `lectern.toml` here if there
    /// is one, else the defaults.
    pub fn config(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(p) => Config::from_file(p)?,
            None if Path::new("lectern.toml").is_file() => {
                Config::from_file(Path::new("lectern.toml"))?
            }
            None => Config::default(),
        };
        config.lockfile = Some(match self.library() {
            Some(library) => PathBuf::from(format!("{library}.lock")),
            None => lectern::default_lockfile(&self.db),
        });
        Ok(config)
    }

    /// The store's PostgreSQL URL, when it is one.
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        let db = self.db.to_str()?;
        (db.starts_with("postgres://") || db.starts_with("postgresql://")).then_some(db)
    }

    /// The member library a PostgreSQL store holds; `None` for SQLite.
    fn library(&self) -> Option<String> {
        // As the store reads the URL; a URL it refuses fails when opened.
        lectern::PgStore::library_of(self.postgres_url()?).ok()
    }

    /// Whether there is a store to open: a SQLite file that exists, or
    /// any PostgreSQL URL (its library's schema is made when opened).
    pub fn store_exists(&self) -> bool {
        self.postgres_url().is_some() || self.db.is_file()
    }

    /// The store, for messages, without a password.
    pub fn store_name(&self) -> String {
        match self.postgres_url() {
            Some(url) => lectern::store_shown(url),
            None => self.db.display().to_string(),
        }
    }

    /// Where the keyring is: the named file, or the store's name with
    /// `.key`.
    pub fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| match self.library() {
                // One keyring per member library: pseudonyms never link
                // across libraries.
                Some(library) => PathBuf::from(format!("{library}.key")),
                None => self.db.with_extension("key"),
            })
    }

    /// The keyring of `store`: the named file, which must be there, or the
    /// store's own, made the first time the store is keyed. A store keyed
    /// before whose keyring is missing is an error, never a silent new key:
    /// the old key is what reads its tokens and verifies its audit log.
    fn keyring(&self, store: &impl lectern::AuditStore) -> Result<Keyring> {
        let path = self.key_path();
        if self.key_file.is_some() || path.exists() {
            return Ok(Keyring::load(&path)?);
        }
        if let Some(fingerprint) = store.key_fingerprint()? {
            return Err(lectern::Error::Config(anyhow::anyhow!(
                "the keyring {} is missing, and the store {} was made with the keyring \
                 {fingerprint}; restore it from your backup (a new key cannot read the store's \
                 tokens or verify its audit log)",
                path.display(),
                self.store_name()
            ))
            .into());
        }
        Ok(Keyring::load_or_create(&path)?)
    }

    /// The library over the store, made if it is not there yet, with
    /// `policy` in force instead of the configured one if given. This is
    /// the one place the command names its store.
    pub fn open(&self, policy: Option<&Path>) -> Result<Lectern> {
        match self.postgres_url() {
            Some(url) => self.open_store(policy, lectern::PgStore::open(url)?),
            None => self.open_store(policy, lectern::SqliteStore::open(&self.db)?),
        }
    }

    /// The library as `lectern serve` holds it: the same, with a page
    /// cache of 8 MiB a connection, since the service keeps its
    /// connections open for as long as it runs.
    pub fn open_for_service(&self) -> Result<Lectern> {
        if let Some(url) = self.postgres_url() {
            return self.open_store(None, lectern::PgStore::open(url)?);
        }
        self.open_store(
            None,
            lectern::SqliteStore::open(&self.db)?.cache_kib(8 * 1024)?,
        )
    }

    fn open_store(
        &self,
        policy: Option<&Path>,
        store: impl lectern::Backend + 'static,
    ) -> Result<Lectern> {
        let keyring = self.keyring(&store)?;
        let mut config = self.config()?;
        // A policy named for this command replaces the library's, whichever
        // place names that.
        if policy.is_some() {
            config.policy = None;
        }
        let mut library = Lectern::open(&self.host, store, keyring, config)?;
        if let Some(path) = policy {
            let filter = library
                .plugin_at(&path.to_string_lossy())?
                .into_privacy_filter()?;
            library = library.with_policy(filter);
        }
        Ok(library)
    }

    /// The library over a store that must be there already; `next` says
    /// what to do when it is not.
    pub fn open_existing(&self, policy: Option<&Path>, next: &str) -> Result<Lectern> {
        if !self.store_exists() {
            return Err(lectern::Error::NotFound(format!(
                "no store at {}; {next}",
                self.store_name()
            ))
            .into());
        }
        self.open(policy)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Plugin log lines are `lectern::plugin`; wasmtime's and cranelift's
    // internals stay quiet until -vvv.
    let level = match cli.verbose {
        0 => "warn",
        1 => "warn,lectern=info,lectern::plugin=debug",
        2 => "warn,lectern=debug",
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
        // The command said what happened; only the code is left to give.
        Err(e) if e.downcast_ref::<Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// An outcome that is not an error but that a scheduler must see, such as
/// an import that completed with records skipped (3).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The exit code for a scheduler, after sysexits.h: 65 bad input, 66 not
/// found, 70 a plugin failed, 74 the store failed, 77 denied, 78 bad
/// configuration, 1 anything else. Usage errors exit with 2; an import
/// that completed with records skipped exits with 3.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<lectern::Error>().map(lectern::Error::kind) {
        Some(ErrorKind::Invalid) => 65,
        Some(ErrorKind::NotFound) => 66,
        Some(ErrorKind::Plugin) => 70,
        Some(ErrorKind::Store) => 74,
        Some(ErrorKind::Denied) => 77,
        Some(ErrorKind::Config) => 78,
        None => 1,
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut builder = Host::builder();
    if !cli.no_cache
        && let Some(dir) = cli.cache_dir.clone().or_else(default_cache_dir)
    {
        builder = builder.cache_dir(dir);
    }
    let ctx = Ctx {
        host: builder.build()?,
        db: cli.db,
        key_file: cli.key_file,
        config: cli.config,
        json: cli.json,
    };
    match cli.command {
        Command::Data(c) => data::run(&ctx, c),
        Command::Score(c) => score::run(&ctx, c),
        Command::Privacy(c) => privacy::run(&ctx, c),
        Command::Notices(c) => notices::run(&ctx, c),
        Command::Report { command } => report::run(&ctx, command),
        Command::Plugin { command } => plugin::run(&ctx, command),
        Command::Cache { command } => plugin::cache(&ctx, command),
        Command::Trust { command } => registry::trust(&ctx, command),
        Command::Policy { command } => registry::policy(&ctx, command),
        Command::Serve => serve::serve(&ctx),
        Command::Worker(args) => worker::worker(&ctx, args),
        Command::Staff { command } => serve::staff(&ctx, command),
        Command::Consortium { command } => consortium::run(&ctx, command),
        Command::Jobs { job, limit } => serve::jobs(&ctx, job, limit),
        Command::Campaign { command } => serve::campaign(&ctx, command),
        Command::Registrations { role, koha_csv } => serve::registrations(&ctx, &role, koha_csv),
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

/// The date to work as of: the one given, or today (UTC).
pub fn today_or(date: Option<chrono::NaiveDate>) -> chrono::NaiveDate {
    date.unwrap_or_else(|| chrono::Utc::now().date_naive())
}
