//! A plugin built against the released 0.1.0 contract runs on this host
//! beside one built against 0.2.0, in one host, with the same results; and
//! the README's compatibility table is the host's.

use lectern::SUPPORTED_API_VERSIONS;
use lectern_tests::{pipeline, plugins, repo, sample_patrons, shared_host};

#[test]
fn a_0_1_0_plugin_and_a_0_2_0_plugin_run_side_by_side_with_the_same_results() {
    let host = shared_host();
    let old = host
        .load_scorer(repo().join("tests/fixtures/api-0.1.0/engagement"))
        .unwrap();
    let new = host.load_scorer(plugins::ENGAGEMENT).unwrap();
    assert_eq!(old.plugin().manifest().api_version, "0.1.0");
    assert_eq!(new.plugin().manifest().api_version, "0.2.0");
    assert!(
        old.plugin()
            .component()
            .exports
            .contains(&"lectern:crm/scoring@0.1.0".to_string())
    );
    let pipeline = pipeline();
    let patrons = sample_patrons();
    let (a, b) = (
        pipeline.score(&old, &patrons).unwrap(),
        pipeline.score(&new, &patrons).unwrap(),
    );
    assert_eq!(a.len(), patrons.len());
    assert_eq!(a, b, "the 0.1.0 build scores as the 0.2.0 build does");
    assert!(a.iter().any(|s| s.segment == "key-reader"), "{a:#?}");
}

#[test]
fn a_manifest_that_misstates_its_components_version_is_told_which_it_is() {
    let dir = lectern_tests::plugin_copy(plugins::ENGAGEMENT, |m| {
        m.replace("api-version = \"0.2.0\"", "api-version = \"0.1.0\"")
    });
    let err = shared_host().load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(
            "the component was built against lectern:crm@0.2.0, but its manifest says \
             api-version 0.1.0; set `plugin.api-version = \"0.2.0\"`"
        ),
        "{err}"
    );
}

#[test]
fn the_readmes_compatibility_table_is_the_hosts() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let row = readme
        .lines()
        .skip_while(|l| !l.starts_with("| Lectern | runs plugins built against"))
        .nth(2)
        .expect("the compatibility table in README.md");
    let listed = row.split('|').nth(2).unwrap().trim();
    assert_eq!(listed, SUPPORTED_API_VERSIONS.join(", "), "{row}");
    for v in SUPPORTED_API_VERSIONS {
        assert!(
            repo().join(format!("wit/v{v}/crm.wit")).is_file(),
            "the table lists {v}, which has no wit/v{v}/"
        );
        assert!(row.contains(&format!("{v}: ")), "{row} says nothing of {v}");
    }
}

/// Every field a columnar batch can carry, for a `testkit` that dumps what
/// it saw.
const COLUMN_FIELDS: &str = r#"fields = ["birth-date", "age-band", "category", "home-branch", "enrolled-on", "expires-on", "attributes", "consents", "locale", "channels", "activity", "interests", "segments"]"#;

#[test]
fn a_scorer_sees_the_same_records_in_columns_as_in_records_under_every_policy() {
    let dir = lectern_tests::plugin_copy(plugins::TESTKIT, |m| {
        m.replace("mode = \"echo\"", "mode = \"dump\"")
            .replace(r#"fields = ["category", "activity"]"#, COLUMN_FIELDS)
    });
    let columns = shared_host().load_scorer(dir.path()).unwrap();
    assert!(columns.is_columnar(), "an SDK scorer takes columns");
    let records = columns.clone().with_records();
    assert!(!records.is_columnar());

    // The samples, and patrons with little or nothing known: absences must
    // survive the columns as absences, and empty lists as empty lists.
    let mut patrons = sample_patrons();
    patrons.push(lectern::Patron {
        id: "bare".into(),
        ..lectern::Patron::default()
    });
    patrons.push(lectern::Patron {
        id: "empty-lists".into(),
        attributes: Some(Default::default()),
        interests: Some(Default::default()),
        channels: Some(Vec::new()),
        activity: Some(lectern::Activity::default()),
        ..lectern::Patron::default()
    });
    for policy in [plugins::BASELINE_PRIVACY, plugins::KEEP_ALL_PRIVACY] {
        let library = lectern::Lectern::open(
            shared_host(),
            lectern::SqliteStore::temporary().unwrap(),
            lectern_tests::keyring(),
            lectern::Config {
                policy: Some(policy.into()),
                ..lectern::Config::default()
            },
        )
        .unwrap();
        let pipeline = library.pipeline(lectern_tests::as_of()).batch_size(5);
        let (a, b) = (
            pipeline.score(&columns, &patrons).unwrap(),
            pipeline.score(&records, &patrons).unwrap(),
        );
        assert_eq!(a, b, "{policy}: columns and records differ");
        let seen: Vec<&str> = a
            .iter()
            .flat_map(|s| &s.reasons)
            .map(String::as_str)
            .collect();
        for shown in [
            "interests=Some([SubjectCount",
            "interests=None",
            "attributes=Some([])",
            "activity=None",
            "name=None",
        ] {
            assert!(
                seen.contains(&shown) || seen.iter().any(|r| r.starts_with(shown)),
                "{policy}: nothing shows {shown}"
            );
        }
        assert!(!seen.iter().any(|r| r.starts_with("name=Some")), "{policy}");
        // The baseline keeps channels from scoring; keep-all lets them in.
        let channels = seen.iter().any(|r| r.starts_with("channels=Some([])"));
        assert_eq!(channels, policy == plugins::KEEP_ALL_PRIVACY, "{policy}");
    }
}

#[test]
fn the_engagement_scorer_gives_the_same_scores_in_columns_and_in_records() {
    let columns = shared_host().load_scorer(plugins::ENGAGEMENT).unwrap();
    assert!(columns.is_columnar());
    let records = columns.clone().with_records();
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = lectern_tests::generated_library(dir.path(), 2000);
    let mut library = lectern_tests::library();
    library
        .import(
            lectern::Format::Csv,
            &files,
            lectern::ImportOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    let as_of = lectern_tests::as_of();
    let a = library
        .score_store(&columns, as_of, lectern::Keep::All, &mut |_, _| {})
        .unwrap()
        .scores;
    let b = library
        .score_store(&records, as_of, lectern::Keep::All, &mut |_, _| {})
        .unwrap()
        .scores;
    assert_eq!(a.len(), 2000);
    assert_eq!(a, b);
    let segments: std::collections::BTreeSet<_> = a.iter().map(|s| s.segment.as_str()).collect();
    assert!(segments.len() >= 3, "{segments:?}");
}

#[test]
fn a_python_scorer_in_columns_gives_what_it_and_the_record_scorer_give_in_records() {
    // `loyalty-columns` is `loyalty` with the columnar export as well,
    // written in Python: three ways to the same scores.
    let columns = shared_host().load_scorer(plugins::LOYALTY_COLUMNS).unwrap();
    assert!(columns.is_columnar(), "componentize-py built both exports");
    let records = columns.clone().with_records();
    let original = shared_host().load_scorer(plugins::LOYALTY).unwrap();
    let mut patrons = sample_patrons();
    patrons.push(lectern::Patron {
        id: "bare".into(),
        ..lectern::Patron::default()
    });
    let pipeline = pipeline().batch_size(4);
    let a = pipeline.score(&columns, &patrons).unwrap();
    assert_eq!(a, pipeline.score(&records, &patrons).unwrap());
    let b = pipeline.score(&original, &patrons).unwrap();
    assert_eq!(
        a.iter()
            .map(|s| (&s.segment, s.value, &s.reasons))
            .collect::<Vec<_>>(),
        b.iter()
            .map(|s| (&s.segment, s.value, &s.reasons))
            .collect::<Vec<_>>()
    );
    let bare = a.iter().find(|s| s.reasons.len() == 1 && s.value == 0.0);
    assert_eq!(
        bare.map(|s| s.reasons[0].as_str()),
        Some("no membership date or use recorded")
    );
}

#[test]
fn the_sdk_carries_the_released_wit_unchanged() {
    // The SDK is published with the WIT inside it; the copy must be the
    // contract as released, byte for byte.
    let released = repo().join("wit/v0.2.0");
    let carried = repo().join("plugins/sdk/wit/v0.2.0");
    let names = |dir: &std::path::Path| {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&released), names(&carried));
    for name in names(&released) {
        assert_eq!(
            std::fs::read(released.join(&name)).unwrap(),
            std::fs::read(carried.join(&name)).unwrap(),
            "plugins/sdk/wit/v0.2.0/{name} differs from wit/v0.2.0/{name}: copy it over"
        );
    }
}

#[test]
fn the_typescript_declarations_are_the_wits() {
    // plugins/js/types is what `cargo xtask js-types` writes from the WIT;
    // a change to the WIT must come with them regenerated.
    let fresh = tempfile::tempdir().unwrap();
    xtask::write_js_types(&repo(), fresh.path()).unwrap();
    let shipped = repo().join("plugins/js/types");
    for world in xtask::JS_WORLDS {
        for file in [
            format!("{world}/{world}.d.ts"),
            format!("{world}/interfaces/lectern-crm-types.d.ts"),
            format!("{world}/interfaces/lectern-crm-host.d.ts"),
        ] {
            assert_eq!(
                std::fs::read_to_string(fresh.path().join(&file)).unwrap(),
                std::fs::read_to_string(shipped.join(&file)).unwrap_or_default(),
                "plugins/js/types/{file} is stale: run `cargo xtask js-types`"
            );
        }
    }
}
