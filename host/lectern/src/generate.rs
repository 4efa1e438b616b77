//! `lectern gen`: a realistic synthetic library in Lectern's CSV, for demos
//! and scale tests. The same seed and end date always give the same files.
//!
//! What makes it realistic:
//! - patron groups in university proportions (undergraduates 55%, graduates
//!   20%, public 12%, faculty 8%, staff 5%);
//! - Zipf-like use: loans per year follow a Pareto tail, so a few readers
//!   borrow hundreds of items and most borrow a handful;
//! - readers come and go: about a quarter stopped some months ago, a fifth
//!   have not borrowed for years, and two in five joined during the three
//!   years (enrolling the day they began), so the library's loans a year
//!   stay about level rather than falling as readers lapse;
//! - subjects by discipline: four in five of a reader's loans are in their
//!   department's classes, fewer for a reader who borrows more than 30 a
//!   year (heavy readers range wider, and a few of them starting or
//!   stopping do not swing a whole discipline's numbers);
//! - titles by subject: each class has its own titles, a few of them in
//!   heavy demand, and holds are on the same titles as loans, so a held
//!   title's class is known from its loans;
//! - queues: a hold on a class's most wanted title waits up to 120 days
//!   (status `placed`, what `Store::holds_queued` counts), so a 2,000-reader
//!   library has titles with three or more readers waiting; any other hold
//!   is filled within 14 days, the last fortnight's `waiting` for pickup;
//! - the academic year: loans, holds and visits follow a term calendar,
//!   busiest from mid-September to mid-December and mid-February to early
//!   June (peaks in October–November and March–May, before exams), quietest
//!   in July and August and over the winter break (late December to
//!   mid-January): March to May and October to November each take about 12%
//!   of the year's loans a month, July and August 2–3%. Each half-month has
//!   a weight (`TERM`), and a day drawn uniformly is kept with that chance
//!   (rejection sampling), so the files stay a function of the seed and the
//!   end date;
//! - planted trends, for demand forecasting to find: every class has a
//!   yearly growth factor, level (1.0) but for two. Demand for
//!   [`RISING_SUBJECT`] (QA76, computer science, also read in physics and
//!   engineering) grows by [`RISING_FACTOR`] (+40%) a year, and for
//!   [`FALLING_SUBJECT`] (HB, economic theory) by [`FALLING_FACTOR`] (−25%).
//!   A loan's or hold's class and day are drawn together and kept with the
//!   chance factor^(years since the window began), relative to the factor's
//!   peak in the window, times the term weight: a reader's other classes
//!   take up what QA76 loses early and HB late. In a 2,000-reader library
//!   QA76 has about 150–250 loans in the first year, rising about 40% a year
//!   (1.7–2.8 times over two years, seed to seed), the fastest-rising
//!   class; HB falls about a quarter a year;
//! - faculty with research projects and academic leaders;
//! - consent flags and preferred channels.

use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{Datelike as _, Days, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// The class whose demand is planted to grow: QA76, computer science.
pub const RISING_SUBJECT: &str = "QA76";

/// How [`RISING_SUBJECT`]'s demand changes a year: 1.4 times, +40%.
pub const RISING_FACTOR: f64 = 1.4;

/// The class whose demand is planted to shrink: HB, economic theory.
pub const FALLING_SUBJECT: &str = "HB";

/// How [`FALLING_SUBJECT`]'s demand changes a year: 0.75 times, −25%.
pub const FALLING_FACTOR: f64 = 0.75;

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
    ("physics", &["QC", "QB", "QA", "QA76"]),
    ("computer science", &["QA76", "QA", "T"]),
    ("medicine", &["R", "RA", "RC", "QP"]),
    ("biology", &["QH", "QL", "QK", "QR"]),
    ("law", &["K", "KF", "JZ"]),
    ("history", &["D", "DA", "E", "F"]),
    ("literature", &["PR", "PS", "PL", "PN"]),
    ("economics", &["HB", "HC", "HD", "HG"]),
    ("education", &["L", "LB", "LC"]),
    ("engineering", &["TA", "TJ", "TK", "QA76"]),
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

/// The days of activity before the end: three years.
const WINDOW: u64 = 3 * 365;

/// The term calendar: each half-month's weight (the 1st to the 15th, then
/// the rest), January first, in percent of the busiest.
const TERM: [u32; 24] = [
    20, 45, // January: the winter break, then back for exams
    50, 80, // February: the spring term from mid-month
    90, 100, // March
    100, 100, // April
    100, 90, // May: before exams
    50, 30, // June: the term ends early in the month
    15, 15, // July
    15, 25, // August
    40, 80, // September: the autumn term from mid-month
    90, 100, // October
    100, 100, // November
    75, 25, // December: the winter break from about the 20th
];

/// Draws of a day before the last is kept whatever its weight: a bound on
/// the time a draw takes, which only a span of a few quiet days comes near.
const MAX_TRIES: u32 = 64;

/// Titles in each class. A title's number is its class's place among all
/// the disciplines' classes times this, plus its rank in demand, so a title
/// is in one class only.
const TITLES_PER_CLASS: u64 = 5_000;

/// How much holds, more than loans, go to the titles most in demand: the
/// power on a uniform draw that gives a title's rank. At 8 about a third of
/// holds are on a class's most wanted title.
const HOLD_SKEW: i32 = 8;

/// The same for loans: at 3 about 6% are of a class's most wanted title,
/// and a fifth of its fifty most wanted.
const LOAN_SKEW: i32 = 3;

/// How long a hold on a class's most wanted title waits for a copy; it
/// lapses then if it has not been filled.
const QUEUE_DAYS: u64 = 120;

/// Loans a year above which a reader ranges beyond their discipline: at
/// twice this, two in five of their loans are in it instead of four in five.
const BROAD_READER: f64 = 30.0;

/// The term calendar's weight for `day`, in percent.
fn season(day: NaiveDate) -> u32 {
    TERM[day.month0() as usize * 2 + usize::from(day.day() > 15)]
}

/// A class's yearly growth in demand; `None` for level.
fn trend(subject: &str) -> Option<f64> {
    match subject {
        RISING_SUBJECT => Some(RISING_FACTOR),
        FALLING_SUBJECT => Some(FALLING_FACTOR),
        _ => None,
    }
}

/// A title's rank in its class's demand, 0 for the most wanted: Zipf-like,
/// the more so the higher `skew`.
fn draw_rank(rng: &mut Pcg64Mcg, skew: i32) -> u64 {
    let u: f64 = rng.random();
    ((TITLES_PER_CLASS as f64 * u.powi(skew)) as u64).min(TITLES_PER_CLASS - 1)
}

/// What draws the class and day of one reader's loans and holds.
struct Reader<'a> {
    /// The shelf of each discipline's classes, by discipline and class:
    /// the class's first place among all the disciplines' classes.
    shelves: &'a [Vec<u64>],
    /// The reader's discipline, an index into [`DISCIPLINES`].
    discipline: usize,
    /// The chance that a loan is in the reader's own discipline.
    own: f64,
    /// The most recent day they borrowed, in days before `end`.
    stopped: u64,
    /// For how many days before that they borrowed.
    span: u64,
    /// The last day of activity.
    end: NaiveDate,
}

impl Reader<'_> {
    /// A class, its shelf and a day for one loan or hold. The class and a
    /// day in the reader's span are drawn uniformly and kept together with
    /// the chance of the day's term weight times the class's trend relative
    /// to its peak in the window (its end for a growing class, its start for
    /// a shrinking one), so each class's loans by day follow both.
    fn draw(&self, rng: &mut Pcg64Mcg) -> (&'static str, u64, NaiveDate) {
        let mut drawn = ("", 0, self.end);
        for _ in 0..MAX_TRIES {
            let d = if rng.random_bool(self.own) {
                self.discipline
            } else {
                rng.random_range(0..DISCIPLINES.len())
            };
            let (_, classes) = DISCIPLINES[d];
            let c = rng.random_range(0..classes.len());
            let ago = self.stopped + rng.random_range(0..self.span);
            let day = self
                .end
                .checked_sub_days(Days::new(ago))
                .unwrap_or(self.end);
            drawn = (classes[c], self.shelves[d][c], day);
            let growth = trend(classes[c]).map_or(1.0, |g| {
                let peak = if g > 1.0 { 0.0 } else { WINDOW as f64 };
                g.powf((peak - ago as f64) / 365.0)
            });
            if rng.random::<f64>() < f64::from(season(day)) / 100.0 * growth {
                break;
            }
        }
        drawn
    }
}

/// A day from `from` to `from + span - 1` days before `end`, kept with the
/// chance of its term weight.
fn draw_term_day(rng: &mut Pcg64Mcg, end: NaiveDate, from: u64, span: u64) -> NaiveDate {
    let mut day = end;
    for _ in 0..MAX_TRIES {
        day = end
            .checked_sub_days(Days::new(from + rng.random_range(0..span)))
            .unwrap_or(end);
        if rng.random_range(0..100) < season(day) {
            break;
        }
    }
    day
}

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

    // A class read in two disciplines is one shelf of titles, numbered from
    // its first place among all the classes.
    let classes: Vec<&str> = DISCIPLINES
        .iter()
        .flat_map(|(_, c)| c.iter().copied())
        .collect();
    let shelves: Vec<Vec<u64>> = DISCIPLINES
        .iter()
        .map(|(_, cs)| {
            cs.iter()
                .map(|c| classes.iter().position(|x| x == c).unwrap_or_default() as u64)
                .collect()
        })
        .collect();

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
        let discipline = rng.random_range(0..DISCIPLINES.len());
        let (dept, _) = DISCIPLINES[discipline];
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
        // When this reader borrowed, in days before the end: from `started`
        // (the window's start, or the day a newcomer joined) to `stopped`.
        // Newcomers replace the readers who stop, so the library's loans a
        // year stay level.
        let (started, stopped): (u64, u64) = match rng.random_range(0..100) {
            0..20 => (WINDOW, rng.random_range(730..1100)), // dormant
            20..45 => (WINDOW, rng.random_range(60..500)),  // lapsing or lapsed
            45..87 => (rng.random_range(1..WINDOW), 0),     // joined since
            _ => (WINDOW, 0),
        };
        let enrolled = if started < WINDOW {
            ago(started)
        } else {
            ago(rng.random_range(WINDOW..365 * 12))
        };
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
        // graduates. (The bases are set for about ten loans a reader over
        // the three years, newcomers' shorter spans included.)
        let base: f64 = match category {
            "faculty" => 4.1,
            "graduate" => 3.6,
            "undergraduate" => 1.9,
            _ => 1.2,
        };
        let u: f64 = rng.random_range(0.000_01..1.0);
        let per_year = (base * u.powf(-1.0 / 1.3) - base).min(400.0);
        let span = started.saturating_sub(stopped).max(1);
        let count = (per_year * span as f64 / 365.0).round() as u64;
        let reader = Reader {
            shelves: &shelves,
            discipline,
            own: 0.8 * (BROAD_READER / per_year).min(1.0),
            stopped,
            span,
            end,
        };
        for k in 0..count {
            let (subject, shelf, on) = reader.draw(&mut rng);
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
                &format!(
                    "Title {}",
                    shelf * TITLES_PER_CLASS + draw_rank(&mut rng, LOAN_SKEW)
                ),
                subject,
                &on.to_string(),
                &due.to_string(),
                &returned.map(|d| d.to_string()).unwrap_or_default(),
                &renewals.to_string(),
            ])?;
            summary.loans += 1;
        }
        for k in 0..(count / 8) {
            let (_, shelf, on) = reader.draw(&mut rng);
            let rank = draw_rank(&mut rng, HOLD_SKEW);
            let waited = (end - on).num_days();
            // A class's most wanted title has a queue; a copy of any other
            // comes in two weeks, and waits two weeks for pickup.
            let (status, open_days) = if rank == 0 {
                let queued = waited < QUEUE_DAYS as i64;
                (if queued { "placed" } else { "filled" }, QUEUE_DAYS)
            } else {
                (if waited < 14 { "waiting" } else { "filled" }, 14)
            };
            holds.write_record([
                format!("{id}-H{k}").as_str(),
                id.as_str(),
                &format!("Title {}", shelf * TITLES_PER_CLASS + rank),
                &on.to_string(),
                status,
                BRANCHES[rng.random_range(0..BRANCHES.len())],
                &(on + Days::new(open_days)).to_string(),
            ])?;
            summary.holds += 1;
        }
        // A few days of visits and e-resource sessions for active readers.
        if stopped == 0 {
            // One day per quarter at most, so no day repeats, and none
            // before a newcomer joined.
            for quarter in 0..rng.random_range(0..4u64) {
                let from = quarter * 91;
                if from >= started {
                    break;
                }
                let kind = if rng.random_bool(0.5) {
                    "visit"
                } else {
                    "eresource"
                };
                let day = draw_term_day(&mut rng, end, from, (started - from).min(91));
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
