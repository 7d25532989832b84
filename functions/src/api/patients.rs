//! `/api/v1/patients`: demographics. What is stored and how it is found is
//! [`records::patients`]; deletion hides a patient at once and keeps them
//! restorable for the grace period.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::kind;
use crate::jobs::purge;
use crate::records::patients;
use crate::request::prefetch::Prefetch;
use crate::request::{ClinicScope, Reply, Resource};
use crate::store::Statement;

use super::{not_null, patch_field, Deletion, Page};

pub(crate) use crate::records::patients::{Demographics, PatientView};

/// `GET /api/v1/patients`: search text and paging.
pub(crate) const LIST_QUERY: &[&str] = &["q", "limit", "cursor"];

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

/// What `GET` and `PATCH` of one patient read: the patient.
pub(crate) fn reads_one(p: &Prefetch<'_>) -> Vec<Statement> {
    p.params
        .first()
        .filter(|id| crate::ids::is_id(kind::PATIENT, id))
        .map(|id| vec![patients::load_query(id)])
        .unwrap_or_default()
}

/// What `GET /api/v1/patients` reads: the page it asks for.
pub(crate) fn reads_list(p: &Prefetch<'_>) -> Vec<Statement> {
    let read = || {
        let q = crate::web::Query::parse(p.query, LIST_QUERY).ok()?;
        let (limit, after) = (q.limit().ok()?, q.cursor().ok()?.unwrap_or(0));
        page_query(p, q.get("q"), limit, after)
    };
    read().into_iter().collect()
}

/// What `POST /api/v1/patients/search` reads: the page it asks for.
pub(crate) fn reads_search(p: &Prefetch<'_>) -> Vec<Statement> {
    let read = || {
        let b: Search = serde_json::from_slice(p.body).ok()?;
        let limit = crate::web::limit(b.limit).ok()?;
        let after = match b.cursor.as_deref() {
            Some(c) => crate::web::decode_cursor(c).ok()?,
            None => 0,
        };
        page_query(p, Some(&b.q), limit, after)
    };
    read().into_iter().collect()
}

/// The query [`found`] makes, where the declaration can build it (a search
/// needs the clinic's blind indexes).
fn page_query(p: &Prefetch<'_>, text: Option<&str>, limit: i64, after: i64) -> Option<Statement> {
    let search = search_text(text);
    let ix = match (search, p.vault) {
        (None, _) => &[][..],
        (Some(_), Some(v)) => v.search(),
        (Some(_), None) => return None,
    };
    patients::page_query(ix, search, after, limit + 1)
}

/// The search a text asks for: none when it is blank.
fn search_text(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// `POST /api/v1/patients`: register a patient.
pub(crate) async fn create<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let d = s.json::<Demographics>()?.validated(s.now)?;
    let id = s.new_id(kind::PATIENT);
    patients::store(s.db, &s.vault, &id, &d, Some(s.actor.id()), s.now).await?;
    s.audit.about(Resource::Patient(&id));
    // The answer is what was written: no read after the write, so the
    // write waits for the commit's batch.
    Reply::created(patients::written(id, d, s.now, s.now))
}

/// The path's patient, named in the audit entry before anything is looked
/// up (a refused or unknown id is on the record too).
fn patient_id<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<String> {
    let id = s.path_id(kind::PATIENT)?;
    s.audit.about(Resource::Patient(&id));
    Ok(id)
}

/// `GET /api/v1/patients/{id}`.
pub(crate) async fn get<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = patient_id(s)?;
    Reply::ok(patients::load(s.db, &s.vault, &id).await?)
}

/// `PATCH /api/v1/patients/{id}`: fields given replace the stored ones.
pub(crate) async fn update<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = patient_id(s)?;
    let patch: PatientPatch = s.json()?;
    let (name, dob) = (not_null("name", patch.name)?, not_null("dob", patch.dob)?);
    let current = patients::load(s.db, &s.vault, &id).await?;
    let current_created_at = current.created;
    let current = current.data;
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
    .validated(s.now)?;
    patients::store(s.db, &s.vault, &id, &d, None, s.now).await?;
    let created = current_created_at;
    Reply::ok(patients::written(id, d, created, s.now))
}

/// `DELETE /api/v1/patients/{id}`: hidden now, purged after the grace.
pub(crate) async fn delete<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = patient_id(s)?;
    let retention = s.app.config.region.retention.as_ref();
    // The last activity counts only where the region keeps records (one
    // more query, so not asked elsewhere).
    let last = match retention {
        Some(_) => patients::last_activity(s.db, &id, s.now)
            .await?
            .ok_or_else(ApiError::not_found)?,
        None => s.now,
    };
    let purge_after = purge::purge_after(s.now, last, retention);
    if !patients::delete(s.db, &id, s.now, purge_after).await? {
        return Err(ApiError::not_found());
    }
    Reply::with(http::StatusCode::ACCEPTED, Deletion::at(purge_after))
}

/// `POST /api/v1/patients/{id}/restore`, until the purge time (the grace
/// period, or the region's retention period: an archived record).
pub(crate) async fn restore<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = patient_id(s)?;
    if !patients::restore(s.db, &id, s.now).await? {
        return Err(ApiError::not_found());
    }
    Reply::ok(patients::load(s.db, &s.vault, &id).await?)
}

/// `GET /api/v1/patients?q=`: a page of patients, or those the text finds.
/// Kept for compatibility: the text sits in the URL, where proxies, traces
/// and browser history keep it; clients use [`search`].
pub(crate) async fn list<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let q = s.query(LIST_QUERY)?;
    let (limit, after) = (q.limit()?, q.cursor()?.unwrap_or(0));
    found(s, q.get("q"), limit, after).await
}

/// The body of `POST /api/v1/patients/search`: what `GET ?q=` takes, out
/// of the URL.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Search {
    /// Name words and prefixes, a phone number or a national id; empty
    /// lists every patient.
    q: String,
    /// 1 to 200; 50 when left out.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `POST /api/v1/patients/search`: the answer of `GET ?q=`, with the
/// search text in the body.
pub(crate) async fn search<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    s.query(&[])?;
    let b = s.json::<Search>()?;
    let limit = crate::web::limit(b.limit)?;
    let after = b
        .cursor
        .as_deref()
        .map(crate::web::decode_cursor)
        .transpose()?;
    found(s, Some(&b.q), limit, after.unwrap_or(0)).await
}

/// A page of the patients `text` finds (every patient when it is blank).
async fn found<H: Host>(
    s: &mut ClinicScope<'_, '_, H>,
    text: Option<&str>,
    limit: i64,
    after: i64,
) -> ApiResult<Reply> {
    s.audit.about(Resource::Patients);
    let search = search_text(text);
    if search.is_some_and(|t| t.chars().count() > patients::MAX_SEARCH) {
        return Err(ApiError::invalid("q", "at most 100 characters"));
    }
    let items = patients::page(s.db, &s.vault, search, after, limit + 1).await?;
    Reply::ok(Page::new(items, limit, |p| p.seq))
}
