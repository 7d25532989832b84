//! `/api/v1/clinic`: the clinic's own record and its deletion.
//!
//! Deletion is a state of the clinic in the region directory: `deleting`
//! with a purge time 30 days on (in a region that keeps records, the end of
//! its retention period: [`purge::purge_after`]). While it lasts the clinic
//! answers only what [`crate::routes::Route::open_while_deleting`] allows
//! (an owner can sign in, see the state, cancel, export, read the audit
//! trail); after it, the purge ([`crate::jobs::purge`]) destroys the data
//! key and the database.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::jobs::purge;
use crate::records::clinic;
use crate::records::directory::clinics;
use crate::request::sign_in::recheck_password;
use crate::request::{ClinicScope, Reply, Resource};

use super::Deletion;

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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confirm {
    password: String,
}

/// `GET /api/v1/clinic`.
pub(crate) async fn get<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let clinic = s.clinic;
    s.audit.about(Resource::Clinic(clinic.as_str()));
    let c = clinic::load(s.db, &s.vault).await?;
    Reply::ok(ClinicView {
        id: c.summary.id,
        name: c.summary.name,
        region: c.summary.region,
        created_at: c.created_at,
        deletion: s.deletion.map(Deletion::at),
    })
}

/// `POST /api/v1/clinic/deletion`: the owner confirms with their password.
pub(crate) async fn start<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let req: Confirm = s.json()?;
    let clinic = s.clinic;
    s.audit.about(Resource::Clinic(clinic.as_str()));
    let owner = s.actor.id().to_owned();
    recheck_password(s, &owner, &req.password, "password").await?;
    if s.deletion.is_some() {
        return Err(ApiError::conflict(
            "this clinic is already scheduled for deletion",
        ));
    }
    // The clinic is active until now: in a region that keeps records, its
    // data stays archived for the whole retention period.
    let purge_after = purge::purge_after(s.now, s.now, s.app.config.region.retention.as_ref());
    let dir = s.app.directory().await?;
    if !clinics::schedule_deletion(&dir, s.clinic, purge_after).await? {
        return Err(ApiError::conflict(
            "this clinic is already scheduled for deletion",
        ));
    }
    Reply::with(http::StatusCode::ACCEPTED, Deletion::at(purge_after))
}

/// `DELETE /api/v1/clinic/deletion`: cancels, until the purge time.
pub(crate) async fn cancel<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let clinic = s.clinic;
    s.audit.about(Resource::Clinic(clinic.as_str()));
    if s.deletion.is_none() {
        return Err(ApiError::conflict("no deletion is scheduled"));
    }
    let dir = s.app.directory().await?;
    if !clinics::cancel_deletion(&dir, s.clinic, s.now).await? {
        return Err(ApiError::conflict(
            "the grace period is over; the clinic is being purged",
        ));
    }
    Reply::no_content()
}
