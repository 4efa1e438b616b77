//! Fuzz target: a scorer's answer, through the checks on plugin output. The invariants are in `lectern::fuzzing::scores`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::scores(data));
