//! The host's own records: patrons as the library holds them, events,
//! scores and composed messages. These are what an ILS hands in and what a
//! caller gets back; plugins never see them directly, only a projection.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A patron as the library holds them, with every field it knows.
///
/// Only `id` is required. It is the library's own key for the patron and
/// never leaves the host: plugins and outputs see a pseudonymous token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patron {
    /// The library's key for the patron, such as the ILS's patron id.
    pub id: String,
    /// The card number or barcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    /// The name the patron is addressed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The postal address, as the lines of an envelope below the name:
    /// `["12 Main Street", "Springfield IL 62701", "USA"]`. Only the host
    /// prints it, on letters; no plugin is ever handed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Vec<String>>,
    /// The date of birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    /// An age band such as `18-24` or `65+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_band: Option<String>,
    /// The patron group: `faculty`, `graduate`, `undergraduate`, `staff`,
    /// `public`, or the library's own codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The home branch code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_branch: Option<String>,
    /// When the patron enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_on: Option<NaiveDate>,
    /// When the membership expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
    /// Extended attributes, such as `department` or `research-project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    /// What the patron consented to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consents: Option<Consents>,
    /// The preferred locale, as a BCP 47 tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Preferred channels, most preferred first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    /// The activity summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// Loans per subject over the last 365 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interests: Option<BTreeMap<String, u32>>,
    /// The patron's segment in the latest run of each scorer, by scorer id:
    /// `{"key-readers": "key-reader", "churn-risk": "lapsed"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<BTreeMap<String, String>>,
}

/// What a patron consented to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consents {
    /// Use of reading history to serve the patron.
    pub reading_history: bool,
    /// Messages beyond the patron's own loans and holds.
    pub marketing: bool,
}

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// Electronic mail.
    Email,
    /// A text message.
    Sms,
    /// An HTTP POST.
    Webhook,
    /// A printed notice.
    Print,
}

impl std::str::FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            Channel::Email,
            Channel::Sms,
            Channel::Webhook,
            Channel::Print,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| {
            format!("unknown channel `{s}`; the channels are email, sms, webhook and print")
        })
    }
}

impl Channel {
    /// Whether the channel carries letters: a patron's notices for one day
    /// on it go out together, as one letter that lists every item (and
    /// marketing in a letter of its own).
    pub fn is_letter(self) -> bool {
        matches!(self, Channel::Print | Channel::Email)
    }

    /// The channel's name as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
            Channel::Print => "print",
        }
    }
}

/// A patron's use of the library, as of a date. See the contract's
/// `activity` record for each field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Activity {
    #[serde(default)]
    pub loans_30d: u32,
    #[serde(default)]
    pub loans_90d: u32,
    #[serde(default)]
    pub loans_365d: u32,
    #[serde(default)]
    pub renewals_365d: u32,
    #[serde(default)]
    pub holds_365d: u32,
    #[serde(default)]
    pub overdue_now: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_since_last_activity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visits_365d: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eresource_sessions_365d: Option<u32>,
}

/// A circulation or CRM event about one patron.
// No `deny_unknown_fields` here: serde cannot combine it with `flatten`.
// `EventKind` denies them instead, so a misspelt field is still an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id, unique within the library.
    pub id: String,
    /// The patron's `id`.
    pub patron: String,
    /// When it happened or was detected.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. In JSON the `kind` field names the case and the case's
/// fields sit beside it: `{"kind": "due-soon", "loan": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum EventKind {
    /// The patron borrowed an item.
    Checkout { loan: Loan },
    /// A loan falls due soon.
    DueSoon { loan: Loan },
    /// A loan is overdue.
    Overdue { loan: Loan, days_overdue: u32 },
    /// A hold is ready for pickup.
    HoldReady { hold: Hold },
    /// A hold waiting for pickup is about to expire.
    HoldExpiring { hold: Hold },
    /// The patron returned an item.
    CheckIn { loan: Loan },
    /// The membership expires on the given date.
    MembershipExpiring { expires_on: NaiveDate },
    /// A new title matches the patron's interests. Marketing.
    NewArrival { title: String, subject: String },
    /// An invitation to a survey. Marketing.
    SurveyInvitation { title: String, url: String },
    /// The patron has lapsed and is invited back. Marketing.
    WinBack,
    /// Other readers wait for a title the patron has on loan (since 0.2.0,
    /// through a messenger's `passing` export). About the patron's own
    /// loan: transactional. Names no one who waits.
    TitleWanted {
        loan: Loan,
        waiting: u32,
        overdue: bool,
    },
    /// A current-awareness digest (since 0.2.0, through a messenger's
    /// `awareness` export): new and in-demand titles in the reader's own
    /// subjects and in those rising in their department. Marketing, and
    /// matched on reading history.
    CurrentAwareness {
        /// The period it covers, `YYYY-MM`.
        period: String,
        /// The reader's own subjects.
        subjects: Vec<String>,
        /// Subjects rising in the reader's department.
        rising: Vec<String>,
        /// The titles.
        titles: Vec<DigestTitle>,
    },
}

/// A title in a current-awareness digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestTitle {
    /// The title.
    pub title: String,
    /// Its subject.
    pub subject: String,
    /// Why it is there.
    pub why: Pick,
}

/// Why a title is in a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// New in the collection.
    NewArrival,
    /// Many readers wait for it.
    InDemand,
}

impl EventKind {
    /// Whether a notice about this event is marketing (needs consent) rather
    /// than about the patron's own loans, holds and membership.
    pub fn is_marketing(&self) -> bool {
        matches!(
            self,
            EventKind::NewArrival { .. }
                | EventKind::SurveyInvitation { .. }
                | EventKind::WinBack
                | EventKind::CurrentAwareness { .. }
        )
    }

    /// The case's name as the contract spells it, such as `due-soon`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Checkout { .. } => "checkout",
            EventKind::DueSoon { .. } => "due-soon",
            EventKind::Overdue { .. } => "overdue",
            EventKind::HoldReady { .. } => "hold-ready",
            EventKind::HoldExpiring { .. } => "hold-expiring",
            EventKind::CheckIn { .. } => "check-in",
            EventKind::MembershipExpiring { .. } => "membership-expiring",
            EventKind::NewArrival { .. } => "new-arrival",
            EventKind::SurveyInvitation { .. } => "survey-invitation",
            EventKind::WinBack => "win-back",
            EventKind::TitleWanted { .. } => "title-wanted",
            EventKind::CurrentAwareness { .. } => "current-awareness",
        }
    }

    /// Every case's name, as [`EventKind::name`] spells it.
    pub const NAMES: [&'static str; 12] = [
        "checkout",
        "due-soon",
        "overdue",
        "hold-ready",
        "hold-expiring",
        "check-in",
        "membership-expiring",
        "new-arrival",
        "survey-invitation",
        "win-back",
        "title-wanted",
        "current-awareness",
    ];
}

/// A loan, as a notice needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loan {
    /// The item's title.
    pub title: String,
    /// The item's barcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    /// When it is due.
    pub due_on: NaiveDate,
    /// How often it was renewed.
    #[serde(default)]
    pub renewals: u32,
}

/// A hold, as a notice needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// The title on hold.
    pub title: String,
    /// Where it waits.
    pub pickup_branch: String,
    /// The last day it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
}

/// One patron's score from one scorer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The patron's `id`, mapped back from the token the plugin saw.
    pub patron: String,
    /// 0 to 100.
    pub value: f32,
    /// The segment, such as `key-reader`.
    pub segment: String,
    /// Why, in plain words.
    pub reasons: Vec<String>,
}

/// A message a messenger composed, addressed to a patron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composed {
    /// The patron's `id`.
    pub patron: String,
    /// The event it is about.
    pub event: String,
    /// The channel it goes out on.
    pub channel: Channel,
    /// The locale of the text.
    pub locale: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// Equal for two messages exactly when they are the same notice.
    pub dedupe_key: String,
    /// The earliest time to send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_after: Option<DateTime<Utc>>,
}

/// An event or message that went no further, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The event.
    pub event: String,
    /// The patron's id.
    pub patron: String,
    /// Why.
    pub reason: String,
}

impl Skipped {
    /// `event` was skipped for `reason`.
    pub fn new(event: &Event, reason: impl Into<String>) -> Skipped {
        Skipped {
            event: event.id.clone(),
            patron: event.patron.clone(),
            reason: reason.into(),
        }
    }
}

/// A message as a messenger plugin wrote it, before the host checks it and
/// addresses it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    /// The channel it goes on.
    pub(crate) channel: Channel,
    /// The language it is written in.
    pub(crate) locale: String,
    /// The subject line.
    pub(crate) subject: String,
    /// The text.
    pub(crate) body: String,
    /// The plugin's key for it.
    pub(crate) dedupe_key: String,
    /// Not before this moment, seconds since the Unix epoch.
    pub(crate) send_after: Option<i64>,
}
