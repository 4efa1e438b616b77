//! How the command prints: tables for people, JSON for machines, progress
//! bars on standard error.

use anyhow::Result;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

/// A table with `header`, fitted to the terminal.
pub fn table<'a>(header: impl IntoIterator<Item = &'a str>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

/// Writes one line to standard output; see `out!`.
pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        // Standard output is gone some other way (a full disk): say so once
        // on standard error and stop, rather than panic.
        eprintln!("lectern: cannot write to standard output: {e}");
        std::process::exit(74);
    }
}

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        // A reader that stopped reading, such as `head`, is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A progress bar of `len` steps with `template`, hidden for `--json`.
pub fn bar(json: bool, len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
    bar
}

/// Writes `text` to `path`, saying which file failed.
pub fn write_file(path: &std::path::Path, text: String) -> Result<()> {
    use anyhow::Context as _;
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}
