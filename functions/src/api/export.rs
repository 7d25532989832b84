//! `GET /api/v1/export?format=csv|json`: the clinic's data, decrypted, as a
//! download. The handler only checks the request and records it; the body
//! is [`crate::export`]'s stream, started once the audit entry is committed.

use crate::error::{ApiError, ApiResult};
use crate::export::{Format, Plan};
use crate::host::Host;
use crate::request::{ClinicScope, Reply, Resource};

/// `?format=csv|json`.
pub(crate) const QUERY: &[&str] = &["format"];

/// `GET /api/v1/export?format=`.
pub(crate) async fn export<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let q = s.query(QUERY)?;
    let format = match q.get("format") {
        None => return Err(ApiError::invalid("format", "is required: csv or json")),
        Some(f) => {
            Format::parse(f).ok_or_else(|| ApiError::invalid("format", "must be csv or json"))?
        }
    };
    let clinic = s.clinic;
    s.audit
        .about(Resource::Export(clinic.as_str(), format.as_str()));
    Ok(Reply::export(Plan {
        format,
        clinic_id: clinic.as_str().to_owned(),
        exported_at: s.now,
    }))
}
