//! The outbox: composed messages waiting to go out, kept in the store so
//! that a crash loses none of them.
//!
//! A message moves `queued` → `sending` → `sent`, or to `failed` when a
//! channel refuses it for good or its attempts run out, or to `cancelled`
//! when the patron opts out first. `sending` carries a lease: a deliverer
//! that dies mid-send leaves the lease to expire, and the next deliverer
//! takes the message again. That is the one way a message can go out twice.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::model::Channel;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageState {
    /// Waiting for its time.
    Queued,
    /// Taken by a deliverer, under a lease.
    Sending,
    /// Accepted by the channel.
    Sent,
    /// Refused for good, or out of attempts.
    Failed,
    /// Withdrawn before it went: the patron opted out, or withdrew consent.
    Cancelled,
}

impl MessageState {
    /// Every state, in the order of a message's life.
    pub const ALL: [MessageState; 5] = [
        MessageState::Queued,
        MessageState::Sending,
        MessageState::Sent,
        MessageState::Failed,
        MessageState::Cancelled,
    ];

    /// The state's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
            MessageState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        MessageState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state `{s}`; the states are queued, sending, sent, failed, cancelled"
                )
            })
    }
}

/// A message to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Equal for two messages exactly when they are the same notice; a
    /// second message with a key already in the outbox is not added.
    pub dedupe_key: String,
    /// The patron's id.
    pub patron: String,
    /// The event it is about.
    pub event: String,
    /// The event's kind, such as `due-soon`.
    pub event_kind: String,
    /// Whether it is marketing (consent needed up to the moment it goes).
    pub marketing: bool,
    /// The messenger that composed it.
    pub plugin: String,
    /// The channel.
    pub channel: Channel,
    /// The locale of the text.
    pub locale: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// The library's local day it was queued on: the day its daily limit
    /// and digest count on.
    pub day: NaiveDate,
    /// Whether it goes out in the patron's daily digest.
    pub digest: bool,
    /// Not before this moment (quiet hours).
    pub not_before: DateTime<Utc>,
}

/// What [`Outbox::enqueue`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// Messages added.
    pub added: usize,
    /// Messages whose dedupe key was already in the outbox.
    pub duplicates: usize,
}

/// A message a deliverer has taken, with what it needs to send it. The
/// address is read when the message is taken, so a changed address or a
/// withdrawn consent counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The outbox row.
    pub id: i64,
    /// Its dedupe key: the idempotency key on channels that accept one.
    pub dedupe_key: String,
    /// The patron's id.
    pub patron: String,
    /// The event's kind.
    pub event_kind: String,
    /// Whether it is marketing.
    pub marketing: bool,
    /// The channel.
    pub channel: Channel,
    /// The locale.
    pub locale: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// The day it was queued on.
    pub day: NaiveDate,
    /// Whether it is for a digest.
    pub digest: bool,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The patron's email address now.
    pub email: Option<String>,
    /// The patron's mobile number now.
    pub phone: Option<String>,
    /// Whether the patron consents to marketing now.
    pub marketing_consent: bool,
    /// The channels the patron opted out of, now.
    pub opted_out: Vec<Channel>,
    /// Whether the patron consents, now, to the use of their reading
    /// history: a message built on it (a new arrival in their subjects)
    /// goes only with it.
    pub history_consent: bool,
    /// The patron's name now, for a letter's address block.
    pub name: Option<String>,
    /// The patron's card number now, for a letter.
    pub card_number: Option<String>,
    /// The patron's postal address now, for a letter.
    pub address: Option<Vec<String>>,
}

/// How a claimed message ends its attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// The channel accepted it.
    Sent,
    /// It failed for now; try again after the moment given.
    Retry {
        /// When to try again.
        not_before: DateTime<Utc>,
        /// What went wrong.
        error: String,
    },
    /// It is not the time: back in the queue without counting an attempt.
    Postpone {
        /// When to try again.
        not_before: DateTime<Utc>,
    },
    /// It failed for good.
    Failed {
        /// Why.
        error: String,
    },
    /// It must not go out.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// One channel's messages, by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelStats {
    /// The channel.
    pub channel: String,
    /// Waiting to go.
    pub queued: usize,
    /// Being sent now, or left by a deliverer that stopped.
    pub sending: usize,
    /// Accepted by the channel.
    pub sent: usize,
    /// Failed for good.
    pub failed: usize,
    /// Withdrawn.
    pub cancelled: usize,
    /// Attempts that failed and were retried.
    pub retries: usize,
    /// When the oldest queued message was queued.
    pub oldest_queued: Option<DateTime<Utc>>,
}

/// A message as `lectern outbox --list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    /// The outbox row.
    pub id: i64,
    /// The patron's id.
    pub patron: String,
    /// The event's kind.
    pub event_kind: String,
    /// The channel.
    pub channel: String,
    /// The state.
    pub state: MessageState,
    /// Attempts so far.
    pub attempts: u32,
    /// The subject line.
    pub subject: String,
    /// The last error or the reason it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
}

/// The outbox, in the store.
///
/// An outbox also hands out the links to reader pages that go with each
/// message, so it is a [`Readers`](super::Readers) store too.
pub trait Outbox: super::Readers {
    /// Adds `messages` in one transaction, skipping those whose dedupe key
    /// is already there.
    fn enqueue(&mut self, messages: &[Queued]) -> anyhow::Result<Enqueued>;

    /// Whether a message with this dedupe key is in the outbox, in any
    /// state.
    fn has_message(&self, dedupe_key: &str) -> anyhow::Result<bool>;

    /// How many of the patron's messages, cancelled ones aside, were queued
    /// for `day`.
    fn messages_on(&self, patron: &str, day: NaiveDate) -> anyhow::Result<usize>;

    /// Takes the next message that is due at `now` on one of `channels`
    /// (queued and due, or left `sending` by a deliverer whose lease ran
    /// out), marks it `sending` under a lease until `lease_until`, and
    /// commits. A digest takes every due digest message of the same patron
    /// and channel with it; a letter (print or email) every due message of
    /// the same patron, channel and day, marketing apart from the rest.
    /// Empty when nothing is due.
    fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        channels: &[Channel],
    ) -> anyhow::Result<Vec<Claimed>>;

    /// Ends the attempt on messages `ids`, and commits.
    fn settle(&mut self, ids: &[i64], outcome: &Settle, now: DateTime<Utc>) -> anyhow::Result<()>;

    /// Whether a digest already went to the patron on `channel` since
    /// `since`.
    fn digest_sent_since(
        &self,
        patron: &str,
        channel: Channel,
        since: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// The earliest moment a queued message on one of `channels` is due,
    /// if any is queued.
    fn next_due(&self, channels: &[Channel]) -> anyhow::Result<Option<DateTime<Utc>>>;

    /// Counts per channel and state.
    fn outbox_stats(&self) -> anyhow::Result<Vec<ChannelStats>>;

    /// The newest `limit` messages, of `state` if given.
    fn outbox_messages(
        &self,
        state: Option<MessageState>,
        limit: usize,
    ) -> anyhow::Result<Vec<OutboxRow>>;
}
