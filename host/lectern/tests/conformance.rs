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

/// The PostgreSQL server the tests use: `LECTERN_TEST_POSTGRES`, else the
/// local one `cargo xtask test` makes sure is running.
fn postgres_url() -> String {
    std::env::var("LECTERN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[test]
fn the_postgres_store_passes_the_conformance_suite() {
    let url = postgres_url();
    lectern::conformance::run(&mut || {
        lectern::PgStore::temporary(&url).unwrap_or_else(|e| {
            panic!(
                "no PostgreSQL store at {url}: {e:#}; start the server or set LECTERN_TEST_POSTGRES"
            )
        })
    });
}
