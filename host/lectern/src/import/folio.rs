//! FOLIO: users (`userdata`), patron groups, loans and requests, each as one
//! object per file or as a collection (`{"users": [...]}`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    Origin, Parsed, Record, Sink, Stop, day, json_records, postal_address, required, required_day,
    text,
};
use crate::model::{Channel, Patron};
use crate::store::{HoldRecord, LoanRecord, PatronRecord};

const COLLECTIONS: &[&str] = &["users", "usergroups", "loans", "requests"];

/// The patron groups in `paths`, by id: users name their group by id, and
/// Lectern stores its code (`faculty`, `graduate`, ...).
pub(crate) fn groups(paths: &[PathBuf]) -> HashMap<String, String> {
    let mut groups = HashMap::new();
    for path in paths {
        // Unreadable files are reported when the records are read.
        let _ = json_records(path, COLLECTIONS, &mut |_, v| {
            if let (Some(id), Some(code)) = (text(&v, &["id"]), text(&v, &["group"])) {
                groups.insert(id, code);
            }
            Ok(())
        });
    }
    groups
}

/// Reads one FOLIO file into `sink`.
pub(crate) fn read(
    path: &Path,
    groups: &HashMap<String, String>,
    sink: &mut Sink<'_>,
) -> Result<(), Stop> {
    json_records(path, COLLECTIONS, &mut |i, v| {
        let origin = Origin::new(path, i);
        let has = |k: &str| v.get(k).is_some();
        let parsed = if has("userId") && has("loanDate") {
            Parsed::activity(loan(&v).map(|l| Record::Loan(l, "userId")))
        } else if has("requesterId") {
            Parsed::activity(request(&v).map(|h| Record::Hold(h, "requesterId")))
        } else if has("group") && !has("personal") {
            return Ok(()); // a patron group, read by `groups`
        } else if has("username") || has("personal") || has("patronGroup") || has("barcode") {
            Parsed::patron(user(&v, groups))
        } else {
            Parsed::patron(Err((
                "id".into(),
                "not a FOLIO user, group, loan or request".into(),
            )))
        };
        sink.accept(origin, parsed)
    })
}

fn user(v: &Value, groups: &HashMap<String, String>) -> Result<PatronRecord, super::BadField> {
    let first = text(v, &["personal", "preferredFirstName"])
        .or_else(|| text(v, &["personal", "firstName"]));
    let last = text(v, &["personal", "lastName"]);
    let name = match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    };
    // FOLIO's contact types: 001 mail, 002 email, 003 text message.
    let channels: Vec<Channel> = v
        .pointer("/personal/preferredContactTypeIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| match c.as_str()? {
            "001" => Some(Channel::Print),
            "002" => Some(Channel::Email),
            "003" => Some(Channel::Sms),
            _ => None,
        })
        .collect();
    let category = text(v, &["patronGroup"]).map(|g| groups.get(&g).cloned().unwrap_or(g));
    // The primary address, or the first.
    let addresses = v.pointer("/personal/addresses").and_then(Value::as_array);
    let address = addresses
        .and_then(|a| {
            a.iter()
                .find(|a| a.get("primaryAddress").and_then(Value::as_bool) == Some(true))
                .or_else(|| a.first())
        })
        .and_then(|a| {
            postal_address(
                [text(a, &["addressLine1"]), None, None],
                text(a, &["addressLine2"]),
                [
                    text(a, &["city"]),
                    text(a, &["region"]),
                    text(a, &["postalCode"]),
                ],
                text(a, &["countryId"]),
            )
        });
    Ok(PatronRecord {
        patron: Patron {
            id: required(text(v, &["id"]), "id")?,
            card_number: text(v, &["barcode"]),
            name,
            email: text(v, &["personal", "email"]),
            phone: text(v, &["personal", "mobilePhone"])
                .or_else(|| text(v, &["personal", "phone"])),
            birth_date: day(
                text(v, &["personal", "dateOfBirth"]),
                "personal.dateOfBirth",
            )?,
            category,
            address,
            enrolled_on: day(text(v, &["enrollmentDate"]), "enrollmentDate")?,
            expires_on: day(text(v, &["expirationDate"]), "expirationDate")?,
            channels: (!channels.is_empty()).then_some(channels),
            ..Patron::default()
        },
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        source: "folio".to_string(),
    })
}

pub(crate) fn loan(v: &Value) -> Result<LoanRecord, super::BadField> {
    Ok(LoanRecord {
        id: required(text(v, &["id"]), "id")?,
        patron: required(text(v, &["userId"]), "userId")?,
        // The barcode is what is on the book; the item's id is a fallback.
        item: text(v, &["item", "barcode"]).or_else(|| text(v, &["itemId"])),
        title: text(v, &["item", "title"]),
        subject: None,
        loaned_on: required_day(text(v, &["loanDate"]), "loanDate")?,
        due_on: day(text(v, &["dueDate"]), "dueDate")?,
        returned_on: day(text(v, &["returnDate"]), "returnDate")?,
        renewals: v.get("renewalCount").and_then(Value::as_u64).unwrap_or(0) as u32,
    })
}

pub(crate) fn request(v: &Value) -> Result<HoldRecord, super::BadField> {
    Ok(HoldRecord {
        id: required(text(v, &["id"]), "id")?,
        patron: required(text(v, &["requesterId"]), "requesterId")?,
        title: text(v, &["item", "title"]),
        placed_on: required_day(text(v, &["requestDate"]), "requestDate")?,
        status: text(v, &["status"]),
        pickup_branch: text(v, &["pickupServicePointId"]),
        expires_on: day(
            text(v, &["holdShelfExpirationDate"]),
            "holdShelfExpirationDate",
        )?,
    })
}
