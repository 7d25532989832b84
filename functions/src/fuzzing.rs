//! Entry points for `cargo fuzz` (`functions/fuzz/`), behind the feature
//! `fuzzing`: each takes arbitrary bytes and must return without panicking,
//! whatever they are. They reach what the fuzz targets cannot from outside
//! the crate: the request types and their validation.

/// Every request body type of the API, parsed strictly from `data`, and
/// validated where the handler validates.
pub fn json_bodies(data: &[u8]) {
    crate::api::fuzz_json_bodies(data)
}
