//! The columnar form of a scoring batch, hidden behind [`Scorer`]: the
//! host's columns become the same [`Patron`] records the record form gives,
//! and the scores go back as codes, each text once per batch.

use std::collections::HashMap;

use crate::__private::scorer::exports::lectern::crm::columnar_scoring::{
    ActivityColumns, Codes, PatronColumns, Ragged, Scores,
};
use crate::{
    Activity, Attribute, Channel, Consents, Date, Patron, PluginError, Score, Scorer,
    SegmentMembership, SubjectCount,
};

const ABSENT: u32 = u32::MAX;
const NO_DATE: i32 = i32::MIN;

/// The codes a scorer names once: its [`Scorer::SEGMENTS`] and
/// [`Scorer::REASONS`].
pub fn describe<S: Scorer>() -> Codes {
    let owned = |texts: &[&str]| texts.iter().map(|t| t.to_string()).collect();
    Codes {
        segments: owned(S::SEGMENTS),
        reasons: owned(S::REASONS),
    }
}

/// Scores a batch in columns with the author's per-patron code.
pub fn score_columns<S: Scorer>(batch: PatronColumns) -> Result<Scores, PluginError> {
    let rows = batch.rows as usize;
    let patrons = records(&batch)?;
    let scores = S::score_batch(patrons)?;
    if scores.len() != rows {
        return Err(PluginError::Other(format!(
            "score_batch returned {} scores for {rows} patrons",
            scores.len()
        )));
    }
    Ok(encode::<S>(scores))
}

fn invalid(what: &str) -> PluginError {
    PluginError::InvalidInput(format!("the host sent a malformed column: {what}"))
}

/// The records the columns stand for.
fn records(b: &PatronColumns) -> Result<Vec<Patron>, PluginError> {
    let rows = b.rows as usize;
    let string = |i: u32| -> Result<Option<String>, PluginError> {
        if i == ABSENT {
            return Ok(None);
        }
        b.strings
            .get(i as usize)
            .cloned()
            .map(Some)
            .ok_or_else(|| invalid("a string index past the table"))
    };
    let column = |c: &Option<Vec<u32>>, row: usize| -> Result<Option<String>, PluginError> {
        match c {
            None => Ok(None),
            Some(c) => string(*c.get(row).ok_or_else(|| invalid("a short column"))?),
        }
    };
    let date = |c: &Option<Vec<i32>>, row: usize| -> Result<Option<Date>, PluginError> {
        match c.as_ref().map(|c| c.get(row)) {
            None => Ok(None),
            Some(None) => Err(invalid("a short date column")),
            Some(Some(&NO_DATE)) => Ok(None),
            Some(Some(&d)) => Ok(Some(Date::from_days(i64::from(d)))),
        }
    };
    if b.id_ends.len() != rows {
        return Err(invalid("id-ends"));
    }
    let mut out = Vec::with_capacity(rows);
    let mut id_start = 0usize;
    for row in 0..rows {
        let id_end = b.id_ends[row] as usize;
        let id = b
            .ids
            .get(id_start..id_end)
            .ok_or_else(|| invalid("id-ends"))?
            .to_string();
        id_start = id_end;
        let consents = match b.consents.as_ref().map(|c| c.get(row)) {
            None | Some(Some(0xff)) => None,
            Some(None) => return Err(invalid("a short consents column")),
            Some(Some(&bits)) => Some(Consents {
                reading_history: bits & 1 != 0,
                marketing: bits & 2 != 0,
            }),
        };
        out.push(Patron {
            id,
            card_number: None,
            name: None,
            email: None,
            phone: None,
            birth_date: date(&b.birth_date, row)?,
            age_band: column(&b.age_band, row)?,
            category: column(&b.category, row)?,
            home_branch: column(&b.home_branch, row)?,
            enrolled_on: date(&b.enrolled_on, row)?,
            expires_on: date(&b.expires_on, row)?,
            attributes: entries(&b.attributes, row, |k, v| {
                Ok(Attribute {
                    key: string(k)?.ok_or_else(|| invalid("an absent attribute key"))?,
                    value: string(v)?.ok_or_else(|| invalid("an absent attribute value"))?,
                })
            })?,
            consents,
            locale: column(&b.locale, row)?,
            channels: entries(&b.channels, row, |k, _| channel(k))?,
            activity: activity(b.activity.as_ref(), row)?,
            interests: entries(&b.interests, row, |k, loans| {
                Ok(SubjectCount {
                    subject: string(k)?.ok_or_else(|| invalid("an absent subject"))?,
                    loans,
                })
            })?,
            segments: entries(&b.segments, row, |k, v| {
                Ok(SegmentMembership {
                    scorer: string(k)?.ok_or_else(|| invalid("an absent scorer"))?,
                    segment: string(v)?.ok_or_else(|| invalid("an absent segment"))?,
                })
            })?,
        });
    }
    Ok(out)
}

/// Row `row`'s entries of a ragged column, each made by `make(key, value)`.
fn entries<T>(
    column: &Option<Ragged>,
    row: usize,
    make: impl Fn(u32, u32) -> Result<T, PluginError>,
) -> Result<Option<Vec<T>>, PluginError> {
    let Some(c) = column else { return Ok(None) };
    if c.absent_rows.binary_search(&(row as u32)).is_ok() {
        return Ok(None);
    }
    let (Some(&start), Some(&end)) = (c.starts.get(row), c.starts.get(row + 1)) else {
        return Err(invalid("ragged starts"));
    };
    let span = start as usize..end as usize;
    let keys = c
        .keys
        .get(span.clone())
        .ok_or_else(|| invalid("ragged keys"))?;
    let value = |i: usize| c.values.get(span.start + i).copied().unwrap_or(0);
    keys.iter()
        .enumerate()
        .map(|(i, &k)| make(k, value(i)))
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

fn channel(code: u32) -> Result<Channel, PluginError> {
    Ok(match code {
        0 => Channel::Email,
        1 => Channel::Sms,
        2 => Channel::Webhook,
        3 => Channel::Print,
        _ => return Err(invalid("a channel code")),
    })
}

fn activity(a: Option<&ActivityColumns>, row: usize) -> Result<Option<Activity>, PluginError> {
    let Some(a) = a else { return Ok(None) };
    if a.absent_rows.binary_search(&(row as u32)).is_ok() {
        return Ok(None);
    }
    let at = |c: &[u32]| {
        c.get(row)
            .copied()
            .ok_or_else(|| invalid("a short activity column"))
    };
    let optional = |c: &[u32]| at(c).map(|v| (v != ABSENT).then_some(v));
    Ok(Some(Activity {
        loans_30d: at(&a.loans_30d)?,
        loans_90d: at(&a.loans_90d)?,
        loans_365d: at(&a.loans_365d)?,
        renewals_365d: at(&a.renewals_365d)?,
        holds_365d: at(&a.holds_365d)?,
        overdue_now: at(&a.overdue_now)?,
        days_since_last_activity: optional(&a.days_since_last_activity)?,
        visits_365d: optional(&a.visits_365d)?,
        eresource_sessions_365d: optional(&a.eresource_sessions_365d)?,
    }))
}

/// Scores as codes: described texts by their number, others once each in
/// the batch's strings.
fn encode<S: Scorer>(scores: Vec<Score>) -> Scores {
    let mut batch: HashMap<String, u32> = HashMap::new();
    let mut strings = Vec::new();
    let mut code = |text: String, fixed: &[&str]| -> u32 {
        if let Some(i) = fixed.iter().position(|f| *f == text) {
            return i as u32;
        }
        // One table for both kinds; each kind numbers it after its codes.
        let index = *batch.entry(text).or_insert_with_key(|t| {
            strings.push(t.clone());
            strings.len() as u32 - 1
        });
        fixed.len() as u32 + index
    };
    let mut out = Scores {
        values: Vec::with_capacity(scores.len()),
        segments: Vec::with_capacity(scores.len()),
        reason_starts: Vec::with_capacity(scores.len() + 1),
        reasons: Vec::new(),
        strings: Vec::new(),
    };
    out.reason_starts.push(0);
    for s in scores {
        out.values.push(s.value);
        out.segments.push(code(s.segment, S::SEGMENTS));
        for r in s.reasons {
            out.reasons.push(code(r, S::REASONS));
        }
        out.reason_starts.push(out.reasons.len() as u32);
    }
    out.strings = strings;
    out
}
