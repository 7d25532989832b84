//! A session as the API shows it (`GET /api/v1/auth/session`, and the
//! answers of sign-in and of a support session's start), for either kind of
//! clinic actor; and the re-check of a signed-in user's password before a
//! sensitive change, throttled like sign-in.

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock;
use crate::crypto::password;
use crate::error::{ApiError, ApiResult, Code};
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::records::clinic::{self, ClinicSummary};
use crate::records::directory::throttle;
use crate::records::users;

use super::actor::SupportSession;
use super::ctx::Ctx;
use super::scope::ClinicScope;

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

/// A clinic user's session.
pub(crate) async fn user_view<H: Host, A>(
    s: &ClinicScope<'_, '_, H, A>,
    user_id: &str,
    token: &str,
    expires_at: i64,
) -> ApiResult<SessionView> {
    let mut results =
        s.db.query_many(vec![
            users::profile(user_id),
            (clinic::SELECT.to_owned(), vec![]),
        ])
        .await?
        .into_iter();
    let (profile, clinic) = (
        results.next().unwrap_or_default(),
        results.next().unwrap_or_default(),
    );
    let u = users::profile_from_rows(&s.vault, user_id, &profile)?;
    let idle_end = (s.now + s.app.config.idle_timeout_secs).min(expires_at);
    Ok(SessionView {
        token: token.to_owned(),
        user: SessionUser {
            id: user_id.to_owned(),
            name: u.name,
            email: Some(u.email),
            role: u.role,
            mfa_enabled: Some(u.mfa_enabled),
        },
        clinic: clinic::from_rows(&s.vault, &clinic)?.summary,
        expires_at: clock::rfc3339(expires_at),
        idle_expires_at: Some(clock::rfc3339(idle_end)),
        impersonation: None,
    })
}

/// A support session inside the clinic.
pub(crate) async fn support_view<H: Host, A>(
    s: &ClinicScope<'_, '_, H, A>,
    support: &SupportSession,
) -> ApiResult<SessionView> {
    let clinic = clinic::load(s.db, &s.vault).await?;
    Ok(SessionView {
        token: support.token.clone(),
        user: SessionUser {
            id: support.staff_id.clone(),
            name: "Amanah support".into(),
            email: None,
            role: "support".into(),
            mfa_enabled: None,
        },
        clinic: clinic.summary,
        expires_at: clock::rfc3339(support.expires_at),
        idle_expires_at: None,
        impersonation: Some(ImpersonationView {
            support_user: support.staff_id.clone(),
            ticket: support.ticket.clone(),
            expires_at: clock::rfc3339(support.expires_at),
        }),
    })
}

/// The throttling counter of one account (clinic and email).
pub(crate) fn account_key<H: Host>(cx: &Ctx<'_, H>, clinic: &ClinicId, email: &str) -> Vec<u8> {
    throttle::key(&cx.app.throttle_key(), "account", &[clinic.as_str(), email])
}

/// The throttling counter of the client's address, if the host knows it.
pub(crate) fn address_key<H: Host>(cx: &Ctx<'_, H>) -> Option<Vec<u8>> {
    cx.ip
        .map(|ip| throttle::key(&cx.app.throttle_key(), "address", &[&ip.to_string()]))
}

/// Checks the signed-in user's password again (throttled like sign-in);
/// returns the user's email. `field` names the body's field at fault.
pub(crate) async fn recheck_password<H: Host, A>(
    s: &mut ClinicScope<'_, '_, H, A>,
    user_id: &str,
    password_text: &str,
    field: &str,
) -> ApiResult<String> {
    if password_text.len() > password::MAX_INPUT {
        return Err(ApiError::invalid(field, "too long"));
    }
    let (hash, email) = users::credentials(s.db, &s.vault, user_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let dir = s.app.directory().await?;
    let account = account_key(s, s.clinic, &email);
    throttle::check(&dir, std::slice::from_ref(&account), s.now).await?;
    if !password::verify(password_text, &hash) {
        throttle::fail(&dir, &account, throttle::ACCOUNT, s.now).await?;
        return Err(ApiError::new(Code::Unauthenticated, "wrong password"));
    }
    Ok(email)
}
