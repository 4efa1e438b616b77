//! Fuzz target: a `lectern.toml`. The invariants are in `lectern::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::config(data));
