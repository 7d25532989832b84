//! `/api/v1/auth/*`: sign-in (password, then TOTP where enrolled), the
//! session, logout, TOTP enrolment and password change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock;
use crate::crypto::{password, totp};
use crate::error::{ApiError, ApiResult, Code};
use crate::host::Host;
use crate::ids::{kind, ClinicId};
use crate::records::directory::throttle;
use crate::records::sessions::{self, SessionKind};
use crate::records::users;
use crate::request::actor::Actor;
use crate::request::session::{self, account_key, address_key, recheck_password};
use crate::request::{ClinicScope, Open, Reply, Resource};
use crate::token::{Subject, TokenKind};
use crate::web;

pub(crate) use crate::request::session::SessionView;

/// How long the password step stays good for the TOTP step.
const MFA_CHALLENGE_SECS: i64 = 5 * clock::MINUTE;
/// Wrong codes one challenge tolerates.
const MFA_CHALLENGE_TRIES: i64 = 5;

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

/// The answer of a sign-in step: a session, or the demand for a TOTP code
/// (with the short-lived MFA token, also set as a cookie).
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginResult {
    mfa_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<String>,
}

/// TOTP enrolment begun: the secret to put in an authenticator app.
#[derive(Serialize, ToSchema)]
pub(crate) struct TotpEnrolment {
    secret: String,
    otpauth_uri: String,
}

/// `POST /api/v1/auth/login`: the password step.
pub(crate) async fn login<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let req: Login = p.json()?;
    let clinic = ClinicId::parse(&req.clinic)
        .ok_or_else(|| ApiError::invalid("clinic", "not a clinic id"))?;
    p.guard_region(&clinic)?;
    if req.password.len() > password::MAX_INPUT {
        return Err(ApiError::invalid("password", "too long"));
    }
    p.apply_test_clock(&clinic).await?;
    let email = req.email.trim().to_lowercase();
    let dir = p.app.directory().await?;
    let account = account_key(p, &clinic, &email);
    let address = address_key(p);
    let mut keys = vec![account.clone()];
    keys.extend(address.clone());
    let counted = throttle::check(&dir, &keys, p.now).await?;

    let mut s = match p.enter(&clinic).await {
        Ok(s) => s,
        Err(e) if e.code == Code::NotFound => {
            // No such clinic: the same answer and work as a wrong password.
            password::verify_dummy(&req.password);
            p.audit.tried_by("unknown", None);
            return refuse(p, &dir, &account, address.as_deref()).await;
        }
        Err(e) => return Err(e),
    };
    let rows = s
        .query_with_audit_head(users::find_by_email(&s.vault, &email))
        .await?;
    let found = users::account_from_rows(&rows)?;
    let ok = match &found {
        Some(a) if a.active => password::verify(&req.password, &a.password_hash),
        _ => {
            password::verify_dummy(&req.password);
            false
        }
    };
    match &found {
        Some(a) => s.audit.tried_by(&a.id, Some(a.role.as_str())),
        None => s.audit.tried_by("unknown", None),
    }
    let Some(user) = found.filter(|_| ok) else {
        return refuse(&mut s, &dir, &account, address.as_deref()).await;
    };
    if counted.contains(&account) {
        throttle::clear(&dir, &account).await?;
    }
    s.audit.about(Resource::User(&user.id));

    if user.mfa_enabled {
        let sid = s.new_id(kind::SESSION);
        sessions::insert(
            s.db,
            SessionKind::Mfa,
            &sid,
            &user.id,
            s.now,
            s.now + MFA_CHALLENGE_SECS,
        )
        .await?;
        let subject = Subject {
            user: user.id,
            clinic: clinic.as_str().to_owned(),
            session: sid,
        };
        let token =
            s.app
                .tokens()
                .issue(TokenKind::MfaChallenge, &subject, s.now, MFA_CHALLENGE_SECS);
        s.set_cookie(web::MFA_COOKIE, &token, MFA_CHALLENGE_SECS);
        return Reply::ok(LoginResult {
            mfa_required: true,
            session: None,
            mfa_token: Some(token),
        });
    }
    let session = start_session(&mut s, &user.id).await?;
    Reply::ok(LoginResult {
        mfa_required: false,
        session: Some(session),
        mfa_token: None,
    })
}

/// A refused sign-in: counted against the account and the address.
async fn refuse<H: Host>(
    cx: &mut crate::request::Ctx<'_, H>,
    dir: &H::Conn,
    account: &[u8],
    address: Option<&[u8]>,
) -> ApiResult<Reply> {
    throttle::fail(dir, account, throttle::ACCOUNT, cx.now).await?;
    if let Some(a) = address {
        throttle::fail(dir, a, throttle::ADDRESS, cx.now).await?;
    }
    Err(ApiError::bad_credentials())
}

/// `POST /api/v1/auth/mfa`: the TOTP step.
pub(crate) async fn mfa<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let req: Code6 = p.json()?;
    let token = match web::bearer(&p.headers).or_else(|| web::cookie(&p.headers, web::MFA_COOKIE)) {
        Some(t) => t.to_owned(),
        None => return Err(ApiError::unauthenticated()),
    };
    let (subject, mut s) = p.enter_with_token(TokenKind::MfaChallenge, &token).await?;
    let clinic = s.clinic.clone();
    let challenge = sessions::challenge(s.db, &s.vault, &subject.session)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let user_id = challenge.user_id;
    let live = user_id == subject.user
        && s.now < challenge.expires_at
        && !challenge.revoked
        && challenge.failures < MFA_CHALLENGE_TRIES
        && challenge.user.active;
    let (Some(secret), true) = (challenge.user.secret, live) else {
        return Err(ApiError::unauthenticated());
    };
    s.audit
        .tried_by(&user_id, Some(challenge.user.role.as_str()));
    s.audit.about(Resource::User(&user_id));
    let dir = s.app.directory().await?;
    let account = account_key(&s, &clinic, &challenge.user.email);
    let counted = throttle::check(&dir, std::slice::from_ref(&account), s.now).await?;

    let Some(step) = totp::verify(&secret, req.code.trim(), s.now, challenge.user.last_step) else {
        // The failure counts stand even though the request fails.
        s.keep_writes_on_error = true;
        sessions::count_failure(s.db, &subject.session).await?;
        throttle::fail(&dir, &account, throttle::ACCOUNT, s.now).await?;
        return Err(ApiError::new(
            Code::Unauthenticated,
            "wrong, expired or already used code",
        ));
    };
    users::use_totp_step(s.db, &user_id, step).await?;
    sessions::end_later(s.db, &subject.session, s.now).await?;
    if counted.contains(&account) {
        throttle::clear(&dir, &account).await?;
    }
    s.clear_cookie(web::MFA_COOKIE);
    let session = start_session(&mut s, &user_id).await?;
    Reply::ok(LoginResult {
        mfa_required: false,
        session: Some(session),
        mfa_token: None,
    })
}

/// Creates a server-side session, its token and cookie; returns the session
/// view.
async fn start_session<H: Host>(
    s: &mut ClinicScope<'_, '_, H, ()>,
    user_id: &str,
) -> ApiResult<SessionView> {
    let sid = s.new_id(kind::SESSION);
    let absolute = s.app.config.absolute_timeout_secs;
    let expires_at = s.now + absolute;
    sessions::insert(s.db, SessionKind::Session, &sid, user_id, s.now, expires_at).await?;
    let subject = Subject {
        user: user_id.to_owned(),
        clinic: s.clinic.as_str().to_owned(),
        session: sid,
    };
    let token = s
        .app
        .tokens()
        .issue(TokenKind::Session, &subject, s.now, absolute);
    let idle = s.app.config.idle_timeout_secs;
    s.set_cookie(web::SESSION_COOKIE, &token, idle);
    session::user_view(s, user_id, &token, expires_at).await
}

/// `GET /api/v1/auth/session`.
pub(crate) async fn session<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    match s.actor {
        Actor::User(u) => {
            Reply::ok(session::user_view(s, &u.user_id, &u.token, u.expires_at).await?)
        }
        Actor::Support(support) => Reply::ok(session::support_view(s, support).await?),
        Actor::Staff(_) => Err(ApiError::unauthenticated()),
    }
}

/// `POST /api/v1/auth/logout`: the token is dead from now on.
pub(crate) async fn logout<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    match s.actor {
        Actor::Support(support) => {
            let dir = s.app.directory().await?;
            crate::records::directory::support_sessions::end(&dir, &support.session_id, s.now)
                .await?;
        }
        Actor::User(u) => {
            sessions::end(s.db, &u.session_id, s.now).await?;
            s.audit.about(Resource::User(&u.user_id));
        }
        Actor::Staff(_) => return Err(ApiError::unauthenticated()),
    }
    s.cookies.clear();
    s.clear_cookie(web::SESSION_COOKIE);
    Reply::no_content()
}

/// The signed-in clinic user (support sessions never reach the routes of
/// one's own account: see the route table).
fn user<'s, H: Host>(
    s: &ClinicScope<'s, '_, H>,
) -> ApiResult<&'s crate::request::actor::UserSession> {
    match s.actor {
        Actor::User(u) => Ok(u),
        _ => Err(ApiError::forbidden()),
    }
}

/// `POST /api/v1/auth/totp`: enrolment begins (password re-checked).
pub(crate) async fn totp_start<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: PasswordOnly = s.json()?;
    let u = user(s)?;
    let email = recheck_password(s, &u.user_id, &req.password, "password").await?;
    s.audit.about(Resource::User(&u.user_id));
    let secret: [u8; totp::SECRET_LEN] = s.random();
    users::set_pending_totp(s.db, &s.vault, &u.user_id, &secret, s.now).await?;
    Reply::ok(TotpEnrolment {
        secret: totp::secret_base32(&secret),
        otpauth_uri: totp::otpauth_uri(&secret, &email),
    })
}

/// `POST /api/v1/auth/totp/confirm`: enrolment done with a first code.
pub(crate) async fn totp_confirm<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: Code6 = s.json()?;
    let u = user(s)?;
    s.audit.about(Resource::User(&u.user_id));
    let (pending, last_step) = users::pending_totp(s.db, &s.vault, &u.user_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let Some(secret) = pending else {
        return Err(ApiError::conflict(
            "start enrolment first (POST /api/v1/auth/totp)",
        ));
    };
    let step = totp::verify(&secret, req.code.trim(), s.now, last_step)
        .ok_or_else(|| ApiError::invalid("code", "wrong, expired or already used code"))?;
    users::confirm_totp(s.db, &s.vault, &u.user_id, &secret, step, s.now).await?;
    Reply::no_content()
}

/// `POST /api/v1/auth/password`: other sessions of the user end.
pub(crate) async fn change_password<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: ChangePassword = s.json()?;
    if let Some(why) = password::policy_violation(&req.new) {
        return Err(ApiError::invalid("new", why));
    }
    let u = user(s)?;
    recheck_password(s, &u.user_id, &req.current, "current").await?;
    s.audit.about(Resource::User(&u.user_id));
    let hash = password::hash(&req.new, s.random());
    users::set_password(s.db, &u.user_id, &hash, s.now).await?;
    sessions::end_all_of(s.db, &u.user_id, Some(&u.session_id), s.now).await?;
    Reply::no_content()
}
