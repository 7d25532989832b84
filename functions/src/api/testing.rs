//! Test hooks, routed only when the host was started with them (loopback
//! only). `POST /__test/clock` moves one clinic's clock forward, so tests can
//! cross idle timeouts and TOTP steps without sleeping; a per-clinic offset
//! keeps parallel tests apart. `POST /__test/staff` creates platform staff.
//! `GET /__test/checkpoints?chain=C` shows what the host's checkpoint store
//! keeps of a chain.

use serde::Deserialize;
use serde_json::json;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::ClinicId;
use crate::jobs::checkpoints::CheckpointStore;
use crate::records::directory::test_clock;
use crate::request::{Open, Reply};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    clinic: String,
    advance_seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStaff {
    role: String,
    email: String,
    password: String,
}

/// `POST /__test/staff`: what `amanah staff add` does, for hosts whose
/// directory an operator command cannot reach from here (the Worker's sqld).
pub(crate) async fn add_staff<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let req: NewStaff = p.json()?;
    let s = p
        .app
        .add_staff(&req.role, &req.email, &req.password)
        .await?;
    Reply::created(json!({ "id": s.id, "totp_secret": s.totp_secret }))
}

/// `POST /__test/clock`.
pub(crate) async fn advance_clock<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let req: Advance = p.json()?;
    let clinic = ClinicId::parse(&req.clinic)
        .ok_or_else(|| ApiError::invalid("clinic", "not a clinic id"))?;
    if !(0..=366 * clock::DAY).contains(&req.advance_seconds) {
        return Err(ApiError::invalid(
            "advance_seconds",
            "must be 0 to one year",
        ));
    }
    let dir = p.app.directory().await?;
    let offset = test_clock::advance(&dir, &clinic, req.advance_seconds).await?;
    Reply::ok(
        json!({ "clinic_now": clock::rfc3339(p.app.host.now() + offset), "offset_seconds": offset }),
    )
}

/// `GET /__test/checkpoints?chain=C`: the checkpoints the host's store keeps
/// of a chain, as stored, for a test to verify independently.
pub(crate) async fn checkpoints<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let q = p.query(&["chain"])?;
    let chain = q.get("chain").unwrap_or("");
    let Some(store) = p.app.host.checkpoints() else {
        return Err(ApiError::not_found());
    };
    let texts = store
        .load(&p.app.config.region.id, chain)
        .await
        .map_err(ApiError::internal)?;
    Reply::ok(texts)
}
