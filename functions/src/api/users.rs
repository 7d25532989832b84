//! `/api/v1/users`: the clinic's staff, managed by owners
//! ([`records::users`]). A change of role or deactivation takes effect on
//! that user's next request, because every request reads role and status
//! afresh.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::crypto::password;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::kind;
use crate::rbac::Role;
use crate::records::{sessions, users};
use crate::request::{ClinicScope, Reply, Resource};
use crate::validate;

use super::{not_null, patch_field, Page};

pub(crate) use crate::records::users::{Practitioner, UserView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    name: String,
    email: String,
    role: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    #[serde(default, deserialize_with = "patch_field")]
    role: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    active: Option<Option<bool>>,
}

/// `POST /api/v1/users/{id}/reset`: what an owner resets of a colleague.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reset {
    /// A temporary password, to be changed at the next sign-in.
    #[serde(default)]
    password: bool,
    /// TOTP removed: the user enrols again (a lost device).
    #[serde(default)]
    totp: bool,
}

/// The answer to a reset: the temporary password, shown once.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResetDone {
    #[serde(skip_serializing_if = "Option::is_none")]
    temporary_password: Option<String>,
}

fn role(r: &str) -> ApiResult<Role> {
    Role::parse(r).ok_or_else(|| {
        ApiError::invalid("role", "must be one of: owner, doctor, nurse, receptionist")
    })
}

/// `GET /api/v1/users`.
pub(crate) async fn list<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let q = s.query(super::PAGE_QUERY)?;
    let limit = q.limit()?;
    let items = users::page(s.db, &s.vault, q.cursor()?.unwrap_or(0), limit + 1).await?;
    s.audit.about(Resource::Users);
    Reply::ok(Page::new(items, limit, |u| u.seq))
}

/// `GET /api/v1/practitioners`: the active owners, doctors and nurses, for
/// booking (the staff list itself is the owner's).
pub(crate) async fn practitioners<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    s.query(&[])?;
    let items = users::practitioners(s.db, &s.vault).await?;
    s.audit.about(Resource::Practitioners);
    Reply::ok(serde_json::json!({ "items": items, "next_cursor": null }))
}

/// `POST /api/v1/users`.
pub(crate) async fn create<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: NewUser = s.json()?;
    let name = validate::name("name", &req.name)?;
    let email = validate::email("email", &req.email)?;
    let role = role(&req.role)?;
    if let Some(why) = password::policy_violation(&req.password) {
        return Err(ApiError::invalid("password", why));
    }
    if users::email_taken(s.db, &s.vault, &email).await? {
        let mut e = ApiError::conflict("a user with this email already exists");
        e.field = Some("email".into());
        return Err(e);
    }
    let id = s.new_id(kind::USER);
    let hash = password::hash(&req.password, s.random());
    let new = users::NewUser {
        id: &id,
        name: &name,
        email: &email,
        role,
        password_hash: &hash,
    };
    users::insert(s.db, &s.vault, &new, s.now).await?;
    s.audit.about(Resource::User(&id));
    Reply::created(users::load(s.db, &s.vault, &id).await?)
}

/// `PATCH /api/v1/users/{id}`: role and status; a clinic keeps at least
/// one active owner.
pub(crate) async fn update<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = s.path_id(kind::USER)?;
    let req: UserPatch = s.json()?;
    let active = not_null("active", req.active)?;
    let role = not_null("role", req.role)?
        .as_deref()
        .map(role)
        .transpose()?;
    if role.is_none() && active.is_none() {
        return Err(ApiError::bad_request("give `role`, `active` or both"));
    }
    s.audit.about(Resource::User(&id));
    let current = users::load(s.db, &s.vault, &id).await?;
    let stays_owner = role.map_or(current.role == "owner", |r| r == Role::Owner)
        && active.unwrap_or(current.active);
    if current.role == "owner"
        && current.active
        && !stays_owner
        && users::other_active_owners(s.db, &id).await? == 0
    {
        return Err(ApiError::conflict(
            "a clinic keeps at least one active owner",
        ));
    }
    users::set_role_and_status(s.db, &id, role, active, s.now).await?;
    if active == Some(false) {
        sessions::end_all_of(s.db, &id, None, s.now).await?;
    }
    Reply::ok(users::load(s.db, &s.vault, &id).await?)
}

/// `POST /api/v1/users/{id}/reset`: an owner resets a colleague's password
/// (a temporary one, to be changed before anything else) or TOTP (to be
/// enrolled again); every session of theirs ends.
pub(crate) async fn reset<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = s.path_id(kind::USER)?;
    let req: Reset = s.json()?;
    if !req.password && !req.totp {
        return Err(ApiError::bad_request(
            "give `password`, `totp` or both as true",
        ));
    }
    s.audit.about(Resource::User(&id));
    if id == s.actor.id() {
        return Err(ApiError::bad_request(
            "your own password and TOTP are changed from your own session",
        ));
    }
    users::load(s.db, &s.vault, &id).await?;
    let mut done = ResetDone {
        temporary_password: None,
    };
    if req.password {
        let temporary = data_encoding::BASE32_NOPAD
            .encode(&s.random::<15>())
            .to_lowercase();
        let hash = password::hash(&temporary, s.random());
        users::set_password(s.db, &id, &hash, true, s.now).await?;
        done.temporary_password = Some(temporary);
    }
    if req.totp {
        users::reset_totp(s.db, &id, s.now).await?;
    }
    sessions::end_all_of(s.db, &id, None, s.now).await?;
    Reply::ok(done)
}
