//! `/api/v1/clinic/roles`: the clinic's role settings. The owner narrows or
//! widens what nurses and receptionists hold, within the ceilings of
//! [`crate::rbac`]; a change applies on each affected user's next request
//! (the session check reads it).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::rbac::{self, Grants, Role};
use crate::records::role_settings;
use crate::request::{ClinicScope, Reply, Resource};

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

async fn view<H: Host>(s: &ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let stored = role_settings::all(s.db).await?;
    let items = Role::ALL
        .into_iter()
        .map(|role| {
            let setting = stored
                .iter()
                .rev()
                .find(|(r, _)| r == role.as_str())
                .map(|(_, p)| p.as_str());
            RoleView {
                role: role.as_str(),
                adjustable: rbac::adjustable(role),
                permissions: rbac::effective(role, setting).names(),
                default: rbac::defaults(role).names(),
                ceiling: rbac::ceiling(role).names(),
            }
        })
        .collect();
    Reply::ok(super::Items { items })
}

/// `GET /api/v1/clinic/roles`.
pub(crate) async fn get<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    s.audit.about(Resource::Roles);
    view(s).await
}

/// `PUT /api/v1/clinic/roles`.
pub(crate) async fn update<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: Settings = s.json()?;
    s.audit.about(Resource::Roles);
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
    for (role, grants) in changes {
        role_settings::set(s.db, role, grants, s.actor.id(), s.now).await?;
    }
    view(s).await
}
