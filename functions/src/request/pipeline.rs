//! The steps every request runs, in order, and the end of its transaction.
//!
//! [`Request::prepare`]: size, purpose of use and origin checks; the
//! route's access (a session and its clinic, the console's staff, an
//! internal token); TOTP enrolment, the permission, what a support session
//! may not do, and a clinic scheduled for deletion; an idempotent replay.
//! Then [`crate::App::handle`] runs the route's handler.
//!
//! [`Request::finish`]: on success the audit entry is appended to the
//! work's own transaction, which commits; on refusal the work is rolled
//! back and the refusal is recorded on its own. [`Request::respond`]: the
//! platform audit stream, the export's stream, cookies and headers.

use http::header::HeaderValue;
use http::Response;

use crate::body::Body;
use crate::error::{ApiError, ApiResult, Code};
use crate::export;
use crate::host::DbError;
use crate::host::{Conn, Host};
use crate::ids::{self, kind};
use crate::records::{audit, Vault};
use crate::route::{Access, Flag};
use crate::store;
use crate::web;

use super::actor::{Actor, Staff};
use super::audit::{entry, outcome, Facts};
use super::ctx::Ctx;
use super::idempotency::{self, Key};
use super::render::{render, Payload, Reply};
use super::scope::{ClinicScope, Open, Tenant};
use super::{auth, guards};

/// One request and what it has entered.
pub(crate) struct Request<'a, H: Host> {
    pub cx: Ctx<'a, H>,
    /// The clinic entered, once it is.
    pub tenant: Option<Tenant<H>>,
    /// Who the request acts as, once authenticated.
    pub actor: Option<Actor>,
    /// The client's idempotency key, on a route that takes one.
    idempotency: Option<Key>,
    /// The answer is the stored one of an earlier request with the key.
    replayed: bool,
}

impl<'a, H: Host> Request<'a, H> {
    pub(crate) fn new(cx: Ctx<'a, H>) -> Self {
        Request {
            cx,
            tenant: None,
            actor: None,
            idempotency: None,
            replayed: false,
        }
    }

    /// The same request from the start, in a fresh state (its next run,
    /// after a migration or a conflict).
    pub(crate) fn restart(self) -> Self {
        Request::new(self.cx.restart())
    }

    /// A handler's view of a request outside any clinic yet.
    pub(crate) fn open(&mut self) -> Open<'_, 'a, H> {
        Open::new(&mut self.cx, &mut self.tenant, &())
    }

    /// A platform staff handler's view (the console's routes).
    pub(crate) fn staff(&mut self) -> ApiResult<Open<'_, 'a, H, Staff>> {
        match &self.actor {
            Some(Actor::Staff(s)) => Ok(Open::new(&mut self.cx, &mut self.tenant, s)),
            _ => Err(ApiError::unauthenticated()),
        }
    }

    /// A clinic handler's view: its clinic and actor, both known (the
    /// pipeline authenticated the request before dispatch).
    pub(crate) fn scope(&mut self) -> ApiResult<ClinicScope<'_, 'a, H>> {
        match (&mut self.tenant, &self.actor) {
            (Some(t), Some(a)) => Ok(ClinicScope::new(&mut self.cx, t, a)),
            _ => Err(ApiError::internal(
                "a clinic route reached without its clinic",
            )),
        }
    }

    /// Every step before the route's handler; `Some` is the stored answer
    /// of an idempotent replay (the handler does not run).
    pub(crate) async fn prepare(&mut self) -> ApiResult<Option<Reply>> {
        let route = self.cx.route;
        if self.cx.body.len() > web::MAX_BODY {
            return Err(web::too_large());
        }
        let limits = self.cx.app.config.requests;
        let now = self.cx.app.host.now() as f64;
        let charge = !self.cx.rerun;
        if let (Some(ip), true) = (self.cx.ip, charge) {
            self.cx
                .app
                .buckets
                .take(format!("a:{ip}"), limits.per_address, now)?;
        }
        self.cx.reason = guards::access_reason(&self.cx.headers)?;
        guards::same_origin_only(&self.cx.headers)?;
        if idempotency::applies(route) {
            self.idempotency = Key::from_headers(&self.cx.headers)?;
        }
        match route.access {
            Access::Public | Access::TestHook => {}
            Access::Internal => guards::internal_token(
                &self.cx.headers,
                self.cx.app.config.maintain_token.as_deref(),
            )?,
            Access::Staff => {
                self.actor = Some(Actor::Staff(auth::staff(&mut self.cx).await?));
            }
            Access::Session | Access::Permission(_) => {
                let actor = self
                    .actor
                    .insert(auth::session(&mut self.cx, &mut self.tenant).await?);
                if !route.mfa_exempt() && actor.password_change_due() {
                    return Err(ApiError::new(
                        Code::PasswordChangeRequired,
                        "an owner reset your password: choose a new one first",
                    ));
                }
                if !route.mfa_exempt() && actor.enrolment_due() {
                    return Err(ApiError::new(
                        Code::MfaEnrollmentRequired,
                        "owners and doctors must set up two-factor authentication first",
                    ));
                }
                // A refusal of a patient's record names the patient too, so
                // that it is on their timeline.
                if route.path.starts_with("/api/v1/patients/{id}") {
                    if let Some(p) = self
                        .cx
                        .params
                        .first()
                        .filter(|p| ids::is_id(kind::PATIENT, p))
                    {
                        self.cx.audit.patient_id = Some(p.clone());
                    }
                }
                if let Access::Permission(perm) = route.access {
                    if !actor.grants().contains(perm) {
                        return Err(ApiError::forbidden());
                    }
                }
                if actor.support().is_some() {
                    if route.own_account() {
                        return Err(ApiError::forbidden());
                    }
                    if self.cx.reason.is_none() && !route.mfa_exempt() {
                        return Err(ApiError::bad_request(
                            "a support session must give X-Access-Reason on every request",
                        ));
                    }
                }
                let deleting = self.tenant.as_ref().is_some_and(|t| t.deletion.is_some());
                if deleting && !route.open_while_deleting() {
                    return Err(ApiError::conflict(
                        "this clinic is scheduled for deletion; an owner can cancel it",
                    ));
                }
            }
        }
        if let (Some(actor), true) = (&self.actor, charge) {
            let clinic = self.tenant.as_ref().map_or("platform", |t| t.id.as_str());
            self.cx
                .app
                .buckets
                .take(format!("u:{clinic}:{}", actor.id()), limits.per_user, now)?;
        }
        if let Some(key) = self.idempotency.clone() {
            if let (Some(t), Some(a)) = (&self.tenant, &self.actor) {
                let app = self.cx.app;
                let vault = Vault::new(&t.keys, &app.host);
                if let Some(reply) =
                    idempotency::replay(&mut self.cx, &t.db, &vault, a.id(), &key).await?
                {
                    self.replayed = true;
                    return Ok(Some(reply));
                }
            }
        }
        Ok(None)
    }

    /// Whoever the audit trail can name for this request.
    fn someone(&self) -> bool {
        self.actor.is_some() || self.cx.audit.subject.is_some()
    }

    fn entry(&self, result: &ApiResult<Reply>) -> Option<audit::Entry> {
        let action = self.cx.route.audit?;
        let outcome = outcome(result, self.replayed, self.someone())?;
        entry(
            Facts {
                action,
                outcome,
                now: self.cx.now,
                reason: self.cx.reason.as_deref(),
                ip: self.cx.ip,
            },
            self.actor.as_ref(),
            &self.cx.audit,
        )
    }

    /// Ends the request: its clinic transaction ([`Request::finish_clinic`])
    /// and, in parallel, its directory writes ([`Ctx::directory_later`]).
    /// Directory writes that fail turn a refusal into that failure (a
    /// failed sign-in must not go uncounted); a success stands.
    pub(crate) async fn finish(&mut self, result: ApiResult<Reply>) -> ApiResult<Reply> {
        let writes = std::mem::take(&mut self.cx.directory_later);
        if writes.is_empty() {
            return self.finish_clinic(result).await;
        }
        let app = self.cx.app;
        let flush = async move {
            let dir = app.directory().await?;
            let mut writes = writes;
            let Some((sql, params)) = writes.pop() else {
                return Ok(());
            };
            for (sql, params) in writes {
                dir.execute_later(&sql, params).await?;
            }
            dir.execute(&sql, params).await?;
            Ok::<(), ApiError>(())
        };
        let (result, flushed) = futures_util::future::join(self.finish_clinic(result), flush).await;
        match (result, flushed) {
            (Err(_), Err(e)) => Err(e),
            (result, _) => result,
        }
    }

    /// Ends the request's transaction: on success the audit entry is appended
    /// to the work's own transaction; on refusal the work is rolled back and
    /// the refusal is recorded on its own.
    async fn finish_clinic(&mut self, result: ApiResult<Reply>) -> ApiResult<Reply> {
        let entry = self.entry(&result);
        let Some(t) = self.tenant.as_mut() else {
            return result;
        };
        let db = &t.db;
        if result
            .as_ref()
            .is_err_and(|e| e.schema_behind || e.conflict)
        {
            // The schema guard stopped the first batch, or optimistic work
            // found its data changed: nothing to keep, and no audit entry
            // (into a schema this code does not know; of a run that runs
            // again).
            let _ = db.execute("ROLLBACK", vec![]).await;
            return result;
        }
        let keep = result.is_ok() || self.cx.keep_writes_on_error;
        // A refusal of optimistic work records only its audit entry, on the
        // head its first read saw (moved if need be, never run again: a
        // refused sign-in is counted once); other refusals read the head
        // again after their rollback.
        let refusal_appends = !keep && t.db.optimistic() && t.head.is_some();
        let head = if keep || refusal_appends {
            t.head.take()
        } else {
            None
        };
        let app = self.cx.app;
        let vault = Vault::new(&t.keys, &app.host);
        if let (Ok(reply), Some(key), false, Some(actor)) =
            (&result, &self.idempotency, self.replayed, &self.actor)
        {
            if let Err(e) =
                idempotency::remember(&self.cx, db, &vault, actor.id(), key, reply).await
            {
                let _ = db.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        }
        if !keep {
            let _ = db.execute("ROLLBACK", vec![]).await;
            if entry.is_some() && !refusal_appends {
                db.execute_later("BEGIN IMMEDIATE", vec![]).await?;
            }
        }
        if let (Some(entry), Some(h), true) = (
            &entry,
            &head,
            refusal_appends || (keep && appends_only(&self.cx, db, &self.actor)),
        ) {
            // Only the audit entry depends on what was read: when another
            // request commits first, the entry moves onto the new head and
            // the work is not run again.
            let cipher = vault.cipher();
            // Each entry with the head it was built on (its `seq` - 1).
            let on_head = |head: audit::Head| {
                let (insert, seq) = audit::insert(cipher, || app.random(), entry, head);
                (insert, seq - 1)
            };
            let turn = crate::records::append_turn::turn(app.random());
            let committed = db
                .commit_appending(audit::HEAD_SQL, turn, on_head(h.clone()), |rows| {
                    audit::Head::from_rows(rows)
                        .map(on_head)
                        .map_err(|e| DbError::Other(e.log_text()))
                })
                .await;
            if let Err(e) = committed {
                let _ = db.execute("ROLLBACK", vec![]).await;
                return Err(e.into());
            }
            return result;
        }
        if let Some(entry) = entry {
            let appended = app.append_audit(db, vault.cipher(), &entry, head).await;
            if let Err(e) = appended {
                let _ = db.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        } else if !keep {
            return result;
        }
        // A conflict here is the commit's: the request runs again.
        store::finish(db, Ok::<(), ApiError>(())).await?;
        result
    }

    /// Platform staff's requests, support sessions' requests and owners'
    /// approvals also go to the region's platform audit stream, the
    /// resource prefixed with the clinic.
    async fn platform_audit(&self, result: &ApiResult<Reply>) -> ApiResult<()> {
        let platform = self.actor.as_ref().is_some_and(Actor::platform) || self.cx.audit.platform;
        if !platform {
            return Ok(());
        }
        let Some(mut entry) = self.entry(result) else {
            return Ok(());
        };
        if let Some(t) = &self.tenant {
            entry.resource = Some(match entry.resource {
                Some(r) => format!("clinic/{}:{r}", t.id),
                None => format!("clinic/{}", t.id),
            });
        }
        self.cx.app.platform_audit(&entry).await
    }

    /// After the commit: an export reply takes the request's connection and
    /// the clinic's cipher into its stream; a FHIR bulk export is written;
    /// a FHIR file is streamed the same way.
    async fn after_commit(&mut self, reply: Reply) -> ApiResult<Reply> {
        match reply.body {
            Payload::Export(plan) => {
                let t = self
                    .tenant
                    .take()
                    .ok_or_else(|| ApiError::internal("export without a clinic"))?;
                let chunks = export::stream(plan.clone(), t.db, t.keys.cipher);
                Ok(Reply {
                    status: reply.status,
                    body: Payload::Stream(plan, Body::stream(chunks)),
                    headers: reply.headers,
                })
            }
            Payload::FhirFile { export, kind } => {
                let t = self
                    .tenant
                    .take()
                    .ok_or_else(|| ApiError::internal("export file without a clinic"))?;
                let chunks =
                    crate::fhir::bulk::stream(t.db, t.keys.cipher, export, kind.to_owned());
                Ok(Reply {
                    status: reply.status,
                    body: Payload::NdjsonStream(Body::stream(chunks)),
                    headers: reply.headers,
                })
            }
            Payload::BulkExport(job) => {
                let t = self
                    .tenant
                    .as_ref()
                    .ok_or_else(|| ApiError::internal("bulk export without a clinic"))?;
                let app = self.cx.app;
                let write = app.clinic_conn(&t.id, false, false).await?;
                let vault = Vault::new(&t.keys, &app.host);
                let done = crate::fhir::bulk::generate(&t.db, &write, &vault, &job).await;
                crate::records::bulk_exports::finish(&write, &job.id, done.is_ok()).await?;
                // A failure is the kick-off's answer (and the host's log
                // line); the status says so too.
                done?;
                let mut headers = reply.headers;
                headers.push(("content-location", job.status_url));
                Ok(Reply {
                    status: reply.status,
                    body: Payload::Empty,
                    headers,
                })
            }
            body => Ok(Reply {
                status: reply.status,
                body,
                headers: reply.headers,
            }),
        }
    }

    /// The rest of a request after its transaction: the platform audit
    /// entry, the export stream, the response with its cookies and headers.
    pub(crate) async fn respond(mut self, result: ApiResult<Reply>, api: bool) -> Response<Body> {
        let route = self.cx.route;
        let replayed = self.replayed && result.is_ok();
        let result = self.platform_audit(&result).await.and(result);
        let result = match result {
            Ok(reply) => self.after_commit(reply).await,
            Err(e) => Err(e),
        };
        let mut resp = render(
            result,
            std::mem::take(&mut self.cx.cookies),
            api,
            route.path,
        );
        if let Some(s) = self.actor.as_ref().and_then(Actor::support) {
            if let Ok(v) = HeaderValue::from_str(&s.header()) {
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

/// Whether the request's writes depend on nothing it read but the
/// audit chain's head, so that a commit coming first moves only its
/// audit entry: a route that says so ([`Flag::Append`]: a new record),
/// or a read (`GET`, a search) whose only write is its session's last
/// use. Only optimistic work asks ([`Ctx::optimistic`]).
fn appends_only<H: Host>(cx: &Ctx<'_, H>, db: &H::Conn, actor: &Option<Actor>) -> bool {
    let route = cx.route;
    let read = route.method == http::Method::GET || route.has(Flag::Search);
    // A user's session notes its last use (`sessions::touch`); a support
    // session's lives in the directory.
    let touch = usize::from(matches!(actor, Some(Actor::User(_))));
    cx.optimistic() && (route.has(Flag::Append) || (read && db.queued() == touch))
}
