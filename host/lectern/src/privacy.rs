//! The one place that decides which patron fields leave the host, and in
//! what form.
//!
//! **Architecture Invariant:** a patron field reaches a plugin or an output
//! only through [`Rules::project`], and the rules for a plugin call are the
//! intersection of what its manifest declares and what the privacy policy
//! allows for the call's purpose and role. Plugins never see the patron's
//! `id`: they see a keyed token.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::Datelike;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::{Activity, Patron};

/// A patron field that a manifest declares and a policy rules on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum Field {
    CardNumber,
    Name,
    Email,
    Phone,
    BirthDate,
    AgeBand,
    Category,
    HomeBranch,
    EnrolledOn,
    ExpiresOn,
    Attributes,
    Consents,
    Locale,
    Channels,
    Activity,
    Interests,
    Segments,
    /// The postal address. Plugin API 0.1 has no word for it: no manifest
    /// declares it, and a 0.1 policy's rule for `name` stands for it (kept
    /// where the name is kept whole, dropped otherwise).
    Address,
}

impl Field {
    /// Every field: the contract's order, then the host's own.
    pub const ALL: [Field; 18] = [
        Field::CardNumber,
        Field::Name,
        Field::Email,
        Field::Phone,
        Field::BirthDate,
        Field::AgeBand,
        Field::Category,
        Field::HomeBranch,
        Field::EnrolledOn,
        Field::ExpiresOn,
        Field::Attributes,
        Field::Consents,
        Field::Locale,
        Field::Channels,
        Field::Activity,
        Field::Interests,
        Field::Segments,
        Field::Address,
    ];

    /// The kebab-case name, as in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::CardNumber => "card-number",
            Field::Name => "name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::BirthDate => "birth-date",
            Field::AgeBand => "age-band",
            Field::Category => "category",
            Field::HomeBranch => "home-branch",
            Field::EnrolledOn => "enrolled-on",
            Field::ExpiresOn => "expires-on",
            Field::Attributes => "attributes",
            Field::Consents => "consents",
            Field::Locale => "locale",
            Field::Channels => "channels",
            Field::Activity => "activity",
            Field::Interests => "interests",
            Field::Segments => "segments",
            Field::Address => "address",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Field::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Field::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown field `{s}`; the fields are: {}", known.join(", "))
            })
    }
}

/// What happens to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Passed as it is.
    Keep,
    /// Withheld: `None`.
    Drop,
    /// Mostly hidden: `j***@example.org`.
    Mask,
    /// Replaced by a keyed token.
    Pseudonymise,
    /// Coarsened: dates to their year, counts to bands.
    Generalise,
}

/// Why the host is handing out patron data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum Purpose {
    Scoring,
    MessagingTransactional,
    MessagingMarketing,
    StaffView,
    Analytics,
    PatronExport,
    /// The host's own upkeep: retention, key rotation. Only the audit log
    /// names it; no policy is asked about it, and no field is read for it.
    Maintenance,
    /// A reader seeing or changing their own settings on a reader page.
    /// Only the audit log names it; no policy is asked about it.
    SelfService,
}

impl Purpose {
    /// The purpose's name as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Scoring => "scoring",
            Purpose::MessagingTransactional => "messaging-transactional",
            Purpose::MessagingMarketing => "messaging-marketing",
            Purpose::StaffView => "staff-view",
            Purpose::Analytics => "analytics",
            Purpose::PatronExport => "patron-export",
            Purpose::Maintenance => "maintenance",
            Purpose::SelfService => "self-service",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "scoring" => Purpose::Scoring,
            "messaging-transactional" => Purpose::MessagingTransactional,
            "messaging-marketing" => Purpose::MessagingMarketing,
            "staff-view" => Purpose::StaffView,
            "analytics" => Purpose::Analytics,
            "patron-export" => Purpose::PatronExport,
            _ => {
                return Err(format!(
                    "unknown purpose `{s}`; the purposes are: scoring, messaging-transactional, \
                     messaging-marketing, staff-view, analytics, patron-export"
                ));
            }
        })
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A plugin, by id.
    Plugin(String),
    /// A staff member, by role.
    Staff(String),
    /// A delivery channel the host hands a message to, by name (`email`,
    /// `sms`, `webhook`, `print`). A channel gets the message as composed;
    /// the print channel also gets the letter's name, address and card
    /// number block, as the policy allows for the message's purpose (a 0.1
    /// policy is asked as the staff role `channel:print`).
    Channel(String),
    /// The host itself, running a task (`retention`, `key-rotation`). Only
    /// the audit log names it.
    Task(String),
    /// The patron themself, on a reader page they opened with a link the
    /// host sent them (`preferences`, `survey`, `registration`). A reader
    /// sees and changes only their own settings; no policy is asked about
    /// it, and only the audit log names it.
    Reader(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Plugin(id) => write!(f, "plugin `{id}`"),
            Actor::Staff(role) => write!(f, "staff role `{role}`"),
            Actor::Channel(name) => write!(f, "the {name} channel"),
            Actor::Task(name) => write!(f, "the host's {name}"),
            Actor::Reader(page) => write!(f, "the reader, on their {page} page"),
        }
    }
}

/// The purpose and the actor of one access.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessContext {
    /// Why.
    pub purpose: Purpose,
    /// Who.
    pub actor: Actor,
}

/// One action per field: what leaves the host.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rules([Action; Field::ALL.len()]);

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().filter(|(_, a)| *a != Action::Drop))
            .finish()
    }
}

impl Rules {
    /// Every field withheld.
    pub const NONE: Rules = Rules([Action::Drop; Field::ALL.len()]);
    /// Every field kept.
    pub const ALL: Rules = Rules([Action::Keep; Field::ALL.len()]);

    /// Keeps exactly `fields`: what a manifest declares.
    pub fn keeping(fields: impl IntoIterator<Item = Field>) -> Rules {
        let mut rules = Rules::NONE;
        for f in fields {
            rules.set(f, Action::Keep);
        }
        rules
    }

    /// The action for `field`.
    pub fn get(&self, field: Field) -> Action {
        self.0[field as usize]
    }

    /// Sets the action for `field`.
    pub fn set(&mut self, field: Field, action: Action) {
        self.0[field as usize] = action;
    }

    /// Each field with its action.
    pub fn iter(&self) -> impl Iterator<Item = (Field, Action)> + '_ {
        Field::ALL.into_iter().map(|f| (f, self.get(f)))
    }

    /// The fields that leave the host in some form.
    pub fn passed(&self) -> Vec<Field> {
        self.iter()
            .filter(|(_, a)| *a != Action::Drop)
            .map(|(f, _)| f)
            .collect()
    }

    /// What both allow: a field passes only if both pass it, and in the form
    /// of the stricter one. Two different transformations of one field do not
    /// compose, so the field is dropped.
    pub fn intersect(&self, other: &Rules) -> Rules {
        let mut out = Rules::NONE;
        for f in Field::ALL {
            let action = match (self.get(f), other.get(f)) {
                (Action::Drop, _) | (_, Action::Drop) => Action::Drop,
                (Action::Keep, a) | (a, Action::Keep) => a,
                (a, b) if a == b => a,
                _ => Action::Drop,
            };
            out.set(f, action);
        }
        out
    }

    /// Applies a per-record refinement, which may only tighten: a kept field
    /// may take any action, any other field may only stay or be dropped.
    pub fn tighten(&self, refinement: &[(Field, Action)]) -> Result<Rules, String> {
        let mut out = *self;
        for &(field, action) in refinement {
            let current = self.get(field);
            if current != Action::Keep && action != current && action != Action::Drop {
                return Err(format!(
                    "the refinement asks to {} `{field}`, which the policy only lets pass as \
                     {}; a refinement may only tighten",
                    action_verb(action),
                    action_verb(current)
                ));
            }
            out.set(field, action);
        }
        Ok(out)
    }

    /// Builds what leaves the host of `patron` under these rules. The result's
    /// `id` is the patron's token; every field the rules drop is `None`.
    pub fn project(&self, patron: &Patron, keys: &Pseudonyms) -> Patron {
        let text = |field: Field, value: &Option<String>, mask: fn(&str) -> String| {
            // An empty string says nothing worth passing on, and masked or
            // tokenised it would look like a value.
            let v = value.as_deref().filter(|v| !v.trim().is_empty())?;
            match self.get(field) {
                Action::Keep => Some(v.to_string()),
                Action::Drop => None,
                Action::Mask => Some(mask(v)),
                Action::Pseudonymise => Some(keys.value_token(field, v)),
                Action::Generalise => generalise_text(field, v),
            }
        };
        let plain = |field: Field| match self.get(field) {
            Action::Keep | Action::Generalise => Some(self.get(field)),
            _ => None,
        };
        let date = |field: Field, value: Option<chrono::NaiveDate>| match plain(field)? {
            Action::Keep => value,
            _ => value.and_then(|d| d.with_month(1)?.with_day(1)),
        };
        Patron {
            id: keys.patron_token(&patron.id),
            card_number: text(Field::CardNumber, &patron.card_number, mask_tail),
            name: text(Field::Name, &patron.name, mask_words),
            email: text(Field::Email, &patron.email, mask_email),
            phone: text(Field::Phone, &patron.phone, mask_tail),
            birth_date: date(Field::BirthDate, patron.birth_date),
            age_band: text(Field::AgeBand, &patron.age_band, mask_words),
            category: text(Field::Category, &patron.category, mask_words),
            home_branch: text(Field::HomeBranch, &patron.home_branch, mask_words),
            enrolled_on: date(Field::EnrolledOn, patron.enrolled_on),
            expires_on: date(Field::ExpiresOn, patron.expires_on),
            attributes: match plain(Field::Attributes) {
                Some(Action::Keep) => patron.attributes.clone(),
                Some(_) => patron
                    .attributes
                    .as_ref()
                    .map(|a| a.keys().map(|k| (k.clone(), String::new())).collect()),
                None => None,
            },
            consents: plain(Field::Consents).and(patron.consents),
            locale: text(Field::Locale, &patron.locale, mask_words),
            channels: plain(Field::Channels).and(patron.channels.clone()),
            activity: match plain(Field::Activity) {
                Some(Action::Keep) => patron.activity,
                Some(_) => patron.activity.map(generalise_activity),
                None => None,
            },
            interests: match plain(Field::Interests) {
                Some(Action::Keep) => patron.interests.clone(),
                Some(_) => patron.interests.as_ref().map(generalise_interests),
                None => None,
            },
            segments: plain(Field::Segments).and(patron.segments.clone()),
            // Lines of an address masked or tokenised would help no one.
            address: match self.get(Field::Address) {
                Action::Keep => patron.address.clone(),
                _ => None,
            },
        }
    }
}

fn action_verb(a: Action) -> &'static str {
    match a {
        Action::Keep => "keep",
        Action::Drop => "drop",
        Action::Mask => "mask",
        Action::Pseudonymise => "pseudonymise",
        Action::Generalise => "generalise",
    }
}

/// Whether `c` is written in a script where a name is not split into words
/// (Chinese, Japanese, Korean): the first character is then the whole
/// family name.
fn unspaced_script(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}'
        | '\u{ac00}'..='\u{d7af}' | '\u{f900}'..='\u{faff}')
}

/// `W*** L***`: the first letter of each word, no more than a third of the
/// letters in all, and never a whole word. A name in an unspaced script
/// (`王小明`) shows nothing, since its first character is the family name.
/// The stars do not tell the length.
fn mask_words(s: &str) -> String {
    if s.chars().any(unspaced_script) {
        return "***".to_string();
    }
    let letters = s.chars().filter(|c| !c.is_whitespace()).count();
    let mut budget = letters / 3;
    s.split_whitespace()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(c) if budget > 0 && chars.next().is_some() => {
                    budget -= 1;
                    format!("{c}***")
                }
                _ => "***".to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `j***@example.org`
fn mask_email(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_words(local)),
        None => mask_words(s),
    }
}

/// `**********1234`: the last digits, at most four and at most a third of
/// the value; nothing of a value of six characters or fewer.
fn mask_tail(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let keep = if chars.len() > 6 {
        (chars.len() / 3).min(4)
    } else {
        0
    };
    let hidden = chars.len() - keep;
    "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>()
}

fn generalise_text(field: Field, v: &str) -> Option<String> {
    match field {
        Field::Email => v.split_once('@').map(|(_, d)| format!("*@{d}")),
        Field::Locale => v.split(['-', '_']).next().map(str::to_string),
        Field::AgeBand => {
            let start: u32 = v.trim_end_matches('+').split('-').next()?.parse().ok()?;
            Some(
                match start {
                    0..=17 => "under-18",
                    18..=64 => "18-64",
                    _ => "65+",
                }
                .to_string(),
            )
        }
        // Already coarse.
        Field::Category | Field::HomeBranch => Some(v.to_string()),
        // Names, numbers and cards have no coarser form that is still safe.
        _ => None,
    }
}

/// Rounds a count down to the bottom of its band: 0, 1, 2, 5, 10, 25, 50, 100.
fn band(n: u32) -> u32 {
    const BANDS: [u32; 8] = [100, 50, 25, 10, 5, 2, 1, 0];
    BANDS.into_iter().find(|&b| n >= b).unwrap_or(0)
}

fn generalise_activity(a: Activity) -> Activity {
    Activity {
        loans_30d: band(a.loans_30d),
        loans_90d: band(a.loans_90d),
        loans_365d: band(a.loans_365d),
        renewals_365d: band(a.renewals_365d),
        holds_365d: band(a.holds_365d),
        overdue_now: band(a.overdue_now),
        days_since_last_activity: a.days_since_last_activity.map(band),
        visits_365d: a.visits_365d.map(band),
        eresource_sessions_365d: a.eresource_sessions_365d.map(band),
    }
}

/// Subjects to their main class: `QD71` to `Q`, `540.1` to `500`; other
/// subject names stay as they are.
fn generalise_interests(i: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (subject, &n) in i {
        let first = subject.chars().next();
        let class = match first {
            Some(c)
                if c.is_ascii_uppercase()
                    && subject[1..]
                        .starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
            {
                c.to_string()
            }
            Some(c) if c.is_ascii_digit() => format!("{c}00"),
            _ => subject.clone(),
        };
        *out.entry(class).or_insert(0) += n;
    }
    out
}

/// Keyed tokens that stand in for patron ids and personal values.
///
/// Tokens are HMAC-SHA256 under a key that never leaves the host: stable
/// under one key, and unlinkable across libraries that hold different keys.
#[derive(Clone)]
pub struct Pseudonyms {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonyms { key: <hidden> }")
    }
}

impl Pseudonyms {
    /// Tokens under `key`. Use at least 32 random bytes.
    pub fn new(key: &[u8]) -> Pseudonyms {
        Pseudonyms {
            mac: Hmac::new_from_slice(key).expect("HMAC takes a key of any length"),
        }
    }

    /// Tokens under a fresh random key: stable only for this value's life.
    pub fn ephemeral() -> Pseudonyms {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system provides randomness");
        Pseudonyms::new(&key)
    }

    fn token(&self, prefix: &str, domain: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{prefix}{}", hex::encode(&digest[..12]))
    }

    /// The token a plugin sees in place of the patron's `id`.
    pub fn patron_token(&self, id: &str) -> String {
        self.token("p-", "patron", id)
    }

    /// The token for a personal value, such as an email address.
    pub fn value_token(&self, field: Field, value: &str) -> String {
        self.token("t-", field.as_str(), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> Patron {
        Patron {
            id: "P1".into(),
            card_number: Some("2100012345".into()),
            name: Some("Jane Roe".into()),
            email: Some("jane.roe@example.org".into()),
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 7, 14),
            age_band: Some("35-44".into()),
            locale: Some("zh-CN".into()),
            activity: Some(Activity {
                loans_365d: 37,
                ..Activity::default()
            }),
            interests: Some([("QD71".to_string(), 3), ("QA76".to_string(), 2)].into()),
            ..Patron::default()
        }
    }

    #[test]
    fn manifest_and_policy_intersect_to_the_stricter() {
        let manifest = Rules::keeping([Field::Name, Field::Email, Field::Activity]);
        let mut policy = Rules::NONE;
        policy.set(Field::Email, Action::Mask);
        policy.set(Field::Activity, Action::Keep);
        policy.set(Field::Phone, Action::Keep);
        let rules = manifest.intersect(&policy);
        assert_eq!(rules.passed(), vec![Field::Email, Field::Activity]);
        assert_eq!(rules.get(Field::Email), Action::Mask);
    }

    #[test]
    fn refinement_cannot_widen() {
        let mut rules = Rules::NONE;
        rules.set(Field::Email, Action::Mask);
        rules.set(Field::Name, Action::Keep);
        assert!(rules.tighten(&[(Field::Phone, Action::Keep)]).is_err());
        assert!(rules.tighten(&[(Field::Email, Action::Keep)]).is_err());
        let tighter = rules.tighten(&[(Field::Name, Action::Mask), (Field::Email, Action::Drop)]);
        assert_eq!(tighter.unwrap().passed(), vec![Field::Name]);
    }

    #[test]
    fn projection_applies_each_action() {
        let keys = Pseudonyms::new(b"k");
        let mut rules = Rules::NONE;
        rules.set(Field::Name, Action::Mask);
        rules.set(Field::Email, Action::Generalise);
        rules.set(Field::CardNumber, Action::Pseudonymise);
        rules.set(Field::BirthDate, Action::Generalise);
        rules.set(Field::Locale, Action::Generalise);
        rules.set(Field::Activity, Action::Generalise);
        rules.set(Field::Interests, Action::Generalise);
        let p = rules.project(&jane(), &keys);
        assert_eq!(p.id, keys.patron_token("P1"));
        assert_eq!(p.name.as_deref(), Some("J*** R***"));
        assert_eq!(p.email.as_deref(), Some("*@example.org"));
        assert!(p.card_number.unwrap().starts_with("t-"));
        assert_eq!(p.birth_date, chrono::NaiveDate::from_ymd_opt(1990, 1, 1));
        assert_eq!(p.locale.as_deref(), Some("zh"));
        assert_eq!(p.activity.unwrap().loans_365d, 25);
        assert_eq!(p.interests.unwrap(), [("Q".to_string(), 5)].into());
        assert_eq!(p.age_band, None, "a dropped field is none");
    }

    #[test]
    fn tokens_depend_on_the_key() {
        let a = Pseudonyms::new(b"library-a");
        let b = Pseudonyms::new(b"library-b");
        assert_eq!(a.patron_token("P1"), a.patron_token("P1"));
        assert_ne!(a.patron_token("P1"), b.patron_token("P1"));
        assert_ne!(a.patron_token("P1"), a.value_token(Field::CardNumber, "P1"));
    }

    #[test]
    fn masks_hide_most_of_a_value() {
        assert_eq!(mask_email("jane.roe@example.org"), "j***@example.org");
        assert_eq!(mask_tail("+8613800001234"), "**********1234");
        assert_eq!(mask_tail("12345"), "*****");
        // At most a third shows: two of seven digits, not four.
        assert_eq!(mask_tail("1234567"), "*****67");
        assert_eq!(mask_words("Wang Li"), "W*** L***");
        assert_eq!(mask_words("Jo Li"), "J*** ***");
        assert_eq!(mask_words("Margaret Okafor"), "M*** O***");
        // Never the whole family name, which in Chinese is the first
        // character.
        assert_eq!(mask_words("王小明"), "***");
        assert_eq!(mask_words("김민준"), "***");
        // A one-letter word is never shown whole.
        assert_eq!(mask_words("A Smith"), "*** S***");
    }

    #[test]
    fn empty_strings_are_dropped_whatever_the_action() {
        let patron = Patron {
            id: "p".into(),
            name: Some(String::new()),
            email: Some("  ".into()),
            phone: Some("+8613800001234".into()),
            ..Patron::default()
        };
        let keys = Pseudonyms::new(b"k");
        for action in [Action::Keep, Action::Mask, Action::Pseudonymise] {
            let mut rules = Rules::NONE;
            for f in [Field::Name, Field::Email, Field::Phone] {
                rules.set(f, action);
            }
            let seen = rules.project(&patron, &keys);
            assert_eq!((seen.name, seen.email), (None, None), "{action:?}");
            assert!(seen.phone.is_some(), "{action:?}");
        }
    }
}
