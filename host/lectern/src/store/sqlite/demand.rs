//! What demand analysis reads from the SQLite store.

use anyhow::Result;
use chrono::NaiveDate;
use rusqlite::params;

use super::{SqliteStore, parse_date};
use crate::store::HoldRecord;
use crate::store::demand::{Demand, MonthlyLoans, most_frequent};

impl Demand for SqliteStore {
    fn loans_by_month(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<MonthlyLoans>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT patron_id, substr(loaned_on, 1, 7), subject, COUNT(*), SUM(renewals) \
             FROM loans WHERE subject IS NOT NULL AND loaned_on >= ?1 AND loaned_on <= ?2 \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )?;
        let rows = stmt
            .query_map(params![from.to_string(), to.to_string()], |r| {
                Ok(MonthlyLoans {
                    patron: r.get(0)?,
                    month: r.get(1)?,
                    subject: r.get(2)?,
                    loans: r.get(3)?,
                    renewals: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn holds_placed(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<HoldRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, patron_id, title, placed_on, status, pickup_branch, expires_on FROM holds \
             WHERE placed_on >= ?1 AND placed_on <= ?2 ORDER BY id",
        )?;
        let holds = stmt
            .query_map(params![from.to_string(), to.to_string()], |r| {
                Ok(HoldRecord {
                    id: r.get(0)?,
                    patron: r.get(1)?,
                    title: r.get(2)?,
                    placed_on: parse_date(r.get(3)?).unwrap_or_default(),
                    status: r.get(4)?,
                    pickup_branch: r.get(5)?,
                    expires_on: parse_date(r.get(6)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(holds)
    }

    fn title_subjects(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT title, subject, COUNT(*) FROM loans \
             WHERE title IS NOT NULL AND subject IS NOT NULL \
             GROUP BY title, subject ORDER BY title, subject",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(most_frequent(rows))
    }
}
