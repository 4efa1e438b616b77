//! `engagement`: scores how engaged each reader is, from recency, frequency
//! and breadth of subjects, and finds the key readers (重点读者): researchers
//! and faculty with heavy, broad use.

mod model;

use lectern_plugin::host::config_f32;
use lectern_plugin::{Patron, PluginError, Score, Scorer};

struct Engagement;

impl Scorer for Engagement {
    const SEGMENTS: &'static [&'static str] = &[
        "key-reader",
        "active",
        "occasional",
        "new-member",
        "lapsing",
        "dormant",
    ];
    const REASONS: &'static [&'static str] = &[
        "active today",
        "last active yesterday",
        "no recorded activity",
        "leads or works on a research project",
        "has stopped borrowing after an active year",
    ];

    fn score(patron: &Patron) -> Result<Score, PluginError> {
        Self::score_batch(vec![patron.clone()]).map(|mut s| s.remove(0))
    }

    fn score_batch(patrons: Vec<Patron>) -> Result<Vec<Score>, PluginError> {
        let t = thresholds()?;
        let today = lectern_plugin::host::today();
        let mut subject_loans = Vec::new();
        Ok(patrons
            .iter()
            .map(|p| {
                subject_loans.clear();
                subject_loans.extend(p.interests.iter().flatten().map(|s| s.loans));
                let out = model::score(&input(p, &subject_loans, &today), &t);
                Score {
                    patron: p.id.clone(),
                    value: out.value,
                    segment: out.segment.to_string(),
                    reasons: out.reasons,
                }
            })
            .collect())
    }
}

fn input<'a>(
    p: &'a Patron,
    subject_loans: &'a [u32],
    today: &lectern_plugin::Date,
) -> model::Input<'a> {
    let a = p.activity.as_ref();
    model::Input {
        category: p.category.as_deref(),
        loans_30d: a.map_or(0, |a| a.loans_30d),
        loans_90d: a.map_or(0, |a| a.loans_90d),
        loans_365d: a.map_or(0, |a| a.loans_365d),
        renewals_and_holds: a.map_or(0, |a| a.renewals_365d + a.holds_365d),
        days_since_last_activity: a.and_then(|a| a.days_since_last_activity),
        subject_loans,
        researcher: p.attribute("research-project").is_some()
            || p.attribute("academic-leader")
                .is_some_and(|v| v == "true" || v == "yes"),
        days_since_enrolled: p
            .enrolled_on
            .as_ref()
            .and_then(|e| u32::try_from(e.days_until(today)).ok()),
    }
}

fn thresholds() -> Result<model::Thresholds, PluginError> {
    let d = model::Thresholds::default();
    Ok(model::Thresholds {
        heavy_loans: config_f32("heavy-loans", d.heavy_loans as f32)? as u32,
        broad_subjects: config_f32("broad-subjects", d.broad_subjects as f32)? as u32,
        lapsing_days: config_f32("lapsing-days", d.lapsing_days as f32)? as u32,
        dormant_days: config_f32("dormant-days", d.dormant_days as f32)? as u32,
        new_member_days: config_f32("new-member-days", d.new_member_days as f32)? as u32,
    })
}

lectern_plugin::export_scorer!(Engagement);
