//! Reader links, survey answers and campaign members in PostgreSQL.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use postgres::{GenericClient, Row};

use super::{PgStore, parse_date};
use crate::store::readers::{
    CampaignMember, CampaignStore, MemberActivity, ReaderLink, Readers, SurveyAnswers,
};
use crate::store::rows::{decode_answer as answer_decode, time};

const ANSWER_COLUMNS: &str =
    "survey, patron_id, category, segment, locale, answered_on, use_for_service, answers";

fn answer_row(r: &Row) -> (Vec<Option<String>>, bool) {
    (
        vec![
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(7),
        ],
        r.get(6),
    )
}

/// The answers whose column `clause` (a fixed name, never user text) is
/// `value`, by day.
fn answers_where(
    db: &mut impl GenericClient,
    clause: &str,
    value: &str,
) -> Result<Vec<SurveyAnswers>> {
    let rows = db.query(
        &format!(
            "SELECT {ANSWER_COLUMNS} FROM survey_answers WHERE {clause} = $1 \
             ORDER BY answered_on, id"
        ),
        &[&value],
    )?;
    rows.iter().map(|r| answer_decode(answer_row(r))).collect()
}

impl Readers for PgStore {
    fn add_link(&mut self, l: &ReaderLink) -> Result<bool> {
        let added = self.db().execute(
            "INSERT INTO reader_links (id, patron_id, purpose, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[
                &l.id,
                &l.patron,
                &l.purpose,
                &l.expires_at.to_rfc3339(),
                &l.used_at.map(|t| t.to_rfc3339()),
            ],
        )?;
        Ok(added > 0)
    }

    fn link(&self, id: &str) -> Result<Option<ReaderLink>> {
        let row = self.db().query_opt(
            "SELECT patron_id, purpose, expires_at, used_at FROM reader_links WHERE id = $1",
            &[&id],
        )?;
        row.map(|r| {
            let expires: String = r.get(2);
            let used: Option<String> = r.get(3);
            Ok(ReaderLink {
                id: id.to_string(),
                patron: r.get(0),
                purpose: r.get(1),
                expires_at: time(&expires)?,
                used_at: used.as_deref().map(time).transpose()?,
            })
        })
        .transpose()
    }

    fn use_link(&mut self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        // One statement: of two clicks at once, one finds the link unused.
        Ok(self.db().execute(
            "UPDATE reader_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
            &[&id, &at.to_rfc3339()],
        )? == 1)
    }

    fn add_answers(&mut self, link: &str, a: &SurveyAnswers, at: DateTime<Utc>) -> Result<bool> {
        let answers = serde_json::to_string(&a.answers)?;
        let mut db = self.db();
        let mut tx = db.transaction()?;
        // One answer per reader per survey, whichever invitation's link
        // they use. The reader's links for the survey are locked, in one
        // order, so that two answers through two of them at once take
        // turns, and the second sees the first's link used.
        let answered = tx
            .query(
                "SELECT o.used_at IS NOT NULL FROM reader_links o JOIN reader_links l \
                   ON o.patron_id = l.patron_id AND o.purpose = l.purpose \
                 WHERE l.id = $1 ORDER BY o.id FOR UPDATE OF o",
                &[&link],
            )?
            .iter()
            .any(|r| r.get::<_, bool>(0));
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
            "UPDATE reader_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
            &[&link, &used_at.to_rfc3339()],
        )?;
        if used != 1 {
            return Ok(false);
        }
        tx.execute(
            &format!(
                "INSERT INTO survey_answers (id, {ANSWER_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &(rand::random::<i64>() & i64::MAX),
                &a.survey,
                &a.patron,
                &a.category,
                &a.segment,
                &a.locale,
                &a.answered_on.to_string(),
                &a.use_for_service,
                &answers,
            ],
        )?;
        if let Some(patron) = a.patron.as_deref().filter(|_| a.use_for_service) {
            let put = tx.prepare(
                "INSERT INTO patron_attributes (patron_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (patron_id, key) DO UPDATE SET value = excluded.value",
            )?;
            for (k, v) in a
                .attributes
                .iter()
                .filter(|(k, _)| k.starts_with("survey."))
            {
                tx.execute(&put, &[&patron, k, v])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn survey_answers(&self, survey: &str) -> Result<Vec<SurveyAnswers>> {
        answers_where(&mut *self.db(), "survey", survey)
    }

    fn answers_of(&self, id: &str) -> Result<Vec<SurveyAnswers>> {
        answers_where(&mut *self.db(), "patron_id", id)
    }

    fn patrons_from(&self, source: &str) -> Result<Vec<String>> {
        let rows = self.db().query(
            "SELECT id FROM patrons WHERE source = $1 ORDER BY id",
            &[&source],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl CampaignStore for PgStore {
    fn add_members(&mut self, campaign: &str, members: &[CampaignMember]) -> Result<usize> {
        let mut db = self.db();
        let mut tx = db.transaction()?;
        let mut added = 0;
        let insert = tx.prepare(
            "INSERT INTO campaign_members (campaign, patron_id, entered_on, holdout, \
             expires_at_entry, steps_sent) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (campaign, patron_id) DO NOTHING",
        )?;
        for m in members {
            added += tx.execute(
                &insert,
                &[
                    &campaign,
                    &m.patron,
                    &m.entered_on.to_string(),
                    &m.holdout,
                    &m.expires_at_entry.map(|d| d.to_string()),
                    &i64::from(m.steps_sent),
                ],
            )?;
        }
        tx.commit()?;
        Ok(added as usize)
    }

    fn members(&self, campaign: &str) -> Result<Vec<CampaignMember>> {
        let rows = self.db().query(
            "SELECT patron_id, entered_on, holdout, expires_at_entry, steps_sent, stopped_on, \
             stop_reason FROM campaign_members WHERE campaign = $1 \
             ORDER BY patron_id",
            &[&campaign],
        )?;
        rows.iter()
            .map(|r| {
                let reason: Option<String> = r.get(6);
                Ok(CampaignMember {
                    patron: r.get(0),
                    entered_on: parse_date(r.get(1))
                        .context("a campaign member has no entry day")?,
                    holdout: r.get(2),
                    expires_at_entry: parse_date(r.get(3)),
                    steps_sent: r.get::<_, i64>(4) as u32,
                    stopped: parse_date(r.get(5)).map(|d| (d, reason.unwrap_or_default())),
                })
            })
            .collect()
    }

    fn update_member(&mut self, campaign: &str, m: &CampaignMember) -> Result<()> {
        self.db().execute(
            "UPDATE campaign_members SET steps_sent = $3, stopped_on = $4, stop_reason = $5 \
             WHERE campaign = $1 AND patron_id = $2",
            &[
                &campaign,
                &m.patron,
                &i64::from(m.steps_sent),
                &m.stopped.as_ref().map(|s| s.0.to_string()),
                &m.stopped.as_ref().map(|s| s.1.clone()),
            ],
        )?;
        Ok(())
    }

    fn member_activity(&self, campaign: &str) -> Result<Vec<MemberActivity>> {
        let rows = self.db().query(
            "SELECT m.patron_id,
                (SELECT MIN(l.loaned_on) FROM loans l
                  WHERE l.patron_id = m.patron_id AND l.loaned_on >= m.entered_on),
                (SELECT MIN(u.day) FROM uses u
                  WHERE u.patron_id = m.patron_id AND u.kind = 'visit' AND u.day >= m.entered_on),
                COALESCE(p.expires_on > m.expires_at_entry, FALSE)
             FROM campaign_members m JOIN patrons p ON p.id = m.patron_id
             WHERE m.campaign = $1 ORDER BY m.patron_id",
            &[&campaign],
        )?;
        Ok(rows
            .iter()
            .map(|r| MemberActivity {
                patron: r.get(0),
                first_loan: parse_date(r.get(1)),
                first_visit: parse_date(r.get(2)),
                renewed: r.get(3),
            })
            .collect())
    }
}
