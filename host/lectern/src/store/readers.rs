//! What the reader-facing pages keep: the one-time links a message or a
//! registration carries, and the answers readers give to surveys.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A link the host gave one reader for one purpose. The link's id is the
/// secret part of its URL; the row says whose it is, what it opens, until
/// when, and whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderLink {
    /// The link's id: 22 characters of a keyed hash, never guessable.
    pub id: String,
    /// The patron it belongs to.
    pub patron: String,
    /// What it opens: `preferences`, `unsubscribe`, `verify` or
    /// `survey:<id>`.
    pub purpose: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used, for links that work once.
    pub used_at: Option<DateTime<Utc>>,
}

/// One reader's answer to one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Answer {
    /// The option chosen, by its id.
    Single(String),
    /// The options chosen, by id.
    Multiple(Vec<String>),
    /// A point on the scale.
    Scale(u8),
    /// Free text.
    Text(String),
}

/// One reader's answers to one survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyAnswers {
    /// The survey's id.
    pub survey: String,
    /// The patron, only when the survey links answers and the reader
    /// agreed; `None` for an anonymous answer.
    pub patron: Option<String>,
    /// The reader's category, kept with an anonymous answer so that
    /// results can be shown per category (with k-suppression).
    pub category: Option<String>,
    /// The reader's segment in the survey's scorer, likewise.
    pub segment: Option<String>,
    /// The language the reader answered in.
    pub locale: String,
    /// The day of the answer.
    pub answered_on: NaiveDate,
    /// Whether the reader let the library use the answers to serve them.
    pub use_for_service: bool,
    /// Answers by question id; a question left blank has none.
    pub answers: BTreeMap<String, Answer>,
    /// The patron attributes the answers become, written with them: only
    /// for a linked answer the reader lets the library use, and only for
    /// questions that name an attribute. Keys start with `survey.`.
    #[serde(skip)]
    pub attributes: Vec<(String, String)>,
}

/// Reader links and survey answers. Every method is one transaction.
pub trait Readers {
    /// Adds `link` unless a link with its id exists; true if it was added.
    fn add_link(&mut self, link: &ReaderLink) -> anyhow::Result<bool>;

    /// The link with id `id`.
    fn link(&self, id: &str) -> anyhow::Result<Option<ReaderLink>>;

    /// Marks the link used at `at`; false if it was used already (or does
    /// not exist), so that two clicks at once use it once.
    fn use_link(&mut self, id: &str, at: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Stores `answers`, and their patron attributes, and uses the link
    /// `link` in one transaction: false, and nothing stored, if the link
    /// was used already or its reader answered this survey through another.
    /// An anonymous answer's link keeps only the day it was used, and the
    /// answer no order of arrival, so neither ties it to the reader.
    fn add_answers(
        &mut self,
        link: &str,
        answers: &SurveyAnswers,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Every answer to survey `survey`, by day (in no order within a day).
    fn survey_answers(&self, survey: &str) -> anyhow::Result<Vec<SurveyAnswers>>;

    /// The answers linked to patron `id`, for their export.
    fn answers_of(&self, id: &str) -> anyhow::Result<Vec<SurveyAnswers>>;

    /// The ids of the patrons whose record came from `source` (such as
    /// `web` for readers who registered online), by id.
    fn patrons_from(&self, source: &str) -> anyhow::Result<Vec<String>>;
}

/// A reader's place in a campaign: when they entered, whether they are in
/// the holdout group (who are never messaged), how far the series went,
/// and whether it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignMember {
    /// The patron.
    pub patron: String,
    /// The day they entered the campaign's audience.
    pub entered_on: NaiveDate,
    /// In the holdout group: never messaged, there to compare against.
    pub holdout: bool,
    /// Their membership's expiry when they entered, to tell a renewal.
    pub expires_at_entry: Option<NaiveDate>,
    /// Steps queued for them so far.
    pub steps_sent: u32,
    /// The day a stop condition ended their series, and which.
    pub stopped: Option<(NaiveDate, String)>,
}

/// What a campaign member did after entering, from the store's activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberActivity {
    /// The patron.
    pub patron: String,
    /// Their first loan on or after the day they entered.
    pub first_loan: Option<NaiveDate>,
    /// Their first recorded visit on or after it.
    pub first_visit: Option<NaiveDate>,
    /// Whether their membership now expires later than when they entered.
    pub renewed: bool,
}

/// Campaign membership. Every method is one transaction.
pub trait CampaignStore {
    /// Adds members to campaign `campaign`, skipping readers already in it;
    /// how many were added.
    fn add_members(&mut self, campaign: &str, members: &[CampaignMember]) -> anyhow::Result<usize>;

    /// The members of `campaign`, by patron.
    fn members(&self, campaign: &str) -> anyhow::Result<Vec<CampaignMember>>;

    /// Records a member's progress: steps sent, and a stop.
    fn update_member(&mut self, campaign: &str, member: &CampaignMember) -> anyhow::Result<()>;

    /// What each member of `campaign` did after entering.
    fn member_activity(&self, campaign: &str) -> anyhow::Result<Vec<MemberActivity>>;
}
