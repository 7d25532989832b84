//! One request, from the route found to the answer rendered: what it
//! carries ([`ctx`]), who it acts as ([`actor`], found by [`auth`]), what a
//! handler may touch ([`scope`]), the checks before any work ([`guards`]),
//! the steps and the end of its transaction ([`pipeline`]), the reads a
//! route declares ahead ([`prefetch`]), its audit entry
//! ([`audit`]), idempotent replays ([`idempotency`]) and the answer
//! ([`render`]). The entry point is [`crate::App::handle`].

pub(crate) mod actor;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod ctx;
pub(crate) mod guards;
pub(crate) mod idempotency;
pub(crate) mod pipeline;
pub(crate) mod prefetch;
pub mod rate;
pub(crate) mod render;
pub(crate) mod scope;
pub(crate) mod session;
pub(crate) mod sign_in;

pub(crate) use audit::Resource;
pub(crate) use render::{Payload, Reply};
pub(crate) use scope::{ClinicScope, Open};
