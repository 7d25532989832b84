//! The application as one function from request to response.
//!
//! [`App::handle`] runs every request through the same steps: find the route;
//! authenticate (token → region guard → live server-side session); enforce
//! TOTP enrolment and the route's permission; run the handler inside one write
//! transaction on the clinic's own database; append the audit entry in that
//! same transaction; render with the security headers.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::audit::{self, Entry, Outcome};
use crate::body::Body;
use crate::clock;
use crate::crypto::blind::{BlindIndex, TermKind};
use crate::crypto::field::{Field, FieldCipher};
use crate::crypto::keys::{DataKey, KeyBytes, RootKeyring};
use crate::error::{ApiError, ApiResult, Code};
use crate::export;
use crate::host::{Conn, DbError, Host, Value};
use crate::idempotency;
use crate::ids::ClinicId;
use crate::rbac::{self, Role};
use crate::routes::{self, Access, Route};
use crate::store::{self, schema, RowExt};
use crate::token::{Subject, TokenKeys, TokenKind};
use crate::web;

/// A region as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RegionInfo {
    pub id: String,
    pub name: String,
    pub location: String,
    /// This deployment's base URL for the region, where the host knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// How one function instance is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The region this instance serves.
    pub region: RegionInfo,
    /// Every region of the deployment (for `/api/v1/regions` and sign-up).
    pub regions: Vec<RegionInfo>,
    /// Session ends after this long without a request (15 minutes).
    pub idle_timeout_secs: i64,
    /// Session ends this long after login, whatever the activity (12 hours).
    pub absolute_timeout_secs: i64,
    /// Enables `POST /__test/clock` (per-clinic clock offsets). Tests only.
    pub test_hooks: bool,
}

impl Config {
    pub fn new(region: RegionInfo, regions: Vec<RegionInfo>) -> Self {
        Config {
            region,
            regions,
            idle_timeout_secs: 15 * clock::MINUTE,
            absolute_timeout_secs: 12 * 60 * clock::MINUTE,
            test_hooks: false,
        }
    }
}

/// The client address, put on the request by the host.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// What the host may log about a handled request: no personal data.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Route template (`/api/v1/patients/{id}`), never the raw path.
    pub route: &'static str,
    pub error_code: Option<&'static str>,
    /// Internal detail of a 5xx, without personal data.
    pub detail: Option<String>,
}

/// What the application derives from the host's root keys, made again
/// when they change (a rotation).
struct RootDerived {
    ring: Arc<RootKeyring>,
    tokens: Arc<TokenKeys>,
    /// Throttling counters are keyed under the newest root version: a
    /// rotation starts them afresh (they last minutes).
    throttle_key: Arc<KeyBytes>,
}

impl RootDerived {
    fn new(ring: Arc<RootKeyring>) -> Self {
        RootDerived {
            tokens: Arc::new(TokenKeys::new(&ring)),
            throttle_key: Arc::new(ring.current().derive("throttle")),
            ring,
        }
    }
}

/// The application over a host.
pub struct App<H: Host> {
    pub(crate) host: H,
    pub(crate) config: Config,
    root_derived: Mutex<Arc<RootDerived>>,
    region_key: Mutex<Option<Arc<crate::region_key::RegionKey>>>,
    migrated: Mutex<HashSet<String>>,
    directory_ready: AtomicBool,
    #[cfg(feature = "inject-forgot-clinic")]
    pub(crate) injected: crate::injected::ForgotClinic,
}

/// A handler's answer.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Payload,
}

/// What a reply carries.
pub(crate) enum Payload {
    Empty,
    Json(serde_json::Value),
    /// An export, streamed after the request's transaction commits.
    Export(export::Plan),
    /// The export under way.
    Stream(export::Plan, Body),
}

impl Reply {
    pub fn ok(body: impl Serialize) -> ApiResult<Reply> {
        Self::with(StatusCode::OK, body)
    }
    pub fn created(body: impl Serialize) -> ApiResult<Reply> {
        Self::with(StatusCode::CREATED, body)
    }
    pub fn with(status: StatusCode, body: impl Serialize) -> ApiResult<Reply> {
        let body = serde_json::to_value(body)
            .map_err(|e| ApiError::internal(format!("serialise: {e}")))?;
        Ok(Reply {
            status,
            body: Payload::Json(body),
        })
    }
    pub fn no_content() -> ApiResult<Reply> {
        Ok(Reply {
            status: StatusCode::NO_CONTENT,
            body: Payload::Empty,
        })
    }
    pub fn export(plan: export::Plan) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Payload::Export(plan),
        }
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub user_id: String,
    pub role: Role,
    pub session_id: String,
    pub session_expires_at: i64,
    /// TOTP enrolled, as of this request.
    pub mfa_enabled: bool,
    /// What the role holds in this clinic, as of this request.
    pub grants: rbac::Grants,
    /// Set when platform support acts in the clinic under a ticket;
    /// `user_id` is then the staff member's id and `grants` the support set.
    pub impersonation: Option<Impersonation>,
    pub token: String,
}

/// A support session's ticket, as every response and audit entry shows it.
#[derive(Debug, Clone)]
pub(crate) struct Impersonation {
    pub ticket: String,
    /// The owner who approved the request.
    pub approved_by: String,
    pub expires_at: i64,
}

impl Impersonation {
    /// The audit trail's `on_behalf_of`: ticket and approving owner.
    pub fn on_behalf_of(&self) -> String {
        format!("ticket:{} approved_by:{}", self.ticket, self.approved_by)
    }
}

/// What the directory says of a clinic that can be opened.
pub(crate) struct ClinicState {
    /// Set while the clinic is scheduled for deletion.
    pub purge_after: Option<i64>,
}

/// A clinic's keys for this request.
pub(crate) struct ClinicKeys {
    /// Seals under the current data key, opens under every version held.
    pub cipher: FieldCipher,
    /// Blind index of the current version: what writes store.
    pub blind: BlindIndex,
    /// Blind indexes of every version held, the current one first: what
    /// lookups ask for. After a rotation the sweep rebuilds every term under
    /// the current version, but a request that loaded the old keys just
    /// before the rotation may still write one old term after the sweep
    /// passed; asking under every version finds that patient too (a clinic
    /// holds a handful of versions, so a lookup costs a few more tokens).
    pub search: Vec<BlindIndex>,
}

/// A clinic's data keys, unwrapped: every version it holds, oldest first.
/// The current one seals; older ones still open what they sealed (audit
/// entries forever, other fields until the sweep re-seals them).
pub struct DataKeys {
    pub keys: Vec<DataKey>,
    /// The version that seals.
    pub current: u32,
}

impl DataKeys {
    pub fn current(&self) -> ApiResult<&DataKey> {
        self.get(self.current)
            .ok_or_else(|| ApiError::internal("the clinic's current data key is missing"))
    }

    pub fn get(&self, version: u32) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.version == version)
    }
}

/// What the audit entry of this request says, filled in as the request runs.
#[derive(Default)]
pub(crate) struct AuditDraft {
    /// Actor when no principal is known (a login attempt, platform staff).
    pub actor: Option<(String, Option<Role>)>,
    /// The actor's role when it is not a clinic role (`support`).
    pub role_name: Option<&'static str>,
    pub on_behalf_of: Option<String>,
    /// Also record the request in the platform audit stream.
    pub platform: bool,
    pub resource: Option<String>,
    pub patient_id: Option<String>,
}

/// One request in flight.
pub(crate) struct Ctx<'a, H: Host> {
    pub app: &'a App<H>,
    pub route: &'static Route,
    pub params: Vec<String>,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    pub now: i64,
    pub ip: Option<IpAddr>,
    pub reason: Option<String>,
    pub clinic: Option<ClinicId>,
    db: Option<H::Conn>,
    keys: Option<ClinicKeys>,
    /// When the clinic is scheduled for deletion: its purge time.
    pub deletion: Option<i64>,
    pub principal: Option<Principal>,
    /// The platform staff member of a staff route.
    pub staff: Option<crate::api::support::Staff>,
    pub audit: AuditDraft,
    /// Keep the handler's writes even when it answers with an error (failure
    /// counters of login and TOTP).
    pub keep_writes_on_error: bool,
    pub set_cookies: Vec<String>,
    /// The clinic whose test clock `now` already follows.
    clock_for: Option<ClinicId>,
    /// The audit chain's head, read in this request's transaction.
    audit_head: Option<audit::Head>,
    /// The client's idempotency key, on a route that takes one.
    idempotency: Option<idempotency::Key>,
    /// The answer is the stored one of an earlier request with the key.
    pub replayed: bool,
}

/// What a request brings, as [`Ctx`] holds it.
struct Incoming {
    params: Vec<String>,
    method: Method,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
    ip: Option<IpAddr>,
}

impl<'a, H: Host> Ctx<'a, H> {
    fn new(app: &'a App<H>, route: &'static Route, r: Incoming) -> Self {
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
            clinic: None,
            db: None,
            keys: None,
            deletion: None,
            principal: None,
            staff: None,
            audit: AuditDraft::default(),
            keep_writes_on_error: false,
            set_cookies: Vec::new(),
            clock_for: None,
            audit_head: None,
            idempotency: None,
            replayed: false,
        }
    }

    /// The same request from the start, in a fresh context (its second run,
    /// after a migration).
    fn restart(self) -> Self {
        let incoming = Incoming {
            params: self.params,
            method: self.method,
            headers: self.headers,
            query: self.query,
            body: self.body,
            ip: self.ip,
        };
        Ctx::new(self.app, self.route, incoming)
    }
}

impl<H: Host> App<H> {
    pub fn new(host: H, config: Config) -> Self {
        let derived = RootDerived::new(host.root_keys());
        App {
            root_derived: Mutex::new(Arc::new(derived)),
            region_key: Mutex::new(None),
            host,
            config,
            migrated: Mutex::new(HashSet::new()),
            directory_ready: AtomicBool::new(false),
            #[cfg(feature = "inject-forgot-clinic")]
            injected: Default::default(),
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Token and throttling keys of the host's current root keys.
    fn root_derived(&self) -> Arc<RootDerived> {
        let ring = self.host.root_keys();
        let mut cached = match self.root_derived.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !Arc::ptr_eq(&cached.ring, &ring) {
            *cached = Arc::new(RootDerived::new(ring));
        }
        cached.clone()
    }

    pub(crate) fn tokens(&self) -> Arc<TokenKeys> {
        self.root_derived().tokens.clone()
    }

    pub(crate) fn throttle_key(&self) -> Arc<KeyBytes> {
        self.root_derived().throttle_key.clone()
    }

    pub(crate) fn region_key_cache(&self) -> Option<Arc<crate::region_key::RegionKey>> {
        self.region_key.lock().ok().and_then(|k| k.clone())
    }

    pub(crate) fn cache_region_key(
        &self,
        key: crate::region_key::RegionKey,
    ) -> Arc<crate::region_key::RegionKey> {
        let key = Arc::new(key);
        if let Ok(mut k) = self.region_key.lock() {
            *k = Some(key.clone());
        }
        key
    }

    /// The region directory. The first use in this instance queues a
    /// [`store::schema_guard`] ahead of the first statement (no round trip of
    /// its own); a failing guard makes [`App::handle`] migrate and run the
    /// request again.
    pub(crate) async fn directory(&self) -> ApiResult<H::Conn> {
        let dir = self.host.directory().await?;
        if !self.directory_ready.load(Ordering::Acquire) {
            match dir
                .execute_later(&store::schema_guard(schema::DIRECTORY), vec![])
                .await
            {
                Ok(()) => {}
                // A host that runs queued statements at once (the native
                // one) answers here: migrate now.
                Err(e) if store::schema_behind(&e) => self.migrate_directory(&dir).await?,
                Err(e) => return Err(e.into()),
            }
            self.directory_ready.store(true, Ordering::Release);
        }
        Ok(dir)
    }

    /// Creates the directory if needed and brings its schema up to date.
    pub(crate) async fn migrate_directory(&self, dir: &H::Conn) -> ApiResult<()> {
        self.host.create_directory().await?;
        store::migrate(dir, schema::DIRECTORY).await?;
        self.directory_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Opens (or creates) a clinic database. A new one is migrated at once;
    /// an existing one gets the schema guard, as the directory does, on its
    /// first use in this instance (`eager`: migrated at once instead).
    pub(crate) async fn clinic_conn(
        &self,
        clinic: &ClinicId,
        create: bool,
        eager: bool,
    ) -> ApiResult<H::Conn> {
        let conn = if create {
            self.host.create_clinic(clinic).await?
        } else {
            match self.host.open_clinic(clinic).await {
                Err(DbError::NotFound) => return Err(ApiError::not_found()),
                other => other?,
            }
        };
        let known = self
            .migrated
            .lock()
            .map(|m| m.contains(clinic.as_str()))
            .unwrap_or(false);
        if !known {
            if create || eager {
                store::migrate(&conn, schema::CLINIC).await?;
            } else {
                match conn
                    .execute_later(&store::schema_guard(schema::CLINIC), vec![])
                    .await
                {
                    Ok(()) => {}
                    Err(e) if store::schema_behind(&e) => {
                        store::migrate(&conn, schema::CLINIC).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if let Ok(mut m) = self.migrated.lock() {
                m.insert(clinic.as_str().to_owned());
            }
        }
        Ok(conn)
    }

    /// After a schema guard failed: forgets what this instance believed and
    /// migrates the directory and the request's clinic.
    async fn recover_schema(&self, clinic: Option<&ClinicId>) -> ApiResult<()> {
        self.directory_ready.store(false, Ordering::Release);
        let dir = self.host.directory().await?;
        self.migrate_directory(&dir).await?;
        if let Some(clinic) = clinic {
            self.forget_clinic(clinic);
            self.clinic_conn(clinic, false, true).await?;
        }
        Ok(())
    }

    /// A clinic's state in the directory and its keys, unwrapped by the
    /// region's root key. A purged or unknown clinic is not found.
    pub(crate) async fn clinic_keys(
        &self,
        clinic: &ClinicId,
    ) -> ApiResult<(ClinicState, ClinicKeys)> {
        let (state, keys) = self.data_keys(clinic).await?;
        Ok((state, ClinicKeys::new(clinic, &keys)?))
    }

    /// A clinic's state and every version of its data key, unwrapped by the
    /// region's root keys. A purged or unknown clinic is not found.
    pub(crate) async fn data_keys(&self, clinic: &ClinicId) -> ApiResult<(ClinicState, DataKeys)> {
        let dir = self.directory().await?;
        let rows = dir
            .query(
                "SELECT c.status, c.purge_after, c.key_version, k.version, k.wrapped \
                 FROM clinics c JOIN clinic_keys k ON k.clinic_id = c.id WHERE c.id = ?1 ORDER BY k.version",
                vec![clinic.as_str().into()],
            )
            .await?;
        let row = rows.first().ok_or_else(ApiError::not_found)?;
        let purge_after = match row.text(0)?.as_str() {
            "active" => None,
            "deleting" => Some(row.int(1)?),
            _ => return Err(ApiError::not_found()),
        };
        let version =
            |i: i64| u32::try_from(i).map_err(|_| ApiError::internal("a key version out of range"));
        let current = version(row.int(2)?)?;
        let ring = self.host.root_keys();
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let wrapped = row.blob(4)?;
            let held = crate::crypto::keys::wrapped_root_version(&wrapped)
                .is_some_and(|v| ring.get(v).is_some());
            if !held {
                return Err(ApiError::internal(
                    "clinic key wrapped by a root key version this host does not hold",
                ));
            }
            keys.push(ring.unwrap(clinic.as_str(), version(row.int(3)?)?, &wrapped)?);
        }
        let keys = DataKeys { keys, current };
        keys.current()?;
        Ok((ClinicState { purge_after }, keys))
    }

    /// Seconds since the epoch as a clinic sees them: the host's clock, plus
    /// the clinic's test offset when test hooks are on.
    pub(crate) async fn clinic_now(&self, clinic: &ClinicId) -> ApiResult<i64> {
        let now = self.host.now();
        if !self.config.test_hooks {
            return Ok(now);
        }
        let rows = self
            .directory()
            .await?
            .query(
                "SELECT offset_secs FROM test_clock WHERE clinic_id = ?1",
                vec![clinic.as_str().into()],
            )
            .await?;
        Ok(match rows.first() {
            Some(row) => now + row.int(0)?,
            None => now,
        })
    }

    /// Appends an audit entry to the chain in `conn` (a clinic's, or the
    /// directory's platform stream), with fresh nonces from the host.
    pub(crate) async fn append_audit<C: Conn>(
        &self,
        conn: &C,
        cipher: &FieldCipher,
        entry: &Entry,
        head: Option<audit::Head>,
    ) -> ApiResult<i64> {
        let nonce = || {
            let mut n = [0u8; 12];
            self.host.fill_random(&mut n);
            n
        };
        audit::append(conn, cipher, nonce, entry, head).await
    }

    /// Forgets what this instance knows of a purged clinic's database.
    pub(crate) fn forget_clinic(&self, clinic: &ClinicId) {
        if let Ok(mut m) = self.migrated.lock() {
            m.remove(clinic.as_str());
        }
    }

    /// Handles one request. Never panics on input; every error is rendered in
    /// the API's error shape.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let api = path.starts_with("/api/");
        let ip = parts.extensions.get::<ClientIp>().map(|c| c.0);

        if self.config.test_hooks && path == "/__test/clock" && parts.method == Method::POST {
            let result = self
                .again_if_behind(|| crate::api::testing::advance_clock(self, &parts.headers, &body))
                .await;
            return render(result, Vec::new(), true, "/__test/clock");
        }
        if self.config.test_hooks && path == "/__test/staff" && parts.method == Method::POST {
            let result = self
                .again_if_behind(|| crate::api::testing::add_staff(self, &parts.headers, &body))
                .await;
            return render(result, Vec::new(), true, "/__test/staff");
        }
        let Some((route, params)) = routes::find(&parts.method, &path) else {
            return render(Err(ApiError::not_found()), Vec::new(), api, "unmatched");
        };
        let mut ctx = Ctx::new(
            self,
            route,
            Incoming {
                params,
                query: parts.uri.query().map(str::to_owned),
                method: parts.method,
                headers: parts.headers,
                body,
                ip,
            },
        );
        let mut first_try = true;
        loop {
            let result = ctx.run().await;
            let result = ctx.finish(result).await;
            if first_try && result.as_ref().is_err_and(|e| e.schema_behind) {
                // Nothing was written (the guard stopped the first batch):
                // migrate, then run the request again, once.
                first_try = false;
                if let Err(e) = self.recover_schema(ctx.clinic.as_ref()).await {
                    return render(Err(e), Vec::new(), api, route.path);
                }
                ctx = ctx.restart();
                continue;
            }
            return self.respond(ctx, result, api).await;
        }
    }

    /// Runs `work`; if a database's schema proved behind, migrates the
    /// directory and runs it once more.
    async fn again_if_behind<'a, F, Fut>(&'a self, work: F) -> ApiResult<Reply>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ApiResult<Reply>> + 'a,
    {
        match work().await {
            Err(e) if e.schema_behind => {
                self.recover_schema(None).await?;
                work().await
            }
            other => other,
        }
    }

    /// The rest of a request after its transaction: the platform audit
    /// entry, the export stream, the response with its cookies and headers.
    async fn respond(
        &self,
        mut ctx: Ctx<'_, H>,
        result: ApiResult<Reply>,
        api: bool,
    ) -> Response<Body> {
        let route = ctx.route;
        let replayed = ctx.replayed && result.is_ok();
        let result = ctx.platform_audit(&result).await.and(result);
        let result = result.and_then(|reply| ctx.start_stream(reply));
        let mut resp = render(
            result,
            std::mem::take(&mut ctx.set_cookies),
            api,
            route.path,
        );
        if let Some(i) = ctx
            .principal
            .as_ref()
            .and_then(|p| p.impersonation.as_ref())
        {
            let value = format!(
                "ticket={}; expires={}",
                i.ticket,
                clock::rfc3339(i.expires_at)
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert("x-impersonation", v);
            }
        }
        if replayed {
            resp.headers_mut()
                .insert(idempotency::REPLAYED, HeaderValue::from_static("true"));
        }
        resp
    }
}

fn render(
    result: ApiResult<Reply>,
    cookies: Vec<String>,
    api: bool,
    route: &'static str,
) -> Response<Body> {
    let (mut resp, log) = match result {
        Ok(reply) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = reply.status;
            let h = r.headers_mut();
            match reply.body {
                Payload::Empty => {}
                Payload::Json(v) => {
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    *r.body_mut() = Body::full(v.to_string());
                }
                Payload::Stream(plan, chunks) => {
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(plan.format.content_type()),
                    );
                    if let Ok(v) = HeaderValue::from_str(&format!(
                        "attachment; filename=\"{}\"",
                        plan.file_name()
                    )) {
                        h.insert(header::CONTENT_DISPOSITION, v);
                    }
                    *r.body_mut() = chunks;
                }
                // Turned into a stream by `start_stream`; never rendered.
                Payload::Export(_) => {
                    return render(
                        Err(ApiError::internal("export not started")),
                        cookies,
                        api,
                        route,
                    )
                }
            }
            (
                r,
                RequestLog {
                    route,
                    error_code: None,
                    detail: None,
                },
            )
        }
        Err(e) => (
            web::error_response(&e),
            RequestLog {
                route,
                error_code: Some(e.code.as_str()),
                detail: e.detail.clone(),
            },
        ),
    };
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    web::secure_headers(resp.headers_mut(), api);
    resp.extensions_mut().insert(log);
    resp
}

impl<'a, H: Host> Ctx<'a, H> {
    async fn run(&mut self) -> ApiResult<Reply> {
        if self.body.len() > web::MAX_BODY {
            return Err(web::too_large());
        }
        self.reason = access_reason(&self.headers)?;
        same_origin_only(&self.headers)?;
        if idempotency::applies(self.route) {
            self.idempotency = idempotency::Key::from_headers(&self.headers)?;
        }
        if self.route.access == Access::Staff {
            self.staff = Some(crate::api::support::authenticate_staff(self).await?);
        }
        if let Access::Session | Access::Permission(_) = self.route.access {
            self.authenticate().await?;
            let p = self
                .principal
                .as_ref()
                .ok_or_else(ApiError::unauthenticated)?;
            if !self.route.mfa_exempt() && p.role.requires_mfa() && !p.mfa_enabled {
                return Err(ApiError::new(
                    Code::MfaEnrollmentRequired,
                    "owners and doctors must set up two-factor authentication first",
                ));
            }
            if let Access::Permission(perm) = self.route.access {
                if !p.grants.contains(perm) {
                    return Err(ApiError::forbidden());
                }
            }
            if p.impersonation.is_some() {
                if matches!(
                    self.route.id,
                    routes::RouteId::TotpStart
                        | routes::RouteId::TotpConfirm
                        | routes::RouteId::Password
                ) {
                    return Err(ApiError::forbidden());
                }
                if self.reason.is_none() && !self.route.mfa_exempt() {
                    return Err(ApiError::bad_request(
                        "a support session must give X-Access-Reason on every request",
                    ));
                }
            }
            if self.deletion.is_some() && !self.route.open_while_deleting() {
                return Err(ApiError::conflict(
                    "this clinic is scheduled for deletion; an owner can cancel it",
                ));
            }
        }
        if let Some(key) = self.idempotency.clone() {
            if let Some(reply) = self.replay(&key).await? {
                self.replayed = true;
                return Ok(reply);
            }
        }
        crate::api::dispatch(self).await
    }

    /// After the commit: an export reply takes the request's connection and
    /// the clinic's cipher into its stream.
    fn start_stream(&mut self, reply: Reply) -> ApiResult<Reply> {
        let Payload::Export(plan) = reply.body else {
            return Ok(reply);
        };
        let (Some(conn), Some(keys)) = (self.db.take(), self.keys.take()) else {
            return Err(ApiError::internal("export without a clinic"));
        };
        let chunks = export::stream(plan.clone(), conn, keys.cipher);
        Ok(Reply {
            status: reply.status,
            body: Payload::Stream(plan, Body::stream(chunks)),
        })
    }

    /// Verifies the session token and loads the live server-side session.
    async fn authenticate(&mut self) -> ApiResult<()> {
        let (token, via_cookie) = match web::bearer(&self.headers) {
            Some(t) => (t.to_owned(), false),
            None => match web::cookie(&self.headers, web::SESSION_COOKIE) {
                Some(t) => (t.to_owned(), true),
                None => return Err(ApiError::unauthenticated()),
            },
        };
        if token_type(&token).as_deref() == Some(TokenKind::Support.typ()) {
            return crate::api::support::authenticate_support(self, token, via_cookie).await;
        }
        let subject = self.open_token(TokenKind::Session, &token).await?;
        let rows = self
            .query_with_audit_head(
                "SELECT s.user_id, s.last_seen, s.expires_at, s.revoked_at, u.role, u.active, u.mfa_enabled, r.permissions \
                 FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN role_settings r ON r.role = u.role \
                 WHERE s.id = ?1 AND s.kind = 'session'",
                vec![subject.session.clone().into()],
            )
            .await?;
        let row = rows.first().ok_or_else(ApiError::unauthenticated)?;
        let (user_id, last_seen, expires_at) = (row.text(0)?, row.int(1)?, row.int(2)?);
        let live = user_id == subject.user
            && row.opt_int(3)?.is_none()
            && self.now < expires_at
            && self.now - last_seen < self.app.config.idle_timeout_secs
            && row.int(5)? == 1;
        if !live {
            return Err(ApiError::unauthenticated());
        }
        let role = Role::parse(&row.text(4)?)
            .ok_or_else(|| ApiError::internal("unknown role in users"))?;
        let mfa_enabled = row.int(6)? == 1;
        let grants = rbac::effective(role, row.opt_text(7)?.as_deref());
        self.db()?
            .execute_later(
                "UPDATE sessions SET last_seen = ?2 WHERE id = ?1",
                vec![subject.session.clone().into(), self.now.into()],
            )
            .await?;
        if via_cookie {
            let max_age = self.app.config.idle_timeout_secs.min(expires_at - self.now);
            self.set_cookies
                .push(web::set_cookie(web::SESSION_COOKIE, &token, max_age));
        }
        self.principal = Some(Principal {
            user_id,
            role,
            session_id: subject.session,
            session_expires_at: expires_at,
            mfa_enabled,
            grants,
            impersonation: None,
            token,
        });
        #[cfg(feature = "inject-forgot-clinic")]
        self.inject_forgot_clinic().await?;
        Ok(())
    }

    /// The injected bug (test build only): after authentication, the
    /// handler's connection comes from a pool that forgot the clinic. The
    /// request keeps its own clinic's keys.
    #[cfg(feature = "inject-forgot-clinic")]
    async fn inject_forgot_clinic(&mut self) -> ApiResult<()> {
        let Some(other) = self
            .clinic
            .as_ref()
            .and_then(|c| self.app.injected.pool_pick(c))
        else {
            return Ok(());
        };
        if let Some(own) = self.db.take() {
            own.execute("COMMIT", vec![]).await?;
        }
        let conn = self.app.clinic_conn(&other, false, false).await?;
        conn.execute_later("BEGIN IMMEDIATE", vec![]).await?;
        self.db = Some(conn);
        self.audit_head = None;
        Ok(())
    }

    /// Verifies a token of `kind` and opens its clinic: region guard first (a
    /// clinic of another region is 421 before anything is opened), then the
    /// signature and claims, then the clinic's database. Any failure of the
    /// token or an unknown clinic is 401.
    pub(crate) async fn open_token(&mut self, kind: TokenKind, token: &str) -> ApiResult<Subject> {
        let clinic = self.token_clinic(token)?;
        self.apply_test_clock(&clinic).await?;
        let subject = self
            .app
            .tokens()
            .verify(kind, token, self.now)
            .map_err(|_| ApiError::unauthenticated())?;
        if subject.clinic != clinic.as_str() {
            return Err(ApiError::unauthenticated());
        }
        match self.enter_clinic(&clinic, false).await {
            Err(e) if e.code == Code::NotFound => Err(ApiError::unauthenticated()),
            Err(e) => Err(e),
            Ok(()) => Ok(subject),
        }
    }

    /// The clinic a token claims, for the region guard and the test clock
    /// only: nothing is trusted until the signature is checked.
    fn token_clinic(&mut self, token: &str) -> ApiResult<ClinicId> {
        let untrusted =
            jwt_compact::UntrustedToken::new(token).map_err(|_| ApiError::unauthenticated())?;
        let claims = untrusted
            .deserialize_claims_unchecked::<serde_json::Value>()
            .map_err(|_| ApiError::unauthenticated())?;
        let cid = claims
            .custom
            .get("cid")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let clinic = ClinicId::parse(cid).ok_or_else(ApiError::unauthenticated)?;
        self.guard_region(&clinic)?;
        Ok(clinic)
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

    /// Opens the clinic's database (after the region guard), unwraps its data
    /// key and begins the request's write transaction.
    pub(crate) async fn enter_clinic(&mut self, clinic: &ClinicId, create: bool) -> ApiResult<()> {
        self.guard_region(clinic)?;
        self.apply_test_clock(clinic).await?;
        let (state, keys) = self.app.clinic_keys(clinic).await?;
        let conn = self.app.clinic_conn(clinic, create, false).await?;
        #[cfg(feature = "inject-forgot-clinic")]
        self.app.injected.entered(clinic);
        conn.execute_later("BEGIN IMMEDIATE", vec![]).await?;
        self.keys = Some(keys);
        self.deletion = state.purge_after;
        self.db = Some(conn);
        self.clinic = Some(clinic.clone());
        Ok(())
    }

    /// A query of the request's first look at the clinic database, sent with
    /// the read of the audit chain's head when the route will append an
    /// entry: one round trip instead of two.
    pub(crate) async fn query_with_audit_head(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> ApiResult<Vec<crate::host::Row>> {
        if self.route.audit.is_none() || self.audit_head.is_some() {
            return Ok(self.db()?.query(sql, params).await?);
        }
        let mut results = self
            .db()?
            .query_many(vec![
                (sql.to_owned(), params),
                (audit::HEAD_SQL.to_owned(), Vec::new()),
            ])
            .await?
            .into_iter();
        let rows = results.next().unwrap_or_default();
        self.audit_head = Some(audit::Head::from_rows(&results.next().unwrap_or_default())?);
        Ok(rows)
    }

    pub(crate) fn db(&self) -> ApiResult<&H::Conn> {
        self.db
            .as_ref()
            .ok_or_else(|| ApiError::internal("no clinic database for this request"))
    }

    /// The clinic this request entered.
    pub(crate) fn clinic_id(&self) -> ApiResult<ClinicId> {
        self.clinic
            .clone()
            .ok_or_else(|| ApiError::internal("no clinic for this request"))
    }

    pub(crate) fn keys(&self) -> ApiResult<&ClinicKeys> {
        self.keys
            .as_ref()
            .ok_or_else(|| ApiError::internal("no clinic keys for this request"))
    }

    pub(crate) fn principal(&self) -> ApiResult<&Principal> {
        self.principal
            .as_ref()
            .ok_or_else(ApiError::unauthenticated)
    }

    pub(crate) fn random<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.app.host.fill_random(&mut b);
        b
    }

    /// Encrypts a field value for a row.
    pub(crate) fn seal(&self, field: Field, row: &str, plaintext: &str) -> ApiResult<Vec<u8>> {
        Ok(self
            .keys()?
            .cipher
            .seal(field, row, plaintext.as_bytes(), self.random()))
    }

    /// Encrypts an optional field value.
    pub(crate) fn seal_opt(
        &self,
        field: Field,
        row: &str,
        plaintext: Option<&str>,
    ) -> ApiResult<Value> {
        Ok(match plaintext {
            Some(p) => Value::Blob(self.seal(field, row, p)?),
            None => Value::Null,
        })
    }

    /// Decrypts a field value.
    pub(crate) fn open(&self, field: Field, row: &str, ciphertext: &[u8]) -> ApiResult<String> {
        let pt = self.keys()?.cipher.open(field, row, ciphertext)?;
        String::from_utf8(pt).map_err(|_| ApiError::internal("decrypted field is not UTF-8"))
    }

    pub(crate) fn open_opt(
        &self,
        field: Field,
        row: &str,
        ciphertext: Option<Vec<u8>>,
    ) -> ApiResult<Option<String>> {
        ciphertext.map(|c| self.open(field, row, &c)).transpose()
    }

    /// A blind-index term, as a write stores it (current key version).
    pub(crate) fn term(&self, kind: TermKind, normalised: &str) -> ApiResult<Vec<u8>> {
        Ok(self.keys()?.blind.token(kind, normalised))
    }

    /// Every term a lookup must try: one per key version whose terms may
    /// still be stored (after a rotation, until the sweep is done).
    pub(crate) fn lookup_terms(&self, kind: TermKind, normalised: &str) -> ApiResult<Vec<Vec<u8>>> {
        Ok(self
            .keys()?
            .search
            .iter()
            .map(|ix| ix.token(kind, normalised))
            .collect())
    }

    /// Ends the request's transaction: on success the audit entry is appended
    /// to the work's own transaction; on refusal the work is rolled back and
    /// the refusal is recorded on its own.
    async fn finish(&mut self, result: ApiResult<Reply>) -> ApiResult<Reply> {
        let Some(db) = self.db.take() else {
            return result;
        };
        if result.as_ref().is_err_and(|e| e.schema_behind) {
            // The schema guard stopped the first batch: nothing to keep, and
            // no audit entry into a schema this code does not know.
            let _ = db.execute("ROLLBACK", vec![]).await;
            return result;
        }
        let outcome = self.outcome(&result);
        let entry = match (self.route.audit, outcome) {
            (Some(action), Some(outcome)) => self.entry(action, outcome),
            _ => None,
        };
        let keep = result.is_ok() || self.keep_writes_on_error;
        let head = if keep { self.audit_head.take() } else { None };
        if let (Ok(reply), Some(key), false) = (&result, &self.idempotency, self.replayed) {
            if let Err(e) = self.remember(&db, key, reply).await {
                let _ = db.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        }
        if !keep {
            let _ = db.execute("ROLLBACK", vec![]).await;
            if entry.is_some() {
                if let Err(e) = db.execute_later("BEGIN IMMEDIATE", vec![]).await {
                    return Err(e.into());
                }
            }
        }
        if let Some(entry) = entry {
            let appended = match self.keys() {
                Ok(keys) => self
                    .app
                    .append_audit(&db, &keys.cipher, &entry, head)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = appended {
                let _ = db.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        } else if !keep {
            return result;
        }
        store::finish(&db, Ok::<(), ApiError>(())).await?;
        // Committed: the connection stays with the request (an export reads
        // on from it).
        self.db = Some(db);
        result
    }

    /// What the audit trail records of a result; `None`: nothing (bad input).
    fn outcome(&self, result: &ApiResult<Reply>) -> Option<Outcome> {
        match result {
            Ok(_) if self.replayed => Some(Outcome::Replayed),
            Ok(_) => Some(Outcome::Success),
            Err(e) => match e.code {
                Code::Forbidden | Code::MfaEnrollmentRequired => Some(Outcome::Denied),
                Code::NotFound => Some(Outcome::NotFound),
                // Refused credentials and codes of a known account are audited;
                // plain bad input writes nothing.
                Code::Unauthenticated | Code::RateLimited
                    if self.audit.actor.is_some() || self.principal.is_some() =>
                {
                    Some(Outcome::Failure)
                }
                _ => None,
            },
        }
    }

    /// Platform staff's requests, support sessions' requests and owners'
    /// approvals also go to the region's platform audit stream, the
    /// resource prefixed with the clinic.
    async fn platform_audit(&self, result: &ApiResult<Reply>) -> ApiResult<()> {
        let impersonated = self
            .principal
            .as_ref()
            .is_some_and(|p| p.impersonation.is_some());
        if !(impersonated || self.audit.platform) {
            return Ok(());
        }
        let (Some(action), Some(outcome)) = (self.route.audit, self.outcome(result)) else {
            return Ok(());
        };
        let Some(mut entry) = self.entry(action, outcome) else {
            return Ok(());
        };
        if let Some(c) = &self.clinic {
            entry.resource = Some(match entry.resource {
                Some(r) => format!("clinic/{c}:{r}"),
                None => format!("clinic/{c}"),
            });
        }
        self.app.platform_audit(&entry).await
    }

    fn entry(&self, action: &str, outcome: Outcome) -> Option<Entry> {
        let (actor, role, on_behalf_of) = match (&self.principal, &self.audit.actor) {
            (Some(p), _) => match &p.impersonation {
                Some(i) => (p.user_id.clone(), Some("support"), Some(i.on_behalf_of())),
                None => (p.user_id.clone(), Some(p.role.as_str()), None),
            },
            (None, Some((a, r))) => (
                a.clone(),
                self.audit.role_name.or(r.map(Role::as_str)),
                self.audit.on_behalf_of.clone(),
            ),
            (None, None) => return None,
        };
        Some(Entry {
            at: clock::rfc3339(self.now),
            actor,
            role: role.map(str::to_owned),
            on_behalf_of,
            action: action.to_owned(),
            resource: self.audit.resource.clone(),
            patient_id: self.audit.patient_id.clone(),
            reason: self.reason.clone(),
            ip: self.ip.map(|i| i.to_string()),
            outcome,
        })
    }
}

impl ClinicKeys {
    pub(crate) fn new(clinic: &ClinicId, keys: &DataKeys) -> ApiResult<Self> {
        let current = keys.current()?;
        let search = std::iter::once(current)
            .chain(
                keys.keys
                    .iter()
                    .rev()
                    .filter(|k| k.version != current.version),
            )
            .map(BlindIndex::new)
            .collect();
        Ok(ClinicKeys {
            cipher: FieldCipher::with_versions(clinic.as_str(), current, &keys.keys),
            blind: BlindIndex::new(current),
            search,
        })
    }
}

/// The `typ` a token claims, unverified: only chooses which check applies.
fn token_type(token: &str) -> Option<String> {
    jwt_compact::UntrustedToken::new(token)
        .ok()
        .and_then(|t| t.header().token_type.clone())
}

/// `X-Access-Reason`: the purpose of use, up to 500 characters.
fn access_reason(h: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = h.get("x-access-reason") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Access-Reason must be visible ASCII text"))?
        .trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "X-Access-Reason must be at most 500 characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Another origin's request does nothing: whatever its method, a request
/// that a browser marks as coming from another origin (`Sec-Fetch-Site`
/// other than `same-origin`/`none`, or an `Origin` that is not this host) is
/// refused before any work. GETs too: a foreign page's `<img>` of an API URL
/// would otherwise run as the user (an export, a patient read) and write
/// that user's name into the audit trail. Clients that are not browsers send
/// neither header.
fn same_origin_only(h: &HeaderMap) -> ApiResult<()> {
    let refuse = || {
        Err(ApiError::new(
            Code::Forbidden,
            "cross-site requests are not allowed",
        ))
    };
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return refuse();
        }
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return refuse();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_requests_are_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin_only(&h).is_ok());
        h.insert(header::HOST, HeaderValue::from_static("pk.amanah.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://pk.amanah.example"),
        );
        assert!(same_origin_only(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_origin_only(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin_only(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin_only(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin_only(&h).is_ok());
    }
}
