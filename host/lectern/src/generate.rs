//! `lectern gen`: a realistic synthetic library in Lectern's CSV, for demos
//! and scale tests. The same seed and end date always give the same files.
//!
//! What makes it realistic:
//! - patron groups in university proportions (undergraduates 55%, graduates
//!   20%, public 12%, faculty 8%, staff 5%);
//! - Zipf-like use: loans per year follow a Pareto tail, so a few readers
//!   borrow hundreds of items and most borrow a handful;
//! - lapsed and dormant readers: about a quarter stopped some months ago, and
//!   a fifth have not borrowed for years;
//! - subjects by discipline: most of a reader's loans are in their
//!   department's classes;
//! - faculty with research projects and academic leaders;
//! - consent flags and preferred channels.

use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{Days, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// How many patrons.
    pub patrons: u64,
    /// The seed.
    pub seed: u64,
    /// The last day of activity: loans, holds and visits fall in the three
    /// years before it.
    pub end: NaiveDate,
}

/// How many records were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// Patrons.
    pub patrons: u64,
    /// Loans.
    pub loans: u64,
    /// Holds.
    pub holds: u64,
    /// Days of visits and e-resource sessions.
    pub uses: u64,
}

/// Disciplines, with the Library of Congress classes their readers borrow.
const DISCIPLINES: &[(&str, &[&str])] = &[
    ("chemistry", &["QD", "QC", "TP"]),
    ("physics", &["QC", "QB", "QA"]),
    ("computer science", &["QA76", "QA", "T"]),
    ("medicine", &["R", "RA", "RC", "QP"]),
    ("biology", &["QH", "QL", "QK", "QR"]),
    ("law", &["K", "KF", "JZ"]),
    ("history", &["D", "DA", "E", "F"]),
    ("literature", &["PR", "PS", "PL", "PN"]),
    ("economics", &["HB", "HC", "HD", "HG"]),
    ("education", &["L", "LB", "LC"]),
    ("engineering", &["TA", "TJ", "TK"]),
    ("art", &["N", "ND", "NA"]),
];

const GIVEN: &[&str] = &[
    "Wei", "Li", "Jing", "Hao", "Min", "Anna", "James", "Maria", "Omar", "Priya", "Kenji", "Sofia",
    "Lucas", "Amara", "Yusuf", "Elena", "Chen", "Fatima", "Noah", "Ines",
];
const FAMILY: &[&str] = &[
    "Wang", "Zhang", "Liu", "Chen", "Yang", "Smith", "Garcia", "Müller", "Okafor", "Tanaka",
    "Kowalski", "Haddad", "Rossi", "Nguyen", "Silva", "Kim", "Novak", "Dubois", "Ahmed", "Brown",
];
const BRANCHES: &[&str] = &["MAIN", "SCI", "LAW", "MED", "EAST"];

/// Writes `patrons.csv`, `loans.csv`, `holds.csv` and `use.csv` into `dir`.
/// `progress` is called with the number of patrons written, now and then.
pub fn generate(
    options: &GenOptions,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<GenSummary> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let writer = |name: &str| {
        let path = dir.join(name);
        csv::Writer::from_path(&path)
            .with_context(|| format!("failed to create {}", path.display()))
    };
    let mut patrons = writer("patrons.csv")?;
    let mut loans = writer("loans.csv")?;
    let mut holds = writer("holds.csv")?;
    let mut uses = writer("use.csv")?;
    patrons.write_record([
        "id",
        "card_number",
        "name",
        "email",
        "phone",
        "birth_date",
        "age_band",
        "category",
        "home_branch",
        "enrolled_on",
        "expires_on",
        "locale",
        "channels",
        "consent_reading_history",
        "consent_marketing",
        "active",
        "attributes",
    ])?;
    loans.write_record([
        "id",
        "patron_id",
        "item_id",
        "title",
        "subject",
        "loaned_on",
        "due_on",
        "returned_on",
        "renewals",
    ])?;
    holds.write_record([
        "id",
        "patron_id",
        "title",
        "placed_on",
        "status",
        "pickup_branch",
        "expires_on",
    ])?;
    uses.write_record(["patron_id", "day", "kind", "count"])?;

    let mut rng = Pcg64Mcg::seed_from_u64(options.seed);
    let mut summary = GenSummary::default();
    let end = options.end;
    let ago = |days: u64| end.checked_sub_days(Days::new(days)).unwrap_or(end);
    for n in 0..options.patrons {
        let id = format!("G{n:08}");
        let category = match rng.random_range(0..100) {
            0..55 => "undergraduate",
            55..75 => "graduate",
            75..87 => "public",
            87..95 => "faculty",
            _ => "staff",
        };
        let (dept, classes) = DISCIPLINES[rng.random_range(0..DISCIPLINES.len())];
        let given = GIVEN[rng.random_range(0..GIVEN.len())];
        let family = FAMILY[rng.random_range(0..FAMILY.len())];
        let age = match category {
            "undergraduate" => rng.random_range(18..24),
            "graduate" => rng.random_range(22..38),
            "faculty" => rng.random_range(30..70),
            "staff" => rng.random_range(22..66),
            _ => rng.random_range(8..90),
        };
        let birth = ago(age * 365 + rng.random_range(0..365));
        let band = match age {
            0..18 => "under-18",
            18..25 => "18-24",
            25..35 => "25-34",
            35..45 => "35-44",
            45..55 => "45-54",
            55..65 => "55-64",
            _ => "65+",
        };
        let enrolled = ago(rng.random_range(30..365 * 12));
        // Some memberships have run out: the lapsed readers to win back.
        let expires = if rng.random_bool(0.15) {
            ago(rng.random_range(1..900))
        } else {
            end + Days::new(rng.random_range(10..1500))
        };
        let has_email = category != "public" || rng.random_bool(0.6);
        let has_phone = rng.random_bool(0.4);
        let mut channels: Vec<&str> = Vec::new();
        if has_email {
            channels.push("email");
        }
        if has_phone {
            channels.push("sms");
        }
        if channels.is_empty() {
            channels.push("print");
        }
        let mut attributes = format!("department={dept}");
        if category == "faculty" && rng.random_bool(0.4) {
            attributes.push_str(&format!(
                ";research-project=PRJ-{}",
                rng.random_range(1000..99999)
            ));
        }
        if category == "faculty" && rng.random_bool(0.1) {
            attributes.push_str(";academic-leader=yes");
        }
        if category == "graduate" && rng.random_bool(0.15) {
            attributes.push_str(&format!(
                ";research-project=PRJ-{}",
                rng.random_range(1000..99999)
            ));
        }
        let locale = if matches!(family, "Wang" | "Zhang" | "Liu" | "Chen" | "Yang") {
            "zh-CN"
        } else {
            "en"
        };
        patrons.write_record([
            id.as_str(),
            &format!("21{n:012}"),
            &format!("{given} {family}"),
            &if has_email {
                format!(
                    "{}.{}{n}@example.edu",
                    given.to_lowercase(),
                    family.to_lowercase()
                )
            } else {
                String::new()
            },
            &if has_phone {
                format!("+1555{n:07}")
            } else {
                String::new()
            },
            &birth.to_string(),
            band,
            category,
            BRANCHES[rng.random_range(0..BRANCHES.len())],
            &enrolled.to_string(),
            &expires.to_string(),
            locale,
            &channels.join(";"),
            if rng.random_bool(0.6) {
                "true"
            } else {
                "false"
            },
            if rng.random_bool(0.4) {
                "true"
            } else {
                "false"
            },
            if rng.random_bool(0.95) {
                "true"
            } else {
                "false"
            },
            &attributes,
        ])?;
        summary.patrons += 1;

        // Zipf-like yearly use: a Pareto tail, heavier for faculty and
        // graduates. Then when this reader stopped, if they did.
        let base: f64 = match category {
            "faculty" => 3.0,
            "graduate" => 2.6,
            "undergraduate" => 1.4,
            _ => 0.9,
        };
        let u: f64 = rng.random_range(0.000_01..1.0);
        let per_year = (base * u.powf(-1.0 / 1.3) - base).min(400.0);
        let stopped_days_ago: u64 = match rng.random_range(0..100) {
            0..20 => rng.random_range(730..1100), // dormant
            20..45 => rng.random_range(60..500),  // lapsing or lapsed
            _ => 0,
        };
        let span = 1095u64.saturating_sub(stopped_days_ago).max(1);
        let count = (per_year * span as f64 / 365.0).round() as u64;
        for k in 0..count {
            let on = ago(stopped_days_ago + rng.random_range(0..span));
            let subject = if rng.random_bool(0.8) {
                classes[rng.random_range(0..classes.len())]
            } else {
                let (_, other) = DISCIPLINES[rng.random_range(0..DISCIPLINES.len())];
                other[rng.random_range(0..other.len())]
            };
            let due = on + Days::new(28);
            let renewals = if rng.random_bool(0.25) {
                rng.random_range(1..4u32)
            } else {
                0
            };
            // Most loans come back; some recent ones are still out.
            let returned = if due < end || rng.random_bool(0.3) {
                let back =
                    on + Days::new(rng.random_range(1..(28 * (1 + u64::from(renewals)) + 10)));
                (back <= end).then_some(back)
            } else {
                None
            };
            loans.write_record([
                format!("{id}-L{k}").as_str(),
                id.as_str(),
                &format!("I{}", rng.random_range(0..2_000_000)),
                &format!("Title {}", rng.random_range(0..500_000)),
                subject,
                &on.to_string(),
                &due.to_string(),
                &returned.map(|d| d.to_string()).unwrap_or_default(),
                &renewals.to_string(),
            ])?;
            summary.loans += 1;
        }
        for k in 0..(count / 8) {
            let on = ago(stopped_days_ago + rng.random_range(0..span));
            holds.write_record([
                format!("{id}-H{k}").as_str(),
                id.as_str(),
                &format!("Title {}", rng.random_range(0..500_000)),
                &on.to_string(),
                if on + Days::new(14) > end {
                    "waiting"
                } else {
                    "filled"
                },
                BRANCHES[rng.random_range(0..BRANCHES.len())],
                &(on + Days::new(14)).to_string(),
            ])?;
            summary.holds += 1;
        }
        // A few days of visits and e-resource sessions for active readers.
        if stopped_days_ago == 0 {
            // One day per quarter at most, so no day repeats.
            for quarter in 0..rng.random_range(0..4u64) {
                let kind = if rng.random_bool(0.5) {
                    "visit"
                } else {
                    "eresource"
                };
                let day = ago(quarter * 91 + rng.random_range(0..91));
                uses.write_record([
                    id.as_str(),
                    &day.to_string(),
                    kind,
                    &rng.random_range(1..6u32).to_string(),
                ])?;
                summary.uses += 1;
            }
        }
        if n % 10_000 == 0 {
            progress(n);
        }
    }
    for w in [&mut patrons, &mut loans, &mut holds, &mut uses] {
        w.flush()?;
    }
    progress(options.patrons);
    Ok(summary)
}
