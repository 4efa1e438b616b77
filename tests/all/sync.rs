//! `lectern sync koha` against a server that behaves as Koha's REST API
//! documents (`tests/fixtures/ils/koha/REST.md`): client credentials at
//! `/api/v1/oauth/token`, `/api/v1/patrons` in pages with `Link` and
//! `X-Total-Count`, and a `q` filter on `updated_on`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use lectern_tests::{lectern_bin, repo};
use serde_json::{Value, json};

/// What the fake Koha holds and how it behaves.
#[derive(Default)]
struct Koha {
    patrons: Vec<Value>,
    /// Added to the true total in `X-Total-Count`.
    miscount: i64,
    /// Every query string `/api/v1/patrons` was asked with.
    queries: Vec<String>,
}

const ID: &str = "lectern-sync";
const SECRET: &str = "s3cret";
const TOKEN: &str = "koha-access-token";

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Serves the fake Koha; returns its base URL.
fn serve(koha: Arc<Mutex<Koha>>) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let me = base.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let url = req.url().to_string();
            let (path, query) = url.split_once('?').unwrap_or((&url, ""));
            let json_header =
                tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
            let response = if path == "/api/v1/oauth/token" {
                let mut body = String::new();
                req.as_reader().read_to_string(&mut body).unwrap();
                let ok = query_param(&body, "grant_type").as_deref() == Some("client_credentials")
                    && query_param(&body, "client_id").as_deref() == Some(ID)
                    && query_param(&body, "client_secret").as_deref() == Some(SECRET);
                if ok {
                    tiny_http::Response::from_string(
                        json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})
                            .to_string(),
                    )
                } else {
                    tiny_http::Response::from_string(r#"{"error":"Invalid client"}"#)
                        .with_status_code(403)
                }
            } else if path == "/api/v1/patrons" {
                let authorised = req.headers().iter().any(|h| {
                    h.field.equiv("Authorization") && h.value.as_str() == format!("Bearer {TOKEN}")
                });
                if !authorised {
                    tiny_http::Response::from_string(r#"{"error":"Authentication failure."}"#)
                        .with_status_code(401)
                } else {
                    let mut koha = koha.lock().unwrap();
                    koha.queries.push(query.to_string());
                    let since = query_param(query, "q").map(|q| {
                        let q: Value = serde_json::from_str(&q).unwrap();
                        q["updated_on"][">="].as_str().unwrap().to_string()
                    });
                    let matching: Vec<&Value> = koha
                        .patrons
                        .iter()
                        .filter(|p| {
                            since
                                .as_deref()
                                .is_none_or(|s| p["updated_on"].as_str().unwrap() >= s)
                        })
                        .collect();
                    let page: usize = query_param(query, "_page").unwrap().parse().unwrap();
                    let per: usize = query_param(query, "_per_page").unwrap().parse().unwrap();
                    let last = matching.len().div_ceil(per).max(1);
                    let items: Vec<&Value> = matching
                        .iter()
                        .skip((page - 1) * per)
                        .take(per)
                        .copied()
                        .collect();
                    let link = |p: usize, rel: &str| {
                        let mut q: Vec<String> = query
                            .split('&')
                            .filter(|kv| !kv.starts_with("_page="))
                            .map(str::to_string)
                            .collect();
                        q.push(format!("_page={p}"));
                        format!("<{me}/api/v1/patrons?{}>; rel=\"{rel}\"", q.join("&"))
                    };
                    let mut links = vec![link(1, "first"), link(last, "last")];
                    if page < last {
                        links.push(link(page + 1, "next"));
                    }
                    let total = matching.len() as i64 + koha.miscount;
                    tiny_http::Response::from_string(serde_json::to_string(&items).unwrap())
                        .with_header(
                            tiny_http::Header::from_bytes("Link", links.join(", ")).unwrap(),
                        )
                        .with_header(
                            tiny_http::Header::from_bytes("X-Total-Count", total.to_string())
                                .unwrap(),
                        )
                }
            } else {
                tiny_http::Response::from_string("{}").with_status_code(404)
            };
            let _ = req.respond(response.with_header(json_header));
        }
    });
    base
}

fn sync(dir: &Path, base: &str, secret: &str, extra: &[&str]) -> Output {
    Command::new(lectern_bin())
        .current_dir(dir)
        .args(["--no-cache", "--json", "--db"])
        .arg(dir.join("lectern.db"))
        .args([
            "sync",
            "koha",
            "--url",
            base,
            "--client-id",
            ID,
            "--per-page",
            "2",
        ])
        .args(extra)
        .env("LECTERN_KOHA_CLIENT_SECRET", secret)
        .env_remove("LECTERN_DB")
        .env_remove("LECTERN_CONFIG")
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn koha_sync_pages_through_the_rest_api_and_then_takes_only_what_changed() {
    let mut patrons: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/koha/patrons.json")).unwrap(),
    )
    .unwrap();
    for (i, p) in patrons.iter_mut().enumerate() {
        p["updated_on"] = json!(format!("2026-11-0{}T10:00:00+00:00", i + 1));
    }
    let n = patrons.len();
    assert!(n >= 3, "pages of two need at least three patrons");
    let koha = Arc::new(Mutex::new(Koha {
        patrons,
        ..Koha::default()
    }));
    let base = serve(koha.clone());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // A wrong secret: refused, nothing written.
    let out = sync(dir, &base, "wrong", &[]);
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The first sync takes every patron, a page at a time.
    let first = report(&sync(dir, &base, SECRET, &[]));
    assert_eq!(first["imported"], n, "{first}");
    let queries = std::mem::take(&mut koha.lock().unwrap().queries);
    assert_eq!(queries.len(), n.div_ceil(2), "{queries:?}");
    assert!(queries.iter().all(|q| !q.contains("q=")), "{queries:?}");

    // The next takes only what changed since: the last patron again (the
    // watermark is inclusive), and one changed in Koha meanwhile.
    koha.lock().unwrap().patrons[0]["updated_on"] = json!("2026-11-20T09:00:00+00:00");
    let second = report(&sync(dir, &base, SECRET, &[]));
    assert_eq!(
        (second["imported"].as_u64(), second["updated"].as_u64()),
        (Some(0), Some(2))
    );
    let queries = std::mem::take(&mut koha.lock().unwrap().queries);
    let q = query_param(&queries[0], "q").expect("an incremental query");
    assert_eq!(
        serde_json::from_str::<Value>(&q).unwrap(),
        json!({"updated_on": {">=": format!("2026-11-0{n}T10:00:00+00:00")}})
    );

    // Koha's count and its pages disagree: nothing is imported, and the
    // next sync starts from the same place.
    {
        let mut k = koha.lock().unwrap();
        k.miscount = 1;
        k.patrons[1]["updated_on"] = json!("2026-11-25T09:00:00+00:00");
        k.patrons[1]["surname"] = json!("Changed");
    }
    let out = sync(dir, &base, SECRET, &[]);
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("X-Total-Count says 3"));
    koha.lock().unwrap().miscount = 0;
    let queries = std::mem::take(&mut koha.lock().unwrap().queries);
    let again = report(&sync(dir, &base, SECRET, &[]));
    assert_eq!(again["updated"], 2, "{again}");
    let retried = std::mem::take(&mut koha.lock().unwrap().queries);
    assert_eq!(query_param(&retried[0], "q"), query_param(&queries[0], "q"));
}
