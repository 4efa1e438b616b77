//! An import into the PostgreSQL store: one transaction, each record an
//! upsert that says whether it was new, an update or this import's
//! duplicate.

use anyhow::{Context as _, Result};
use postgres::{Statement, Transaction};

use super::bulk::{Bulk, Seen, Table};

use super::{date, now};
use crate::store::{
    HoldRecord, ImportTx, LoanRecord, PatronRecord, Put, UseKind, UseRecord, Written,
};

/// An import in progress: one transaction on the store's connection.
pub(super) struct PgImport<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) run: i64,
    /// The last patron found to exist: exports list a patron's loans
    /// together, so this spares most lookups.
    pub(super) last_patron: String,
    /// Whether any patron was ever erased.
    pub(super) tombstones: bool,
    /// The statements every record uses, prepared once.
    pub(super) sql: Statements,
    /// The bulk path, for the tables that were empty when the import
    /// began.
    pub(super) bulk: Bulk,
}

/// The import's statements, prepared when it begins.
pub(super) struct Statements {
    patron: Statement,
    clear_attributes: Statement,
    attribute: Statement,
    loan: Statement,
    hold: Statement,
    use_: Statement,
    has_patron: Statement,
    card_holder: Statement,
    erased: Statement,
}

impl Statements {
    pub(super) fn prepare(tx: &mut Transaction<'_>) -> Result<Statements> {
        Ok(Statements {
            patron: tx.prepare(PATRON)?,
            clear_attributes: tx.prepare(
                "DELETE FROM patron_attributes WHERE patron_id = $1 AND key NOT LIKE 'survey.%'",
            )?,
            attribute: tx.prepare(
                "INSERT INTO patron_attributes (patron_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (patron_id, key) DO UPDATE SET value = excluded.value",
            )?,
            loan: tx.prepare(LOAN)?,
            hold: tx.prepare(HOLD)?,
            use_: tx.prepare(USE)?,
            has_patron: tx.prepare("SELECT 1 FROM patrons WHERE id = $1")?,
            card_holder: tx
                .prepare("SELECT id FROM patrons WHERE card_number = $1 ORDER BY id LIMIT 1")?,
            erased: tx.prepare("SELECT 1 FROM erased_patrons WHERE token = $1")?,
        })
    }
}

/// Each upsert updates a row an earlier import wrote, and leaves one this
/// import wrote alone: then it returns no row, and the record is this
/// import's duplicate. Otherwise it returns whether it inserted
/// (`xmax = 0` marks a row this statement made).
const PATRON: &str = "INSERT INTO patrons (id, source, active, card_number, name, email, \
     phone, birth_date, age_band, category, home_branch, enrolled_on, expires_on, locale, \
     channels, consent_reading_history, consent_marketing, run_id, address) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
     ON CONFLICT (id) DO UPDATE SET source = excluded.source, active = excluded.active, \
     card_number = excluded.card_number, name = excluded.name, email = excluded.email, \
     phone = excluded.phone, birth_date = excluded.birth_date, age_band = excluded.age_band, \
     category = excluded.category, home_branch = excluded.home_branch, \
     enrolled_on = excluded.enrolled_on, expires_on = excluded.expires_on, \
     locale = excluded.locale, channels = excluded.channels, \
     consent_reading_history = excluded.consent_reading_history, \
     consent_marketing = excluded.consent_marketing, run_id = excluded.run_id, \
     address = excluded.address WHERE patrons.run_id IS DISTINCT FROM excluded.run_id \
     RETURNING (xmax = 0)";
const LOAN: &str = "INSERT INTO loans (id, patron_id, item_id, title, subject, loaned_on, \
     due_on, returned_on, renewals, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, \
     item_id = excluded.item_id, title = excluded.title, subject = excluded.subject, \
     loaned_on = excluded.loaned_on, due_on = excluded.due_on, \
     returned_on = excluded.returned_on, renewals = excluded.renewals, \
     run_id = excluded.run_id WHERE loans.run_id IS DISTINCT FROM excluded.run_id \
     RETURNING (xmax = 0)";
const HOLD: &str = "INSERT INTO holds (id, patron_id, title, placed_on, status, \
     pickup_branch, expires_on, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, \
     title = excluded.title, placed_on = excluded.placed_on, status = excluded.status, \
     pickup_branch = excluded.pickup_branch, expires_on = excluded.expires_on, \
     run_id = excluded.run_id WHERE holds.run_id IS DISTINCT FROM excluded.run_id \
     RETURNING (xmax = 0)";
const USE: &str = "INSERT INTO uses (patron_id, day, kind, count, run_id) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (patron_id, day, kind) DO UPDATE SET count = excluded.count, \
     run_id = excluded.run_id WHERE uses.run_id IS DISTINCT FROM excluded.run_id \
     RETURNING (xmax = 0)";

impl PgImport<'_> {
    /// Whether a row with this key is in `table` already, once every
    /// buffer is written: how a key whose hash this import saw before is
    /// told from another with the same hash.
    fn stored(&mut self, sql: &str, key: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<bool> {
        self.bulk.flush(&mut self.tx, Table::Uses)?;
        Ok(self.tx.query_opt(sql, key)?.is_some())
    }

    /// A fresh table's record that names a patron must name one the store
    /// holds, as the foreign key would say.
    fn need_patron(&mut self, patron: &str, what: &str, id: &str) -> Result<()> {
        anyhow::ensure!(
            self.has_patron(patron)?,
            "failed to store {what} `{id}` of patron `{patron}`: no such patron"
        );
        Ok(())
    }

    fn put_of(inserted: Option<bool>) -> Put {
        match inserted {
            Some(true) => Put::New,
            Some(false) => Put::Updated,
            None => Put::Duplicate,
        }
    }
}

impl ImportTx for PgImport<'_> {
    fn put_patron(&mut self, r: &PatronRecord) -> Result<Put> {
        if self.bulk.fresh[0] {
            if !self.bulk.patron(r)? {
                return Ok(Put::Duplicate);
            }
            if self.bulk.full(Table::Patrons) || self.bulk.full(Table::Attributes) {
                self.bulk.flush(&mut self.tx, Table::Attributes)?;
            }
            return Ok(Put::New);
        }
        let p = &r.patron;
        let channels = p.channels.as_ref().map(serde_json::to_string).transpose()?;
        let address = p.address.as_ref().map(serde_json::to_string).transpose()?;
        let inserted: Option<bool> = self
            .tx
            .query_opt(
                &self.sql.patron,
                &[
                    &p.id,
                    &r.source,
                    &r.active,
                    &p.card_number,
                    &p.name,
                    &p.email,
                    &p.phone,
                    &date(p.birth_date),
                    &p.age_band,
                    &p.category,
                    &p.home_branch,
                    &date(p.enrolled_on),
                    &date(p.expires_on),
                    &p.locale,
                    &channels,
                    &p.consents.map(|c| c.reading_history),
                    &p.consents.map(|c| c.marketing),
                    &self.run,
                    &address,
                ],
            )
            .with_context(|| format!("failed to store patron `{}`", p.id))?
            .map(|r| r.get(0));
        match inserted {
            None => return Ok(Put::Duplicate),
            // What a reader told a survey to be used (`survey.…`) is theirs,
            // not the ILS's: an import keeps it.
            Some(false) => {
                self.tx.execute(&self.sql.clear_attributes, &[&p.id])?;
            }
            Some(true) => {}
        }
        for (k, v) in p.attributes.iter().flatten() {
            self.tx.execute(&self.sql.attribute, &[&p.id, k, v])?;
        }
        Ok(PgImport::put_of(inserted))
    }

    fn put_loan(&mut self, l: &LoanRecord) -> Result<Put> {
        if self.bulk.fresh[1] {
            self.need_patron(&l.patron, "loan", &l.id)?;
            if let Seen::Maybe = self.bulk.see(0, &l.id)
                && self.stored("SELECT 1 FROM loans WHERE id = $1", &[&l.id])?
            {
                return Ok(Put::Duplicate);
            }
            self.bulk.loan(l);
            if self.bulk.full(Table::Loans) {
                self.bulk.flush(&mut self.tx, Table::Loans)?;
            }
            return Ok(Put::New);
        }
        let inserted = self
            .tx
            .query_opt(
                &self.sql.loan,
                &[
                    &l.id,
                    &l.patron,
                    &l.item,
                    &l.title,
                    &l.subject,
                    &l.loaned_on.to_string(),
                    &date(l.due_on),
                    &date(l.returned_on),
                    &i64::from(l.renewals),
                    &self.run,
                ],
            )
            .with_context(|| format!("failed to store loan `{}` of patron `{}`", l.id, l.patron))?
            .map(|r| r.get(0));
        Ok(PgImport::put_of(inserted))
    }

    fn put_hold(&mut self, h: &HoldRecord) -> Result<Put> {
        if self.bulk.fresh[2] {
            self.need_patron(&h.patron, "hold", &h.id)?;
            if let Seen::Maybe = self.bulk.see(1, &h.id)
                && self.stored("SELECT 1 FROM holds WHERE id = $1", &[&h.id])?
            {
                return Ok(Put::Duplicate);
            }
            self.bulk.hold(h);
            if self.bulk.full(Table::Holds) {
                self.bulk.flush(&mut self.tx, Table::Holds)?;
            }
            return Ok(Put::New);
        }
        let inserted = self
            .tx
            .query_opt(
                &self.sql.hold,
                &[
                    &h.id,
                    &h.patron,
                    &h.title,
                    &h.placed_on.to_string(),
                    &h.status,
                    &h.pickup_branch,
                    &date(h.expires_on),
                    &self.run,
                ],
            )
            .with_context(|| format!("failed to store hold `{}` of patron `{}`", h.id, h.patron))?
            .map(|r| r.get(0));
        Ok(PgImport::put_of(inserted))
    }

    fn put_use(&mut self, u: &UseRecord) -> Result<Put> {
        let kind = match u.kind {
            UseKind::Visit => "visit",
            UseKind::Eresource => "eresource",
        };
        if self.bulk.fresh[3] {
            let day = u.on.to_string();
            self.need_patron(&u.patron, "day of use", &day)?;
            if let Seen::Maybe = self
                .bulk
                .see(2, &format!("{}\u{1f}{day}\u{1f}{kind}", u.patron))
                && self.stored(
                    "SELECT 1 FROM uses WHERE patron_id = $1 AND day = $2 AND kind = $3",
                    &[&u.patron, &day, &kind],
                )?
            {
                return Ok(Put::Duplicate);
            }
            self.bulk.use_(u);
            if self.bulk.full(Table::Uses) {
                self.bulk.flush(&mut self.tx, Table::Uses)?;
            }
            return Ok(Put::New);
        }
        let inserted = self
            .tx
            .query_opt(
                &self.sql.use_,
                &[
                    &u.patron,
                    &u.on.to_string(),
                    &kind,
                    &i64::from(u.count),
                    &self.run,
                ],
            )?
            .map(|r| r.get(0));
        Ok(PgImport::put_of(inserted))
    }

    fn has_patron(&mut self, id: &str) -> Result<bool> {
        if id == self.last_patron {
            return Ok(true);
        }
        if self.bulk.fresh[0] {
            return Ok(self.bulk.has_patron(id));
        }
        let exists = self.tx.query_opt(&self.sql.has_patron, &[&id])?.is_some();
        if exists {
            self.last_patron = id.to_string();
        }
        Ok(exists)
    }

    fn card_holder(&mut self, card: &str) -> Result<Option<String>> {
        if self.bulk.fresh[0] {
            return Ok(self.bulk.card_holder(card));
        }
        Ok(self
            .tx
            .query_opt(&self.sql.card_holder, &[&card])?
            .map(|r| r.get(0)))
    }

    fn rekey_patron(&mut self, from: &str, to: &str) -> Result<()> {
        // Every foreign key cascades the new id to the patron's rows; the
        // inbox keeps none and follows by hand.
        self.bulk.flush(&mut self.tx, Table::Uses)?;
        self.bulk.rekey(from, to);
        self.tx
            .execute("UPDATE patrons SET id = $2 WHERE id = $1", &[&from, &to])?;
        self.tx.execute(
            "UPDATE inbox SET patron_id = $2 WHERE patron_id = $1",
            &[&from, &to],
        )?;
        self.last_patron.clear();
        Ok(())
    }

    fn has_tombstones(&self) -> bool {
        self.tombstones
    }

    fn is_erased(&mut self, token: &str) -> Result<bool> {
        if !self.tombstones {
            return Ok(false);
        }
        Ok(self.tx.query_opt(&self.sql.erased, &[&token])?.is_some())
    }

    fn readmit(&mut self, token: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM erased_patrons WHERE token = $1", &[&token])?;
        Ok(())
    }

    fn commit(mut self: Box<Self>, written: Written, skipped: usize) -> Result<()> {
        self.bulk.flush(&mut self.tx, Table::Uses)?;
        self.bulk.put_back(&mut self.tx)?;
        self.tx.execute(
            "UPDATE import_runs SET finished_at = $2, imported = $3, updated = $4, skipped = $5 \
             WHERE id = $1",
            &[
                &self.run,
                &now(),
                &(written.imported as i64),
                &(written.updated as i64),
                &(skipped as i64),
            ],
        )?;
        self.tx.commit()?;
        Ok(())
    }
}
