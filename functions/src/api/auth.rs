//! `/api/v1/auth/*`: login (password, then TOTP where enrolled), the session,
//! logout, TOTP enrolment and password change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::clock;
use crate::crypto::blind::TermKind;
use crate::crypto::field::Field;
use crate::crypto::{password, totp};
use crate::error::{ApiError, ApiResult, Code};
use crate::host::Conn;
use crate::host::Host;
use crate::ids::{kind, ClinicId};
use crate::rbac::Role;
use crate::store::RowExt;
use crate::throttle;
use crate::token::{Subject, TokenKind};
use crate::web;

use super::clinics::CLINIC_NAME;
use super::users::{USER_EMAIL, USER_NAME};

const TOTP_SECRET: Field = Field::new("users", "totp_secret");
const TOTP_PENDING: Field = Field::new("users", "totp_pending");
/// How long the password step stays good for the TOTP step.
const MFA_CHALLENGE_SECS: i64 = 5 * clock::MINUTE;
/// Wrong codes one challenge tolerates.
const MFA_CHALLENGE_TRIES: i64 = 5;
/// Longest password text compared at all.
pub(crate) const MAX_PASSWORD_INPUT: usize = 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    clinic: String,
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Code6 {
    code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordOnly {
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    current: String,
    new: String,
}

/// The answer of a login step: a session, or the demand for a TOTP code
/// (with the short-lived MFA token, also set as a cookie).
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginResult {
    mfa_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<String>,
}

/// A live session as `GET /api/v1/auth/session` shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionView {
    /// The bearer token for API clients.
    pub token: String,
    pub user: SessionUser,
    pub clinic: ClinicSummary,
    pub expires_at: String,
    /// When the session ends without activity (clinic sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_expires_at: Option<String>,
    pub impersonation: Option<ImpersonationView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SessionUser {
    pub id: String,
    pub name: String,
    /// `null` for platform support.
    pub email: Option<String>,
    /// `owner`, `doctor`, `nurse`, `receptionist`, or `support`.
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enabled: Option<bool>,
}

/// Set when platform support acts in the clinic under an approved ticket.
#[derive(Serialize, ToSchema)]
pub(crate) struct ImpersonationView {
    pub support_user: String,
    pub ticket: String,
    pub expires_at: String,
}

/// A clinic as sessions and sign-up show it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ClinicSummary {
    pub id: String,
    pub name: String,
    pub region: String,
}

/// TOTP enrolment begun: the secret to put in an authenticator app.
#[derive(Serialize, ToSchema)]
pub(crate) struct TotpEnrolment {
    secret: String,
    otpauth_uri: String,
}

struct Account {
    id: String,
    role: Role,
    active: bool,
    password_hash: String,
    mfa_enabled: bool,
}

fn account_key<H: Host>(ctx: &Ctx<'_, H>, clinic: &ClinicId, email: &str) -> Vec<u8> {
    throttle::key(
        &ctx.app.throttle_key(),
        "account",
        &[clinic.as_str(), email],
    )
}

fn address_key<H: Host>(ctx: &Ctx<'_, H>) -> Option<Vec<u8>> {
    ctx.ip
        .map(|ip| throttle::key(&ctx.app.throttle_key(), "address", &[&ip.to_string()]))
}

async fn find_account<H: Host>(ctx: &mut Ctx<'_, H>, email: &str) -> ApiResult<Option<Account>> {
    let terms = ctx.lookup_terms(TermKind::Email, email)?;
    let (sql, params) = crate::store::any_of(
        "SELECT id, role, active, password_hash, mfa_enabled FROM users WHERE email_term IN",
        terms,
    );
    let rows = ctx.query_with_audit_head(&sql, params).await?;
    rows.first()
        .map(|r| {
            Ok(Account {
                id: r.text(0)?,
                role: Role::parse(&r.text(1)?).ok_or_else(|| ApiError::internal("unknown role"))?,
                active: r.int(2)? == 1,
                password_hash: r.text(3)?,
                mfa_enabled: r.int(4)? == 1,
            })
        })
        .transpose()
}

pub(crate) async fn login<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: Login = ctx.json()?;
    let clinic = ClinicId::parse(&req.clinic)
        .ok_or_else(|| ApiError::invalid("clinic", "not a clinic id"))?;
    ctx.guard_region(&clinic)?;
    if req.password.len() > MAX_PASSWORD_INPUT {
        return Err(ApiError::invalid("password", "too long"));
    }
    ctx.apply_test_clock(&clinic).await?;
    let email = req.email.trim().to_lowercase();
    let dir = ctx.app.directory().await?;
    let account = account_key(ctx, &clinic, &email);
    let address = address_key(ctx);
    let mut keys = vec![account.clone()];
    keys.extend(address.clone());
    let counted = throttle::check(&dir, &keys, ctx.now).await?;

    let found = match ctx.enter_clinic(&clinic, false).await {
        Ok(()) => find_account(ctx, &email).await?,
        Err(e) if e.code == Code::NotFound => None,
        Err(e) => return Err(e),
    };
    let ok = match &found {
        Some(a) if a.active => password::verify(&req.password, &a.password_hash),
        _ => {
            password::verify_dummy(&req.password);
            false
        }
    };
    ctx.audit.actor = Some(match &found {
        Some(a) => (a.id.clone(), Some(a.role)),
        None => ("unknown".to_owned(), None),
    });
    let Some(user) = found.filter(|_| ok) else {
        throttle::fail(&dir, &account, throttle::ACCOUNT, ctx.now).await?;
        if let Some(a) = &address {
            throttle::fail(&dir, a, throttle::ADDRESS, ctx.now).await?;
        }
        return Err(ApiError::bad_credentials());
    };
    if counted.contains(&account) {
        throttle::clear(&dir, &account).await?;
    }
    ctx.audit.resource = Some(format!("user/{}", user.id));

    if user.mfa_enabled {
        let sid = ctx.new_id(kind::SESSION);
        ctx.db()?
            .execute_later(
                "INSERT INTO sessions (id, user_id, kind, created_at, last_seen, expires_at) VALUES (?1, ?2, 'mfa', ?3, ?3, ?4)",
                vec![sid.clone().into(), user.id.clone().into(), ctx.now.into(), (ctx.now + MFA_CHALLENGE_SECS).into()],
            )
            .await?;
        let subject = Subject {
            user: user.id,
            clinic: clinic.as_str().to_owned(),
            session: sid,
        };
        let token = ctx.app.tokens().issue(
            TokenKind::MfaChallenge,
            &subject,
            ctx.now,
            MFA_CHALLENGE_SECS,
        );
        ctx.set_cookies
            .push(web::set_cookie(web::MFA_COOKIE, &token, MFA_CHALLENGE_SECS));
        return Reply::ok(LoginResult {
            mfa_required: true,
            session: None,
            mfa_token: Some(token),
        });
    }
    let session = start_session(ctx, &clinic, &user.id).await?;
    Reply::ok(LoginResult {
        mfa_required: false,
        session: Some(session),
        mfa_token: None,
    })
}

pub(crate) async fn mfa<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: Code6 = ctx.json()?;
    let token =
        match web::bearer(&ctx.headers).or_else(|| web::cookie(&ctx.headers, web::MFA_COOKIE)) {
            Some(t) => t.to_owned(),
            None => return Err(ApiError::unauthenticated()),
        };
    let subject = ctx.open_token(TokenKind::MfaChallenge, &token).await?;
    let clinic = ctx.clinic_id()?;
    let rows = ctx
        .db()?
        .query(
            "SELECT s.user_id, s.expires_at, s.revoked_at, s.failures, u.role, u.active, u.totp_secret, u.totp_last_step, u.email \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1 AND s.kind = 'mfa'",
            vec![subject.session.clone().into()],
        )
        .await?;
    let row = rows.first().ok_or_else(ApiError::unauthenticated)?;
    let user_id = row.text(0)?;
    let live = user_id == subject.user
        && ctx.now < row.int(1)?
        && row.opt_int(2)?.is_none()
        && row.int(3)? < MFA_CHALLENGE_TRIES
        && row.int(5)? == 1;
    let (Some(sealed_secret), true) = (row.opt_blob(6)?, live) else {
        return Err(ApiError::unauthenticated());
    };
    let role = Role::parse(&row.text(4)?).ok_or_else(|| ApiError::internal("unknown role"))?;
    ctx.audit.actor = Some((user_id.clone(), Some(role)));
    ctx.audit.resource = Some(format!("user/{user_id}"));
    let email = ctx.open(USER_EMAIL, &user_id, &row.blob(8)?)?;
    let last_step = row.opt_int(7)?;
    let dir = ctx.app.directory().await?;
    let account = account_key(ctx, &clinic, &email);
    let counted = throttle::check(&dir, std::slice::from_ref(&account), ctx.now).await?;

    let secret = ctx
        .keys()?
        .cipher
        .open(TOTP_SECRET, &user_id, &sealed_secret)?;
    let Some(step) = totp::verify(&secret, req.code.trim(), ctx.now, last_step) else {
        // The failure counts stand even though the request fails.
        ctx.keep_writes_on_error = true;
        ctx.db()?
            .execute_later(
                "UPDATE sessions SET failures = failures + 1 WHERE id = ?1",
                vec![subject.session.into()],
            )
            .await?;
        throttle::fail(&dir, &account, throttle::ACCOUNT, ctx.now).await?;
        return Err(ApiError::new(
            Code::Unauthenticated,
            "wrong, expired or already used code",
        ));
    };
    let db = ctx.db()?;
    db.execute_later(
        "UPDATE users SET totp_last_step = ?2 WHERE id = ?1",
        vec![user_id.clone().into(), step.into()],
    )
    .await?;
    db.execute_later(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1",
        vec![subject.session.into(), ctx.now.into()],
    )
    .await?;
    if counted.contains(&account) {
        throttle::clear(&dir, &account).await?;
    }
    ctx.set_cookies.push(web::clear_cookie(web::MFA_COOKIE));
    let session = start_session(ctx, &clinic, &user_id).await?;
    Reply::ok(LoginResult {
        mfa_required: false,
        session: Some(session),
        mfa_token: None,
    })
}

/// Creates a server-side session, its token and cookie; returns the session view.
async fn start_session<H: Host>(
    ctx: &mut Ctx<'_, H>,
    clinic: &ClinicId,
    user_id: &str,
) -> ApiResult<SessionView> {
    let sid = ctx.new_id(kind::SESSION);
    let absolute = ctx.app.config().absolute_timeout_secs;
    let expires_at = ctx.now + absolute;
    ctx.db()?
        .execute_later(
            "INSERT INTO sessions (id, user_id, kind, created_at, last_seen, expires_at) VALUES (?1, ?2, 'session', ?3, ?3, ?4)",
            vec![sid.clone().into(), user_id.into(), ctx.now.into(), expires_at.into()],
        )
        .await?;
    let subject = Subject {
        user: user_id.to_owned(),
        clinic: clinic.as_str().to_owned(),
        session: sid,
    };
    let token = ctx
        .app
        .tokens()
        .issue(TokenKind::Session, &subject, ctx.now, absolute);
    ctx.set_cookies.push(web::set_cookie(
        web::SESSION_COOKIE,
        &token,
        ctx.app.config().idle_timeout_secs,
    ));
    session_view(ctx, user_id, &token, expires_at).await
}

async fn session_view<H: Host>(
    ctx: &Ctx<'_, H>,
    user_id: &str,
    token: &str,
    expires_at: i64,
) -> ApiResult<SessionView> {
    let mut results = ctx
        .db()?
        .query_many(vec![
            (
                "SELECT name, email, role, mfa_enabled FROM users WHERE id = ?1".to_owned(),
                vec![user_id.into()],
            ),
            (CLINIC_SUMMARY_SQL.to_owned(), vec![]),
        ])
        .await?
        .into_iter();
    let (users, clinics) = (
        results.next().unwrap_or_default(),
        results.next().unwrap_or_default(),
    );
    let u = users
        .first()
        .ok_or_else(|| ApiError::internal("session user vanished"))?;
    let idle_end = (ctx.now + ctx.app.config().idle_timeout_secs).min(expires_at);
    Ok(SessionView {
        token: token.to_owned(),
        user: SessionUser {
            id: user_id.to_owned(),
            name: ctx.open(USER_NAME, user_id, &u.blob(0)?)?,
            email: Some(ctx.open(USER_EMAIL, user_id, &u.blob(1)?)?),
            role: u.text(2)?,
            mfa_enabled: Some(u.int(3)? == 1),
        },
        clinic: clinic_summary(ctx, &clinics)?,
        expires_at: clock::rfc3339(expires_at),
        idle_expires_at: Some(clock::rfc3339(idle_end)),
        impersonation: None,
    })
}

/// The query behind [`clinic_summary`].
pub(crate) const CLINIC_SUMMARY_SQL: &str = "SELECT id, name, region FROM clinic";

/// A session's `clinic`: `{id, name, region}` from [`CLINIC_SUMMARY_SQL`]'s rows.
pub(crate) fn clinic_summary<H: Host>(
    ctx: &Ctx<'_, H>,
    rows: &[crate::host::Row],
) -> ApiResult<ClinicSummary> {
    let c = rows
        .first()
        .ok_or_else(|| ApiError::internal("clinic row missing"))?;
    let id = c.text(0)?;
    Ok(ClinicSummary {
        name: ctx.open(CLINIC_NAME, &id, &c.blob(1)?)?,
        region: c.text(2)?,
        id,
    })
}

pub(crate) async fn session<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let p = ctx.principal()?.clone();
    if let Some(i) = &p.impersonation {
        return Reply::ok(super::support::session_view(ctx, &p.user_id, &p.token, i).await?);
    }
    Reply::ok(session_view(ctx, &p.user_id, &p.token, p.session_expires_at).await?)
}

pub(crate) async fn logout<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let p = ctx.principal()?.clone();
    if p.impersonation.is_some() {
        super::support::end_session(ctx, &p.session_id).await?;
        ctx.set_cookies.clear();
        ctx.set_cookies.push(web::clear_cookie(web::SESSION_COOKIE));
        return Reply::no_content();
    }
    ctx.db()?
        .execute(
            "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1",
            vec![p.session_id.into(), ctx.now.into()],
        )
        .await?;
    ctx.audit.resource = Some(format!("user/{}", p.user_id));
    ctx.set_cookies.clear();
    ctx.set_cookies.push(web::clear_cookie(web::SESSION_COOKIE));
    Reply::no_content()
}

/// Checks the signed-in user's password again (throttled like login);
/// returns the user's email.
pub(crate) async fn reauthenticate<H: Host>(
    ctx: &mut Ctx<'_, H>,
    password_text: &str,
    field: &str,
) -> ApiResult<String> {
    if password_text.len() > MAX_PASSWORD_INPUT {
        return Err(ApiError::invalid(field, "too long"));
    }
    let user_id = ctx.principal()?.user_id.clone();
    let clinic = ctx.clinic_id()?;
    let rows = ctx
        .db()?
        .query(
            "SELECT password_hash, email FROM users WHERE id = ?1",
            vec![user_id.clone().into()],
        )
        .await?;
    let row = rows.first().ok_or_else(ApiError::unauthenticated)?;
    let email = ctx.open(USER_EMAIL, &user_id, &row.blob(1)?)?;
    let dir = ctx.app.directory().await?;
    let account = account_key(ctx, &clinic, &email);
    throttle::check(&dir, std::slice::from_ref(&account), ctx.now).await?;
    if !password::verify(password_text, &row.text(0)?) {
        throttle::fail(&dir, &account, throttle::ACCOUNT, ctx.now).await?;
        return Err(ApiError::new(Code::Unauthenticated, "wrong password"));
    }
    Ok(email)
}

pub(crate) async fn totp_start<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: PasswordOnly = ctx.json()?;
    let email = reauthenticate(ctx, &req.password, "password").await?;
    let user_id = ctx.principal()?.user_id.clone();
    ctx.audit.resource = Some(format!("user/{user_id}"));
    let secret: [u8; totp::SECRET_LEN] = ctx.random();
    let sealed = ctx
        .keys()?
        .cipher
        .seal(TOTP_PENDING, &user_id, &secret, ctx.random());
    ctx.db()?
        .execute(
            "UPDATE users SET totp_pending = ?2, updated_at = ?3 WHERE id = ?1",
            vec![user_id.into(), sealed.into(), ctx.now.into()],
        )
        .await?;
    Reply::ok(TotpEnrolment {
        secret: totp::secret_base32(&secret),
        otpauth_uri: totp::otpauth_uri(&secret, &email),
    })
}

pub(crate) async fn totp_confirm<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: Code6 = ctx.json()?;
    let user_id = ctx.principal()?.user_id.clone();
    ctx.audit.resource = Some(format!("user/{user_id}"));
    let rows = ctx
        .db()?
        .query(
            "SELECT totp_pending, totp_last_step FROM users WHERE id = ?1",
            vec![user_id.clone().into()],
        )
        .await?;
    let row = rows.first().ok_or_else(ApiError::unauthenticated)?;
    let Some(pending) = row.opt_blob(0)? else {
        return Err(ApiError::conflict(
            "start enrolment first (POST /api/v1/auth/totp)",
        ));
    };
    let secret = ctx.keys()?.cipher.open(TOTP_PENDING, &user_id, &pending)?;
    let step = totp::verify(&secret, req.code.trim(), ctx.now, row.opt_int(1)?)
        .ok_or_else(|| ApiError::invalid("code", "wrong, expired or already used code"))?;
    let sealed = ctx
        .keys()?
        .cipher
        .seal(TOTP_SECRET, &user_id, &secret, ctx.random());
    ctx.db()?
        .execute(
            "UPDATE users SET totp_secret = ?2, totp_pending = NULL, totp_last_step = ?3, mfa_enabled = 1, updated_at = ?4 WHERE id = ?1",
            vec![user_id.into(), sealed.into(), step.into(), ctx.now.into()],
        )
        .await?;
    Reply::no_content()
}

pub(crate) async fn change_password<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: ChangePassword = ctx.json()?;
    if let Some(why) = password::policy_violation(&req.new) {
        return Err(ApiError::invalid("new", why));
    }
    reauthenticate(ctx, &req.current, "current").await?;
    let p = ctx.principal()?.clone();
    ctx.audit.resource = Some(format!("user/{}", p.user_id));
    let hash = password::hash(&req.new, ctx.random());
    let db = ctx.db()?;
    db.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        vec![p.user_id.clone().into(), hash.into(), ctx.now.into()],
    )
    .await?;
    db.execute(
        "UPDATE sessions SET revoked_at = ?3 WHERE user_id = ?1 AND id != ?2 AND revoked_at IS NULL",
        vec![p.user_id.into(), p.session_id.into(), ctx.now.into()],
    )
    .await?;
    Reply::no_content()
}
