//! Fuzz target: a messenger's answer for one event, through the checks on plugin output. The invariants are in `lectern::fuzzing::messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::messages(data));
