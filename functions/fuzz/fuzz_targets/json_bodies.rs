//! Every request body type, parsed strictly and validated: never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    amanah_functions::fuzzing::json_bodies(data);
});
