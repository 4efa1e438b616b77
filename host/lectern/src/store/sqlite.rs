//! The embedded default store: one SQLite file, its schema migrated when it
//! is opened.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rows::{date, fields_of, fields_text, parse_date};

mod demand;
mod outbox;
mod readers;
mod registry;
mod service;
mod shared;

use super::{
    AuditStore, Backend, Erased, HoldRecord, ImportTx, LoanRecord, MessageState, PatronData,
    PatronReader, PatronRecord, Put, Reanchor, Records, Retained, Retention, RunScore, RunWriter,
    Runs, ScoreRun, Store, StoredMessage, StoredRun, StoredScore, UseKind, UseRecord, Written,
};
use crate::audit::{AuditAnchor, AuditHead, AuditRow};
use crate::model::{Activity, Channel, Consents, Patron, Scored};

/// Each migration takes the schema from version `i` to `i + 1`. Never edit
/// one that has shipped; add another.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE patrons (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    active INTEGER NOT NULL,
    card_number TEXT,
    name TEXT,
    email TEXT,
    phone TEXT,
    birth_date TEXT,
    age_band TEXT,
    category TEXT,
    home_branch TEXT,
    enrolled_on TEXT,
    expires_on TEXT,
    locale TEXT,
    channels TEXT,
    consent_reading_history INTEGER,
    consent_marketing INTEGER
);
CREATE TABLE patron_attributes (
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (patron_id, key)
);
CREATE TABLE loans (
    id TEXT PRIMARY KEY,
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    item_id TEXT,
    title TEXT,
    subject TEXT,
    loaned_on TEXT NOT NULL,
    due_on TEXT,
    returned_on TEXT,
    renewals INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX loans_by_patron ON loans (patron_id, loaned_on);
CREATE INDEX loans_by_date ON loans (loaned_on);
CREATE TABLE holds (
    id TEXT PRIMARY KEY,
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    title TEXT,
    placed_on TEXT NOT NULL,
    status TEXT,
    pickup_branch TEXT,
    expires_on TEXT
);
CREATE INDEX holds_by_patron ON holds (patron_id, placed_on);
"#,
    r#"
CREATE TABLE import_runs (
    id INTEGER PRIMARY KEY,
    format TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    imported INTEGER,
    updated INTEGER,
    skipped INTEGER
);
ALTER TABLE patrons ADD COLUMN run_id INTEGER;
ALTER TABLE loans ADD COLUMN run_id INTEGER;
ALTER TABLE holds ADD COLUMN run_id INTEGER;
CREATE TABLE uses (
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    run_id INTEGER,
    PRIMARY KEY (patron_id, day, kind)
);
"#,
    r#"
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    purpose TEXT NOT NULL,
    fields TEXT NOT NULL,
    patrons TEXT NOT NULL,
    link TEXT NOT NULL
);
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    entries INTEGER NOT NULL,
    mac TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE aged_loans (
    loaned_month TEXT NOT NULL,
    subject TEXT,
    category TEXT,
    home_branch TEXT,
    birth_decade TEXT,
    renewals INTEGER NOT NULL
);
ALTER TABLE audit_anchor ADD COLUMN base_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_anchor ADD COLUMN base_link TEXT NOT NULL DEFAULT '';
"#,
    r#"
CREATE TABLE score_runs (
    id INTEGER PRIMARY KEY,
    plugin TEXT NOT NULL,
    version TEXT NOT NULL,
    as_of TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    patrons INTEGER NOT NULL
);
CREATE TABLE scores (
    run_id INTEGER NOT NULL REFERENCES score_runs(id) ON DELETE CASCADE,
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    value REAL NOT NULL,
    segment TEXT NOT NULL,
    reasons TEXT NOT NULL,
    PRIMARY KEY (run_id, patron_id)
);
CREATE INDEX scores_by_patron ON scores (patron_id);
"#,
    r#"
ALTER TABLE patrons ADD COLUMN notice_days INTEGER;
ALTER TABLE patrons ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
ALTER TABLE patrons ADD COLUMN opted_out TEXT;
ALTER TABLE patrons ADD COLUMN no_marketing INTEGER NOT NULL DEFAULT 0;
CREATE INDEX loans_out ON loans (due_on) WHERE returned_on IS NULL;
CREATE INDEX patrons_by_expiry ON patrons (expires_on);
CREATE INDEX loans_by_subject ON loans (subject, loaned_on);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_kind TEXT NOT NULL,
    marketing INTEGER NOT NULL,
    plugin TEXT NOT NULL,
    channel TEXT NOT NULL,
    locale TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    day TEXT NOT NULL,
    digest INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    queued_at INTEGER NOT NULL,
    settled_at INTEGER
);
CREATE INDEX outbox_due ON outbox (state, channel, not_before, id);
CREATE INDEX outbox_by_patron ON outbox (patron_id, day);
"#,
    r#"
ALTER TABLE score_runs ADD COLUMN fields TEXT;
"#,
    r#"
CREATE TABLE store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE patrons ADD COLUMN address TEXT;
CREATE INDEX patrons_by_card ON patrons (card_number) WHERE card_number IS NOT NULL;
CREATE TABLE erased_patrons (
    token TEXT PRIMARY KEY,
    erased_on TEXT NOT NULL
);
"#,
    // A run is written a batch at a time and shown only when complete.
    r#"
ALTER TABLE score_runs ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;
"#,
    // Installed plugins, their packages, trusted publisher keys, and the
    // library's settings (the privacy policy in use).
    r#"
CREATE TABLE plugin_packages (
    digest TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
CREATE TABLE plugins (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    world TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES plugin_packages (digest),
    component_sha256 TEXT NOT NULL,
    signer TEXT,
    enabled INTEGER NOT NULL,
    fields TEXT NOT NULL,
    events TEXT NOT NULL,
    config TEXT NOT NULL,
    source TEXT NOT NULL,
    installed_at TEXT NOT NULL
);
CREATE TABLE trusted_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key BLOB NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE library_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    // The service: staff accounts (a token's hash, never the token), the
    // inbox of events the ILS pushed, and the history of scheduled jobs.
    r#"
CREATE TABLE staff (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    patron_id TEXT,
    change TEXT,
    received_at TEXT NOT NULL,
    processed_at TEXT,
    outcome TEXT,
    notified INTEGER NOT NULL DEFAULT 0,
    UNIQUE (source, event_id)
);
CREATE INDEX inbox_pending ON inbox (seq) WHERE processed_at IS NULL;
CREATE INDEX inbox_by_patron ON inbox (patron_id);
CREATE TABLE job_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    state TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT ''
);
"#,
    // The reader-facing half: preferences a reader sets for themself,
    // one-time links, and survey answers (anonymous ones keep no patron).
    r#"
ALTER TABLE patrons ADD COLUMN no_reading_history INTEGER NOT NULL DEFAULT 0;
ALTER TABLE patrons ADD COLUMN pref_locale TEXT;
CREATE TABLE reader_links (
    id TEXT PRIMARY KEY,
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX reader_links_by_patron ON reader_links (patron_id);
CREATE TABLE survey_answers (
    id INTEGER PRIMARY KEY,
    survey TEXT NOT NULL,
    patron_id TEXT REFERENCES patrons(id) ON DELETE CASCADE,
    category TEXT,
    segment TEXT,
    locale TEXT NOT NULL,
    answered_on TEXT NOT NULL,
    use_for_service INTEGER NOT NULL,
    answers TEXT NOT NULL
);
CREATE INDEX survey_answers_by_survey ON survey_answers (survey, id);
CREATE INDEX survey_answers_by_patron ON survey_answers (patron_id) WHERE patron_id IS NOT NULL;
"#,
    // Campaigns: who entered each, who is held out, how far each series
    // went.
    r#"
CREATE TABLE campaign_members (
    campaign TEXT NOT NULL,
    patron_id TEXT NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
    entered_on TEXT NOT NULL,
    holdout INTEGER NOT NULL,
    expires_at_entry TEXT,
    steps_sent INTEGER NOT NULL DEFAULT 0,
    stopped_on TEXT,
    stop_reason TEXT,
    PRIMARY KEY (campaign, patron_id)
);
CREATE INDEX campaign_members_by_patron ON campaign_members (patron_id);
"#,
    // Runs planned in ranges of patron ids, which workers claim under a
    // lease and store one at a time.
    r#"
CREATE TABLE run_ranges (
    run_id INTEGER NOT NULL REFERENCES score_runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    lo TEXT NOT NULL,
    hi TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_until INTEGER,
    claims INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);
"#,
    // Readers who asked for current-awareness digests from the
    // preference centre.
    r#"
ALTER TABLE patrons ADD COLUMN awareness INTEGER NOT NULL DEFAULT 0;
"#,
];

/// A store in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// For a temporary store: the directory it lives in, removed with it.
    _temporary: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> crate::Result<SqliteStore> {
        SqliteStore::open_at(path).map_err(crate::Error::store)
    }

    fn open_at(path: &Path) -> Result<SqliteStore> {
        create_private(path)?;
        let conn = Connection::open(path)
            .with_context(|| format!("failed to open the store {}", path.display()))?;
        let conn = SqliteStore::init(conn)
            .with_context(|| format!("failed to prepare the store {}", path.display()))?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            _temporary: None,
        })
    }

    /// A store in a temporary file, removed when the store and every handle
    /// on its audit log are dropped: for tests and trials.
    pub fn temporary() -> crate::Result<SqliteStore> {
        let make = || -> Result<SqliteStore> {
            let dir = std::sync::Arc::new(
                tempfile::tempdir().context("failed to make a temporary directory")?,
            );
            let mut store = SqliteStore::open_at(&dir.path().join("lectern.db"))?;
            store._temporary = Some(dir);
            Ok(store)
        };
        make().map_err(crate::Error::store)
    }

    /// Sets the page cache of this connection to `kib` KiB (64 MiB unless
    /// set): what a long-running service holds per connection, where the
    /// command's default favours imports.
    pub fn cache_kib(self, kib: u32) -> crate::Result<SqliteStore> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib.max(256)))
            .map_err(|e| crate::Error::store(e.into()))?;
        Ok(self)
    }

    /// Where the store's file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(mut conn: Connection) -> Result<Connection> {
        conn.pragma_update(None, "foreign_keys", true)?;
        // The service holds more than one connection (intake beside the
        // jobs), and the CLI may run beside it: a writer waits its turn, up
        // to 30 s, looking again every fifth of a millisecond. SQLite's own
        // timeout sleeps 1, 2, 5, 10 ms and more between looks, which
        // made an event wait tens of milliseconds behind a lock held for
        // one.
        conn.busy_handler(Some(wait_for_lock))?;
        // Every transaction takes the write lock when it begins: one that
        // read first and then wrote could not be promoted after another
        // connection's commit, and would fail instead of waiting.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // Deleted rows are overwritten with zeros, so an erased patron's
        // values do not linger in free pages.
        conn.pragma_update(None, "secure_delete", true)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // With WAL, NORMAL never corrupts the store; a power cut may lose the
        // last committed import, which is then simply run again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        anyhow::ensure!(
            version <= MIGRATIONS.len(),
            "the store has schema version {version}, newer than this lectern knows ({}); \
             upgrade lectern",
            MIGRATIONS.len()
        );
        let tx = conn.transaction()?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)
                .with_context(|| format!("failed to migrate the schema to version {}", i + 1))?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
        tx.commit()?;
        Ok(conn)
    }

    /// The number of rows in `table`, for reports and tests.
    pub fn count(&self, table: &str) -> Result<usize> {
        anyhow::ensure!(
            table.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "bad table name"
        );
        Ok(self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })? as usize)
    }

    /// How many rows of `table` hold `value` in any column: how a test or an
    /// auditor checks that an erasure left nothing behind.
    pub fn rows_mentioning(&self, table: &str, value: &str) -> Result<usize> {
        anyhow::ensure!(
            self.tables()?.iter().any(|t| t == table),
            "no table `{table}`"
        );
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let columns = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        // Text only: a numeric id such as Koha's `51` would otherwise
        // equal the number 51 in any integer column, by SQLite's affinity.
        let any = columns
            .iter()
            .map(|c| format!("(typeof(\"{c}\") = 'text' AND \"{c}\" = ?1)"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let n: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE {any}"),
            [value],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// The tables of the schema.
    pub fn tables(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }
}

/// The page cache of a connection that only appends to the audit log.
const AUDIT_CACHE_KIB: i64 = 2048;

/// SQLite's busy handler: `tries` looks at a lock so far; true to look
/// again after a short sleep, false to give up after some 30 s.
fn wait_for_lock(tries: i32) -> bool {
    const LOOK_EVERY: std::time::Duration = std::time::Duration::from_micros(200);
    if tries >= 150_000 {
        return false;
    }
    std::thread::sleep(LOOK_EVERY);
    true
}

/// A read-only transaction: one snapshot for several reads, without the
/// write lock that every other transaction takes when it begins.
fn read_snapshot(conn: &Connection) -> rusqlite::Result<Transaction<'_>> {
    Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)
}

/// Inserts into tables that were empty when the import began: a conflict
/// is a record this import already wrote, left as the first one was.
const FRESH_PATRON: &str = "INSERT INTO patrons (id, source, active, card_number, name, email, \
     phone, birth_date, age_band, category, home_branch, enrolled_on, expires_on, locale, \
     channels, consent_reading_history, consent_marketing, run_id, address) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
     ON CONFLICT (id) DO NOTHING";
const FRESH_LOAN: &str = "INSERT INTO loans (id, patron_id, item_id, title, subject, loaned_on, \
     due_on, returned_on, renewals, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (id) DO NOTHING";
const FRESH_HOLD: &str = "INSERT INTO holds (id, patron_id, title, placed_on, status, \
     pickup_branch, expires_on, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (id) DO NOTHING";
const FRESH_USE: &str = "INSERT INTO uses (patron_id, day, kind, count, run_id) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (patron_id, day, kind) DO NOTHING";

/// The tables whose rows belong to one patron, by `patron_id`: what an
/// erasure removes and a new id carries with it.
const PATRON_TABLES: [&str; 10] = [
    "patron_attributes",
    "loans",
    "holds",
    "uses",
    "scores",
    "outbox",
    "inbox",
    "reader_links",
    "survey_answers",
    "campaign_members",
];

/// The tables whose rows are keyed by the ILS's id, and the days of use.
#[derive(Clone, Copy)]
enum Keyed {
    Patrons,
    Loans,
    Holds,
    Uses,
}

impl Keyed {
    const ALL: [Keyed; 4] = [Keyed::Patrons, Keyed::Loans, Keyed::Holds, Keyed::Uses];

    fn table(self) -> &'static str {
        match self {
            Keyed::Patrons => "patrons",
            Keyed::Loans => "loans",
            Keyed::Holds => "holds",
            Keyed::Uses => "uses",
        }
    }
}

/// An import in progress: one SQLite transaction.
struct SqliteImport<'a> {
    tx: Transaction<'a>,
    run: i64,
    /// The last patron found to exist: exports list a patron's loans
    /// together, so this spares most lookups.
    last_patron: String,
    /// Whether any patron was ever erased: most stores have no tombstone,
    /// and then no record needs a lookup for one.
    tombstones: bool,
    /// The tables that were empty when the import began. A row in one of
    /// them can only have come from this import, so a record needs no
    /// lookup first: a plain insert that meets a conflict is a duplicate.
    fresh: [bool; 4],
}

impl SqliteImport<'_> {
    /// Whether `id` is new, from an earlier import, or already written by
    /// this one.
    fn put_kind(&self, table: Keyed, id: &str) -> Result<Put> {
        let sql = match table {
            Keyed::Patrons => "SELECT run_id FROM patrons WHERE id = ?1",
            Keyed::Loans => "SELECT run_id FROM loans WHERE id = ?1",
            Keyed::Holds => "SELECT run_id FROM holds WHERE id = ?1",
            Keyed::Uses => unreachable!("days of use are keyed by patron, day and kind"),
        };
        let prev: Option<Option<i64>> = self
            .tx
            .prepare_cached(sql)?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(match prev {
            None => Put::New,
            Some(Some(run)) if run == self.run => Put::Duplicate,
            Some(_) => Put::Updated,
        })
    }
}

impl ImportTx for SqliteImport<'_> {
    fn put_patron(&mut self, r: &PatronRecord) -> Result<Put> {
        let p = &r.patron;
        let fresh = self.fresh[Keyed::Patrons as usize];
        let put = if fresh {
            Put::New
        } else {
            self.put_kind(Keyed::Patrons, &p.id)?
        };
        if put == Put::Duplicate {
            return Ok(put);
        }
        let channels = p.channels.as_ref().map(serde_json::to_string).transpose()?;
        let address = p.address.as_ref().map(serde_json::to_string).transpose()?;
        let written = self
            .tx
            .prepare_cached(if fresh {
                FRESH_PATRON
            } else {
                "INSERT INTO patrons (id, source, active, card_number, name, email, phone, birth_date, \
                 age_band, category, home_branch, enrolled_on, expires_on, locale, channels, \
                 consent_reading_history, consent_marketing, run_id, address) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
                 ON CONFLICT (id) DO UPDATE SET source = excluded.source, active = excluded.active, \
                 card_number = excluded.card_number, name = excluded.name, email = excluded.email, \
                 phone = excluded.phone, birth_date = excluded.birth_date, age_band = excluded.age_band, \
                 category = excluded.category, home_branch = excluded.home_branch, \
                 enrolled_on = excluded.enrolled_on, expires_on = excluded.expires_on, \
                 locale = excluded.locale, channels = excluded.channels, \
                 consent_reading_history = excluded.consent_reading_history, \
                 consent_marketing = excluded.consent_marketing, run_id = excluded.run_id, \
                 address = excluded.address"
            })?
            .execute(params![
                p.id,
                r.source,
                r.active,
                p.card_number,
                p.name,
                p.email,
                p.phone,
                date(p.birth_date),
                p.age_band,
                p.category,
                p.home_branch,
                date(p.enrolled_on),
                date(p.expires_on),
                p.locale,
                channels,
                p.consents.map(|c| c.reading_history),
                p.consents.map(|c| c.marketing),
                self.run,
                address,
            ])?;
        if written == 0 {
            // A fresh table's conflict: this import already wrote the id.
            return Ok(Put::Duplicate);
        }
        if !fresh {
            // What a reader told a survey to be used (`survey.…`) is theirs,
            // not the ILS's: an import keeps it.
            self.tx
                .prepare_cached(
                    "DELETE FROM patron_attributes WHERE patron_id = ?1 \
                     AND key NOT LIKE 'survey.%'",
                )?
                .execute([&p.id])?;
        }
        let mut attr = self.tx.prepare_cached(
            "INSERT INTO patron_attributes (patron_id, key, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (patron_id, key) DO UPDATE SET value = excluded.value",
        )?;
        for (k, v) in p.attributes.iter().flatten() {
            attr.execute(params![p.id, k, v])?;
        }
        Ok(put)
    }

    fn put_loan(&mut self, l: &LoanRecord) -> Result<Put> {
        let fresh = self.fresh[Keyed::Loans as usize];
        let put = if fresh {
            Put::New
        } else {
            self.put_kind(Keyed::Loans, &l.id)?
        };
        if put == Put::Duplicate {
            return Ok(put);
        }
        let written = self
            .tx
            .prepare_cached(if fresh {
                FRESH_LOAN
            } else {
                "INSERT INTO loans (id, patron_id, item_id, title, subject, loaned_on, due_on, returned_on, \
                 renewals, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, item_id = excluded.item_id, \
                 title = excluded.title, subject = excluded.subject, loaned_on = excluded.loaned_on, \
                 due_on = excluded.due_on, returned_on = excluded.returned_on, renewals = excluded.renewals, \
                 run_id = excluded.run_id"
            })?
            .execute(params![
                l.id,
                l.patron,
                l.item,
                l.title,
                l.subject,
                l.loaned_on.to_string(),
                date(l.due_on),
                date(l.returned_on),
                l.renewals,
                self.run,
            ])
            .with_context(|| format!("failed to store loan `{}` of patron `{}`", l.id, l.patron))?;
        Ok(if written == 0 { Put::Duplicate } else { put })
    }

    fn put_hold(&mut self, h: &HoldRecord) -> Result<Put> {
        let fresh = self.fresh[Keyed::Holds as usize];
        let put = if fresh {
            Put::New
        } else {
            self.put_kind(Keyed::Holds, &h.id)?
        };
        if put == Put::Duplicate {
            return Ok(put);
        }
        let written = self
            .tx
            .prepare_cached(if fresh {
                FRESH_HOLD
            } else {
                "INSERT INTO holds (id, patron_id, title, placed_on, status, pickup_branch, expires_on, run_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (id) DO UPDATE SET patron_id = excluded.patron_id, title = excluded.title, \
                 placed_on = excluded.placed_on, status = excluded.status, \
                 pickup_branch = excluded.pickup_branch, expires_on = excluded.expires_on, run_id = excluded.run_id"
            })?
            .execute(params![
                h.id,
                h.patron,
                h.title,
                h.placed_on.to_string(),
                h.status,
                h.pickup_branch,
                date(h.expires_on),
                self.run,
            ])
            .with_context(|| format!("failed to store hold `{}` of patron `{}`", h.id, h.patron))?;
        Ok(if written == 0 { Put::Duplicate } else { put })
    }

    fn put_use(&mut self, u: &UseRecord) -> Result<Put> {
        let kind = match u.kind {
            UseKind::Visit => "visit",
            UseKind::Eresource => "eresource",
        };
        let day = u.on.to_string();
        if self.fresh[Keyed::Uses as usize] {
            let written = self
                .tx
                .prepare_cached(FRESH_USE)?
                .execute(params![u.patron, day, kind, u.count, self.run])?;
            return Ok(if written == 0 {
                Put::Duplicate
            } else {
                Put::New
            });
        }
        let prev: Option<Option<i64>> = self
            .tx
            .prepare_cached(
                "SELECT run_id FROM uses WHERE patron_id = ?1 AND day = ?2 AND kind = ?3",
            )?
            .query_row(params![u.patron, day, kind], |r| r.get(0))
            .optional()?;
        let put = match prev {
            None => Put::New,
            Some(Some(run)) if run == self.run => return Ok(Put::Duplicate),
            Some(_) => Put::Updated,
        };
        self.tx
            .prepare_cached(
                "INSERT INTO uses (patron_id, day, kind, count, run_id) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (patron_id, day, kind) DO UPDATE SET count = excluded.count, run_id = excluded.run_id",
            )?
            .execute(params![u.patron, day, kind, u.count, self.run])?;
        Ok(put)
    }

    fn has_patron(&mut self, id: &str) -> Result<bool> {
        if id == self.last_patron {
            return Ok(true);
        }
        let exists = self
            .tx
            .prepare_cached("SELECT 1 FROM patrons WHERE id = ?1")?
            .exists([id])?;
        if exists {
            self.last_patron = id.to_string();
        }
        Ok(exists)
    }

    fn card_holder(&mut self, card: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT id FROM patrons WHERE card_number = ?1 LIMIT 1")?
            .query_row([card], |r| r.get(0))
            .optional()?)
    }

    fn rekey_patron(&mut self, from: &str, to: &str) -> Result<()> {
        // Children follow their patron; the keys are checked at commit.
        self.tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        self.tx
            .execute("UPDATE patrons SET id = ?2 WHERE id = ?1", [from, to])?;
        for table in PATRON_TABLES {
            self.tx.execute(
                &format!("UPDATE {table} SET patron_id = ?2 WHERE patron_id = ?1"),
                [from, to],
            )?;
        }
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
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM erased_patrons WHERE token = ?1")?
            .exists([token])?)
    }

    fn readmit(&mut self, token: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM erased_patrons WHERE token = ?1", [token])?;
        Ok(())
    }

    fn commit(self: Box<Self>, written: Written, skipped: usize) -> Result<()> {
        self.tx.execute(
            "UPDATE import_runs SET finished_at = ?2, imported = ?3, updated = ?4, skipped = ?5 WHERE id = ?1",
            params![self.run, now(), written.imported, written.updated, skipped],
        )?;
        self.tx.commit()?;
        Ok(())
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store for SqliteStore {
    fn import(&mut self, format: &str) -> Result<Box<dyn ImportTx + '_>> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO import_runs (format, started_at) VALUES (?1, ?2)",
            params![format, now()],
        )?;
        let run = tx.last_insert_rowid();
        let tombstones = tx
            .prepare("SELECT 1 FROM erased_patrons LIMIT 1")?
            .exists([])?;
        let mut fresh = [false; 4];
        for keyed in Keyed::ALL {
            fresh[keyed as usize] = !tx
                .prepare(&format!("SELECT 1 FROM {} LIMIT 1", keyed.table()))?
                .exists([])?;
        }
        Ok(Box::new(SqliteImport {
            tx,
            run,
            last_patron: String::new(),
            tombstones,
            fresh,
        }))
    }

    fn has_patron(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM patrons WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn patrons(&self, as_of: NaiveDate) -> Result<Vec<Patron>> {
        let mut all = Vec::new();
        self.for_each_patron(as_of, 10_000, &mut |batch| {
            all.extend(batch);
            Ok(())
        })?;
        Ok(all)
    }

    fn for_each_patron(
        &self,
        as_of: NaiveDate,
        batch: usize,
        f: &mut dyn FnMut(Vec<Patron>) -> Result<()>,
    ) -> Result<()> {
        let d = as_of.to_string();
        let (visits, eresources) = self.uses_provided()?;
        // Patrons go in ranges of ids, so that memory is bounded by the batch
        // and each range's loans come straight off the (patron_id, date) index.
        let mut after = String::new();
        loop {
            let ids: Vec<String> = self
                .conn
                .prepare_cached("SELECT id FROM patrons WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![after, batch as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let (Some(lo), Some(hi)) = (ids.first(), ids.last()) else {
                return Ok(());
            };
            let chunk = self.summaries(&d, Which::Range(lo, hi), visits, eresources)?;
            after = hi.clone();
            f(chunk)?;
        }
    }

    fn patron_ranges(&self, batch: usize) -> Result<Vec<(String, String)>> {
        let batch = batch.max(1);
        let mut ranges = Vec::new();
        let mut stmt = self.conn.prepare("SELECT id FROM patrons ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let (mut n, mut lo, mut last) = (0usize, None::<String>, String::new());
        while let Some(row) = rows.next()? {
            last = row.get(0)?;
            if lo.is_none() {
                lo = Some(last.clone());
            }
            n += 1;
            if n == batch {
                ranges.push((lo.take().expect("set above"), std::mem::take(&mut last)));
                n = 0;
            }
        }
        if let Some(lo) = lo {
            ranges.push((lo, last));
        }
        Ok(ranges)
    }

    fn patron_reader(&self) -> Result<Box<dyn PatronReader>> {
        let mut handle = SqliteStore::open_at(&self.path)?;
        handle._temporary = self._temporary.clone();
        let uses = handle.uses_provided()?;
        Ok(Box::new(SqliteReader {
            store: handle,
            uses,
        }))
    }

    fn erase_patron(&mut self, id: &str, tombstones: &[String]) -> Result<Erased> {
        let tx = self.conn.transaction()?;
        for tombstone in tombstones {
            tx.execute(
                "INSERT OR REPLACE INTO erased_patrons (token, erased_on) VALUES (?1, date('now'))",
                [tombstone],
            )?;
        }
        let count = |table: &str| -> Result<usize> {
            Ok(tx.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE patron_id = ?1"),
                [id],
                |r| r.get::<_, i64>(0),
            )? as usize)
        };
        let erased = Erased {
            attributes: count("patron_attributes")?,
            loans: count("loans")?,
            holds: count("holds")?,
            uses: count("uses")?,
            scores: count("scores")?,
            messages: count("outbox")?,
            links: count("reader_links")?,
            answers: count("survey_answers")?,
            campaigns: count("campaign_members")?,
            // Events keep no foreign key (one may name a patron not yet
            // imported), so they go by hand.
            events: tx.execute("DELETE FROM inbox WHERE patron_id = ?1", [id])?,
            patrons: tx.execute("DELETE FROM patrons WHERE id = ?1", [id])?,
            files: 0,
        };
        for sql in shared::FORGET_BOUNDARY {
            tx.execute(sql, [id])?;
        }
        // Foreign keys cascade; checked here so that a schema change that
        // forgets one fails loudly instead of leaving data behind.
        for table in PATRON_TABLES {
            anyhow::ensure!(count(table)? == 0, "erasing `{id}` left rows in {table}");
        }
        tx.commit()?;
        // `secure_delete` zeroed the deleted cells in the pages; the old
        // page images still in the write-ahead log go with a checkpoint
        // that truncates it.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .context("the patron was erased, but the write-ahead log still holds old pages")?;
        Ok(erased)
    }

    fn patron(&self, id: &str, as_of: NaiveDate) -> Result<Option<Patron>> {
        let (visits, eresources) = self.uses_provided()?;
        Ok(self
            .summaries(&as_of.to_string(), Which::Range(id, id), visits, eresources)?
            .pop())
    }

    fn patrons_among(&self, ids: &[String], as_of: NaiveDate) -> Result<Vec<Patron>> {
        let (visits, eresources) = self.uses_provided()?;
        let d = as_of.to_string();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(AMONG) {
            let json = serde_json::to_string(chunk)?;
            out.extend(self.summaries(&d, Which::Ids(&json), visits, eresources)?);
        }
        Ok(out)
    }

    fn open_loans(&self, due_by: NaiveDate) -> Result<Vec<super::OpenLoan>> {
        outbox::open_loans(&self.conn, due_by)
    }

    fn holds_waiting(&self) -> Result<Vec<HoldRecord>> {
        outbox::holds_waiting(&self.conn)
    }

    fn holds_queued(&self) -> Result<HashMap<String, u32>> {
        outbox::holds_queued(&self.conn)
    }

    fn memberships_expiring(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, NaiveDate)>> {
        outbox::memberships_expiring(&self.conn, from, to)
    }

    fn readers_of(&self, subjects: &[String], as_of: NaiveDate) -> Result<Vec<(String, String)>> {
        outbox::readers_of(&self.conn, subjects, as_of)
    }

    fn segment_members(&self, scorer: &str, segment: &str) -> Result<Vec<String>> {
        outbox::segment_members(&self.conn, scorer, segment)
    }

    fn awareness_readers(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM patrons WHERE awareness ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    fn preferences(&self, id: &str) -> Result<Option<super::Preferences>> {
        outbox::preferences(&self.conn, id)
    }

    fn set_preferences(&mut self, id: &str, prefs: &super::Preferences) -> Result<usize> {
        outbox::set_preferences(&mut self.conn, id, prefs)
    }
}

impl SqliteStore {
    /// The patrons with ids from `lo` to `hi`, with their summaries as of `d`.
    fn summaries(
        &self,
        d: &str,
        which: Which<'_>,
        visits: bool,
        eresources: bool,
    ) -> Result<Vec<Patron>> {
        // One pass over loans and one over holds, grouped by patron: the
        // indexes on (patron_id, date) serve both.
        let sql = which.sql(
            "WITH l AS (
                SELECT patron_id,
                    SUM(loaned_on > date(?1, '-30 days')) AS l30,
                    SUM(loaned_on > date(?1, '-90 days')) AS l90,
                    SUM(loaned_on > date(?1, '-365 days')) AS l365,
                    SUM(CASE WHEN loaned_on > date(?1, '-365 days') THEN renewals ELSE 0 END) AS renewals,
                    SUM(due_on < ?1 AND (returned_on IS NULL OR returned_on > ?1)) AS overdue,
                    MAX(MAX(loaned_on), COALESCE(MAX(CASE WHEN returned_on <= ?1 THEN returned_on END), '')) AS last
                FROM loans WHERE patron_id {WHO} AND loaned_on <= ?1 GROUP BY patron_id
            ), h AS (
                SELECT patron_id, SUM(placed_on > date(?1, '-365 days')) AS h365, MAX(placed_on) AS last
                FROM holds WHERE patron_id {WHO} AND placed_on <= ?1 GROUP BY patron_id
            ), u AS (
                SELECT patron_id,
                    SUM(CASE WHEN kind = 'visit' AND day > date(?1, '-365 days') THEN count ELSE 0 END) AS v365,
                    SUM(CASE WHEN kind = 'eresource' AND day > date(?1, '-365 days') THEN count ELSE 0 END) AS e365,
                    MAX(day) AS last
                FROM uses WHERE patron_id {WHO} AND day <= ?1 GROUP BY patron_id
            )
            SELECT p.id, p.card_number, p.name, p.email, p.phone, p.birth_date, p.age_band, p.category,
                p.home_branch, p.enrolled_on, p.expires_on, COALESCE(p.pref_locale, p.locale),
                p.channels,
                CASE WHEN p.no_reading_history THEN 0 ELSE p.consent_reading_history END,
                CASE WHEN p.no_marketing THEN 0 ELSE p.consent_marketing END,
                COALESCE(l.l30, 0), COALESCE(l.l90, 0), COALESCE(l.l365, 0), COALESCE(l.renewals, 0),
                COALESCE(h.h365, 0), COALESCE(l.overdue, 0),
                CAST(julianday(?1) - julianday(NULLIF(
                    MAX(COALESCE(l.last, ''), COALESCE(h.last, ''), COALESCE(u.last, '')), '')) AS INTEGER),
                COALESCE(u.v365, 0), COALESCE(u.e365, 0), p.address
            FROM patrons p
            LEFT JOIN l ON l.patron_id = p.id
            LEFT JOIN h ON h.patron_id = p.id
            LEFT JOIN u ON u.patron_id = p.id
            WHERE p.id {WHO}
            ORDER BY p.id",
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut patrons = stmt
            .query_map(which.params(&d).as_slice(), |r| {
                let channels: Option<String> = r.get(12)?;
                let consent = |a: Option<bool>, b: Option<bool>| match (a, b) {
                    (None, None) => None,
                    (a, b) => Some(Consents {
                        reading_history: a.unwrap_or(false),
                        marketing: b.unwrap_or(false),
                    }),
                };
                Ok(Patron {
                    id: r.get(0)?,
                    card_number: r.get(1)?,
                    name: r.get(2)?,
                    email: r.get(3)?,
                    phone: r.get(4)?,
                    birth_date: parse_date(r.get(5)?),
                    age_band: r.get(6)?,
                    category: r.get(7)?,
                    home_branch: r.get(8)?,
                    enrolled_on: parse_date(r.get(9)?),
                    expires_on: parse_date(r.get(10)?),
                    locale: r.get(11)?,
                    channels: channels.and_then(|c| serde_json::from_str::<Vec<Channel>>(&c).ok()),
                    consents: consent(r.get(13)?, r.get(14)?),
                    activity: Some(Activity {
                        loans_30d: r.get(15)?,
                        loans_90d: r.get(16)?,
                        loans_365d: r.get(17)?,
                        renewals_365d: r.get(18)?,
                        holds_365d: r.get(19)?,
                        overdue_now: r.get(20)?,
                        days_since_last_activity: r
                            .get::<_, Option<i64>>(21)?
                            .map(|n| n.max(0) as u32),
                        visits_365d: visits.then(|| r.get(22)).transpose()?,
                        eresource_sessions_365d: eresources.then(|| r.get(23)).transpose()?,
                    }),
                    address: r
                        .get::<_, Option<String>>(24)?
                        .and_then(|a| serde_json::from_str(&a).ok()),
                    attributes: None,
                    interests: None,
                    segments: None,
                })
            })?
            .collect::<rusqlite::Result<Vec<Patron>>>()?;

        let index: HashMap<String, usize> = patrons
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        // Each map field comes from one query of (patron id, key, value)
        // rows over the range.
        let conn = &self.conn;
        fill_maps(
            conn,
            &which.sql(
                "SELECT patron_id, key, value FROM patron_attributes \
                 WHERE patron_id {WHO} AND ?1 IS NOT NULL",
            ),
            &which.params(&d),
            &index,
            &mut patrons,
            |p| &mut p.attributes,
        )?;
        fill_maps(
            conn,
            &which.sql(
                "SELECT s.patron_id, r.plugin, s.segment FROM scores s
             JOIN (SELECT plugin, MAX(id) AS id FROM score_runs WHERE complete = 1 GROUP BY plugin) r ON r.id = s.run_id
             WHERE s.patron_id {WHO} AND ?1 IS NOT NULL",
            ),
            &which.params(&d),
            &index,
            &mut patrons,
            |p| &mut p.segments,
        )?;
        fill_maps(
            conn,
            &which.sql(
                "SELECT patron_id, subject, COUNT(*) FROM loans
                 WHERE patron_id {WHO} AND subject IS NOT NULL
                    AND loaned_on <= ?1 AND loaned_on > date(?1, '-365 days')
                 GROUP BY patron_id, subject",
            ),
            &which.params(&d),
            &index,
            &mut patrons,
            |p| &mut p.interests,
        )?;
        Ok(patrons)
    }
}

/// How many ids one statement of [`Store::patrons_among`] reads.
const AMONG: usize = 500;

/// Which patrons a summary query reads: `?1` is always the date, and
/// `{WHO}` in the SQL becomes the condition on a patron id.
#[derive(Clone, Copy)]
enum Which<'a> {
    /// Ids from the first to the second, both included.
    Range(&'a str, &'a str),
    /// The ids in a JSON array: a set of patrons read in one statement
    /// instead of one statement each.
    Ids(&'a str),
}

impl Which<'_> {
    fn sql(&self, template: &str) -> String {
        template.replace(
            "{WHO}",
            match self {
                Which::Range(..) => "BETWEEN ?2 AND ?3",
                Which::Ids(_) => "IN (SELECT value FROM json_each(?2))",
            },
        )
    }

    fn params<'p>(&'p self, d: &'p &'p str) -> Vec<&'p dyn rusqlite::ToSql> {
        match self {
            Which::Range(lo, hi) => vec![d, lo, hi],
            Which::Ids(json) => vec![d, json],
        }
    }
}

/// Runs `sql`, whose rows are (patron id, key, value), and inserts each
/// into the map `field` of that patron among `patrons`.
fn fill_maps<V: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    index: &HashMap<String, usize>,
    patrons: &mut [Patron],
    field: fn(&mut Patron) -> &mut Option<BTreeMap<String, V>>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        if let Some(&i) = index.get(&id) {
            field(&mut patrons[i])
                .get_or_insert_with(BTreeMap::new)
                .insert(r.get(1)?, r.get(2)?);
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Whether the library counts visits, and e-resource sessions. One that
    /// counts them counts them for everyone: zero is then a fact, not a gap.
    fn uses_provided(&self) -> Result<(bool, bool)> {
        let provided = |kind: &str| -> Result<bool> {
            Ok(self
                .conn
                .prepare_cached("SELECT 1 FROM uses WHERE kind = ?1 LIMIT 1")?
                .exists([kind])?)
        };
        Ok((provided("visit")?, provided("eresource")?))
    }
}

const AUDIT_COLUMNS: &str = "seq, at, actor_kind, actor, purpose, fields, patrons, link";

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get::<_, i64>(0)? as u64,
        at: r.get(1)?,
        actor_kind: r.get(2)?,
        actor: r.get(3)?,
        purpose: r.get(4)?,
        fields: r.get(5)?,
        patrons: r.get(6)?,
        link: r.get(7)?,
    })
}

fn audit_anchor(conn: &Connection) -> Result<Option<AuditAnchor>> {
    Ok(conn
        .query_row(
            "SELECT entries, mac, base_seq, base_link FROM audit_anchor WHERE id = 1",
            [],
            |r| {
                Ok(AuditAnchor {
                    entries: r.get::<_, i64>(0)? as u64,
                    mac: r.get(1)?,
                    base_seq: r.get::<_, i64>(2)? as u64,
                    base_link: r.get(3)?,
                })
            },
        )
        .optional()?)
}

fn last_audit_row(conn: &Connection) -> Result<Option<(u64, String)>> {
    Ok(conn
        .query_row(
            "SELECT seq, link FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?)
}

fn write_anchor(conn: &Connection, a: &AuditAnchor) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_anchor (id, entries, mac, base_seq, base_link) VALUES (1, ?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET entries = excluded.entries, mac = excluded.mac, \
         base_seq = excluded.base_seq, base_link = excluded.base_link",
        params![a.entries as i64, a.mac, a.base_seq as i64, a.base_link],
    )?;
    Ok(())
}

impl AuditStore for SqliteStore {
    fn append_audit(
        &mut self,
        next: &mut dyn FnMut(&AuditHead) -> (AuditRow, AuditAnchor),
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head = AuditHead {
            anchor: audit_anchor(&tx)?,
            last: last_audit_row(&tx)?,
        };
        let (row, anchor) = next(&head);
        tx.execute(
            &format!(
                "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                row.seq as i64,
                row.at,
                row.actor_kind,
                row.actor,
                row.purpose,
                row.fields,
                row.patrons,
                row.link
            ],
        )?;
        write_anchor(&tx, &anchor)?;
        tx.commit()?;
        Ok(())
    }

    fn read_audit(
        &self,
        each: &mut dyn FnMut(AuditRow) -> Result<()>,
    ) -> Result<Option<AuditAnchor>> {
        let tx = read_snapshot(&self.conn)?;
        let anchor = audit_anchor(&tx)?;
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                each(audit_row(r)?)?;
            }
        }
        tx.commit()?;
        Ok(anchor)
    }

    fn audit_link(&self, seq: u64) -> Result<Option<String>> {
        let row: Option<String> = self
            .conn
            .query_row(
                "SELECT link FROM audit_log WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()?;
        if row.is_some() {
            return Ok(row);
        }
        let tx = read_snapshot(&self.conn)?;
        let anchor = audit_anchor(&tx)?;
        Ok(anchor
            .filter(|a| a.base_seq == seq && seq > 0)
            .map(|a| a.base_link))
    }

    fn key_fingerprint(&self) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'key-fingerprint'",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_key_fingerprint(&mut self, fingerprint: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('key-fingerprint', ?1)",
            [fingerprint],
        )?;
        Ok(())
    }

    fn audit_rows_naming(&self, tokens: &[String]) -> Result<Vec<AuditRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log \
             WHERE ',' || patrons || ',' LIKE '%,' || ?1 || ',%' ORDER BY seq"
        ))?;
        let mut out = Vec::new();
        for token in tokens {
            for row in stmt.query_map([token], audit_row)? {
                out.push(row?);
            }
        }
        out.sort_by_key(|r| r.seq);
        out.dedup_by_key(|r| r.seq);
        Ok(out)
    }
}

impl Records for SqliteStore {
    fn patron_data(&self, id: &str, as_of: NaiveDate) -> Result<Option<PatronData>> {
        let tx = read_snapshot(&self.conn)?;
        let Some(patron) = self.patron(id, as_of)? else {
            return Ok(None);
        };
        let (active, source): (bool, String) = tx.query_row(
            "SELECT active, source FROM patrons WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let preferences = self.preferences(id)?.unwrap_or_default();
        let loans = tx
            .prepare(
                "SELECT id, item_id, title, subject, loaned_on, due_on, returned_on, renewals \
                 FROM loans WHERE patron_id = ?1 ORDER BY loaned_on, id",
            )?
            .query_map([id], |r| {
                Ok(LoanRecord {
                    id: r.get(0)?,
                    patron: id.to_string(),
                    item: r.get(1)?,
                    title: r.get(2)?,
                    subject: r.get(3)?,
                    loaned_on: parse_date(r.get(4)?).unwrap_or_default(),
                    due_on: parse_date(r.get(5)?),
                    returned_on: parse_date(r.get(6)?),
                    renewals: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let holds = tx
            .prepare(
                "SELECT id, title, placed_on, status, pickup_branch, expires_on \
                 FROM holds WHERE patron_id = ?1 ORDER BY placed_on, id",
            )?
            .query_map([id], |r| {
                Ok(HoldRecord {
                    id: r.get(0)?,
                    patron: id.to_string(),
                    title: r.get(1)?,
                    placed_on: parse_date(r.get(2)?).unwrap_or_default(),
                    status: r.get(3)?,
                    pickup_branch: r.get(4)?,
                    expires_on: parse_date(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let uses = tx
            .prepare("SELECT day, kind, count FROM uses WHERE patron_id = ?1 ORDER BY day, kind")?
            .query_map([id], |r| {
                let kind: String = r.get(1)?;
                Ok(UseRecord {
                    patron: id.to_string(),
                    on: parse_date(r.get(0)?).unwrap_or_default(),
                    kind: if kind == "visit" {
                        UseKind::Visit
                    } else {
                        UseKind::Eresource
                    },
                    count: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let scores = tx
            .prepare(
                "SELECT r.id, r.plugin, r.version, r.as_of, s.value, s.segment, s.reasons, r.fields \
                 FROM scores s JOIN score_runs r ON r.id = s.run_id WHERE s.patron_id = ?1 AND r.complete = 1 ORDER BY r.id",
            )?
            .query_map([id], |r| {
                let reasons: String = r.get(6)?;
                Ok(StoredScore {
                    run: r.get(0)?,
                    scorer: ScoreRun {
                        plugin: r.get(1)?,
                        version: r.get(2)?,
                        as_of: parse_date(r.get(3)?).unwrap_or_default(),
                        fields: fields_of(r.get(7)?),
                    },
                    value: r.get(4)?,
                    segment: r.get(5)?,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let messages = tx
            .prepare(
                "SELECT event_kind, channel, locale, subject, body, state, attempts, last_error, day \
                 FROM outbox WHERE patron_id = ?1 ORDER BY id",
            )?
            .query_map([id], |r| {
                let state: String = r.get(5)?;
                Ok(StoredMessage {
                    event_kind: r.get(0)?,
                    channel: r.get(1)?,
                    locale: r.get(2)?,
                    subject: r.get(3)?,
                    body: r.get(4)?,
                    state: state.parse().unwrap_or(MessageState::Failed),
                    attempts: r.get(6)?,
                    last_error: r.get(7)?,
                    day: parse_date(r.get(8)?).unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        Ok(Some(PatronData {
            patron,
            active,
            source,
            preferences,
            loans,
            holds,
            uses,
            scores,
            messages,
        }))
    }

    fn traces_of(&self, id: &str) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for table in self.tables()? {
            if self.rows_mentioning(&table, id)? > 0 {
                found.push(table);
            }
        }
        Ok(found)
    }

    fn patron_count(&self) -> Result<usize> {
        self.count("patrons")
    }

    fn apply_retention(
        &mut self,
        as_of: NaiveDate,
        retention: &Retention,
        reanchor: &Reanchor<'_>,
    ) -> Result<Retained> {
        let cutoff = |days: u32| {
            as_of
                .checked_sub_days(chrono::Days::new(days.into()))
                .unwrap_or(as_of)
                .to_string()
        };
        let tx = self.conn.transaction()?;
        let loans = cutoff(retention.loan_history);
        // Evergreen's aged circulation: keep what statistics need, nothing
        // that leads back to the patron.
        let loans_aged = tx.execute(
            "INSERT INTO aged_loans (loaned_month, subject, category, home_branch, birth_decade, renewals) \
             SELECT substr(l.loaned_on, 1, 7), l.subject, p.category, p.home_branch, \
                CASE WHEN p.birth_date IS NULL THEN NULL ELSE substr(p.birth_date, 1, 3) || '0s' END, \
                l.renewals \
             FROM loans l JOIN patrons p ON p.id = l.patron_id \
             WHERE l.returned_on IS NOT NULL AND l.returned_on < ?1",
            [&loans],
        )?;
        tx.execute(
            "DELETE FROM loans WHERE returned_on IS NOT NULL AND returned_on < ?1",
            [&loans],
        )?;
        // Only closed holds: an open one is a reader still waiting, however
        // long ago it was placed. Closed is FOLIO's `Closed - ...`, or a
        // plain final state; an unknown status is kept.
        let holds_removed = tx.execute(
            "DELETE FROM holds WHERE placed_on < ?1 AND (lower(status) LIKE 'closed%' \
             OR lower(status) IN ('cancelled', 'canceled', 'filled', 'fulfilled', 'expired'))",
            [cutoff(retention.holds)],
        )?;
        let uses_removed =
            tx.execute("DELETE FROM uses WHERE day < ?1", [cutoff(retention.uses)])?;
        let runs_removed = tx.execute(
            "DELETE FROM score_runs WHERE as_of < ?1",
            [cutoff(retention.scores)],
        )?;
        let messages_removed = tx.execute(
            "DELETE FROM outbox WHERE state IN ('sent', 'failed', 'cancelled') AND day < ?1",
            [cutoff(retention.messages)],
        )?;
        // Processed events go with the messages they caused; an event not
        // yet processed stays, however old.
        let events_removed = tx.execute(
            "DELETE FROM inbox WHERE processed_at IS NOT NULL AND substr(received_at, 1, 10) < ?1",
            [cutoff(retention.messages)],
        )?;
        let answers_removed = tx.execute(
            "DELETE FROM survey_answers WHERE answered_on < ?1",
            [cutoff(retention.survey_answers)],
        )?;
        // A used survey link is what says the reader answered: it stays as
        // long as answers do. Every other link goes when it has expired.
        let links_removed = tx.execute(
            "DELETE FROM reader_links WHERE substr(expires_at, 1, 10) < ?1 \
             AND NOT (purpose LIKE 'survey:%' AND used_at IS NOT NULL)",
            [cutoff(retention.messages)],
        )? + tx.execute(
            "DELETE FROM reader_links WHERE purpose LIKE 'survey:%' AND used_at IS NOT NULL \
             AND substr(used_at, 1, 10) < ?1",
            [cutoff(retention.survey_answers)],
        )?;
        // The job history holds no patron; it goes with the messages.
        tx.execute(
            "DELETE FROM job_runs WHERE substr(started_at, 1, 10) < ?1",
            [cutoff(retention.messages)],
        )?;
        // The audit chain goes on after the last removed entry, whose link
        // becomes the anchor's base.
        let last_removed: Option<(u64, String)> = tx
            .query_row(
                "SELECT seq, link FROM audit_log WHERE at < ?1 ORDER BY seq DESC LIMIT 1",
                [cutoff(retention.audit_log)],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?;
        let mut audit_removed = 0;
        if let Some(removed) = last_removed {
            audit_removed =
                tx.execute("DELETE FROM audit_log WHERE seq <= ?1", [removed.0 as i64])?;
            let head = last_audit_row(&tx)?;
            write_anchor(&tx, &reanchor(removed, head))?;
        }
        tx.commit()?;
        Ok(Retained {
            loans_aged,
            holds_removed,
            uses_removed,
            runs_removed,
            messages_removed,
            events_removed,
            audit_removed,
            answers_removed,
            links_removed,
        })
    }
}

/// Creates the store's file, if it is not there, readable by its owner
/// only; SQLite gives its WAL and shared-memory files the same mode.
fn create_private(path: &Path) -> Result<()> {
    if path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("failed to create the store {}", path.display())),
    }
}

fn stored_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRun> {
    Ok(StoredRun {
        id: r.get(0)?,
        run: ScoreRun {
            plugin: r.get(1)?,
            version: r.get(2)?,
            as_of: parse_date(r.get(3)?).unwrap_or_default(),
            fields: fields_of(r.get(5)?),
        },
        patrons: r.get::<_, i64>(4)? as usize,
    })
}

impl Runs for SqliteStore {
    fn begin_run(&self, run: &ScoreRun) -> Result<Box<dyn RunWriter>> {
        let mut handle = SqliteStore::open_at(&self.path)?;
        handle._temporary = self._temporary.clone();
        // Runs begun over a day ago and never finished are a killed
        // process's: no reader sees them, and they go now.
        let stale = (chrono::Utc::now() - chrono::Days::new(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        handle.conn.execute(
            "DELETE FROM score_runs WHERE complete = 0 AND finished_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM run_ranges WHERE run_id = score_runs.id)",
            [stale],
        )?;
        handle.conn.execute(
            "INSERT INTO score_runs (plugin, version, as_of, finished_at, patrons, fields, complete) \
             VALUES (?1, ?2, ?3, ?4, 0, ?5, 0)",
            params![
                run.plugin,
                run.version,
                run.as_of.to_string(),
                now(),
                run.fields.as_ref().map(|f| fields_text(f))
            ],
        )?;
        let id = handle.conn.last_insert_rowid();
        Ok(Box::new(SqliteRun {
            store: handle,
            id,
            patrons: 0,
            committed: false,
        }))
    }

    fn runs(&self) -> Result<Vec<StoredRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, plugin, version, as_of, patrons, fields FROM score_runs WHERE complete = 1 \
             ORDER BY id DESC",
        )?;
        let runs = stmt
            .query_map([], stored_run)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(runs)
    }

    fn latest_runs(&self, scorer: &str, n: usize) -> Result<Vec<StoredRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, plugin, version, as_of, patrons, fields FROM score_runs WHERE plugin = ?1 \
             AND complete = 1 ORDER BY id DESC LIMIT ?2",
        )?;
        let runs = stmt
            .query_map(params![scorer, n as i64], stored_run)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(runs)
    }

    fn run_scores(&self, id: i64) -> Result<Vec<RunScore>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.patron_id, s.value, s.segment, s.reasons, p.category, p.home_branch \
             FROM scores s JOIN patrons p ON p.id = s.patron_id WHERE s.run_id = ?1 \
             ORDER BY s.value DESC, s.patron_id",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                let reasons: String = r.get(3)?;
                Ok(RunScore {
                    patron: r.get(0)?,
                    value: r.get(1)?,
                    segment: r.get(2)?,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                    category: r.get(4)?,
                    home_branch: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

impl Backend for SqliteStore {
    fn audit_handle(&self) -> Result<Box<dyn AuditStore>> {
        let mut handle = SqliteStore::open_at(&self.path)?;
        handle._temporary = self._temporary.clone();
        // It appends to the end of one table: a small cache is all it uses.
        handle
            .conn
            .pragma_update(None, "cache_size", -AUDIT_CACHE_KIB)?;
        Ok(Box::new(handle))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// A run being written on a connection of its own, a batch per transaction,
/// invisible until it is committed.
struct SqliteRun {
    store: SqliteStore,
    id: i64,
    patrons: usize,
    committed: bool,
}

impl RunWriter for SqliteRun {
    fn append(&mut self, scores: &[Scored]) -> Result<()> {
        let tx = self.store.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO scores (run_id, patron_id, value, segment, reasons) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in scores {
                insert
                    .execute(params![
                        self.id,
                        s.patron,
                        s.value,
                        s.segment,
                        serde_json::to_string(&s.reasons)?
                    ])
                    .with_context(|| {
                        format!("failed to store the score of patron `{}`", s.patron)
                    })?;
            }
        }
        tx.commit()?;
        self.patrons += scores.len();
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<i64> {
        self.store.conn.execute(
            "UPDATE score_runs SET complete = 1, patrons = ?2, finished_at = ?3 WHERE id = ?1",
            params![self.id, self.patrons as i64, now()],
        )?;
        self.committed = true;
        Ok(self.id)
    }
}

impl Drop for SqliteRun {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a run left behind is invisible, and a later run
            // removes it.
            let _ = self
                .store
                .conn
                .execute("DELETE FROM score_runs WHERE id = ?1", [self.id]);
        }
    }
}

/// Reads patrons on a connection of its own.
struct SqliteReader {
    store: SqliteStore,
    /// Whether the library counts visits and e-resource sessions.
    uses: (bool, bool),
}

impl PatronReader for SqliteReader {
    fn patrons_between(&self, lo: &str, hi: &str, as_of: NaiveDate) -> Result<Vec<Patron>> {
        let (visits, eresources) = self.uses;
        self.store
            .summaries(&as_of.to_string(), Which::Range(lo, hi), visits, eresources)
    }
}
