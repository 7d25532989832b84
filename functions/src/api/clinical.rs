//! `/api/v1/patients/{id}/conditions|prescriptions|notes`: the clinical
//! record ([`records::clinical`]). The author and time of an entry are the
//! server's. Who may read or write is the route table's business
//! (receptionists never reach these handlers); no other response carries
//! clinical content.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::kind;
use crate::records::clinical::{Clinical, NewEntry, CONDITIONS, NOTES, PRESCRIPTIONS};
use crate::records::patients;
use crate::request::{ClinicScope, Reply, Resource};
use crate::validate;

use super::Page;

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
async fn patient<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<String> {
    let id = s.path_id(kind::PATIENT)?;
    s.audit.patient(&id);
    if !patients::is_live(s.db, &id).await? {
        return Err(ApiError::not_found());
    }
    Ok(id)
}

async fn list<H: Host>(s: &mut ClinicScope<'_, '_, H>, kind: &Clinical) -> ApiResult<Reply> {
    let q = s.query(super::PAGE_QUERY)?;
    let (limit, after) = (q.limit()?, q.cursor()?.unwrap_or(0));
    let patient = patient(s).await?;
    s.audit
        .about(Resource::PatientRecords(&patient, kind.table.name));
    let items = kind
        .page(s.db, &s.vault, &patient, after, limit + 1)
        .await?;
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

async fn create<H: Host, E: Entry>(
    s: &mut ClinicScope<'_, '_, H>,
    kind: &Clinical,
) -> ApiResult<Reply> {
    let patient = patient(s).await?;
    let values = s.json::<E>()?.values(s.now)?;
    let id = s.new_id(kind.id_prefix);
    let entry = NewEntry {
        id: &id,
        patient: &patient,
        author: s.actor.id(),
        now: s.now,
    };
    let view = kind.insert(s.db, &s.vault, entry, &values).await?;
    s.audit.about(Resource::ClinicalEntry(kind.noun, &id));
    Reply::created(view)
}

/// `GET /api/v1/patients/{id}/conditions`.
pub(crate) async fn list_conditions<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    list(s, &CONDITIONS).await
}

/// `POST /api/v1/patients/{id}/conditions`.
pub(crate) async fn create_condition<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    create::<H, NewCondition>(s, &CONDITIONS).await
}

/// `GET /api/v1/patients/{id}/prescriptions`.
pub(crate) async fn list_prescriptions<H: Host>(
    s: &mut ClinicScope<'_, '_, H>,
) -> ApiResult<Reply> {
    list(s, &PRESCRIPTIONS).await
}

/// `POST /api/v1/patients/{id}/prescriptions`.
pub(crate) async fn create_prescription<H: Host>(
    s: &mut ClinicScope<'_, '_, H>,
) -> ApiResult<Reply> {
    create::<H, NewPrescription>(s, &PRESCRIPTIONS).await
}

/// `GET /api/v1/patients/{id}/notes`.
pub(crate) async fn list_notes<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    list(s, &NOTES).await
}

/// `POST /api/v1/patients/{id}/notes`.
pub(crate) async fn create_note<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    create::<H, NewNote>(s, &NOTES).await
}
