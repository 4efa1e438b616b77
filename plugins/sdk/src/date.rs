//! Calendar arithmetic on the contract's `date`, so plugins need no date crate.

use crate::Date;

impl Date {
    /// Days since 1970-01-01 (negative before it).
    pub fn to_days(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Whole days from `self` to `later`; negative if `later` is earlier.
    pub fn days_until(&self, later: &Date) -> i64 {
        later.to_days() - self.to_days()
    }

    /// The date as `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use crate::Date;

    #[test]
    fn days_round_trip_across_leap_years_and_eras() {
        for days in [-800_000, -1, 0, 1, 11_016, 20_515, 20_520, 60_000] {
            assert_eq!(Date::from_days(days).to_days(), days);
        }
        let d = Date {
            year: 2024,
            month: 2,
            day: 29,
        };
        assert_eq!(Date::from_days(d.to_days()), d);
        assert_eq!(
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
            .to_days(),
            0
        );
        let today = Date {
            year: 2026,
            month: 11,
            day: 28,
        };
        assert_eq!(
            today.days_until(&Date {
                year: 2026,
                month: 12,
                day: 20
            }),
            22
        );
        assert_eq!(today.iso(), "2026-11-28");
    }
}
