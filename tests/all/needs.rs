//! Readers' needs: `lectern report needs` on a generated library whose
//! demand has a planted rising subject and term-time seasons. The rising
//! subject shows, small groups stay hidden (with the counts that would give
//! them away), and the page reads right in headless Chromium.

use std::path::Path;
use std::process::Command;

use lectern_tests::{lectern_command, plugins};
use serde_json::Value;

fn lectern(dir: &Path) -> Command {
    configured(dir, "lectern.toml")
}

/// `lectern` on the library in `dir` under the configuration `config`.
fn configured(dir: &Path, config: &str) -> Command {
    let mut c = lectern_command();
    c.current_dir(dir)
        .arg("--no-cache")
        .arg("--db")
        .arg(dir.join("lectern.db"))
        .arg("--config")
        .arg(dir.join(config));
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A generated library of 2,000 readers, three of whom, consenting and
/// borrowing, are made the only `visiting-scholar`s: a group too small to
/// show.
fn library(dir: &Path) -> Vec<String> {
    library_to(dir, "2026-11-28")
}

/// The same, with activity up to `end`.
fn library_to(dir: &Path, end: &str) -> Vec<String> {
    std::fs::write(
        dir.join("lectern.toml"),
        format!("[privacy]\npolicy = {:?}\n", plugins::BASELINE_PRIVACY),
    )
    .unwrap();
    let data = dir.join("data");
    ok(lectern(dir)
        .args([
            "gen",
            "--patrons",
            "2000",
            "--seed",
            "1",
            "--end",
            end,
            "--out",
        ])
        .arg(&data));
    let patrons = std::fs::read_to_string(data.join("patrons.csv")).unwrap();
    let mut lines: Vec<String> = patrons.lines().map(str::to_string).collect();
    let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
    let category = header.iter().position(|h| h == "category").unwrap();
    let consent = header
        .iter()
        .position(|h| h == "consent_reading_history")
        .unwrap();
    let mut scholars = Vec::new();
    for line in lines.iter_mut().skip(1) {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        // Only plain rows (no quoted commas) are touched.
        if scholars.len() < 3 && cells.len() == header.len() && cells[consent] == "true" {
            scholars.push(cells[0].clone());
            cells[category] = "visiting-scholar".into();
            *line = cells.join(",");
        }
    }
    std::fs::write(data.join("patrons.csv"), lines.join("\n") + "\n").unwrap();
    let mut import = lectern(dir);
    import.args(["import", "--format", "csv"]);
    import.args(["patrons.csv", "loans.csv", "holds.csv", "use.csv"].map(|f| data.join(f)));
    ok(&mut import);
    ok(lectern(dir).args([
        "score",
        "--plugin",
        plugins::ENGAGEMENT,
        "--as-of",
        "2026-11-28",
    ]));
    scholars
}

fn needs(dir: &Path, extra: &[&str]) -> Value {
    let mut c = lectern(dir);
    c.args(["--json", "report", "needs"]);
    if !extra.contains(&"--as-of") {
        c.args(["--as-of", "2026-11-28"]);
    }
    let out = ok(c.args(extra));
    serde_json::from_str(&out).unwrap()
}

fn num(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// No shown count stands for fewer than k readers (each reader adds at
/// least one to a count), and no line whose total shows hides exactly one
/// count.
fn assert_suppressed(report: &Value, k: u64) {
    let months = report["months"].as_array().unwrap().len();
    for s in report["subjects"].as_array().unwrap() {
        let monthly: Vec<Option<u64>> = s["monthly"].as_array().unwrap().iter().map(num).collect();
        assert!(
            monthly.iter().flatten().all(|n| *n == 0 || *n >= k),
            "{}: {monthly:?}",
            s["subject"]
        );
        for (window, total) in [
            (months - 24..months - 12, &s["last_year"]),
            (months - 12..months, &s["this_year"]),
        ] {
            let hidden = monthly[window].iter().filter(|m| m.is_none()).count();
            assert!(
                total.is_null() || hidden != 1,
                "{}: one month hidden and the year shown",
                s["subject"]
            );
        }
    }
    let groups = report["groups"].as_array().unwrap();
    for g in groups {
        let cells = g["subjects"].as_array().unwrap();
        for c in cells {
            // Each year shows on its own, so each stands for k readers.
            for year in ["this_year", "last_year"] {
                assert!(num(&c[year]).is_none_or(|n| n == 0 || n >= k), "{g}");
            }
        }
        for year in ["this_year", "last_year"] {
            assert!(num(&g[year]).is_none_or(|n| n == 0 || n >= k), "{g}");
        }
        let hidden = cells.iter().filter(|c| c["this_year"].is_null()).count();
        assert!(g["this_year"].is_null() || hidden != 1, "{g}");
    }
    // Down each subject's column of one dimension, against the subject's
    // own totals.
    for s in report["subjects"].as_array().unwrap() {
        if s["this_year"].is_null() || s["last_year"].is_null() {
            continue;
        }
        for dimension in ["department", "category", "branch", "segment"] {
            let hidden = groups
                .iter()
                .filter(|g| g["dimension"] == dimension)
                .flat_map(|g| g["subjects"].as_array().unwrap())
                .filter(|c| c["subject"] == s["subject"] && c["this_year"].is_null())
                .count();
            assert_ne!(hidden, 1, "{dimension}, {}", s["subject"]);
        }
    }
}

#[test]
fn the_needs_report_finds_the_rising_subject_and_hides_small_groups() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let scholars = library(dir);

    let report = needs(dir, &["--role", "administrator"]);
    let subjects = report["subjects"].as_array().unwrap();
    // The planted trend: the fastest riser, by a clear margin.
    assert_eq!(
        subjects[0]["subject"],
        lectern::RISING_SUBJECT,
        "{report:#}"
    );
    let rise = subjects[0]["change"].as_f64().unwrap();
    assert!(rise > 0.25, "{rise}");
    let falling = subjects
        .iter()
        .find(|s| s["subject"] == lectern::FALLING_SUBJECT)
        .unwrap();
    assert!(falling["change"].as_f64().unwrap() < -0.1, "{falling}");
    let headlines = report["headlines"].as_array().unwrap();
    assert!(
        headlines[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}: demand up", lectern::RISING_SUBJECT)),
        "{headlines:?}"
    );
    // Term time: March to May and October to November are busier than
    // July and August, in the subject totals.
    let months: Vec<String> = report["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let in_months = |names: &[&str]| -> u64 {
        subjects
            .iter()
            .flat_map(|s| {
                s["monthly"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(&months)
                    .filter(|(_, m)| names.iter().any(|n| m.ends_with(n)))
                    .filter_map(|(v, _)| v.as_u64())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    assert!(in_months(&["-03", "-04"]) > 2 * in_months(&["-07", "-08"]));

    // Departments show for the administrator, with their change.
    let departments: Vec<&Value> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["dimension"] == "department")
        .collect();
    assert!(departments.len() >= 8, "{departments:?}");
    // The group of three visiting scholars is too small to show at all.
    let group = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "visiting-scholar")
        .expect("the group is listed, hidden");
    assert!(group["this_year"].is_null(), "{group}");
    assert!(
        group["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["this_year"].is_null()),
        "{group}"
    );
    assert_suppressed(&report, 10);
    assert!(report["hidden"].as_u64().unwrap() > 0);

    // A larger k hides more, and holds the same rules.
    let strict = needs(dir, &["--role", "administrator", "--k", "40"]);
    assert_suppressed(&strict, 40);
    assert!(strict["hidden"].as_u64() > report["hidden"].as_u64());

    // A stricter policy withholds reading history from analytics: no
    // groups at all, and the report says why; the subject totals, which
    // link no one, remain.
    std::fs::write(
        dir.join("strict.toml"),
        format!("[privacy]\npolicy = {:?}\n", plugins::STRICT_PRIVACY),
    )
    .unwrap();
    let out = ok(configured(dir, "strict.toml").args([
        "--json",
        "report",
        "needs",
        "--as-of",
        "2026-11-28",
    ]));
    let strict: Value = serde_json::from_str(&out).unwrap();
    assert!(strict["groups"].as_array().unwrap().is_empty(), "{strict}");
    assert!(!strict["subjects"].as_array().unwrap().is_empty());
    assert!(
        strict["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("No demand by group")),
        "{strict}"
    );
    // A k under the floor is refused.
    let low = lectern(dir)
        .args(["report", "needs", "--k", "2"])
        .output()
        .unwrap();
    assert!(!low.status.success());

    // The reads are audited: a reader's export shows the report's read of
    // their reading history. And the chain verifies.
    let export: Value = serde_json::from_str(&ok(lectern(dir).args([
        "--json",
        "patron",
        "export",
        &scholars[0],
    ])))
    .unwrap();
    let reads = export["reads_of_their_data"].to_string();
    assert!(reads.contains("interests"), "{reads}");
    assert!(ok(lectern(dir).args(["audit", "verify"])).contains("intact"));
}

#[test]
fn the_needs_page_reads_right_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    let page = dir.join("needs.html");
    let csv = dir.join("needs.csv");
    ok(lectern(dir)
        .args([
            "report",
            "needs",
            "--as-of",
            "2026-11-28",
            "--role",
            "administrator",
        ])
        .arg("--html")
        .arg(&page)
        .arg("--csv")
        .arg(&csv));
    let dom = crate::report::render(&page, &dir.join("profile"));
    let headlines = dom
        .split("<ul id=\"headlines\">")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap();
    assert!(
        headlines.contains(&format!("{}: demand up", lectern::RISING_SUBJECT)),
        "{headlines}"
    );
    assert!(
        dom.contains(&format!(
            "class=\"series\" data-subject=\"{}\"",
            lectern::RISING_SUBJECT
        )),
        "the rising subject is charted"
    );
    for id in ["subjects", "groups", "waiting", "suppressed"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(
        !dom.contains("visiting-scholar</td><td>0"),
        "no small group's count"
    );
    // The CSV holds the same counts, hidden ones empty.
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("dimension,group,subject,period,demand"));
    let rising = format!("all,all,{},this-year,", lectern::RISING_SUBJECT);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&rising) && l.len() > rising.len())
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("category,visiting-scholar,"))
            .all(|l| l.ends_with(',')),
        "the small group's counts are empty cells"
    );
}

#[test]
fn the_forecaster_beats_the_seasonal_naive_forecast_and_a_lying_one_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Three whole years, January 2024 to December 2026: train on two,
    // forecast the third.
    library_to(dir, "2026-12-31");
    let backtest = needs(
        dir,
        &[
            "--as-of",
            "2026-12-31",
            "--forecaster",
            plugins::FORECASTER,
            "--backtest",
            "12",
        ],
    );
    let (mase, naive) = (
        backtest["mase"].as_f64().unwrap(),
        backtest["naive_mase"].as_f64().unwrap(),
    );
    assert!(mase < 0.95 * naive, "{backtest:#}");
    let scored = backtest["series"].as_array().unwrap().len() as u64;
    assert!(scored >= 20, "{backtest:#}");
    assert!(
        backtest["wins"].as_u64().unwrap() * 2 > scored,
        "{backtest:#}"
    );

    // In the report: six months ahead for every subject, inside their
    // intervals, with reasons.
    let report = needs(
        dir,
        &["--as-of", "2026-12-31", "--forecaster", plugins::FORECASTER],
    );
    let forecasts = report["forecasts"].as_array().unwrap();
    assert_eq!(
        forecasts.len(),
        report["subjects"].as_array().unwrap().len()
    );
    for f in forecasts {
        assert_eq!(f["months"][0], "2027-01", "{f}");
        let values = f["values"].as_array().unwrap();
        assert_eq!(values.len(), 6);
        for (i, v) in values.iter().enumerate() {
            let v = v.as_f64().unwrap();
            assert!(f["low"][i].as_f64().unwrap() <= v && v <= f["high"][i].as_f64().unwrap());
        }
        assert!(!f["reasons"].as_array().unwrap().is_empty(), "{f}");
    }

    // A forecaster that lies fails with its name and the lie, and the
    // report says nothing it made up.
    for (mode, lie) in [
        ("short", "5 values"),
        ("outside", "outside its interval"),
        ("nan", "not a number"),
        ("fewer", "forecasts for"),
        ("flood", "output"),
        ("spin", "deadline"),
    ] {
        let rogue = lectern_tests::plugin_copy(plugins::ROGUE_FORECASTER, |m| {
            m.replace("mode = \"short\"", &format!("mode = \"{mode}\""))
        });
        let out = lectern(dir)
            .args(["report", "needs", "--as-of", "2026-12-31", "--forecaster"])
            .arg(rogue.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{mode}: {stderr}");
        assert!(stderr.contains("rogue-forecaster"), "{mode}: {stderr}");
        assert!(stderr.contains(lie), "{mode}: {stderr}");
        assert!(out.stdout.is_empty(), "{mode}: nothing half-written");
    }
}

/// The readers the store says something of, by a query on its tables.
fn ids(db: &Path, sql: &str) -> std::collections::BTreeSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn current_awareness_digests_reach_only_consenting_key_readers_and_those_who_asked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    let db = dir.join("lectern.db");
    ok(lectern(dir).args([
        "score",
        "--plugin",
        plugins::KEY_READERS,
        "--as-of",
        "2026-11-28",
    ]));
    let key = ids(
        &db,
        "SELECT patron_id FROM scores WHERE segment = 'key-reader' AND run_id = \
         (SELECT MAX(id) FROM score_runs WHERE plugin = 'key-readers')",
    );
    let consenting = ids(
        &db,
        "SELECT id FROM patrons WHERE consent_marketing AND consent_reading_history",
    );
    assert!(
        key.iter().any(|p| !consenting.contains(p)),
        "a key reader who did not consent"
    );
    // A reader outside the key segment, who consented and borrows in
    // computing, asks for the digest from the preference centre.
    let asker = ids(
        &db,
        "SELECT DISTINCT l.patron_id FROM loans l JOIN patrons p ON p.id = l.patron_id \
         WHERE l.subject = 'QA76' AND l.loaned_on > '2026-01-01' \
         AND p.consent_marketing AND p.consent_reading_history",
    )
    .into_iter()
    .find(|p| !key.contains(p))
    .unwrap();
    ok(lectern(dir).args(["patron", "prefs", &asker, "--awareness", "on"]));

    // This month's arrivals, one in every subject the library lends in.
    let subjects = ids(
        &db,
        "SELECT DISTINCT subject FROM loans WHERE subject IS NOT NULL",
    );
    let arrivals: String = subjects
        .iter()
        .map(|s| format!("{{\"id\":\"new-{s}\",\"title\":\"New in {s}\",\"subject\":\"{s}\"}}\n"))
        .collect();
    std::fs::write(dir.join("arrivals.jsonl"), arrivals).unwrap();
    let notify = |now: &str| {
        ok(lectern(dir).args([
            "--json",
            "notify",
            "--plugin",
            plugins::OUTREACH,
            "--awareness",
            "--arrivals",
            "arrivals.jsonl",
            "--now",
            now,
        ]))
    };
    let first: Value = serde_json::from_str(&notify("2026-11-28T10:00:00Z")).unwrap();
    assert!(
        first["by_kind"]["current-awareness"].as_u64().unwrap() > 0,
        "{first}"
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT o.patron_id, o.locale, o.subject, o.body, p.locale FROM outbox o \
             JOIN patrons p ON p.id = o.patron_id WHERE o.event_kind = 'current-awareness'",
        )
        .unwrap();
    let digests: Vec<(String, String, String, String, Option<String>)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!digests.is_empty());
    for (patron, locale, subject, body, theirs) in &digests {
        assert!(
            key.contains(patron) || *patron == asker,
            "{patron} is neither a key reader nor asked"
        );
        assert!(consenting.contains(patron), "{patron} did not consent");
        // In their language.
        let chinese = theirs.as_deref().is_some_and(|l| l.starts_with("zh"));
        assert_eq!(locale.starts_with("zh"), chinese, "{patron}: {locale}");
        let han = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        assert_eq!(han(subject) || han(body), chinese, "{subject}\n{body}");
        assert!(body.contains("New in "), "{body}");
    }
    assert!(digests.iter().any(|d| d.0 == asker), "the reader who asked");
    assert!(
        digests.iter().any(|d| d.1.starts_with("zh")),
        "a digest in Chinese"
    );
    assert!(digests.iter().any(|d| d.1 == "en"), "a digest in English");
    // A digest replaces the single new-arrival notices for its reader.
    let readers: std::collections::BTreeSet<&str> = digests.iter().map(|d| d.0.as_str()).collect();
    let singles = ids(
        &db,
        "SELECT patron_id FROM outbox WHERE event_kind = 'new-arrival'",
    );
    assert!(singles.iter().all(|p| !readers.contains(p.as_str())));

    // Once a month: the round again, on another day of the month, queues
    // nothing new.
    let again: Value = serde_json::from_str(&notify("2026-11-29T10:00:00Z")).unwrap();
    let count = |db: &Path| {
        ids(
            db,
            "SELECT id || '' FROM outbox WHERE event_kind = 'current-awareness'",
        )
        .len()
    };
    assert_eq!(count(&db), digests.len(), "{again}");
}

#[test]
fn the_needs_survey_asks_heavy_users_most_and_its_answers_count_as_needs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    library(dir);
    let survey = lectern_tests::repo().join("samples/surveys/needs.toml");
    std::fs::write(
        dir.join("lectern.toml"),
        format!(
            "[privacy]\npolicy = {:?}\n\n[notify]\nquiet-hours = \"none\"\n\n[readers]\n\
             public-url = \"https://crm.library.example/\"\nsurveys = [{:?}]\n",
            plugins::BASELINE_PRIVACY,
            survey.display().to_string()
        ),
    )
    .unwrap();
    let db = dir.join("lectern.db");
    ok(lectern(dir).args([
        "notify",
        "--plugin",
        plugins::OUTREACH,
        "--survey",
        "needs",
        "--now",
        "2026-11-28T10:00:00Z",
    ]));
    // The share of each segment invited follows the survey's sampling.
    let share = |segment: &str| -> f64 {
        let members = ids(
            &db,
            &format!(
                "SELECT patron_id FROM scores WHERE segment = '{segment}' AND run_id = \
                 (SELECT MAX(id) FROM score_runs WHERE plugin = 'engagement')"
            ),
        );
        let invited = ids(
            &db,
            "SELECT patron_id FROM outbox WHERE event_kind = 'survey-invitation'",
        );
        let marketing = ids(&db, "SELECT id FROM patrons WHERE consent_marketing");
        let reachable: Vec<&String> = members.iter().filter(|p| marketing.contains(*p)).collect();
        reachable.iter().filter(|p| invited.contains(**p)).count() as f64
            / reachable.len().max(1) as f64
    };
    let (active, dormant) = (share("active"), share("dormant"));
    assert!(active > 0.25 && active < 0.55, "active {active}");
    assert!(dormant < 0.15, "dormant {dormant}");
    assert!(
        active > 3.0 * dormant,
        "heavy users are asked more: {active} against {dormant}"
    );

    // Answers naming subjects count in the needs report, hidden under k.
    {
        use lectern::Readers as _;
        let mut store = lectern::SqliteStore::open(&db).unwrap();
        let now: chrono::DateTime<chrono::Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        for i in 0..14 {
            let mut named = vec!["QA76".to_string()];
            if i < 4 {
                named.push("N".to_string());
            }
            let link = lectern::ReaderLink {
                id: format!("needs-link-{i:02}-abcdefghij"),
                patron: format!("G{:08}", i),
                purpose: "survey:needs".into(),
                expires_at: now + chrono::Duration::days(30),
                used_at: None,
            };
            assert!(store.add_link(&link).unwrap());
            let answers = lectern::SurveyAnswers {
                survey: "needs".into(),
                patron: None,
                category: None,
                segment: None,
                locale: "en".into(),
                answered_on: now.date_naive(),
                use_for_service: false,
                answers: [("subjects".to_string(), lectern::Answer::Multiple(named))].into(),
                attributes: Vec::new(),
            };
            assert!(store.add_answers(&link.id, &answers, now).unwrap());
        }
    }
    let report = needs(dir, &["--role", "administrator"]);
    let asked = |subject: &str| {
        report["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subject"] == subject)
            .map(|s| s["asked"].clone())
    };
    assert_eq!(asked("QA76"), Some(serde_json::json!(14)), "{report:#}");
    assert_eq!(asked("N"), Some(Value::Null), "4 readers are fewer than k");
    assert!(
        report["headlines"].as_array().unwrap().iter().any(|h| h
            .as_str()
            .unwrap()
            .contains("QA76: named as a need by 14 readers")),
        "{report:#}"
    );
}
