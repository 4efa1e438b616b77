//! The registry of installed plugins in SQLite.

use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::registry::{InstalledPlugin, Registry, TrustedKey};
use crate::store::rows::{decode_plugin as decode, time};

const COLUMNS: &str = "id, version, world, digest, component_sha256, signer, enabled, fields, \
                       events, config, source, installed_at";

fn installed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(InstalledPlugin, [String; 4])> {
    Ok((
        InstalledPlugin {
            id: r.get(0)?,
            version: r.get(1)?,
            world: r.get(2)?,
            digest: r.get(3)?,
            component_sha256: r.get(4)?,
            signer: r.get(5)?,
            enabled: r.get(6)?,
            fields: Vec::new(),
            events: None,
            config: Default::default(),
            source: r.get(10)?,
            installed_at: DateTime::<Utc>::MIN_UTC,
        },
        [r.get(7)?, r.get(8)?, r.get(9)?, r.get(11)?],
    ))
}

impl Registry for SqliteStore {
    fn installed(&self) -> Result<Vec<InstalledPlugin>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM plugins ORDER BY id"))?;
        let rows = stmt.query_map([], installed_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    fn installed_plugin(&self, id: &str) -> Result<Option<InstalledPlugin>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM plugins WHERE id = ?1"),
                [id],
                installed_row,
            )
            .optional()?
            .map(decode)
            .transpose()
    }

    fn package(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bytes FROM plugin_packages WHERE digest = ?1",
                [digest],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_installed(&mut self, p: &InstalledPlugin, package: &[u8]) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO plugin_packages (digest, bytes) VALUES (?1, ?2)",
            params![p.digest, package],
        )?;
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO plugins ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                 ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                p.id,
                p.version,
                p.world,
                p.digest,
                p.component_sha256,
                p.signer,
                p.enabled,
                serde_json::to_string(&p.fields)?,
                serde_json::to_string(&p.events)?,
                serde_json::to_string(&p.config)?,
                p.source,
                p.installed_at.to_rfc3339(),
            ],
        )?;
        drop_unused_packages(&tx)?;
        tx.commit()?;
        Ok(())
    }

    fn remove_installed(&mut self, id: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let removed = tx.execute("DELETE FROM plugins WHERE id = ?1", [id])? > 0;
        drop_unused_packages(&tx)?;
        tx.commit()?;
        Ok(removed)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM library_settings WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT OR REPLACE INTO library_settings (key, value) VALUES (?1, ?2)",
                [key, v],
            )?,
            None => self
                .conn
                .execute("DELETE FROM library_settings WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    fn trusted_keys(&self) -> Result<Vec<TrustedKey>> {
        let mut stmt = self.conn.prepare(
            "SELECT key_id, name, public_key, added_at FROM trusted_keys ORDER BY key_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                TrustedKey {
                    key_id: r.get(0)?,
                    name: r.get(1)?,
                    public_key: r.get(2)?,
                    added_at: DateTime::<Utc>::MIN_UTC,
                },
                r.get::<_, String>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (mut k, at) = r?;
            k.added_at = time(&at)?;
            Ok(k)
        })
        .collect()
    }

    fn trust_key(&mut self, k: &TrustedKey) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO trusted_keys (key_id, name, public_key, added_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![k.key_id, k.name, k.public_key, k.added_at.to_rfc3339()],
        )? > 0)
    }

    fn distrust_key(&mut self, key_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM trusted_keys WHERE key_id = ?1", [key_id])?
            > 0)
    }
}

fn drop_unused_packages(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute(
        "DELETE FROM plugin_packages WHERE digest NOT IN (SELECT digest FROM plugins)",
        [],
    )?;
    Ok(())
}
