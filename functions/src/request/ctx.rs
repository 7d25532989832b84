//! [`Ctx`]: what one request brings and what it has learned so far that
//! every route needs (its clock, its purpose of use, its audit entry in the
//! making, the cookies its answer sets). What it may touch (a clinic's
//! database and keys, its actor) is the scope's ([`super::scope`]).

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::ClinicId;
use crate::route::{Access, Flag, Route};
use crate::store::Statement;
use crate::web;

use super::audit::AuditDraft;
use super::prefetch::Reads;

/// One request in flight.
pub(crate) struct Ctx<'a, H: Host> {
    pub app: &'a App<H>,
    pub route: &'static Route,
    /// The values of the path's `{id}` segments.
    pub params: Vec<String>,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    pub ip: Option<IpAddr>,
    /// Seconds since the epoch, as the request's clinic sees them once it
    /// is known ([`Ctx::apply_test_clock`]).
    pub now: i64,
    /// `X-Access-Reason`: the purpose of use.
    pub reason: Option<String>,
    pub audit: AuditDraft,
    /// `Set-Cookie` values of the answer.
    pub cookies: Vec<String>,
    /// Keep the handler's writes even when it answers with an error (failure
    /// counters of sign-in steps).
    pub keep_writes_on_error: bool,
    /// The clinic whose test clock `now` already follows.
    clock_for: Option<ClinicId>,
    /// How many runs of this request found their clinic's data changed
    /// before they could commit ([`crate::host::DbError::Conflict`]).
    pub conflicts: u32,
    /// This is a second run of the request: what it took from the rate
    /// limits it took once.
    pub rerun: bool,
    /// What the route declares it will read ([`super::prefetch`]).
    pub reads: Option<Reads>,
    /// Writes of the region directory (sign-in throttling counters) made
    /// by this run of the request: sent at its end, in parallel with the
    /// clinic's commit, whatever the answer ([`super::pipeline`]).
    pub directory_later: Vec<Statement>,
}

/// Optimistic runs a request gets before it takes its clinic's lock from
/// its first read (the fallback under contention).
pub(crate) const OPTIMISTIC_RUNS: u32 = 3;

/// What a request brings.
pub(crate) struct Incoming {
    pub params: Vec<String>,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    pub ip: Option<IpAddr>,
}

impl<'a, H: Host> Ctx<'a, H> {
    pub(crate) fn new(app: &'a App<H>, route: &'static Route, r: Incoming) -> Self {
        Ctx {
            app,
            route,
            params: r.params,
            method: r.method,
            headers: r.headers,
            query: r.query,
            body: r.body,
            now: app.host.now(),
            ip: r.ip,
            reason: None,
            audit: AuditDraft::default(),
            cookies: Vec::new(),
            keep_writes_on_error: false,
            clock_for: None,
            conflicts: 0,
            rerun: false,
            reads: None,
            directory_later: Vec::new(),
        }
    }

    /// The same request from the start (its next run, after a migration or
    /// a conflict).
    pub(crate) fn restart(self) -> Self {
        let (conflicts, reads) = (self.conflicts, self.reads);
        let incoming = Incoming {
            params: self.params,
            method: self.method,
            headers: self.headers,
            query: self.query,
            body: self.body,
            ip: self.ip,
        };
        let mut cx = Ctx::new(self.app, self.route, incoming);
        cx.conflicts = conflicts;
        cx.rerun = true;
        cx.reads = reads;
        cx
    }

    /// Whether the request's clinic work runs optimistically: on the
    /// routes of signed-in users that write nowhere but their clinic (a
    /// throttled route counts in the directory; [`Flag::Directory`] writes
    /// there) and on sign-in with a password, until it has met
    /// [`OPTIMISTIC_RUNS`] conflicts. Only a host
    /// whose database is across the network makes use of it
    /// ([`crate::host::Conn::begin_work`]).
    pub(crate) fn optimistic(&self) -> bool {
        let signed_in = matches!(self.route.access, Access::Session | Access::Permission(_))
            && !self.route.has(Flag::Throttled)
            && !self.route.has(Flag::Directory);
        // Signing in with a password: its counters go with its end
        // (`directory_later`), its refusal only appends, and a run again
        // on a changed account checks the password again.
        let sign_in = self.route.access == Access::Public && self.route.has(Flag::Credentials);
        (signed_in || sign_in) && self.conflicts < OPTIMISTIC_RUNS
    }

    /// The request body, parsed strictly.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        web::json_body(&self.headers, &self.body)
    }

    /// The query string, refusing parameters not in `allowed`.
    pub(crate) fn query(&self, allowed: &[&str]) -> ApiResult<web::Query> {
        web::Query::parse(self.query.as_deref(), allowed)
    }

    /// The `{id}` path segment, if it has the shape of an id of `kind`; any
    /// other text is simply not found.
    pub(crate) fn path_id(&self, kind: &str) -> ApiResult<String> {
        let id = self.params.first().ok_or_else(ApiError::not_found)?;
        if crate::ids::is_id(kind, id) {
            Ok(id.clone())
        } else {
            Err(ApiError::not_found())
        }
    }

    pub(crate) fn random<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.app.host.fill_random(&mut b);
        b
    }

    /// A new random id of `kind`.
    pub(crate) fn new_id(&self, kind: &str) -> String {
        crate::ids::new_id(kind, self.random())
    }

    /// 421 for a clinic of another region, before any database is opened.
    pub(crate) fn guard_region(&self, clinic: &ClinicId) -> ApiResult<()> {
        if clinic.region() != self.app.config.region.id {
            return Err(ApiError::wrong_region());
        }
        Ok(())
    }

    /// Applies the clinic's test clock offset (test hooks only), once per
    /// request.
    pub(crate) async fn apply_test_clock(&mut self, clinic: &ClinicId) -> ApiResult<()> {
        if self.app.config.test_hooks && self.clock_for.as_ref() != Some(clinic) {
            self.clock_for = Some(clinic.clone());
            self.now = self.app.clinic_now(clinic).await?;
        }
        Ok(())
    }

    /// Sets a cookie on the answer.
    pub(crate) fn set_cookie(&mut self, name: &str, value: &str, max_age: i64) {
        self.cookies.push(web::set_cookie(name, value, max_age));
    }

    /// Removes a cookie from the browser.
    pub(crate) fn clear_cookie(&mut self, name: &str) {
        self.cookies.push(web::clear_cookie(name));
    }
}
