//! The SQLite store passes the store conformance suite: every trait method
//! and every invariant, each check on a fresh store.

use lectern::SqliteStore;

#[test]
fn the_sqlite_store_passes_the_conformance_suite() {
    lectern::conformance::run(&mut || SqliteStore::temporary().expect("a temporary store"));
}

#[test]
fn every_check_has_a_distinct_name() {
    let mut names: Vec<&str> = lectern::conformance::CHECKS.iter().map(|c| c.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), lectern::conformance::CHECKS.len());
}
