//! `lectern.toml`: the library's notice rules and how each channel is
//! delivered. Parsing is strict: an unknown key is an error that names the
//! file, the line and the key. [`Config`] shows every key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{
    DateTime, Days, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone as _,
    Utc,
};
use serde::Deserialize;

use crate::model::Channel;

/// The whole configuration file, `lectern.toml`. Every key is optional; the
/// values shown under `[notify]` and `[deliver]` are the defaults, but for
/// the clock, which is UTC unless set. A channel without a table is not
/// delivered.
///
/// ```toml
/// [notify]
/// timezone = "Asia/Shanghai"   # the library's clock (or utc-offset = "+08:00")
/// quiet-hours = "21:00-08:00"  # nothing but print goes out in between
/// daily-limit = 3              # marketing stops at this many messages a day
/// due-soon-days = 3            # advance notice, unless the patron chose
/// overdue-steps = [1, 7, 14]
/// hold-expiring-days = 2
/// membership-expiring-days = 30
/// win-back = ["churn-risk/high-risk"]
/// win-back-every-days = 90
///
/// [deliver]
/// max-attempts = 6
/// retry-after-secs = 60        # doubles after every failed attempt
/// lease-secs = 300
/// parallel = 4                 # messages in flight, one connection each
///
/// [channels.email]
/// transport = "smtp"
/// host = "mail.example.org"
/// port = 587
/// tls = "starttls"             # or "tls", or "none" for a relay on localhost
/// from = "City Library <library@example.org>"
/// username = "library"
/// password-env = "LECTERN_SMTP_PASSWORD"
/// timeout-secs = 30            # for one conversation or request
///
/// [channels.sms]
/// transport = "webhook"
/// url = "https://sms-gateway.example.org/send"
/// secret-env = "LECTERN_SMS_SECRET"
///
/// [channels.print]
/// transport = "maildir"
/// dir = "print-queue"
///
/// [privacy]
/// policy = "plugins/baseline-privacy"  # a privacy-filter plugin; without
///                                       # one, nothing leaves the host
/// k-floor = 5                           # no aggregate shows a smaller group
///
/// [segments]
/// key-readers = ["key-reader"]          # what reports list as key readers
/// lapsed = ["lapsing", "at-risk", "dormant", "high-risk"]  # and to win back
/// ```
///
/// Secrets come from the environment (`password-env`, `secret-env`) or,
/// less wisely, from the file itself (`password`, `secret`). They are never
/// logged or printed.
#[derive(Debug, Clone)]
pub struct Config {
    /// When notices are due, and the limits on them.
    pub notify: NoticeRules,
    /// How delivery retries.
    pub deliver: DeliveryRules,
    /// How each channel is delivered. A channel that is not here is not
    /// delivered: its messages wait in the outbox.
    pub channels: BTreeMap<Channel, TransportConfig>,
    /// The privacy-filter plugin in force for every pipeline: a directory,
    /// its `plugin.toml` or its `.wasm`. Without one, a built-in policy
    /// that lets no field out is in force.
    pub policy: Option<PathBuf>,
    /// Which scorer segments mean what, for reports.
    pub segments: Segments,
    /// The lockfile that pins installed plugins' digests; the front end
    /// puts it beside the store (`lectern.lock` for `lectern.db`). Without
    /// one, installed plugins are pinned by the store alone.
    pub lockfile: Option<PathBuf>,
    /// The smallest group any aggregate may show (`[privacy] k-floor`): a
    /// request may ask for a larger k, never a smaller one.
    pub k_floor: usize,
    /// How `lectern serve` runs (`[serve]`).
    pub serve: ServeRules,
    /// The reader-facing pages (`[readers]`).
    pub readers: ReaderRules,
}

/// `[readers]`: the pages readers reach from their messages, register on
/// and answer surveys on, served by `lectern serve`.
///
/// ```toml
/// [readers]
/// public-url = "https://crm.library.example"  # where readers reach the service
/// link-days = 30               # how long a link in a message works
/// verify-hours = 48            # how long a registration's email link works
/// categories = ["public", "undergraduate", "graduate", "faculty"]
/// subjects = ["chemistry", "history"]   # interests offered on the form
/// branch = "MAIN"              # home branch of readers who register online
/// registrations-per-hour = 5   # per client address
/// surveys = ["surveys/reading.toml"]
/// campaigns = ["campaigns/welcome.toml"]
/// ```
///
/// Without `public-url` messages carry no links and the pages are off.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderRules {
    /// The service's address as readers reach it, without a trailing `/`.
    pub public_url: Option<String>,
    /// Days a link in a message works.
    pub link_days: u32,
    /// Hours a registration's verification link works.
    pub verify_hours: u32,
    /// The categories a reader may choose when registering; the first is
    /// the default.
    pub categories: Vec<String>,
    /// The subjects offered as interests.
    pub subjects: Vec<String>,
    /// The home branch of readers who register online.
    pub branch: Option<String>,
    /// Registrations accepted per client address per hour.
    pub registrations_per_hour: u32,
    /// The survey definitions the library offers.
    pub surveys: Vec<PathBuf>,
    /// The campaign definitions the library runs.
    pub campaigns: Vec<PathBuf>,
}

impl Default for ReaderRules {
    fn default() -> Self {
        ReaderRules {
            public_url: None,
            link_days: 30,
            verify_hours: 48,
            categories: vec!["public".into()],
            subjects: Vec::new(),
            branch: None,
            registrations_per_hour: 5,
            surveys: Vec::new(),
            campaigns: Vec::new(),
        }
    }
}

/// `[serve]`: how the service listens, what its scheduler runs and when.
///
/// ```toml
/// [serve]
/// listen = "127.0.0.1:8750"
/// body-limit-kb = 1024          # a larger request body is refused
/// messengers = ["notices"]      # compose the notices events cause
/// scorers = ["engagement"]      # scored every day at score-at
/// sync-at = "01:00"             # lectern sync koha, from LECTERN_KOHA_* [default: none]
/// score-at = "02:00"            # times on the library's clock ([notify])
/// notify-at = "07:00"
/// retention-at = "03:00"
/// deliver-every-secs = 5
/// inbox-every-secs = 2
/// alma-secret-env = "LECTERN_ALMA_SECRET"   # Alma's webhook secret
/// auth-failures-per-minute = 10 # per client address, then 429
/// koha-anonymous-patron = 12    # Koha's AnonymousPatron borrowernumber
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServeRules {
    /// The address to listen on.
    pub listen: String,
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// Messenger plugins (installed ids or directories) for the notices
    /// events and the daily notify cause.
    pub messengers: Vec<String>,
    /// Scorer plugins run every day at `score_at`.
    pub scorers: Vec<String>,
    /// When the daily sync from Koha runs (`lectern sync koha`, with its
    /// URL, client id and secret from LECTERN_KOHA_URL,
    /// LECTERN_KOHA_CLIENT_ID and LECTERN_KOHA_CLIENT_SECRET); `None`, the
    /// default, for no sync.
    pub sync_at: Option<NaiveTime>,
    /// When the daily score runs, on the library's clock.
    pub score_at: NaiveTime,
    /// When the daily notify runs.
    pub notify_at: NaiveTime,
    /// When retention runs.
    pub retention_at: NaiveTime,
    /// How often delivery runs.
    pub deliver_every: Duration,
    /// How often the inbox is processed.
    pub inbox_every: Duration,
    /// The environment variable that holds Alma's webhook secret.
    pub alma_secret_env: Option<String>,
    /// Failed authentications allowed per client address per minute.
    pub auth_failures_per_minute: u32,
    /// Koha's `AnonymousPatron` borrowernumber: a check-in by it is kept
    /// with no patron.
    pub koha_anonymous_patron: Option<String>,
}

impl Default for ServeRules {
    fn default() -> Self {
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
        ServeRules {
            listen: "127.0.0.1:8750".into(),
            body_limit: 1024 * 1024,
            messengers: Vec::new(),
            scorers: Vec::new(),
            sync_at: None,
            score_at: at(2, 0),
            notify_at: at(7, 0),
            retention_at: at(3, 0),
            deliver_every: Duration::from_secs(5),
            inbox_every: Duration::from_secs(2),
            alma_secret_env: None,
            auth_failures_per_minute: 10,
            koha_anonymous_patron: None,
        }
    }
}

/// The smallest k a library allows unless its configuration says
/// otherwise (`[privacy] k-floor`).
pub const DEFAULT_K_FLOOR: usize = 5;

impl Default for Config {
    fn default() -> Self {
        Config {
            notify: NoticeRules::default(),
            deliver: DeliveryRules::default(),
            channels: BTreeMap::new(),
            policy: None,
            segments: Segments::default(),
            lockfile: None,
            k_floor: DEFAULT_K_FLOOR,
            serve: ServeRules::default(),
            readers: ReaderRules::default(),
        }
    }
}

/// Which scorer segments mean "key reader" and "lapsed", for the reports
/// that list them. The host has no segment names of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// Segments whose readers are key readers (重点读者).
    pub key_readers: Vec<String>,
    /// Segments whose readers have lapsed or are lapsing, most urgent
    /// first: the order ranks the list.
    pub lapsed: Vec<String>,
}

impl Default for Segments {
    fn default() -> Self {
        Segments {
            key_readers: vec!["key-reader".into()],
            lapsed: ["lapsing", "at-risk", "dormant", "high-risk"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// When notices are due, and the limits on them.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeRules {
    /// The library's clock: its days, quiet hours and daily limits are on
    /// it.
    pub clock: Clock,
    /// Nothing but print goes out from the first time to the second.
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    /// Marketing messages stop once a patron has this many messages queued
    /// for the day. Transactional notices always go.
    pub daily_limit: usize,
    /// Days of notice before a due date, for patrons who did not choose.
    pub due_soon_days: u32,
    /// Days overdue at which a reminder goes, escalating.
    pub overdue_steps: Vec<u32>,
    /// Days before a waiting hold expires to remind the patron.
    pub hold_expiring_days: u32,
    /// Days before a membership expires to tell the patron.
    pub membership_expiring_days: u32,
    /// Segments whose readers get a win-back message, as `scorer/segment`.
    pub win_back: Vec<(String, String)>,
    /// A lapsed reader gets a win-back message at most once in this many
    /// days.
    pub win_back_every_days: u32,
}

impl Default for NoticeRules {
    fn default() -> Self {
        NoticeRules {
            clock: Clock::default(),
            quiet_hours: Some((
                NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
                NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            )),
            daily_limit: 3,
            due_soon_days: 3,
            overdue_steps: vec![1, 7, 14],
            hold_expiring_days: 2,
            membership_expiring_days: 30,
            win_back: vec![("churn-risk".into(), "high-risk".into())],
            win_back_every_days: 90,
        }
    }
}

/// The library's clock: an IANA time zone, which follows daylight saving,
/// or a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// A time zone, such as `Asia/Shanghai` or `America/Chicago`.
    Zone(chrono_tz::Tz),
    /// A fixed offset, such as `+08:00`.
    Offset(FixedOffset),
}

impl Default for Clock {
    /// UTC.
    fn default() -> Self {
        Clock::Offset(FixedOffset::east_opt(0).expect("zero is a valid offset"))
    }
}

impl Clock {
    /// The library's local time at `t`.
    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Clock::Zone(tz) => t.with_timezone(tz).naive_local(),
            Clock::Offset(o) => t.with_timezone(o).naive_local(),
        }
    }

    /// The moment the library's clock shows `local`. A time that happens
    /// twice (when the clocks go back) is the first; one that never happens
    /// (when they go forward) is taken an hour later.
    pub fn utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let pick = |l: NaiveDateTime| -> Option<DateTime<Utc>> {
            match self {
                Clock::Zone(tz) => tz
                    .from_local_datetime(&l)
                    .earliest()
                    .map(|d| d.with_timezone(&Utc)),
                Clock::Offset(o) => o
                    .from_local_datetime(&l)
                    .earliest()
                    .map(|d| d.with_timezone(&Utc)),
            }
        };
        pick(local)
            .or_else(|| pick(local + chrono::Duration::hours(1)))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local))
    }

    /// The offset from UTC at `t`, as `+08:00`.
    pub fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        match self {
            Clock::Zone(tz) => t.with_timezone(tz).offset().fix(),
            Clock::Offset(o) => *o,
        }
    }
}

/// How delivery retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRules {
    /// Attempts before a message that keeps failing is given up as failed.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles after each failure, up to
    /// a day.
    pub retry_after: Duration,
    /// How long a deliverer holds a message it is sending. One that dies
    /// leaves it to be taken again after this long.
    pub lease: Duration,
    /// Messages in flight at once, each on its own connection. A deliverer
    /// killed mid-send re-sends at most this many messages, each once.
    pub parallel: usize,
}

impl Default for DeliveryRules {
    fn default() -> Self {
        DeliveryRules {
            max_attempts: 6,
            retry_after: Duration::from_secs(60),
            lease: Duration::from_secs(300),
            parallel: 4,
        }
    }
}

/// A secret, from the environment or the file. Never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// TLS towards an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same machine.
    None,
    /// STARTTLS, required (port 587).
    Starttls,
    /// TLS from the start (port 465).
    Tls,
}

/// How one channel is delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportConfig {
    /// Email to an SMTP server.
    Smtp {
        /// The server.
        host: String,
        /// Its port.
        port: u16,
        /// TLS.
        tls: SmtpTls,
        /// The sender, as `Name <address>`.
        from: String,
        /// Login, if the server needs one.
        credentials: Option<(String, Secret)>,
        /// How long one conversation may take.
        timeout: Duration,
    },
    /// An HTTP POST of JSON, signed with HMAC-SHA256.
    Webhook {
        /// Where to.
        url: String,
        /// The signing key.
        secret: Secret,
        /// How long one request may take.
        timeout: Duration,
    },
    /// A file per message in a maildir (`tmp`, `new`, `cur`).
    Maildir {
        /// The maildir.
        dir: PathBuf,
    },
}

impl TransportConfig {
    /// The transport's name, as in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Smtp { .. } => "smtp",
            TransportConfig::Webhook { .. } => "webhook",
            TransportConfig::Maildir { .. } => "maildir",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    deliver: RawDeliver,
    #[serde(default)]
    channels: BTreeMap<String, RawChannel>,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    segments: RawSegments,
    #[serde(default)]
    serve: RawServe,
    #[serde(default)]
    readers: RawReaders,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReaders {
    public_url: Option<String>,
    link_days: Option<u32>,
    verify_hours: Option<u32>,
    categories: Option<Vec<String>>,
    subjects: Option<Vec<String>>,
    branch: Option<String>,
    registrations_per_hour: Option<u32>,
    surveys: Option<Vec<PathBuf>>,
    campaigns: Option<Vec<PathBuf>>,
}

impl RawReaders {
    fn rules(self, base: &Path) -> Result<ReaderRules> {
        let d = ReaderRules::default();
        let public_url = match self.public_url {
            None => None,
            Some(u) => {
                let trimmed = u.trim().trim_end_matches('/').to_string();
                let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
                    && trimmed
                        .parse::<http::Uri>()
                        .is_ok_and(|p| p.host().is_some())
                    && !trimmed.contains(['?', '#']);
                if !ok {
                    bail!(
                        "`readers.public-url` = {u:?}: give the address readers reach the \
                         service at, such as \"https://crm.library.example\""
                    );
                }
                Some(trimmed)
            }
        };
        let range = |key: &str, v: Option<u32>, default: u32, max: u32| -> Result<u32> {
            match v {
                None => Ok(default),
                Some(n) if (1..=max).contains(&n) => Ok(n),
                Some(n) => bail!("`readers.{key}` = {n}: give 1 to {max}"),
            }
        };
        let categories = self.categories.unwrap_or(d.categories);
        if categories.is_empty() {
            bail!("`readers.categories` is empty: give at least one category");
        }
        Ok(ReaderRules {
            public_url,
            link_days: range("link-days", self.link_days, d.link_days, 365)?,
            verify_hours: range("verify-hours", self.verify_hours, d.verify_hours, 720)?,
            categories,
            subjects: self.subjects.unwrap_or_default(),
            branch: self.branch,
            registrations_per_hour: range(
                "registrations-per-hour",
                self.registrations_per_hour,
                d.registrations_per_hour,
                10_000,
            )?,
            surveys: self
                .surveys
                .unwrap_or_default()
                .into_iter()
                .map(|p| base.join(p))
                .collect(),
            campaigns: self
                .campaigns
                .unwrap_or_default()
                .into_iter()
                .map(|p| base.join(p))
                .collect(),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServe {
    listen: Option<String>,
    body_limit_kb: Option<usize>,
    messengers: Option<Vec<String>>,
    scorers: Option<Vec<String>>,
    sync_at: Option<String>,
    score_at: Option<String>,
    notify_at: Option<String>,
    retention_at: Option<String>,
    deliver_every_secs: Option<u64>,
    inbox_every_secs: Option<u64>,
    alma_secret_env: Option<String>,
    auth_failures_per_minute: Option<u32>,
    koha_anonymous_patron: Option<toml::Value>,
}

impl RawServe {
    fn rules(self) -> Result<ServeRules> {
        let d = ServeRules::default();
        let time = |key: &str, v: Option<String>, default: NaiveTime| -> Result<NaiveTime> {
            match v {
                None => Ok(default),
                Some(s) => NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| {
                    anyhow::anyhow!("`serve.{key}` = {s:?}: write a time of day such as \"02:00\"")
                }),
            }
        };
        let secs = |key: &str, v: Option<u64>, default: Duration| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(n @ 1..=86_400) => Ok(Duration::from_secs(n)),
                Some(n) => bail!("`serve.{key}` = {n}: give 1 to 86400 seconds"),
            }
        };
        Ok(ServeRules {
            listen: self.listen.unwrap_or(d.listen),
            body_limit: match self.body_limit_kb {
                None => d.body_limit,
                Some(n @ 1..=65_536) => n * 1024,
                Some(n) => bail!("`serve.body-limit-kb` = {n}: give 1 to 65536"),
            },
            messengers: self.messengers.unwrap_or_default(),
            scorers: self.scorers.unwrap_or_default(),
            sync_at: match self.sync_at {
                Some(t) => Some(time("sync-at", Some(t), NaiveTime::MIN)?),
                None => None,
            },
            score_at: time("score-at", self.score_at, d.score_at)?,
            notify_at: time("notify-at", self.notify_at, d.notify_at)?,
            retention_at: time("retention-at", self.retention_at, d.retention_at)?,
            deliver_every: secs(
                "deliver-every-secs",
                self.deliver_every_secs,
                d.deliver_every,
            )?,
            inbox_every: secs("inbox-every-secs", self.inbox_every_secs, d.inbox_every)?,
            alma_secret_env: self.alma_secret_env,
            auth_failures_per_minute: self
                .auth_failures_per_minute
                .unwrap_or(d.auth_failures_per_minute)
                .max(1),
            koha_anonymous_patron: match self.koha_anonymous_patron {
                None => None,
                Some(toml::Value::Integer(n)) => Some(n.to_string()),
                Some(toml::Value::String(s)) => Some(s),
                Some(other) => bail!(
                    "`serve.koha-anonymous-patron` = {other}: give the borrowernumber of Koha's \
                     AnonymousPatron"
                ),
            },
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPrivacy {
    policy: Option<PathBuf>,
    k_floor: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSegments {
    key_readers: Option<Vec<String>>,
    lapsed: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNotify {
    timezone: Option<String>,
    utc_offset: Option<String>,
    quiet_hours: Option<String>,
    daily_limit: Option<usize>,
    due_soon_days: Option<u32>,
    overdue_steps: Option<Vec<u32>>,
    hold_expiring_days: Option<u32>,
    membership_expiring_days: Option<u32>,
    win_back: Option<Vec<String>>,
    win_back_every_days: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDeliver {
    max_attempts: Option<u32>,
    retry_after_secs: Option<u64>,
    lease_secs: Option<u64>,
    parallel: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawChannel {
    transport: String,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<SmtpTls>,
    from: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    url: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
    timeout_secs: Option<u64>,
    dir: Option<PathBuf>,
    /// Allows plain HTTP or SMTP without TLS to a host other than this
    /// machine.
    #[serde(default)]
    insecure: bool,
}

impl Config {
    /// Reads `path`. Relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> crate::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(crate::Error::config)?;
        Config::parse_text(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("{} is not a valid lectern configuration", path.display()))
            .map_err(crate::Error::config)
    }

    /// Parses a configuration; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> crate::Result<Config> {
        Config::parse_text(text, base).map_err(crate::Error::config)
    }

    fn parse_text(text: &str, base: &Path) -> Result<Config> {
        let raw: Raw = from_toml(text)?;
        let d = NoticeRules::default();
        let n = raw.notify;
        let notify = NoticeRules {
            clock: match (n.timezone, n.utc_offset) {
                (Some(_), Some(_)) => {
                    bail!("give `notify.timezone` or `notify.utc-offset`, not both")
                }
                (Some(tz), None) => Clock::Zone(tz.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "`notify.timezone` = {tz:?}: not an IANA time zone; write it as \
                         \"Asia/Shanghai\" or \"America/Chicago\""
                    )
                })?),
                (None, Some(s)) => Clock::Offset(s.parse().map_err(|_| {
                    anyhow::anyhow!("`notify.utc-offset` = {s:?}: write it as `+08:00` or `-05:00`")
                })?),
                (None, None) => d.clock,
            },
            quiet_hours: match n.quiet_hours.as_deref() {
                None => d.quiet_hours,
                Some("" | "none") => None,
                Some(s) => Some(quiet_hours(s)?),
            },
            daily_limit: n.daily_limit.unwrap_or(d.daily_limit),
            due_soon_days: days("notify.due-soon-days", n.due_soon_days, d.due_soon_days)?,
            overdue_steps: match n.overdue_steps {
                Some(steps) => {
                    if steps.is_empty() || steps.contains(&0) || !steps.is_sorted() {
                        bail!(
                            "`notify.overdue-steps` = {steps:?}: give days overdue above zero, in \
                             rising order, such as [1, 7, 14]"
                        );
                    }
                    steps
                }
                None => d.overdue_steps,
            },
            hold_expiring_days: days(
                "notify.hold-expiring-days",
                n.hold_expiring_days,
                d.hold_expiring_days,
            )?,
            membership_expiring_days: n
                .membership_expiring_days
                .unwrap_or(d.membership_expiring_days),
            win_back: match n.win_back {
                Some(list) => list
                    .iter()
                    .map(|s| match s.split_once('/') {
                        Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                            Ok((a.to_string(), b.to_string()))
                        }
                        _ => bail!(
                            "`notify.win-back` entry {s:?}: write `scorer/segment`, such as \
                             \"churn-risk/high-risk\""
                        ),
                    })
                    .collect::<Result<_>>()?,
                None => d.win_back,
            },
            win_back_every_days: n
                .win_back_every_days
                .unwrap_or(d.win_back_every_days)
                .max(1),
        };
        let dd = DeliveryRules::default();
        let deliver = DeliveryRules {
            max_attempts: raw.deliver.max_attempts.unwrap_or(dd.max_attempts).max(1),
            retry_after: raw
                .deliver
                .retry_after_secs
                .map_or(dd.retry_after, Duration::from_secs),
            lease: raw
                .deliver
                .lease_secs
                .map_or(dd.lease, |s| Duration::from_secs(s.max(1))),
            parallel: match raw.deliver.parallel {
                Some(n @ 1..=64) => n,
                Some(n) => bail!("`deliver.parallel` = {n}: give 1 to 64 messages in flight"),
                None => dd.parallel,
            },
        };
        let mut channels = BTreeMap::new();
        for (name, c) in raw.channels {
            let channel: Channel = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "`[channels.{name}]`: unknown channel; the channels are email, sms, \
                         webhook and print"
                    )
                })?;
            channels.insert(channel, transport(&name, c, base)?);
        }
        let ds = Segments::default();
        Ok(Config {
            notify,
            deliver,
            channels,
            policy: raw.privacy.policy.map(|p| base.join(p)),
            segments: Segments {
                key_readers: raw.segments.key_readers.unwrap_or(ds.key_readers),
                lapsed: raw.segments.lapsed.unwrap_or(ds.lapsed),
            },
            lockfile: None,
            k_floor: match raw.privacy.k_floor {
                Some(0) => {
                    bail!("`privacy.k-floor` = 0: give the smallest group to show, 1 or more")
                }
                Some(k) => k,
                None => DEFAULT_K_FLOOR,
            },
            serve: raw.serve.rules()?,
            readers: raw.readers.rules(base)?,
        })
    }
}

/// `text` as TOML into `T`, or an error that gives the line and what is
/// wrong there.
pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => anyhow::anyhow!("line {l}: {}", e.message().trim_end()),
            None => anyhow::anyhow!("{}", e.message().trim_end()),
        }
    })
}

fn days(key: &str, value: Option<u32>, default: u32) -> Result<u32> {
    match value {
        Some(v) if v > 30 => bail!("`{key}` = {v}: at most 30 days"),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

fn quiet_hours(s: &str) -> Result<(NaiveTime, NaiveTime)> {
    let bad = || {
        anyhow::anyhow!(
            "`notify.quiet-hours` = {s:?}: write it as `21:00-08:00`, or \"none\" for no quiet hours"
        )
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let t = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
    Ok((t(a)?, t(b)?))
}

fn transport(name: &str, c: RawChannel, base: &Path) -> Result<TransportConfig> {
    let need = |v: Option<String>, key: &str| {
        v.ok_or_else(|| {
            anyhow::anyhow!(
                "`[channels.{name}]` with transport = {:?} needs `{key}`",
                c.transport
            )
        })
    };
    let secret = |plain: Option<String>,
                  env: Option<String>,
                  key: &str|
     -> Result<Option<Secret>> {
        match (plain, env) {
            (Some(_), Some(_)) => {
                bail!("`[channels.{name}]`: give `{key}` or `{key}-env`, not both")
            }
            (Some(p), None) => Ok(Some(Secret(p))),
            (None, Some(var)) => match std::env::var(&var) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
                _ => bail!(
                    "`[channels.{name}]`: `{key}-env` names ${var}, which is not set; export it \
                     before running lectern"
                ),
            },
            (None, None) => Ok(None),
        }
    };
    let timeout = Duration::from_secs(c.timeout_secs.unwrap_or(30).max(1));
    Ok(match c.transport.as_str() {
        "smtp" => {
            let tls = c.tls.unwrap_or(SmtpTls::Starttls);
            let password = secret(c.password.clone(), c.password_env.clone(), "password")?;
            let credentials = match (c.username.clone(), password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => bail!("`[channels.{name}]`: give both `username` and a password, or neither"),
            };
            let host = need(c.host.clone(), "host")?;
            if tls == SmtpTls::None && !loopback(&host) && !c.insecure {
                bail!(
                    "`[channels.{name}]` sends mail to {host} without TLS, so passwords and \
                     letters cross the network in clear; use tls = \"starttls\" or \"tls\", \
                     or add insecure = true if the network is yours"
                );
            }
            let from = need(c.from.clone(), "from")?;
            from.parse::<lettre::message::Mailbox>()
                .map_err(|e| anyhow::anyhow!("`[channels.{name}]` from = {from:?}: {e}"))?;
            TransportConfig::Smtp {
                host,
                port: c.port.unwrap_or(match tls {
                    SmtpTls::None => 25,
                    SmtpTls::Starttls => 587,
                    SmtpTls::Tls => 465,
                }),
                tls,
                from,
                credentials,
                timeout,
            }
        }
        "webhook" => {
            let url = need(c.url.clone(), "url")?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("`[channels.{name}]` url = {url:?}: give an http:// or https:// URL");
            }
            if let Some(rest) = url.strip_prefix("http://") {
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        h
                    } else {
                        host
                    }
                });
                if !loopback(host) && !c.insecure {
                    bail!(
                        "`[channels.{name}]` url = {url:?} is plain HTTP to another machine, so \
                         messages cross the network in clear; use https://, or add \
                         insecure = true if the network is yours"
                    );
                }
            }
            TransportConfig::Webhook {
                url,
                secret: secret(c.secret.clone(), c.secret_env.clone(), "secret")?.ok_or_else(
                    || {
                        anyhow::anyhow!(
                            "`[channels.{name}]`: a webhook is signed; give `secret-env` (or `secret`)"
                        )
                    },
                )?,
                timeout,
            }
        }
        "maildir" => {
            let dir = c.dir.clone().ok_or_else(|| {
                anyhow::anyhow!("`[channels.{name}]` with transport = \"maildir\" needs `dir`")
            })?;
            TransportConfig::Maildir {
                dir: if dir.is_absolute() {
                    dir
                } else {
                    base.join(dir)
                },
            }
        }
        other => bail!(
            "`[channels.{name}]` transport = {other:?}: the transports are smtp, webhook and maildir"
        ),
    })
}

/// Whether `host` is this machine.
fn loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The library's day at `now`.
pub fn local_day(rules: &NoticeRules, now: DateTime<Utc>) -> NaiveDate {
    rules.clock.local(now).date()
}

/// The end of quiet hours, if `now` falls in them; `None` otherwise.
pub fn quiet_until(rules: &NoticeRules, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (start, end) = rules.quiet_hours?;
    let local = rules.clock.local(now);
    let t = local.time();
    let quiet = if start <= end {
        t >= start && t < end
    } else {
        t >= start || t < end
    };
    if !quiet {
        return None;
    }
    let mut day = local.date();
    if t >= end {
        day = day + Days::new(1);
    }
    Some(rules.clock.utc(day.and_time(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_and_smtp_without_tls_to_another_machine_need_insecure() {
        let parse = |text: &str| Config::parse(text, Path::new("/lib"));
        let hook = |url: &str, extra: &str| {
            format!(
                "[channels.sms]\ntransport = \"webhook\"\nurl = \"{url}\"\nsecret = \"s\"\n{extra}"
            )
        };
        assert!(parse(&hook("http://127.0.0.1:9000/send", "")).is_ok());
        assert!(parse(&hook("http://localhost/send", "")).is_ok());
        assert!(parse(&hook("https://gateway.example.org/send", "")).is_ok());
        let err = parse(&hook("http://gateway.example.org/send", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("insecure = true"), "{err}");
        assert!(
            parse(&hook(
                "http://gateway.example.org/send",
                "insecure = true\n"
            ))
            .is_ok()
        );
        let smtp = |host: &str| {
            format!(
                "[channels.email]\ntransport = \"smtp\"\nhost = \"{host}\"\ntls = \"none\"\n\
                 from = \"Library <l@example.org>\"\n"
            )
        };
        assert!(parse(&smtp("127.0.0.1")).is_ok());
        assert!(parse(&smtp("mail.example.org")).is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse(
            "[notify]\nquiet-hours = \"22:30-07:00\"\noverdue-steps = [3, 10]\n\
             [channels.print]\ntransport = \"maildir\"\ndir = \"out\"\n",
            Path::new("/lib"),
        )
        .unwrap();
        assert_eq!(c.notify.overdue_steps, vec![3, 10]);
        assert_eq!(c.notify.due_soon_days, 3);
        assert_eq!(
            c.notify.quiet_hours.unwrap().0,
            NaiveTime::from_hms_opt(22, 30, 0).unwrap()
        );
        assert_eq!(
            c.channels[&Channel::Print],
            TransportConfig::Maildir {
                dir: PathBuf::from("/lib/out")
            }
        );
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = Config::parse("[notify]\ndaily-limt = 3\n", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("daily-limt"), "{e}");
        let e =
            Config::parse("[channels.fax]\ntransport = \"smtp\"\n", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("unknown channel"), "{e}");
        let e = Config::parse(
            "[channels.sms]\ntransport = \"webhook\"\nurl = \"https://x\"\nsecret-env = \"LECTERN_TEST_UNSET_VAR\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("LECTERN_TEST_UNSET_VAR"), "{e}");
    }

    #[test]
    fn a_time_zone_follows_daylight_saving() {
        let c =
            Config::parse("[notify]\ntimezone = \"America/Chicago\"\n", Path::new(".")).unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // CST in January (UTC-6), CDT in July (UTC-5).
        assert_eq!(
            c.notify.clock.local(at("2026-01-15T14:00:00Z")).to_string(),
            "2026-01-15 08:00:00"
        );
        assert_eq!(
            c.notify.clock.local(at("2026-07-15T14:00:00Z")).to_string(),
            "2026-07-15 09:00:00"
        );
        // 02:30 on 8 March 2026 never happens in Chicago: an hour later.
        let gap = "2026-03-08T02:30:00".parse::<NaiveDateTime>().unwrap();
        assert_eq!(c.notify.clock.utc(gap), at("2026-03-08T08:30:00Z"));
        let e =
            Config::parse("[notify]\ntimezone = \"Mars/Olympus\"\n", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("IANA"), "{e}");
    }

    #[test]
    fn secrets_are_never_shown() {
        let c = Config::parse(
            "[channels.sms]\ntransport = \"webhook\"\nurl = \"https://x\"\nsecret = \"hunter2\"\n",
            Path::new("."),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
