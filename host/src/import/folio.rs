//! FOLIO: users (`userdata`), patron groups, loans and requests, each as one
//! object per file or as a collection (`{"users": [...]}`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDate;
use serde_json::Value;

use super::{ImportOptions, ImportReport, Skip, finish};
use crate::model::{Channel, Patron};
use crate::store::{Batch, HoldRecord, LoanRecord, PatronRecord, Store};

/// Where a record came from.
#[derive(Clone)]
struct Origin {
    file: PathBuf,
    record: usize,
}

impl Origin {
    fn skip(&self, field: Option<&str>, reason: impl Into<String>) -> Skip {
        Skip {
            file: self.file.clone(),
            record: self.record,
            field: field.map(str::to_string),
            reason: reason.into(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Group,
    User,
    Loan,
    Request,
}

/// Imports FOLIO JSON files. Groups are read first, then users, then loans
/// and requests, whatever the order of `paths`.
pub fn import_folio(
    store: &mut dyn Store,
    paths: &[PathBuf],
    options: ImportOptions,
) -> anyhow::Result<ImportReport> {
    let mut records: Vec<(Kind, Origin, Value)> = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                let origin = Origin {
                    file: path.clone(),
                    record: 1,
                };
                skipped.push(origin.skip(None, format!("not JSON: {e}")));
                continue;
            }
        };
        collect(path, value, &mut records, &mut skipped);
    }
    records.sort_by_key(|(kind, ..)| *kind);

    let mut groups: HashMap<String, String> = HashMap::new();
    let mut batch = Batch::default();
    let mut seen: HashMap<(Kind, String), Origin> = HashMap::new();
    for (kind, origin, v) in records {
        let Some(id) = v.get("id").and_then(Value::as_str).map(str::to_string) else {
            skipped.push(origin.skip(Some("id"), "missing; every FOLIO record has an id"));
            continue;
        };
        if let Some(first) = seen.get(&(kind, id.clone())) {
            skipped.push(origin.skip(
                Some("id"),
                format!(
                    "duplicate id `{id}`, first seen in {} record {}; keep one",
                    first.file.display(),
                    first.record
                ),
            ));
            continue;
        }
        seen.insert((kind, id.clone()), origin.clone());
        let result = match kind {
            Kind::Group => {
                match v.get("group").and_then(Value::as_str) {
                    Some(code) => groups.insert(id, code.to_string()),
                    None => {
                        skipped.push(origin.skip(Some("group"), "missing"));
                        continue;
                    }
                };
                Ok(())
            }
            Kind::User => user(&id, &v, &groups).map(|p| batch.patrons.push(p)),
            Kind::Loan => loan(&id, &v).map(|l| batch.loans.push(l)),
            Kind::Request => request(&id, &v).map(|h| batch.holds.push(h)),
        };
        if let Err((field, reason)) = result {
            skipped.push(origin.skip(Some(field), reason));
        }
    }

    // A loan or hold must belong to a patron in the store or in this import.
    let in_batch: std::collections::HashSet<String> =
        batch.patrons.iter().map(|p| p.patron.id.clone()).collect();
    let known =
        |id: &str| -> anyhow::Result<bool> { Ok(in_batch.contains(id) || store.has_patron(id)?) };
    let mut loans = Vec::new();
    for l in std::mem::take(&mut batch.loans) {
        if known(&l.patron)? {
            loans.push(l);
        } else {
            let origin = &seen[&(Kind::Loan, l.id.clone())];
            skipped.push(origin.skip(
                Some("userId"),
                format!("no patron with id `{}`; import the user first", l.patron),
            ));
        }
    }
    let mut holds = Vec::new();
    for h in std::mem::take(&mut batch.holds) {
        if known(&h.patron)? {
            holds.push(h);
        } else {
            let origin = &seen[&(Kind::Request, h.id.clone())];
            skipped.push(origin.skip(
                Some("requesterId"),
                format!("no patron with id `{}`; import the user first", h.patron),
            ));
        }
    }
    batch.loans = loans;
    batch.holds = holds;
    finish(store, batch, skipped, options)
}

/// Sorts a file's records by kind; a file of an unknown shape is skipped.
fn collect(
    path: &Path,
    value: Value,
    out: &mut Vec<(Kind, Origin, Value)>,
    skipped: &mut Vec<Skip>,
) {
    let origin = |record| Origin {
        file: path.to_path_buf(),
        record,
    };
    for (key, kind) in [
        ("users", Kind::User),
        ("usergroups", Kind::Group),
        ("loans", Kind::Loan),
        ("requests", Kind::Request),
    ] {
        if let Some(items) = value.get(key).and_then(Value::as_array) {
            out.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (kind, origin(i + 1), v.clone())),
            );
            return;
        }
    }
    let has = |k: &str| value.get(k).is_some();
    let kind = if has("userId") && has("loanDate") {
        Kind::Loan
    } else if has("requesterId") {
        Kind::Request
    } else if has("group") {
        Kind::Group
    } else if has("username") || has("personal") || has("patronGroup") || has("barcode") {
        Kind::User
    } else {
        skipped.push(origin(1).skip(
            None,
            "not a FOLIO user, group, loan or request, nor a collection of them",
        ));
        return;
    };
    out.push((kind, origin(1), value));
}

type Field = (&'static str, String);

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
}

/// A FOLIO date or date-time, as the date it falls on.
fn date(v: &Value, path: &[&str], field: &'static str) -> Result<Option<NaiveDate>, Field> {
    let Some(s) = text(v, path) else {
        return Ok(None);
    };
    let day = s.get(..10).unwrap_or(&s);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| (field, format!("`{s}` is not a real date (YYYY-MM-DD)")))
}

fn user(id: &str, v: &Value, groups: &HashMap<String, String>) -> Result<PatronRecord, Field> {
    let first = text(v, &["personal", "preferredFirstName"])
        .or_else(|| text(v, &["personal", "firstName"]));
    let last = text(v, &["personal", "lastName"]);
    let name = match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    };
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
    Ok(PatronRecord {
        patron: Patron {
            id: id.to_string(),
            card_number: text(v, &["barcode"]),
            name,
            email: text(v, &["personal", "email"]),
            phone: text(v, &["personal", "mobilePhone"])
                .or_else(|| text(v, &["personal", "phone"])),
            birth_date: date(v, &["personal", "dateOfBirth"], "personal.dateOfBirth")?,
            category,
            enrolled_on: date(v, &["enrollmentDate"], "enrollmentDate")?,
            expires_on: date(v, &["expirationDate"], "expirationDate")?,
            channels: (!channels.is_empty()).then_some(channels),
            ..Patron::default()
        },
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        source: "folio".to_string(),
    })
}

fn loan(id: &str, v: &Value) -> Result<LoanRecord, Field> {
    Ok(LoanRecord {
        id: id.to_string(),
        patron: text(v, &["userId"]).ok_or(("userId", "missing".to_string()))?,
        item: text(v, &["itemId"]),
        title: text(v, &["item", "title"]),
        subject: None,
        loaned_on: date(v, &["loanDate"], "loanDate")?
            .ok_or(("loanDate", "missing".to_string()))?,
        due_on: date(v, &["dueDate"], "dueDate")?,
        returned_on: date(v, &["returnDate"], "returnDate")?,
        renewals: v.get("renewalCount").and_then(Value::as_u64).unwrap_or(0) as u32,
    })
}

fn request(id: &str, v: &Value) -> Result<HoldRecord, Field> {
    Ok(HoldRecord {
        id: id.to_string(),
        patron: text(v, &["requesterId"]).ok_or(("requesterId", "missing".to_string()))?,
        title: text(v, &["item", "title"]),
        placed_on: date(v, &["requestDate"], "requestDate")?
            .ok_or(("requestDate", "missing".to_string()))?,
        status: text(v, &["status"]),
        pickup_branch: text(v, &["pickupServicePointId"]),
        expires_on: date(v, &["holdShelfExpirationDate"], "holdShelfExpirationDate")?,
    })
}
