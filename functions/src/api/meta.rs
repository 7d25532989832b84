//! `/healthz`, `/healthz/keys`, `/api/v1/regions` and `/api/v1/openapi.json`.

use serde_json::json;

use crate::app::{Ctx, Reply};
use crate::error::ApiResult;
use crate::host::Host;

/// Liveness and the region, exactly as the API contract gives it.
pub(crate) fn health<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(json!({
        "status": "ok",
        "region": ctx.app.config().region.id,
    }))
}

/// The root key versions this instance holds (numbers only, never a key:
/// tokens name them in `kid` anyway). An operator's `keys rotate-root
/// --sqld` checks that a redeploy gave every host the new version before
/// wrapping under it.
pub(crate) fn health_keys<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(json!({
        "region": ctx.app.config().region.id,
        "root_versions": ctx.app.host().root_keys().versions(),
    }))
}

pub(crate) fn regions<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(&ctx.app.config().regions)
}

pub(crate) fn openapi<H: Host>(_ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(super::openapi::document())
}
