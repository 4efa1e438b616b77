//! What demand analysis reads: circulation by month and subject, the holds
//! placed, and which subject each title belongs to. Reading history: the
//! core links it to a reader's groups only for readers who consented.

use chrono::NaiveDate;

use super::HoldRecord;

/// One patron's loans in one subject in one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyLoans {
    /// The patron.
    pub patron: String,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The subject.
    pub subject: String,
    /// How many loans.
    pub loans: u32,
    /// Their renewals together.
    pub renewals: u32,
}

/// Circulation for demand analysis. Every method is one read.
pub trait Demand {
    /// Loans from `from` to `to` (both included) per patron, month and
    /// subject, ordered by patron, month and subject. Loans without a
    /// subject are left out.
    fn loans_by_month(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<MonthlyLoans>>;

    /// The holds placed from `from` to `to` (both included), by id.
    fn holds_placed(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<HoldRecord>>;

    /// Each title's subject, as its loans name it most often (the first
    /// in byte order on a tie), by title.
    fn title_subjects(&self) -> anyhow::Result<Vec<(String, String)>>;
}

/// Whether a hold with `status` still waits its turn in the queue: Koha's
/// empty `found`, FOLIO's `Open - Not yet filled`, and the plain words
/// other systems use. Anything ready, in transit or closed is not queued.
pub fn queued(status: Option<&str>) -> bool {
    let Some(s) = status.map(|s| s.trim().to_lowercase()) else {
        return true;
    };
    s.is_empty()
        || s.contains("not yet filled")
        || matches!(
            s.as_str(),
            "pending" | "queued" | "open" | "placed" | "waiting in queue"
        )
}

/// Picks each title's most frequent subject from `(title, subject, loans)`
/// rows ordered by title.
pub(crate) fn most_frequent(
    rows: impl IntoIterator<Item = (String, String, i64)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String, i64)> = Vec::new();
    for (title, subject, n) in rows {
        match out.last_mut() {
            Some(last) if last.0 == title => {
                if n > last.2 || (n == last.2 && subject < last.1) {
                    last.1 = subject;
                    last.2 = n;
                }
            }
            _ => out.push((title, subject, n)),
        }
    }
    out.into_iter().map(|(t, s, _)| (t, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_statuses_are_the_ones_the_notices_count() {
        for s in [
            None,
            Some(""),
            Some(" "),
            Some("Open - Not yet filled"),
            Some("placed"),
        ] {
            assert!(queued(s), "{s:?}");
        }
        for s in [
            Some("W"),
            Some("waiting"),
            Some("T"),
            Some("Closed - Filled"),
        ] {
            assert!(!queued(s), "{s:?}");
        }
    }

    #[test]
    fn a_title_takes_its_most_frequent_subject() {
        let rows = [
            ("A".to_string(), "QA".to_string(), 2),
            ("A".to_string(), "QA76".to_string(), 5),
            ("B".to_string(), "PR".to_string(), 1),
            ("B".to_string(), "PS".to_string(), 1),
        ];
        assert_eq!(
            most_frequent(rows),
            vec![("A".into(), "QA76".into()), ("B".into(), "PR".into())]
        );
    }
}
