//! Reports: the segment report of stored runs, with movement and
//! small-group suppression, checked as a librarian sees it: the HTML page
//! rendered by headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use lectern_tests::{lectern_command, plugins};

fn lectern(db: &Path) -> Command {
    let mut c = lectern_command();
    c.arg("--no-cache").arg("--db").arg(db);
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

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: `cargo xtask test` installs Debian's chromium",
        path.display()
    );
    path
}

/// The page as Chromium built it.
pub(crate) fn render(page: &Path, profile: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_segment_report_shows_sizes_movement_and_hides_small_groups() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lectern.db");
    let library = dir.path().join("library");
    ok(lectern(&db)
        .args(["gen", "--patrons", "800", "--seed", "3", "--out"])
        .arg(&library));
    let mut import = lectern(&db);
    import.args(["import", "--format", "csv"]);
    import.args(["patrons.csv", "loans.csv", "holds.csv", "use.csv"].map(|f| library.join(f)));
    ok(&mut import);
    for as_of in ["2026-11-28", "2027-02-28"] {
        ok(lectern(&db).args([
            "score",
            "--plugin",
            plugins::ENGAGEMENT,
            "--as-of",
            as_of,
            "--json",
        ]));
    }
    ok(lectern(&db).args([
        "score",
        "--plugin",
        plugins::KEY_READERS,
        "--as-of",
        "2026-11-28",
        "--json",
    ]));

    // Key readers: pseudonymous for an analyst, named for the desk.
    let list = |role: &str, which: &str| -> serde_json::Value {
        let out = ok(lectern(&db).args([
            "--json",
            "report",
            which,
            "--top",
            "5",
            "--role",
            role,
            "--policy",
            plugins::BASELINE_PRIVACY,
        ]));
        serde_json::from_str(&out).unwrap()
    };
    let analyst = list("analyst", "key-readers");
    let readers = analyst["readers"].as_array().unwrap();
    assert!(!readers.is_empty());
    for r in readers {
        assert_eq!(r["segment"], "key-reader");
        assert!(
            r["who"].as_str().unwrap().starts_with("p-"),
            "the analyst sees a token: {r}"
        );
        assert!(
            r["card_number"].as_str().unwrap().starts_with("t-"),
            "and a pseudonymised card: {r}"
        );
    }
    let desk = list("circulation-desk", "key-readers");
    let first = &desk["readers"][0];
    let name = first["who"].as_str().unwrap();
    assert!(
        !name.starts_with("p-") && name.contains(' '),
        "the desk sees a name: {first}"
    );
    assert_eq!(
        first["value"], readers[0]["value"],
        "the same list, seen by another role"
    );

    // The scorer's reasons are its own text about fields the analyst and
    // the desk may not see (attributes, activity): withheld from both,
    // shown to the administrator, who may see everything.
    for seen in [&analyst, &desk] {
        assert_eq!(seen["reasons_withheld"], true, "{seen}");
        assert!(
            seen["readers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["reasons"].as_array().unwrap().is_empty()),
            "{seen}"
        );
    }
    let admin = list("administrator", "key-readers");
    assert_eq!(admin["reasons_withheld"], false);
    assert!(
        !admin["readers"][0]["reasons"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{admin}"
    );

    // The win-back list: lapsing readers first, then dormant ones.
    let lapsed = list("circulation-desk", "lapsed");
    let segments: Vec<&str> = lapsed["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["segment"].as_str().unwrap())
        .collect();
    assert!(
        !segments.is_empty() && segments.iter().all(|s| ["lapsing", "dormant"].contains(s)),
        "{segments:?}"
    );
    assert!(
        segments
            .windows(2)
            .all(|w| !(w[0] == "dormant" && w[1] == "lapsing")),
        "{segments:?}"
    );

    let page = dir.path().join("segments.html");
    let csv = dir.path().join("segments.csv");
    let json: serde_json::Value = serde_json::from_str(&ok(lectern(&db)
        .args(["--json", "report", "segments", "--html"])
        .arg(&page)
        .arg("--csv")
        .arg(&csv)))
    .unwrap();
    assert_eq!(
        (json["run"].as_i64(), json["previous_run"].as_i64()),
        (Some(2), Some(1))
    );
    let segments = json["segments"].as_array().unwrap();
    let moves = json["movement"].as_array().unwrap();
    assert!(!moves.is_empty(), "three months on, readers moved");
    for group in segments
        .iter()
        .chain(moves)
        .chain(json["groups"].as_array().unwrap())
    {
        assert!(
            group["patrons"].as_u64().unwrap() >= 10,
            "a group under k was shown: {group}"
        );
    }
    let hidden = &json["hidden_groups"];
    assert!(
        hidden["groups"].as_u64().unwrap() > 0,
        "an 800-reader library has small groups"
    );
    // Counted in readers, never fewer than k of them, or the total would
    // tell one small group's size.
    if let Some(readers) = hidden["readers"].as_u64() {
        assert!(readers >= 10, "{hidden}");
    }

    let dom = render(&page, &dir.path().join("profile"));
    assert!(
        dom.contains("<h1>Segments — engagement 0.1.0 as of 2027-02-28</h1>"),
        "{dom}"
    );
    let chart = |id: &str| {
        let start = dom
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("no chart {id}"));
        let end = start + dom[start..].find("</svg>").unwrap();
        dom[start..end].matches("class=\"bar\"").count()
    };
    assert_eq!(chart("segment-sizes"), segments.len());
    assert_eq!(chart("movement"), moves.len());
    for s in segments {
        let bar = format!("data-value=\"{}\"", s["patrons"]);
        assert!(dom.contains(&bar), "no bar for {s}");
    }
    let note = match hidden["readers"].as_u64() {
        Some(n) => format!(
            "{n} readers in {} groups of fewer than 10 readers each are not shown.",
            hidden["groups"]
        ),
        None => format!(
            "Fewer than 10 readers, in {} groups of fewer than 10, are not shown.",
            hidden["groups"]
        ),
    };
    assert!(dom.contains(&note), "{note}");
    // The chart says what it leaves out.
    assert!(dom.contains("id=\"segments-hidden\""));
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().next(), Some("segment,branch,category,patrons"));
    assert_eq!(
        rows.lines().count() - 1,
        json["groups"].as_array().unwrap().len()
    );
}
