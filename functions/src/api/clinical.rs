//! `/api/v1/patients/{id}/conditions|prescriptions|notes`: the clinical
//! record. Every clinical column is field-encrypted (bound to its table,
//! column and row); the author and time of an entry are the server's. Who may
//! read or write is the route table's business (receptionists never reach
//! these handlers); no other response carries clinical content.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::clock;
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host, Row, Value};
use crate::ids::kind;
use crate::store::RowExt;
use crate::validate;

use super::patients::LIVE_PATIENT_SQL;
use super::Page;

/// One kind of clinical entry: its table, id prefix and encrypted columns.
struct Kind {
    table: &'static str,
    id_prefix: &'static str,
    /// Audit action prefix (`condition` → `condition.list`, …).
    noun: &'static str,
    columns: &'static [&'static str],
}

const CONDITIONS: Kind = Kind {
    table: "conditions",
    id_prefix: kind::CONDITION,
    noun: "condition",
    columns: &["display", "code", "onset", "status"],
};
const PRESCRIPTIONS: Kind = Kind {
    table: "prescriptions",
    id_prefix: kind::PRESCRIPTION,
    noun: "prescription",
    columns: &["drug", "dose", "route", "frequency", "duration", "notes"],
};
const NOTES: Kind = Kind {
    table: "notes",
    id_prefix: kind::NOTE,
    noun: "note",
    columns: &["kind", "text"],
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCondition {
    display: String,
    code: Option<String>,
    onset: Option<String>,
    status: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPrescription {
    drug: String,
    dose: String,
    route: String,
    frequency: String,
    duration: Option<String>,
    notes: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewNote {
    kind: String,
    text: String,
}

fn opt(
    value: Option<String>,
    check: impl Fn(&str) -> ApiResult<String>,
) -> ApiResult<Option<String>> {
    value.as_deref().map(check).transpose()
}

/// The validated values of a body, in the kind's column order.
trait Entry: DeserializeOwned {
    fn values(self, now: i64) -> ApiResult<Vec<Option<String>>>;
}

impl Entry for NewCondition {
    fn values(self, now: i64) -> ApiResult<Vec<Option<String>>> {
        Ok(vec![
            Some(validate::text("display", &self.display, 200)?),
            opt(self.code, |s| validate::text("code", s, 40))?,
            opt(self.onset, |s| validate::dob("onset", s, now))?,
            Some(validate::one_of(
                "status",
                &self.status,
                &["active", "resolved"],
            )?),
        ])
    }
}

impl Entry for NewPrescription {
    fn values(self, _now: i64) -> ApiResult<Vec<Option<String>>> {
        Ok(vec![
            Some(validate::text("drug", &self.drug, 200)?),
            Some(validate::text("dose", &self.dose, 100)?),
            Some(validate::text("route", &self.route, 50)?),
            Some(validate::text("frequency", &self.frequency, 100)?),
            opt(self.duration, |s| validate::text("duration", s, 100))?,
            opt(self.notes, |s| validate::text("notes", s, 2000))?,
        ])
    }
}

impl Entry for NewNote {
    fn values(self, _now: i64) -> ApiResult<Vec<Option<String>>> {
        Ok(vec![
            Some(validate::text("kind", &self.kind, 40)?),
            Some(validate::text("text", &self.text, 20_000)?),
        ])
    }
}

/// The patient of the path, which must exist and not be deleted.
async fn patient<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<String> {
    let id = ctx.path_id(kind::PATIENT)?;
    ctx.audit.patient_id = Some(id.clone());
    let rows = ctx
        .db()?
        .query(LIVE_PATIENT_SQL, vec![id.clone().into()])
        .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(id)
}

fn view<H: Host>(ctx: &Ctx<'_, H>, kind: &Kind, patient: &str, r: &Row) -> ApiResult<Json> {
    let id = r.text(1)?;
    let mut out = Map::new();
    out.insert("id".into(), id.clone().into());
    out.insert("patient_id".into(), patient.into());
    for (i, col) in kind.columns.iter().enumerate() {
        let value = ctx.open_opt(Field::new(kind.table, col), &id, r.opt_blob(4 + i)?)?;
        out.insert((*col).into(), value.map_or(Json::Null, Json::String));
    }
    out.insert("author_id".into(), r.text(2)?.into());
    out.insert("created_at".into(), clock::rfc3339(r.int(3)?).into());
    Ok(Json::Object(out))
}

fn select(kind: &Kind) -> String {
    format!(
        "SELECT seq, id, author_id, created_at, {} FROM {}",
        kind.columns.join(", "),
        kind.table
    )
}

async fn list<H: Host>(ctx: &mut Ctx<'_, H>, kind: &Kind) -> ApiResult<Reply> {
    let q = ctx.query(super::PAGE_QUERY)?;
    let (limit, after) = (q.limit()?, q.cursor()?.unwrap_or(0));
    let patient = patient(ctx).await?;
    ctx.audit.resource = Some(format!("patient/{patient}/{}", kind.table));
    let rows = ctx
        .db()?
        .query(
            &format!(
                "{} WHERE patient_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                select(kind)
            ),
            vec![patient.clone().into(), after.into(), (limit + 1).into()],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.int(0)?, view(ctx, kind, &patient, r)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    let page = Page::new(items, limit, |(seq, _)| *seq);
    Reply::ok(serde_json::json!({
        "items": page.items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    }))
}

/// Parses and validates `data` as each kind of clinical entry (fuzzing).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_entries(headers: &http::HeaderMap, data: &[u8], now: i64) {
    fn one<E: Entry>(headers: &http::HeaderMap, data: &[u8], now: i64) {
        if let Ok(e) = crate::web::json_body::<E>(headers, data) {
            let _ = e.values(now);
        }
    }
    one::<NewCondition>(headers, data, now);
    one::<NewPrescription>(headers, data, now);
    one::<NewNote>(headers, data, now);
}

async fn create<H: Host, E: Entry>(ctx: &mut Ctx<'_, H>, kind: &Kind) -> ApiResult<Reply> {
    let patient = patient(ctx).await?;
    let values = ctx.json::<E>()?.values(ctx.now)?;
    let id = ctx.new_id(kind.id_prefix);
    let author = ctx.principal()?.user_id.clone();
    let mut params: Vec<Value> = vec![
        id.clone().into(),
        patient.clone().into(),
        author.into(),
        ctx.now.into(),
    ];
    for (col, value) in kind.columns.iter().zip(&values) {
        params.push(ctx.seal_opt(Field::new(kind.table, col), &id, value.as_deref())?);
    }
    let marks: Vec<String> = (1..=params.len()).map(|i| format!("?{i}")).collect();
    let db = ctx.db()?;
    db.execute_later(
        &format!(
            "INSERT INTO {} (id, patient_id, author_id, created_at, {}) VALUES ({})",
            kind.table,
            kind.columns.join(", "),
            marks.join(", ")
        ),
        params,
    )
    .await?;
    let rows = db
        .query(
            &format!("{} WHERE id = ?1", select(kind)),
            vec![id.clone().into()],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("new clinical entry not found"))?;
    ctx.audit.resource = Some(format!("{}/{id}", kind.noun));
    Reply::created(view(ctx, kind, &patient, row)?)
}

pub(crate) async fn conditions<H: Host>(ctx: &mut Ctx<'_, H>, write: bool) -> ApiResult<Reply> {
    match write {
        true => create::<H, NewCondition>(ctx, &CONDITIONS).await,
        false => list(ctx, &CONDITIONS).await,
    }
}

pub(crate) async fn prescriptions<H: Host>(ctx: &mut Ctx<'_, H>, write: bool) -> ApiResult<Reply> {
    match write {
        true => create::<H, NewPrescription>(ctx, &PRESCRIPTIONS).await,
        false => list(ctx, &PRESCRIPTIONS).await,
    }
}

pub(crate) async fn notes<H: Host>(ctx: &mut Ctx<'_, H>, write: bool) -> ApiResult<Reply> {
    match write {
        true => create::<H, NewNote>(ctx, &NOTES).await,
        false => list(ctx, &NOTES).await,
    }
}
