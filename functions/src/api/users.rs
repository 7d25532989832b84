//! `/api/v1/users`: the clinic's staff, managed by owners. A change of role or
//! deactivation takes effect on that user's next request, because every
//! request reads role and status afresh.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::crypto::blind::TermKind;
use crate::crypto::field::Field;
use crate::crypto::password;
use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::host::{Host, Row};
use crate::ids::kind;
use crate::rbac::Role;
use crate::store::RowExt;
use crate::validate;

use super::{not_null, patch_field, Page};

pub(crate) const USER_NAME: Field = Field::new("users", "name");
pub(crate) const USER_EMAIL: Field = Field::new("users", "email");

#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    id: String,
    name: String,
    email: String,
    role: String,
    active: bool,
    mfa_enabled: bool,
    #[serde(skip)]
    seq: i64,
}

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

const COLUMNS: &str = "seq, id, name, email, role, active, mfa_enabled";

fn view<H: Host>(ctx: &Ctx<'_, H>, r: &Row) -> ApiResult<UserView> {
    let id = r.text(1)?;
    Ok(UserView {
        name: ctx.open(USER_NAME, &id, &r.blob(2)?)?,
        email: ctx.open(USER_EMAIL, &id, &r.blob(3)?)?,
        role: r.text(4)?,
        active: r.int(5)? == 1,
        mfa_enabled: r.int(6)? == 1,
        seq: r.int(0)?,
        id,
    })
}

async fn load<H: Host>(ctx: &Ctx<'_, H>, id: &str) -> ApiResult<UserView> {
    let rows = ctx
        .db()?
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            vec![id.into()],
        )
        .await?;
    view(ctx, rows.first().ok_or_else(ApiError::not_found)?)
}

pub(crate) async fn list<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let q = ctx.query(super::PAGE_QUERY)?;
    let limit = q.limit()?;
    let rows = ctx
        .db()?
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            vec![q.cursor()?.unwrap_or(0).into(), (limit + 1).into()],
        )
        .await?;
    ctx.audit.resource = Some("users".into());
    let items = rows
        .iter()
        .map(|r| view(ctx, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(Page::new(items, limit, |u| u.seq))
}

/// Someone a patient can be booked with, as every role that reads the
/// schedule may see them (no email, no account state).
#[derive(Serialize, ToSchema)]
pub(crate) struct Practitioner {
    id: String,
    name: String,
    role: String,
}

/// `GET /api/v1/practitioners`: the active owners, doctors and nurses, for
/// booking (the staff list itself is the owner's).
pub(crate) async fn practitioners<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    ctx.query(&[])?;
    let rows = ctx
        .db()?
        .query(
            "SELECT id, name, role FROM users WHERE active = 1 AND role IN ('owner', 'doctor', 'nurse') ORDER BY seq",
            vec![],
        )
        .await?;
    ctx.audit.resource = Some("practitioners".into());
    let items = rows
        .iter()
        .map(|r| {
            let id = r.text(0)?;
            Ok(Practitioner {
                name: ctx.open(USER_NAME, &id, &r.blob(1)?)?,
                role: r.text(2)?,
                id,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(serde_json::json!({ "items": items, "next_cursor": null }))
}

pub(crate) async fn create<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: NewUser = ctx.json()?;
    let name = validate::name("name", &req.name)?;
    let email = validate::email("email", &req.email)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::invalid("role", "must be one of: owner, doctor, nurse, receptionist")
    })?;
    if let Some(why) = password::policy_violation(&req.password) {
        return Err(ApiError::invalid("password", why));
    }
    let term = ctx.term(TermKind::Email, &email)?;
    // Under every key version still in the index: after a rotation the
    // UNIQUE column alone would not see the same email under the old key.
    let (sql, params) = crate::store::any_of(
        "SELECT 1 FROM users WHERE email_term IN",
        ctx.lookup_terms(TermKind::Email, &email)?,
    );
    let taken = ctx.db()?.query(&sql, params).await?;
    if !taken.is_empty() {
        let mut e = ApiError::conflict("a user with this email already exists");
        e.field = Some("email".into());
        return Err(e);
    }
    let id = ctx.new_id(kind::USER);
    let hash = password::hash(&req.password, ctx.random());
    ctx.db()?
        .execute(
            "INSERT INTO users (id, name, email, email_term, role, password_hash, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            vec![
                id.clone().into(),
                ctx.seal(USER_NAME, &id, &name)?.into(),
                ctx.seal(USER_EMAIL, &id, &email)?.into(),
                term.into(),
                role.as_str().into(),
                hash.into(),
                ctx.now.into(),
            ],
        )
        .await?;
    ctx.audit.resource = Some(format!("user/{id}"));
    Reply::created(load(ctx, &id).await?)
}

pub(crate) async fn update<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = ctx.path_id(kind::USER)?;
    let req: UserPatch = ctx.json()?;
    let active = not_null("active", req.active)?;
    let role = not_null("role", req.role)?
        .as_deref()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                ApiError::invalid("role", "must be one of: owner, doctor, nurse, receptionist")
            })
        })
        .transpose()?;
    if role.is_none() && active.is_none() {
        return Err(ApiError::bad_request("give `role`, `active` or both"));
    }
    ctx.audit.resource = Some(format!("user/{id}"));
    let current = load(ctx, &id).await?;
    let stays_owner = role.map_or(current.role == "owner", |r| r == Role::Owner)
        && active.unwrap_or(current.active);
    if current.role == "owner" && current.active && !stays_owner {
        let others = ctx
            .db()?
            .query(
                "SELECT COUNT(*) FROM users WHERE role = 'owner' AND active = 1 AND id != ?1",
                vec![id.clone().into()],
            )
            .await?;
        if others.first().map(|r| r.int(0)).transpose()?.unwrap_or(0) == 0 {
            return Err(ApiError::conflict(
                "a clinic keeps at least one active owner",
            ));
        }
    }
    let db = ctx.db()?;
    db.execute(
        "UPDATE users SET role = COALESCE(?2, role), active = COALESCE(?3, active), updated_at = ?4 WHERE id = ?1",
        vec![id.clone().into(), role.map(|r| r.as_str()).into(), active.into(), ctx.now.into()],
    )
    .await?;
    if active == Some(false) {
        db.execute(
            "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            vec![id.clone().into(), ctx.now.into()],
        )
        .await?;
    }
    Reply::ok(load(ctx, &id).await?)
}
