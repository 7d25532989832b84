//! The native Amanah host as a library: the `Host` over embedded libSQL
//! files, the region root key files, the static front end and the HTTP
//! server. The `amanah` binary (`main.rs`) is its command line; the
//! benchmarks (`bench/`) drive the same host directly.

pub mod assets;
pub mod native_host;
pub mod ops;
pub mod root_key;
pub mod server;
