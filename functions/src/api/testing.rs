//! `POST /__test/clock`: moves one clinic's clock forward, so tests can cross
//! idle timeouts and TOTP steps without sleeping. Routed only when the host
//! was started with test hooks; a per-clinic offset keeps parallel tests apart.

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
