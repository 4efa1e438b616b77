//! The columnar form of a scoring batch (`lectern:crm@0.2.0`,
//! `columnar-scoring`): projected patrons turned into columns, and the
//! scores that come back turned into the host's records, checked.
//!
//! Encoding starts from the same projected records as the record form, so
//! the two forms carry the same fields by construction.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::v0_2::columnar::{ActivityColumns, Codes, PatronColumns, Ragged, Scores};
use crate::error::Failure;
use crate::model::{Channel, Patron, Scored};
use crate::privacy::Field;

/// The absent marker of a string index or a count.
const ABSENT: u32 = u32::MAX;
/// The absent marker of a date.
const NO_DATE: i32 = i32::MIN;

/// Whether a scorer that declares `fields` can take its batches in
/// columns: the contact fields have none.
pub(crate) fn fit(fields: &[Field]) -> bool {
    !fields.iter().any(|f| {
        matches!(
            f,
            Field::CardNumber | Field::Name | Field::Email | Field::Phone | Field::Address
        )
    })
}

/// Strings, each once, in the order first met.
#[derive(Default)]
struct Table<'a> {
    index: HashMap<&'a str, u32>,
    strings: Vec<String>,
}

impl<'a> Table<'a> {
    fn of(&mut self, s: &'a str) -> u32 {
        *self.index.entry(s).or_insert_with(|| {
            self.strings.push(s.to_string());
            (self.strings.len() - 1) as u32
        })
    }
}

/// A column of one value per patron, or `None` when no patron has the field.
fn column<'p, T>(
    patrons: &'p [Patron],
    has: impl Fn(&'p Patron) -> bool,
    mut value: impl FnMut(&'p Patron) -> T,
) -> Option<Vec<T>> {
    patrons
        .iter()
        .any(has)
        .then(|| patrons.iter().map(&mut value).collect())
}

/// A ragged column. `entries` pushes a patron's entries (a value per key,
/// or no values at all for a field of keys only) and says whether the field
/// is there at all.
fn ragged<'p>(
    patrons: &'p [Patron],
    mut entries: impl FnMut(&'p Patron, &mut Vec<u32>, &mut Vec<u32>) -> bool,
) -> Option<Ragged> {
    let mut out = Ragged {
        starts: Vec::with_capacity(patrons.len() + 1),
        keys: Vec::new(),
        values: Vec::new(),
        absent_rows: Vec::new(),
    };
    let mut any = false;
    out.starts.push(0);
    for (row, p) in patrons.iter().enumerate() {
        if entries(p, &mut out.keys, &mut out.values) {
            any = true;
        } else {
            out.absent_rows.push(row as u32);
        }
        out.starts.push(out.keys.len() as u32);
    }
    any.then_some(out)
}

fn days(d: Option<NaiveDate>) -> i32 {
    d.map_or(NO_DATE, |d| {
        (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")).num_days() as i32
    })
}

fn channel(c: Channel) -> u32 {
    match c {
        Channel::Email => 0,
        Channel::Sms => 1,
        Channel::Webhook => 2,
        Channel::Print => 3,
    }
}

/// Projected `patrons` (their `id` already the token) in columns.
pub(crate) fn encode(patrons: &[Patron]) -> PatronColumns {
    let mut table = Table::default();
    let mut ids = String::with_capacity(patrons.iter().map(|p| p.id.len()).sum());
    let mut id_ends = Vec::with_capacity(patrons.len());
    for p in patrons {
        ids.push_str(&p.id);
        id_ends.push(ids.len() as u32);
    }
    let date = |get: fn(&Patron) -> Option<NaiveDate>| {
        column(patrons, |p| get(p).is_some(), |p| days(get(p)))
    };
    PatronColumns {
        rows: patrons.len() as u32,
        ids,
        id_ends,
        category: strings_of(&mut table, patrons, |p| p.category.as_deref()),
        age_band: strings_of(&mut table, patrons, |p| p.age_band.as_deref()),
        home_branch: strings_of(&mut table, patrons, |p| p.home_branch.as_deref()),
        locale: strings_of(&mut table, patrons, |p| p.locale.as_deref()),
        birth_date: date(|p| p.birth_date),
        enrolled_on: date(|p| p.enrolled_on),
        expires_on: date(|p| p.expires_on),
        consents: column(
            patrons,
            |p| p.consents.is_some(),
            |p| {
                p.consents.map_or(0xff, |c| {
                    u8::from(c.reading_history) | (u8::from(c.marketing) << 1)
                })
            },
        ),
        channels: ragged(patrons, |p, keys, _| {
            let Some(cs) = &p.channels else { return false };
            keys.extend(cs.iter().map(|&c| channel(c)));
            true
        }),
        activity: activity(patrons),
        attributes: ragged(patrons, |p, keys, values| {
            let Some(a) = &p.attributes else { return false };
            for (k, v) in a {
                keys.push(table.of(k));
                values.push(table.of(v));
            }
            true
        }),
        interests: ragged(patrons, |p, keys, values| {
            let Some(i) = &p.interests else { return false };
            for (subject, &loans) in i {
                keys.push(table.of(subject));
                values.push(loans);
            }
            true
        }),
        segments: ragged(patrons, |p, keys, values| {
            let Some(s) = &p.segments else { return false };
            for (scorer, segment) in s {
                keys.push(table.of(scorer));
                values.push(table.of(segment));
            }
            true
        }),
        strings: table.strings,
    }
}

fn strings_of<'p>(
    table: &mut Table<'p>,
    patrons: &'p [Patron],
    get: fn(&'p Patron) -> Option<&'p str>,
) -> Option<Vec<u32>> {
    column(
        patrons,
        |p| get(p).is_some(),
        |p| get(p).map_or(ABSENT, |s| table.of(s)),
    )
}

fn activity(patrons: &[Patron]) -> Option<ActivityColumns> {
    if patrons.iter().all(|p| p.activity.is_none()) {
        return None;
    }
    let n = patrons.len();
    let mut a = ActivityColumns {
        loans_30d: Vec::with_capacity(n),
        loans_90d: Vec::with_capacity(n),
        loans_365d: Vec::with_capacity(n),
        renewals_365d: Vec::with_capacity(n),
        holds_365d: Vec::with_capacity(n),
        overdue_now: Vec::with_capacity(n),
        days_since_last_activity: Vec::with_capacity(n),
        visits_365d: Vec::with_capacity(n),
        eresource_sessions_365d: Vec::with_capacity(n),
        absent_rows: Vec::new(),
    };
    for (row, p) in patrons.iter().enumerate() {
        let s = p.activity.unwrap_or_else(|| {
            a.absent_rows.push(row as u32);
            Default::default()
        });
        a.loans_30d.push(s.loans_30d);
        a.loans_90d.push(s.loans_90d);
        a.loans_365d.push(s.loans_365d);
        a.renewals_365d.push(s.renewals_365d);
        a.holds_365d.push(s.holds_365d);
        a.overdue_now.push(s.overdue_now);
        a.days_since_last_activity
            .push(s.days_since_last_activity.unwrap_or(ABSENT));
        a.visits_365d.push(s.visits_365d.unwrap_or(ABSENT));
        a.eresource_sessions_365d
            .push(s.eresource_sessions_365d.unwrap_or(ABSENT));
    }
    Some(a)
}

/// The scores of a batch whose tokens are `tokens`, in the host's records,
/// or what is wrong with them. Every index is checked, and the text the
/// codes expand to is held to `limit` bytes before any of it is built: a
/// scorer that lies about its rows or its codes is refused, never trusted.
pub(crate) fn decode(
    codes: &Codes,
    scores: Scores,
    tokens: &[String],
    limit: usize,
) -> Result<Vec<Scored>, Failure> {
    let rows = tokens.len();
    let Scores {
        values,
        segments,
        reason_starts,
        reasons,
        strings,
    } = scores;
    if values.len() != rows || segments.len() != rows {
        return Err(bad(format!(
            "it returned {} values and {} segments for {rows} patrons",
            values.len(),
            segments.len()
        )));
    }
    if reason_starts.len() != rows + 1
        || reason_starts.first() != Some(&0)
        || reason_starts.last().map(|&e| e as usize) != Some(reasons.len())
        || reason_starts.windows(2).any(|w| w[0] > w[1])
    {
        return Err(bad(format!(
            "its reason-starts are not {} rising offsets from 0 to the {} reasons",
            rows + 1,
            reasons.len()
        )));
    }
    // Check every code and add up the text first; build it only if it fits.
    let mut size = 0usize;
    for &c in &segments {
        size = size.saturating_add(text(c, &codes.segments, &strings, "a segment")?.len());
    }
    for &c in &reasons {
        size = size.saturating_add(text(c, &codes.reasons, &strings, "a reason")?.len());
    }
    if size > limit {
        return Err(Failure::OutputTooLarge { size, limit });
    }
    (0..rows)
        .map(|row| {
            let span = reason_starts[row] as usize..reason_starts[row + 1] as usize;
            Ok(Scored {
                patron: tokens[row].clone(),
                value: values[row],
                segment: text(segments[row], &codes.segments, &strings, "a segment")?.clone(),
                reasons: reasons[span]
                    .iter()
                    .map(|&c| text(c, &codes.reasons, &strings, "a reason").cloned())
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

fn bad(message: String) -> Failure {
    Failure::BadOutput { message }
}

/// The text `code` names: one of `fixed`, or past them one of the batch's
/// `strings`.
fn text<'a>(
    code: u32,
    fixed: &'a [String],
    strings: &'a [String],
    kind: &str,
) -> Result<&'a String, Failure> {
    let code = code as usize;
    let found = match code.checked_sub(fixed.len()) {
        None => fixed.get(code),
        Some(past) => strings.get(past),
    };
    found.ok_or_else(|| {
        bad(format!(
            "{kind} code {code} names nothing: it described {} and sent {} strings",
            fixed.len(),
            strings.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Activity, Consents};

    fn codes() -> Codes {
        Codes {
            segments: vec!["active".into(), "dormant".into()],
            reasons: vec!["no recorded activity".into()],
        }
    }

    #[test]
    fn a_batch_becomes_columns_with_each_string_once_and_absences_marked() {
        let a = Patron {
            id: "t1".into(),
            category: Some("faculty".into()),
            attributes: Some(BTreeMap::from([("department".into(), "faculty".into())])),
            activity: Some(Activity {
                loans_30d: 3,
                days_since_last_activity: Some(4),
                ..Activity::default()
            }),
            consents: Some(Consents {
                reading_history: true,
                marketing: false,
            }),
            ..Patron::default()
        };
        let b = Patron {
            id: "t22".into(),
            enrolled_on: NaiveDate::from_ymd_opt(1970, 1, 11),
            ..Patron::default()
        };
        let c = encode(&[a, b]);
        assert_eq!(
            (c.rows, c.ids.as_str(), c.id_ends.clone()),
            (2, "t1t22", vec![2, 5])
        );
        assert_eq!(c.strings, ["faculty", "department"]);
        assert_eq!(c.category, Some(vec![0, ABSENT]));
        assert_eq!(c.home_branch, None, "no patron has one");
        assert_eq!(c.enrolled_on, Some(vec![NO_DATE, 10]));
        assert_eq!(c.consents, Some(vec![1, 0xff]));
        let attributes = c.attributes.unwrap();
        assert_eq!(attributes.starts, [0, 1, 1]);
        assert_eq!((attributes.keys, attributes.values), (vec![1], vec![0]));
        assert_eq!(attributes.absent_rows, [1]);
        let activity = c.activity.unwrap();
        assert_eq!(activity.loans_30d, [3, 0]);
        assert_eq!(activity.days_since_last_activity, [4, ABSENT]);
        assert_eq!(activity.visits_365d, [ABSENT, ABSENT]);
        assert_eq!(activity.absent_rows, [1]);
        assert!(c.channels.is_none() && c.interests.is_none());
    }

    fn scores(segments: Vec<u32>, starts: Vec<u32>, reasons: Vec<u32>) -> Scores {
        Scores {
            values: vec![10.0; segments.len()],
            segments,
            reason_starts: starts,
            reasons,
            strings: vec!["last active 4 days ago".into()],
        }
    }

    #[test]
    fn scores_come_back_by_row_with_described_and_batch_texts() {
        let tokens = ["t1".to_string(), "t2".to_string()];
        let out = decode(
            &codes(),
            scores(vec![0, 1], vec![0, 2, 2], vec![1, 0]),
            &tokens,
            1 << 20,
        )
        .unwrap();
        assert_eq!(out[0].patron, "t1");
        assert_eq!(out[0].segment, "active");
        assert_eq!(
            out[0].reasons,
            ["last active 4 days ago", "no recorded activity"]
        );
        assert_eq!(
            (out[1].segment.as_str(), out[1].reasons.len()),
            ("dormant", 0)
        );
    }

    #[test]
    fn lying_scores_are_refused() {
        let tokens = ["t1".to_string(), "t2".to_string()];
        for (bad, why) in [
            (scores(vec![0], vec![0, 0], vec![]), "one row short"),
            (
                scores(vec![0, 3], vec![0, 0, 0], vec![]),
                "a segment code past the strings",
            ),
            (
                scores(vec![0, 0], vec![0, 2, 1], vec![0, 0]),
                "falling offsets",
            ),
            (
                scores(vec![0, 0], vec![0, 1, 3], vec![0, 0]),
                "offsets past the reasons",
            ),
            (
                scores(vec![0, 0], vec![0, 1, 1], vec![9]),
                "a reason code past the strings",
            ),
        ] {
            assert!(
                matches!(
                    decode(&codes(), bad, &tokens, 1 << 20),
                    Err(Failure::BadOutput { .. })
                ),
                "{why} was accepted"
            );
        }
    }

    #[test]
    fn codes_cannot_amplify_past_the_output_cap() {
        // Ten thousand reasons naming one long text: a few bytes from the
        // plugin, megabytes once expanded.
        let long = Codes {
            segments: vec!["active".into()],
            reasons: vec!["x".repeat(1000)],
        };
        let tokens = ["t1".to_string()];
        let bad = scores(vec![0], vec![0, 10_000], vec![0; 10_000]);
        assert!(matches!(
            decode(&long, bad, &tokens, 64 * 1024),
            Err(Failure::OutputTooLarge {
                size: 10_000_006,
                ..
            })
        ));
    }
}
