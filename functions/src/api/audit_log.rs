//! `/api/v1/audit`, `/api/v1/audit/verify` and a patient's timeline (the
//! chain itself is [`crate::records::audit`]).

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::kind;
use crate::jobs::checkpoints;
use crate::records::audit::{self, Filter, Verification};
use crate::records::patients;
use crate::request::{ClinicScope, Reply, Resource};

use super::Page;

/// The chain checked end to end: whole (`entries`, `head`), or broken at
/// `first_bad_seq`.
#[derive(Serialize, ToSchema)]
pub(crate) struct VerifyView {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<i64>,
    /// The hash of the last entry, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_bad_seq: Option<i64>,
}

/// The filters of `GET /api/v1/audit`, with paging.
pub(crate) const LIST_QUERY: &[&str] = &[
    "patient", "actor", "action", "from", "to", "limit", "cursor",
];

fn time_param(field: &str, v: Option<&str>) -> ApiResult<Option<String>> {
    v.map(|s| {
        clock::parse_rfc3339(s)
            .map(clock::rfc3339)
            .ok_or_else(|| ApiError::invalid(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
}

async fn page<H: Host>(
    s: &ClinicScope<'_, '_, H>,
    mut f: Filter,
    limit: i64,
    cursor: Option<i64>,
) -> ApiResult<Reply> {
    f.before = cursor;
    let entries = audit::list(s.db, s.vault.cipher(), &f, limit + 1).await?;
    Reply::ok(Page::new(entries, limit, |e| e.seq))
}

/// `GET /api/v1/audit`.
pub(crate) async fn list<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let q = s.query(LIST_QUERY)?;
    let f = Filter {
        patient: q.get("patient").map(str::to_owned),
        actor: q.get("actor").map(str::to_owned),
        action: q.get("action").map(str::to_owned),
        from: time_param("from", q.get("from"))?,
        to: time_param("to", q.get("to"))?,
        before: None,
    };
    s.audit.about(Resource::Audit);
    page(s, f, q.limit()?, q.cursor()?).await
}

/// `GET /api/v1/patients/{id}/audit`: newest first.
pub(crate) async fn patient_timeline<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = s.path_id(kind::PATIENT)?;
    s.audit.about(Resource::PatientAudit(&id));
    let q = s.query(super::PAGE_QUERY)?;
    // Deleted patients keep their timeline; unknown ids are not found.
    if !patients::exists(s.db, &id).await? {
        return Err(ApiError::not_found());
    }
    let f = Filter {
        patient: Some(id),
        ..Filter::default()
    };
    page(s, f, q.limit()?, q.cursor()?).await
}

/// `GET /api/v1/audit/verify`: the chain from its newest signed checkpoint
/// (the entries before are that checkpoint's word, and entry and head must
/// still match it), or end to end where the host keeps no checkpoint.
pub(crate) async fn verify<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    s.query(&[])?;
    s.audit.about(Resource::Audit);
    let verification = match checkpoints::newest(s.app, s.clinic.as_str()).await {
        Some((seq, head)) => audit::verify_since(s.db, seq, &head).await?,
        None => audit::verify(s.db).await?,
    };
    Reply::ok(match verification {
        Verification::Ok { entries, head } => VerifyView {
            ok: true,
            entries: Some(entries),
            head: Some(head),
            first_bad_seq: None,
        },
        Verification::Broken { first_bad_seq } => VerifyView {
            ok: false,
            entries: None,
            head: None,
            first_bad_seq: Some(first_bad_seq),
        },
    })
}
