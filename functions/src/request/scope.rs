//! What a handler may touch, as types.
//!
//! - [`Tenant`]: the clinic a request entered: its database, inside the
//!   request's write transaction, and its keys.
//! - [`ClinicScope`]: a handler's view of a request inside a clinic, acting
//!   as `A` (a signed-in [`Actor`] on every route under a session or a
//!   permission). Nothing in it is optional: a handler that needs the
//!   clinic's keys receives them, and cannot be written without them.
//! - [`Open`]: a handler's view of a request that has not entered a clinic
//!   (sign-up, sign-in, the support console); [`Open::enter`] enters one and
//!   gives the [`ClinicScope`] for the rest.
//!
//! Both dereference to the request's [`Ctx`] (its clock, body, audit draft,
//! cookies).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::crypto::keysets::ClinicKeys;
use crate::error::{ApiError, ApiResult, Code};
use crate::host::{Conn, Host, Row};
use crate::ids::ClinicId;
use crate::records::audit::{self, Head};
use crate::records::Vault;
use crate::store::Statement;
use crate::tenancy::open_keys;
use crate::token::{Subject, TokenKind};

use super::actor::Actor;
use super::ctx::Ctx;
use super::prefetch::Prefetch;

/// The clinic a request entered.
pub(crate) struct Tenant<H: Host> {
    pub id: ClinicId,
    /// The clinic's database, in the request's write transaction.
    pub db: H::Conn,
    pub keys: ClinicKeys,
    /// Set while the clinic is scheduled for deletion: its purge time.
    pub deletion: Option<i64>,
    /// The audit chain's head, read in this request's transaction.
    pub head: Option<Head>,
}

impl<H: Host> Tenant<H> {
    /// The queries of the request's first look at the clinic database, sent
    /// with the read of the audit chain's head when the route will append
    /// an entry (`audited`): one round trip for all. Each query's rows, in
    /// order.
    pub(crate) async fn query_with_audit_head(
        db: &H::Conn,
        head: &mut Option<Head>,
        audited: bool,
        mut statements: Vec<Statement>,
    ) -> ApiResult<Vec<Vec<Row>>> {
        let n = statements.len();
        let read_head = audited && head.is_none();
        if read_head {
            statements.push((audit::HEAD_SQL.to_owned(), Vec::new()));
        }
        let mut results = if read_head || n > 1 {
            db.query_many(statements).await?
        } else {
            let mut one = Vec::with_capacity(1);
            for (sql, params) in statements {
                one.push(db.query(&sql, params).await?);
            }
            one
        };
        if read_head {
            let rows = results.pop().unwrap_or_default();
            *head = Some(Head::from_rows(&rows)?);
        }
        results.resize_with(n, Vec::new);
        Ok(results)
    }
}

/// The entered clinic, in the request's `slot`.
fn seat<'t, H: Host>(
    slot: &'t mut Option<Tenant<H>>,
    clinic: &ClinicId,
    db: H::Conn,
    keys: ClinicKeys,
    deletion: Option<i64>,
    head: Option<Head>,
) -> &'t mut Tenant<H> {
    slot.insert(Tenant {
        id: clinic.clone(),
        db,
        keys,
        deletion,
        head,
    })
}

impl<'a, H: Host> Ctx<'a, H> {
    /// Opens the clinic's database (after the region guard), unwraps its data
    /// key and begins the request's write transaction, into the request's
    /// `slot` (so that the transaction ends with the request, whatever
    /// happens next).
    pub(crate) async fn enter<'t>(
        &mut self,
        slot: &'t mut Option<Tenant<H>>,
        clinic: &ClinicId,
        create: bool,
    ) -> ApiResult<&'t mut Tenant<H>> {
        self.guard_region(clinic)?;
        self.apply_test_clock(clinic).await?;
        let (state, keys) = self.app.clinic_keys(clinic).await?;
        let db = self.begin_work(clinic, create).await?;
        Ok(seat(slot, clinic, db, keys, state.purge_after, None))
    }

    /// [`Ctx::enter`] an existing clinic, the directory's reads `with`
    /// riding with its key lookup (one round trip): whether the clinic
    /// could be entered, and each of those reads' rows either way.
    pub(crate) async fn enter_with_directory<'t>(
        &mut self,
        slot: &'t mut Option<Tenant<H>>,
        clinic: &ClinicId,
        with: Vec<Statement>,
    ) -> ApiResult<(ApiResult<&'t mut Tenant<H>>, Vec<Vec<Row>>)> {
        self.guard_region(clinic)?;
        self.apply_test_clock(clinic).await?;
        let (keys, rows) = self.app.data_keys_with(clinic, with).await?;
        let opened = keys.and_then(|(state, keys)| Ok((state, open_keys(clinic, &keys)?)));
        let (state, keys) = match opened {
            Ok(k) => k,
            Err(e) => return Ok((Err(e), rows)),
        };
        let db = match self.app.clinic_conn(clinic, false, false).await {
            Ok(db) => db,
            Err(e) => return Ok((Err(e), rows)),
        };
        self.begin_on(clinic, &db).await?;
        Ok((
            Ok(seat(slot, clinic, db, keys, state.purge_after, None)),
            rows,
        ))
    }

    /// [`Ctx::enter`] an existing clinic with the request's first reads
    /// (`first`, and the audit chain's head when the route is audited):
    /// they go to the clinic's database while the directory is asked for
    /// its keys, and the reads the route declares ride with them
    /// ([`super::prefetch`]) for `user`. Nothing read is used unless the
    /// directory knows the clinic. Each statement's rows of `first`.
    pub(crate) async fn enter_reading<'t>(
        &mut self,
        slot: &'t mut Option<Tenant<H>>,
        clinic: &ClinicId,
        user: &str,
        first: Vec<Statement>,
    ) -> ApiResult<(&'t mut Tenant<H>, Vec<Vec<Row>>)> {
        self.guard_region(clinic)?;
        self.apply_test_clock(clinic).await?;
        let app = self.app;
        let db = self.begin_work(clinic, false).await?;
        let hinted = db.prefetches();
        if let (Some(reads), true) = (self.reads, hinted) {
            let hint = app.key_hint(clinic);
            let vault = hint.as_deref().map(|k| Vault::new(k, &app.host));
            db.prefetch(reads(&Prefetch {
                params: &self.params,
                query: self.query.as_deref(),
                body: &self.body,
                user,
                vault: vault.as_ref(),
            }));
        }
        let mut head = None;
        let audited = self.route.audit.is_some();
        let (keys, rows) = futures_util::future::join(
            app.data_keys(clinic),
            Tenant::<H>::query_with_audit_head(&db, &mut head, audited, first),
        )
        .await;
        let opened = keys.and_then(|(state, keys)| {
            let open = open_keys(clinic, &keys)?;
            let hint = hinted.then(|| ClinicKeys::new(clinic, &keys).map(Arc::new));
            Ok((state, open, hint.flatten()))
        });
        let (state, keys) = match opened {
            Ok((state, keys, hint)) => {
                if hint.is_some() {
                    app.set_key_hint(clinic, hint);
                }
                (state, keys)
            }
            Err(e) => {
                app.set_key_hint(clinic, None);
                // A read that took the lock (work that is not optimistic)
                // ends here.
                let _ = db.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        };
        Ok((seat(slot, clinic, db, keys, state.purge_after, head), rows?))
    }

    /// The clinic's connection with the request's work begun on it
    /// ([`Ctx::begin_on`]).
    async fn begin_work(&self, clinic: &ClinicId, create: bool) -> ApiResult<H::Conn> {
        let db = self.app.clinic_conn(clinic, create, false).await?;
        self.begin_on(clinic, &db).await?;
        Ok(db)
    }

    /// Begins the request's work on the clinic's connection: optimistic
    /// (checked against the audit chain's version at commit) where the
    /// route runs so, else holding the lock.
    async fn begin_on(&self, clinic: &ClinicId, db: &H::Conn) -> ApiResult<()> {
        #[cfg(feature = "inject-forgot-clinic")]
        self.app.injected.entered(clinic);
        #[cfg(not(feature = "inject-forgot-clinic"))]
        let _ = clinic;
        db.begin_work(self.optimistic().then_some(audit::VERSION_SQL))
            .await?;
        Ok(())
    }

    /// Verifies a token of `kind` and enters its clinic: region guard first
    /// (a clinic of another region is 421 before anything is opened), then
    /// the signature and claims, then the clinic's database. Any failure of
    /// the token or an unknown clinic is 401.
    pub(crate) async fn enter_with_token<'t>(
        &mut self,
        slot: &'t mut Option<Tenant<H>>,
        kind: TokenKind,
        token: &str,
    ) -> ApiResult<(Subject, &'t mut Tenant<H>)> {
        let (subject, t, _) = self
            .enter_with_token_reading(slot, kind, token, |_| Vec::new())
            .await?;
        Ok((subject, t))
    }

    /// [`Ctx::enter_with_token`] with the request's first reads, which may
    /// depend on what the token names ([`Ctx::enter_reading`]).
    pub(crate) async fn enter_with_token_reading<'t>(
        &mut self,
        slot: &'t mut Option<Tenant<H>>,
        kind: TokenKind,
        token: &str,
        first: impl FnOnce(&Subject) -> Vec<Statement>,
    ) -> ApiResult<(Subject, &'t mut Tenant<H>, Vec<Vec<Row>>)> {
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
        let first = first(&subject);
        let entered = if first.is_empty() {
            self.enter(slot, &clinic, false)
                .await
                .map(|t| (t, Vec::new()))
        } else {
            self.enter_reading(slot, &clinic, &subject.user, first)
                .await
        };
        match entered {
            Err(e) if e.code == Code::NotFound => Err(ApiError::unauthenticated()),
            Err(e) => Err(e),
            Ok((t, rows)) => Ok((subject, t, rows)),
        }
    }

    /// The clinic a token claims, for the region guard and the test clock
    /// only: nothing is trusted until the signature is checked.
    fn token_clinic(&self, token: &str) -> ApiResult<ClinicId> {
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
}

/// A handler's view of a request inside a clinic, acting as `A`.
pub(crate) struct ClinicScope<'s, 'a, H: Host, A = Actor> {
    cx: &'s mut Ctx<'a, H>,
    /// The clinic's database, in the request's write transaction.
    pub db: &'s H::Conn,
    /// The clinic's keys at work.
    pub vault: Vault<'s>,
    pub clinic: &'s ClinicId,
    /// Set while the clinic is scheduled for deletion: its purge time.
    pub deletion: Option<i64>,
    pub actor: &'s A,
    head: &'s mut Option<Head>,
}

impl<'s, 'a: 's, H: Host, A> ClinicScope<'s, 'a, H, A> {
    pub(crate) fn new(cx: &'s mut Ctx<'a, H>, tenant: &'s mut Tenant<H>, actor: &'s A) -> Self {
        let app = cx.app;
        let Tenant {
            id,
            db,
            keys,
            deletion,
            head,
        } = tenant;
        ClinicScope {
            cx,
            db,
            vault: Vault::new(keys, &app.host),
            clinic: id,
            deletion: *deletion,
            actor,
            head,
        }
    }

    /// Queries sent with the read of the audit chain's head, if this
    /// request's route is audited and the head is not read yet (one round
    /// trip for all); each query's rows.
    pub(crate) async fn query_with_audit_head(
        &mut self,
        statements: Vec<Statement>,
    ) -> ApiResult<Vec<Vec<Row>>> {
        let audited = self.cx.route.audit.is_some();
        Tenant::<H>::query_with_audit_head(self.db, self.head, audited, statements).await
    }
}

impl<'a, H: Host, A> Deref for ClinicScope<'_, 'a, H, A> {
    type Target = Ctx<'a, H>;
    fn deref(&self) -> &Ctx<'a, H> {
        &*self.cx
    }
}

impl<'a, H: Host, A> DerefMut for ClinicScope<'_, 'a, H, A> {
    fn deref_mut(&mut self) -> &mut Ctx<'a, H> {
        &mut *self.cx
    }
}

/// What [`Open::enter_with_directory`] found.
pub(crate) enum Entered<'s, 'a, H: Host, A> {
    In(ClinicScope<'s, 'a, H, A>),
    /// Why not, and the request.
    Not(ApiError, &'s mut Ctx<'a, H>),
}

/// A handler's view of a request that has not entered a clinic, acting as
/// `A` (nobody yet on public routes; platform staff on the console's).
pub(crate) struct Open<'s, 'a, H: Host, A = ()> {
    cx: &'s mut Ctx<'a, H>,
    tenant: &'s mut Option<Tenant<H>>,
    pub actor: &'s A,
}

impl<'s, 'a: 's, H: Host, A> Open<'s, 'a, H, A> {
    pub(crate) fn new(
        cx: &'s mut Ctx<'a, H>,
        tenant: &'s mut Option<Tenant<H>>,
        actor: &'s A,
    ) -> Self {
        Open { cx, tenant, actor }
    }

    /// Enters an existing clinic (see [`Ctx::enter`]).
    pub(crate) async fn enter(
        &mut self,
        clinic: &ClinicId,
    ) -> ApiResult<ClinicScope<'_, 'a, H, A>> {
        let t = self.cx.enter(self.tenant, clinic, false).await?;
        Ok(ClinicScope::new(self.cx, t, self.actor))
    }

    /// Enters an existing clinic with reads of the directory riding along
    /// (see [`Ctx::enter_with_directory`]): the clinic's view, or why it
    /// could not be entered (with the request's view back), and those
    /// reads' rows either way.
    pub(crate) async fn enter_with_directory(
        &mut self,
        clinic: &ClinicId,
        with: Vec<Statement>,
    ) -> ApiResult<(Entered<'_, 'a, H, A>, Vec<Vec<Row>>)> {
        let (entered, rows) = self
            .cx
            .enter_with_directory(self.tenant, clinic, with)
            .await?;
        let entered = match entered {
            Ok(t) => Entered::In(ClinicScope::new(self.cx, t, self.actor)),
            Err(e) => Entered::Not(e, self.cx),
        };
        Ok((entered, rows))
    }

    /// Creates a clinic's database and enters it (sign-up).
    pub(crate) async fn create(
        &mut self,
        clinic: &ClinicId,
    ) -> ApiResult<ClinicScope<'_, 'a, H, A>> {
        let t = self.cx.enter(self.tenant, clinic, true).await?;
        Ok(ClinicScope::new(self.cx, t, self.actor))
    }

    /// Verifies a token of `kind` and enters its clinic (see
    /// [`Ctx::enter_with_token`]).
    pub(crate) async fn enter_with_token(
        &mut self,
        kind: TokenKind,
        token: &str,
    ) -> ApiResult<(Subject, ClinicScope<'_, 'a, H, A>)> {
        let (subject, t) = self.cx.enter_with_token(self.tenant, kind, token).await?;
        Ok((subject, ClinicScope::new(self.cx, t, self.actor)))
    }
}

impl<'a, H: Host, A> Deref for Open<'_, 'a, H, A> {
    type Target = Ctx<'a, H>;
    fn deref(&self) -> &Ctx<'a, H> {
        &*self.cx
    }
}

impl<'a, H: Host, A> DerefMut for Open<'_, 'a, H, A> {
    fn deref_mut(&mut self) -> &mut Ctx<'a, H> {
        &mut *self.cx
    }
}
