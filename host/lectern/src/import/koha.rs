//! Koha: the REST API's JSON for patrons, checkouts and holds, and the
//! patron-import CSV.
//!
//! Koha's `privacy` setting decides the reading-history consent: `0` (keep
//! my history forever) is consent; `1` (the library's default) and `2`
//! (never) are not. Koha records no marketing consent, so none is assumed.
//! A patron's channels are email if they have an address, then SMS if they
//! have a mobile number. The primary postal address is kept for letters.
//!
//! Checkouts name their item only by Koha's internal `item_id`, and holds
//! their record by `biblio_id`. Given the items too (`/api/v1/items` with
//! `x-koha-embed: biblio`) or the records (`/api/v1/biblios`), checkouts get
//! the item's barcode and title, and holds the record's title.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    BadField, Origin, Parsed, Record, Row, Sink, Stop, csv_records, day, json_records,
    postal_address, required, required_day, text,
};
use crate::model::{Channel, Consents, Patron};
use crate::store::{HoldRecord, LoanRecord, PatronRecord};

/// What Koha's items and records say about the items loans and holds name.
#[derive(Default)]
pub(crate) struct Catalogue {
    /// Barcode and title, by `item_id`.
    items: HashMap<String, (Option<String>, Option<String>)>,
    /// Title, by `biblio_id`.
    titles: HashMap<String, String>,
}

/// Reads the items and records among `paths`, to join to loans and holds.
pub(crate) fn catalogue(paths: &[PathBuf]) -> Catalogue {
    let mut cat = Catalogue::default();
    for path in paths {
        // Unreadable files are reported when the records are read.
        let _ = json_records(path, &[], &mut |_, v| {
            let title = text(&v, &["biblio", "title"]).or_else(|| text(&v, &["title"]));
            let biblio = text(&v, &["biblio_id"]);
            if let (Some(b), Some(t)) = (&biblio, &title) {
                cat.titles.insert(b.clone(), t.clone());
            }
            if is_item(&v)
                && let Some(item) = text(&v, &["item_id"])
            {
                cat.items.insert(item, (text(&v, &["external_id"]), title));
            }
            Ok(())
        });
    }
    cat
}

fn is_item(v: &Value) -> bool {
    v.get("item_id").is_some() && v.get("external_id").is_some() && v.get("checkout_id").is_none()
}

/// Reads a Koha REST JSON file: an array of patrons, checkouts, holds,
/// items or records (or one of them).
pub(crate) fn read_json(path: &Path, cat: &Catalogue, sink: &mut Sink<'_>) -> Result<(), Stop> {
    json_records(path, &[], &mut |i, v| {
        let has = |k: &str| v.get(k).is_some();
        let parsed = if has("checkout_id") {
            Parsed::activity(checkout(&v, cat).map(|l| Record::Loan(l, "patron_id")))
        } else if has("hold_id") {
            Parsed::activity(hold(&v, cat).map(|h| Record::Hold(h, "patron_id")))
        } else if is_item(&v) || (has("biblio_id") && !has("patron_id")) {
            return Ok(()); // an item or a record, read by `catalogue`
        } else if has("patron_id") || has("cardnumber") {
            Parsed::patron(patron(&v))
        } else {
            Parsed::patron(Err((
                "patron_id".into(),
                "not a Koha patron, checkout or hold".into(),
            )))
        };
        sink.accept(Origin::new(path, i), parsed)
    })
}

fn contact(email: &Option<String>, mobile: &Option<String>) -> Option<Vec<Channel>> {
    let channels: Vec<Channel> = [
        email.as_ref().map(|_| Channel::Email),
        mobile.as_ref().map(|_| Channel::Sms),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!channels.is_empty()).then_some(channels)
}

fn consents(privacy: Option<String>) -> Option<Consents> {
    privacy.map(|p| Consents {
        reading_history: p == "0",
        marketing: false,
    })
}

fn name(first: Option<String>, last: Option<String>) -> Option<String> {
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    }
}

fn locale(lang: Option<String>) -> Option<String> {
    lang.filter(|l| l != "default")
}

fn patron(v: &Value) -> Result<PatronRecord, BadField> {
    let email = text(v, &["email"]);
    let mobile = text(v, &["mobile"]);
    let attributes: BTreeMap<String, String> = v
        .get("extended_attributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((text(a, &["type"])?, text(a, &["value"])?)))
        .collect();
    let expires_on = day(text(v, &["expiry_date"]), "expiry_date")?;
    Ok(PatronRecord {
        patron: Patron {
            id: required(text(v, &["patron_id"]), "patron_id")?,
            card_number: text(v, &["cardnumber"]),
            name: name(text(v, &["firstname"]), text(v, &["surname"])),
            channels: contact(&email, &mobile),
            email,
            phone: mobile.or_else(|| text(v, &["phone"])),
            birth_date: day(text(v, &["date_of_birth"]), "date_of_birth")?,
            category: text(v, &["category_id"]),
            home_branch: text(v, &["library_id"]),
            enrolled_on: day(text(v, &["date_enrolled"]), "date_enrolled")?,
            expires_on,
            locale: locale(text(v, &["lang"])),
            address: postal_address(
                [
                    text(v, &["street_number"]),
                    text(v, &["address"]),
                    text(v, &["street_type"]),
                ],
                text(v, &["address2"]),
                [
                    text(v, &["city"]),
                    text(v, &["state"]),
                    text(v, &["postal_code"]),
                ],
                text(v, &["country"]),
            ),
            consents: consents(text(v, &["privacy"])),
            attributes: (!attributes.is_empty()).then_some(attributes),
            ..Patron::default()
        },
        active: true,
        source: "koha".to_string(),
    })
}

fn checkout(v: &Value, cat: &Catalogue) -> Result<LoanRecord, BadField> {
    let item = text(v, &["item_id"]);
    let (barcode, title) = item
        .as_ref()
        .and_then(|i| cat.items.get(i))
        .cloned()
        .unwrap_or_default();
    Ok(LoanRecord {
        id: required(text(v, &["checkout_id"]), "checkout_id")?,
        patron: required(text(v, &["patron_id"]), "patron_id")?,
        // The barcode is what is on the book; the internal id is a fallback.
        item: barcode.or(item),
        title,
        subject: None,
        loaned_on: required_day(text(v, &["checkout_date"]), "checkout_date")?,
        due_on: day(text(v, &["due_date"]), "due_date")?,
        returned_on: day(text(v, &["checkin_date"]), "checkin_date")?,
        renewals: v.get("renewals_count").and_then(Value::as_u64).unwrap_or(0) as u32,
    })
}

fn hold(v: &Value, cat: &Catalogue) -> Result<HoldRecord, BadField> {
    let title = text(v, &["biblio_id"])
        .and_then(|b| cat.titles.get(&b).cloned())
        .or_else(|| {
            let item = text(v, &["item_id"])?;
            cat.items.get(&item)?.1.clone()
        });
    Ok(HoldRecord {
        id: required(text(v, &["hold_id"]), "hold_id")?,
        patron: required(text(v, &["patron_id"]), "patron_id")?,
        title,
        placed_on: required_day(
            text(v, &["hold_date"]).or_else(|| text(v, &["waiting_date"])),
            "hold_date",
        )?,
        status: text(v, &["status"]),
        pickup_branch: text(v, &["pickup_library_id"]),
        expires_on: day(text(v, &["expiration_date"]), "expiration_date")?,
    })
}

/// Reads Koha's patron-import CSV. That file has no `borrowernumber`, so
/// patrons are keyed by card number: a card the store knows updates the
/// patron who holds it, whichever format wrote them.
pub(crate) fn read_csv(path: &Path, sink: &mut Sink<'_>) -> Result<(), Stop> {
    csv_records(path, &["cardnumber", "categorycode"], &mut |origin, row| {
        sink.accept(origin, Parsed::patron(csv_patron(row)))
    })
}

fn csv_patron(row: Row<'_>) -> Result<PatronRecord, BadField> {
    let get = row.map_err(|reason| (String::new(), reason))?;
    let email = get("email");
    let mobile = get("smsalertnumber");
    // `patron_attributes` is `CODE:value,CODE:value`.
    let mut attributes = BTreeMap::new();
    for pair in get("patron_attributes").iter().flat_map(|a| a.split(',')) {
        let (code, value) = pair.split_once(':').ok_or_else(|| {
            (
                "patron_attributes".to_string(),
                format!("`{pair}` is not CODE:value"),
            )
        })?;
        attributes.insert(code.trim().to_string(), value.trim().to_string());
    }
    let card = required(get("cardnumber"), "cardnumber")?;
    Ok(PatronRecord {
        patron: Patron {
            id: card.clone(),
            card_number: Some(card),
            name: name(get("firstname"), get("surname")),
            channels: contact(&email, &mobile),
            email,
            phone: mobile.or_else(|| get("phone")),
            birth_date: day(get("dateofbirth"), "dateofbirth")?,
            category: get("categorycode"),
            home_branch: get("branchcode"),
            enrolled_on: day(get("dateenrolled"), "dateenrolled")?,
            expires_on: day(get("dateexpiry"), "dateexpiry")?,
            consents: consents(get("privacy")),
            address: postal_address(
                [get("streetnumber"), get("address"), get("streettype")],
                get("address2"),
                [get("city"), get("state"), get("zipcode")],
                get("country"),
            ),
            attributes: (!attributes.is_empty()).then_some(attributes),
            ..Patron::default()
        },
        active: true,
        source: "koha-csv".to_string(),
    })
}
