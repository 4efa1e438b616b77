//! The engagement model, free of any binding code.
//!
//! It has no dependencies so that the host's benchmark can compile this very
//! file natively and compare it with the WebAssembly build of the plugin.

/// What the model reads of one patron.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// The patron group, if the plugin may see it.
    pub category: Option<&'a str>,
    /// Loans in the last 30, 90 and 365 days.
    pub loans_30d: u32,
    /// Loans in the last 90 days.
    pub loans_90d: u32,
    /// Loans in the last 365 days.
    pub loans_365d: u32,
    /// Renewals and holds in the last 365 days.
    pub renewals_and_holds: u32,
    /// Days since the last activity; `None` if never active.
    pub days_since_last_activity: Option<u32>,
    /// Loans per subject over the last year (reading history, with consent).
    pub subject_loans: &'a [u32],
    /// Whether the patron carries a research project or leads a discipline.
    pub researcher: bool,
    /// Days since the patron enrolled; `None` if unknown.
    pub days_since_enrolled: Option<u32>,
}

/// Tunable thresholds; the plugin reads them from its configuration.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Loans in a year from which use counts as heavy.
    pub heavy_loans: u32,
    /// Distinct subjects from which use counts as broad.
    pub broad_subjects: u32,
    /// Days without activity after which a reader is lapsing.
    pub lapsing_days: u32,
    /// Days without activity after which a reader is dormant.
    pub dormant_days: u32,
    /// Days after enrolling during which a reader who is not yet active is
    /// a new member, not a lapsed one.
    pub new_member_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            heavy_loans: 30,
            broad_subjects: 3,
            lapsing_days: 90,
            dormant_days: 365,
            new_member_days: 60,
        }
    }
}

/// The model's verdict on one patron.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// 0 to 100.
    pub value: f32,
    /// One of `key-reader`, `active`, `occasional`, `new-member`, `lapsing`,
    /// `dormant`.
    pub segment: &'static str,
    /// Why, in plain words.
    pub reasons: Vec<String>,
}

/// Scores one patron from recency, frequency and breadth of subjects.
pub fn score(p: &Input<'_>, t: &Thresholds) -> Output {
    let mut reasons = Vec::with_capacity(4);

    // Recency: 35 points, halving about every 80 days.
    let recency = match p.days_since_last_activity {
        Some(d) => 35.0 * (-(d as f32) / 115.0).exp(),
        None => 0.0,
    };
    match p.days_since_last_activity {
        Some(0) => reasons.push("active today".to_string()),
        Some(1) => reasons.push("last active yesterday".to_string()),
        Some(d) => reasons.push(format!("last active {d} days ago")),
        None => reasons.push("no recorded activity".to_string()),
    }

    // Frequency: 40 points on a log scale that saturates at 60 loans a year,
    // plus up to 5 for renewals and holds, which show intent.
    let frequency = 40.0 * ((1.0 + p.loans_365d as f32).ln() / 61f32.ln()).min(1.0)
        + (p.renewals_and_holds as f32 / 4.0).min(5.0);
    if p.loans_365d > 0 {
        let items = if p.loans_365d == 1 { "item" } else { "items" };
        reasons.push(format!(
            "borrowed {} {items} in the last year ({} in the last 90 days)",
            p.loans_365d, p.loans_90d
        ));
    }

    // Breadth: 15 points for six or more subjects, with a bonus for an even
    // spread (normalised entropy) over a single obsession.
    let active: Vec<u32> = p.subject_loans.iter().copied().filter(|&n| n > 0).collect();
    let subjects = active.len() as u32;
    let total: u32 = active.iter().sum();
    let evenness = if subjects > 1 {
        let h: f32 = active
            .iter()
            .map(|&n| {
                let q = n as f32 / total as f32;
                -q * q.ln()
            })
            .sum();
        h / (subjects as f32).ln()
    } else {
        0.0
    };
    let breadth = 12.0 * (subjects as f32 / 6.0).min(1.0) + 3.0 * evenness;
    if subjects > 1 {
        reasons.push(format!("reads across {subjects} subjects"));
    }

    let research_role = p.researcher || matches!(p.category, Some("faculty" | "researcher"));
    let research = if research_role { 5.0 } else { 0.0 };
    if p.researcher {
        reasons.push("leads or works on a research project".to_string());
    }

    let value = (recency + frequency + breadth + research).clamp(0.0, 100.0);
    let days = p.days_since_last_activity.unwrap_or(u32::MAX);
    let heavy = p.loans_365d >= t.heavy_loans;
    let broad = subjects >= t.broad_subjects;

    let new_member = p
        .days_since_enrolled
        .is_some_and(|d| d <= t.new_member_days);
    let segment = if new_member && p.loans_30d == 0 && p.loans_90d < 3 && value < 50.0 {
        // Joined weeks ago and not borrowing yet: welcome them, do not win
        // them back.
        reasons.push(format!(
            "joined {} days ago",
            p.days_since_enrolled.unwrap_or_default()
        ));
        "new-member"
    } else if days >= t.dormant_days {
        "dormant"
    } else if days >= t.lapsing_days || (p.loans_90d == 0 && p.loans_365d > 0 && days > 60) {
        if p.loans_365d > 0 {
            reasons.push("has stopped borrowing after an active year".to_string());
        }
        "lapsing"
    } else if research_role && heavy && broad {
        reasons.push(format!(
            "key reader: research role with heavy ({}+ loans), broad ({}+ subjects) use",
            t.heavy_loans, t.broad_subjects
        ));
        "key-reader"
    } else if p.loans_30d >= 1 || p.loans_90d >= 3 || value >= 50.0 {
        "active"
    } else {
        "occasional"
    };

    Output {
        value,
        segment,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(days: Option<u32>, loans: u32, subjects: &[u32]) -> Input<'_> {
        Input {
            category: Some("faculty"),
            loans_30d: loans / 12,
            loans_90d: loans / 4,
            loans_365d: loans,
            renewals_and_holds: 0,
            days_since_last_activity: days,
            subject_loans: subjects,
            researcher: true,
            days_since_enrolled: None,
        }
    }

    #[test]
    fn heavy_broad_faculty_is_key_reader() {
        let out = score(
            &input(Some(3), 80, &[20, 20, 20, 20]),
            &Thresholds::default(),
        );
        assert_eq!(out.segment, "key-reader");
        assert!(out.value > 80.0, "{out:?}");
    }

    #[test]
    fn a_reader_who_joined_weeks_ago_is_new_not_dormant() {
        let fresh = Input {
            days_since_enrolled: Some(19),
            ..input(None, 0, &[])
        };
        let out = score(&fresh, &Thresholds::default());
        assert_eq!(out.segment, "new-member", "{out:?}");
        let long_ago = Input {
            days_since_enrolled: Some(400),
            ..input(None, 0, &[])
        };
        assert_eq!(score(&long_ago, &Thresholds::default()).segment, "dormant");
    }

    #[test]
    fn a_year_of_silence_is_dormant() {
        let out = score(&input(Some(400), 0, &[]), &Thresholds::default());
        assert_eq!(out.segment, "dormant");
        assert!(out.value < 10.0, "{out:?}");
    }
}
