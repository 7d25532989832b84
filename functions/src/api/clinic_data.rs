//! `/api/v1/clinic`: the clinic's own record and its deletion.
//!
//! Deletion is a state of the clinic in the region directory: `deleting`
//! with a purge time 30 days on. While it lasts the clinic answers only what
//! [`crate::routes::Route::open_while_deleting`] lists (an owner can sign in,
//! see the state, cancel, read the audit trail); after it, the purge
//! ([`crate::purge`]) destroys the data key and the database.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::store::RowExt;

use super::auth::reauthenticate;
use super::clinics::CLINIC_NAME;
use super::patients::GRACE_SECS;

/// The clinic's own record.
#[derive(Serialize, ToSchema)]
pub(crate) struct ClinicView {
    id: String,
    name: String,
    region: String,
    created_at: String,
    /// Set while the clinic is scheduled for deletion.
    deletion: Option<Deletion>,
}

/// A scheduled deletion (of a patient or the clinic): purged after this
/// time unless cancelled.
#[derive(Serialize, ToSchema)]
pub(crate) struct Deletion {
    pub purge_after: String,
}

impl Deletion {
    pub(crate) fn at(purge_after: i64) -> Self {
        Deletion {
            purge_after: clock::rfc3339(purge_after),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confirm {
    password: String,
}

pub(crate) async fn get<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = ctx.clinic_id()?.as_str().to_owned();
    ctx.audit.resource = Some(format!("clinic/{id}"));
    let rows = ctx
        .db()?
        .query(
            "SELECT region, name, created_at FROM clinic WHERE id = ?1",
            vec![id.clone().into()],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("clinic row missing"))?;
    let name = ctx.open(CLINIC_NAME, &id, &row.blob(1)?)?;
    Reply::ok(ClinicView {
        id,
        name,
        region: row.text(0)?,
        created_at: clock::rfc3339(row.int(2)?),
        deletion: ctx.deletion.map(Deletion::at),
    })
}

/// `POST /api/v1/clinic/deletion`: the owner confirms with their password.
pub(crate) async fn start<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: Confirm = ctx.json()?;
    let id = ctx.clinic_id()?.as_str().to_owned();
    ctx.audit.resource = Some(format!("clinic/{id}"));
    reauthenticate(ctx, &req.password, "password").await?;
    if ctx.deletion.is_some() {
        return Err(ApiError::conflict(
            "this clinic is already scheduled for deletion",
        ));
    }
    let purge_after = ctx.now + GRACE_SECS;
    let changed = ctx
        .app
        .directory()
        .await?
        .execute(
            "UPDATE clinics SET status = 'deleting', purge_after = ?2 WHERE id = ?1 AND status = 'active'",
            vec![id.into(), purge_after.into()],
        )
        .await?;
    if changed == 0 {
        return Err(ApiError::conflict(
            "this clinic is already scheduled for deletion",
        ));
    }
    Reply::with(http::StatusCode::ACCEPTED, Deletion::at(purge_after))
}

/// `DELETE /api/v1/clinic/deletion`: cancels, within the grace period.
pub(crate) async fn cancel<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = ctx.clinic_id()?.as_str().to_owned();
    ctx.audit.resource = Some(format!("clinic/{id}"));
    if ctx.deletion.is_none() {
        return Err(ApiError::conflict("no deletion is scheduled"));
    }
    let changed = ctx
        .app
        .directory()
        .await?
        .execute(
            "UPDATE clinics SET status = 'active', purge_after = NULL \
             WHERE id = ?1 AND status = 'deleting' AND purge_after > ?2",
            vec![id.into(), ctx.now.into()],
        )
        .await?;
    if changed == 0 {
        return Err(ApiError::conflict(
            "the grace period is over; the clinic is being purged",
        ));
    }
    Reply::no_content()
}
