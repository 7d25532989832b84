//! Amanah's application as host-agnostic Rust: the HTTP API, authentication,
//! tenant routing, field encryption, audit, roles and storage.
//!
//! A host (native `amanah serve`, the Cloudflare Worker, the Spin component)
//! implements [`host::Host`] — a libSQL connection per clinic, the region's
//! root keys, a clock and randomness — and passes each `http::Request` to
//! [`App::handle`]. Nothing here touches sockets, files or a runtime, so the
//! crate builds for `wasm32-unknown-unknown` and `wasm32-wasip2` unchanged.

mod api;
pub mod app;
pub mod audit;
pub mod body;
pub mod checkpoint;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod export;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod idempotency;
pub mod ids;
#[cfg(feature = "inject-forgot-clinic")]
pub mod injected;
pub mod ops;
pub mod platform;
pub mod purge;
pub mod rbac;
pub mod region_key;
pub mod rekey;
pub mod routes;
pub mod settings;
pub mod store;
pub mod throttle;
pub mod token;
pub mod validate;
pub mod web;

pub use app::{App, ClientIp, Config, RegionInfo, RequestLog};
pub use host::{Conn, DbError, Host, Row, Value};
