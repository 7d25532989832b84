//! The native Amanah host as a library: the `Host` over embedded libSQL
//! files, the region root key files, the static front end, the HTTP server
//! and its TLS,
//! and the application over a sqld region for operator commands. The
//! `amanah` binary (`main.rs`) is its command line; the benchmarks
//! (`bench/`) drive the same host directly.

pub mod assets;
pub mod native_host;
pub mod ops;
pub mod root_key;
pub mod server;
pub mod sqld;
pub mod tls;
