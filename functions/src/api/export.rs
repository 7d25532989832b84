//! `GET /api/v1/export?format=csv|json`: the clinic's data, decrypted, as a
//! download. The handler only checks the request and records it; the body
//! is [`crate::export`]'s stream, started once the audit entry is committed.

use crate::app::{Ctx, Reply};
use crate::error::{ApiError, ApiResult};
use crate::export::{Format, Plan};
use crate::host::Host;

/// `?format=csv|json`.
pub(crate) const QUERY: &[&str] = &["format"];

pub(crate) async fn export<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let q = ctx.query(QUERY)?;
    let format = match q.get("format") {
        None => return Err(ApiError::invalid("format", "is required: csv or json")),
        Some(f) => {
            Format::parse(f).ok_or_else(|| ApiError::invalid("format", "must be csv or json"))?
        }
    };
    let clinic_id = ctx.clinic_id()?.as_str().to_owned();
    ctx.audit.resource = Some(format!("clinic/{clinic_id}/export.{}", format.as_str()));
    Ok(Reply::export(Plan {
        format,
        clinic_id,
        exported_at: ctx.now,
    }))
}
