//! `/api/v1/patients`: demographics. Every field is field-encrypted; search
//! goes through blind-index terms (name words and prefixes, phone digits,
//! national id). Deletion hides a patient at once and keeps them restorable
//! for 30 days.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::clock;
use crate::crypto::blind::{self, BlindIndex, TermKind};
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::host::{Host, Row, Value};
use crate::ids::kind;
use crate::store::RowExt;
use crate::validate;

use super::{not_null, patch_field, Page};

pub(crate) const NAME: Field = Field::new("patients", "name");
const DOB: Field = Field::new("patients", "dob");
const SEX: Field = Field::new("patients", "sex");
pub(crate) const PHONE: Field = Field::new("patients", "phone");
const EMAIL: Field = Field::new("patients", "email");
const ADDRESS: Field = Field::new("patients", "address");
pub(crate) const NATIONAL_ID: Field = Field::new("patients", "national_id");

const SEXES: &[&str] = &["female", "male", "other", "unknown"];
/// One row if the patient exists and is not deleted: the query by which
/// other resources (clinical record, schedule) check their patient.
pub(crate) const LIVE_PATIENT_SQL: &str =
    "SELECT 1 FROM patients WHERE id = ?1 AND deleted_at IS NULL";
/// `GET /api/v1/patients`: search text and paging.
pub(crate) const LIST_QUERY: &[&str] = &["q", "limit", "cursor"];
/// Grace period between deletion and purge.
pub(crate) const GRACE_SECS: i64 = 30 * clock::DAY;

/// A patient's demographics in plaintext (memory only); also the body of
/// `POST /api/v1/patients`.
#[derive(Serialize, Deserialize, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Demographics {
    name: String,
    dob: String,
    sex: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    national_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PatientView {
    id: String,
    #[serde(flatten)]
    data: Demographics,
    created_at: String,
    updated_at: String,
    #[serde(skip)]
    seq: i64,
}

/// Fields left out are unchanged; `null` clears an optional one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatientPatch {
    #[serde(default, deserialize_with = "patch_field")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    dob: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    sex: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    address: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    national_id: Option<Option<String>>,
}

fn optional(
    value: Option<&str>,
    check: impl Fn(&str) -> ApiResult<String>,
) -> ApiResult<Option<String>> {
    value.map(check).transpose()
}

impl Demographics {
    pub(super) fn validated(self, now: i64) -> ApiResult<Self> {
        Ok(Demographics {
            name: validate::name("name", &self.name)?,
            dob: validate::dob("dob", &self.dob, now)?,
            sex: optional(self.sex.as_deref(), |s| validate::one_of("sex", s, SEXES))?,
            phone: optional(self.phone.as_deref(), |s| validate::phone("phone", s))?,
            email: optional(self.email.as_deref(), |s| validate::email("email", s))?,
            address: optional(self.address.as_deref(), |s| {
                validate::text("address", s, 500)
            })?,
            national_id: optional(self.national_id.as_deref(), |s| {
                validate::national_id("national_id", s)
            })?,
        })
    }
}

const COLUMNS: &str =
    "seq, id, name, dob, sex, phone, email, address, national_id, created_at, updated_at";

fn view<H: Host>(ctx: &Ctx<'_, H>, r: &Row) -> ApiResult<PatientView> {
    let id = r.text(1)?;
    let data = Demographics {
        name: ctx.open(NAME, &id, &r.blob(2)?)?,
        dob: ctx.open(DOB, &id, &r.blob(3)?)?,
        sex: ctx.open_opt(SEX, &id, r.opt_blob(4)?)?,
        phone: ctx.open_opt(PHONE, &id, r.opt_blob(5)?)?,
        email: ctx.open_opt(EMAIL, &id, r.opt_blob(6)?)?,
        address: ctx.open_opt(ADDRESS, &id, r.opt_blob(7)?)?,
        national_id: ctx.open_opt(NATIONAL_ID, &id, r.opt_blob(8)?)?,
    };
    Ok(PatientView {
        data,
        created_at: clock::rfc3339(r.int(9)?),
        updated_at: clock::rfc3339(r.int(10)?),
        seq: r.int(0)?,
        id,
    })
}

async fn load<H: Host>(ctx: &Ctx<'_, H>, id: &str) -> ApiResult<PatientView> {
    let rows = ctx
        .db()?
        .query(
            &format!("SELECT {COLUMNS} FROM patients WHERE id = ?1 AND deleted_at IS NULL"),
            vec![id.into()],
        )
        .await?;
    view(ctx, rows.first().ok_or_else(ApiError::not_found)?)
}

/// Writes every encrypted column and the search terms of a patient. The
/// writes are queued: they reach the database with the request's next
/// statement, in order, in the same transaction.
async fn store<H: Host>(ctx: &Ctx<'_, H>, id: &str, d: &Demographics, new: bool) -> ApiResult<()> {
    let enc = vec![
        ctx.seal(NAME, id, &d.name)?.into(),
        ctx.seal(DOB, id, &d.dob)?.into(),
        ctx.seal_opt(SEX, id, d.sex.as_deref())?,
        ctx.seal_opt(PHONE, id, d.phone.as_deref())?,
        ctx.seal_opt(EMAIL, id, d.email.as_deref())?,
        ctx.seal_opt(ADDRESS, id, d.address.as_deref())?,
        ctx.seal_opt(NATIONAL_ID, id, d.national_id.as_deref())?,
    ];
    let mut params: Vec<Value> = vec![id.into()];
    params.extend(enc);
    params.push(ctx.now.into());
    let db = ctx.db()?;
    if new {
        params.push(ctx.principal()?.user_id.clone().into());
        db.execute_later(
            "INSERT INTO patients (id, name, dob, sex, phone, email, address, national_id, created_at, updated_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
            params,
        )
        .await?;
    } else {
        db.execute_later(
            "UPDATE patients SET name = ?2, dob = ?3, sex = ?4, phone = ?5, email = ?6, address = ?7, national_id = ?8, \
             updated_at = ?9 WHERE id = ?1",
            params,
        )
        .await?;
        db.execute_later(
            "DELETE FROM patient_terms WHERE patient_id = ?1",
            vec![id.into()],
        )
        .await?;
    }
    let terms = search_terms(
        &ctx.keys()?.blind,
        &d.name,
        d.phone.as_deref(),
        d.national_id.as_deref(),
    );
    if let Some((sql, params)) = insert_terms(id, terms) {
        db.execute_later(&sql, params).await?;
    }
    Ok(())
}

/// Every blind-index term a patient is found by, under one key version.
pub(crate) fn search_terms(
    ix: &BlindIndex,
    name: &str,
    phone: Option<&str>,
    national_id: Option<&str>,
) -> Vec<Vec<u8>> {
    let mut terms = blind::name_tokens(ix, name);
    if let Some(p) = phone {
        terms.push(ix.token(TermKind::Phone, &blind::phone_digits(p)));
    }
    if let Some(n) = national_id {
        terms.push(ix.token(TermKind::NationalId, &blind::national_id_norm(n)));
    }
    terms.sort();
    terms.dedup();
    terms
}

/// The statement storing a patient's terms; `None` when there are none (a
/// name with no word in it, no phone, no national id: nothing to find the
/// patient by but browsing).
pub(crate) fn insert_terms(id: &str, terms: Vec<Vec<u8>>) -> Option<(String, Vec<Value>)> {
    if terms.is_empty() {
        return None;
    }
    let mut sql = String::from("INSERT INTO patient_terms (term, patient_id) VALUES ");
    let mut params: Vec<Value> = vec![id.into()];
    for (i, t) in terms.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        params.push(t.into());
        sql.push_str(&format!("(?{}, ?1)", params.len()));
    }
    Some((sql, params))
}

pub(crate) async fn create<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let d = ctx.json::<Demographics>()?.validated(ctx.now)?;
    let id = ctx.new_id(kind::PATIENT);
    store(ctx, &id, &d, true).await?;
    ctx.audit.resource = Some(format!("patient/{id}"));
    ctx.audit.patient_id = Some(id.clone());
    Reply::created(load(ctx, &id).await?)
}

/// Sets the audit resource of a route on one patient, then checks the id.
fn patient_id<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<String> {
    let id = ctx.path_id(kind::PATIENT)?;
    ctx.audit.resource = Some(format!("patient/{id}"));
    ctx.audit.patient_id = Some(id.clone());
    Ok(id)
}

pub(crate) async fn get<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = patient_id(ctx)?;
    Reply::ok(load(ctx, &id).await?)
}

pub(crate) async fn update<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = patient_id(ctx)?;
    let patch: PatientPatch = ctx.json()?;
    let (name, dob) = (not_null("name", patch.name)?, not_null("dob", patch.dob)?);
    let current = load(ctx, &id).await?.data;
    let merge = |p: Option<Option<String>>, old: Option<String>| p.unwrap_or(old);
    let d = Demographics {
        name: name.unwrap_or(current.name),
        dob: dob.unwrap_or(current.dob),
        sex: merge(patch.sex, current.sex),
        phone: merge(patch.phone, current.phone),
        email: merge(patch.email, current.email),
        address: merge(patch.address, current.address),
        national_id: merge(patch.national_id, current.national_id),
    }
    .validated(ctx.now)?;
    store(ctx, &id, &d, false).await?;
    Reply::ok(load(ctx, &id).await?)
}

pub(crate) async fn delete<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = patient_id(ctx)?;
    let purge_after = ctx.now + GRACE_SECS;
    let n = ctx
        .db()?
        .execute(
            "UPDATE patients SET deleted_at = ?2, purge_after = ?3 WHERE id = ?1 AND deleted_at IS NULL",
            vec![id.into(), ctx.now.into(), purge_after.into()],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found());
    }
    Reply::with(
        http::StatusCode::ACCEPTED,
        super::clinic_data::Deletion::at(purge_after),
    )
}

pub(crate) async fn restore<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = patient_id(ctx)?;
    let n = ctx
        .db()?
        .execute(
            "UPDATE patients SET deleted_at = NULL, purge_after = NULL \
             WHERE id = ?1 AND deleted_at IS NOT NULL AND purge_after > ?2",
            vec![id.clone().into(), ctx.now.into()],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found());
    }
    Reply::ok(load(ctx, &id).await?)
}

pub(crate) async fn list<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let q = ctx.query(LIST_QUERY)?;
    let limit = q.limit()?;
    let after = q.cursor()?.unwrap_or(0);
    ctx.audit.resource = Some("patients".into());
    let search = q.get("q").map(str::trim).filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > 100) {
        return Err(ApiError::invalid("q", "at most 100 characters"));
    }
    let mut params: Vec<Value> = vec![after.into(), (limit + 1).into()];
    let filter = match search {
        None => String::new(),
        Some(s) => {
            let mut alternatives = Vec::new();
            let mut exact = Vec::new();
            // One patient's terms are all under one key version (a write
            // stores them together), so each version is asked on its own.
            for ix in &ctx.keys()?.search {
                let mut words: Vec<Vec<u8>> = blind::name_words(s)
                    .iter()
                    .map(|w| blind::query_word_token(ix, w))
                    .collect();
                words.sort();
                words.dedup();
                if !words.is_empty() {
                    let n = words.len();
                    let marks = placeholders(&mut params, words);
                    alternatives.push(format!(
                        "SELECT patient_id FROM patient_terms WHERE term IN ({marks}) GROUP BY patient_id HAVING COUNT(*) = {n}"
                    ));
                }
                let digits = blind::phone_digits(s);
                if digits.len() >= 5
                    && s.chars()
                        .all(|c| c.is_ascii_digit() || " -+().".contains(c))
                {
                    exact.push(ix.token(TermKind::Phone, &digits));
                }
                let nid = blind::national_id_norm(s);
                if nid.len() >= 4 && nid.chars().all(|c| c.is_ascii_alphanumeric()) {
                    exact.push(ix.token(TermKind::NationalId, &nid));
                }
            }
            if !exact.is_empty() {
                let marks = placeholders(&mut params, exact);
                alternatives.push(format!(
                    "SELECT patient_id FROM patient_terms WHERE term IN ({marks})"
                ));
            }
            if alternatives.is_empty() {
                return Reply::ok(Page::<PatientView>::new(Vec::new(), limit, |p| p.seq));
            }
            format!(" AND id IN ({})", alternatives.join(" UNION "))
        }
    };
    let rows = ctx
        .db()?
        .query(
            &format!("SELECT {COLUMNS} FROM patients WHERE deleted_at IS NULL AND seq > ?1{filter} ORDER BY seq LIMIT ?2"),
            params,
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| view(ctx, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(Page::new(items, limit, |p| p.seq))
}

fn placeholders(params: &mut Vec<Value>, values: Vec<Vec<u8>>) -> String {
    values
        .into_iter()
        .map(|v| {
            params.push(v.into());
            format!("?{}", params.len())
        })
        .collect::<Vec<_>>()
        .join(",")
}
