//! The fuzz corpora as a smoke test: every input `cargo xtask fuzz` kept
//! (seeds, inputs that found new paths, and inputs that once crashed) runs
//! through its target's entry point on every test run, so a fix cannot
//! quietly regress. The long runs are `cargo xtask fuzz`, outside CI.

use std::path::Path;

use lectern::{Format, fuzzing};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 10] = [
    ("manifest", fuzzing::manifest),
    ("config", fuzzing::config),
    ("import_folio", |d| fuzzing::import(Format::Folio, d)),
    ("import_koha", |d| fuzzing::import(Format::Koha, d)),
    ("import_koha_csv", |d| fuzzing::import(Format::KohaCsv, d)),
    ("import_csv", |d| fuzzing::import(Format::Csv, d)),
    ("jsonl", fuzzing::jsonl),
    ("scores", fuzzing::scores),
    ("messages", fuzzing::messages),
    ("policy", fuzzing::policy),
];

#[test]
fn every_corpus_input_keeps_its_targets_invariants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .expect("host/fuzz/corpus")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    names.sort();
    assert_eq!(
        dirs, names,
        "one corpus per fuzz target, and a target per corpus"
    );
    for (name, target) in TARGETS {
        let mut inputs = 0;
        for entry in std::fs::read_dir(root.join(name)).unwrap() {
            let path = entry.unwrap().path();
            // A fuzzer running beside the test may have just replaced it.
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name}: {} broke an invariant", path.display());
            inputs += 1;
        }
        assert!(inputs > 0, "{name}: the corpus is empty");
    }
}
