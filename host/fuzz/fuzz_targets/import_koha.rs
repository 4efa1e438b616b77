//! Fuzz target: a Koha REST JSON export file, imported leniently and strictly. The invariants are in `lectern::fuzzing::import`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lectern::fuzzing::import(lectern::Format::Koha, data));
