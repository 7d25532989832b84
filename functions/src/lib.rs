//! Amanah's application as host-agnostic Rust: the HTTP API, authentication,
//! tenant routing, field encryption, audit, roles and storage.
//!
//! A host (native `amanah serve`, the Cloudflare Worker, the Spin component)
//! implements [`Host`] — a libSQL connection per clinic, the region's root
//! keys, a clock and randomness — and passes each `http::Request` to
//! [`App::handle`]. Nothing here touches sockets, files or a runtime, so the
//! crate builds for `wasm32-unknown-unknown` and `wasm32-wasip2` unchanged.
//!
//! Where things live (each module opens with what it decides):
//!
//! | module | what it decides |
//! |---|---|
//! | [`routes`], [`route`] | the route table: one row per endpoint; what a route is |
//! | `handle`, `request` | one request: pipeline, authentication, scopes, audit entry, answer |
//! | `api` | the handlers: parse, validate, call records, reply |
//! | [`fhir`] | the FHIR R4 face: ids, search, Bundles, resources, bulk export |
//! | `records` | the tables, one file each: schema, sealed columns, SQL, rows ↔ structs |
//! | `tenancy` | which database and keys a clinic's request gets; schema checks |
//! | [`jobs`] | work outside a request: purge, key sweep, checkpoints, `maintain` |
//! | [`ops`] | what operator commands ask of the application |
//! | [`crypto`], [`token`], [`rbac`], [`web`], [`store`] | one rule each |

// The surface hosts and tools use.
pub mod app;
pub mod body;
pub mod checkpoint;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod export;
pub mod fhir;
pub mod host;
pub mod ids;
pub mod jobs;
pub mod ops;
pub mod platform;
pub mod rbac;
pub mod region_key;
pub mod route;
pub mod routes;
pub mod settings;
pub mod store;
pub mod token;
pub mod validate;
pub mod web;

pub use app::{App, ClientIp, Config, RegionInfo, SignupLimits};
pub use host::{Conn, DbError, Host, Row, Value};
pub use records::audit;
pub use request::rate::RequestLimits;
pub use request::render::RequestLog;

// The application's inside.
mod api;
mod handle;
mod openapi;
mod records;
mod request;
mod tenancy;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "inject-forgot-clinic")]
pub mod injected;
