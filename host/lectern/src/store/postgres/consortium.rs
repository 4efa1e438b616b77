//! A consortium's tables in PostgreSQL: a schema of their own beside the
//! member libraries' schemas, holding members, published counts and the
//! consortium's staff accounts. Nothing here names a patron.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use super::{PgStore, Schema, Target, migrate_schema};
use crate::store::rows::time;
use crate::store::{ConsortiumStore, Published, StaffAccount, StaffStore};

/// The consortium's schema, one migration per entry.
pub(super) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE members (
    library TEXT COLLATE "C" PRIMARY KEY,
    joined_at TEXT NOT NULL
);
CREATE TABLE published (
    library TEXT COLLATE "C" NOT NULL REFERENCES members (library) ON DELETE CASCADE,
    scorer TEXT NOT NULL,
    version TEXT NOT NULL,
    run BIGINT NOT NULL,
    as_of TEXT NOT NULL,
    published_at TEXT NOT NULL,
    segment TEXT COLLATE "C" NOT NULL,
    patrons BIGINT NOT NULL CHECK (patrons >= 0),
    PRIMARY KEY (library, scorer, segment)
);
CREATE TABLE staff (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
"#];

/// The consortium's schema, through a store handle on it: the staff
/// accounts are kept as a library keeps its own.
pub(crate) struct PgConsortium(PgStore);

impl PgConsortium {
    /// Connects to the consortium `target` names, making its schema if it
    /// is not there and bringing it up to date.
    pub(super) fn connect(target: Arc<Target>) -> Result<PgConsortium> {
        let mut client = target.client()?;
        migrate_schema(&mut client, &target.schema, Schema::Consortium).with_context(|| {
            format!(
                "failed to prepare the consortium `{}` in {}",
                target.schema, target.shown
            )
        })?;
        drop(client);
        Ok(PgConsortium(PgStore::connect(target, false)?))
    }
}

impl StaffStore for PgConsortium {
    fn add_staff(&mut self, account: &StaffAccount, token_sha256: &str) -> Result<bool> {
        self.0.add_staff(account, token_sha256)
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        self.0.staff_accounts()
    }

    fn staff_by_key(&self, key_id: &str) -> Result<Option<(StaffAccount, String)>> {
        self.0.staff_by_key(key_id)
    }

    fn revoke_staff(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool> {
        self.0.revoke_staff(name, at)
    }
}

impl ConsortiumStore for PgConsortium {
    fn join(&mut self, library: &str, at: DateTime<Utc>) -> Result<bool> {
        let added = self.0.db().execute(
            "INSERT INTO members (library, joined_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&library, &at.to_rfc3339()],
        )?;
        Ok(added > 0)
    }

    fn leave(&mut self, library: &str) -> Result<bool> {
        let removed = self
            .0
            .db()
            .execute("DELETE FROM members WHERE library = $1", &[&library])?;
        Ok(removed > 0)
    }

    fn members(&self) -> Result<Vec<String>> {
        let rows = self
            .0
            .db()
            .query("SELECT library FROM members ORDER BY library", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn publish(&mut self, p: &Published) -> Result<()> {
        let mut db = self.0.db();
        let mut tx = db.transaction()?;
        // The member's row, locked: a library that leaves meanwhile waits,
        // or is found gone.
        let member = tx.query_opt(
            "SELECT 1 FROM members WHERE library = $1 FOR UPDATE",
            &[&p.library],
        )?;
        anyhow::ensure!(
            member.is_some(),
            "the library `{}` is not a member of the consortium; join it first",
            p.library
        );
        tx.execute(
            "DELETE FROM published WHERE library = $1 AND scorer = $2",
            &[&p.library, &p.scorer],
        )?;
        let insert = tx.prepare(
            "INSERT INTO published (library, scorer, version, run, as_of, published_at, \
             segment, patrons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        let as_of = p.as_of.to_string();
        let at = p.published_at.to_rfc3339();
        for (segment, n) in &p.counts {
            let n = i64::try_from(*n).context("a count too large to store")?;
            tx.execute(
                &insert,
                &[
                    &p.library, &p.scorer, &p.version, &p.run, &as_of, &at, segment, &n,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn published(&self, scorer: &str) -> Result<Vec<Published>> {
        let rows = self.0.db().query(
            "SELECT library, version, run, as_of, published_at, segment, patrons \
             FROM published WHERE scorer = $1 ORDER BY library, segment",
            &[&scorer],
        )?;
        let mut out: Vec<Published> = Vec::new();
        for r in &rows {
            let library: String = r.try_get(0)?;
            let segment: String = r.try_get(5)?;
            let n: i64 = r.try_get(6)?;
            let n = usize::try_from(n).context("a published count is negative")?;
            match out.last_mut() {
                Some(p) if p.library == library => p.counts.push((segment, n)),
                _ => out.push(Published {
                    library,
                    scorer: scorer.to_string(),
                    version: r.try_get(1)?,
                    run: r.try_get(2)?,
                    as_of: r
                        .try_get::<_, String>(3)?
                        .parse()
                        .context("a published as-of date is damaged")?,
                    published_at: time(&r.try_get::<_, String>(4)?)?,
                    counts: vec![(segment, n)],
                }),
            }
        }
        Ok(out)
    }
}
