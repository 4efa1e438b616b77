//! House rules that a reviewer would otherwise have to remember.

use std::path::{Path, PathBuf};

use lectern_tests::repo;

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let mut rs = Vec::new();
    for dir in ["host", "plugins", "tests", "xtask"] {
        files(&repo().join(dir), ".rs", &mut rs);
    }
    let missing: Vec<_> = rs
        .iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!"))
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "start these with a `//!` line saying what they are for: {missing:?}"
    );
}

#[test]
fn no_file_names_a_path_on_the_developers_machine() {
    let mut all = Vec::new();
    for ext in [".rs", ".md", ".toml", ".wit", ".jsonl"] {
        files(&repo(), ext, &mut all);
    }
    let root = repo().display().to_string();
    // Spelt in pieces so that this file does not match itself.
    let (home, root_home) = (["/ho", "me/"].concat(), ["/ro", "ot/"].concat());
    let offenders: Vec<_> = all
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.contains(&root) || text.contains(&home) || text.contains(&root_home)
        })
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(offenders.is_empty(), "machine paths in: {offenders:?}");
}

#[test]
fn every_item_of_the_contract_is_documented() {
    let mut undocumented = Vec::new();
    for version in lectern::SUPPORTED_API_VERSIONS {
        let path = format!("wit/v{version}/crm.wit");
        let wit = std::fs::read_to_string(repo().join(&path)).unwrap();
        undocumented.extend(
            undocumented_items(&wit)
                .into_iter()
                .map(|l| format!("{path}: {l}")),
        );
    }
    assert!(
        undocumented.is_empty(),
        "add a `///` doc to: {undocumented:#?}"
    );
}

fn undocumented_items(wit: &str) -> Vec<String> {
    let lines: Vec<&str> = wit.lines().map(str::trim).collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Declarations, fields, cases and functions; not `use`, braces or docs.
        let is_item = !line.is_empty()
            && !line.starts_with("//")
            && !line.starts_with('}')
            && !line.starts_with("use ")
            && !line.starts_with("import ")
            && !line.starts_with("export ")
            && !line.starts_with("package ");
        let documented = i > 0 && lines[i - 1].starts_with("///");
        if is_item && !documented {
            undocumented.push(format!("line {}: {line}", i + 1));
        }
    }
    undocumented
}
