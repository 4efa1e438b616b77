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
