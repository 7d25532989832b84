//! End-to-end harness: drives a running Amanah deployment over HTTP.
//!
//! By default each [`Deployment`] starts its own `amanah serve` on a fresh
//! temporary data directory with free ports and test hooks on. To run the same
//! suites against another host, start it and either set `AMANAH_DEPLOYMENT`
//! to the `deployment.json` that `cargo xtask up --host worker --test-hooks`
//! writes (URLs, sqld servers, data dir, logs), or set `AMANAH_PK_URL` and
//! `AMANAH_AE_URL` (and `AMANAH_DATA_DIR` where its files can be read; tests
//! that inspect files skip themselves otherwise). The host must accept
//! `POST /__test/clock`.

//!
//! The harness by job: [`deployment`] (which host, its lifecycle),
//! [`client`] (HTTP as a client), [`fixtures`] (clinics, staff, codes),
//! [`databases`] (files and SQL as someone holding them), [`operators`]
//! (the `amanah` operator commands) and [`browser`] (headless Chromium).

pub use ureq::http::Method;

pub mod browser;
pub mod client;
pub mod databases;
pub mod deployment;
pub mod fixtures;
pub mod operators;

pub use client::{Client, Resp};
pub use databases::*;
pub use deployment::{
    amanah_bin, frontend_dist, log_count, wait_until, Deployment, FreshSqld, HostKind, Layout,
    SqldRegion,
};
pub use fixtures::*;
