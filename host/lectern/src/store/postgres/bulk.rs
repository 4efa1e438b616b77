//! The bulk path of a PostgreSQL import, for tables that were empty when
//! it began: records are answered from memory, buffered, and written a
//! batch at a time by binary `COPY` into a staging table and one
//! set-based upsert from it, all in the import's transaction.
//!
//! In an empty table a record is new unless this import already holds its
//! key, so no record needs a lookup. Patron ids and card numbers are kept
//! whole (loans ask for their patron); the keys of loans, holds and days of
//! use only as 64-bit keyed hashes, and a hash seen before is checked
//! exactly against the table after a flush. Memory is the buffers (a batch
//! per table) plus about 16 bytes per activity record and one id and card
//! per patron.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;

use anyhow::{Context as _, Result};
use postgres::Transaction;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::date;
use crate::store::{HoldRecord, LoanRecord, PatronRecord, UseKind, UseRecord};

/// Records per table buffered before a flush.
const BATCH: usize = 20_000;

/// The tables an import writes, in the order a flush must keep (a loan
/// needs its patron).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Table {
    Patrons,
    Attributes,
    Loans,
    Holds,
    Uses,
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Patrons,
        Table::Attributes,
        Table::Loans,
        Table::Holds,
        Table::Uses,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Patrons => "patrons",
            Table::Attributes => "patron_attributes",
            Table::Loans => "loans",
            Table::Holds => "holds",
            Table::Uses => "uses",
        }
    }

    /// The columns written, their types, and the upsert from staging.
    fn shape(self) -> (&'static str, &'static [Type], &'static str) {
        match self {
            Table::Patrons => (
                "id, source, active, card_number, name, email, phone, birth_date, age_band, \
                 category, home_branch, enrolled_on, expires_on, locale, channels, \
                 consent_reading_history, consent_marketing, run_id, address",
                &[
                    Type::TEXT,
                    Type::TEXT,
                    Type::BOOL,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::BOOL,
                    Type::BOOL,
                    Type::INT8,
                    Type::TEXT,
                ],
                "ON CONFLICT (id) DO NOTHING",
            ),
            Table::Attributes => (
                "patron_id, key, value",
                &[Type::TEXT, Type::TEXT, Type::TEXT],
                "ON CONFLICT (patron_id, key) DO UPDATE SET value = excluded.value",
            ),
            Table::Loans => (
                "id, patron_id, item_id, title, subject, loaned_on, due_on, returned_on, \
                 renewals, run_id",
                &[
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                ],
                "ON CONFLICT (id) DO NOTHING",
            ),
            Table::Holds => (
                "id, patron_id, title, placed_on, status, pickup_branch, expires_on, run_id",
                &[
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                ],
                "ON CONFLICT (id) DO NOTHING",
            ),
            Table::Uses => (
                "patron_id, day, kind, count, run_id",
                &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8],
                "ON CONFLICT (patron_id, day, kind) DO NOTHING",
            ),
        }
    }
}

/// One buffered row, its values in the table's column order.
type RowValues = Vec<Box<dyn ToSql + Sync + Send>>;

/// What the bulk path holds for one import.
pub(super) struct Bulk {
    /// Which of patrons, loans, holds and uses were empty at the start.
    pub(super) fresh: [bool; 4],
    /// This import's patrons, and who holds each card, when patrons were
    /// empty.
    patrons: HashSet<Box<str>>,
    cards: HashMap<Box<str>, Box<str>>,
    /// Keyed hashes of this import's loan, hold and use keys.
    keys: [HashSet<u64>; 3],
    hasher: std::collections::hash_map::RandomState,
    /// Rows waiting for a flush, per table.
    buffers: [Vec<RowValues>; 5],
    run: i64,
    /// What was set aside to load the fresh tables faster: the statements
    /// that put it back, run at commit.
    pub(super) restore: Vec<String>,
}

/// Where a record's key is first seen, for the activity tables.
pub(super) enum Seen {
    /// Not before in this import.
    New,
    /// Its hash was seen: a duplicate, or (rarely) another key with the
    /// same hash; the caller checks the table after a flush.
    Maybe,
}

impl Bulk {
    pub(super) fn new(fresh: [bool; 4], run: i64) -> Bulk {
        Bulk {
            fresh,
            patrons: HashSet::new(),
            cards: HashMap::new(),
            keys: Default::default(),
            hasher: Default::default(),
            buffers: Default::default(),
            run,
            restore: Vec::new(),
        }
    }

    /// Sets aside the secondary indexes and foreign keys of the tables
    /// that were empty (`fresh`, in the order patrons, loans, holds, uses),
    /// so that each is built once, in one pass, at commit rather than kept
    /// row by row; primary keys stay, for the upserts. All of it is in the
    /// import's transaction: a failed import puts everything back, and
    /// other sessions wait for the tables until it commits.
    pub(super) fn set_aside(&mut self, tx: &mut Transaction<'_>) -> Result<()> {
        let mut tables: Vec<&str> = Vec::new();
        for (i, table) in ["patrons", "loans", "holds", "uses"].iter().enumerate() {
            if self.fresh[i] {
                tables.push(table);
            }
        }
        if self.fresh[0] {
            tables.push("patron_attributes");
        }
        for table in tables {
            let keys = tx.query(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = to_regclass($1::text) AND contype = 'f' ORDER BY conname",
                &[&table],
            )?;
            for row in keys {
                let (name, def): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                let name = super::quoted(&name);
                tx.batch_execute(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))?;
                self.restore
                    .push(format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"));
            }
            let indexes = tx.query(
                "SELECT indexname::text, indexdef FROM pg_indexes \
                 WHERE schemaname = current_schema() AND tablename = $1 \
                 AND indexdef NOT LIKE 'CREATE UNIQUE INDEX%' ORDER BY indexname",
                &[&table],
            )?;
            for row in indexes {
                let (name, def): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                tx.batch_execute(&format!("DROP INDEX {}", super::quoted(&name)))?;
                self.restore.push(def);
            }
        }
        Ok(())
    }

    /// Puts back what [`Bulk::set_aside`] took: each index built, and each
    /// foreign key checked, in one pass over its table.
    pub(super) fn put_back(&mut self, tx: &mut Transaction<'_>) -> Result<()> {
        for statement in std::mem::take(&mut self.restore) {
            tx.batch_execute(&statement)
                .with_context(|| format!("failed to rebuild after the import: {statement}"))?;
        }
        Ok(())
    }

    pub(super) fn has_patron(&self, id: &str) -> bool {
        self.patrons.contains(id)
    }

    pub(super) fn card_holder(&self, card: &str) -> Option<String> {
        self.cards.get(card).map(|id| id.to_string())
    }

    /// Notes an activity key (`table` 0: loans, 1: holds, 2: uses).
    pub(super) fn see(&mut self, table: usize, key: &str) -> Seen {
        if self.keys[table].insert(self.hasher.hash_one(key)) {
            Seen::New
        } else {
            Seen::Maybe
        }
    }

    /// Buffers a new patron, with their attributes; false when this import
    /// holds the id already.
    pub(super) fn patron(&mut self, r: &PatronRecord) -> Result<bool> {
        let p = &r.patron;
        if !self.patrons.insert(p.id.as_str().into()) {
            return Ok(false);
        }
        if let Some(card) = &p.card_number {
            self.cards
                .entry(card.as_str().into())
                .or_insert_with(|| p.id.as_str().into());
        }
        let channels = p.channels.as_ref().map(serde_json::to_string).transpose()?;
        let address = p.address.as_ref().map(serde_json::to_string).transpose()?;
        self.buffers[Table::Patrons as usize].push(vec![
            Box::new(p.id.clone()),
            Box::new(r.source.clone()),
            Box::new(r.active),
            Box::new(p.card_number.clone()),
            Box::new(p.name.clone()),
            Box::new(p.email.clone()),
            Box::new(p.phone.clone()),
            Box::new(date(p.birth_date)),
            Box::new(p.age_band.clone()),
            Box::new(p.category.clone()),
            Box::new(p.home_branch.clone()),
            Box::new(date(p.enrolled_on)),
            Box::new(date(p.expires_on)),
            Box::new(p.locale.clone()),
            Box::new(channels),
            Box::new(p.consents.map(|c| c.reading_history)),
            Box::new(p.consents.map(|c| c.marketing)),
            Box::new(self.run),
            Box::new(address),
        ]);
        for (k, v) in p.attributes.iter().flatten() {
            self.buffers[Table::Attributes as usize].push(vec![
                Box::new(p.id.clone()),
                Box::new(k.clone()),
                Box::new(v.clone()),
            ]);
        }
        Ok(true)
    }

    pub(super) fn loan(&mut self, l: &LoanRecord) {
        self.buffers[Table::Loans as usize].push(vec![
            Box::new(l.id.clone()),
            Box::new(l.patron.clone()),
            Box::new(l.item.clone()),
            Box::new(l.title.clone()),
            Box::new(l.subject.clone()),
            Box::new(l.loaned_on.to_string()),
            Box::new(date(l.due_on)),
            Box::new(date(l.returned_on)),
            Box::new(i64::from(l.renewals)),
            Box::new(self.run),
        ]);
    }

    pub(super) fn hold(&mut self, h: &HoldRecord) {
        self.buffers[Table::Holds as usize].push(vec![
            Box::new(h.id.clone()),
            Box::new(h.patron.clone()),
            Box::new(h.title.clone()),
            Box::new(h.placed_on.to_string()),
            Box::new(h.status.clone()),
            Box::new(h.pickup_branch.clone()),
            Box::new(date(h.expires_on)),
            Box::new(self.run),
        ]);
    }

    pub(super) fn use_(&mut self, u: &UseRecord) {
        let kind = match u.kind {
            UseKind::Visit => "visit",
            UseKind::Eresource => "eresource",
        };
        self.buffers[Table::Uses as usize].push(vec![
            Box::new(u.patron.clone()),
            Box::new(u.on.to_string()),
            Box::new(kind.to_string()),
            Box::new(i64::from(u.count)),
            Box::new(self.run),
        ]);
    }

    /// Whether `table`'s buffer is full.
    pub(super) fn full(&self, table: Table) -> bool {
        self.buffers[table as usize].len() >= BATCH
    }

    /// Writes every buffer up to and including `upto`, in order: a
    /// table's rows go after the patrons they name.
    pub(super) fn flush(&mut self, tx: &mut Transaction<'_>, upto: Table) -> Result<()> {
        for table in Table::ALL {
            let rows = std::mem::take(&mut self.buffers[table as usize]);
            if !rows.is_empty() {
                write(tx, table, &rows)
                    .with_context(|| format!("failed to write {} by COPY", table.name()))?;
            }
            if table == upto {
                break;
            }
        }
        Ok(())
    }

    /// Renames a patron in what is still buffered and in the sets: the
    /// store's rows were renamed by the caller after a flush.
    pub(super) fn rekey(&mut self, from: &str, to: &str) {
        if self.patrons.remove(from) {
            self.patrons.insert(to.into());
        }
        for holder in self.cards.values_mut() {
            if &**holder == from {
                *holder = to.into();
            }
        }
    }
}

/// One batch: binary `COPY` into the table's staging table, then one
/// upsert from it.
fn write(tx: &mut Transaction<'_>, table: Table, rows: &[RowValues]) -> Result<()> {
    let (columns, types, conflict) = table.shape();
    let name = table.name();
    let stage = format!("stage_{name}");
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {name} INCLUDING DEFAULTS) ON COMMIT DROP; \
         TRUNCATE {stage}"
    ))?;
    let sink = tx.copy_in(&format!("COPY {stage} ({columns}) FROM STDIN BINARY"))?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    for row in rows {
        let values: Vec<&(dyn ToSql + Sync)> =
            row.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
        writer.write(&values)?;
    }
    writer.finish()?;
    let written = tx.execute(
        &format!("INSERT INTO {name} ({columns}) SELECT {columns} FROM {stage} {conflict}"),
        &[],
    )?;
    anyhow::ensure!(
        written as usize == rows.len() || table == Table::Attributes,
        "{} of {} rows reached {name}; the bulk import found a conflict it should not have",
        written,
        rows.len()
    );
    Ok(())
}
