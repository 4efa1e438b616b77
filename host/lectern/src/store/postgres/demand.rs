//! What demand analysis reads from the PostgreSQL store.

use anyhow::Result;
use chrono::NaiveDate;

use super::{PgStore, parse_date};
use crate::store::HoldRecord;
use crate::store::demand::{Demand, MonthlyLoans, most_frequent};

impl Demand for PgStore {
    fn loans_by_month(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<MonthlyLoans>> {
        let rows = self.db().query(
            "SELECT patron_id, substr(loaned_on, 1, 7), subject, COUNT(*), SUM(renewals)::bigint \
             FROM loans WHERE subject IS NOT NULL AND loaned_on >= $1 AND loaned_on <= $2 \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &[&from.to_string(), &to.to_string()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(MonthlyLoans {
                    patron: r.try_get(0)?,
                    month: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    loans: u32::try_from(r.try_get::<_, i64>(3)?)?,
                    renewals: u32::try_from(r.try_get::<_, i64>(4)?)?,
                })
            })
            .collect()
    }

    fn holds_placed(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<HoldRecord>> {
        let rows = self.db().query(
            "SELECT id, patron_id, title, placed_on, status, pickup_branch, expires_on FROM holds \
             WHERE placed_on >= $1 AND placed_on <= $2 ORDER BY id",
            &[&from.to_string(), &to.to_string()],
        )?;
        Ok(rows
            .iter()
            .map(|r| HoldRecord {
                id: r.get(0),
                patron: r.get(1),
                title: r.get(2),
                placed_on: parse_date(r.get(3)).unwrap_or_default(),
                status: r.get(4),
                pickup_branch: r.get(5),
                expires_on: parse_date(r.get(6)),
            })
            .collect())
    }

    fn title_subjects(&self) -> Result<Vec<(String, String)>> {
        let rows = self.db().query(
            "SELECT title, subject, COUNT(*) FROM loans \
             WHERE title IS NOT NULL AND subject IS NOT NULL \
             GROUP BY title, subject ORDER BY title",
            &[],
        )?;
        Ok(most_frequent(
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
        ))
    }
}
