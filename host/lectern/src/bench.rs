//! The two ways of calling a messenger, side by side, for the benchmark
//! that measures what one patron per instance costs (`cargo xtask bench
//! host`). Built only with the `bench` feature; not part of the API, and
//! not for production builds: these hand records to a plugin without the
//! pipeline's projection and audit, which the caller does instead.

use chrono::NaiveDate;

use crate::model::{Event, Patron, Scored};
use crate::plugin::{Messenger, Scorer};
use crate::{Result, pipeline};

/// What the pipeline does: each patron's requests in a call of their own,
/// on a fresh instance, on `threads` threads. Returns the number of
/// messages composed.
pub fn compose_one_patron_per_call(
    messenger: &Messenger,
    as_of: NaiveDate,
    requests: Vec<(&Event, Patron)>,
    threads: usize,
) -> Result<usize> {
    let results = pipeline::compose_per_patron(messenger, as_of, requests, threads)?;
    Ok(count(results))
}

/// A fresh instance and one call of `scorer` for `patrons`, as the
/// pipeline makes it, without the pipeline's projection and audit entry:
/// what the sandbox itself costs.
pub fn score_without_pipeline(
    scorer: &Scorer,
    as_of: NaiveDate,
    patrons: Vec<Patron>,
) -> Result<Vec<Scored>> {
    scorer.score_batch(as_of, patrons)
}

/// What the pipeline did before issue 11, and must not do: every request
/// in one call on one instance, patrons mixed. Returns the number of
/// messages composed.
pub fn compose_all_in_one_call(
    messenger: &Messenger,
    as_of: NaiveDate,
    requests: Vec<(&Event, Patron)>,
) -> Result<usize> {
    Ok(count(messenger.compose_batch(as_of, requests)?))
}

fn count(results: Vec<crate::plugin::Composition>) -> usize {
    results.iter().flatten().map(Vec::len).sum()
}
