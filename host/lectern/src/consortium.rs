//! A consortium: member libraries on one PostgreSQL server that never see
//! each other's readers, and staff of the consortium who read aggregates
//! across them.
//!
//! A member publishes readers per segment of its latest run, through its
//! own [`Lectern`] (the read is audited in its own chain, as a role its
//! policy lets see segments). The consortium keeps only those counts. Its
//! staff, with tokens of the consortium's own, read a table of members by
//! segment in which no cell or total below k is shown, and no hidden cell
//! can be worked out from the totals shown beside it (complementary
//! suppression).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::privacy::{Field, Purpose};
use crate::staff::{account_of, make_account, revoke_account};
use crate::store::{ConsortiumStore, Published, StaffAccount};

/// The role of every consortium account: it reads aggregates and nothing
/// else.
pub const CONSORTIUM_ROLE: &str = "consortium";

/// A consortium's tables, opened from a member's store or from a URL.
pub struct Consortium {
    store: Box<dyn ConsortiumStore>,
}

/// One cell of the consortium's table: a count, or `None` where it is
/// hidden.
pub type Cell = Option<usize>;

/// Readers per member and segment, across the consortium.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsortiumReport {
    /// The scorer whose runs were counted.
    pub scorer: String,
    /// The smallest count shown.
    pub k: usize,
    /// The segments, the table's columns.
    pub segments: Vec<String>,
    /// One row per member that published.
    pub libraries: Vec<LibraryRow>,
    /// Readers per segment across the members; `None` where hidden.
    pub totals: Vec<Cell>,
    /// Members that joined but have not published a run of the scorer.
    pub not_published: Vec<String>,
    /// How many cells and totals are hidden, for being under k or for
    /// giving a hidden one away.
    pub hidden: usize,
}

/// A member's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryRow {
    /// The member library.
    pub library: String,
    /// The scorer's version in its run.
    pub version: String,
    /// The run's as-of date.
    pub as_of: chrono::NaiveDate,
    /// Readers per segment, in the report's column order; `None` where
    /// hidden.
    pub cells: Vec<Cell>,
    /// The member's readers across its segments; `None` where hidden.
    pub total: Cell,
}

impl Consortium {
    pub(crate) fn new(store: Box<dyn ConsortiumStore>) -> Consortium {
        Consortium { store }
    }

    /// The consortium that the PostgreSQL URL `url` names (`consortium=`,
    /// else `consortium`), made if it is not there.
    pub fn open(url: &str) -> Result<Consortium> {
        Ok(Consortium::new(crate::store::PgStore::consortium_of(url)?))
    }

    /// The member libraries.
    pub fn members(&self) -> Result<Vec<String>> {
        self.store.members().map_err(Error::store)
    }

    /// Adds an account of the consortium's staff, which reads aggregates
    /// and nothing of any one library. Returns it and its token, shown
    /// only now.
    pub fn add_staff(
        &mut self,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(StaffAccount, String)> {
        make_account(self.store.as_mut(), name, CONSORTIUM_ROLE, expires_at, now)
    }

    /// Every account of the consortium's staff.
    pub fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        self.store.staff_accounts().map_err(Error::store)
    }

    /// Revokes the consortium account `name`.
    pub fn revoke_staff(&mut self, name: &str, now: DateTime<Utc>) -> Result<()> {
        revoke_account(
            self.store.as_mut(),
            name,
            now,
            "lectern consortium staff list",
        )
    }

    /// The consortium account `token` belongs to, if it is valid at `now`.
    pub fn authenticate(&self, token: &str, now: DateTime<Utc>) -> Result<StaffAccount> {
        account_of(self.store.as_ref(), token, now)
    }

    /// Readers per member and segment of the latest published runs of
    /// `scorer`, with counts under `k` hidden and the cells that would
    /// give them away hidden too.
    pub fn report(&self, scorer: &str, k: usize, k_floor: usize) -> Result<ConsortiumReport> {
        // The consortium's own floor: no member's lower one lets another
        // member's small counts through.
        crate::pipeline::check_k(k, k_floor.max(crate::DEFAULT_K))?;
        let published = self.store.published(scorer).map_err(Error::store)?;
        let members = self.members()?;
        let mut report = tabulate(scorer, &published, k);
        report.not_published = members
            .into_iter()
            .filter(|m| !published.iter().any(|p| &p.library == m))
            .collect();
        Ok(report)
    }
}

impl Lectern {
    /// The consortium this library's store can join: PostgreSQL only.
    pub fn consortium(&self) -> Result<Consortium> {
        match self.store().consortium().map_err(Error::store)? {
            Some(store) => Ok(Consortium::new(store)),
            None => Err(Error::NotFound(format!(
                "no consortium: {} is a SQLite file, which serves one library; a \
                 consortium's members share a PostgreSQL server: open the library with \
                 --db postgres://…",
                self.store().describe()
            ))),
        }
    }

    /// Joins this library to its store's consortium; false if it is a
    /// member already.
    pub fn join_consortium(&mut self, now: DateTime<Utc>) -> Result<bool> {
        let library = self.library_name()?;
        self.consortium()?
            .store
            .join(&library, now)
            .map_err(Error::store)
    }

    /// Leaves the consortium, taking back what this library published;
    /// false if it was not a member.
    pub fn leave_consortium(&mut self) -> Result<bool> {
        let library = self.library_name()?;
        self.consortium()?
            .store
            .leave(&library)
            .map_err(Error::store)
    }

    /// Publishes readers per segment of the latest run of `scorer` to the
    /// consortium, as `role` reading segments for analytics: refused if
    /// the policy does not let the role see them, and audited before the
    /// counts leave.
    pub fn publish_to_consortium(
        &mut self,
        scorer: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Published> {
        let ctx = self.staff(Purpose::Analytics, role)?;
        let library = self.library_name()?;
        let mut consortium = self.consortium()?;
        if !consortium.members()?.contains(&library) {
            return Err(Error::Invalid {
                where_: "the consortium".into(),
                message: format!(
                    "the library `{library}` is not a member; `lectern consortium join` adds it"
                ),
            });
        }
        let runs = self.store().latest_runs(scorer, 1).map_err(Error::store)?;
        let Some(run) = runs.into_iter().next() else {
            return Err(Error::NotFound(format!(
                "no run of `{scorer}` is stored; run `lectern score --plugin …` first"
            )));
        };
        let scores = self.store().run_scores(run.id).map_err(Error::store)?;
        let ids: Vec<&str> = scores.iter().map(|s| s.patron.as_str()).collect();
        self.audit_read(ctx, vec![Field::Segments], &ids)?;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in &scores {
            *counts.entry(s.segment.clone()).or_default() += 1;
        }
        let published = Published {
            library,
            scorer: scorer.to_string(),
            version: run.run.version.clone(),
            run: run.id,
            as_of: run.run.as_of,
            published_at: now,
            counts: counts.into_iter().collect(),
        };
        consortium.store.publish(&published).map_err(Error::store)?;
        Ok(published)
    }

    fn library_name(&self) -> Result<String> {
        self.store().member_library().ok_or_else(|| Error::Invalid {
            where_: "the store".into(),
            message: "a SQLite file serves one library and belongs to no consortium".into(),
        })
    }
}

/// The table of `published`, suppressed at `k`.
fn tabulate(scorer: &str, published: &[Published], k: usize) -> ConsortiumReport {
    let segments: Vec<String> = published
        .iter()
        .flat_map(|p| p.counts.iter().map(|(s, _)| s.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let counts: Vec<Vec<usize>> = published
        .iter()
        .map(|p| {
            segments
                .iter()
                .map(|s| {
                    p.counts
                        .iter()
                        .find(|(seg, _)| seg == s)
                        .map_or(0, |(_, n)| *n)
                })
                .collect()
        })
        .collect();
    let table = Suppressed::new(&counts, k);
    ConsortiumReport {
        scorer: scorer.to_string(),
        k,
        libraries: published
            .iter()
            .enumerate()
            .map(|(i, p)| LibraryRow {
                library: p.library.clone(),
                version: p.version.clone(),
                as_of: p.as_of,
                cells: table.row(i),
                total: table.row_total(i),
            })
            .collect(),
        totals: (0..segments.len()).map(|j| table.column_total(j)).collect(),
        segments,
        not_published: Vec::new(),
        hidden: table.hidden(),
    }
}

/// A table of counts with its row and column totals, and which of them
/// are hidden.
pub(crate) struct Suppressed {
    counts: Vec<Vec<usize>>,
    /// Per cell, whether it is hidden.
    cells: Vec<Vec<bool>>,
    rows: Vec<bool>,
    columns: Vec<bool>,
}

impl Suppressed {
    /// Hides every count and total that is positive and under `k`
    /// (primary suppression), then, until nothing changes, one more cell
    /// in each line whose total is shown and that hides exactly one cell,
    /// since the total less the others would give it away (complementary
    /// suppression). A zero is shown: it names no reader. The second
    /// cell hidden is the smallest positive one, else the total goes.
    pub(crate) fn new(counts: &[Vec<usize>], k: usize) -> Suppressed {
        let small = |n: usize| n > 0 && n < k;
        let width = counts.first().map_or(0, Vec::len);
        let row_totals: Vec<usize> = counts.iter().map(|r| r.iter().sum()).collect();
        let column_totals: Vec<usize> = (0..width)
            .map(|j| counts.iter().map(|r| r[j]).sum())
            .collect();
        Suppressed::with_primary(
            counts,
            counts
                .iter()
                .map(|r| r.iter().map(|&n| small(n)).collect())
                .collect(),
            row_totals.iter().map(|&n| small(n)).collect(),
            column_totals.iter().map(|&n| small(n)).collect(),
        )
    }

    /// The same, where the caller decides which cells and totals must be
    /// hidden (primary suppression): counts of readers rather than the
    /// values shown, say, or a total that is not shown at all.
    /// Complementary suppression then works on `counts`.
    pub(crate) fn with_primary(
        counts: &[Vec<usize>],
        cells: Vec<Vec<bool>>,
        rows: Vec<bool>,
        columns: Vec<bool>,
    ) -> Suppressed {
        let width = counts.first().map_or(0, Vec::len);
        let mut t = Suppressed {
            cells,
            rows,
            columns,
            counts: counts.to_vec(),
        };
        loop {
            let mut changed = false;
            for i in 0..t.counts.len() {
                let line: Vec<(usize, usize)> = (0..width).map(|j| (i, j)).collect();
                changed |= t.protect(&line, Line::Row(i));
            }
            for j in 0..width {
                let line: Vec<(usize, usize)> = (0..t.counts.len()).map(|i| (i, j)).collect();
                changed |= t.protect(&line, Line::Column(j));
            }
            changed |= t.protect_totals();
            if !changed {
                return t;
            }
        }
    }

    /// Hides a second cell of `line`, or its total, if the line's total is
    /// shown and exactly one of its cells is hidden. Whether it hid one.
    fn protect(&mut self, line: &[(usize, usize)], which: Line) -> bool {
        let total_hidden = match which {
            Line::Row(i) => self.rows[i],
            Line::Column(j) => self.columns[j],
        };
        let hidden = line.iter().filter(|&&(i, j)| self.cells[i][j]).count();
        if total_hidden || hidden != 1 {
            return false;
        }
        let partner = line
            .iter()
            .filter(|&&(i, j)| !self.cells[i][j] && self.counts[i][j] > 0)
            .min_by_key(|&&(i, j)| self.counts[i][j]);
        match partner {
            Some(&(i, j)) => self.cells[i][j] = true,
            None => match which {
                Line::Row(i) => self.rows[i] = true,
                Line::Column(j) => self.columns[j] = true,
            },
        }
        true
    }

    /// The row totals add up to the grand total, and so do the column
    /// totals: when every total on one side shows, the grand total is
    /// known, and a single hidden total on the other side is the
    /// difference. Hides a second total beside it, the smallest positive
    /// one, else one on the side that showed whole. Whether it hid one.
    fn protect_totals(&mut self) -> bool {
        let row_totals: Vec<usize> = self.counts.iter().map(|r| r.iter().sum()).collect();
        let width = self.counts.first().map_or(0, Vec::len);
        let column_totals: Vec<usize> = (0..width)
            .map(|j| self.counts.iter().map(|r| r[j]).sum())
            .collect();
        let mut changed = false;
        for flip in [false, true] {
            let (mine, my_totals, theirs, their_totals) = if flip {
                (
                    &mut self.columns,
                    &column_totals,
                    &mut self.rows,
                    &row_totals,
                )
            } else {
                (
                    &mut self.rows,
                    &row_totals,
                    &mut self.columns,
                    &column_totals,
                )
            };
            let grand_known = theirs.iter().all(|h| !h);
            if !grand_known || mine.iter().filter(|h| **h).count() != 1 {
                continue;
            }
            let partner = (0..mine.len())
                .filter(|&i| !mine[i] && my_totals[i] > 0)
                .min_by_key(|&i| my_totals[i]);
            match partner {
                Some(i) => mine[i] = true,
                None => {
                    if let Some(j) = (0..theirs.len())
                        .filter(|&j| their_totals[j] > 0)
                        .min_by_key(|&j| their_totals[j])
                    {
                        theirs[j] = true;
                    } else {
                        continue;
                    }
                }
            }
            changed = true;
        }
        changed
    }

    pub(crate) fn row(&self, i: usize) -> Vec<Cell> {
        (0..self.counts[i].len())
            .map(|j| (!self.cells[i][j]).then_some(self.counts[i][j]))
            .collect()
    }

    pub(crate) fn row_total(&self, i: usize) -> Cell {
        (!self.rows[i]).then(|| self.counts[i].iter().sum())
    }

    pub(crate) fn column_total(&self, j: usize) -> Cell {
        (!self.columns[j]).then(|| self.counts.iter().map(|r| r[j]).sum())
    }

    pub(crate) fn hidden(&self) -> usize {
        let cells: usize = self.cells.iter().flatten().filter(|h| **h).count();
        let totals = self
            .rows
            .iter()
            .chain(&self.columns)
            .filter(|h| **h)
            .count();
        cells + totals
    }
}

#[derive(Clone, Copy)]
enum Line {
    Row(usize),
    Column(usize),
}

impl ConsortiumReport {
    /// The report as a terminal table.
    pub fn to_table(&self) -> String {
        let show = |c: &Cell| c.map_or_else(|| "·".to_string(), |n| n.to_string());
        let mut header = vec!["library".to_string()];
        header.extend(self.segments.iter().cloned());
        header.push("all".into());
        let mut rows = vec![header];
        for l in &self.libraries {
            let mut row = vec![l.library.clone()];
            row.extend(l.cells.iter().map(show));
            row.push(show(&l.total));
            rows.push(row);
        }
        let mut totals = vec!["all members".to_string()];
        totals.extend(self.totals.iter().map(show));
        totals.push(String::new());
        rows.push(totals);
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!(
            "Readers per segment of `{}` across the consortium (k = {}):\n",
            self.scorer, self.k
        );
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (v, w))| match c {
                    0 => format!("{v:<w$}"),
                    _ => format!("{v:>w$}"),
                })
                .collect();
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
        let _ = writeln!(
            out,
            "{} hidden (·): under {} readers, or giving such a count away.",
            match self.hidden {
                1 => "1 count is".to_string(),
                n => format!("{n} counts are"),
            },
            self.k
        );
        if !self.not_published.is_empty() {
            let _ = writeln!(
                out,
                "Not yet published: {} (`lectern consortium publish` in each).",
                self.not_published.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden_in_line(t: &Suppressed, line: &[(usize, usize)]) -> usize {
        line.iter().filter(|&&(i, j)| t.cells[i][j]).count()
    }

    /// No line whose total is shown hides exactly one cell, and every
    /// positive count under k is hidden.
    fn check(counts: &[Vec<usize>], k: usize) {
        let t = Suppressed::new(counts, k);
        let (h, w) = (counts.len(), counts.first().map_or(0, Vec::len));
        for i in 0..h {
            for j in 0..w {
                if counts[i][j] > 0 && counts[i][j] < k {
                    assert!(t.cells[i][j], "{counts:?}: cell {i},{j} shown");
                }
            }
            let line: Vec<_> = (0..w).map(|j| (i, j)).collect();
            assert!(
                t.rows[i] || hidden_in_line(&t, &line) != 1,
                "{counts:?} row {i}"
            );
        }
        for j in 0..w {
            let line: Vec<_> = (0..h).map(|i| (i, j)).collect();
            assert!(
                t.columns[j] || hidden_in_line(&t, &line) != 1,
                "{counts:?} col {j}"
            );
        }
        // The totals: one side all shown gives the grand total, so the
        // other side never hides exactly one.
        let hidden = |v: &[bool]| v.iter().filter(|x| **x).count();
        if hidden(&t.columns) == 0 {
            assert_ne!(hidden(&t.rows), 1, "{counts:?} row totals");
        }
        if hidden(&t.rows) == 0 {
            assert_ne!(hidden(&t.columns), 1, "{counts:?} column totals");
        }
    }

    #[test]
    fn a_hidden_total_is_not_the_grand_total_less_the_others() {
        // Column totals 124 and 140 show, so the grand total 264 is known;
        // the first member's total, 4, must not be the only one hidden.
        let counts = vec![vec![4, 0], vec![50, 60], vec![70, 80]];
        check(&counts, 10);
        assert!(Suppressed::new(&counts, 10).rows[0]);
    }

    #[test]
    fn a_small_cell_takes_a_partner_in_its_row_and_column() {
        let counts = vec![vec![3, 40, 50], vec![30, 60, 70], vec![20, 25, 90]];
        let t = Suppressed::new(&counts, 10);
        check(&counts, 10);
        assert!(t.cells[0][0]);
        // The row partner is the smallest positive cell beside it, and the
        // column partner the smallest below it.
        assert!(t.cells[0][1] && t.cells[2][0]);
        assert!(!t.cells[1][2]);
    }

    #[test]
    fn a_line_with_nothing_else_to_hide_loses_its_total() {
        let counts = vec![vec![4, 0], vec![50, 60]];
        let t = Suppressed::new(&counts, 10);
        check(&counts, 10);
        assert!(t.rows[0], "the first member's total would give its 4 away");
    }

    #[test]
    fn suppression_holds_on_many_tables() {
        // A small deterministic generator: every table of 2–4 members by
        // 1–4 segments with counts drawn from a mix of small and large.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let h = 1 + (next() % 4) as usize;
            let w = 1 + (next() % 4) as usize;
            let counts: Vec<Vec<usize>> = (0..h)
                .map(|_| {
                    (0..w)
                        .map(|_| match next() % 3 {
                            0 => (next() % 12) as usize,
                            _ => (next() % 200) as usize,
                        })
                        .collect()
                })
                .collect();
            check(&counts, 5 + (next() % 6) as usize);
        }
    }
}
