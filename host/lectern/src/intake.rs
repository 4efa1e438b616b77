//! Events as each ILS sends them, read into the inbox's shape: Koha's
//! plugin hooks, FOLIO's mod-pubsub and storage domain events, Alma's
//! webhooks. Each reader takes the body as the ILS wrote it and names the
//! field that is wrong when it cannot be read.
//!
//! The shapes, and where each ILS's source defines them, are in
//! `tests/fixtures/ils/`.

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::config::Clock;
use crate::error::{Error, Result};
use crate::import::{day, local_date, required, required_day, text, with_clock};
use crate::store::{Circulation, HoldFields, InboxEvent, LoanFields};

fn bad(ils: &str, field: &str, message: &str) -> Error {
    Error::Invalid {
        where_: format!("the {ils} event's `{field}`"),
        message: message.to_string(),
    }
}

fn field<T>(ils: &str, r: std::result::Result<T, (String, String)>) -> Result<T> {
    r.map_err(|(f, m)| bad(ils, &f, &m))
}

/// A short, stable id for a body that carries none: the same body sent
/// again is the same event.
fn digest_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..16])
}

/// The longest id an ILS's record may have, in characters.
const MAX_RECORD_ID: usize = 127;

/// A required id: text with something in it besides spaces, at most 127
/// characters once trimmed, or a whole number.
fn id_of(ils: &str, v: &Value, path: &[&str], name: &str) -> Result<String> {
    let mut cur = Some(v);
    for p in path {
        cur = cur.and_then(|c| c.get(p));
    }
    match cur {
        Some(Value::Number(n)) if n.is_i64() => Ok(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            let s = crate::import::clean(s.trim());
            if s.chars().count() > MAX_RECORD_ID {
                return Err(bad(
                    ils,
                    name,
                    &format!("longer than {MAX_RECORD_ID} characters"),
                ));
            }
            Ok(s)
        }
        None | Some(Value::Null) => Err(bad(ils, name, "missing")),
        Some(_) => Err(bad(ils, name, "give text or a whole number")),
    }
}

fn time_of(s: Option<String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One of Koha's plugin hooks, `after_circ_action` or `after_hold_action`,
/// as a plugin forwards its parameters: `{"action": …, "payload": {…}}`.
/// A check-in whose borrower is `anonymous` (Koha's `AnonymousPatron`)
/// is kept with no patron.
pub fn koha_hook(
    body: &Value,
    anonymous: Option<&str>,
    now: DateTime<Utc>,
    clock: Clock,
) -> Result<InboxEvent> {
    // Dates with a zone count on the library's days, as in an import.
    with_clock(clock, || koha_hook_on(body, anonymous, now))
}

fn koha_hook_on(body: &Value, anonymous: Option<&str>, now: DateTime<Utc>) -> Result<InboxEvent> {
    const ILS: &str = "Koha";
    let action = text(body, &["action"]).ok_or_else(|| bad(ILS, "action", "missing"))?;
    let payload = body
        .get("payload")
        .ok_or_else(|| bad(ILS, "payload", "missing"))?;
    let (object, key) = if let Some(c) = payload.get("checkout") {
        (c, "checkout")
    } else if let Some(h) = payload.get("hold") {
        (h, "hold")
    } else {
        return Err(bad(ILS, "payload", "has neither `checkout` nor `hold`"));
    };
    let f = |name: &str| format!("payload.{key}.{name}");
    let mut patron = text(object, &["borrowernumber"]);
    let stamp = text(object, &["timestamp"]);
    let at = time_of(stamp.clone()).unwrap_or(now);
    let (record_id, change) = if key == "checkout" {
        let id = id_of(ILS, object, &["issue_id"], &f("issue_id"))?;
        let due = field(ILS, day(text(object, &["date_due"]), &f("date_due")))?;
        let change = match action.as_str() {
            "checkout" => Circulation::Loan(LoanFields {
                id: id.clone(),
                item: text(object, &["itemnumber"]),
                title: None,
                subject: None,
                loaned_on: field(
                    ILS,
                    required_day(text(object, &["issuedate"]), &f("issuedate")),
                )?,
                due_on: due,
                returned_on: None,
                renewals: renewals(object, "renewals_count"),
            }),
            "renewal" => Circulation::DueDate {
                loan: id.clone(),
                due_on: due.ok_or_else(|| bad(ILS, &f("date_due"), "missing"))?,
                renewals: Some(renewals(object, "renewals_count")),
            },
            "checkin" => {
                if anonymous.is_some_and(|a| patron.as_deref() == Some(a)) {
                    patron = None;
                }
                Circulation::Returned {
                    loan: id.clone(),
                    on: field(ILS, day(text(object, &["returndate"]), &f("returndate")))?
                        .unwrap_or(local_date(at)),
                }
            }
            other => {
                return Err(bad(
                    ILS,
                    "action",
                    &format!(
                        "`{other}` is not a circulation action; they are checkout, renewal and \
                         checkin"
                    ),
                ));
            }
        };
        (id, change)
    } else {
        let id = id_of(ILS, object, &["reserve_id"], &f("reserve_id"))?;
        let expires = field(
            ILS,
            day(text(object, &["expirationdate"]), &f("expirationdate")),
        )?;
        let status = match action.as_str() {
            "place" => "placed",
            "waiting" => "waiting",
            "transfer" => "in-transit",
            "processing" => "processing",
            "suspend" => "suspended",
            "resume" => "placed",
            "cancel" => "cancelled",
            "fill" => "filled",
            other => {
                return Err(bad(
                    ILS,
                    "action",
                    &format!("`{other}` is not a hold action Koha sends"),
                ));
            }
        };
        // Every hold hook carries the whole row (`reserves`, or
        // `old_reserves` once cancelled or filled): written whole, so that
        // a hold placed before Lectern listened is known all the same.
        let change = Circulation::Hold(HoldFields {
            id: id.clone(),
            title: None,
            placed_on: field(
                ILS,
                required_day(text(object, &["reservedate"]), &f("reservedate")),
            )?,
            status: Some(status.to_string()),
            pickup_branch: text(object, &["branchcode"]),
            expires_on: expires,
        });
        (id, change)
    };
    Ok(InboxEvent {
        source: "koha".into(),
        // Koha's hooks carry no event id: the action, the record and its
        // timestamp name the event, so a resent hook is the same event.
        id: format!("{action}/{record_id}/{}", stamp.unwrap_or_default()),
        kind: action,
        at,
        patron,
        change: Some(change),
    })
}

/// A count, as a number (`TO_JSON`) or as text (`unblessed` over
/// DBD::mysql).
fn renewals(v: &Value, key: &str) -> u32 {
    text(v, &[key]).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// An event mod-pubsub delivers to a subscriber: the payload alone, as
/// mod-pubsub posts it to the callback of `event_type`, or the whole
/// envelope `{id, eventType, eventPayload, eventMetadata}`.
pub fn folio_pubsub(
    event_type: &str,
    body: &[u8],
    now: DateTime<Utc>,
    clock: Clock,
) -> Result<InboxEvent> {
    // Dates with a zone count on the library's days, as in an import.
    with_clock(clock, || folio_pubsub_on(event_type, body, now))
}

fn folio_pubsub_on(event_type: &str, body: &[u8], now: DateTime<Utc>) -> Result<InboxEvent> {
    const ILS: &str = "FOLIO";
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(ILS, "body", &format!("not JSON: {e}")))?;
    let (id, kind, payload) = match value.get("eventPayload") {
        Some(p) => {
            let inner = p
                .as_str()
                .ok_or_else(|| bad(ILS, "eventPayload", "not a JSON string"))?;
            let payload: Value = serde_json::from_str(inner)
                .map_err(|e| bad(ILS, "eventPayload", &format!("not JSON: {e}")))?;
            let kind = text(&value, &["eventType"]).unwrap_or_else(|| event_type.to_string());
            let id = text(&value, &["id"]).unwrap_or_else(|| digest_id(&[kind.as_bytes(), body]));
            (id, kind, payload)
        }
        None => (
            digest_id(&[event_type.as_bytes(), body]),
            event_type.to_string(),
            value,
        ),
    };
    let loan = id_of(ILS, &payload, &["loanId"], "loanId")?;
    let change = match kind.as_str() {
        "ITEM_CHECKED_OUT" => Circulation::Loan(LoanFields {
            id: loan,
            item: None,
            title: None,
            subject: None,
            // The payload has no loan date: it is now.
            loaned_on: local_date(now),
            due_on: field(ILS, day(text(&payload, &["dueDate"]), "dueDate"))?,
            returned_on: None,
            renewals: 0,
        }),
        "ITEM_CHECKED_IN" => Circulation::Returned {
            loan,
            on: field(ILS, day(text(&payload, &["returnDate"]), "returnDate"))?
                .unwrap_or(local_date(now)),
        },
        "LOAN_DUE_DATE_CHANGED" => Circulation::DueDate {
            loan,
            due_on: field(ILS, required_day(text(&payload, &["dueDate"]), "dueDate"))?,
            renewals: None,
        },
        // Published when a lost item's loan closes: it is no longer out.
        "LOAN_CLOSED" => Circulation::Returned {
            loan,
            on: local_date(now),
        },
        other => {
            return Err(bad(
                ILS,
                "eventType",
                &format!(
                    "`{other}`: subscribe Lectern to ITEM_CHECKED_OUT, ITEM_CHECKED_IN, \
                     LOAN_DUE_DATE_CHANGED and LOAN_CLOSED"
                ),
            ));
        }
    };
    Ok(InboxEvent {
        source: "folio".into(),
        id,
        kind,
        at: now,
        patron: text(&payload, &["userId"]),
        change: Some(change),
    })
}

/// A domain event of mod-circulation-storage, `{id, type, tenant,
/// timestamp, data: {old, new}}`, for `record` `loan` or `request`. A
/// deletion changes nothing Lectern keeps, and gives `None`.
pub fn folio_domain(record: &str, body: &Value, clock: Clock) -> Result<Option<InboxEvent>> {
    // Dates with a zone count on the library's days, as in an import.
    with_clock(clock, || folio_domain_on(record, body))
}

fn folio_domain_on(record: &str, body: &Value) -> Result<Option<InboxEvent>> {
    const ILS: &str = "FOLIO";
    let id = id_of(ILS, body, &["id"], "id")?;
    let kind = field(ILS, required(text(body, &["type"]), "type"))?;
    // Within some 250,000 years of 1970, as the document says.
    let at = body
        .get("timestamp")
        .and_then(Value::as_i64)
        .filter(|ms| ms.abs() <= 8_000_000_000_000_000)
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(|| bad(ILS, "timestamp", "missing, or not milliseconds since 1970"))?;
    if kind == "DELETED" {
        return Ok(None);
    }
    if kind != "CREATED" && kind != "UPDATED" {
        return Err(bad(
            ILS,
            "type",
            &format!("`{kind}`: give CREATED, UPDATED or DELETED"),
        ));
    }
    let new = body
        .get("data")
        .and_then(|d| d.get("new"))
        .ok_or_else(|| bad(ILS, "data.new", "missing"))?;
    let with_path = |(f, m): (String, String)| bad(ILS, &format!("data.new.{f}"), &m);
    let (patron, change) = match record {
        "loan" => {
            let l = crate::import::folio_loan(new).map_err(with_path)?;
            let patron = l.patron.clone();
            (
                patron,
                Circulation::Loan(LoanFields {
                    id: l.id,
                    item: l.item,
                    title: l.title,
                    subject: l.subject,
                    loaned_on: l.loaned_on,
                    due_on: l.due_on,
                    returned_on: l.returned_on,
                    renewals: l.renewals,
                }),
            )
        }
        "request" => {
            let mut h = crate::import::folio_request(new).map_err(with_path)?;
            if h.title.is_none() {
                h.title = text(new, &["instance", "title"]);
            }
            let patron = h.patron.clone();
            (
                patron,
                Circulation::Hold(HoldFields {
                    id: h.id,
                    title: h.title,
                    placed_on: h.placed_on,
                    status: h.status,
                    pickup_branch: h.pickup_branch,
                    expires_on: h.expires_on,
                }),
            )
        }
        other => {
            return Err(Error::NotFound(format!(
                "no FOLIO domain events for `{other}`; Lectern takes `loan` and `request`"
            )));
        }
    };
    Ok(Some(InboxEvent {
        source: "folio".into(),
        id,
        kind: format!("{record}.{kind}"),
        at,
        patron: Some(patron),
        change: Some(change),
    }))
}

/// What the Evergreen templates in `connectors/evergreen/` post through
/// the CallHTTP reactor: `{"hook", "event", "circ": {…}}` for `checkout`,
/// `checkin` and `checkout.due`, `{"hook", "event", "hold": {…}}` for
/// `hold.available`. Evergreen writes a time with an offset and no colon
/// (`2026-03-16T23:59:59-0500`).
pub fn evergreen(body: &Value, now: DateTime<Utc>, clock: Clock) -> Result<InboxEvent> {
    // Dates with a zone count on the library's days, as in an import.
    with_clock(clock, || evergreen_on(body, now))
}

fn evergreen_on(body: &Value, now: DateTime<Utc>) -> Result<InboxEvent> {
    const ILS: &str = "Evergreen";
    let hook = field(ILS, required(text(body, &["hook"]), "hook"))?;
    let event = id_of(ILS, body, &["event"], "event")?;
    let when = |v: &Value, key: &str, path: &str| -> Result<Option<NaiveDate>> {
        field(
            ILS,
            day(text(v, &[key]).map(colon_offset), &format!("{path}.{key}")),
        )
    };
    let (record, patron, change) = match hook.as_str() {
        "checkout" | "checkin" | "checkout.due" => {
            let c = body
                .get("circ")
                .ok_or_else(|| bad(ILS, "circ", "missing"))?;
            let id = id_of(ILS, c, &["id"], "circ.id")?;
            let change = if hook == "checkin" {
                Circulation::Returned {
                    loan: id.clone(),
                    on: when(c, "checkin_time", "circ")?.unwrap_or(local_date(now)),
                }
            } else {
                Circulation::Loan(LoanFields {
                    id: id.clone(),
                    item: text(c, &["barcode"]),
                    title: text(c, &["title"]),
                    subject: None,
                    loaned_on: when(c, "xact_start", "circ")?
                        .ok_or_else(|| bad(ILS, "circ.xact_start", "missing"))?,
                    due_on: when(c, "due_date", "circ")?,
                    returned_on: None,
                    renewals: 0,
                })
            };
            (id, text(c, &["usr"]), change)
        }
        "hold.available" => {
            let h = body
                .get("hold")
                .ok_or_else(|| bad(ILS, "hold", "missing"))?;
            let id = id_of(ILS, h, &["id"], "hold.id")?;
            let change = Circulation::Hold(HoldFields {
                id: id.clone(),
                title: text(h, &["title"]),
                placed_on: when(h, "request_time", "hold")?
                    .ok_or_else(|| bad(ILS, "hold.request_time", "missing"))?,
                status: Some("waiting".into()),
                pickup_branch: text(h, &["pickup_lib"]),
                expires_on: when(h, "shelf_expire_time", "hold")?,
            });
            (id, text(h, &["usr"]), change)
        }
        other => {
            return Err(bad(
                ILS,
                "hook",
                &format!(
                    "`{other}`: Lectern reads checkout, checkin, checkout.due and hold.available"
                ),
            ));
        }
    };
    Ok(InboxEvent {
        source: "evergreen".into(),
        // The Action/Trigger event's id: one per event, so a run of the
        // trigger runner that sends again is the same event.
        id: format!("{event}/{record}"),
        kind: hook,
        at: now,
        patron,
        change: Some(change),
    })
}

/// `2026-03-16T23:59:59-0500` as RFC 3339: `…-05:00`.
fn colon_offset(s: String) -> String {
    let b = s.as_bytes();
    let n = b.len();
    if n > 5
        && (b[n - 5] == b'+' || b[n - 5] == b'-')
        && b[n - 4..].iter().all(u8::is_ascii_digit)
        && s.contains('T')
    {
        format!("{}:{}", &s[..n - 2], &s[n - 2..])
    } else {
        s
    }
}

/// Whether `signature` (the `X-Exl-Signature` header) is Base64 of the
/// HMAC-SHA256 of the raw `body` under `secret`, compared in constant
/// time.
pub fn alma_signature_ok(secret: &str, body: &[u8], signature: &str) -> bool {
    use base64::Engine as _;
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// An Alma webhook: a LOAN event with `item_loan`, or a REQUEST event
/// with `user_request`. Other actions give `None`: Alma is answered 200
/// and nothing is kept.
pub fn alma_webhook(body: &Value, now: DateTime<Utc>, clock: Clock) -> Result<Option<InboxEvent>> {
    // Dates with a zone count on the library's days, as in an import.
    with_clock(clock, || alma_webhook_on(body, now))
}

fn alma_webhook_on(body: &Value, now: DateTime<Utc>) -> Result<Option<InboxEvent>> {
    const ILS: &str = "Alma";
    let id = field(ILS, required(text(body, &["id"]), "id"))?;
    let action = field(ILS, required(text(body, &["action"]), "action"))?;
    let event = text(body, &["event", "value"]).unwrap_or_else(|| action.clone());
    let at = time_of(text(body, &["time"])).unwrap_or(now);
    let date = |v: &Value, key: &str, path: &str| -> Result<Option<NaiveDate>> {
        // Alma writes a date with a zone letter: `2026-02-18Z`.
        let value = text(v, &[key]).map(|s| match s.strip_suffix('Z') {
            Some(d) if d.len() == 10 => d.to_string(),
            _ => s,
        });
        field(ILS, day(value, &format!("{path}.{key}")))
    };
    let (patron, change) = match action.as_str() {
        "LOAN" => {
            let l = body
                .get("item_loan")
                .ok_or_else(|| bad(ILS, "item_loan", "missing from a LOAN event"))?;
            let loan = field(ILS, required(text(l, &["loan_id"]), "item_loan.loan_id"))?;
            let due = date(l, "due_date", "item_loan")?;
            let change = match event.as_str() {
                "LOAN_RETURNED" => Circulation::Returned {
                    loan,
                    on: date(l, "return_date", "item_loan")?.unwrap_or(local_date(at)),
                },
                "LOAN_RENEWED" | "LOAN_DUE_DATE" => Circulation::DueDate {
                    loan,
                    due_on: due.ok_or_else(|| bad(ILS, "item_loan.due_date", "missing"))?,
                    renewals: None,
                },
                _ => Circulation::Loan(LoanFields {
                    id: loan,
                    item: text(l, &["item_barcode"]).or_else(|| text(l, &["item_id"])),
                    title: text(l, &["title"]),
                    subject: None,
                    loaned_on: date(l, "loan_date", "item_loan")?.unwrap_or(local_date(at)),
                    due_on: due,
                    returned_on: None,
                    renewals: 0,
                }),
            };
            (text(l, &["user_id"]), change)
        }
        "REQUEST" => {
            let r = body
                .get("user_request")
                .ok_or_else(|| bad(ILS, "user_request", "missing from a REQUEST event"))?;
            let hold = field(
                ILS,
                required(text(r, &["request_id"]), "user_request.request_id"),
            )?;
            let status = match event.as_str() {
                "REQUEST_PLACED_ON_SHELF" => "waiting",
                "REQUEST_CANCELED" => "cancelled",
                "REQUEST_CLOSED" => "filled",
                _ => "placed",
            };
            (
                text(r, &["user_primary_id"]).or_else(|| text(r, &["user_id"])),
                Circulation::Hold(HoldFields {
                    id: hold,
                    title: text(r, &["title"]),
                    placed_on: date(r, "request_date", "user_request")?.unwrap_or(local_date(at)),
                    status: Some(status.to_string()),
                    pickup_branch: text(r, &["pickup_location"])
                        .or_else(|| text(r, &["pickup_location_library"])),
                    expires_on: date(r, "expiry_date", "user_request")?,
                }),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(InboxEvent {
        source: "alma".into(),
        id,
        kind: event,
        at,
        patron,
        change: Some(change),
    }))
}
