//! Reader links and survey answers in SQLite.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, parse_date};
use crate::store::readers::{ReaderLink, Readers, SurveyAnswers};
use crate::store::rows::{decode_answer as answer_decode, time};

const ANSWER_COLUMNS: &str =
    "survey, patron_id, category, segment, locale, answered_on, use_for_service, answers";

fn answer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<Option<String>>, bool)> {
    Ok((
        vec![
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(7)?,
        ],
        r.get(6)?,
    ))
}

impl SqliteStore {
    fn answers_where(&self, clause: &str, value: &str) -> Result<Vec<SurveyAnswers>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ANSWER_COLUMNS} FROM survey_answers WHERE {clause} = ?1 \
             ORDER BY answered_on, id"
        ))?;
        let rows = stmt.query_map([value], answer_row)?;
        rows.map(|r| answer_decode(r?)).collect()
    }
}

impl Readers for SqliteStore {
    fn add_link(&mut self, l: &ReaderLink) -> Result<bool> {
        let added = self.conn.execute(
            "INSERT INTO reader_links (id, patron_id, purpose, expires_at, used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            params![
                l.id,
                l.patron,
                l.purpose,
                l.expires_at.to_rfc3339(),
                l.used_at.map(|t| t.to_rfc3339())
            ],
        )?;
        Ok(added > 0)
    }

    fn link(&self, id: &str) -> Result<Option<ReaderLink>> {
        let row = self
            .conn
            .query_row(
                "SELECT patron_id, purpose, expires_at, used_at FROM reader_links WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(patron, purpose, expires, used)| {
            Ok(ReaderLink {
                id: id.to_string(),
                patron,
                purpose,
                expires_at: time(&expires)?,
                used_at: used.as_deref().map(time).transpose()?,
            })
        })
        .transpose()
    }

    fn use_link(&mut self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE reader_links SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            params![id, at.to_rfc3339()],
        )? == 1)
    }

    fn add_answers(&mut self, link: &str, a: &SurveyAnswers, at: DateTime<Utc>) -> Result<bool> {
        let tx = self.conn.transaction()?;
        // One answer per reader per survey, whichever invitation's link
        // they use.
        let answered: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM reader_links o JOIN reader_links l \
               ON o.patron_id = l.patron_id AND o.purpose = l.purpose \
             WHERE l.id = ?1 AND o.used_at IS NOT NULL)",
            [link],
            |r| r.get(0),
        )?;
        if answered {
            return Ok(false);
        }
        // An anonymous answer must not be told from the others by when it
        // came: its link keeps the day only, and the answer a random id.
        let used_at = if a.patron.is_none() {
            at.date_naive()
                .and_hms_opt(0, 0, 0)
                .map_or(at, |d| d.and_utc())
        } else {
            at
        };
        let used = tx.execute(
            "UPDATE reader_links SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            params![link, used_at.to_rfc3339()],
        )?;
        if used != 1 {
            return Ok(false);
        }
        tx.execute(
            &format!(
                "INSERT INTO survey_answers (id, {ANSWER_COLUMNS}) \
                 VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                a.survey,
                a.patron,
                a.category,
                a.segment,
                a.locale,
                a.answered_on.to_string(),
                a.use_for_service,
                serde_json::to_string(&a.answers)?,
                rand::random::<i64>() & i64::MAX,
            ],
        )?;
        if let Some(patron) = a.patron.as_deref().filter(|_| a.use_for_service) {
            let mut put = tx.prepare_cached(
                "INSERT INTO patron_attributes (patron_id, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (patron_id, key) DO UPDATE SET value = excluded.value",
            )?;
            for (k, v) in a
                .attributes
                .iter()
                .filter(|(k, _)| k.starts_with("survey."))
            {
                put.execute(params![patron, k, v])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn survey_answers(&self, survey: &str) -> Result<Vec<SurveyAnswers>> {
        self.answers_where("survey", survey)
    }

    fn answers_of(&self, id: &str) -> Result<Vec<SurveyAnswers>> {
        self.answers_where("patron_id", id)
    }

    fn patrons_from(&self, source: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM patrons WHERE source = ?1 ORDER BY id")?;
        let rows = stmt.query_map([source], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl crate::store::readers::CampaignStore for SqliteStore {
    fn add_members(
        &mut self,
        campaign: &str,
        members: &[crate::store::readers::CampaignMember],
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO campaign_members (campaign, patron_id, entered_on, holdout, \
                 expires_at_entry, steps_sent) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (campaign, patron_id) DO NOTHING",
            )?;
            for m in members {
                added += stmt.execute(params![
                    campaign,
                    m.patron,
                    m.entered_on.to_string(),
                    m.holdout,
                    m.expires_at_entry.map(|d| d.to_string()),
                    m.steps_sent,
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn members(&self, campaign: &str) -> Result<Vec<crate::store::readers::CampaignMember>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT patron_id, entered_on, holdout, expires_at_entry, steps_sent, stopped_on, \
             stop_reason FROM campaign_members WHERE campaign = ?1 ORDER BY patron_id",
        )?;
        let rows = stmt.query_map([campaign], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        rows.map(|r| {
            let (patron, entered, holdout, expires, steps_sent, stopped_on, reason) = r?;
            Ok(crate::store::readers::CampaignMember {
                patron,
                entered_on: parse_date(entered).context("a campaign member has no entry day")?,
                holdout,
                expires_at_entry: parse_date(expires),
                steps_sent,
                stopped: parse_date(stopped_on).map(|d| (d, reason.unwrap_or_default())),
            })
        })
        .collect()
    }

    fn update_member(
        &mut self,
        campaign: &str,
        m: &crate::store::readers::CampaignMember,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE campaign_members SET steps_sent = ?3, stopped_on = ?4, stop_reason = ?5 \
             WHERE campaign = ?1 AND patron_id = ?2",
            params![
                campaign,
                m.patron,
                m.steps_sent,
                m.stopped.as_ref().map(|s| s.0.to_string()),
                m.stopped.as_ref().map(|s| s.1.clone()),
            ],
        )?;
        Ok(())
    }

    fn member_activity(
        &self,
        campaign: &str,
    ) -> Result<Vec<crate::store::readers::MemberActivity>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.patron_id,
                (SELECT MIN(l.loaned_on) FROM loans l
                  WHERE l.patron_id = m.patron_id AND l.loaned_on >= m.entered_on),
                (SELECT MIN(u.day) FROM uses u
                  WHERE u.patron_id = m.patron_id AND u.kind = 'visit' AND u.day >= m.entered_on),
                COALESCE(p.expires_on > m.expires_at_entry, 0)
             FROM campaign_members m JOIN patrons p ON p.id = m.patron_id
             WHERE m.campaign = ?1 ORDER BY m.patron_id",
        )?;
        let rows = stmt.query_map([campaign], |r| {
            Ok(crate::store::readers::MemberActivity {
                patron: r.get(0)?,
                first_loan: parse_date(r.get(1)?),
                first_visit: parse_date(r.get(2)?),
                renewed: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
