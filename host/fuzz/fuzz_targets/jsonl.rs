//! Fuzz target: a JSON-lines file of patrons. The invariants are in `lectern::fuzzing::jsonl`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::jsonl(data));
