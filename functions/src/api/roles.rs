//! `/api/v1/clinic/roles`: the clinic's role settings. The owner narrows or
//! widens what nurses and receptionists hold, within the ceilings of
//! [`crate::rbac`]; a change applies on each affected user's next request
//! (the session check reads it).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::rbac::{self, Grants, Role};
use crate::store::RowExt;

use super::patch_field;

#[derive(Serialize, ToSchema)]
pub(crate) struct RoleView {
    role: &'static str,
    /// Whether the owner may change it.
    adjustable: bool,
    permissions: Vec<&'static str>,
    default: Vec<&'static str>,
    ceiling: Vec<&'static str>,
}

/// `PUT` body: a list replaces the role's rights, `null` restores the
/// defaults, an absent role is left as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    #[serde(default, deserialize_with = "patch_field")]
    nurse: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch_field")]
    receptionist: Option<Option<Vec<String>>>,
}

async fn view<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    let rows = ctx
        .db()?
        .query("SELECT role, permissions FROM role_settings", vec![])
        .await?;
    let mut items = Vec::new();
    for role in Role::ALL {
        let mut stored = None;
        for row in &rows {
            if row.text(0)? == role.as_str() {
                stored = Some(row.text(1)?);
            }
        }
        items.push(RoleView {
            role: role.as_str(),
            adjustable: rbac::adjustable(role),
            permissions: rbac::effective(role, stored.as_deref()).names(),
            default: rbac::defaults(role).names(),
            ceiling: rbac::ceiling(role).names(),
        });
    }
    Reply::ok(super::Items { items })
}

pub(crate) async fn get<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    ctx.audit.resource = Some("clinic/roles".into());
    view(ctx).await
}

pub(crate) async fn update<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: Settings = ctx.json()?;
    ctx.audit.resource = Some("clinic/roles".into());
    let actor = ctx.principal()?.user_id.clone();
    let mut changes = Vec::new();
    for (role, field, value) in [
        (Role::Nurse, "nurse", req.nurse),
        (Role::Receptionist, "receptionist", req.receptionist),
    ] {
        match value {
            None => {}
            Some(None) => changes.push((role, None)),
            Some(Some(names)) => {
                let grants = Grants::parse(names.iter().map(String::as_str)).map_err(|_| {
                    ApiError::invalid(field, "unknown permission; see GET /api/v1/clinic/roles")
                })?;
                if !grants.is_subset(rbac::ceiling(role)) {
                    return Err(ApiError::invalid(
                        field,
                        "beyond what this role can ever hold (its ceiling)",
                    ));
                }
                changes.push((role, Some(grants)));
            }
        }
    }
    let db = ctx.db()?;
    for (role, grants) in changes {
        match grants {
            None => {
                db.execute_later(
                    "DELETE FROM role_settings WHERE role = ?1",
                    vec![role.as_str().into()],
                )
                .await?
            }
            Some(g) => {
                db.execute_later(
                    "INSERT INTO role_settings (role, permissions, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (role) DO UPDATE SET permissions = ?2, updated_by = ?3, updated_at = ?4",
                    vec![
                        role.as_str().into(),
                        g.encode().into(),
                        actor.clone().into(),
                        ctx.now.into(),
                    ],
                )
                .await?
            }
        }
    }
    view(ctx).await
}
