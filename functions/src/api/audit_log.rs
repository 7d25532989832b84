//! `/api/v1/audit`, `/api/v1/audit/verify` and a patient's timeline.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::audit::{self, Filter, Verification};
use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::host::Host;
use crate::ids::kind;

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
    ctx: &Ctx<'_, H>,
    mut f: Filter,
    limit: i64,
    cursor: Option<i64>,
) -> ApiResult<Reply> {
    f.before = cursor;
    let entries = audit::list(ctx.db()?, &ctx.keys()?.cipher, &f, limit + 1).await?;
    Reply::ok(Page::new(entries, limit, |e| e.seq))
}

pub(crate) async fn list<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let q = ctx.query(LIST_QUERY)?;
    let f = Filter {
        patient: q.get("patient").map(str::to_owned),
        actor: q.get("actor").map(str::to_owned),
        action: q.get("action").map(str::to_owned),
        from: time_param("from", q.get("from"))?,
        to: time_param("to", q.get("to"))?,
        before: None,
    };
    ctx.audit.resource = Some("audit".into());
    page(ctx, f, q.limit()?, q.cursor()?).await
}

pub(crate) async fn patient_timeline<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = ctx.path_id(kind::PATIENT)?;
    ctx.audit.resource = Some(format!("patient/{id}/audit"));
    ctx.audit.patient_id = Some(id.clone());
    let q = ctx.query(super::PAGE_QUERY)?;
    // Deleted patients keep their timeline; unknown ids are not found.
    let exists = ctx
        .db()?
        .query(
            "SELECT 1 FROM patients WHERE id = ?1",
            vec![id.clone().into()],
        )
        .await?;
    if exists.is_empty() {
        return Err(ApiError::not_found());
    }
    let f = Filter {
        patient: Some(id),
        ..Filter::default()
    };
    page(ctx, f, q.limit()?, q.cursor()?).await
}

pub(crate) async fn verify<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    ctx.query(&[])?;
    ctx.audit.resource = Some("audit".into());
    Reply::ok(match audit::verify(ctx.db()?).await? {
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
