//! Campaigns: a series of messages to an audience the library defines,
//! with a holdout group that gets nothing, stop conditions that end a
//! reader's series, and the outcome measured against the holdout.
//!
//! ```toml
//! id = "welcome"
//! title = "Welcome series for new members"
//! holdout = 0.1                 # the share held out, drawn by keyed token
//! outcome-days = 30             # the window outcomes are counted in
//! stop-when = ["borrowed"]      # borrowed, visited, renewed
//! audience = { all = [
//!   { segment = "engagement/new-member" },
//!   { not = { category = "staff" } },
//! ] }
//!
//! [[steps]]
//! id = "welcome-1"
//! after-days = 0                # after entering the audience
//! subject = { en = "Welcome to the library", zh = "欢迎加入图书馆" }
//! body = { en = "…", zh = "…" }
//! ```
//!
//! The audience combines `segment` (`scorer/segment`, the latest run),
//! `category`, `branch`, `attribute` (`{ key, value }`),
//! `enrolled-within-days`, `expires-within-days` and `inactive-for-days`
//! with `all`, `any` and `not`. Only readers who consent to marketing
//! enter, so the holdout and the messaged group are alike. Messages are
//! marketing: consent, opt-outs, quiet hours and the daily limit apply as
//! to any other, at queueing and again at delivery.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Channel, Composed, Patron};
use crate::store::{CampaignMember, MemberActivity, Preferences};
use crate::survey::Text;

/// Who a campaign is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Audience {
    /// Every one of these.
    All(Vec<Audience>),
    /// Any one of these.
    Any(Vec<Audience>),
    /// Not this.
    Not(Box<Audience>),
    /// In this segment of a scorer's latest run: `scorer/segment`.
    Segment(String),
    /// Of this category.
    Category(String),
    /// Of this home branch.
    Branch(String),
    /// With this attribute value.
    Attribute {
        /// The attribute's code.
        key: String,
        /// Its value.
        value: String,
    },
    /// Enrolled within this many days.
    EnrolledWithinDays(u32),
    /// Membership expiring within this many days (and not yet expired).
    ExpiresWithinDays(u32),
    /// No activity for at least this many days (or never).
    InactiveForDays(u32),
}

impl Audience {
    /// Whether `p` is in the audience on `today`.
    pub fn matches(&self, p: &Patron, today: NaiveDate) -> bool {
        match self {
            Audience::All(list) => list.iter().all(|a| a.matches(p, today)),
            Audience::Any(list) => list.iter().any(|a| a.matches(p, today)),
            Audience::Not(a) => !a.matches(p, today),
            Audience::Segment(s) => {
                let Some((scorer, segment)) = s.split_once('/') else {
                    return false;
                };
                p.segments
                    .as_ref()
                    .and_then(|m| m.get(scorer))
                    .is_some_and(|got| got == segment)
            }
            Audience::Category(c) => p.category.as_deref() == Some(c),
            Audience::Branch(b) => p.home_branch.as_deref() == Some(b),
            Audience::Attribute { key, value } => p
                .attributes
                .as_ref()
                .and_then(|a| a.get(key))
                .is_some_and(|v| v == value),
            Audience::EnrolledWithinDays(n) => p
                .enrolled_on
                .is_some_and(|e| e <= today && (today - e).num_days() <= i64::from(*n)),
            Audience::ExpiresWithinDays(n) => p
                .expires_on
                .is_some_and(|e| e >= today && (e - today).num_days() <= i64::from(*n)),
            Audience::InactiveForDays(n) => p
                .activity
                .as_ref()
                .is_none_or(|a| a.days_since_last_activity.is_none_or(|d| d >= *n)),
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            Audience::All(list) | Audience::Any(list) => {
                if list.is_empty() {
                    bail!("an `all` or `any` in the audience is empty");
                }
                list.iter().try_for_each(Audience::check)
            }
            Audience::Not(a) => a.check(),
            Audience::Segment(s) if !s.contains('/') => {
                bail!("audience segment {s:?}: write scorer/segment, such as engagement/new-member")
            }
            _ => Ok(()),
        }
    }
}

/// What ends a reader's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// They borrowed after entering.
    Borrowed,
    /// They visited after entering.
    Visited,
    /// They renewed their membership after entering.
    Renewed,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Borrowed => "borrowed",
            Stop::Visited => "visited",
            Stop::Renewed => "renewed",
        }
    }

    fn happened(self, a: &MemberActivity) -> bool {
        match self {
            Stop::Borrowed => a.first_loan.is_some(),
            Stop::Visited => a.first_visit.is_some(),
            Stop::Renewed => a.renewed,
        }
    }
}

/// One message of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Step {
    /// Its id, unique in the campaign.
    pub id: String,
    /// Days after the reader entered the audience.
    pub after_days: u32,
    /// The subject line.
    pub subject: Text,
    /// The text; the preference-centre footer is added at delivery.
    pub body: Text,
}

/// A campaign, as its file defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CampaignDef {
    /// Its id: letters, digits and `-`.
    pub id: String,
    /// What it is, for staff.
    pub title: String,
    /// The share of the audience held out, 0 to 0.5; 10% by default.
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    /// The window, in days from entering, that outcomes count in.
    #[serde(default = "default_outcome_days")]
    pub outcome_days: u32,
    /// What ends a reader's series.
    #[serde(default)]
    pub stop_when: Vec<Stop>,
    /// Who it is for.
    pub audience: Audience,
    /// The series, in order of `after-days`.
    pub steps: Vec<Step>,
}

fn default_holdout() -> f64 {
    0.1
}

fn default_outcome_days() -> u32 {
    30
}

impl CampaignDef {
    /// Parses and checks a campaign definition.
    pub fn parse(text: &str) -> Result<CampaignDef> {
        let def: CampaignDef = crate::config::from_toml(text)?;
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !plain(&def.id) {
            bail!("`id` = {:?}: use letters, digits, `-` or `_`", def.id);
        }
        if !(0.0..=0.5).contains(&def.holdout) {
            bail!(
                "`holdout` = {}: give the share held out, from 0 to 0.5",
                def.holdout
            );
        }
        if def.steps.is_empty() {
            bail!("the campaign has no steps: add a [[steps]] table");
        }
        let mut last = 0;
        for (i, s) in def.steps.iter().enumerate() {
            if !plain(&s.id) || def.steps[..i].iter().any(|o| o.id == s.id) {
                bail!("step id {:?}: give each step its own plain id", s.id);
            }
            if s.after_days < last {
                bail!("step `{}`: list the steps in order of `after-days`", s.id);
            }
            last = s.after_days;
        }
        def.audience.check()?;
        Ok(def)
    }

    /// Reads and checks the campaign file `path`.
    pub fn load(path: &Path) -> crate::Result<CampaignDef> {
        crate::survey::load_file(path, "campaign", CampaignDef::parse)
    }
}

/// What one run of a campaign did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CampaignRun {
    /// The campaign.
    pub campaign: String,
    /// Readers who entered it now.
    pub entered: usize,
    /// Of them, held out.
    pub held_out: usize,
    /// Messages queued.
    pub queued: usize,
    /// Series ended by a stop condition now.
    pub stopped: usize,
    /// Messages the library's rules held back, with why.
    pub skipped: Vec<String>,
}

/// The message for `step` to `p`, on the first channel they take that has
/// an address (email, then SMS, then print).
pub(crate) fn compose(
    def: &CampaignDef,
    step: &Step,
    p: &Patron,
    prefs: &Preferences,
) -> Option<Composed> {
    let lang = p.locale.as_deref().unwrap_or("en");
    let offered = p
        .channels
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec![Channel::Email, Channel::Sms, Channel::Print]);
    let channel = offered.into_iter().find(|c| {
        !prefs.opted_out.contains(c)
            && match c {
                Channel::Email => p.email.is_some(),
                Channel::Sms => p.phone.is_some(),
                Channel::Print => true,
                Channel::Webhook => false,
            }
    })?;
    Some(Composed {
        patron: p.id.clone(),
        event: event_id(def, step),
        channel,
        locale: crate::readers::page_locale(Some(lang)).to_string(),
        subject: if channel == Channel::Sms {
            String::new()
        } else {
            step.subject.get(lang).to_string()
        },
        body: step.body.get(lang).to_string(),
        dedupe_key: step.id.clone(),
        send_after: None,
    })
}

/// The event id of a campaign step: one message per reader per step.
pub(crate) fn event_id(def: &CampaignDef, step: &Step) -> String {
    format!("campaign/{}/{}", def.id, step.id)
}

/// The stop condition `a` meets, if any.
pub(crate) fn stop_met(def: &CampaignDef, a: Option<&MemberActivity>) -> Option<&'static str> {
    let a = a?;
    def.stop_when
        .iter()
        .find(|s| s.happened(a))
        .map(|s| s.name())
}

/// The step due for `m` on `today`, if one is.
pub(crate) fn due<'d>(
    def: &'d CampaignDef,
    m: &CampaignMember,
    today: NaiveDate,
) -> Option<&'d Step> {
    let step = def.steps.get(m.steps_sent as usize)?;
    let at = m
        .entered_on
        .checked_add_days(Days::new(step.after_days.into()))?;
    (today >= at).then_some(step)
}

/// One outcome's share in each group, and the difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uplift {
    /// `borrowed`, `visited`, `renewed`, or `any` of them.
    pub outcome: String,
    /// Readers messaged (the campaign's group) with the outcome.
    pub messaged_hits: usize,
    /// Their share.
    pub messaged_share: f64,
    /// Held-out readers with the outcome.
    pub holdout_hits: usize,
    /// Their share.
    pub holdout_share: f64,
    /// The messaged share less the holdout's, in percentage points.
    pub difference: f64,
    /// The 95% confidence interval of the difference (Wald, normal
    /// approximation), in percentage points.
    pub ci95: (f64, f64),
}

/// A campaign's outcome: the messaged group against the holdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignOutcome {
    /// The campaign.
    pub campaign: String,
    /// Its title.
    pub title: String,
    /// The window outcomes count in, in days from entering.
    pub outcome_days: u32,
    /// The day the outcome is reported as of.
    pub as_of: NaiveDate,
    /// Readers in the campaign's group whose window has begun.
    pub messaged: usize,
    /// Held-out readers likewise.
    pub holdout: usize,
    /// Readers in the campaign's group who were sent at least one step.
    pub reached: usize,
    /// Series that a stop condition ended.
    pub stopped: usize,
    /// Per outcome; empty when a group is under k.
    pub uplift: Vec<Uplift>,
    /// What was withheld, or how to read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The outcome of `def` as of `as_of`: for each member, whether they
/// borrowed, visited or renewed within the window after entering,
/// compared between the messaged group and the holdout. A group of fewer
/// than `k` readers shows no shares.
pub(crate) fn outcome(
    def: &CampaignDef,
    members: &[CampaignMember],
    activity: &[MemberActivity],
    as_of: NaiveDate,
    k: usize,
) -> CampaignOutcome {
    let by_patron: HashMap<&str, &MemberActivity> =
        activity.iter().map(|a| (a.patron.as_str(), a)).collect();
    let window = |m: &CampaignMember, d: Option<NaiveDate>| {
        d.is_some_and(|d| {
            (d - m.entered_on).num_days() <= i64::from(def.outcome_days) && d <= as_of
        })
    };
    let hits = |m: &CampaignMember| -> [bool; 3] {
        let a = by_patron.get(m.patron.as_str());
        [
            a.is_some_and(|a| window(m, a.first_loan)),
            a.is_some_and(|a| window(m, a.first_visit)),
            // The ILS gives no renewal date, only the new expiry: a renewal
            // counts by the day of the report, not within the window.
            a.is_some_and(|a| a.renewed),
        ]
    };
    let started: Vec<&CampaignMember> = members.iter().filter(|m| m.entered_on <= as_of).collect();
    let (held, messaged): (Vec<&CampaignMember>, Vec<&CampaignMember>) =
        started.iter().partition(|m| m.holdout);
    let mut uplift = Vec::new();
    let small = messaged.len() < k || held.len() < k;
    if !small {
        for (i, name) in ["borrowed", "visited", "renewed", "any"].iter().enumerate() {
            let count = |group: &[&CampaignMember]| {
                group
                    .iter()
                    .filter(|m| {
                        let h = hits(m);
                        if i == 3 { h.iter().any(|&b| b) } else { h[i] }
                    })
                    .count()
            };
            let (mh, hh) = (count(&messaged), count(&held));
            let (n1, n2) = (messaged.len() as f64, held.len() as f64);
            let (p1, p2) = (mh as f64 / n1, hh as f64 / n2);
            let se = (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
            let d = p1 - p2;
            uplift.push(Uplift {
                outcome: name.to_string(),
                messaged_hits: mh,
                messaged_share: p1,
                holdout_hits: hh,
                holdout_share: p2,
                difference: 100.0 * d,
                ci95: (100.0 * (d - 1.96 * se), 100.0 * (d + 1.96 * se)),
            });
        }
    }
    let note = if small {
        Some(format!(
            "withheld: the messaged group ({}) or the holdout ({}) has fewer than {k} readers",
            messaged.len(),
            held.len()
        ))
    } else if uplift.iter().any(|u| u.ci95.0 <= 0.0 && u.ci95.1 >= 0.0) {
        Some(
            "where the interval spans 0 the difference may be chance; wait for more readers".into(),
        )
    } else {
        None
    };
    CampaignOutcome {
        campaign: def.id.clone(),
        title: def.title.clone(),
        outcome_days: def.outcome_days,
        as_of,
        messaged: messaged.len(),
        holdout: held.len(),
        reached: messaged.iter().filter(|m| m.steps_sent > 0).count(),
        stopped: started.iter().filter(|m| m.stopped.is_some()).count(),
        uplift,
        note,
    }
}

impl CampaignOutcome {
    /// `outcome,messaged_hits,messaged,messaged_share,holdout_hits,holdout,holdout_share,difference_pp,ci95_low_pp,ci95_high_pp`.
    pub fn to_csv(&self) -> String {
        let rows = self.uplift.iter().map(|u| {
            [
                u.outcome.clone(),
                u.messaged_hits.to_string(),
                self.messaged.to_string(),
                format!("{:.4}", u.messaged_share),
                u.holdout_hits.to_string(),
                self.holdout.to_string(),
                format!("{:.4}", u.holdout_share),
                format!("{:.2}", u.difference),
                format!("{:.2}", u.ci95.0),
                format!("{:.2}", u.ci95.1),
            ]
        });
        crate::report::csv(
            [
                "outcome",
                "messaged_hits",
                "messaged",
                "messaged_share",
                "holdout_hits",
                "holdout",
                "holdout_share",
                "difference_pp",
                "ci95_low_pp",
                "ci95_high_pp",
            ],
            rows,
        )
    }

    /// A plain table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{} ({}), as of {}: {} messaged ({} reached, {} stopped), {} held out; outcomes \
             within {} days of entering\n",
            self.title,
            self.campaign,
            self.as_of,
            self.messaged,
            self.reached,
            self.stopped,
            self.holdout,
            self.outcome_days
        );
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>10} {:>12} {:>22}",
            "outcome", "messaged", "holdout", "difference", "95% interval"
        );
        for u in &self.uplift {
            let _ = writeln!(
                out,
                "{:<10} {:>9.1}% {:>9.1}% {:>+10.1}pp {:>+9.1} to {:+.1}pp",
                u.outcome,
                100.0 * u.messaged_share,
                100.0 * u.holdout_share,
                u.difference,
                u.ci95.0,
                u.ci95.1
            );
        }
        if let Some(n) = &self.note {
            let _ = writeln!(out, "Note: {n}");
        }
        out
    }

    /// A self-contained HTML page with a bar chart of each group's shares.
    pub fn to_html(&self) -> String {
        let e = crate::report::esc;
        let mut body = format!(
            "<p>As of {}: {} readers messaged ({} reached, {} stopped by a stop condition), {} \
             held out and sent nothing. Outcomes count within {} days of entering.</p>\n",
            self.as_of, self.messaged, self.reached, self.stopped, self.holdout, self.outcome_days
        );
        if let Some(n) = &self.note {
            let _ = writeln!(body, "<p class=\"note\" role=\"note\">{}</p>", e(n));
        }
        if !self.uplift.is_empty() {
            let bar = |share: f64, colour: &str| {
                format!(
                    "<span style=\"display:inline-block;height:.9rem;width:{:.1}%;background:{colour}\"></span>",
                    100.0 * share
                )
            };
            body.push_str(
                "<table><caption>Share of readers with each outcome</caption><thead><tr>\
                 <th scope=\"col\">Outcome</th><th scope=\"col\">Messaged</th>\
                 <th scope=\"col\">Held out</th><th scope=\"col\">Difference (95% interval)</th>\
                 <th scope=\"col\" style=\"width:40%\">Chart</th></tr></thead><tbody>\n",
            );
            for u in &self.uplift {
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td>{:.1}% ({}/{})</td><td>{:.1}% ({}/{})</td>\
                     <td>{:+.1} pp ({:+.1} to {:+.1})</td><td>{}<br>{}</td></tr>",
                    e(&u.outcome),
                    100.0 * u.messaged_share,
                    u.messaged_hits,
                    self.messaged,
                    100.0 * u.holdout_share,
                    u.holdout_hits,
                    self.holdout,
                    u.difference,
                    u.ci95.0,
                    u.ci95.1,
                    bar(u.messaged_share, "#0b4f9c"),
                    bar(u.holdout_share, "#8a5a00"),
                );
            }
            body.push_str("</tbody></table>\n<p>Blue: messaged. Brown: held out.</p>\n");
        }
        crate::report::page(&format!("Campaign: {}", self.title), &body)
    }
}

/// Reads every campaign in `paths`; an id used twice is an error.
pub(crate) fn load_all(paths: &[std::path::PathBuf]) -> crate::Result<Vec<CampaignDef>> {
    crate::survey::load_each(paths, "campaign", CampaignDef::load, |d| &d.id)
}

/// `now` as the library's day, for the engine.
pub(crate) fn day_of(rules: &crate::config::NoticeRules, now: DateTime<Utc>) -> NaiveDate {
    crate::config::local_day(rules, now)
}

/// The store settings that hold campaigns defined through the service.
const DEFINED_INDEX: &str = "campaigns.defined";
const DEFINED_PREFIX: &str = "campaign.";

impl crate::facade::Lectern {
    /// The campaigns the library runs: those in files (`[readers]
    /// campaigns`), then those defined through the service.
    pub fn campaigns(&self) -> crate::Result<Vec<CampaignDef>> {
        use crate::error::Error;
        let mut out = load_all(&self.config().readers.campaigns)?;
        for id in self.defined_campaigns()? {
            let Some(text) = self
                .store()
                .setting(&format!("{DEFINED_PREFIX}{id}"))
                .map_err(Error::store)?
            else {
                continue;
            };
            out.push(CampaignDef::parse(&text).map_err(|e| Error::Invalid {
                where_: format!("the stored campaign `{id}`"),
                message: format!("{e:#}"),
            })?);
        }
        Ok(out)
    }

    fn defined_campaigns(&self) -> crate::Result<Vec<String>> {
        let index = self
            .store()
            .setting(DEFINED_INDEX)
            .map_err(crate::Error::store)?;
        Ok(index
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Defines (or redefines) a campaign from its TOML, as a file would
    /// hold it, kept in the store. A campaign defined in a file is edited
    /// in its file.
    pub fn define_campaign(&mut self, text: &str) -> crate::Result<CampaignDef> {
        use crate::error::Error;
        let def = CampaignDef::parse(text).map_err(|e| Error::Invalid {
            where_: "the campaign".into(),
            message: format!("{e:#}"),
        })?;
        if load_all(&self.config().readers.campaigns)?
            .iter()
            .any(|c| c.id == def.id)
        {
            return Err(Error::Invalid {
                where_: "the campaign".into(),
                message: format!(
                    "campaign `{}` is defined in a file under `[readers] campaigns`; edit the \
                     file, or give this one another id",
                    def.id
                ),
            });
        }
        let mut ids = self.defined_campaigns()?;
        if !ids.contains(&def.id) {
            ids.push(def.id.clone());
        }
        let store = self.store_mut();
        store
            .set_setting(&format!("{DEFINED_PREFIX}{}", def.id), Some(text))
            .map_err(Error::store)?;
        store
            .set_setting(
                DEFINED_INDEX,
                Some(&serde_json::to_string(&ids).unwrap_or_default()),
            )
            .map_err(Error::store)?;
        Ok(def)
    }

    /// Removes a campaign defined through the service; false if there is
    /// none by that id. Its members' history stays, for its outcome.
    pub fn remove_campaign(&mut self, id: &str) -> crate::Result<bool> {
        use crate::error::Error;
        let mut ids = self.defined_campaigns()?;
        let before = ids.len();
        ids.retain(|i| i != id);
        if ids.len() == before {
            return Ok(false);
        }
        let store = self.store_mut();
        store
            .set_setting(&format!("{DEFINED_PREFIX}{id}"), None)
            .map_err(Error::store)?;
        store
            .set_setting(
                DEFINED_INDEX,
                Some(&serde_json::to_string(&ids).unwrap_or_default()),
            )
            .map_err(Error::store)?;
        Ok(true)
    }

    /// The campaign `id`.
    pub fn campaign(&self, id: &str) -> crate::Result<CampaignDef> {
        self.campaigns()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                crate::Error::NotFound(format!(
                    "no campaign `{id}`: list its file under `[readers] campaigns`"
                ))
            })
    }

    /// Runs `def` as of `now`: readers newly in its audience (and
    /// consenting to marketing) enter it, a stable share of them into the
    /// holdout; a reader who meets a stop condition leaves the series; and
    /// each step that is due is queued under the library's rules. Running
    /// it twice in a day queues nothing twice.
    pub fn run_campaign(
        &mut self,
        def: &CampaignDef,
        now: DateTime<Utc>,
    ) -> crate::Result<CampaignRun> {
        use crate::error::Error;
        let today = day_of(&self.config().notify, now);
        let keys = self.keyring().pseudonyms();
        let mut run = CampaignRun {
            campaign: def.id.clone(),
            ..CampaignRun::default()
        };
        let patrons = self.store().patrons(today).map_err(Error::store)?;
        let known: std::collections::HashSet<String> = self
            .store()
            .members(&def.id)
            .map_err(Error::store)?
            .into_iter()
            .map(|m| m.patron)
            .collect();
        let entering: Vec<CampaignMember> = patrons
            .iter()
            .filter(|p| !known.contains(&p.id))
            .filter(|p| p.consents.is_some_and(|c| c.marketing))
            .filter(|p| def.audience.matches(p, today))
            .map(|p| CampaignMember {
                patron: p.id.clone(),
                entered_on: today,
                holdout: crate::notify::in_sample(
                    &keys,
                    &p.id,
                    &format!("holdout/{}", def.id),
                    def.holdout,
                ),
                expires_at_entry: p.expires_on,
                steps_sent: 0,
                stopped: None,
            })
            .collect();
        run.held_out = entering.iter().filter(|m| m.holdout).count();
        run.entered = self
            .store_mut()
            .add_members(&def.id, &entering)
            .map_err(Error::store)?;

        let members = self.store().members(&def.id).map_err(Error::store)?;
        let activity = self
            .store()
            .member_activity(&def.id)
            .map_err(Error::store)?;
        let activity: HashMap<&str, &MemberActivity> =
            activity.iter().map(|a| (a.patron.as_str(), a)).collect();
        let by_id: HashMap<&str, &Patron> = patrons.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut recipients: HashMap<String, (Patron, Preferences)> = HashMap::new();
        let mut composed = Vec::new();
        let mut pending: Vec<(CampaignMember, &Step)> = Vec::new();
        for mut m in members {
            if m.holdout || m.stopped.is_some() {
                continue;
            }
            if let Some(reason) = stop_met(def, activity.get(m.patron.as_str()).copied()) {
                m.stopped = Some((today, reason.to_string()));
                self.store_mut()
                    .update_member(&def.id, &m)
                    .map_err(Error::store)?;
                run.stopped += 1;
                continue;
            }
            let Some(step) = due(def, &m, today) else {
                continue;
            };
            let Some(p) = by_id.get(m.patron.as_str()) else {
                continue;
            };
            if !p.consents.is_some_and(|c| c.marketing) {
                run.skipped
                    .push(format!("{}: no consent to marketing now", step.id));
                continue;
            }
            let prefs = self
                .store()
                .preferences(&p.id)
                .map_err(Error::store)?
                .unwrap_or_default();
            let Some(c) = compose(def, step, p, &prefs) else {
                run.skipped.push(format!(
                    "{}: no channel the reader takes has an address",
                    step.id
                ));
                continue;
            };
            recipients.insert(p.id.clone(), ((*p).clone(), prefs));
            composed.push(("lectern".to_string(), c));
            pending.push((m, step));
        }
        let ids: Vec<(String, String, DateTime<Utc>)> = pending
            .iter()
            .map(|(m, step)| {
                let at = m
                    .entered_on
                    .checked_add_days(Days::new(step.after_days.into()))
                    .unwrap_or(m.entered_on);
                (
                    event_id(def, step),
                    m.patron.clone(),
                    crate::notify::midnight(at),
                )
            })
            .collect();
        let subjects: HashMap<(&str, &str), crate::notify::Subject<'_>> = ids
            .iter()
            .map(|(id, patron, at)| {
                (
                    (id.as_str(), patron.as_str()),
                    crate::notify::Subject {
                        id,
                        patron,
                        at: *at,
                        kind: "campaign",
                        marketing: true,
                    },
                )
            })
            .collect();
        let mut report = crate::NotifyReport::default();
        let rules = self.config().notify.clone();
        let admitted = crate::notify::admit(
            self.store_mut(),
            &rules,
            &recipients,
            composed,
            &subjects,
            now,
            &mut report,
        )
        .map_err(Error::store)?;
        for ((mut m, _), ok) in pending.into_iter().zip(admitted) {
            if ok {
                m.steps_sent += 1;
                self.store_mut()
                    .update_member(&def.id, &m)
                    .map_err(Error::store)?;
            }
        }
        run.queued = report.queued;
        run.skipped
            .extend(report.skipped.into_iter().map(|s| s.reason));
        Ok(run)
    }

    /// The outcome of campaign `id` as of `as_of`, as `role` may read
    /// aggregates: messaged readers against the holdout, each group shown
    /// only from `k` readers.
    pub fn campaign_outcome(
        &self,
        id: &str,
        as_of: NaiveDate,
        k: usize,
        role: &str,
    ) -> crate::Result<CampaignOutcome> {
        use crate::error::Error;
        crate::pipeline::check_k(k, self.config().k_floor)?;
        let ctx = self.staff(crate::privacy::Purpose::Analytics, role)?;
        let def = self.campaign(id)?;
        let members = self.store().members(id).map_err(Error::store)?;
        let activity = self.store().member_activity(id).map_err(Error::store)?;
        self.audit_read(ctx, vec![crate::privacy::Field::Activity], &[])?;
        Ok(outcome(&def, &members, &activity, as_of, k))
    }
}
