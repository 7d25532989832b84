//! Test hooks, routed only when the host was started with them (loopback
//! only). `POST /__test/clock` moves one clinic's clock forward, so tests can
//! cross idle timeouts and TOTP steps without sleeping; a per-clinic offset
//! keeps parallel tests apart. `POST /__test/staff` creates platform staff.

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, Reply};
use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::host::Host;
use crate::ids::ClinicId;
use crate::store::RowExt;
use crate::web;

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
pub(crate) async fn add_staff<H: Host>(
    app: &App<H>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let req: NewStaff = web::json_body(headers, body)?;
    let s = app.add_staff(&req.role, &req.email, &req.password).await?;
    Reply::created(json!({ "id": s.id, "totp_secret": s.totp_secret }))
}

pub(crate) async fn advance_clock<H: Host>(
    app: &App<H>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let req: Advance = web::json_body(headers, body)?;
    let clinic = ClinicId::parse(&req.clinic)
        .ok_or_else(|| ApiError::invalid("clinic", "not a clinic id"))?;
    if !(0..=366 * clock::DAY).contains(&req.advance_seconds) {
        return Err(ApiError::invalid(
            "advance_seconds",
            "must be 0 to one year",
        ));
    }
    let dir = app.directory().await?;
    let rows = dir
        .query(
            "INSERT INTO test_clock (clinic_id, offset_secs) VALUES (?1, ?2) \
             ON CONFLICT (clinic_id) DO UPDATE SET offset_secs = offset_secs + ?2 RETURNING offset_secs",
            vec![clinic.as_str().into(), req.advance_seconds.into()],
        )
        .await?;
    let offset = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
    Reply::ok(
        json!({ "clinic_now": clock::rfc3339(app.host().now() + offset), "offset_seconds": offset }),
    )
}
