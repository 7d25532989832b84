//! A session as the API shows it (`GET /api/v1/auth/session`, and the
//! answers of sign-in and of a support session's start), for either kind of
//! clinic actor.

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock;
use crate::error::ApiResult;
use crate::host::{Conn, Host, Row};
use crate::records::clinic::{self, ClinicSummary};
use crate::records::users::{self, Profile};
use crate::store::Statement;

use super::actor::SupportSession;
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
    /// Set on the answer of a sign-in when something happened to the
    /// account since the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<SignInNotice>,
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
    /// An owner reset the password: it must be changed before anything
    /// else (clinic users only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_change_required: Option<bool>,
}

/// What the user should know on signing in.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignInNotice {
    /// Wrong TOTP codes entered for this account since its last sign-in.
    pub failed_codes: i64,
}

/// Set when platform support acts in the clinic under an approved ticket.
#[derive(Serialize, ToSchema)]
pub(crate) struct ImpersonationView {
    pub support_user: String,
    pub ticket: String,
    pub expires_at: String,
}

/// What [`user_view`] reads: the user's profile and the clinic's.
pub(crate) fn user_reads(user_id: &str) -> Vec<Statement> {
    vec![users::profile(user_id), (clinic::SELECT.to_owned(), vec![])]
}

/// A clinic user's session.
pub(crate) async fn user_view<H: Host, A>(
    s: &ClinicScope<'_, '_, H, A>,
    user_id: &str,
    token: &str,
    expires_at: i64,
) -> ApiResult<SessionView> {
    let mut results = s.db.query_many(user_reads(user_id)).await?.into_iter();
    let (profile, clinic) = (
        results.next().unwrap_or_default(),
        results.next().unwrap_or_default(),
    );
    let u = users::profile_from_rows(&s.vault, user_id, &profile)?;
    user_view_of(s, u, &clinic, user_id, token, expires_at)
}

/// A clinic user's session from what was read already: the user's profile
/// and the rows of [`clinic::SELECT`].
pub(crate) fn user_view_of<H: Host, A>(
    s: &ClinicScope<'_, '_, H, A>,
    u: Profile,
    clinic: &[Row],
    user_id: &str,
    token: &str,
    expires_at: i64,
) -> ApiResult<SessionView> {
    let idle_end = (s.now + s.app.config.idle_timeout_secs).min(expires_at);
    Ok(SessionView {
        token: token.to_owned(),
        user: SessionUser {
            id: user_id.to_owned(),
            name: u.name,
            email: Some(u.email),
            role: u.role,
            mfa_enabled: Some(u.mfa_enabled),
            password_change_required: Some(u.password_change_required),
        },
        clinic: clinic::from_rows(&s.vault, clinic)?.summary,
        expires_at: clock::rfc3339(expires_at),
        idle_expires_at: Some(clock::rfc3339(idle_end)),
        impersonation: None,
        notice: None,
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
            password_change_required: None,
        },
        clinic: clinic.summary,
        expires_at: clock::rfc3339(support.expires_at),
        idle_expires_at: None,
        impersonation: Some(ImpersonationView {
            support_user: support.staff_id.clone(),
            ticket: support.ticket.clone(),
            expires_at: clock::rfc3339(support.expires_at),
        }),
        notice: None,
    })
}
