//! The reader-facing half: the preference centre a reader opens from any
//! message, one-click unsubscribe, self-registration with a verified email
//! address, and surveys. `lectern serve` renders the pages; the rules are
//! here, so an embedding ILS gets the same.
//!
//! What a reader does is audited before it happens, with the reader as the
//! actor (`reader` in the log) and `self-service` as the purpose. A reader
//! sees and changes only their own settings, reached only through a link
//! the host sent to them.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::config::local_day;
use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::links::{LinkKey, LinkProblem, LinkPurpose, SESSION_MINUTES};
use crate::model::{Channel, Consents, Patron};
use crate::privacy::{AccessContext, Actor, Field, Purpose};
use crate::store::{PatronRecord, Preferences, Queued, ReaderLink, Written};
use crate::survey::{GroupBy, SurveyDef, SurveyResults};

/// The source of patrons who registered on the web, and the attribute
/// that says whether their email address is verified.
pub const WEB_SOURCE: &str = "web";
const STATUS: &str = "registration";
const FAMILY: &str = "family-name";
const INTERESTS: &str = "interests";

/// What a reader sees in their preference centre.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderPrefs {
    /// The session the page's form carries.
    pub session: String,
    /// The language of the page and of their messages: `en` or `zh-CN`.
    pub locale: String,
    /// The channels they can be reached on, each with whether it is on.
    pub channels: Vec<(Channel, bool)>,
    /// One message a day gathering the day's notices.
    pub digest: bool,
    /// Days of notice before a due date.
    pub notice_days: u32,
    /// Whether they receive news, surveys and invitations.
    pub marketing: bool,
    /// Whether the library may use what they borrow to serve them.
    pub reading_history: bool,
    /// Whether they asked for current-awareness digests (key readers get
    /// them without asking).
    pub awareness: bool,
}

/// What a reader chose in their preference centre.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReaderChoice {
    /// The channels left on.
    pub channels_on: Vec<Channel>,
    /// One message a day.
    pub digest: bool,
    /// Days of notice before a due date, 0 to 30.
    pub notice_days: u32,
    /// `en` or `zh-CN`.
    pub locale: String,
    /// Keep receiving news, surveys and invitations.
    pub marketing: bool,
    /// Let the library use what they borrow.
    pub reading_history: bool,
    /// Send a monthly current-awareness digest.
    pub awareness: bool,
}

/// The languages reader pages and messages come in.
pub const LOCALES: [&str; 2] = ["en", "zh-CN"];

/// The reader's language from a tag: `zh-CN` for any Chinese, else `en`.
pub fn page_locale(tag: Option<&str>) -> &'static str {
    match tag {
        Some(t) if t.to_ascii_lowercase().starts_with("zh") => "zh-CN",
        _ => "en",
    }
}

/// A registration as the form sends it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Registration {
    /// Given names.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Email address, to be verified.
    pub email: String,
    /// Mobile number, if given.
    pub phone: Option<String>,
    /// One of the library's categories.
    pub category: String,
    /// Subjects from the library's list.
    pub interests: Vec<String>,
    /// `en` or `zh-CN`.
    pub locale: String,
    /// Consent to news, surveys and invitations; unticked unless ticked.
    pub consent_marketing: bool,
    /// Consent to the use of reading history; unticked unless ticked.
    pub consent_reading_history: bool,
}

fn clean(s: &str) -> bool {
    !s.chars().any(|c| c.is_control())
}

impl Registration {
    /// What is wrong with the form, in the reader's language, one line per
    /// field; empty when it can be accepted.
    pub fn problems(&self, rules: &crate::ReaderRules) -> Vec<String> {
        let zh = self.locale.starts_with("zh");
        let mut out = Vec::new();
        let mut say = |en: &str, cn: &str| out.push(if zh { cn } else { en }.to_string());
        let name = |s: &str| !s.trim().is_empty() && s.chars().count() <= 100 && clean(s);
        if !name(&self.given_name) {
            say(
                "Given name: write the name you use, up to 100 characters.",
                "名：请填写您的名字（不超过 100 个字符）。",
            );
        }
        if !name(&self.family_name) {
            say(
                "Family name: write your family name, up to 100 characters.",
                "姓：请填写您的姓氏（不超过 100 个字符）。",
            );
        }
        let email = self.email.trim();
        if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
            say(
                "Email: write an address such as name@example.org.",
                "电子邮箱：请填写有效地址，例如 name@example.org。",
            );
        }
        if let Some(p) = &self.phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            if !(6..=20).contains(&digits)
                || !p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
            {
                say(
                    "Mobile: write digits, with + for the country code, or leave it empty.",
                    "手机：请填写数字（国际区号用 +），或留空。",
                );
            }
        }
        if !rules.categories.contains(&self.category) {
            say(
                "Category: choose one from the list.",
                "读者类型：请从列表中选择。",
            );
        }
        if self.interests.iter().any(|i| !rules.subjects.contains(i)) {
            say("Interests: choose from the list.", "兴趣：请从列表中选择。");
        }
        if !LOCALES.contains(&self.locale.as_str()) {
            say(
                "Language: choose English or Chinese.",
                "语言：请选择英文或中文。",
            );
        }
        out
    }
}

/// A reader who registered on the web, as staff list them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registered {
    /// Lectern's id for them (`web-…`), until the ILS gives them a card.
    pub id: String,
    /// Given names.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Email address.
    pub email: Option<String>,
    /// Mobile number.
    pub phone: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Home branch.
    pub branch: Option<String>,
    /// Language.
    pub locale: Option<String>,
    /// Interests.
    pub interests: Vec<String>,
    /// Whether they confirmed their email address.
    pub verified: bool,
    /// The day they registered.
    pub registered_on: Option<chrono::NaiveDate>,
}

/// Why a survey answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerProblem {
    /// The link does not open the survey.
    Link(LinkProblem),
    /// The answers need changing; one line per question, in the reader's
    /// language.
    Answers(Vec<String>),
}

/// The registrations verified, as Koha's patron import
/// (`tools/import_borrowers.pl`) reads them: a header row of `borrowers`
/// columns, and `patron_attributes` as `CODE:value` items. The attribute
/// `LECTERNID` carries Lectern's id, for use as the import's match point.
pub fn koha_patron_csv(registered: &[Registered]) -> String {
    // Every cell but the phone, which registration checked holds only
    // digits, spaces, `+`, `-` and brackets, is made inert for
    // spreadsheets; a phone's leading `+` must reach Koha as it is.
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "cardnumber",
        "surname",
        "firstname",
        "branchcode",
        "categorycode",
        "email",
        "phone",
        "lang",
        "dateenrolled",
        "patron_attributes",
    ];
    let _ = w.write_record(header);
    for r in registered.iter().filter(|r| r.verified) {
        let phone = r
            .phone
            .clone()
            .filter(|p| p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)))
            .unwrap_or_default();
        let cells = [
            String::new(),
            r.family_name.clone(),
            r.given_name.clone(),
            r.branch.clone().unwrap_or_default(),
            r.category.clone().unwrap_or_default(),
            r.email.clone().unwrap_or_default(),
            phone,
            r.locale.clone().unwrap_or_default(),
            r.registered_on.map(|d| d.to_string()).unwrap_or_default(),
            format!("LECTERNID:{}", r.id),
        ];
        let _ = w.write_record(cells.iter().enumerate().map(|(i, c)| {
            if i == 6 {
                c.clone()
            } else {
                crate::report::inert(c).into_owned()
            }
        }));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn reader(page: &str) -> AccessContext {
    AccessContext {
        purpose: Purpose::SelfService,
        actor: Actor::Reader(page.to_string()),
    }
}

impl Lectern {
    fn link_key(&self) -> LinkKey {
        LinkKey::of(self.keyring())
    }

    /// The unused, unexpired link `token` stands for, if the host issued
    /// it for `purpose`.
    fn open_link(
        &self,
        token: &str,
        purpose: &LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<ReaderLink, LinkProblem>> {
        self.link_key()
            .open(self.store(), token, purpose, now)
            .map_err(Error::store)
    }

    /// The reader pages' public URL; an error when they are off.
    pub fn reader_pages(&self) -> Result<String> {
        self.config()
            .readers
            .public_url
            .clone()
            .ok_or_else(|| Error::Invalid {
                where_: "the configuration".into(),
                message: "reader pages are off: set `[readers] public-url` to the address readers \
                      reach the service at"
                    .into(),
            })
    }

    /// Whether `token` opens the page for `purpose` now, without using it.
    pub fn check_link(
        &self,
        token: &str,
        purpose: &LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), LinkProblem>> {
        Ok(self.open_link(token, purpose, now)?.map(|_| ()))
    }

    /// Opens the preference centre with the one-time link `token`, which
    /// it uses up; the page carries a session from then on.
    pub fn open_preferences(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<ReaderPrefs, LinkProblem>> {
        let key = self.link_key();
        let link = match self.open_link(token, &LinkPurpose::Preferences, now)? {
            Ok(l) => l,
            Err(p) => return Ok(Err(p)),
        };
        if !self
            .store_mut()
            .use_link(&link.id, now)
            .map_err(Error::store)?
        {
            return Ok(Err(LinkProblem::Used));
        }
        let session = key.session(&link, now + Duration::minutes(SESSION_MINUTES));
        self.prefs_view(&link, session, now).map(Ok)
    }

    /// The preference centre again, for a page that carries `session`.
    pub fn reader_preferences(
        &self,
        session: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<ReaderPrefs, LinkProblem>> {
        match self.session_link(session, now)? {
            Ok(link) => self.prefs_view(&link, session.to_string(), now).map(Ok),
            Err(p) => Ok(Err(p)),
        }
    }

    fn session_link(
        &self,
        session: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<ReaderLink, LinkProblem>> {
        let link = self
            .link_key()
            .session_link(self.store(), session, now)
            .map_err(Error::store)?;
        Ok(link.and_then(|l| {
            if l.purpose == LinkPurpose::Preferences.as_string() {
                Ok(l)
            } else {
                Err(LinkProblem::Invalid)
            }
        }))
    }

    fn reader_patron(&self, id: &str, now: DateTime<Utc>) -> Result<Patron> {
        let today = local_day(&self.config().notify, now);
        self.store()
            .patron(id, today)
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound("the link's reader is no longer stored".into()))
    }

    fn prefs_view(
        &self,
        link: &ReaderLink,
        session: String,
        now: DateTime<Utc>,
    ) -> Result<ReaderPrefs> {
        self.audit_read(
            reader("preferences"),
            vec![Field::Channels, Field::Consents, Field::Locale],
            &[&link.patron],
        )?;
        let patron = self.reader_patron(&link.patron, now)?;
        let prefs = self.preferences(&link.patron)?;
        let mut offered = Vec::new();
        if patron.email.is_some() {
            offered.push(Channel::Email);
        }
        if patron.phone.is_some() {
            offered.push(Channel::Sms);
        }
        offered.push(Channel::Print);
        let consents = patron.consents.unwrap_or_default();
        Ok(ReaderPrefs {
            session,
            locale: page_locale(patron.locale.as_deref()).to_string(),
            channels: offered
                .into_iter()
                .map(|c| (c, !prefs.opted_out.contains(&c)))
                .collect(),
            digest: prefs.digest,
            notice_days: prefs
                .notice_days
                .unwrap_or(self.config().notify.due_soon_days),
            marketing: consents.marketing,
            reading_history: consents.reading_history,
            awareness: prefs.awareness,
        })
    }

    /// Saves what the reader chose on the page that carries `session`;
    /// returns the page as saved and how many queued messages the change
    /// cancelled. A withdrawn consent takes effect at once and outlasts
    /// the next import.
    pub fn save_reader_preferences(
        &mut self,
        session: &str,
        choice: &ReaderChoice,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(ReaderPrefs, usize), LinkProblem>> {
        let link = match self.session_link(session, now)? {
            Ok(l) => l,
            Err(p) => return Ok(Err(p)),
        };
        if choice.notice_days > 30 || !LOCALES.contains(&choice.locale.as_str()) {
            return Err(Error::Invalid {
                where_: "the preferences".into(),
                message: "give 0 to 30 days of notice and a language of en or zh-CN".into(),
            });
        }
        self.audit_read(
            reader("preferences"),
            vec![Field::Channels, Field::Consents, Field::Locale],
            &[&link.patron],
        )?;
        let before = self.prefs_view(&link, session.to_string(), now)?;
        let offered: Vec<Channel> = before.channels.iter().map(|(c, _)| *c).collect();
        // Only the channels the page showed change: an opt-out of one it
        // did not show (no address for it now) stands.
        let mut opted_out: Vec<Channel> = self
            .preferences(&link.patron)?
            .opted_out
            .into_iter()
            .filter(|c| !offered.contains(c))
            .collect();
        opted_out.extend(
            offered
                .into_iter()
                .filter(|c| !choice.channels_on.contains(c)),
        );
        let prefs = Preferences {
            notice_days: Some(choice.notice_days),
            digest: choice.digest,
            opted_out,
            no_marketing: !choice.marketing,
            no_reading_history: !choice.reading_history,
            locale: Some(choice.locale.clone()),
            awareness: choice.awareness,
        };
        let cancelled = self.set_preferences(&link.patron, &prefs)?;
        let after = self.prefs_view(&link, session.to_string(), now)?;
        Ok(Ok((after, cancelled)))
    }

    /// One-click unsubscribe (RFC 8058) with `token`: no more news,
    /// surveys or invitations; notices about loans and holds still go.
    /// Returns how many queued messages it cancelled. The link works again,
    /// until it expires, as a mail client may post it twice.
    pub fn unsubscribe(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<usize, LinkProblem>> {
        // Used before or not, it unsubscribes: a reader who turned news
        // back on and posts the old link again means it.
        let link = match self
            .link_key()
            .verify(self.store(), token, &LinkPurpose::Unsubscribe, now)
            .map_err(Error::store)?
        {
            Ok(l) => l,
            Err(p) => return Ok(Err(p)),
        };
        self.audit_read(
            reader("unsubscribe"),
            vec![Field::Consents],
            &[&link.patron],
        )?;
        let mut prefs = self.preferences(&link.patron)?;
        prefs.no_marketing = true;
        let cancelled = self.set_preferences(&link.patron, &prefs)?;
        self.store_mut()
            .use_link(&link.id, now)
            .map_err(Error::store)?;
        Ok(Ok(cancelled))
    }

    /// Registers a reader from the web form: a patron marked
    /// web-registered with no card yet, and an email with a link to
    /// confirm the address, queued in the outbox. A second registration
    /// with an address already registered sends that reader a fresh link
    /// instead, so the form tells nobody who is registered.
    pub fn register(&mut self, r: &Registration, now: DateTime<Utc>) -> Result<()> {
        let base = self.reader_pages()?;
        let problems = r.problems(&self.config().readers);
        if !problems.is_empty() {
            return Err(Error::Invalid {
                where_: "the registration".into(),
                message: problems.join(" "),
            });
        }
        let email = r.email.trim().to_string();
        let today = local_day(&self.config().notify, now);
        let existing = self
            .store()
            .patrons_from(WEB_SOURCE)
            .map_err(Error::store)?;
        let known = self
            .store()
            .patrons_among(&existing, today)
            .map_err(Error::store)?
            .into_iter()
            .find(|p| {
                p.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&email))
            });
        let id = match known {
            Some(p) => p.id,
            None => {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).map_err(|e| Error::store(anyhow::anyhow!("{e}")))?;
                let id = format!("web-{}", hex::encode(bytes));
                self.audit_read(
                    reader("registration"),
                    vec![
                        Field::Name,
                        Field::Email,
                        Field::Phone,
                        Field::Category,
                        Field::HomeBranch,
                        Field::Locale,
                        Field::Consents,
                        Field::Attributes,
                    ],
                    &[&id],
                )?;
                let mut attributes = BTreeMap::new();
                attributes.insert(STATUS.to_string(), "unverified".to_string());
                attributes.insert(FAMILY.to_string(), r.family_name.trim().to_string());
                if !r.interests.is_empty() {
                    attributes.insert(INTERESTS.to_string(), r.interests.join(";"));
                }
                let zh = r.locale.starts_with("zh");
                let name = if zh {
                    format!("{}{}", r.family_name.trim(), r.given_name.trim())
                } else {
                    format!("{} {}", r.given_name.trim(), r.family_name.trim())
                };
                let mut channels = vec![Channel::Email];
                if r.phone.is_some() {
                    channels.push(Channel::Sms);
                }
                let record = PatronRecord {
                    patron: Patron {
                        id: id.clone(),
                        name: Some(name),
                        email: Some(email.clone()),
                        phone: r.phone.clone(),
                        category: Some(r.category.clone()),
                        home_branch: self.config().readers.branch.clone(),
                        enrolled_on: Some(today),
                        attributes: Some(attributes),
                        consents: Some(Consents {
                            marketing: r.consent_marketing,
                            reading_history: r.consent_reading_history,
                        }),
                        locale: Some(r.locale.clone()),
                        channels: Some(channels),
                        ..Patron::default()
                    },
                    active: true,
                    source: WEB_SOURCE.to_string(),
                };
                self.put_patrons(&[record])?;
                id
            }
        };
        let ttl = Duration::hours(self.config().readers.verify_hours.into());
        let stamp = now.timestamp().to_string();
        let token = self
            .link_key()
            .issue(
                self.store_mut(),
                &LinkPurpose::Verify,
                &id,
                &stamp,
                ttl,
                now,
            )
            .map_err(Error::store)?;
        let url = format!("{base}{}{token}", LinkPurpose::Verify.path());
        let zh = r.locale.starts_with("zh");
        let (subject, body) = if zh {
            (
                "请确认您的电子邮箱".to_string(),
                format!(
                    "您好！\n\n感谢您在图书馆网站注册。请打开以下链接确认您的电子邮箱（{} 小时内有效）：\n{url}\n\n如果您没有注册，请忽略本邮件。",
                    self.config().readers.verify_hours
                ),
            )
        } else {
            (
                "Please confirm your email address".to_string(),
                format!(
                    "Hello,\n\nThank you for registering with the library. Open this link to confirm \
                     your email address (it works for {} hours):\n{url}\n\nIf you did not register, \
                     ignore this email.",
                    self.config().readers.verify_hours
                ),
            )
        };
        self.queue_host_message(
            &id,
            "registration-verify",
            &stamp,
            &r.locale,
            &subject,
            &body,
            now,
        )
    }

    /// Queues a message the host writes itself (not a plugin): transactional,
    /// on email.
    #[allow(clippy::too_many_arguments)]
    fn queue_host_message(
        &mut self,
        patron: &str,
        kind: &str,
        event: &str,
        locale: &str,
        subject: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let event = format!("{kind}/{event}");
        let key = hex::encode(&Sha256::digest(format!("{event}\u{1f}{patron}").as_bytes())[..16]);
        let day = local_day(&self.config().notify, now);
        self.store_mut()
            .enqueue(&[Queued {
                dedupe_key: key,
                patron: patron.to_string(),
                event,
                event_kind: kind.to_string(),
                marketing: false,
                plugin: "lectern".into(),
                channel: Channel::Email,
                locale: locale.to_string(),
                subject: subject.to_string(),
                body: body.to_string(),
                day,
                digest: false,
                not_before: now,
            }])
            .map_err(Error::store)?;
        Ok(())
    }

    /// Writes `records` as one import from the web.
    fn put_patrons(&mut self, records: &[PatronRecord]) -> Result<()> {
        let mut tx = self
            .store_mut()
            .import("web-registration")
            .map_err(Error::store)?;
        let mut written = Written::default();
        for r in records {
            written.count(tx.put_patron(r).map_err(Error::store)?);
        }
        tx.commit(written, 0).map_err(Error::store)
    }

    /// Confirms a registration's email address with the one-time link
    /// `token`.
    pub fn verify_registration(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), LinkProblem>> {
        let link = match self.open_link(token, &LinkPurpose::Verify, now)? {
            Ok(l) => l,
            Err(p) => return Ok(Err(p)),
        };
        self.audit_read(
            reader("registration"),
            vec![Field::Attributes],
            &[&link.patron],
        )?;
        if !self
            .store_mut()
            .use_link(&link.id, now)
            .map_err(Error::store)?
        {
            return Ok(Err(LinkProblem::Used));
        }
        let today = local_day(&self.config().notify, now);
        let mut data = self
            .store()
            .patron_data(&link.patron, today)
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound("the link's reader is no longer stored".into()))?;
        data.patron
            .attributes
            .get_or_insert_with(BTreeMap::new)
            .insert(STATUS.to_string(), "verified".to_string());
        self.put_patrons(&[PatronRecord {
            patron: data.patron,
            active: true,
            source: WEB_SOURCE.to_string(),
        }])?;
        Ok(Ok(()))
    }

    /// The readers who registered on the web, as `role` may list them: a
    /// role the policy lets see names and contacts, audited first.
    pub fn registrations(&self, role: &str) -> Result<Vec<Registered>> {
        let ctx = self.view_keeping(
            role,
            &[Field::Name, Field::Email, Field::Phone],
            "the readers who registered",
        )?;
        let ids = self
            .store()
            .patrons_from(WEB_SOURCE)
            .map_err(Error::store)?;
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.audit_read(
            ctx,
            vec![
                Field::Name,
                Field::Email,
                Field::Phone,
                Field::Category,
                Field::HomeBranch,
                Field::Locale,
                Field::EnrolledOn,
                Field::Attributes,
            ],
            &refs,
        )?;
        let today = Utc::now().date_naive();
        let patrons = self
            .store()
            .patrons_among(&ids, today)
            .map_err(Error::store)?;
        Ok(patrons
            .into_iter()
            .map(|p| {
                let attrs = p.attributes.unwrap_or_default();
                let family = attrs.get(FAMILY).cloned().unwrap_or_default();
                let name = p.name.unwrap_or_default();
                let given = name
                    .strip_suffix(&family)
                    .or_else(|| name.strip_prefix(&family))
                    .unwrap_or(&name)
                    .trim()
                    .to_string();
                Registered {
                    id: p.id,
                    given_name: given,
                    family_name: family,
                    email: p.email,
                    phone: p.phone,
                    category: p.category,
                    branch: p.home_branch,
                    locale: p.locale,
                    interests: attrs
                        .get(INTERESTS)
                        .map(|s| s.split(';').map(str::to_string).collect())
                        .unwrap_or_default(),
                    verified: attrs.get(STATUS).is_some_and(|s| s == "verified"),
                    registered_on: p.enrolled_on,
                }
            })
            .collect())
    }

    /// The surveys the library offers (`[readers] surveys`).
    pub fn surveys(&self) -> Result<Vec<SurveyDef>> {
        crate::survey::load_all(&self.config().readers.surveys)
    }

    /// The survey `id`.
    pub fn survey(&self, id: &str) -> Result<SurveyDef> {
        self.surveys()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no survey `{id}`: list its file under `[readers] surveys`"
                ))
            })
    }

    /// The survey the one-time link `token` opens, with the reader's
    /// language, without using the link.
    pub fn open_survey(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(SurveyDef, String), LinkProblem>> {
        let link = match self.open_link(token, &LinkPurpose::Survey(String::new()), now)? {
            Ok(l) => l,
            Err(p) => return Ok(Err(p)),
        };
        let id = link.purpose.trim_start_matches("survey:");
        let Ok(def) = self.survey(id) else {
            return Ok(Err(LinkProblem::Invalid));
        };
        self.audit_read(reader("survey"), vec![Field::Locale], &[&link.patron])?;
        let patron = self.reader_patron(&link.patron, now)?;
        Ok(Ok((def, page_locale(patron.locale.as_deref()).to_string())))
    }

    /// Stores a reader's answers from the survey form `form` (`q.<id>`
    /// fields; `link=yes` to keep their name with the answers where the
    /// survey asks, `use=yes` to let the library use them), using up the
    /// link. Anonymous answers keep only the reader's category and segment.
    pub fn answer_survey(
        &mut self,
        token: &str,
        form: &[(String, String)],
        lang: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), AnswerProblem>> {
        let (def, _) = match self.open_survey(token, now)? {
            Ok(s) => s,
            Err(p) => return Ok(Err(AnswerProblem::Link(p))),
        };
        let answers = match def.answers_from(form, lang) {
            Ok(a) => a,
            Err(problems) => return Ok(Err(AnswerProblem::Answers(problems))),
        };
        let yes = |k: &str| form.iter().any(|(f, v)| f == k && v == "yes");
        let link = self
            .open_link(token, &LinkPurpose::Survey(def.id.clone()), now)?
            .map_err(AnswerProblem::Link);
        let link = match link {
            Ok(l) => l,
            Err(p) => return Ok(Err(p)),
        };
        let linked = def.link_answers && yes("link");
        self.audit_read(
            reader("survey"),
            vec![Field::Category, Field::Segments],
            &[&link.patron],
        )?;
        let patron = self.reader_patron(&link.patron, now)?;
        let key_segments = &self.config().segments.key_readers;
        let segments = patron.segments.unwrap_or_default();
        let segment = segments
            .values()
            .find(|s| key_segments.contains(s))
            .or_else(|| segments.values().next())
            .cloned();
        let use_for_service = linked && yes("use");
        let attributes = if use_for_service {
            def.attributes_of(&answers)
        } else {
            Vec::new()
        };
        let stored = crate::store::SurveyAnswers {
            attributes,
            survey: def.id.clone(),
            patron: linked.then(|| link.patron.clone()),
            category: patron.category,
            segment,
            locale: page_locale(Some(lang)).to_string(),
            answered_on: local_day(&self.config().notify, now),
            use_for_service,
            answers,
        };
        if !self
            .store_mut()
            .add_answers(&link.id, &stored, now)
            .map_err(Error::store)?
        {
            return Ok(Err(AnswerProblem::Link(LinkProblem::Used)));
        }
        Ok(Ok(()))
    }

    /// The results of survey `id`, grouped `by`, as `role` may read
    /// aggregates, with every group of fewer than `k` readers withheld.
    pub fn survey_results(
        &self,
        id: &str,
        by: GroupBy,
        k: usize,
        role: &str,
        lang: &str,
    ) -> Result<SurveyResults> {
        crate::pipeline::check_k(k, self.config().k_floor)?;
        let ctx = self.staff(Purpose::Analytics, role)?;
        let def = self.survey(id)?;
        let answers = self.store().survey_answers(id).map_err(Error::store)?;
        self.audit_read(ctx, vec![Field::Category, Field::Segments], &[])?;
        Ok(crate::survey::results(&def, &answers, by, k, lang))
    }

    /// Links `events`' hosted-survey invitations to the survey page: each
    /// reader's own one-time link replaces the survey's URL.
    pub(crate) fn link_survey_invitations(
        &mut self,
        survey: &str,
        events: &mut [crate::model::Event],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let base = self.reader_pages()?;
        let ttl = Duration::days(self.config().readers.link_days.into());
        let key = self.link_key();
        let purpose = LinkPurpose::Survey(survey.to_string());
        for e in events {
            if let crate::model::EventKind::SurveyInvitation { url, .. } = &mut e.kind {
                // A link per invitation day, so a reminder carries a fresh
                // one; the store takes one answer per reader per survey.
                let with = format!("{survey}/{}", now.date_naive());
                let token = key
                    .issue(self.store_mut(), &purpose, &e.patron, &with, ttl, now)
                    .map_err(Error::store)?;
                *url = format!("{base}{}{token}", purpose.path());
            }
        }
        Ok(())
    }
}
