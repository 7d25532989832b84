//! `/api/v1/auth/*`: sign-in (password, then TOTP where enrolled), the
//! session, logout, TOTP enrolment and password change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock;
use crate::crypto::{password, totp};
use crate::error::{ApiError, ApiResult, Code};
use crate::host::{Host, Row};
use crate::ids::{kind, ClinicId};
use crate::records::clinic;
use crate::records::directory::throttle;
use crate::records::known_addresses;
use crate::records::sessions::{self, SessionKind};
use crate::records::users::{self, Profile};
use crate::request::actor::Actor;
use crate::request::prefetch::Prefetch;
use crate::request::scope::Entered;
use crate::request::session::{self, SignInNotice};
use crate::request::sign_in::{
    check_code, known_here, mfa_key, recheck_password, remember_address, PasswordKeys,
};
use crate::request::{ClinicScope, Open, Reply, Resource};
use crate::store::Statement;
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

/// The body of `POST /api/v1/auth/totp`: the password, and a code from the
/// device in use when TOTP is already enrolled (re-enrolment).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpStart {
    password: String,
    code: Option<String>,
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
    let email = crate::validate::email_key(&req.email);
    let keys = PasswordKeys::new(p, &clinic, &email);
    // One round trip to the directory: the clinic's keys and the counters.
    let (entered, counters) = p
        .enter_with_directory(&clinic, vec![keys.counters_query()])
        .await?;
    let mut s = match entered {
        Entered::In(s) => s,
        Entered::Not(e, cx) if e.code == Code::NotFound => {
            let counted = keys.check_rows(&counters.concat(), cx.now)?;
            // No such clinic: the same answer and work as a wrong password.
            password::verify_dummy(&req.password);
            cx.audit.tried_by("unknown", None);
            keys.admit(&counted, false)?;
            let now = cx.now;
            keys.failed(&mut cx.directory_later, now);
            return Err(ApiError::bad_credentials());
        }
        Entered::Not(e, _) => return Err(e),
    };
    let counted = keys.check_rows(&counters.concat(), s.now)?;
    // One read of the clinic, without its lock: the account, whether it
    // signed in from here before, and what the session's answer shows.
    let lookups = vec![
        users::find_by_email(&s.vault, &email),
        known_here(&s, &s.vault, &email),
        users::profile_by_email(&s.vault, &email),
        (clinic::SELECT.to_owned(), vec![]),
    ];
    let mut rows = s.query_with_audit_head(lookups).await?.into_iter();
    let found = users::account_from_rows(&rows.next().unwrap_or_default())?;
    let known = known_addresses::known(&rows.next().unwrap_or_default());
    let (profiles, clinic_rows) = (
        rows.next().unwrap_or_default(),
        rows.next().unwrap_or_default(),
    );
    match &found {
        Some(a) => s.audit.tried_by(&a.id, Some(a.role.as_str())),
        None => s.audit.tried_by("unknown", None),
    }
    if let Err(e) = keys.admit(&counted, known) {
        password::verify_dummy(&req.password);
        return Err(e);
    }
    let ok = match &found {
        Some(a) if a.active => password::verify(&req.password, &a.password_hash),
        _ => {
            password::verify_dummy(&req.password);
            false
        }
    };
    let now = s.now;
    let Some(user) = found.filter(|_| ok) else {
        keys.failed(&mut s.directory_later, now);
        return Err(ApiError::bad_credentials());
    };
    keys.succeeded(&mut s.directory_later, &counted);
    remember_address(&s, &email).await?;
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
    let profile = users::profile_by_email_rows(&s.vault, &user.id, &profiles)?;
    let session = start_session(&mut s, &user.id, Some((profile, clinic_rows))).await?;
    Reply::ok(LoginResult {
        mfa_required: false,
        session: Some(session),
        mfa_token: None,
    })
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
    // Wrong codes count against the account's TOTP step across every
    // sign-in, not only this challenge: signing in again buys no guesses.
    let mfa = mfa_key(&s, &clinic, &user_id);
    let counted = throttle::check(&dir, std::slice::from_ref(&mfa), s.now).await?;

    let Some(step) = totp::verify(&secret, req.code.trim(), s.now, challenge.user.last_step) else {
        // The failure counts stand even though the request fails.
        s.keep_writes_on_error = true;
        sessions::count_failure(s.db, &subject.session).await?;
        users::count_totp_failure(s.db, &user_id).await?;
        let now = s.now;
        s.directory_later
            .extend(throttle::fail_statements(&mfa, throttle::MFA, now));
        return Err(ApiError::new(
            Code::Unauthenticated,
            "wrong, expired or already used code",
        ));
    };
    users::use_totp_step(s.db, &user_id, step).await?;
    sessions::end_later(s.db, &subject.session, s.now).await?;
    if counted.contains(&mfa) {
        s.directory_later.push(throttle::clear_statement(&mfa));
    }
    s.clear_cookie(web::MFA_COOKIE);
    let mut session = start_session(&mut s, &user_id, None).await?;
    if challenge.user.failures > 0 {
        session.notice = Some(SignInNotice {
            failed_codes: challenge.user.failures,
        });
    }
    Reply::ok(LoginResult {
        mfa_required: false,
        session: Some(session),
        mfa_token: None,
    })
}

/// Creates a server-side session, its token and cookie; returns the session
/// view.
/// `read`: the user's profile and the clinic's row, where the sign-in read
/// them already (so that the answer needs no read after the write).
async fn start_session<H: Host>(
    s: &mut ClinicScope<'_, '_, H, ()>,
    user_id: &str,
    read: Option<(Profile, Vec<Row>)>,
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
    match read {
        Some((profile, clinic)) => {
            session::user_view_of(s, profile, &clinic, user_id, &token, expires_at)
        }
        None => session::user_view(s, user_id, &token, expires_at).await,
    }
}

/// What `GET /api/v1/auth/session` reads for a clinic user.
pub(crate) fn reads_session(p: &Prefetch<'_>) -> Vec<Statement> {
    session::user_reads(p.user)
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

/// `POST /api/v1/auth/totp`: enrolment begins (password re-checked; a code
/// from the device in use when TOTP is enrolled already, so that a stolen
/// password and session alone cannot move the second factor to another
/// device: a lost device is an owner's reset).
pub(crate) async fn totp_start<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: TotpStart = s.json()?;
    let u = user(s)?;
    let email = recheck_password(s, &u.user_id, &req.password, "password").await?;
    s.audit.about(Resource::User(&u.user_id));
    if let Some((secret, last_step)) = users::totp_in_force(s.db, &s.vault, &u.user_id).await? {
        let Some(code) = req.code.as_deref() else {
            return Err(ApiError::invalid(
                "code",
                "TOTP is enrolled: give a code from the device in use (a lost device is an owner's reset)",
            ));
        };
        let step = check_code(s, &u.user_id, &secret, last_step, code, "code").await?;
        users::use_totp_step(s.db, &u.user_id, step).await?;
    }
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
    let (pending, _) = users::pending_totp(s.db, &s.vault, &u.user_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let Some(secret) = pending else {
        return Err(ApiError::conflict(
            "start enrolment first (POST /api/v1/auth/totp)",
        ));
    };
    // A new secret's codes were never used: the last step of the secret
    // in force (a re-enrolment's, checked a moment ago) says nothing of it.
    let step = totp::verify(&secret, req.code.trim(), s.now, None)
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
    users::set_password(s.db, &u.user_id, &hash, false, s.now).await?;
    sessions::end_all_of(s.db, &u.user_id, Some(&u.session_id), s.now).await?;
    Reply::no_content()
}
