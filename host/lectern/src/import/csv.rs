//! Lectern's own CSV, for libraries whose ILS exports neither FOLIO nor Koha
//! formats. The columns are documented on [`Format::Csv`](super::Format::Csv).

use std::collections::BTreeMap;
use std::path::Path;

use super::{BadField, Parsed, Record, Row, Sink, Stop, csv_records, day, required, required_day};
use crate::model::{Channel, Consents, Patron};
use crate::store::{HoldRecord, LoanRecord, PatronRecord, UseKind, UseRecord};

/// Which kind of file, by its header.
#[derive(Clone, Copy)]
enum Kind {
    Patrons,
    Loans,
    Holds,
    Use,
}

/// Reads one file of Lectern's CSV.
pub(crate) fn read(path: &Path, sink: &mut Sink<'_>) -> Result<(), Stop> {
    let header = ::csv::Reader::from_path(path)
        .and_then(|mut r| r.headers().cloned())
        .map_err(|e| Stop::File(format!("cannot read the header: {e}")))?;
    let has = |c: &str| header.iter().any(|h| h.trim() == c);
    let (kind, required_columns): (Kind, &[&str]) = if has("loaned_on") {
        (Kind::Loans, &["id", "patron_id", "loaned_on"])
    } else if has("placed_on") {
        (Kind::Holds, &["id", "patron_id", "placed_on"])
    } else if has("kind") && has("day") {
        (Kind::Use, &["patron_id", "day", "kind", "count"])
    } else {
        (Kind::Patrons, &["id"])
    };
    csv_records(path, required_columns, &mut |origin, row| {
        let parsed = match kind {
            Kind::Patrons => Parsed::patron(patron(row)),
            Kind::Loans => Parsed::activity(loan(row).map(|l| Record::Loan(l, "patron_id"))),
            Kind::Holds => Parsed::activity(hold(row).map(|h| Record::Hold(h, "patron_id"))),
            Kind::Use => Parsed::activity(usage(row).map(|u| Record::Use(u, "patron_id"))),
        };
        sink.accept(origin, parsed)
    })
}

fn flag(value: Option<String>, field: &str) -> Result<Option<bool>, BadField> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true" | "yes" | "1") => Ok(Some(true)),
        Some("false" | "no" | "0") => Ok(Some(false)),
        Some(other) => Err((field.to_string(), format!("`{other}` is not true or false"))),
    }
}

fn count(value: Option<String>, field: &str) -> Result<u32, BadField> {
    value.map_or(Ok(0), |v| {
        v.parse()
            .map_err(|_| (field.to_string(), format!("`{v}` is not a count")))
    })
}

fn patron(row: Row<'_>) -> Result<PatronRecord, BadField> {
    let get = row.map_err(|reason| (String::new(), reason))?;
    let channels = get("channels")
        .map(|c| {
            c.split(';')
                .map(|ch| {
                    serde_json::from_value::<Channel>(serde_json::Value::String(
                        ch.trim().to_string(),
                    ))
                    .map_err(|_| {
                        (
                            "channels".to_string(),
                            format!("`{ch}` is not email, sms, webhook or print"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let mut attributes = BTreeMap::new();
    for pair in get("attributes").iter().flat_map(|a| a.split(';')) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            (
                "attributes".to_string(),
                format!("`{pair}` is not key=value"),
            )
        })?;
        attributes.insert(k.trim().to_string(), v.trim().to_string());
    }
    let reading = flag(get("consent_reading_history"), "consent_reading_history")?;
    let marketing = flag(get("consent_marketing"), "consent_marketing")?;
    Ok(PatronRecord {
        patron: Patron {
            id: required(get("id"), "id")?,
            card_number: get("card_number"),
            name: get("name"),
            email: get("email"),
            phone: get("phone"),
            address: get("address").map(|a| {
                a.split(';')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            }),
            birth_date: day(get("birth_date"), "birth_date")?,
            age_band: get("age_band"),
            category: get("category"),
            home_branch: get("home_branch"),
            enrolled_on: day(get("enrolled_on"), "enrolled_on")?,
            expires_on: day(get("expires_on"), "expires_on")?,
            locale: get("locale"),
            channels,
            consents: (reading.is_some() || marketing.is_some()).then(|| Consents {
                reading_history: reading.unwrap_or(false),
                marketing: marketing.unwrap_or(false),
            }),
            attributes: (!attributes.is_empty()).then_some(attributes),
            ..Patron::default()
        },
        active: flag(get("active"), "active")?.unwrap_or(true),
        source: "csv".to_string(),
    })
}

fn loan(row: Row<'_>) -> Result<LoanRecord, BadField> {
    let get = row.map_err(|reason| (String::new(), reason))?;
    Ok(LoanRecord {
        id: required(get("id"), "id")?,
        patron: required(get("patron_id"), "patron_id")?,
        item: get("item_id"),
        title: get("title"),
        subject: get("subject"),
        loaned_on: required_day(get("loaned_on"), "loaned_on")?,
        due_on: day(get("due_on"), "due_on")?,
        returned_on: day(get("returned_on"), "returned_on")?,
        renewals: count(get("renewals"), "renewals")?,
    })
}

fn hold(row: Row<'_>) -> Result<HoldRecord, BadField> {
    let get = row.map_err(|reason| (String::new(), reason))?;
    Ok(HoldRecord {
        id: required(get("id"), "id")?,
        patron: required(get("patron_id"), "patron_id")?,
        title: get("title"),
        placed_on: required_day(get("placed_on"), "placed_on")?,
        status: get("status"),
        pickup_branch: get("pickup_branch"),
        expires_on: day(get("expires_on"), "expires_on")?,
    })
}

fn usage(row: Row<'_>) -> Result<UseRecord, BadField> {
    let get = row.map_err(|reason| (String::new(), reason))?;
    let kind = match required(get("kind"), "kind")?.as_str() {
        "visit" => UseKind::Visit,
        "eresource" => UseKind::Eresource,
        other => {
            return Err((
                "kind".into(),
                format!("`{other}` is not visit or eresource"),
            ));
        }
    };
    Ok(UseRecord {
        patron: required(get("patron_id"), "patron_id")?,
        on: required_day(get("day"), "day")?,
        kind,
        count: count(get("count"), "count")?,
    })
}
