//! Pulling patrons from Koha's REST API: an OAuth2 token by client
//! credentials, `/api/v1/patrons` page by page (`_page`, `_per_page`,
//! following `Link: rel="next"`), the count checked against
//! `X-Total-Count`, and only patrons changed since the last sync
//! (`updated_on`). The pages are staged in a private temporary file and
//! imported in one transaction by the Koha importer's rules, so a sync is
//! whole or reported, like an import.

use std::io::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::import::{Format, ImportOptions, ImportReport};

/// Where a library's Koha is, and the API key Lectern uses there.
#[derive(Debug, Clone)]
pub struct KohaSource {
    /// Koha's base URL, such as `https://koha.example.org`.
    pub url: String,
    /// The API key's client id.
    pub client_id: String,
    /// The API key's secret.
    pub client_secret: crate::config::Secret,
    /// Patrons per page.
    pub per_page: u32,
    /// Every patron, not only those changed since the last sync.
    pub full: bool,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Pages read.
    pub pages: usize,
    /// Patrons read.
    pub patrons: usize,
    /// Changed since this time (Koha's `updated_on`), or everything.
    pub since: Option<String>,
    /// The latest `updated_on` read: where the next sync starts.
    pub watermark: Option<String>,
    /// The import of what was read.
    #[serde(skip)]
    pub import: ImportReport,
}

/// The setting that keeps where the last sync ended.
const WATERMARK: &str = "sync.koha.updated_on";

fn fail(message: String) -> Error {
    Error::Invalid {
        where_: "Koha's REST API".into(),
        message,
    }
}

fn unreachable(e: impl std::fmt::Display) -> Error {
    Error::store(anyhow::anyhow!(
        "Koha did not answer ({e}); check the URL and that Koha is up, then run the sync again"
    ))
}

/// The URL of `rel="next"` in a `Link` header, if there is one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// The scheme, host and port of `url`: a `next` link must not take the
/// token anywhere else.
fn origin(url: &str) -> Option<&str> {
    let after = url.find("://")? + 3;
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    Some(&url[..end])
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn token(agent: &ureq::Agent, source: &KohaSource, base: &str) -> Result<String> {
    let mut resp = agent
        .post(format!("{base}/api/v1/oauth/token"))
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_id", source.client_id.as_str()),
            ("client_secret", source.client_secret.expose()),
        ])
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body: Value = resp
        .body_mut()
        .read_to_string()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    match (status, body.get("access_token").and_then(Value::as_str)) {
        (200, Some(t)) => Ok(t.to_string()),
        (400, _) => Err(Error::Config(anyhow::anyhow!(
            "Koha refused the client-credentials grant ({}); turn on the \
             RESTOAuth2ClientCredentials system preference",
            body["error"].as_str().unwrap_or("no reason given")
        ))),
        (401 | 403, _) => Err(Error::Denied(format!(
            "Koha refused the API key `{}` ({}); check the client id and secret",
            source.client_id,
            body["error"].as_str().unwrap_or("no reason given")
        ))),
        (s, _) => Err(fail(format!(
            "the token endpoint answered {s} without an access token"
        ))),
    }
}

impl Lectern {
    /// Pulls the patrons changed in Koha since the last sync (or all of
    /// them, `full`), and imports them by the Koha importer's rules.
    /// `progress` hears patrons read and Koha's total. Nothing is
    /// imported, and the next sync starts from the same place, if any
    /// page fails or the count does not match `X-Total-Count`.
    pub fn sync_koha(
        &mut self,
        source: &KohaSource,
        options: ImportOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SyncReport> {
        let base = source.url.trim_end_matches('/').to_string();
        let home = origin(&base)
            .ok_or_else(|| {
                Error::Config(anyhow::anyhow!(
                    "the Koha URL {base:?} is not a URL; give one such as https://koha.example.org"
                ))
            })?
            .to_string();
        let agent = agent();
        let mut bearer = token(&agent, source, &base)?;
        let since = if source.full {
            None
        } else {
            self.store().setting(WATERMARK).map_err(Error::store)?
        };
        // In a fixed order, so that pages of an offset cannot skip a
        // patron or give one twice.
        let mut url = format!(
            "{base}/api/v1/patrons?_page=1&_per_page={}&_order_by=%2Bpatron_id",
            source.per_page.max(1)
        );
        if let Some(since) = &since {
            let q = serde_json::json!({ "updated_on": { ">=": since } }).to_string();
            url.push_str("&q=");
            url.push_str(&percent(&q));
        }
        let staged = tempfile::NamedTempFile::new()
            .map_err(|e| Error::store(anyhow::anyhow!("cannot stage the patrons: {e}")))?;
        let mut out = std::io::BufWriter::new(staged.as_file());
        let write_err = |e: std::io::Error| Error::store(anyhow::anyhow!("cannot stage: {e}"));
        out.write_all(b"[").map_err(write_err)?;
        let (mut pages, mut patrons, mut total) = (0usize, 0usize, None::<usize>);
        let mut watermark = since.clone();
        let mut refreshed = false;
        loop {
            let mut resp = agent
                .get(&url)
                .header("Authorization", &format!("Bearer {bearer}"))
                .header("Accept", "application/json")
                .header("x-koha-embed", "extended_attributes")
                .call()
                .map_err(unreachable)?;
            let status = resp.status().as_u16();
            if status == 401 && !refreshed {
                // The token lasts an hour; a long sync gets another once.
                bearer = token(&agent, source, &base)?;
                refreshed = true;
                continue;
            }
            if status != 200 {
                return Err(fail(format!(
                    "{url} answered {status}; nothing was imported"
                )));
            }
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if let Some(t) = header("x-total-count") {
                let t: usize = t
                    .trim()
                    .parse()
                    .map_err(|_| fail(format!("X-Total-Count {t:?} is not a count")))?;
                if total.is_some_and(|before| before != t) {
                    return Err(fail(format!(
                        "X-Total-Count changed from {} to {t} during the sync (patrons changed \
                         in Koha meanwhile); nothing was imported, run it again",
                        total.unwrap_or(0)
                    )));
                }
                total = Some(t);
            }
            let link = header("link");
            let bytes = resp
                .body_mut()
                .with_config()
                .limit(256 * 1024 * 1024)
                .read_to_vec()
                .map_err(unreachable)?;
            let page: Value = serde_json::from_slice(&bytes)
                .map_err(|e| fail(format!("page {} is not JSON: {e}", pages + 1)))?;
            let Value::Array(items) = page else {
                return Err(fail(format!("page {} is not a list of patrons", pages + 1)));
            };
            pages += 1;
            for item in &items {
                if patrons > 0 {
                    out.write_all(b",").map_err(write_err)?;
                }
                serde_json::to_writer(&mut out, item)
                    .map_err(|e| Error::store(anyhow::anyhow!("cannot stage: {e}")))?;
                patrons += 1;
                if let Some(u) = item.get("updated_on").and_then(Value::as_str)
                    && watermark.as_deref().is_none_or(|w| u > w)
                {
                    watermark = Some(u.to_string());
                }
            }
            progress(patrons as u64, total.unwrap_or(0) as u64);
            let Some(next) = link.as_deref().and_then(next_link) else {
                break;
            };
            if origin(&next) != Some(home.as_str()) {
                return Err(fail(format!(
                    "the next page is at {next}, outside {home}; the token is not sent there, and \
                     nothing was imported"
                )));
            }
            // A server that never ends its pages is stopped: by its own
            // count, or, without one, at a million pages.
            if items.is_empty()
                || total.is_some_and(|t| patrons > t)
                || pages >= 1_000_000
                || next == url
            {
                return Err(fail(format!(
                    "Koha's pages go on past the {} patrons it counted; nothing was imported",
                    total.unwrap_or(patrons)
                )));
            }
            url = next;
        }
        out.write_all(b"]").map_err(write_err)?;
        out.flush().map_err(write_err)?;
        drop(out);
        if let Some(t) = total
            && t != patrons
        {
            return Err(fail(format!(
                "X-Total-Count says {t} patrons and the pages held {patrons}; nothing was \
                 imported, run it again"
            )));
        }
        let mut import = self.import(
            Format::Koha,
            &[staged.path().to_path_buf()],
            options,
            &mut |_| {},
        )?;
        // A skipped patron is where Koha has it, not in the staged file.
        for skip in &mut import.skipped {
            skip.file = format!("{base}/api/v1/patrons").into();
        }
        if let Some(w) = &watermark {
            self.store_mut()
                .set_setting(WATERMARK, Some(w))
                .map_err(Error::store)?;
        }
        Ok(SyncReport {
            pages,
            patrons,
            since,
            watermark,
            import,
        })
    }
}

/// `s` as a URL query value.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_the_others() {
        let h = r#"<https://k.example/api/v1/patrons?_page=1&_per_page=2>; rel="first", <https://k.example/api/v1/patrons?_page=3&_per_page=2>; rel="next", <https://k.example/api/v1/patrons?_page=9&_per_page=2>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://k.example/api/v1/patrons?_page=3&_per_page=2")
        );
        assert_eq!(next_link(r#"<https://k/x>; rel="last""#), None);
        assert_eq!(
            origin("https://k.example:8443/api/v1"),
            Some("https://k.example:8443")
        );
        assert_eq!(origin("nonsense"), None);
    }
}
