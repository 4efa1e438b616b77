//! Checks on the library's own source that no compiler makes: its modules
//! form no cycle. (That every file starts with a `//!` line is checked for
//! the whole tree by `tests/all/tidy.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, each with the files that make it up.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" {
            continue;
        }
        let files = out.entry(name).or_default();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else {
            files.push(path);
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The modules `text` names through `crate::`, in paths and in grouped
/// `use crate::{a, b::C}` imports.
fn named_modules(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if known.contains(&name) {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if known.contains(&name) {
                out.insert(name);
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn library_modules_form_no_cycle() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, files)| {
            let mut uses = BTreeSet::new();
            for f in files {
                uses.extend(named_modules(&std::fs::read_to_string(f).unwrap(), &known));
            }
            uses.remove(name);
            (name.clone(), uses)
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the library's modules form a cycle: {}; move what both sides need into a module \
             below them",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let known: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let graph = BTreeMap::from([
        ("a".to_string(), named_modules("use crate::b::X;", &known)),
        (
            "b".to_string(),
            named_modules("use crate::{c, d::Y};", &known),
        ),
        ("c".to_string(), named_modules("crate::a::f()", &known)),
    ]);
    assert_eq!(
        find_cycle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    let acyclic = BTreeMap::from([
        ("a".to_string(), named_modules("use crate::b::X;", &known)),
        ("b".to_string(), BTreeSet::new()),
    ]);
    assert_eq!(find_cycle(&acyclic), None);
}
