//! Fuzz target: a privacy policy and a refinement, through the checks on plugin output. The invariants are in `lectern::fuzzing::policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::policy(data));
