//! Support access: platform staff reach a clinic's data only through a ticket
//! the clinic's owner approved, for 30 minutes from the start whatever the
//! activity, read-only ([`crate::rbac::support`]), visibly (`X-Impersonation`
//! on every response) and on the record: every request is audited in the
//! clinic's chain with both identities (the staff member as actor; ticket
//! and approving owner as `on_behalf_of`) and in the platform audit stream.
//!
//! Staff sign in with password and TOTP, always; their console session
//! (`__Host-amanah_staff`) reaches only the support routes. A support session
//! is a different kind of token, bound to one clinic; neither stands in for
//! the other or for a clinic user's session.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Impersonation, Principal, Reply};
use crate::clock;
use crate::crypto::blind::TermKind;
use crate::crypto::{password, totp};
use crate::error::{ApiError, ApiResult, Code};
use crate::host::{Conn, Host};
use crate::ids::{kind, ClinicId};
use crate::platform::{StaffRole, REQUEST_REASON, STAFF_TOTP};
use crate::rbac::{self, Role};
use crate::store::RowExt;
use crate::throttle;
use crate::token::{Subject, TokenKind};
use crate::web;

use super::auth::MAX_PASSWORD_INPUT;
use super::auth::{
    clinic_summary, ImpersonationView, SessionUser, SessionView, CLINIC_SUMMARY_SQL,
};

/// The staff console's cookie.
pub const STAFF_COOKIE: &str = "__Host-amanah_staff";
/// A staff console session lasts this long.
const STAFF_SESSION_SECS: i64 = 60 * clock::MINUTE;
/// A support session lasts this long from its start, whatever the activity.
pub const SUPPORT_SESSION_SECS: i64 = 30 * clock::MINUTE;
/// An approval not used within this long must be asked for again.
const APPROVAL_VALID_SECS: i64 = clock::DAY;

/// A staff console session.
#[derive(Serialize, ToSchema)]
pub(crate) struct StaffSession {
    staff: StaffView,
    /// The bearer token for the support routes.
    token: String,
    expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StaffView {
    id: String,
    /// `support` or `superadmin`.
    role: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AccessRequestCreated {
    id: String,
    /// `pending`.
    status: String,
    clinic: String,
    ticket: String,
    created_at: String,
}

/// An access request as the clinic's owner sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct AccessRequestView {
    id: String,
    /// The platform staff member who asked.
    requested_by: String,
    ticket: String,
    reason: String,
    /// `pending`, `approved` or `used`.
    status: String,
    created_at: String,
    approved_by: Option<String>,
    approved_at: Option<String>,
    session_expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Approved {
    id: String,
    /// `approved`.
    status: String,
}

/// A signed-in staff member.
#[derive(Debug, Clone)]
pub(crate) struct Staff {
    pub id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaffLogin {
    email: String,
    password: String,
    code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRequest {
    clinic: String,
    ticket: String,
    reason: String,
}

/// A ticket reference: a short code, never free text (it goes into headers
/// and audit entries).
fn ticket(s: &str) -> ApiResult<String> {
    let t = s.trim();
    let ok = (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.#".contains(&b));
    if !ok {
        return Err(ApiError::invalid(
            "ticket",
            "1 to 64 letters, digits and - _ . #",
        ));
    }
    Ok(t.to_owned())
}

fn staff_token(headers: &http::HeaderMap) -> Option<&str> {
    web::bearer(headers).or_else(|| web::cookie(headers, STAFF_COOKIE))
}

/// Verifies a staff console token and its live server-side session.
pub(crate) async fn authenticate_staff<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Staff> {
    let token = staff_token(&ctx.headers).ok_or_else(ApiError::unauthenticated)?;
    let now = ctx.app.host().now();
    let subject = ctx
        .app
        .tokens()
        .verify(TokenKind::Staff, token, now)
        .map_err(|_| ApiError::unauthenticated())?;
    if subject.clinic != format!("platform:{}", ctx.app.config().region.id) {
        return Err(ApiError::unauthenticated());
    }
    let rows = ctx
        .app
        .directory()
        .await?
        .query(
            "SELECT st.id, st.role FROM staff_sessions s JOIN staff st ON st.id = s.staff_id \
             WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 AND st.active = 1",
            vec![subject.session.into(), now.into()],
        )
        .await?;
    let row = rows.first().ok_or_else(ApiError::unauthenticated)?;
    let id = row.text(0)?;
    if id != subject.user {
        return Err(ApiError::unauthenticated());
    }
    let role = StaffRole::parse(&row.text(1)?).ok_or_else(|| ApiError::internal("staff role"))?;
    ctx.audit.actor = Some((id.clone(), None));
    ctx.audit.role_name = Some(role.as_str());
    ctx.audit.platform = true;
    Ok(Staff { id })
}

/// Verifies a support session token: its clinic (region guard, clinic
/// clock), then the live session in the directory, 30 minutes from its
/// start at most.
pub(crate) async fn authenticate_support<H: Host>(
    ctx: &mut Ctx<'_, H>,
    token: String,
    via_cookie: bool,
) -> ApiResult<()> {
    let subject = ctx.open_token(TokenKind::Support, &token).await?;
    let rows = ctx
        .app
        .directory()
        .await?
        .query(
            "SELECT s.staff_id, s.clinic_id, s.ticket, s.approved_by, s.expires_at, s.revoked_at, st.active \
             FROM support_sessions s JOIN staff st ON st.id = s.staff_id WHERE s.id = ?1",
            vec![subject.session.clone().into()],
        )
        .await?;
    let row = rows.first().ok_or_else(ApiError::unauthenticated)?;
    let expires_at = row.int(4)?;
    let live = row.text(0)? == subject.user
        && row.text(1)? == subject.clinic
        && row.opt_int(5)?.is_none()
        && ctx.now < expires_at
        && row.int(6)? == 1;
    if !live {
        return Err(ApiError::unauthenticated());
    }
    if via_cookie {
        ctx.set_cookies.push(web::set_cookie(
            web::SESSION_COOKIE,
            &token,
            expires_at - ctx.now,
        ));
    }
    ctx.principal = Some(Principal {
        user_id: subject.user,
        // Not a clinic role: what support may do is `grants`, and the audit
        // trail records the role as `support`.
        role: Role::Owner,
        session_id: subject.session,
        session_expires_at: expires_at,
        mfa_enabled: true,
        grants: rbac::support(),
        impersonation: Some(Impersonation {
            ticket: row.text(2)?,
            approved_by: row.text(3)?,
            expires_at,
        }),
        token,
    });
    Ok(())
}

/// `POST /api/v1/support/login`: password and TOTP code, always.
pub(crate) async fn login<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: StaffLogin = ctx.json()?;
    if req.password.len() > MAX_PASSWORD_INPUT {
        return Err(ApiError::invalid("password", "too long"));
    }
    ctx.audit.platform = true;
    ctx.audit.role_name = Some("support");
    let email = req.email.trim().to_lowercase();
    let now = ctx.app.host().now();
    let dir = ctx.app.directory().await?;
    let account = throttle::key(&ctx.app.throttle_key(), "staff", &[&email]);
    let counted = throttle::check(&dir, std::slice::from_ref(&account), now).await?;
    let region_key = ctx.app.region_key().await?;
    let term = region_key.platform.blind.token(TermKind::Email, &email);
    let rows = dir
        .query(
            "SELECT id, role, password_hash, totp_secret, totp_last_step, active FROM staff WHERE email_term = ?1",
            vec![term.into()],
        )
        .await?;
    let found = rows.first();
    let password_ok = match found {
        Some(r) if r.int(5)? == 1 => password::verify(&req.password, &r.text(2)?),
        _ => {
            password::verify_dummy(&req.password);
            false
        }
    };
    let mut step = None;
    if let (true, Some(r)) = (password_ok, found) {
        let id = r.text(0)?;
        let secret = region_key
            .platform
            .cipher
            .open(STAFF_TOTP, &id, &r.blob(3)?)?;
        step = totp::verify(&secret, req.code.trim(), now, r.opt_int(4)?);
    }
    ctx.audit.actor = Some(match found {
        Some(r) => (r.text(0)?, None),
        None => ("unknown".to_owned(), None),
    });
    let (Some(r), Some(step)) = (found, step) else {
        throttle::fail(&dir, &account, throttle::ACCOUNT, now).await?;
        return Err(ApiError::new(
            Code::Unauthenticated,
            "wrong email, password or code",
        ));
    };
    if counted.contains(&account) {
        throttle::clear(&dir, &account).await?;
    }
    let id = r.text(0)?;
    let role = r.text(1)?;
    ctx.audit.role_name = StaffRole::parse(&role).map(StaffRole::as_str);
    let sid = ctx.new_id(kind::SESSION);
    dir.execute(
        "UPDATE staff SET totp_last_step = ?2 WHERE id = ?1",
        vec![id.clone().into(), step.into()],
    )
    .await?;
    dir.execute(
        "INSERT INTO staff_sessions (id, staff_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        vec![
            sid.clone().into(),
            id.clone().into(),
            now.into(),
            (now + STAFF_SESSION_SECS).into(),
        ],
    )
    .await?;
    let subject = Subject {
        user: id.clone(),
        clinic: format!("platform:{}", ctx.app.config().region.id),
        session: sid,
    };
    let token = ctx
        .app
        .tokens()
        .issue(TokenKind::Staff, &subject, now, STAFF_SESSION_SECS);
    ctx.set_cookies
        .push(web::set_cookie(STAFF_COOKIE, &token, STAFF_SESSION_SECS));
    Reply::ok(StaffSession {
        staff: StaffView { id, role },
        token,
        expires_at: clock::rfc3339(now + STAFF_SESSION_SECS),
    })
}

fn staff<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Staff> {
    ctx.staff.clone().ok_or_else(ApiError::unauthenticated)
}

/// `POST /api/v1/support/access-requests`.
pub(crate) async fn create_request<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let staff = staff(ctx)?;
    let req: NewRequest = ctx.json()?;
    let clinic = ClinicId::parse(req.clinic.trim())
        .ok_or_else(|| ApiError::invalid("clinic", "not a clinic id"))?;
    let ticket = ticket(&req.ticket)?;
    let reason = crate::validate::text("reason", &req.reason, 500)?;
    ctx.enter_clinic(&clinic, false).await?;
    let id = ctx.new_id(kind::ACCESS_REQUEST);
    ctx.audit.resource = Some(format!("access_request/{id}"));
    ctx.audit.on_behalf_of = Some(format!("ticket:{ticket}"));
    let sealed = ctx.app.region_key().await?.platform.cipher.seal(
        REQUEST_REASON,
        &id,
        reason.as_bytes(),
        ctx.random(),
    );
    ctx.app
        .directory()
        .await?
        .execute(
            "INSERT INTO access_requests (id, clinic_id, staff_id, ticket, reason, status, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
            vec![
                id.clone().into(),
                clinic.as_str().into(),
                staff.id.clone().into(),
                ticket.clone().into(),
                sealed.into(),
                ctx.now.into(),
            ],
        )
        .await?;
    Reply::created(AccessRequestCreated {
        id,
        status: "pending".into(),
        clinic: clinic.as_str().to_owned(),
        ticket,
        created_at: clock::rfc3339(ctx.now),
    })
}

/// `GET /api/v1/access-requests`: the owner's view of their clinic's requests.
pub(crate) async fn list_requests<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let clinic = ctx.clinic_id()?;
    ctx.audit.resource = Some("access_requests".into());
    let rows = ctx
        .app
        .directory()
        .await?
        .query(
            "SELECT id, staff_id, ticket, reason, status, created_at, approved_by, approved_at, session_expires_at \
             FROM access_requests WHERE clinic_id = ?1 ORDER BY seq DESC LIMIT 200",
            vec![clinic.as_str().into()],
        )
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    let region_key = ctx.app.region_key().await?;
    for r in &rows {
        let id = r.text(0)?;
        let reason = region_key
            .platform
            .cipher
            .open(REQUEST_REASON, &id, &r.blob(3)?)?;
        let at = |i: usize| -> ApiResult<Option<String>> { Ok(r.opt_int(i)?.map(clock::rfc3339)) };
        items.push(AccessRequestView {
            id,
            requested_by: r.text(1)?,
            ticket: r.text(2)?,
            reason: String::from_utf8_lossy(&reason).into_owned(),
            status: r.text(4)?,
            created_at: clock::rfc3339(r.int(5)?),
            approved_by: r.opt_text(6)?,
            approved_at: at(7)?,
            session_expires_at: at(8)?,
        });
    }
    Reply::ok(super::Page {
        items,
        next_cursor: None,
    })
}

/// `POST /api/v1/access-requests/{id}/approve`.
pub(crate) async fn approve<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = ctx.path_id(kind::ACCESS_REQUEST)?;
    let clinic = ctx.clinic_id()?;
    let owner = ctx.principal()?.user_id.clone();
    ctx.audit.resource = Some(format!("access_request/{id}"));
    ctx.audit.platform = true;
    let dir = ctx.app.directory().await?;
    let changed = dir
        .execute(
            "UPDATE access_requests SET status = 'approved', approved_by = ?3, approved_at = ?4 \
             WHERE id = ?1 AND clinic_id = ?2 AND status = 'pending'",
            vec![
                id.clone().into(),
                clinic.as_str().into(),
                owner.into(),
                ctx.now.into(),
            ],
        )
        .await?;
    if changed == 0 {
        let exists = dir
            .query(
                "SELECT 1 FROM access_requests WHERE id = ?1 AND clinic_id = ?2",
                vec![id.into(), clinic.as_str().into()],
            )
            .await?;
        return Err(if exists.is_empty() {
            ApiError::not_found()
        } else {
            ApiError::conflict("this request is no longer pending")
        });
    }
    Reply::ok(Approved {
        id,
        status: "approved".into(),
    })
}

/// `POST /api/v1/support/access-requests/{id}/session`: the requester
/// starts the one session an approval allows.
pub(crate) async fn start_session<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let staff = staff(ctx)?;
    let id = ctx.path_id(kind::ACCESS_REQUEST)?;
    let rows = ctx
        .app
        .directory()
        .await?
        .query(
            "SELECT clinic_id, ticket, status, approved_by, approved_at FROM access_requests \
             WHERE id = ?1 AND staff_id = ?2",
            vec![id.clone().into(), staff.id.clone().into()],
        )
        .await?;
    let row = rows.first().ok_or_else(ApiError::not_found)?;
    let clinic = ClinicId::parse(&row.text(0)?).ok_or_else(|| ApiError::internal("clinic id"))?;
    let ticket = row.text(1)?;
    ctx.enter_clinic(&clinic, false).await?;
    ctx.audit.resource = Some(format!("access_request/{id}"));
    ctx.audit.on_behalf_of = Some(format!("ticket:{ticket}"));
    match row.text(2)?.as_str() {
        "approved" => {}
        "pending" => {
            return Err(ApiError::conflict(
                "the clinic has not approved this request",
            ))
        }
        _ => return Err(ApiError::conflict("this approval has been used; ask again")),
    }
    let approved_by = row.opt_text(3)?.unwrap_or_default();
    if row.opt_int(4)?.unwrap_or(0) + APPROVAL_VALID_SECS <= ctx.now {
        return Err(ApiError::conflict("this approval has lapsed; ask again"));
    }
    let expires_at = ctx.now + SUPPORT_SESSION_SECS;
    let sid = ctx.new_id(kind::SESSION);
    let dir = ctx.app.directory().await?;
    dir.execute("BEGIN IMMEDIATE", vec![]).await?;
    let started = async {
        let used = dir
            .execute(
                "UPDATE access_requests SET status = 'used', session_id = ?2, session_expires_at = ?3 \
                 WHERE id = ?1 AND status = 'approved'",
                vec![id.clone().into(), sid.clone().into(), expires_at.into()],
            )
            .await?;
        if used != 1 {
            return Err(ApiError::conflict("this approval has been used; ask again"));
        }
        dir.execute(
            "INSERT INTO support_sessions (id, request_id, staff_id, clinic_id, ticket, approved_by, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            vec![
                sid.clone().into(),
                id.clone().into(),
                staff.id.clone().into(),
                clinic.as_str().into(),
                ticket.clone().into(),
                approved_by.clone().into(),
                ctx.now.into(),
                expires_at.into(),
            ],
        )
        .await?;
        Ok(())
    }
    .await;
    crate::store::finish(&dir, started).await?;
    let impersonation = Impersonation {
        ticket,
        approved_by,
        expires_at,
    };
    ctx.audit.on_behalf_of = Some(impersonation.on_behalf_of());
    let subject = Subject {
        user: staff.id.clone(),
        clinic: clinic.as_str().to_owned(),
        session: sid,
    };
    let token = ctx
        .app
        .tokens()
        .issue(TokenKind::Support, &subject, ctx.now, SUPPORT_SESSION_SECS);
    ctx.set_cookies.push(web::set_cookie(
        web::SESSION_COOKIE,
        &token,
        SUPPORT_SESSION_SECS,
    ));
    Reply::ok(session_view(ctx, &staff.id, &token, &impersonation).await?)
}

/// `GET /api/v1/auth/session` of a support session.
pub(crate) async fn session_view<H: Host>(
    ctx: &Ctx<'_, H>,
    staff_id: &str,
    token: &str,
    i: &Impersonation,
) -> ApiResult<SessionView> {
    let rows = ctx.db()?.query(CLINIC_SUMMARY_SQL, vec![]).await?;
    Ok(SessionView {
        token: token.to_owned(),
        user: SessionUser {
            id: staff_id.to_owned(),
            name: "Amanah support".into(),
            email: None,
            role: "support".into(),
            mfa_enabled: None,
        },
        clinic: clinic_summary(ctx, &rows)?,
        expires_at: clock::rfc3339(i.expires_at),
        idle_expires_at: None,
        impersonation: Some(ImpersonationView {
            support_user: staff_id.to_owned(),
            ticket: i.ticket.clone(),
            expires_at: clock::rfc3339(i.expires_at),
        }),
    })
}

/// Ends a support session early (logout).
pub(crate) async fn end_session<H: Host>(ctx: &Ctx<'_, H>, session_id: &str) -> ApiResult<()> {
    ctx.app
        .directory()
        .await?
        .execute(
            "UPDATE support_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            vec![session_id.into(), ctx.now.into()],
        )
        .await?;
    Ok(())
}
