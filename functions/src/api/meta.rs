//! `/healthz` and `/api/v1/regions`.

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
