//! `/api/v1/patients/{id}/conditions|prescriptions|notes|allergies|vitals`:
//! the clinical record ([`records::clinical`]). The author and time of an entry are the
//! server's. Who may read or write is the route table's business
//! (receptionists never reach these handlers); no other response carries
//! clinical content.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::ids::kind;
use crate::records::clinical::{
    Clinical, NewEntry, ALLERGIES, CONDITIONS, NOTES, PRESCRIPTIONS, VITALS,
};
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAllergy {
    substance: String,
    /// The substance's code, where the clinic codes it (SNOMED CT, RxNorm…).
    code: Option<String>,
    reaction: Option<String>,
    /// `mild`, `moderate` or `severe`: how bad the reaction was (needs one).
    severity: Option<String>,
}

/// A set of vital signs taken at one time; at least one measurement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewVitals {
    /// When they were taken (RFC 3339); now if absent.
    at: Option<String>,
    /// mm Hg, 50–300.
    systolic: Option<f64>,
    /// mm Hg, 20–200.
    diastolic: Option<f64>,
    /// Beats a minute, 20–300.
    pulse: Option<f64>,
    /// °C, 30–45.
    temperature_c: Option<f64>,
    /// kg, 0.2–500.
    weight_kg: Option<f64>,
    /// cm, 20–280.
    height_cm: Option<f64>,
    /// Oxygen saturation, %, 50–100.
    spo2: Option<f64>,
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

impl Entry for NewAllergy {
    fn values(self, _now: i64) -> ApiResult<Vec<Option<String>>> {
        if self.severity.is_some() && self.reaction.is_none() {
            return Err(ApiError::invalid(
                "severity",
                "a severity describes a reaction: give the reaction too",
            ));
        }
        Ok(vec![
            Some(validate::text("substance", &self.substance, 200)?),
            opt(self.code, |s| validate::text("code", s, 40))?,
            opt(self.reaction, |s| validate::text("reaction", s, 500))?,
            opt(self.severity, |s| {
                validate::one_of("severity", s, &["mild", "moderate", "severe"])
            })?,
        ])
    }
}

/// A measurement within its plausible range, kept as its decimal text.
fn measure(field: &str, value: Option<f64>, min: f64, max: f64) -> ApiResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && (min..=max).contains(&v) => {
            // At most one decimal: what a device or a nurse records.
            let v = (v * 10.0).round() / 10.0;
            Ok(Some(format!("{v}")))
        }
        Some(_) => Err(ApiError::invalid(
            field,
            format!("must be between {min} and {max}"),
        )),
    }
}

impl Entry for NewVitals {
    fn values(self, now: i64) -> ApiResult<Vec<Option<String>>> {
        let at = match self.at.as_deref() {
            None => now,
            Some(t) => clock::parse_rfc3339(t)
                .filter(|t| *t <= now + 5 * clock::MINUTE && *t > now - 150 * 365 * clock::DAY)
                .ok_or_else(|| ApiError::invalid("at", "an RFC 3339 time, not in the future"))?,
        };
        let measures = vec![
            measure("systolic", self.systolic, 50.0, 300.0)?,
            measure("diastolic", self.diastolic, 20.0, 200.0)?,
            measure("pulse", self.pulse, 20.0, 300.0)?,
            measure("temperature_c", self.temperature_c, 30.0, 45.0)?,
            measure("weight_kg", self.weight_kg, 0.2, 500.0)?,
            measure("height_cm", self.height_cm, 20.0, 280.0)?,
            measure("spo2", self.spo2, 50.0, 100.0)?,
        ];
        if measures.iter().all(Option::is_none) {
            return Err(ApiError::invalid(
                "systolic",
                "give at least one measurement",
            ));
        }
        let mut values = vec![Some(clock::rfc3339(at))];
        values.extend(measures);
        Ok(values)
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
    one::<NewAllergy>(headers, data, now);
    one::<NewVitals>(headers, data, now);
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

/// `GET /api/v1/patients/{id}/allergies`.
pub(crate) async fn list_allergies<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    list(s, &ALLERGIES).await
}

/// `POST /api/v1/patients/{id}/allergies`.
pub(crate) async fn create_allergy<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    create::<H, NewAllergy>(s, &ALLERGIES).await
}

/// `GET /api/v1/patients/{id}/vitals`.
pub(crate) async fn list_vitals<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    list(s, &VITALS).await
}

/// `POST /api/v1/patients/{id}/vitals`.
pub(crate) async fn create_vitals<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    create::<H, NewVitals>(s, &VITALS).await
}
