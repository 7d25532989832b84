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
//! the other or for a clinic user's session (see [`crate::request::auth`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock;
use crate::crypto::{password, totp};
use crate::error::{ApiError, ApiResult, Code};
use crate::host::{Conn, Host};
use crate::ids::{kind, ClinicId};
use crate::rbac::StaffRole;
use crate::records::directory::throttle::Limit;
use crate::records::directory::{access_requests, staff, support_sessions, throttle};
use crate::request::actor::{Staff, SupportSession};
use crate::request::auth::{platform_subject, STAFF_COOKIE};
use crate::request::session::support_view;
use crate::request::{ClinicScope, Open, Reply, Resource};
use crate::token::{Subject, TokenKind};
use crate::web;

/// A staff console session lasts this long.
const STAFF_SESSION_SECS: i64 = 60 * clock::MINUTE;
/// A support session lasts this long from its start, whatever the activity.
pub const SUPPORT_SESSION_SECS: i64 = 30 * clock::MINUTE;
/// Access requests one support agent may file a day.
const ACCESS_REQUESTS_PER_DAY: Limit = Limit {
    events: 20,
    window_secs: clock::DAY,
};
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

/// `POST /api/v1/support/login`: password and TOTP code, always.
pub(crate) async fn login<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let req: StaffLogin = p.json()?;
    if req.password.len() > password::MAX_INPUT {
        return Err(ApiError::invalid("password", "too long"));
    }
    p.audit.platform = true;
    let email = crate::validate::email_key(&req.email);
    let now = p.app.host.now();
    let dir = p.app.directory().await?;
    let account = throttle::key(&p.app.throttle_key(), "staff", &[&email]);
    let counted = throttle::check(&dir, std::slice::from_ref(&account), now).await?;
    let region_key = p.app.region_key().await?;
    let found = staff::find_by_email(&dir, &region_key.platform, &email).await?;
    let password_ok = match &found {
        Some(a) if a.active => password::verify(&req.password, &a.password_hash),
        _ => {
            password::verify_dummy(&req.password);
            false
        }
    };
    let step = match (&found, password_ok) {
        (Some(a), true) => totp::verify(&a.totp_secret, req.code.trim(), now, a.totp_last_step),
        _ => None,
    };
    p.audit.tried_by(
        found.as_ref().map_or("unknown", |a| a.id.as_str()),
        Some("support"),
    );
    let (Some(a), Some(step)) = (found, step) else {
        throttle::fail(&dir, &account, throttle::ACCOUNT, now).await?;
        return Err(ApiError::new(
            Code::Unauthenticated,
            "wrong email, password or code",
        ));
    };
    if counted.contains(&account) {
        throttle::clear(&dir, &account).await?;
    }
    p.audit
        .tried_by(&a.id, StaffRole::parse(&a.role).map(StaffRole::as_str));
    let sid = p.new_id(kind::SESSION);
    staff::use_totp_step(&dir, &a.id, step).await?;
    staff::start_session(&dir, &sid, &a.id, now, now + STAFF_SESSION_SECS).await?;
    let subject = Subject {
        user: a.id.clone(),
        clinic: platform_subject(&p.app.config.region.id),
        session: sid,
    };
    let token = p
        .app
        .tokens()
        .issue(TokenKind::Staff, &subject, now, STAFF_SESSION_SECS);
    p.set_cookie(STAFF_COOKIE, &token, STAFF_SESSION_SECS);
    Reply::ok(StaffSession {
        staff: StaffView {
            id: a.id,
            role: a.role,
        },
        token,
        expires_at: clock::rfc3339(now + STAFF_SESSION_SECS),
    })
}

/// `POST /api/v1/support/access-requests`.
pub(crate) async fn create_request<H: Host>(o: &mut Open<'_, '_, H, Staff>) -> ApiResult<Reply> {
    let staff_id = o.actor.id.clone();
    let req: NewRequest = o.json()?;
    let clinic = ClinicId::parse(req.clinic.trim())
        .ok_or_else(|| ApiError::invalid("clinic", "not a clinic id"))?;
    let ticket = ticket(&req.ticket)?;
    let reason = crate::validate::text("reason", &req.reason, 500)?;
    // A support agent asks a few clinics a day, not hundreds.
    let dir = o.app.directory().await?;
    let key = throttle::key(&o.app.throttle_key(), "access-requests", &[&staff_id]);
    throttle::take(&dir, &key, ACCESS_REQUESTS_PER_DAY, o.now).await?;
    let mut s = o.enter(&clinic).await?;
    let id = s.new_id(kind::ACCESS_REQUEST);
    s.audit.about(Resource::AccessRequest(&id));
    s.audit.on_behalf_of = Some(format!("ticket:{ticket}"));
    let region_key = s.app.region_key().await?;
    access_requests::insert(
        &dir,
        &region_key.platform,
        &id,
        &clinic,
        &staff_id,
        &ticket,
        &reason,
        s.random(),
        s.now,
    )
    .await?;
    Reply::created(AccessRequestCreated {
        id,
        status: "pending".into(),
        clinic: clinic.as_str().to_owned(),
        ticket,
        created_at: clock::rfc3339(s.now),
    })
}

/// `GET /api/v1/access-requests`: the owner's view of their clinic's requests.
pub(crate) async fn list_requests<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    s.audit.about(Resource::AccessRequests);
    let dir = s.app.directory().await?;
    let region_key = s.app.region_key().await?;
    let requests = access_requests::of_clinic(&dir, &region_key.platform, s.clinic).await?;
    let at = |t: Option<i64>| t.map(clock::rfc3339);
    let items = requests
        .into_iter()
        .map(|r| AccessRequestView {
            id: r.id,
            requested_by: r.staff_id,
            ticket: r.ticket,
            reason: r.reason,
            status: r.status,
            created_at: clock::rfc3339(r.created_at),
            approved_by: r.approved_by,
            approved_at: at(r.approved_at),
            session_expires_at: at(r.session_expires_at),
        })
        .collect();
    Reply::ok(super::Page {
        items,
        next_cursor: None,
    })
}

/// `POST /api/v1/access-requests/{id}/approve`.
pub(crate) async fn approve<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = s.path_id(kind::ACCESS_REQUEST)?;
    let owner = s.actor.id().to_owned();
    s.audit.about(Resource::AccessRequest(&id));
    s.audit.platform = true;
    let dir = s.app.directory().await?;
    if !access_requests::approve(&dir, &id, s.clinic, &owner, s.now).await? {
        return Err(if access_requests::exists(&dir, &id, s.clinic).await? {
            ApiError::conflict("this request is no longer pending")
        } else {
            ApiError::not_found()
        });
    }
    Reply::ok(Approved {
        id,
        status: "approved".into(),
    })
}

/// `POST /api/v1/support/access-requests/{id}/session`: the requester
/// starts the one session an approval allows.
pub(crate) async fn start_session<H: Host>(o: &mut Open<'_, '_, H, Staff>) -> ApiResult<Reply> {
    let staff_id = o.actor.id.clone();
    let id = o.path_id(kind::ACCESS_REQUEST)?;
    let dir = o.app.directory().await?;
    let request = access_requests::own(&dir, &id, &staff_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let clinic =
        ClinicId::parse(&request.clinic_id).ok_or_else(|| ApiError::internal("clinic id"))?;
    let mut s = o.enter(&clinic).await?;
    s.audit.about(Resource::AccessRequest(&id));
    s.audit.on_behalf_of = Some(format!("ticket:{}", request.ticket));
    match request.status.as_str() {
        "approved" => {}
        "pending" => {
            return Err(ApiError::conflict(
                "the clinic has not approved this request",
            ))
        }
        _ => return Err(ApiError::conflict("this approval has been used; ask again")),
    }
    let approved_by = request.approved_by.unwrap_or_default();
    if request.approved_at.unwrap_or(0) + APPROVAL_VALID_SECS <= s.now {
        return Err(ApiError::conflict("this approval has lapsed; ask again"));
    }
    let expires_at = s.now + SUPPORT_SESSION_SECS;
    let sid = s.new_id(kind::SESSION);
    dir.execute("BEGIN IMMEDIATE", vec![]).await?;
    let started = async {
        if !access_requests::mark_used(&dir, &id, &sid, expires_at).await? {
            return Err(ApiError::conflict("this approval has been used; ask again"));
        }
        let new = support_sessions::NewSession {
            id: &sid,
            request_id: &id,
            staff_id: &staff_id,
            clinic_id: clinic.as_str(),
            ticket: &request.ticket,
            approved_by: &approved_by,
            expires_at,
        };
        support_sessions::insert(&dir, &new, s.now).await
    }
    .await;
    crate::store::finish(&dir, started).await?;
    let subject = Subject {
        user: staff_id.clone(),
        clinic: clinic.as_str().to_owned(),
        session: sid.clone(),
    };
    let token = s
        .app
        .tokens()
        .issue(TokenKind::Support, &subject, s.now, SUPPORT_SESSION_SECS);
    let support = SupportSession {
        staff_id,
        session_id: sid,
        ticket: request.ticket,
        approved_by,
        expires_at,
        token,
    };
    s.audit.on_behalf_of = Some(support.on_behalf_of());
    s.set_cookie(web::SESSION_COOKIE, &support.token, SUPPORT_SESSION_SECS);
    Reply::ok(support_view(&s, &support).await?)
}
