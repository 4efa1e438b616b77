//! Readers' information needs, as a librarian can act on them: demand per
//! subject and month, how each group's demand moved on last year, and the
//! demand the collection does not meet (readers waiting for titles).
//!
//! Demand in a month is loans, renewals and holds placed, each counted
//! once. Every reader counts in the subject totals, unlinked; only readers
//! who consented to the use of their reading history are linked to their
//! groups (department, category, branch, segment), and only through the
//! fields the privacy policy lets the role see for analytics. Only
//! aggregates leave: a count of fewer than k readers is hidden, and so is a
//! second count in any line whose shown total would give a hidden one away.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::Serialize;

use crate::consortium::Suppressed;
use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::forecast::{Forecast, Forecaster, MonthlySeries, months_after};
use crate::privacy::{Field, Purpose};
use crate::report::{csv, esc, page};
use crate::store::queued;

/// What `lectern report needs` looks at.
#[derive(Debug, Clone)]
pub struct NeedsOptions {
    /// The day the report is as of; the series ends with the last whole
    /// month up to it.
    pub as_of: NaiveDate,
    /// The smallest number of readers behind a count shown.
    pub k: usize,
    /// Months in each series, at least 24 (this year and last).
    pub months: u32,
    /// A hold waiting its turn for longer than this many days is unmet
    /// demand.
    pub waiting_days: u32,
    /// Titles with at least this many readers waiting are listed.
    pub min_waiting: usize,
    /// The scorer whose latest run puts readers in segments.
    pub segments_from: String,
    /// The patron attribute that names a reader's department.
    pub department: String,
}

impl NeedsOptions {
    /// The defaults, as of `as_of`: 36 months, holds waiting over 14 days,
    /// titles with 3 or more readers waiting, segments from `engagement`,
    /// departments from the `department` attribute.
    pub fn new(as_of: NaiveDate, k: usize) -> NeedsOptions {
        NeedsOptions {
            as_of,
            k,
            months: 36,
            waiting_days: 14,
            min_waiting: 3,
            segments_from: "engagement".into(),
            department: "department".into(),
        }
    }
}

/// The demand picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeedsReport {
    /// The day it is as of.
    pub as_of: NaiveDate,
    /// The smallest number of readers behind a count shown.
    pub k: usize,
    /// The series' months, `YYYY-MM`, oldest first; the last 12 are "this
    /// year", the 12 before them "last year".
    pub months: Vec<String>,
    /// One line per subject, the fastest rising first.
    pub subjects: Vec<SubjectNeed>,
    /// Demand by group: consenting readers only.
    pub groups: Vec<GroupNeed>,
    /// Titles with at least `min_waiting` readers waiting their turn.
    pub waiting: Vec<WaitingTitle>,
    /// What stands out, in sentences.
    pub headlines: Vec<String>,
    /// What was left out, and why.
    pub notes: Vec<String>,
    /// How many counts are hidden.
    pub hidden: usize,
    /// Forecasts of the subjects' demand, when a forecaster was asked.
    pub forecasts: Vec<SubjectForecast>,
    /// Whether any reader answered a needs survey's subjects question, so
    /// that `asked` means something.
    pub surveyed: bool,
}

/// A subject's forecast demand in the months after the report's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectForecast {
    /// The subject.
    pub subject: String,
    /// The months forecast, `YYYY-MM`.
    pub months: Vec<String>,
    /// The forecast, with its interval, and the forecaster's reasons.
    #[serde(flatten)]
    pub forecast: Forecast,
    /// The forecast's total against the same months a year before, where
    /// those show.
    pub change: Option<f64>,
    /// The forecaster, `id@version`.
    pub forecaster: String,
}

/// Demand in one subject, from every reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectNeed {
    /// The subject.
    pub subject: String,
    /// Demand per month of [`NeedsReport::months`]; `None` where hidden.
    pub monthly: Vec<Option<u64>>,
    /// Demand in the last 12 months.
    pub this_year: Option<u64>,
    /// Demand in the 12 months before.
    pub last_year: Option<u64>,
    /// `this_year / last_year - 1`, where both show.
    pub change: Option<f64>,
    /// Holds for its titles waiting their turn longer than the limit;
    /// `None` where fewer than k.
    pub unmet: Option<usize>,
    /// Its titles with at least `min_waiting` readers waiting.
    pub titles_waiting: usize,
    /// Readers who named it as a need in a needs survey (a question with
    /// `feeds = "subjects"`); `None` where fewer than k did, or no survey
    /// asks.
    pub asked: Option<u64>,
}

/// One group's demand, from its readers who consented.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupNeed {
    /// `department`, `category`, `branch` or `segment`.
    pub dimension: String,
    /// The group, such as `chemistry`.
    pub group: String,
    /// Its demand in the last 12 months; `None` where hidden.
    pub this_year: Option<u64>,
    /// In the 12 before.
    pub last_year: Option<u64>,
    /// The change, where both show.
    pub change: Option<f64>,
    /// Per subject, the group's busiest first; hidden ones are `None`.
    pub subjects: Vec<GroupSubject>,
    /// Titles with at least `min_waiting` readers waiting, in the subjects
    /// the group uses most (up to three of those shown).
    pub titles_waiting: usize,
}

/// A group's demand in one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSubject {
    /// The subject.
    pub subject: String,
    /// In the last 12 months; `None` where hidden.
    pub this_year: Option<u64>,
    /// In the 12 before.
    pub last_year: Option<u64>,
    /// The change, where both show.
    pub change: Option<f64>,
}

/// A title readers queue for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingTitle {
    /// The title.
    pub title: String,
    /// Its subject, as its loans name it.
    pub subject: Option<String>,
    /// Readers waiting their turn, as a catalogue shows a title's holds.
    pub waiting: usize,
}

/// The last whole month up to `as_of`: its own month if it is the last
/// day, else the month before.
fn last_whole_month(as_of: NaiveDate) -> NaiveDate {
    let first = as_of.with_day(1).unwrap_or(as_of);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
    if next.pred_opt() == Some(as_of) {
        first
    } else {
        first.checked_sub_months(Months::new(1)).unwrap_or(first)
    }
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Counts with the readers behind them.
#[derive(Default, Clone)]
struct Counted {
    value: u64,
    readers: HashSet<usize>,
}

impl Counted {
    fn add(&mut self, reader: usize, n: u64) {
        self.value += n;
        self.readers.insert(reader);
    }
}

fn change(now: Option<u64>, before: Option<u64>) -> Option<f64> {
    match (now, before) {
        (Some(n), Some(b)) if b > 0 => Some(n as f64 / b as f64 - 1.0),
        _ => None,
    }
}

impl Lectern {
    /// The needs report as `role` may see it for analytics: refused if the
    /// role is not one the policy declares, audited before anything is
    /// read, and only aggregates of at least `k` readers.
    pub fn needs_report(&self, role: &str, options: &NeedsOptions) -> Result<NeedsReport> {
        crate::pipeline::check_k(options.k, self.config().k_floor)?;
        if !(24..=240).contains(&options.months) {
            return Err(Error::Invalid {
                where_: "--months".into(),
                message: format!(
                    "{} months: give 24 (this year and last) to 240",
                    options.months
                ),
            });
        }
        let ctx = self.staff(Purpose::Analytics, role)?;
        let passed: HashSet<Field> = self
            .fields_passed(&ctx, options.as_of)?
            .into_iter()
            .collect();
        let end = last_whole_month(options.as_of);
        let start = end
            .checked_sub_months(Months::new(options.months - 1))
            .unwrap_or(end);
        let until = end
            .checked_add_months(Months::new(1))
            .and_then(|d| d.pred_opt())
            .unwrap_or(end);
        let months: Vec<String> = (0..options.months)
            .filter_map(|i| start.checked_add_months(Months::new(i)))
            .map(month_key)
            .collect();
        let month_of: HashMap<&str, usize> = months
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();

        let store = self.store();
        let loans = store.loans_by_month(start, until).map_err(Error::store)?;
        let holds_from = start.min(options.as_of - Days::new(3 * 365));
        let holds = store
            .holds_placed(holds_from, options.as_of)
            .map_err(Error::store)?;
        let title_subject: HashMap<String, String> = store
            .title_subjects()
            .map_err(Error::store)?
            .into_iter()
            .collect();

        // Everyone whose reading history is read, audited before the
        // patrons' records are.
        let mut ids: BTreeSet<&str> = loans.iter().map(|l| l.patron.as_str()).collect();
        ids.extend(holds.iter().map(|h| h.patron.as_str()));
        let linked = passed.contains(&Field::Interests);
        let dimensions: Vec<(&str, Field)> = [
            ("department", Field::Attributes),
            ("category", Field::Category),
            ("branch", Field::HomeBranch),
            ("segment", Field::Segments),
        ]
        .into_iter()
        .filter(|(_, f)| linked && passed.contains(f))
        .collect();
        let mut fields = vec![Field::Interests];
        fields.extend(dimensions.iter().map(|(_, f)| *f));
        let ids: Vec<&str> = ids.into_iter().collect();
        self.audit_read(ctx.clone(), fields, &ids)?;

        // Each reader's groups, from the record as the policy projects it,
        // and only for readers who consented.
        let mut notes = Vec::new();
        let readers_read: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let patrons = store
            .patrons_among(&readers_read, options.as_of)
            .map_err(Error::store)?;
        let consented: HashSet<String> = patrons
            .iter()
            .filter(|p| p.consents.is_some_and(|c| c.reading_history))
            .map(|p| p.id.clone())
            .collect();
        let mut groups_of: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        if linked {
            // Only the consenting readers with demand are projected (and
            // the projection audited).
            let wanted: HashSet<&str> = ids.iter().copied().collect();
            let linkable: Vec<_> = patrons
                .into_iter()
                .filter(|p| consented.contains(&p.id) && wanted.contains(p.id.as_str()))
                .collect();
            let ids_of: Vec<String> = linkable.iter().map(|p| p.id.clone()).collect();
            let projected = self.filter(&ctx, &linkable, options.as_of)?;
            if projected.len() != ids_of.len() {
                return Err(Error::store(anyhow::anyhow!(
                    "the privacy filter returned {} records for {} readers",
                    projected.len(),
                    ids_of.len()
                )));
            }
            // The projection may carry pseudonyms; the store's ids link.
            for (id, p) in ids_of.into_iter().zip(projected) {
                let mut mine = Vec::new();
                for (d, (name, _)) in dimensions.iter().enumerate() {
                    let value = match *name {
                        "department" => p
                            .attributes
                            .as_ref()
                            .and_then(|a| a.get(&options.department).cloned()),
                        "category" => p.category.clone(),
                        "branch" => p.home_branch.clone(),
                        _ => p
                            .segments
                            .as_ref()
                            .and_then(|s| s.get(&options.segments_from).cloned()),
                    };
                    if let Some(v) = value.filter(|v| !v.is_empty()) {
                        mine.push((d, v));
                    }
                }
                groups_of.insert(id, mine);
            }
            for (name, field) in [
                ("department", Field::Attributes),
                ("category", Field::Category),
                ("branch", Field::HomeBranch),
                ("segment", Field::Segments),
            ] {
                if !passed.contains(&field) {
                    notes.push(format!(
                        "No demand by {name}: the privacy policy does not let `{role}` see \
                         `{field}` for analytics."
                    ));
                }
            }
        } else {
            notes.push(format!(
                "No demand by group: the privacy policy does not let `{role}` see reading \
                 history (`interests`) for analytics; subject totals count every reader, \
                 unlinked."
            ));
        }
        notes.push(format!(
            "{} of {} readers consented to the use of their reading history; only they \
             count in the groups. Everyone counts in the subject totals.",
            consented.len(),
            ids.len()
        ));

        // Demand per reader, subject and month.
        let mut subjects: BTreeMap<String, usize> = BTreeMap::new();
        let mut reader_ix: HashMap<&str, usize> = HashMap::new();
        let mut events: Vec<(usize, usize, usize, u64)> = Vec::new();
        let index = |map: &mut BTreeMap<String, usize>, s: &str| -> usize {
            let n = map.len();
            *map.entry(s.to_string()).or_insert(n)
        };
        for l in &loans {
            let Some(&m) = month_of.get(l.month.as_str()) else {
                continue;
            };
            let n = reader_ix.len();
            let r = *reader_ix.entry(l.patron.as_str()).or_insert(n);
            let s = index(&mut subjects, &l.subject);
            events.push((r, s, m, u64::from(l.loans) + u64::from(l.renewals)));
        }
        for h in &holds {
            let Some(subject) = h.title.as_ref().and_then(|t| title_subject.get(t)) else {
                continue;
            };
            let Some(&m) = month_of.get(month_key(h.placed_on).as_str()) else {
                continue;
            };
            let n = reader_ix.len();
            let r = *reader_ix.entry(h.patron.as_str()).or_insert(n);
            let s = index(&mut subjects, subject);
            events.push((r, s, m, 1));
        }
        let names: Vec<String> = {
            let mut v = vec![String::new(); subjects.len()];
            for (name, i) in &subjects {
                v[*i] = name.clone();
            }
            v
        };
        let width = months.len();
        let this_year = width - 12..width;
        let last_year = width - 24..width - 12;

        // Subject totals: every reader, unlinked.
        let mut cells: Vec<Vec<Counted>> = vec![vec![Counted::default(); width]; names.len()];
        for &(r, s, m, n) in &events {
            cells[s][m].add(r, n);
        }

        // Unmet demand: holds waiting their turn, by title.
        let mut queues: BTreeMap<&str, usize> = BTreeMap::new();
        let mut unmet: HashMap<&str, usize> = HashMap::new();
        for h in holds.iter().filter(|h| queued(h.status.as_deref())) {
            let Some(title) = h.title.as_deref() else {
                continue;
            };
            let days = (options.as_of - h.placed_on).num_days();
            *queues.entry(title).or_default() += 1;
            if days > i64::from(options.waiting_days)
                && let Some(s) = title_subject.get(title)
            {
                *unmet.entry(s.as_str()).or_default() += 1;
            }
        }
        let mut waiting: Vec<WaitingTitle> = queues
            .into_iter()
            .filter(|(_, n)| *n >= options.min_waiting)
            .map(|(title, n)| WaitingTitle {
                title: title.to_string(),
                subject: title_subject.get(title).cloned(),
                waiting: n,
            })
            .collect();
        waiting.sort_by(|a, b| b.waiting.cmp(&a.waiting).then(a.title.cmp(&b.title)));
        let mut titles_waiting: HashMap<&str, usize> = HashMap::new();
        for w in &waiting {
            if let Some(s) = &w.subject {
                *titles_waiting.entry(s.as_str()).or_default() += 1;
            }
        }

        let k = options.k;
        let mut hidden = 0;
        let mut subject_rows = Vec::new();
        let mut subject_windows: Vec<(Option<u64>, Option<u64>)> = Vec::new();
        for (s, row) in cells.iter().enumerate() {
            let (line, windows, h) = subject_line(row, &[last_year.clone(), this_year.clone()], k);
            hidden += h;
            subject_windows.push((windows[1], windows[0]));
            subject_rows.push(SubjectNeed {
                subject: names[s].clone(),
                monthly: line,
                this_year: windows[1],
                last_year: windows[0],
                change: change(windows[1], windows[0]),
                unmet: Some(unmet.get(names[s].as_str()).copied().unwrap_or(0))
                    .filter(|n| *n == 0 || *n >= k),
                titles_waiting: titles_waiting.get(names[s].as_str()).copied().unwrap_or(0),
                asked: None,
            });
        }

        // Needs named in surveys: each reader once per subject; a subject
        // named by fewer than k readers is not shown.
        let mut named: BTreeMap<String, u64> = BTreeMap::new();
        let mut surveyed = false;
        for def in self.surveys()? {
            let feeding: Vec<&str> = def
                .questions
                .iter()
                .filter(|q| q.feeds == Some(crate::survey::Feeds::Subjects))
                .map(|q| q.id.as_str())
                .collect();
            if feeding.is_empty() {
                continue;
            }
            for a in store.survey_answers(&def.id).map_err(Error::store)? {
                let mut mine: BTreeSet<&str> = BTreeSet::new();
                for q in &feeding {
                    match a.answers.get(*q) {
                        Some(crate::store::Answer::Single(v)) => {
                            mine.insert(v);
                        }
                        Some(crate::store::Answer::Multiple(vs)) => {
                            mine.extend(vs.iter().map(String::as_str));
                        }
                        _ => {}
                    }
                }
                surveyed |= !mine.is_empty();
                for subject in mine {
                    *named.entry(subject.to_string()).or_default() += 1;
                }
            }
        }
        for (subject, n) in named {
            let shown = (n >= k as u64).then_some(n);
            hidden += usize::from(shown.is_none());
            match subject_rows.iter_mut().find(|r| r.subject == subject) {
                Some(row) => row.asked = shown,
                // Named and never borrowed: a gap in the collection.
                None if shown.is_some() => subject_rows.push(SubjectNeed {
                    subject,
                    monthly: vec![Some(0); width],
                    this_year: Some(0),
                    last_year: Some(0),
                    change: None,
                    unmet: Some(0),
                    titles_waiting: 0,
                    asked: shown,
                }),
                None => {}
            }
        }

        // Groups: consenting readers, per dimension, suppressed as a table
        // of groups by subjects whose column totals are the subject totals
        // where those show.
        let readers: Vec<&str> = {
            let mut v = vec![""; reader_ix.len()];
            for (id, i) in &reader_ix {
                v[*i] = id;
            }
            v
        };
        let mut group_rows = Vec::new();
        for (d, (name, _)) in dimensions.iter().enumerate() {
            // group → subject → (this year, last year)
            let mut table: BTreeMap<&str, Vec<(Counted, Counted)>> = BTreeMap::new();
            for &(r, s, m, n) in &events {
                let Some(groups) = groups_of.get(readers[r]) else {
                    continue;
                };
                let Some((_, g)) = groups.iter().find(|(dd, _)| *dd == d) else {
                    continue;
                };
                let row = table
                    .entry(g.as_str())
                    .or_insert_with(|| vec![(Counted::default(), Counted::default()); names.len()]);
                if this_year.contains(&m) {
                    row[s].0.add(r, n);
                } else if last_year.contains(&m) {
                    row[s].1.add(r, n);
                }
            }
            let (rows, h) = group_table(name, &table, &names, &subject_windows, k);
            hidden += h;
            group_rows.extend(rows);
        }
        for g in &mut group_rows {
            let top: Vec<&str> = g
                .subjects
                .iter()
                .filter(|s| s.this_year.is_some())
                .take(3)
                .map(|s| s.subject.as_str())
                .collect();
            g.titles_waiting = top
                .iter()
                .map(|s| titles_waiting.get(s).copied().unwrap_or(0))
                .sum();
        }

        subject_rows.sort_by(|a, b| {
            b.change
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&a.change.unwrap_or(f64::NEG_INFINITY))
                .then(a.subject.cmp(&b.subject))
        });
        let headlines = headlines(&subject_rows, &group_rows, options.min_waiting);
        Ok(NeedsReport {
            as_of: options.as_of,
            k,
            months,
            subjects: subject_rows,
            groups: group_rows,
            waiting,
            headlines,
            notes,
            hidden,
            forecasts: Vec::new(),
            surveyed,
        })
    }

    /// Adds `forecaster`'s forecast of the next `horizon` months to each
    /// subject of `report`, from the subject lines as the report shows
    /// them: suppressed aggregates, never a patron. A subject the
    /// forecaster fails on is noted, not fatal; a forecaster that breaks
    /// the contract fails the call.
    pub fn forecast_needs(
        &self,
        report: &mut NeedsReport,
        forecaster: &Forecaster,
        horizon: u32,
    ) -> Result<()> {
        let series = subject_series(report);
        let Some(start) = report.months.first().cloned() else {
            return Ok(());
        };
        let months = months_after(&start, report.months.len(), horizon);
        let plugin = forecaster.plugin().manifest();
        let name = format!("{}@{}", plugin.id, plugin.version);
        let results = forecaster.forecast(&series, horizon, report.as_of)?;
        let mut failed = Vec::new();
        for (s, result) in report.subjects.iter().zip(results) {
            let f = match result {
                Ok(f) => f,
                Err(e) => {
                    failed.push(format!("{} ({e})", s.subject));
                    continue;
                }
            };
            // The same months a year before, from the subject's line.
            let n = s.monthly.len();
            let before: Option<f64> = (0..months.len())
                .map(|h| {
                    (n + h)
                        .checked_sub(12)
                        .and_then(|i| s.monthly.get(i).copied().flatten())
                })
                .map(|v| v.map(|v| v as f64))
                .sum();
            let total: f64 = f.values.iter().sum();
            report.forecasts.push(SubjectForecast {
                subject: s.subject.clone(),
                months: months.clone(),
                change: before.filter(|b| *b > 0.0).map(|b| total / b - 1.0),
                forecast: f,
                forecaster: name.clone(),
            });
        }
        if !failed.is_empty() {
            report
                .notes
                .push(format!("{name} could not forecast {}.", failed.join(", ")));
        }
        report.forecasts.sort_by(|a, b| {
            b.change
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&a.change.unwrap_or(f64::NEG_INFINITY))
                .then(a.subject.cmp(&b.subject))
        });
        if let Some(top) = report.forecasts.first()
            && let Some(c) = top.change.filter(|c| *c > 0.0)
        {
            report.headlines.push(format!(
                "{}: forecast {} over the next {} months on the same months a year before \
                 ({})",
                top.subject,
                percent(c),
                months.len(),
                top.forecaster
            ));
        }
        Ok(())
    }

    /// A round of current-awareness digests for the period of `as_of`:
    /// key readers are those the latest run of `scorer` puts in the
    /// configured key-reader segments; each department's rising subjects
    /// and the titles readers queue for come from the needs report as
    /// `role` may read it, so only aggregates of at least k readers shape
    /// a digest.
    pub fn awareness_round(
        &self,
        role: &str,
        scorer: &str,
        as_of: NaiveDate,
    ) -> Result<crate::notify::Awareness> {
        let k = crate::DEFAULT_K.max(self.config().k_floor);
        let options = NeedsOptions::new(as_of, k);
        let report = self.needs_report(role, &options)?;
        let mut rising: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in report.groups.iter().filter(|g| g.dimension == "department") {
            let mut up: Vec<&GroupSubject> = g
                .subjects
                .iter()
                .filter(|s| s.change.is_some_and(|c| c >= RISING))
                .collect();
            up.sort_by(|a, b| {
                b.change
                    .unwrap_or(0.0)
                    .total_cmp(&a.change.unwrap_or(0.0))
                    .then(a.subject.cmp(&b.subject))
            });
            if !up.is_empty() {
                rising.insert(
                    g.group.clone(),
                    up.into_iter().take(3).map(|s| s.subject.clone()).collect(),
                );
            }
        }
        Ok(crate::notify::Awareness {
            period: month_key(as_of),
            scorer: scorer.to_string(),
            key_segments: self.config().segments.key_readers.clone(),
            department: options.department,
            rising,
            in_demand: report
                .waiting
                .iter()
                .filter_map(|w| Some((w.title.clone(), w.subject.clone()?)))
                .collect(),
        })
    }

    /// Backtests `forecaster` on the needs report `options` describe:
    /// trains on all but the last `test_months` of each subject's line and
    /// forecasts those, against the seasonal naive forecast.
    pub fn backtest_needs(
        &self,
        role: &str,
        options: &NeedsOptions,
        forecaster: &Forecaster,
        test_months: usize,
    ) -> Result<crate::forecast::Backtest> {
        let report = self.needs_report(role, options)?;
        forecaster.backtest(&subject_series(&report), test_months, options.as_of)
    }
}

/// The subjects' lines as a forecaster gets them.
fn subject_series(report: &NeedsReport) -> Vec<MonthlySeries> {
    report
        .subjects
        .iter()
        .map(|s| MonthlySeries {
            subject: s.subject.clone(),
            group: "all".into(),
            start: report.months.first().cloned().unwrap_or_default(),
            values: s.monthly.iter().map(|v| v.map(|n| n as f64)).collect(),
        })
        .collect()
}

/// One subject's monthly line and its two yearly totals, suppressed:
/// months of fewer than k readers hidden, and in each window whose total
/// shows, never exactly one month hidden. Returns the line, the windows'
/// totals and how many counts it hid.
fn subject_line(
    row: &[Counted],
    windows: &[std::ops::Range<usize>],
    k: usize,
) -> (Vec<Option<u64>>, Vec<Option<u64>>, usize) {
    let small = |c: &Counted| !c.readers.is_empty() && c.readers.len() < k;
    let mut hide: Vec<bool> = row.iter().map(small).collect();
    let mut totals = Vec::new();
    for w in windows {
        let mut readers: HashSet<usize> = HashSet::new();
        let mut value = 0;
        for c in &row[w.clone()] {
            readers.extend(&c.readers);
            value += c.value;
        }
        let mut shown = readers.is_empty() || readers.len() >= k;
        let hidden_months = w.clone().filter(|&m| hide[m]).count();
        if shown && hidden_months == 1 {
            let partner = w
                .clone()
                .filter(|&m| !hide[m] && row[m].value > 0)
                .min_by_key(|&m| row[m].value);
            match partner {
                Some(m) => hide[m] = true,
                None => shown = false,
            }
        }
        totals.push(shown.then_some(value));
    }
    let line: Vec<Option<u64>> = row
        .iter()
        .zip(&hide)
        .map(|(c, h)| (!h).then_some(c.value))
        .collect();
    let count = hide.iter().filter(|h| **h).count() + totals.iter().filter(|t| t.is_none()).count();
    (line, totals, count)
}

/// One dimension's groups by subjects, suppressed as a table: a cell or a
/// group's total of fewer than k readers is hidden, and no row whose total
/// shows, nor column whose subject total shows, hides exactly one cell.
fn group_table(
    dimension: &str,
    table: &BTreeMap<&str, Vec<(Counted, Counted)>>,
    names: &[String],
    subject_totals: &[(Option<u64>, Option<u64>)],
    k: usize,
) -> (Vec<GroupNeed>, usize) {
    let small = |n: usize| n > 0 && n < k;
    // Each year shows on its own, so each must stand for k readers or none.
    let cell_small = |c: &(Counted, Counted)| small(c.0.readers.len()) || small(c.1.readers.len());
    let values: Vec<Vec<usize>> = table
        .values()
        .map(|row| {
            row.iter()
                .map(|c| (c.0.value + c.1.value) as usize)
                .collect()
        })
        .collect();
    let primary: Vec<Vec<bool>> = table
        .values()
        .map(|row| row.iter().map(cell_small).collect())
        .collect();
    let row_primary: Vec<bool> = table
        .values()
        .map(|row| {
            let (mut now, mut before): (HashSet<usize>, HashSet<usize>) = Default::default();
            for c in row {
                now.extend(&c.0.readers);
                before.extend(&c.1.readers);
            }
            small(now.len()) || small(before.len())
        })
        .collect();
    // Every column is protected as if its total showed: a subject's total
    // over consenting readers is the same in every dimension's table, so a
    // column that shows whole in one table would give away a single cell
    // hidden in another's, and where every reader consented it is the
    // subject's own total.
    let column_primary: Vec<bool> = vec![false; subject_totals.len()];
    let t = Suppressed::with_primary(&values, primary, row_primary, column_primary);
    let mut out = Vec::new();
    for (i, (group, row)) in table.iter().enumerate() {
        let shown = t.row(i);
        let total_shown = t.row_total(i).is_some();
        let mut subjects: Vec<GroupSubject> = row
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0.value + c.1.value > 0)
            .map(|(s, c)| {
                let (now, before) = match shown[s] {
                    Some(_) => (Some(c.0.value), Some(c.1.value)),
                    None => (None, None),
                };
                GroupSubject {
                    subject: names[s].clone(),
                    this_year: now,
                    last_year: before,
                    change: change(now, before),
                }
            })
            .collect();
        subjects.sort_by(|a, b| {
            b.this_year
                .cmp(&a.this_year)
                .then(a.subject.cmp(&b.subject))
        });
        let (now, before) = match total_shown {
            true => (
                Some(row.iter().map(|c| c.0.value).sum()),
                Some(row.iter().map(|c| c.1.value).sum()),
            ),
            false => (None, None),
        };
        out.push(GroupNeed {
            dimension: dimension.to_string(),
            group: group.to_string(),
            this_year: now,
            last_year: before,
            change: change(now, before),
            subjects,
            titles_waiting: 0,
        });
    }
    (out, t.hidden())
}

/// The change on last year from which a subject counts as rising.
const RISING: f64 = 0.15;

fn percent(change: f64) -> String {
    let p = (change * 100.0).round();
    match p {
        p if p > 0.0 => format!("up {p}%"),
        p if p < 0.0 => format!("down {}%", -p),
        _ => "level".to_string(),
    }
}

/// What stands out: the subjects that moved most, and the groups whose
/// demand moved most, with the titles their readers queue for.
fn headlines(subjects: &[SubjectNeed], groups: &[GroupNeed], min_waiting: usize) -> Vec<String> {
    let mut out = Vec::new();
    let moved: Vec<&SubjectNeed> = subjects
        .iter()
        .filter(|s| s.change.is_some_and(|c| c.abs() >= RISING))
        .collect();
    for s in moved.iter().take(3) {
        let mut line = format!(
            "{}: demand {} on last year",
            s.subject,
            percent(s.change.unwrap_or(0.0))
        );
        if s.titles_waiting > 0 {
            let _ = write!(
                line,
                "; {} with {min_waiting}+ readers waiting",
                titles(s.titles_waiting)
            );
        }
        out.push(line);
    }
    let mut asked: Vec<&SubjectNeed> = subjects.iter().filter(|s| s.asked.is_some()).collect();
    asked.sort_by(|a, b| b.asked.cmp(&a.asked).then(a.subject.cmp(&b.subject)));
    for s in asked.iter().take(2) {
        out.push(format!(
            "{}: named as a need by {} readers in the needs survey",
            s.subject,
            s.asked.unwrap_or(0)
        ));
    }
    let mut ranked: Vec<&GroupNeed> = groups.iter().filter(|g| g.change.is_some()).collect();
    ranked.sort_by(|a, b| {
        b.change
            .unwrap_or(0.0)
            .total_cmp(&a.change.unwrap_or(0.0))
            .then(a.group.cmp(&b.group))
    });
    for g in ranked.iter().take(3) {
        let mut line = format!(
            "{} {}: demand {} on last year",
            g.dimension,
            g.group,
            percent(g.change.unwrap_or(0.0))
        );
        if let Some(top) = g.subjects.iter().find(|s| s.this_year.is_some()) {
            let _ = write!(line, ", most in {}", top.subject);
        }
        if g.titles_waiting > 0 {
            let _ = write!(
                line,
                "; {} with {min_waiting}+ readers waiting in its subjects",
                titles(g.titles_waiting)
            );
        }
        out.push(line);
    }
    out
}

fn titles(n: usize) -> String {
    match n {
        1 => "1 title".to_string(),
        n => format!("{n} titles"),
    }
}

fn shown(v: Option<u64>) -> String {
    v.map_or_else(|| "·".to_string(), |n| n.to_string())
}

fn shown_change(c: Option<f64>) -> String {
    c.map_or_else(String::new, |c| format!("{:+.0}%", c * 100.0))
}

impl NeedsReport {
    /// The report for a terminal: what stands out, the subjects, the
    /// titles readers queue for.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Readers' needs as of {} (k = {}; · is hidden)\n",
            self.as_of, self.k
        );
        for h in &self.headlines {
            let _ = writeln!(out, "  • {h}");
        }
        let _ = writeln!(
            out,
            "\n  {:<10} {:>10} {:>10} {:>8} {:>7} {:>8} {:>7}",
            "subject",
            "this year",
            "last year",
            "change",
            "unmet",
            "queues",
            if self.surveyed { "asked" } else { "" }
        );
        for s in &self.subjects {
            let _ = writeln!(
                out,
                "  {:<10} {:>10} {:>10} {:>8} {:>7} {:>8} {:>7}",
                s.subject,
                shown(s.this_year),
                shown(s.last_year),
                shown_change(s.change),
                shown(s.unmet.map(|n| n as u64)),
                s.titles_waiting,
                if self.surveyed {
                    shown(s.asked)
                } else {
                    String::new()
                }
            );
        }
        if !self.waiting.is_empty() {
            let _ = writeln!(out, "\n  Titles readers queue for:");
            for w in self.waiting.iter().take(15) {
                let _ = writeln!(
                    out,
                    "  {:>3} waiting  {}{}",
                    w.waiting,
                    w.title,
                    w.subject
                        .as_deref()
                        .map(|s| format!(" [{s}]"))
                        .unwrap_or_default()
                );
            }
        }
        if !self.forecasts.is_empty() {
            let _ = writeln!(
                out,
                "\n  Forecast, next {} months:",
                self.forecasts[0].months.len()
            );
            for f in self.forecasts.iter().take(10) {
                let total: f64 = f.forecast.values.iter().sum();
                let _ = writeln!(
                    out,
                    "  {:<10} {:>8.0} {:>8}  {}",
                    f.subject,
                    total,
                    shown_change(f.change),
                    f.forecast.reasons.first().map_or("", String::as_str)
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "\n  {n}");
        }
        let _ = writeln!(out, "  {} counts hidden.", self.hidden);
        // Columns left empty leave no trailing blanks.
        out.lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// Every count as CSV rows: `dimension,group,subject,period,demand`,
    /// where the dimension `all` holds the subject totals by month,
    /// `this-year` and `last-year` are the two 12-month windows, and
    /// `named-in-survey` counts readers who named the subject as a need.
    /// Hidden counts are empty cells.
    pub fn to_csv(&self) -> String {
        let text = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        let mut rows: Vec<[String; 5]> = Vec::new();
        for s in &self.subjects {
            for (m, v) in self.months.iter().zip(&s.monthly) {
                rows.push([
                    "all".into(),
                    "all".into(),
                    s.subject.clone(),
                    m.clone(),
                    text(*v),
                ]);
            }
            for (period, v) in [
                ("this-year", s.this_year),
                ("last-year", s.last_year),
                ("named-in-survey", s.asked),
            ] {
                rows.push([
                    "all".into(),
                    "all".into(),
                    s.subject.clone(),
                    period.into(),
                    text(v),
                ]);
            }
        }
        for g in &self.groups {
            for (period, v) in [("this-year", g.this_year), ("last-year", g.last_year)] {
                rows.push([
                    g.dimension.clone(),
                    g.group.clone(),
                    "all".into(),
                    period.into(),
                    text(v),
                ]);
            }
            for s in &g.subjects {
                for (period, v) in [("this-year", s.this_year), ("last-year", s.last_year)] {
                    rows.push([
                        g.dimension.clone(),
                        g.group.clone(),
                        s.subject.clone(),
                        period.into(),
                        text(v),
                    ]);
                }
            }
        }
        csv(
            ["dimension", "group", "subject", "period", "demand"],
            rows.into_iter(),
        )
    }

    /// A self-contained page for acquisitions and subject librarians: what
    /// stands out, the monthly demand of the subjects that moved most as a
    /// line chart, the change by subject as bars, the groups, and the
    /// titles readers queue for.
    pub fn to_html(&self) -> String {
        let mut body = String::from("<h2>What stands out</h2>\n<ul id=\"headlines\">\n");
        for h in &self.headlines {
            let _ = writeln!(body, "<li>{}</li>", esc(h));
        }
        body.push_str("</ul>\n");
        let top: Vec<&SubjectNeed> = self.subjects.iter().take(5).collect();
        let _ = writeln!(
            body,
            "<h2>Monthly demand of the subjects that rose most</h2>\n{}",
            line_chart("trend-chart", &self.months, &top)
        );
        let asked_head = if self.surveyed {
            "<th>named in a survey</th>"
        } else {
            ""
        };
        let _ = writeln!(
            body,
            "<h2>By subject</h2>\n<table id=\"subjects\"><tr><th>subject</th><th>this year</th>\
             <th>last year</th><th>change</th><th>holds waiting too long</th>\
             <th>titles with queues</th>{asked_head}</tr>",
        );
        for s in &self.subjects {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"change\">{}</td><td>{}</td><td>{}</td>{}</tr>",
                esc(&s.subject),
                shown(s.this_year),
                shown(s.last_year),
                shown_change(s.change),
                shown(s.unmet.map(|n| n as u64)),
                s.titles_waiting,
                if self.surveyed {
                    format!("<td>{}</td>", shown(s.asked))
                } else {
                    String::new()
                }
            );
        }
        body.push_str(
            "</table>\n<h2>By group</h2>\n<table id=\"groups\"><tr><th>group</th>\
             <th>this year</th><th>last year</th><th>change</th><th>busiest subjects</th></tr>\n",
        );
        for g in &self.groups {
            let top: Vec<String> = g
                .subjects
                .iter()
                .filter(|s| s.this_year.is_some())
                .take(3)
                .map(|s| format!("{} ({})", esc(&s.subject), shown_change(s.change)))
                .collect();
            let _ = writeln!(
                body,
                "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.dimension),
                esc(&g.group),
                shown(g.this_year),
                shown(g.last_year),
                shown_change(g.change),
                top.join(", ")
            );
        }
        body.push_str(
            "</table>\n<h2>Titles readers queue for</h2>\n<table id=\"waiting\"><tr>\
             <th>title</th><th>subject</th><th>readers waiting</th></tr>\n",
        );
        for w in &self.waiting {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.title),
                esc(w.subject.as_deref().unwrap_or("")),
                w.waiting
            );
        }
        body.push_str("</table>\n");
        if !self.forecasts.is_empty() {
            let _ = writeln!(
                body,
                "<h2>Forecast, next {} months</h2>\n<table id=\"forecasts\"><tr><th>subject</th>\
                 <th>forecast</th><th>interval</th><th>on a year before</th><th>why</th></tr>",
                self.forecasts[0].months.len()
            );
            for f in &self.forecasts {
                let sum = |v: &[f64]| v.iter().sum::<f64>();
                let reasons: Vec<String> = f.forecast.reasons.iter().map(|r| esc(r)).collect();
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td>{:.0}</td><td>{:.0}–{:.0} ({:.0}%)</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.subject),
                    sum(&f.forecast.values),
                    sum(&f.forecast.low),
                    sum(&f.forecast.high),
                    100.0 * f.forecast.level,
                    shown_change(f.change),
                    reasons.join("<br>")
                );
            }
            body.push_str("</table>\n");
        }
        for n in &self.notes {
            let _ = writeln!(body, "<p class=\"note\">{}</p>", esc(n));
        }
        let _ = writeln!(
            body,
            "<p class=\"note\" id=\"suppressed\">{} counts are hidden (·): fewer than {} readers, \
             or a count that would give such a one away.</p>",
            self.hidden, self.k
        );
        page(&format!("Readers' needs as of {}", self.as_of), &body)
    }
}

/// Monthly lines as inline SVG, one per subject, hidden months left as
/// gaps.
fn line_chart(id: &str, months: &[String], subjects: &[&SubjectNeed]) -> String {
    let (w, h, left, bottom) = (720usize, 260usize, 50usize, 30usize);
    let max = subjects
        .iter()
        .flat_map(|s| s.monthly.iter().flatten())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let step = (w - left - 10) as f64 / months.len().max(2).saturating_sub(1) as f64;
    let y = |v: u64| (h - bottom) as f64 - v as f64 / max as f64 * (h - bottom - 10) as f64;
    let colours = ["#3b6ea5", "#c0504d", "#9bbb59", "#8064a2", "#f79646"];
    let mut svg = format!(
        "<svg id=\"{id}\" role=\"img\" width=\"{w}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
        h + 20 * subjects.len()
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#999\"/>\
         <text x=\"{left}\" y=\"{2}\" font-size=\"12\">{3}</text>\
         <text x=\"{1}\" y=\"{2}\" font-size=\"12\" text-anchor=\"end\">{4}</text>\
         <text x=\"4\" y=\"16\" font-size=\"12\">{max}</text>",
        h - bottom,
        w - 10,
        h - bottom + 16,
        esc(months.first().map_or("", String::as_str)),
        esc(months.last().map_or("", String::as_str)),
    );
    for (i, s) in subjects.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let mut path = String::new();
        let mut pen_up = true;
        for (m, v) in s.monthly.iter().enumerate() {
            match v {
                Some(v) => {
                    let x = left as f64 + m as f64 * step;
                    let _ = write!(
                        path,
                        "{}{x:.1},{:.1} ",
                        if pen_up { "M" } else { "L" },
                        y(*v)
                    );
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        let _ = writeln!(
            svg,
            "<path class=\"series\" data-subject=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{left}\" y=\"{}\" font-size=\"13\" fill=\"{colour}\">{} ({})</text>",
            esc(&s.subject),
            path.trim_end(),
            h + 14 + 20 * i,
            esc(&s.subject),
            shown_change(s.change)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(readers: std::ops::Range<usize>, value: u64) -> Counted {
        Counted {
            value,
            readers: readers.collect(),
        }
    }

    #[test]
    fn the_last_whole_month_is_the_one_before_unless_the_month_ended() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(last_whole_month(d("2026-11-30")), d("2026-11-01"));
        assert_eq!(last_whole_month(d("2026-11-29")), d("2026-10-01"));
        assert_eq!(last_whole_month(d("2026-01-05")), d("2025-12-01"));
    }

    #[test]
    fn a_month_under_k_takes_a_partner_in_its_window() {
        let mut row = vec![counted(0..20, 40); 24];
        row[3] = counted(0..2, 3);
        row[7] = counted(0..12, 15);
        let (line, totals, hidden) = subject_line(&row, &[0..12, 12..24], 10);
        assert_eq!(line[3], None);
        assert_eq!(line[7], None, "the smallest month beside it in its window");
        assert!(totals.iter().all(Option::is_some));
        assert_eq!(hidden, 2);
        assert!(line[12..].iter().all(Option::is_some));
    }

    #[test]
    fn a_window_with_nothing_to_pair_loses_its_total() {
        let mut row = vec![Counted::default(); 24];
        row[2] = counted(0..3, 4);
        row[5] = counted(0..30, 50);
        let (line, totals, _) = subject_line(&row, &[0..12, 12..24], 10);
        // The 50 pairs with the 4, so the window's total still shows.
        assert_eq!((line[2], line[5]), (None, None));
        assert_eq!(totals[0], Some(54));
        let mut row = vec![Counted::default(); 24];
        row[2] = counted(0..3, 4);
        let (_, totals, _) = subject_line(&row, &[0..12, 12..24], 10);
        assert_eq!(
            totals[0], None,
            "3 readers in the year: the total would tell"
        );
    }
}
