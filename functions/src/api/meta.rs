//! `/healthz`, `/api/v1/regions` and `/api/v1/openapi.json`.

use serde_json::json;

use crate::app::{Ctx, Reply};
use crate::error::ApiResult;
use crate::host::Host;

pub(crate) fn health<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(json!({ "status": "ok", "region": ctx.app.config().region.id }))
}

pub(crate) fn regions<H: Host>(ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(&ctx.app.config().regions)
}

pub(crate) fn openapi<H: Host>(_ctx: &Ctx<'_, H>) -> ApiResult<Reply> {
    Reply::ok(super::openapi::document())
}
