//! Delivery: takes messages from the outbox one at a time and hands them to
//! their channel's transport: SMTP (lettre), a signed webhook (ureq), or a
//! maildir.
//!
//! **Crash safety.** A message is marked `sending` under a lease and
//! committed before it is handed over, and marked `sent` after. Killed
//! between the two, the deliverer leaves the message `sending`; when the
//! lease runs out the next deliverer sends it again. So nothing is lost,
//! and a message is sent at most once more per crash that hits it in
//! flight; at most `[deliver] parallel` messages (4 by default) are ever
//! in flight. Where the channel takes
//! an idempotency key, the re-send is not a second delivery: webhooks carry
//! `Idempotency-Key`, a maildir file is named by the key, and SMTP sets
//! `Message-ID` from it, which a receiving server may or may not use to
//! drop the copy.
//!
//! **Letters.** On print and email, a patron's notices for one day go out
//! together, as one letter listing every item. A printed letter opens with
//! the block a window envelope shows: the patron's name, postal address and
//! card number, each as the privacy policy lets it out for the message's
//! purpose to the print channel. A maildir file names its patron only by
//! keyed token, so an erasure can find and remove it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Days, Utc};
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::audit::{AuditEntry, AuditLog};
use crate::config::{
    Config, DeliveryRules, NoticeRules, Secret, SmtpTls, TransportConfig, local_day, quiet_until,
};
use crate::links::{MessageLinks, footer};
use crate::model::{Channel, Patron};
use crate::pipeline::Pipeline;
use crate::privacy::{AccessContext, Actor, Field, Pseudonyms, Purpose};
use crate::store::{Claimed, Outbox, Settle};

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// It may work later: a connection refused, a timeout, a 4xx SMTP
    /// reply, an HTTP 5xx, 408 or 429.
    Transient(String),
    /// It will not work: a malformed address, a 5xx SMTP reply, an HTTP 4xx.
    Permanent(String),
}

/// A message as a transport sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Outgoing {
    /// The idempotency key: the same for a re-send.
    pub id: String,
    /// The channel.
    pub channel: Channel,
    /// The address on the channel: an email address or a mobile number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The library's id for the patron, only on the `webhook` channel (the
    /// library's own ILS integration); never sent to an SMS gateway or
    /// in an email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patron: Option<String>,
    /// The event kinds it is about.
    pub events: Vec<String>,
    /// The locale.
    pub locale: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// The reader's link to their preference centre, which the text also
    /// ends with; on the webhook channel, only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferences_url: Option<String>,
    /// The reader's one-click link to stop marketing (RFC 8058): an email
    /// carries it in `List-Unsubscribe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe_url: Option<String>,
    /// The patron's keyed token: a maildir file carries it, so that the
    /// patron's delivered files can be found and removed when they are
    /// erased. It is never sent on a network channel.
    #[serde(skip)]
    pub recipient: Option<String>,
}

/// Sends messages on one channel; several at once from several threads.
pub trait Transport: Send + Sync {
    /// Sends `m`.
    fn send(&self, m: &Outgoing) -> Result<(), SendError>;
}

/// Builds the transport `config` describes.
pub fn transport(config: &TransportConfig) -> Result<Box<dyn Transport>> {
    Ok(match config {
        TransportConfig::Smtp {
            host,
            port,
            tls,
            from,
            credentials,
            timeout,
        } => Box::new(Smtp::new(
            host,
            *port,
            *tls,
            from,
            credentials.clone(),
            *timeout,
        )?),
        TransportConfig::Webhook {
            url,
            secret,
            timeout,
        } => Box::new(Webhook::new(url, secret.clone(), *timeout)),
        TransportConfig::Maildir { dir } => Box::new(Maildir::new(dir.clone())?),
    })
}

/// Email over SMTP.
pub struct Smtp {
    mailer: lettre::SmtpTransport,
    from: lettre::message::Mailbox,
}

impl Smtp {
    /// Connects lazily to `host:port`.
    pub fn new(
        host: &str,
        port: u16,
        tls: SmtpTls,
        from: &str,
        credentials: Option<(String, Secret)>,
        timeout: Duration,
    ) -> Result<Smtp> {
        use lettre::SmtpTransport;
        let mut b = match tls {
            SmtpTls::None => SmtpTransport::builder_dangerous(host),
            SmtpTls::Starttls => SmtpTransport::starttls_relay(host)?,
            SmtpTls::Tls => SmtpTransport::relay(host)?,
        }
        .port(port)
        .timeout(Some(timeout));
        if let Some((user, password)) = credentials {
            b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                user,
                password.expose().to_string(),
            ));
        }
        Ok(Smtp {
            mailer: b.build(),
            from: from.parse().context("the sender address")?,
        })
    }
}

impl Transport for Smtp {
    fn send(&self, m: &Outgoing) -> Result<(), SendError> {
        check_headers(m)?;
        use lettre::Transport as _;
        use lettre::message::header::{ContentType, HeaderName, HeaderValue};
        let to =
            m.to.as_deref()
                .ok_or_else(|| SendError::Permanent("no email address".into()))?;
        let to: lettre::message::Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("bad email address `{to}`: {e}")))?;
        let language = HeaderName::new_from_ascii("Content-Language".into())
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@lectern.invalid>", m.id)))
            .raw_header(HeaderValue::new(language, m.locale.clone()))
            .header(ContentType::TEXT_PLAIN);
        if let Some(url) = &m.unsubscribe_url {
            // RFC 2369 and RFC 8058: the mail client offers a one-click
            // unsubscribe that posts `List-Unsubscribe=One-Click` to it.
            let name = |n: &str| {
                HeaderName::new_from_ascii(n.to_string())
                    .map_err(|e| SendError::Permanent(e.to_string()))
            };
            email = email
                .raw_header(HeaderValue::new(
                    name("List-Unsubscribe")?,
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    name("List-Unsubscribe-Post")?,
                    "List-Unsubscribe=One-Click".to_string(),
                ));
        }
        let email = email
            .body(m.body.clone())
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        self.mailer.send(&email).map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                SendError::Permanent(format!("the SMTP server refused it: {e}"))
            } else {
                SendError::Transient(format!("SMTP: {e}"))
            }
        })
    }
}

/// A signed HTTP POST of the message as JSON.
///
/// Headers: `Idempotency-Key` (the message's key), `X-Lectern-Timestamp`
/// (Unix seconds) and `X-Lectern-Signature: sha256=<hex>`, the
/// HMAC-SHA256 under the shared secret of `<timestamp>.<body>`. A receiver
/// recomputes it, compares in constant time, and rejects old timestamps.
pub struct Webhook {
    agent: ureq::Agent,
    url: String,
    secret: Secret,
}

impl Webhook {
    /// A webhook to `url`, signed with `secret`.
    pub fn new(url: &str, secret: Secret, timeout: Duration) -> Webhook {
        // A redirect would resend the signed message (as a GET, with its
        // signature) to an address nobody configured: never follow one.
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build();
        Webhook {
            agent: ureq::Agent::new_with_config(config),
            url: url.to_string(),
            secret,
        }
    }
}

/// The signature a webhook carries: hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl Transport for Webhook {
    fn send(&self, m: &Outgoing) -> Result<(), SendError> {
        check_headers(m)?;
        let body = serde_json::to_vec(m).map_err(|e| SendError::Permanent(e.to_string()))?;
        let ts = Utc::now().timestamp();
        let signature = webhook_signature(self.secret.expose().as_bytes(), ts, &body);
        let response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &m.id)
            .header("X-Lectern-Timestamp", ts.to_string())
            .header("X-Lectern-Signature", format!("sha256={signature}"))
            .send(&body[..])
            .map_err(|e| SendError::Transient(format!("webhook: {e}")))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            300..=399 => Err(SendError::Permanent(format!(
                "webhook answered HTTP {status}, a redirect, which Lectern never follows; point \
                 `url` at the final address"
            ))),
            408 | 425 | 429 | 500..=599 => Err(SendError::Transient(format!(
                "webhook answered HTTP {status}"
            ))),
            _ => Err(SendError::Permanent(format!(
                "webhook answered HTTP {status}"
            ))),
        }
    }
}

/// A file per message in a maildir, for print runs and for testing. The
/// file is named by the message's key and written by rename, so a re-send
/// replaces it rather than adding a copy.
pub struct Maildir {
    dir: PathBuf,
}

impl Maildir {
    /// A maildir at `dir`, created if missing.
    pub fn new(dir: PathBuf) -> Result<Maildir> {
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create the maildir {}", dir.display()))?;
        }
        Ok(Maildir { dir })
    }
}

impl Transport for Maildir {
    fn send(&self, m: &Outgoing) -> Result<(), SendError> {
        check_headers(m)?;
        // The key becomes a file name: only the hex the outbox makes.
        if m.id.is_empty() || m.id.len() > 128 || !m.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SendError::Permanent(
                "the message's key is not the hex an outbox key is; it is never made a file name"
                    .into(),
            ));
        }
        let name = format!("{}.lectern", m.id);
        let tmp = self.dir.join("tmp").join(&name);
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            // A letter carries a name and an address: its owner's eyes only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            write!(
                f,
                "Message-ID: <{}@lectern.invalid>\nX-Lectern-Channel: {}\nX-Lectern-Events: {}\n",
                m.id,
                m.channel.as_str(),
                m.events.join(", ")
            )?;
            if let Some(to) = &m.to {
                writeln!(f, "To: {to}")?;
            }
            if let Some(token) = &m.recipient {
                writeln!(f, "{RECIPIENT_HEADER}: {token}")?;
            }
            if let Some(url) = &m.unsubscribe_url {
                writeln!(
                    f,
                    "List-Unsubscribe: <{url}>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click"
                )?;
            }
            write!(
                f,
                "Subject: {}\nContent-Language: {}\nContent-Type: text/plain; charset=utf-8\n\n{}\n",
                m.subject, m.locale, m.body
            )?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join("new").join(&name))
        };
        write().map_err(|e| SendError::Transient(format!("maildir {}: {e}", self.dir.display())))
    }
}

/// The maildir header that names a file's patron by keyed token.
const RECIPIENT_HEADER: &str = "X-Lectern-Patron";

/// Removes every message file in the maildir `dir` whose patron is
/// `token`, and returns how many went. A file is read only as far as its
/// headers.
pub(crate) fn remove_delivered(dir: &std::path::Path, token: &str) -> Result<usize> {
    use std::io::BufRead as _;
    let wanted = format!("{RECIPIENT_HEADER}: {token}");
    let mut removed = 0;
    for sub in ["new", "cur", "tmp"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            let mine = std::io::BufReader::new(file)
                .lines()
                .map_while(|l| l.ok())
                .take_while(|l| !l.is_empty())
                .any(|l| l == wanted);
            if mine {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Refuses a message whose header values (subject, locale, address) hold
/// a line break or another control character: on any transport one would
/// become a header of its own, such as `Bcc:`.
fn check_headers(m: &Outgoing) -> Result<(), SendError> {
    let fields = [
        ("subject", Some(m.subject.as_str())),
        ("locale", Some(m.locale.as_str())),
        ("address", m.to.as_deref()),
    ];
    for (name, value) in fields {
        if value.is_some_and(|v| v.chars().any(char::is_control)) {
            return Err(SendError::Permanent(format!(
                "the message's {name} holds a line break or another control character, which \
                 would forge a header; it is not sent"
            )));
        }
    }
    Ok(())
}

/// What [`Deliverer::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliverReport {
    /// Messages the channels accepted (a digest counts each message in it).
    pub sent: usize,
    /// Sends that carried them (a digest is one).
    pub sends: usize,
    /// Messages that failed for now and wait to be retried.
    pub retried: usize,
    /// Messages that failed for good.
    pub failed: usize,
    /// Messages withdrawn (consent withdrawn, channel opted out).
    pub cancelled: usize,
    /// Messages put back until later (a digest already went today).
    pub postponed: usize,
    /// Messages left waiting on channels with no transport configured.
    pub no_transport: BTreeMap<String, usize>,
    /// When the quiet hours the run ended in end, if it ended in them:
    /// messages on every channel but print wait until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_until: Option<DateTime<Utc>>,
}

/// Takes messages from the outbox and sends them.
pub struct Deliverer {
    transports: BTreeMap<Channel, Box<dyn Transport>>,
    rules: DeliveryRules,
    notice: NoticeRules,
    /// Every hand-over is recorded here before it happens: the channel as
    /// the actor, the purpose, the address field that left, and the
    /// patron's token. A hand-over whose entry cannot be written does not
    /// happen; the message waits for a retry.
    audit: (Arc<dyn AuditLog>, Pseudonyms),
    /// Asks the privacy policy what a printed letter's address block may
    /// carry, and audits the read.
    letters: Pipeline,
    /// The links to reader pages every message carries, when the library
    /// serves them (`[readers] public-url`).
    links: Option<MessageLinks>,
}

/// How long [`Deliverer::run`] goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until nothing is due now: messages waiting for a retry or for quiet
    /// hours to end stay queued.
    NothingDue,
    /// Until nothing is queued at all (waiting out retries and quiet hours),
    /// or the deadline passes.
    Empty {
        /// When to stop regardless.
        deadline: DateTime<Utc>,
    },
}

impl Deliverer {
    /// A deliverer with a transport for every channel in `config`, auditing
    /// in `audit` under `keys`.
    pub(crate) fn from_config(
        config: &Config,
        audit: Arc<dyn AuditLog>,
        keys: Pseudonyms,
        letters: Pipeline,
    ) -> Result<Deliverer> {
        let mut transports = BTreeMap::new();
        for (channel, t) in &config.channels {
            transports.insert(
                *channel,
                transport(t).with_context(|| {
                    format!(
                        "cannot set up the {} transport for {}",
                        t.kind(),
                        channel.as_str()
                    )
                })?,
            );
        }
        Ok(Deliverer {
            transports,
            rules: config.deliver.clone(),
            notice: config.notify.clone(),
            audit: (audit, keys),
            letters,
            links: None,
        })
    }

    /// A deliverer with the given transports.
    pub(crate) fn new(
        transports: BTreeMap<Channel, Box<dyn Transport>>,
        rules: DeliveryRules,
        notice: NoticeRules,
        audit: Arc<dyn AuditLog>,
        keys: Pseudonyms,
        letters: Pipeline,
    ) -> Deliverer {
        Deliverer {
            transports,
            rules,
            notice,
            audit: (audit, keys),
            letters,
            links: None,
        }
    }

    /// Makes every message carry `links`.
    pub(crate) fn with_links(mut self, links: Option<MessageLinks>) -> Deliverer {
        self.links = links;
        self
    }

    /// The wait before retry number `attempt` (1 for the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.rules
            .retry_after
            .saturating_mul(factor)
            .min(Duration::from_secs(86_400))
    }

    /// Delivers until `until`; `progress` hears after every send.
    pub fn run(
        &mut self,
        outbox: &mut dyn Outbox,
        until: Until,
        progress: &mut dyn FnMut(&DeliverReport),
    ) -> Result<DeliverReport> {
        let mut report = DeliverReport::default();
        let configured: Vec<Channel> = self.transports.keys().copied().collect();
        loop {
            let now = Utc::now();
            let quiet = quiet_until(&self.notice, now);
            let open: Vec<Channel> = configured
                .iter()
                .copied()
                .filter(|c| quiet.is_none() || *c == Channel::Print)
                .collect();
            let lease = chrono::Duration::from_std(self.rules.lease)?;
            let mut ready = Vec::new();
            let mut claimed_any = false;
            while ready.len() < self.rules.parallel {
                let batch = outbox.claim(now, now + lease, &open)?;
                if batch.is_empty() {
                    break;
                }
                claimed_any = true;
                if let Some(r) = self.prepare(outbox, batch, now, &mut report)? {
                    ready.push(r);
                }
            }
            if !claimed_any {
                let Until::Empty { deadline } = until else {
                    break;
                };
                let next = match (outbox.next_due(&configured)?, quiet) {
                    (None, _) => break,
                    (Some(n), Some(q)) => n.max(q),
                    (Some(n), None) => n,
                };
                if next > deadline {
                    break;
                }
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                std::thread::sleep(wait.clamp(Duration::from_millis(20), Duration::from_secs(5)));
                continue;
            }
            // The hand-over is audited before it happens.
            let mut audited = Vec::with_capacity(ready.len());
            for r in ready {
                match self.audit_hand_over(&r) {
                    Ok(()) => audited.push(r),
                    Err(e) => {
                        let error =
                            format!("cannot write the audit log, so nothing was sent: {e:#}");
                        let result = Err(SendError::Transient(error));
                        self.settle(outbox, r.attempt(), result, &mut report)?;
                    }
                }
            }
            let ready = audited;
            // Each message in flight on its own connection.
            let transports = &self.transports;
            let results: Vec<Result<(), SendError>> = std::thread::scope(|s| {
                let handles: Vec<_> = ready
                    .iter()
                    .map(|r| {
                        let t = &transports[&r.channel];
                        s.spawn(move || t.send(&r.outgoing))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(SendError::Transient("the sender panicked".into()))
                        })
                    })
                    .collect()
            });
            for (r, result) in ready.into_iter().zip(results) {
                self.settle(outbox, r.attempt(), result, &mut report)?;
            }
            progress(&report);
        }
        report.quiet_until = quiet_until(&self.notice, Utc::now());
        for stats in outbox.outbox_stats()? {
            let waiting = stats.queued + stats.sending;
            if waiting > 0 && !configured.iter().any(|c| c.as_str() == stats.channel) {
                report.no_transport.insert(stats.channel, waiting);
            }
        }
        Ok(report)
    }

    /// Checks a claimed batch against consent, opt-outs, the digest and
    /// the address, and settles it if it must not go; otherwise returns
    /// what to send.
    fn prepare(
        &self,
        outbox: &mut dyn Outbox,
        batch: Vec<Claimed>,
        now: DateTime<Utc>,
        report: &mut DeliverReport,
    ) -> Result<Option<Ready>> {
        // Consent and opt-outs are read again now: they may have changed
        // since the message was queued.
        let mut live = Vec::new();
        for c in batch {
            let reason = if c.marketing && !c.marketing_consent {
                Some("the patron no longer consents to marketing".to_string())
            } else if matches!(c.event_kind.as_str(), "new-arrival" | "current-awareness")
                && !c.history_consent
            {
                Some(
                    "the patron no longer consents to the use of their reading history, which \
                     this message was built on"
                        .to_string(),
                )
            } else if c.opted_out.contains(&c.channel) {
                Some(format!("the patron opted out of {}", c.channel.as_str()))
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    outbox.settle(&[c.id], &Settle::Cancelled { reason }, now)?;
                    report.cancelled += 1;
                }
                None => live.push(c),
            }
        }
        let Some(first) = live.first() else {
            return Ok(None);
        };
        let ids: Vec<i64> = live.iter().map(|c| c.id).collect();
        if first.digest {
            let today = local_day(&self.notice, now);
            let day_start = self
                .notice
                .clock
                .utc(today.and_time(chrono::NaiveTime::MIN));
            if outbox.digest_sent_since(&first.patron, first.channel, day_start)? {
                let tomorrow = self
                    .notice
                    .clock
                    .utc((today + Days::new(1)).and_time(chrono::NaiveTime::MIN));
                outbox.settle(
                    &ids,
                    &Settle::Postpone {
                        not_before: tomorrow,
                    },
                    now,
                )?;
                report.postponed += ids.len();
                return Ok(None);
            }
        }
        let to = match first.channel {
            Channel::Email => first.email.clone(),
            Channel::Sms => first.phone.clone(),
            Channel::Webhook | Channel::Print => None,
        };
        if to.is_none() && matches!(first.channel, Channel::Email | Channel::Sms) {
            let error = format!("the patron has no address for {}", first.channel.as_str());
            outbox.settle(&ids, &Settle::Failed { error }, now)?;
            report.failed += ids.len();
            return Ok(None);
        }
        let marketing = live.iter().any(|c| c.marketing);
        let letterhead = if first.channel == Channel::Print {
            match self.letterhead(first, marketing) {
                Ok(head) => Some(head),
                Err(e) => {
                    // Without the policy's word, nothing about the patron
                    // is printed: the letter waits, as for a failed send,
                    // and is given up after the most attempts.
                    let error = format!("the privacy policy could not rule on the letter: {e}");
                    let attempt = Attempt {
                        ids: &ids,
                        channel: first.channel,
                        attempts: first.attempts,
                    };
                    self.settle(outbox, attempt, Err(SendError::Transient(error)), report)?;
                    return Ok(None);
                }
            }
        } else {
            None
        };
        let mut outgoing = outgoing(&live, to, letterhead.as_ref().map(|h| h.lines.as_slice()));
        // A maildir file on any channel names its patron by token only.
        outgoing.recipient = Some(self.audit.1.patron_token(&first.patron));
        if let Some(links) = &self.links {
            let readers: &mut dyn crate::store::Readers = outbox;
            let urls = links.for_message(readers, &first.patron, &outgoing.id, now)?;
            if first.channel != Channel::Webhook {
                let foot = footer(&outgoing.locale, &urls, first.channel == Channel::Sms);
                outgoing.body = format!("{}\n\n{foot}", outgoing.body);
            }
            outgoing.preferences_url = Some(urls.preferences);
            outgoing.unsubscribe_url = Some(urls.unsubscribe);
        }
        Ok(Some(Ready {
            patron: first.patron.clone(),
            marketing,
            channel: first.channel,
            attempts: first.attempts,
            fields: letterhead.map(|h| h.fields).unwrap_or_default(),
            outgoing,
            ids,
        }))
    }

    /// The block a printed letter opens with: the patron's name, postal
    /// address and card number, as the policy lets them out to the print
    /// channel for the letter's purpose. The read is audited.
    fn letterhead(&self, first: &Claimed, marketing: bool) -> crate::Result<Letterhead> {
        let patron = Patron {
            id: first.patron.clone(),
            name: first.name.clone(),
            card_number: first.card_number.clone(),
            address: first.address.clone(),
            ..Patron::default()
        };
        let ctx = AccessContext {
            purpose: purpose(marketing),
            actor: Actor::Channel(Channel::Print.as_str().to_string()),
        };
        let seen = self
            .letters
            .filter(&ctx, std::slice::from_ref(&patron))?
            .pop()
            .unwrap_or_default();
        let zh = first.locale.to_ascii_lowercase().starts_with("zh");
        let mut lines = Vec::new();
        let mut fields = Vec::new();
        if let Some(name) = seen.name {
            lines.push(name);
            fields.push(Field::Name);
        }
        if let Some(address) = seen.address {
            lines.extend(address);
            fields.push(Field::Address);
        }
        if let Some(card) = seen.card_number {
            lines.push(String::new());
            lines.push(if zh {
                format!("读者证号：{card}")
            } else {
                format!("Card number: {card}")
            });
            fields.push(Field::CardNumber);
        }
        Ok(Letterhead { lines, fields })
    }

    fn audit_hand_over(&self, r: &Ready) -> Result<()> {
        let (log, keys) = &self.audit;
        let fields = match r.channel {
            Channel::Email => vec![Field::Email],
            Channel::Sms => vec![Field::Phone],
            Channel::Webhook | Channel::Print => r.fields.clone(),
        };
        log.append(&AuditEntry {
            at: Utc::now(),
            context: AccessContext {
                purpose: purpose(r.marketing),
                actor: Actor::Channel(r.channel.as_str().to_string()),
            },
            fields,
            patrons: vec![keys.patron_token(&r.patron)],
        })
    }

    /// Records how an attempt went: sent, failed for good, given up after
    /// the most attempts, or retried after a backoff.
    fn settle(
        &self,
        outbox: &mut dyn Outbox,
        r: Attempt<'_>,
        result: Result<(), SendError>,
        report: &mut DeliverReport,
    ) -> Result<()> {
        let channel = r.channel.as_str();
        let now = Utc::now();
        match result {
            Ok(()) => {
                outbox.settle(r.ids, &Settle::Sent, now)?;
                report.sent += r.ids.len();
                report.sends += 1;
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(channel, %error, "message failed for good");
                outbox.settle(r.ids, &Settle::Failed { error }, now)?;
                report.failed += r.ids.len();
            }
            Err(SendError::Transient(error)) if r.attempts >= self.rules.max_attempts => {
                let error = format!("gave up after {} attempts: {error}", r.attempts);
                tracing::warn!(channel, %error, "message failed for good");
                outbox.settle(r.ids, &Settle::Failed { error }, now)?;
                report.failed += r.ids.len();
            }
            Err(SendError::Transient(error)) => {
                let not_before = now + chrono::Duration::from_std(self.backoff(r.attempts))?;
                tracing::info!(channel, %error, %not_before, "will retry");
                outbox.settle(r.ids, &Settle::Retry { not_before, error }, now)?;
                report.retried += r.ids.len();
            }
        }
        Ok(())
    }
}

/// The purpose a message is handed over for.
fn purpose(marketing: bool) -> Purpose {
    if marketing {
        Purpose::MessagingMarketing
    } else {
        Purpose::MessagingTransactional
    }
}

/// A message that passed every check, ready to send.
struct Ready {
    patron: String,
    marketing: bool,
    channel: Channel,
    attempts: u32,
    /// The patron fields the host itself adds (a letter's address block).
    fields: Vec<Field>,
    outgoing: Outgoing,
    ids: Vec<i64>,
}

impl Ready {
    fn attempt(&self) -> Attempt<'_> {
        Attempt {
            ids: &self.ids,
            channel: self.channel,
            attempts: self.attempts,
        }
    }
}

/// One attempt at messages: which, on what channel, and its number.
struct Attempt<'a> {
    ids: &'a [i64],
    channel: Channel,
    attempts: u32,
}

/// A printed letter's opening block, and the fields it carries.
struct Letterhead {
    lines: Vec<String>,
    fields: Vec<Field>,
}

/// One outgoing message from a claimed message, or from a digest or a
/// day's letter of them, under `letterhead` where one is given.
fn outgoing(batch: &[Claimed], to: Option<String>, letterhead: Option<&[String]>) -> Outgoing {
    let mut out = compose(batch, to);
    if let Some(head) = letterhead.filter(|h| !h.is_empty()) {
        out.body = format!("{}\n\n{}", head.join("\n"), out.body);
    }
    out
}

fn compose(batch: &[Claimed], to: Option<String>) -> Outgoing {
    let first = &batch[0];
    let patron = (first.channel == Channel::Webhook).then(|| first.patron.clone());
    let events = batch.iter().map(|c| c.event_kind.clone()).collect();
    if batch.len() == 1 {
        return Outgoing {
            id: first.dedupe_key.clone(),
            channel: first.channel,
            to,
            patron,
            events,
            locale: first.locale.clone(),
            subject: first.subject.clone(),
            body: first.body.clone(),
            preferences_url: None,
            unsubscribe_url: None,
            recipient: None,
        };
    }
    let mut key = Sha256::new();
    for c in batch {
        key.update(c.dedupe_key.as_bytes());
    }
    let zh = first.locale.to_ascii_lowercase().starts_with("zh");
    let subject = if zh {
        format!("图书馆今日通知（{} 条）", batch.len())
    } else {
        format!("Your library notices for today ({})", batch.len())
    };
    let body = batch
        .iter()
        .map(|c| {
            if c.subject.is_empty() {
                c.body.clone()
            } else {
                format!("{}\n\n{}", c.subject, c.body)
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n----------\n\n");
    Outgoing {
        id: hex::encode(&key.finalize()[..16]),
        channel: first.channel,
        to,
        patron,
        events,
        locale: first.locale.clone(),
        subject,
        body,
        preferences_url: None,
        unsubscribe_url: None,
        recipient: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str, subject: &str) -> Outgoing {
        Outgoing {
            id: id.into(),
            channel: Channel::Print,
            to: None,
            patron: None,
            events: vec!["overdue".into()],
            locale: "en".into(),
            subject: subject.into(),
            body: "Please bring it back.".into(),
            preferences_url: None,
            unsubscribe_url: None,
            recipient: Some("t-abc".into()),
        }
    }

    #[test]
    fn a_maildir_refuses_forged_headers_and_keys_that_are_paths() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::new(dir.path().to_path_buf()).unwrap();
        let refused = |m: Outgoing| matches!(maildir.send(&m), Err(SendError::Permanent(_)));
        assert!(refused(letter(
            "ab12",
            "Overdue\r\nBcc: everyone@example.org"
        )));
        assert!(refused(letter("../../escape", "Overdue")));
        assert!(refused(letter("", "Overdue")));
        maildir.send(&letter("ab12", "Overdue")).unwrap();
        let file = dir.path().join("new/ab12.lectern");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            1
        );
    }
}
