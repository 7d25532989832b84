//! `/healthz`, `/healthz/keys`, `/api/v1/regions` and `/internal/maintain` (the scheduled work of [`crate::jobs`]).

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::request::{Open, Reply};

/// Liveness and the region, exactly as the API contract gives it.
pub(crate) async fn health<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    Reply::ok(json!({
        "status": "ok",
        "region": p.app.config.region.id,
    }))
}

pub(crate) fn health_schema() -> Value {
    json!({
        "type": "object", "required": ["status", "region"],
        "properties": {
            "status": { "const": "ok" },
            "region": { "type": "string" },
        },
    })
}

/// The root key versions this instance holds (numbers only, never a key:
/// tokens name them in `kid` anyway). An operator's `keys rotate-root
/// --sqld` checks that a redeploy gave every host the new version before
/// wrapping under it.
pub(crate) async fn health_keys<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    Reply::ok(json!({
        "region": p.app.config.region.id,
        "root_versions": p.app.host.root_keys().versions(),
    }))
}

pub(crate) fn health_keys_schema() -> Value {
    json!({
        "type": "object", "required": ["region", "root_versions"],
        "properties": {
            "region": { "type": "string" },
            "root_versions": { "type": "array", "items": { "type": "integer", "minimum": 1 } },
        },
    })
}

/// Any JSON object.
pub(crate) fn object_schema() -> Value {
    json!({ "type": "object" })
}

/// `GET /api/v1/regions`.
pub(crate) async fn regions<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    Reply::ok(&p.app.config.regions)
}

/// `POST /internal/maintain`: the region's scheduled work, once, for the
/// bearer of the deployment's internal token (an operator's scheduler, the
/// Worker's cron).
pub(crate) async fn maintain<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    match crate::jobs::maintain(p.app).await {
        Ok(report) => Reply::ok(report.to_json()),
        Err(e) => Err(ApiError::unavailable(format!("maintain: {}", e.log_text()))),
    }
}
