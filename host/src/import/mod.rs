//! Importers: records from an ILS's exports into a [`Store`], with a report
//! of what was imported, updated and skipped, and why.
//!
//! Every importer is idempotent (records are keyed by the ILS's ids and
//! updated in place), writes in one transaction, and never drops a record
//! silently: a bad record is skipped and reported, or with `strict` the whole
//! import stops and nothing is written.

mod folio;

use std::fmt;
use std::path::PathBuf;

use crate::store::{Store, Written};

pub use folio::import_folio;

/// One record an importer did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The file.
    pub file: PathBuf,
    /// The record's position in the file, from 1.
    pub record: usize,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// Why, and what to do.
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: record {}", self.file.display(), self.record)?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// New and updated records.
    pub written: Written,
    /// Records skipped, each with its reason.
    pub skipped: Vec<Skip>,
}

/// Options every importer takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Stop at any bad record and write nothing.
    pub strict: bool,
}

/// Writes `batch` unless `strict` forbids it because of `skipped`.
fn finish(
    store: &mut dyn Store,
    batch: crate::store::Batch,
    skipped: Vec<Skip>,
    options: ImportOptions,
) -> anyhow::Result<ImportReport> {
    if options.strict && !skipped.is_empty() {
        let list: Vec<String> = skipped.iter().map(|s| format!("  {s}")).collect();
        anyhow::bail!(
            "{} bad records; nothing was written (--strict):\n{}",
            skipped.len(),
            list.join("\n")
        );
    }
    let written = store.write(&batch)?;
    Ok(ImportReport { written, skipped })
}
