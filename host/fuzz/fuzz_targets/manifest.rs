//! Fuzz target: a `plugin.toml`. The invariants are in `lectern::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::manifest(data));
