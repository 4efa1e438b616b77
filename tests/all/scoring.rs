//! The `scorer` world end to end, with the `engagement` plugin.

use lectern::Scored;
use lectern_tests::{host, pipeline, plugins, sample_patrons, shared_host};

fn score_samples() -> Vec<Scored> {
    let (host, _) = host();
    let engagement = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    pipeline().score(&engagement, &sample_patrons()).unwrap()
}

fn find<'a>(scores: &'a [Scored], id: &str) -> &'a Scored {
    scores.iter().find(|s| s.patron == id).unwrap()
}

#[test]
fn every_patron_gets_a_score_segment_and_reasons_under_their_own_id() {
    let patrons = sample_patrons();
    let scores = score_samples();
    let ids: Vec<&str> = scores.iter().map(|s| s.patron.as_str()).collect();
    let want: Vec<&str> = patrons.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids, want,
        "scores come back in order, under the library's ids"
    );
    for s in &scores {
        assert!((0.0..=100.0).contains(&s.value), "{s:?}");
        assert!(!s.reasons.is_empty(), "every score explains itself: {s:?}");
    }
}

#[test]
fn researchers_with_heavy_broad_use_are_key_readers() {
    let scores = score_samples();
    // Faculty with a research project, 86 loans across 5 subjects.
    let wang = find(&scores, "P0001");
    assert_eq!(wang.segment, "key-reader");
    assert!(wang.value > 90.0, "{wang:?}");
    assert!(
        wang.reasons.iter().any(|r| r.contains("research project")),
        "{wang:?}"
    );
    // A graduate researcher counts too.
    assert_eq!(find(&scores, "P0009").segment, "key-reader");
    // Heavy use without a research role is active, not key.
    assert_eq!(find(&scores, "P0003").segment, "active");
}

#[test]
fn lapsed_and_dormant_readers_are_found() {
    let scores = score_samples();
    let tom = find(&scores, "P0005");
    assert_eq!(tom.segment, "lapsing", "{tom:?}");
    assert!(
        tom.reasons.iter().any(|r| r.contains("131 days")),
        "{tom:?}"
    );
    assert_eq!(find(&scores, "P0006").segment, "dormant");
    let never = find(&scores, "P0010");
    assert_eq!(never.segment, "dormant");
    assert!(never.reasons.contains(&"no recorded activity".to_string()));
}

#[test]
fn configuration_from_the_library_changes_the_result() {
    let lectern_host = lectern::Host::builder()
        .plugin_config(
            "engagement",
            [("heavy-loans".to_string(), "100".to_string())].into(),
        )
        .build()
        .unwrap();
    let engagement = lectern_host.load_scorer(plugins::ENGAGEMENT).unwrap();
    let scores = pipeline().score(&engagement, &sample_patrons()).unwrap();
    assert_ne!(
        find(&scores, "P0001").segment,
        "key-reader",
        "86 loans is not heavy at 100"
    );

    let bad = lectern::Host::builder()
        .plugin_config(
            "engagement",
            [("heavy-loans".to_string(), "lots".to_string())].into(),
        )
        .build()
        .unwrap();
    // A value that does not fit the manifest's schema is refused when the
    // plugin loads, before it runs.
    let err = bad.load_scorer(plugins::ENGAGEMENT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `engagement`: the library's value for `heavy-loans` does not fit this version, \
         which takes a whole number: \"lots\" is not a whole number"
    );
}

#[test]
fn batching_does_not_change_results() {
    let (host, _) = host();
    let engagement = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    let whole = pipeline().score(&engagement, &sample_patrons()).unwrap();
    let in_threes = pipeline()
        .batch_size(3)
        .score(&engagement, &sample_patrons())
        .unwrap();
    assert_eq!(whole, in_threes);
}

#[test]
fn key_readers_are_found_by_contribution_and_research_roles() {
    let (host, _) = host();
    let scorer = host.load_scorer(plugins::KEY_READERS).unwrap();
    let scores = pipeline().score(&scorer, &sample_patrons()).unwrap();
    let wang = find(&scores, "P0001");
    assert_eq!(wang.segment, "key-reader");
    assert_eq!(wang.value, 100.0, "{wang:?}");
    for r in [
        "+40: borrowed 86 items this year",
        "+15: carries a research project",
        "+15: leads their discipline",
    ] {
        assert!(wang.reasons.contains(&r.to_string()), "{r}: {wang:?}");
    }
    // Priya's subjects are withheld (no consent), so breadth cannot count.
    assert!(
        !find(&scores, "P0004")
            .reasons
            .iter()
            .any(|r| r.contains("subjects"))
    );
    let none = find(&scores, "P0010");
    assert_eq!((none.segment.as_str(), none.value), ("reader", 0.0));
}

#[test]
fn churn_risk_rises_with_falling_use_silence_and_expiry() {
    let (host, _) = host();
    let scorer = host.load_scorer(plugins::CHURN_RISK).unwrap();
    let scores = pipeline().score(&scorer, &sample_patrons()).unwrap();
    let tom = find(&scores, "P0005"); // 131 days silent, membership ends in 22 days
    assert_eq!(tom.segment, "high-risk", "{tom:?}");
    assert!(
        tom.reasons
            .contains(&"membership expires in 22 days".to_string()),
        "{tom:?}"
    );
    assert!(
        tom.reasons
            .iter()
            .any(|r| r.starts_with("borrowing fell 100%")),
        "{tom:?}"
    );
    let liu = find(&scores, "P0006"); // 502 days silent, expired in July
    assert_eq!(liu.segment, "high-risk");
    assert!(
        liu.reasons
            .contains(&"membership expired 136 days ago".to_string()),
        "{liu:?}"
    );
    let wang = find(&scores, "P0001");
    assert_eq!(
        (wang.segment.as_str(), wang.reasons.as_slice()),
        ("steady", &["use is steady".to_string()][..])
    );
}

#[test]
fn a_scorer_written_in_python_runs_like_any_other() {
    // Built by componentize-py; the first load compiles 18 MB of Python
    // runtime, later ones come from the shared cache.
    let (host, _) = host();
    let loyalty = host.load_scorer(plugins::LOYALTY).unwrap();
    assert!(
        loyalty.plugin().component().size > 10 << 20,
        "a Python component carries its runtime"
    );
    let scores = pipeline().score(&loyalty, &sample_patrons()).unwrap();
    let sofia = find(&scores, "P0007"); // enrolled 2016, steady use
    assert_eq!((sofia.segment.as_str(), sofia.value), ("loyal", 99.0));
    assert_eq!(
        sofia.reasons,
        [
            "a member for 10.6 years",
            "borrowed 19 items this year, 5 of them lately"
        ]
    );
    let liu = find(&scores, "P0006"); // no loans this year
    assert_eq!(liu.segment, "new-or-occasional");
    // `today` comes from the host here too.
    let later = pipeline()
        .as_of(chrono::NaiveDate::from_ymd_opt(2036, 11, 28).unwrap())
        .score(&loyalty, &sample_patrons())
        .unwrap();
    assert_eq!(find(&later, "P0007").reasons[0], "a member for 20.6 years");
}

#[test]
fn a_scorer_written_in_javascript_runs_like_any_other() {
    // Built by jco (componentize-js) from plugins/js/busy, without HTTP.
    let busy = shared_host().load_scorer(plugins::BUSY).unwrap();
    let info = busy.plugin().component();
    assert!(
        info.size > 5 << 20,
        "a JavaScript component carries its engine"
    );
    assert!(
        !info.imports.iter().any(|i| i.starts_with("wasi:http")),
        "{:?}",
        info.imports
    );
    let scores = pipeline().score(&busy, &sample_patrons()).unwrap();
    let heavy = find(&scores, "P0009"); // 33 loans this year
    assert_eq!((heavy.segment.as_str(), heavy.value), ("busy", 55.0));
    assert_eq!(heavy.reasons, ["33 loans in the year to 2026-11-28"]);
    let none = find(&scores, "P0010");
    assert_eq!((none.segment.as_str(), none.value), ("quiet", 0.0));
}
