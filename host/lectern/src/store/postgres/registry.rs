//! The registry of installed plugins in PostgreSQL.

use anyhow::Result;
use chrono::{DateTime, Utc};
use postgres::{Row, Transaction};

use super::PgStore;
use crate::store::registry::{InstalledPlugin, Registry, TrustedKey};
use crate::store::rows::{decode_plugin as decode, time};

const COLUMNS: &str = "id, version, world, digest, component_sha256, signer, enabled, fields, \
                       events, config, source, installed_at";

/// The first key of the advisory lock ("regi" in ASCII) that holds the
/// installs and removals of one library (the second key, its schema's
/// hash) to one at a time: so that one never drops, as unused, a package
/// that another is installing a plugin from.
const REGISTRY_LOCK: i32 = 0x7265_6769;

fn installed_row(r: &Row) -> Result<(InstalledPlugin, [String; 4])> {
    Ok((
        InstalledPlugin {
            id: r.try_get(0)?,
            version: r.try_get(1)?,
            world: r.try_get(2)?,
            digest: r.try_get(3)?,
            component_sha256: r.try_get(4)?,
            signer: r.try_get(5)?,
            enabled: r.try_get(6)?,
            fields: Vec::new(),
            events: None,
            config: Default::default(),
            source: r.try_get(10)?,
            installed_at: DateTime::<Utc>::MIN_UTC,
        },
        [r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(11)?],
    ))
}

impl Registry for PgStore {
    fn installed(&self) -> Result<Vec<InstalledPlugin>> {
        let rows = self
            .db()
            .query(&format!("SELECT {COLUMNS} FROM plugins ORDER BY id"), &[])?;
        rows.iter().map(|r| decode(installed_row(r)?)).collect()
    }

    fn installed_plugin(&self, id: &str) -> Result<Option<InstalledPlugin>> {
        let row = self.db().query_opt(
            &format!("SELECT {COLUMNS} FROM plugins WHERE id = $1"),
            &[&id],
        )?;
        row.as_ref().map(|r| decode(installed_row(r)?)).transpose()
    }

    fn package(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = self.db().query_opt(
            "SELECT bytes FROM plugin_packages WHERE digest = $1",
            &[&digest],
        )?;
        Ok(row.map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()?)
    }

    fn put_installed(&mut self, p: &InstalledPlugin, package: &[u8]) -> Result<()> {
        let mut db = self.db();
        let mut tx = db.transaction()?;
        lock_registry(&mut tx)?;
        tx.execute(
            "INSERT INTO plugin_packages (digest, bytes) VALUES ($1, $2) \
             ON CONFLICT (digest) DO NOTHING",
            &[&p.digest, &package],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO plugins ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 $8, $9, $10, $11, $12) \
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, \
                 world = excluded.world, digest = excluded.digest, \
                 component_sha256 = excluded.component_sha256, signer = excluded.signer, \
                 enabled = excluded.enabled, fields = excluded.fields, \
                 events = excluded.events, config = excluded.config, \
                 source = excluded.source, installed_at = excluded.installed_at"
            ),
            &[
                &p.id,
                &p.version,
                &p.world,
                &p.digest,
                &p.component_sha256,
                &p.signer,
                &p.enabled,
                &serde_json::to_string(&p.fields)?,
                &serde_json::to_string(&p.events)?,
                &serde_json::to_string(&p.config)?,
                &p.source,
                &p.installed_at.to_rfc3339(),
            ],
        )?;
        drop_unused_packages(&mut tx)?;
        tx.commit()?;
        Ok(())
    }

    fn remove_installed(&mut self, id: &str) -> Result<bool> {
        let mut db = self.db();
        let mut tx = db.transaction()?;
        lock_registry(&mut tx)?;
        let removed = tx.execute("DELETE FROM plugins WHERE id = $1", &[&id])? > 0;
        drop_unused_packages(&mut tx)?;
        tx.commit()?;
        Ok(removed)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        let row = self
            .db()
            .query_opt("SELECT value FROM library_settings WHERE key = $1", &[&key])?;
        Ok(row.map(|r| r.try_get::<_, String>(0)).transpose()?)
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.db().execute(
                "INSERT INTO library_settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &v],
            )?,
            None => self
                .db()
                .execute("DELETE FROM library_settings WHERE key = $1", &[&key])?,
        };
        Ok(())
    }

    fn trusted_keys(&self) -> Result<Vec<TrustedKey>> {
        let rows = self.db().query(
            "SELECT key_id, name, public_key, added_at FROM trusted_keys ORDER BY key_id",
            &[],
        )?;
        rows.iter()
            .map(|r| -> Result<TrustedKey> {
                let at: String = r.try_get(3)?;
                Ok(TrustedKey {
                    key_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    public_key: r.try_get(2)?,
                    added_at: time(&at)?,
                })
            })
            .collect()
    }

    fn trust_key(&mut self, k: &TrustedKey) -> Result<bool> {
        Ok(self.db().execute(
            "INSERT INTO trusted_keys (key_id, name, public_key, added_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING",
            &[&k.key_id, &k.name, &k.public_key, &k.added_at.to_rfc3339()],
        )? > 0)
    }

    fn distrust_key(&mut self, key_id: &str) -> Result<bool> {
        Ok(self
            .db()
            .execute("DELETE FROM trusted_keys WHERE key_id = $1", &[&key_id])?
            > 0)
    }
}

/// Holds other installs and removals in this library back until `tx`
/// ends.
fn lock_registry(tx: &mut Transaction<'_>) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1::integer, hashtext(current_schema()))",
        &[&REGISTRY_LOCK],
    )?;
    Ok(())
}

fn drop_unused_packages(tx: &mut Transaction<'_>) -> Result<()> {
    tx.execute(
        "DELETE FROM plugin_packages WHERE digest NOT IN (SELECT digest FROM plugins)",
        &[],
    )?;
    Ok(())
}
