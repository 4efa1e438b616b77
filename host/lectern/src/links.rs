//! Links to reader pages. Each is signed under a key derived from the
//! host's, expires, opens one page for one patron, and (but for the
//! unsubscribe link, which a mail client may post more than once) works
//! once.
//!
//! A link's URL holds `<id>.<signature>`. The id is a keyed hash of the
//! patron, the purpose and what the link came with (a message, a survey),
//! so a message sent again carries the same link and nothing in the URL
//! names the patron. The store keeps the id's row: whose it is, what it
//! opens, until when, and when it was used. The signature binds the id to
//! that purpose and expiry, so neither can be changed in the store or the
//! URL without the link failing.
//!
//! Opening a one-time link gives a session: a signed token, good for
//! [`SESSION_MINUTES`], that the page's forms carry instead of a cookie.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::keys::Keyring;
use crate::store::{ReaderLink, Readers};

/// How long a page opened from a one-time link stays open.
pub const SESSION_MINUTES: i64 = 30;

/// What a link opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPurpose {
    /// The preference centre.
    Preferences,
    /// One-click unsubscribe from marketing.
    Unsubscribe,
    /// Confirming the email address of a registration.
    Verify,
    /// Answering the survey with this id.
    Survey(String),
}

impl LinkPurpose {
    /// The purpose as the store keeps it.
    pub fn as_string(&self) -> String {
        match self {
            LinkPurpose::Preferences => "preferences".into(),
            LinkPurpose::Unsubscribe => "unsubscribe".into(),
            LinkPurpose::Verify => "verify".into(),
            LinkPurpose::Survey(id) => format!("survey:{id}"),
        }
    }

    /// The path of its page under the public URL.
    pub fn path(&self) -> &'static str {
        match self {
            LinkPurpose::Preferences => "/r/p/",
            LinkPurpose::Unsubscribe => "/r/u/",
            LinkPurpose::Verify => "/r/v/",
            LinkPurpose::Survey(_) => "/r/s/",
        }
    }
}

/// Why a link does not open its page. None of them says whose it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// Not a link the host made, made for another page, or its patron's
    /// data was erased.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Used already.
    Used,
}

/// The key reader links are signed with: derived from the host's audit
/// key, so it needs no key file of its own and never leaves the host.
#[derive(Clone)]
pub(crate) struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl LinkKey {
    pub(crate) fn of(keyring: &Keyring) -> LinkKey {
        let mut mac = HmacSha256::new_from_slice(keyring.audit_key())
            .expect("HMAC takes a key of any length");
        mac.update(b"lectern reader links v1");
        LinkKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, parts: &[&str]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(&[0x1f]);
        }
        mac.finalize().into_bytes().into()
    }

    fn link_id(&self, purpose: &str, patron: &str, with: &str) -> String {
        B64.encode(&self.mac(&["id", purpose, patron, with])[..16])
    }

    fn signature(&self, kind: &str, id: &str, purpose: &str, expires: DateTime<Utc>) -> String {
        B64.encode(&self.mac(&[kind, id, purpose, &expires.timestamp().to_string()])[..12])
    }

    /// The URL token of `link`.
    fn token(&self, link: &ReaderLink) -> String {
        let sig = self.signature("link", &link.id, &link.purpose, link.expires_at);
        format!("{}.{sig}", link.id)
    }

    /// Issues the link for `purpose` to `patron`, made for `with` (a
    /// message's id, a survey's), working for `ttl` from `now`. Issuing
    /// the same link again gives the same token, with its first expiry.
    pub(crate) fn issue(
        &self,
        store: &mut dyn Readers,
        purpose: &LinkPurpose,
        patron: &str,
        with: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let purpose = purpose.as_string();
        let mut link = ReaderLink {
            id: self.link_id(&purpose, patron, with),
            patron: patron.to_string(),
            purpose,
            // Whole seconds, as the signature covers them.
            expires_at: DateTime::from_timestamp((now + ttl).timestamp(), 0).unwrap_or(now),
            used_at: None,
        };
        if !store.add_link(&link)? {
            link = store
                .link(&link.id)?
                .ok_or_else(|| anyhow::anyhow!("a reader link vanished as it was issued"))?;
        }
        Ok(self.token(&link))
    }

    /// The link `token` stands for, if it is one the host issued for
    /// `purpose` (a survey link for any survey when `purpose` is a survey
    /// with an empty id), still valid at `now` and not used yet. Opening
    /// it does not use it.
    pub(crate) fn open(
        &self,
        store: &dyn Readers,
        token: &str,
        purpose: &LinkPurpose,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Result<ReaderLink, LinkProblem>> {
        Ok(self.verify(store, token, purpose, now)?.and_then(|link| {
            if link.used_at.is_some() {
                Err(LinkProblem::Used)
            } else {
                Ok(link)
            }
        }))
    }

    /// The link `token` stands for, if the host issued it for `purpose`
    /// and it has not expired, used or not.
    pub(crate) fn verify(
        &self,
        store: &dyn Readers,
        token: &str,
        purpose: &LinkPurpose,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Result<ReaderLink, LinkProblem>> {
        let Some((id, _)) = token.split_once('.') else {
            return Ok(Err(LinkProblem::Invalid));
        };
        if id.len() != 22
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Ok(Err(LinkProblem::Invalid));
        }
        let Some(link) = store.link(id)? else {
            return Ok(Err(LinkProblem::Invalid));
        };
        let expected = self.token(&link);
        if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            return Ok(Err(LinkProblem::Invalid));
        }
        let fits = match purpose {
            LinkPurpose::Survey(s) if s.is_empty() => link.purpose.starts_with("survey:"),
            p => link.purpose == p.as_string(),
        };
        if !fits {
            return Ok(Err(LinkProblem::Invalid));
        }
        if link.expires_at <= now {
            return Ok(Err(LinkProblem::Expired));
        }
        Ok(Ok(link))
    }

    /// A session on the page `link` opened, good until `until`.
    pub(crate) fn session(&self, link: &ReaderLink, until: DateTime<Utc>) -> String {
        let until = until.timestamp();
        let sig = B64.encode(&self.mac(&["session", &link.id, &until.to_string()])[..16]);
        format!("{}.{until}.{sig}", link.id)
    }

    /// The link a session token was opened with, if the token is one the
    /// host made and has not run out at `now`.
    pub(crate) fn session_link(
        &self,
        store: &dyn Readers,
        session: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Result<ReaderLink, LinkProblem>> {
        let mut parts = session.splitn(3, '.');
        let (Some(id), Some(until), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(Err(LinkProblem::Invalid));
        };
        let Ok(until_secs) = until.parse::<i64>() else {
            return Ok(Err(LinkProblem::Invalid));
        };
        let expected = B64.encode(&self.mac(&["session", id, until])[..16]);
        if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
            return Ok(Err(LinkProblem::Invalid));
        }
        if until_secs <= now.timestamp() {
            return Ok(Err(LinkProblem::Expired));
        }
        Ok(store.link(id)?.ok_or(LinkProblem::Invalid))
    }
}

/// The links every message carries: to the preference centre, and to
/// unsubscribe from marketing in one click.
#[derive(Debug, Clone)]
pub(crate) struct MessageLinks {
    pub(crate) key: LinkKey,
    /// The public URL, without a trailing `/`.
    pub(crate) base: String,
    pub(crate) ttl: Duration,
}

/// The two URLs one message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageUrls {
    pub(crate) preferences: String,
    pub(crate) unsubscribe: String,
}

impl MessageLinks {
    /// The links for message `message` to `patron`.
    pub(crate) fn for_message(
        &self,
        store: &mut dyn Readers,
        patron: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<MessageUrls> {
        let url = |store: &mut dyn Readers, p: LinkPurpose| -> anyhow::Result<String> {
            let token = self.key.issue(store, &p, patron, message, self.ttl, now)?;
            Ok(format!("{}{}{token}", self.base, p.path()))
        };
        Ok(MessageUrls {
            preferences: url(store, LinkPurpose::Preferences)?,
            unsubscribe: url(store, LinkPurpose::Unsubscribe)?,
        })
    }
}

/// The footer a message ends with, in its language.
pub(crate) fn footer(locale: &str, urls: &MessageUrls, short: bool) -> String {
    let zh = locale.to_ascii_lowercase().starts_with("zh");
    match (zh, short) {
        (false, true) => format!("Settings: {}", urls.preferences),
        (true, true) => format!("设置：{}", urls.preferences),
        (false, false) => format!(
            "--\nChoose how and when the library writes to you: {}\n\
             Stop news, surveys and invitations: {}",
            urls.preferences, urls.unsubscribe
        ),
        (true, false) => format!(
            "--\n设置图书馆与您联系的方式和时间：{}\n退订新书通报、调查和邀请：{}",
            urls.preferences, urls.unsubscribe
        ),
    }
}
