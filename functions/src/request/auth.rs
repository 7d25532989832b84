//! Who is asking: the session token of a clinic user or of a support
//! session (cookie or bearer), and the console token of platform staff, each
//! checked against its live server-side session. Kinds of token never stand
//! in for each other.

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::rbac;
use crate::rbac::StaffRole;
use crate::records::directory::{staff, support_sessions};
use crate::records::sessions;
use crate::token::TokenKind;
use crate::web;

use super::actor::{Actor, Staff, SupportSession, UserSession};
use super::ctx::Ctx;
use super::scope::Tenant;

/// The support console's cookie.
pub const STAFF_COOKIE: &str = "__Host-amanah_staff";

/// The `typ` a token claims, unverified: only chooses which check applies.
fn token_type(token: &str) -> Option<String> {
    jwt_compact::UntrustedToken::new(token)
        .ok()
        .and_then(|t| t.header().token_type.clone())
}

/// Verifies a clinic session token (a user's or a support session's) and
/// its live server-side session, entering the clinic into `slot`.
pub(crate) async fn session<H: Host>(
    cx: &mut Ctx<'_, H>,
    slot: &mut Option<Tenant<H>>,
) -> ApiResult<Actor> {
    let (token, via_cookie) = match web::bearer(&cx.headers) {
        Some(t) => (t.to_owned(), false),
        None => match web::cookie(&cx.headers, web::SESSION_COOKIE) {
            Some(t) => (t.to_owned(), true),
            None => return Err(ApiError::unauthenticated()),
        },
    };
    if token_type(&token).as_deref() == Some(TokenKind::Support.typ()) {
        return support(cx, slot, token, via_cookie).await;
    }
    // The session is read with the route's declared reads, while the
    // directory is asked for the clinic's keys.
    let (subject, t, rows) = cx
        .enter_with_token_reading(slot, TokenKind::Session, &token, |s| {
            vec![sessions::live(&s.session)]
        })
        .await?;
    let rows = rows.into_iter().next().unwrap_or_default();
    let row = sessions::live_from_rows(&rows)?.ok_or_else(ApiError::unauthenticated)?;
    let live = row.user_id == subject.user
        && !row.revoked
        && cx.now < row.expires_at
        && cx.now - row.last_seen < cx.app.config.idle_timeout_secs
        && row.active;
    if !live {
        return Err(ApiError::unauthenticated());
    }
    sessions::touch(&t.db, &subject.session, cx.now).await?;
    if via_cookie {
        let max_age = cx.app.config.idle_timeout_secs.min(row.expires_at - cx.now);
        cx.set_cookie(web::SESSION_COOKIE, &token, max_age);
    }
    #[cfg(feature = "inject-forgot-clinic")]
    forget_clinic(cx, t).await?;
    Ok(Actor::User(UserSession {
        user_id: row.user_id,
        role: row.role,
        session_id: subject.session,
        expires_at: row.expires_at,
        mfa_enabled: row.mfa_enabled,
        grants: rbac::effective(row.role, row.role_setting.as_deref()),
        password_change_required: row.password_change_required,
        token,
    }))
}

/// The injected bug (test build only): after authentication, the
/// handler's connection comes from a pool that forgot the clinic. The
/// request keeps its own clinic's keys.
#[cfg(feature = "inject-forgot-clinic")]
async fn forget_clinic<H: Host>(cx: &Ctx<'_, H>, t: &mut Tenant<H>) -> ApiResult<()> {
    use crate::host::Conn;
    let Some(other) = cx.app.injected.pool_pick(&t.id) else {
        return Ok(());
    };
    t.db.execute("COMMIT", vec![]).await?;
    let conn = cx.app.clinic_conn(&other, false, false).await?;
    conn.execute_later("BEGIN IMMEDIATE", vec![]).await?;
    t.db = conn;
    t.head = None;
    Ok(())
}

/// Verifies a support session token: its clinic (region guard, clinic
/// clock), then the live session in the directory, 30 minutes from its
/// start at most.
async fn support<H: Host>(
    cx: &mut Ctx<'_, H>,
    slot: &mut Option<Tenant<H>>,
    token: String,
    via_cookie: bool,
) -> ApiResult<Actor> {
    let (subject, _) = cx
        .enter_with_token(slot, TokenKind::Support, &token)
        .await?;
    let dir = cx.app.directory().await?;
    let s = support_sessions::get(&dir, &subject.session)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let live = s.staff_id == subject.user
        && s.clinic_id == subject.clinic
        && !s.revoked
        && cx.now < s.expires_at
        && s.staff_active;
    if !live {
        return Err(ApiError::unauthenticated());
    }
    if via_cookie {
        cx.set_cookie(web::SESSION_COOKIE, &token, s.expires_at - cx.now);
    }
    Ok(Actor::Support(SupportSession {
        staff_id: subject.user,
        session_id: subject.session,
        ticket: s.ticket,
        approved_by: s.approved_by,
        expires_at: s.expires_at,
        token,
    }))
}

/// Verifies a support console token and its live server-side session.
pub(crate) async fn staff<H: Host>(cx: &mut Ctx<'_, H>) -> ApiResult<Staff> {
    let token = web::bearer(&cx.headers)
        .or_else(|| web::cookie(&cx.headers, STAFF_COOKIE))
        .ok_or_else(ApiError::unauthenticated)?;
    let now = cx.app.host.now();
    let subject = cx
        .app
        .tokens()
        .verify(TokenKind::Staff, token, now)
        .map_err(|_| ApiError::unauthenticated())?;
    if subject.clinic != platform_subject(cx.app.config.region.id.as_str()) {
        return Err(ApiError::unauthenticated());
    }
    let dir = cx.app.directory().await?;
    let (id, role) = staff::of_session(&dir, &subject.session, now)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if id != subject.user {
        return Err(ApiError::unauthenticated());
    }
    let role = StaffRole::parse(&role).ok_or_else(|| ApiError::internal("staff role"))?;
    Ok(Staff { id, role })
}

/// What a staff token names in place of a clinic.
pub(crate) fn platform_subject(region: &str) -> String {
    format!("platform:{region}")
}
