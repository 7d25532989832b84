//! `/fhir/r4/…`: the clinic's record as FHIR R4 ([`crate::fhir`] has the
//! rules, [`crate::fhir::resources`] the mappings). Read and search of each
//! type, and the Bulk Data export of the whole clinic. Who may call which
//! is the route table's: the same permissions, region guard and audit as
//! the API (a receptionist reaches Patient, Practitioner and Appointment,
//! never a clinical type).

use http::StatusCode;
use serde_json::{json, Value as Json};

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::fhir::bulk::{Job, TYPES};
use crate::fhir::{self, capability, resources, Page, Search};
use crate::host::Host;
use crate::ids::kind;
use crate::records::appointments::{self, Filter};
use crate::records::bulk_exports;
use crate::records::clinical::{Clinical, ALLERGIES, CONDITIONS, PRESCRIPTIONS, VITALS};
use crate::records::{patients, users};
use crate::request::{ClinicScope, Payload, Reply, Resource};

type Scope<'s, 'a, H> = ClinicScope<'s, 'a, H>;

/// A FHIR resource as the answer.
fn resource(r: Json) -> ApiResult<Reply> {
    Reply::ok(r)
}

/// The public base of this region's FHIR face, where known.
fn base<H: Host>(s: &Scope<'_, '_, H>) -> Option<String> {
    fhir::base_url(s.app.config.region.url.as_deref())
}

/// The search of this request: its query string, or (`POST _search`) its
/// form body.
fn search<H: Host>(s: &Scope<'_, '_, H>, kind: &str) -> ApiResult<Search> {
    let raw = if s.method == http::Method::POST && !s.body.is_empty() {
        let form = s
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(ApiError::new(
                crate::error::Code::UnsupportedMediaType,
                "a search is sent as application/x-www-form-urlencoded",
            ));
        }
        std::str::from_utf8(&s.body)
            .map_err(|_| ApiError::bad_request("the form is not UTF-8"))?
            .to_owned()
    } else {
        s.query.clone().unwrap_or_default()
    };
    Search::parse(
        &raw,
        &capability::names(kind),
        &s.headers,
        &s.vault,
        s.clinic.as_str(),
    )
}

/// The Bundle of one page: `items` holds up to `count + 1` (seq, resource)
/// in order; the extra one says there is a next page.
fn bundle<H: Host>(
    s: &Scope<'_, '_, H>,
    kind: &str,
    q: &Search,
    mut items: Vec<(i64, Json)>,
) -> ApiResult<Reply> {
    let more = items.len() as i64 > q.count;
    items.truncate(q.count as usize);
    let next = if more {
        items.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    let page = Page {
        kind,
        resources: items.into_iter().map(|(_, r)| r).collect(),
        next,
    };
    Reply::ok(fhir::searchset(
        page,
        q,
        base(s).as_deref(),
        &s.vault,
        s.clinic.as_str(),
    ))
}

/// Keeps what passes `keep` from pages of `fetch` until `count + 1` are
/// found or the rows end: a search narrowed after decryption (a birth
/// date) pages the same way as one narrowed in SQL.
async fn filtered<F, Fut>(
    q: &Search,
    mut fetch: F,
    keep: impl Fn(&Json) -> bool,
) -> ApiResult<Vec<(i64, Json)>>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Vec<(i64, Json)>>>,
{
    const BATCH: i64 = 200;
    let mut out = Vec::new();
    let mut after = q.after;
    loop {
        let page = fetch(after).await?;
        let full = page.len() as i64 == BATCH;
        for (seq, r) in page {
            after = seq;
            if keep(&r) {
                out.push((seq, r));
                if out.len() as i64 > q.count {
                    return Ok(out);
                }
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

/// `birthdate=` against a resource's `birthDate`.
fn date_matches(value: Option<&str>, filter: Option<&(String, i64)>) -> bool {
    let Some((prefix, day)) = filter else {
        return true;
    };
    let Some(d) = value.and_then(clock::parse_date).map(clock::unix_of_date) else {
        return false;
    };
    match prefix.as_str() {
        "eq" => d == *day,
        "ne" => d != *day,
        "gt" => d > *day,
        "lt" => d < *day,
        "ge" => d >= *day,
        "le" => d <= *day,
        _ => false,
    }
}

/// The name words of a `name=` search: each must begin a word of the name.
fn name_matches(name: &str, words: &[String]) -> bool {
    let have: Vec<String> = crate::validate::nfkc(name)
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    words
        .iter()
        .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
}

// ---- Patient ----

/// `GET /fhir/r4/Patient/{id}`.
pub(crate) async fn patient_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let id = fhir::api_id(kind::PATIENT, s.params.first().map_or("", String::as_str))?;
    s.audit.about(Resource::Patient(&id));
    let p = patients::load(s.db, &s.vault, &id).await?;
    resource(resources::patient(
        &p,
        fhir::national_id_system(&s.app.config.region.id).as_deref(),
    ))
}

/// `GET /fhir/r4/Patient` and `POST /fhir/r4/Patient/_search`: by `name`
/// (every word, whole or a prefix), `identifier` (the national id),
/// `birthdate`.
pub(crate) async fn patient_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let q = search(s, "Patient")?;
    s.audit.about(Resource::Patients);
    let birth = q
        .get("birthdate")
        .map(|b| fhir::date_param("birthdate", b).map(|(p, d)| (p.into_owned(), d)))
        .transpose()?;
    let words: Vec<String> = q
        .get("name")
        .map(|n| {
            crate::validate::nfkc(n)
                .to_lowercase()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if q.get("name").is_some() && words.is_empty() {
        return Err(ApiError::invalid("name", "no word to search for"));
    }
    let identifier = q
        .get("identifier")
        .map(|i| i.rsplit('|').next().unwrap_or(i).to_owned());
    let system = fhir::national_id_system(&s.app.config.region.id);
    let (db, v) = (s.db, s.vault);
    let show = |p: &patients::PatientView| (p.seq, resources::patient(p, system.as_deref()));
    let items = filtered(
        &q,
        |after| {
            let (words, identifier) = (&words, &identifier);
            async move {
                let page = match (identifier, words.is_empty()) {
                    (Some(nid), _) => patients::by_national_id(db, &v, nid, after, 200).await?,
                    (None, false) => {
                        patients::page(db, &v, Some(&words.join(" ")), after, 200).await?
                    }
                    (None, true) => patients::page(db, &v, None, after, 200).await?,
                };
                Ok(page.iter().map(show).collect())
            }
        },
        |r| {
            let name = r["name"][0]["text"].as_str().unwrap_or_default();
            (words.is_empty() || name_matches(name, &words))
                && date_matches(r["birthDate"].as_str(), birth.as_ref())
        },
    )
    .await?;
    bundle(s, "Patient", &q, items)
}

// ---- Practitioner ----

/// `GET /fhir/r4/Practitioner/{id}`: a clinic user who sees patients.
pub(crate) async fn practitioner_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let id = fhir::api_id(kind::USER, s.params.first().map_or("", String::as_str))?;
    s.audit.about(Resource::User(&id));
    let found = users::practitioners_all(s.db, &s.vault)
        .await?
        .into_iter()
        .find(|(_, u)| u.id == id)
        .ok_or_else(ApiError::not_found)?;
    let u = found.1;
    resource(resources::practitioner(&u.id, &u.name, u.active))
}

/// `GET /fhir/r4/Practitioner`: by `name`.
pub(crate) async fn practitioner_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let q = search(s, "Practitioner")?;
    s.audit.about(Resource::Practitioners);
    let words: Vec<String> = q
        .get("name")
        .map(|n| {
            n.to_lowercase()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let items: Vec<(i64, Json)> = users::practitioners_all(s.db, &s.vault)
        .await?
        .into_iter()
        .filter(|(seq, u)| *seq > q.after && name_matches(&u.name, &words))
        .take(q.count as usize + 1)
        .map(|(seq, u)| (seq, resources::practitioner(&u.id, &u.name, u.active)))
        .collect();
    bundle(s, "Practitioner", &q, items)
}

// ---- Clinical types ----

/// A clinical type's entry by id.
async fn clinical_read<H: Host>(
    s: &mut Scope<'_, '_, H>,
    table: &Clinical,
    map: fn(&Json) -> Json,
) -> ApiResult<Reply> {
    let id = fhir::api_id(table.id_prefix, s.params.first().map_or("", String::as_str))?;
    s.audit.about(Resource::ClinicalEntry(table.noun, &id));
    let (patient, entry) = table
        .get(s.db, &s.vault, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    s.audit.patient(&patient);
    resource(map(&entry))
}

/// A clinical type's entries, of one `patient` or of the whole clinic.
async fn clinical_search<H: Host>(
    s: &mut Scope<'_, '_, H>,
    kind: &str,
    table: &Clinical,
    map: fn(&Json) -> Json,
) -> ApiResult<Reply> {
    let q = search(s, kind)?;
    let patient = q.get("patient").map(fhir::patient_param).transpose()?;
    match &patient {
        Some(p) => s.audit.about(Resource::PatientRecords(p, table.table.name)),
        None => s.audit.about(Resource::ClinicalEntries(table.table.name)),
    }
    let items = table
        .page_all(s.db, &s.vault, patient.as_deref(), q.after, q.count + 1)
        .await?
        .into_iter()
        .map(|(seq, e)| (seq, map(&e)))
        .collect();
    bundle(s, kind, &q, items)
}

/// `GET /fhir/r4/Condition/{id}`.
pub(crate) async fn condition_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_read(s, &CONDITIONS, resources::condition).await
}
/// `GET /fhir/r4/Condition`.
pub(crate) async fn condition_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_search(s, "Condition", &CONDITIONS, resources::condition).await
}
/// `GET /fhir/r4/AllergyIntolerance/{id}`.
pub(crate) async fn allergy_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_read(s, &ALLERGIES, resources::allergy).await
}
/// `GET /fhir/r4/AllergyIntolerance`.
pub(crate) async fn allergy_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_search(s, "AllergyIntolerance", &ALLERGIES, resources::allergy).await
}
/// `GET /fhir/r4/Observation/{id}`.
pub(crate) async fn observation_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_read(s, &VITALS, resources::vitals).await
}
/// `GET /fhir/r4/Observation`.
pub(crate) async fn observation_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_search(s, "Observation", &VITALS, resources::vitals).await
}
/// `GET /fhir/r4/MedicationRequest/{id}`.
pub(crate) async fn medication_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_read(s, &PRESCRIPTIONS, resources::prescription).await
}
/// `GET /fhir/r4/MedicationRequest`.
pub(crate) async fn medication_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    clinical_search(
        s,
        "MedicationRequest",
        &PRESCRIPTIONS,
        resources::prescription,
    )
    .await
}

// ---- Appointment, Encounter ----

/// The booking of the path; for an Encounter, only a visit.
async fn booking<H: Host>(
    s: &mut Scope<'_, '_, H>,
    visit: bool,
) -> ApiResult<appointments::AppointmentView> {
    let id = fhir::api_id(
        kind::APPOINTMENT,
        s.params.first().map_or("", String::as_str),
    )?;
    s.audit.about(Resource::Appointment(&id));
    let a = appointments::load(s.db, &s.vault, &id).await?;
    s.audit.patient(&a.patient_id);
    if visit && !resources::is_encounter(&a.status) {
        return Err(ApiError::not_found());
    }
    Ok(a)
}

/// `date=`: a day, or a bound with its prefix, on the start time.
fn date_filter(f: &mut Filter<'_>, value: Option<&str>) -> ApiResult<()> {
    let Some(v) = value else {
        return Ok(());
    };
    let (prefix, day) = fhir::date_param("date", v)?;
    let next = day + clock::DAY;
    match prefix.as_ref() {
        "eq" => {
            f.from = Some(day);
            f.until = Some(next);
        }
        "ge" => f.from = Some(day),
        "gt" => f.from = Some(next),
        "lt" => f.until = Some(day),
        "le" => f.until = Some(next),
        _ => return Err(ApiError::invalid("date", "ne is not supported for date")),
    }
    Ok(())
}

async fn booking_search<H: Host>(s: &mut Scope<'_, '_, H>, kind: &str) -> ApiResult<Reply> {
    let q = search(s, kind)?;
    let visits = kind == "Encounter";
    let patient = q.get("patient").map(fhir::patient_param).transpose()?;
    let practitioner = q
        .get("practitioner")
        .map(|p| {
            fhir::api_id(kind::USER, p.strip_prefix("Practitioner/").unwrap_or(p))
                .map_err(|_| ApiError::invalid("practitioner", "not a practitioner of this clinic"))
        })
        .transpose()?;
    match &patient {
        Some(p) => s.audit.patient(p),
        None => s.audit.about(Resource::Appointments),
    }
    let mut f = Filter {
        patient: patient.as_deref(),
        practitioner: practitioner.as_deref(),
        visits,
        ..Filter::default()
    };
    date_filter(&mut f, q.get("date"))?;
    let items = appointments::search(s.db, &s.vault, &f, q.after, q.count + 1)
        .await?
        .into_iter()
        .map(|(seq, a)| {
            let r = if visits {
                resources::encounter(&a)
            } else {
                resources::appointment(&a)
            };
            (seq, r)
        })
        .collect();
    bundle(s, kind, &q, items)
}

/// `GET /fhir/r4/Appointment/{id}`.
pub(crate) async fn appointment_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let a = booking(s, false).await?;
    resource(resources::appointment(&a))
}
/// `GET /fhir/r4/Appointment`: by `patient`, `practitioner`, `date`.
pub(crate) async fn appointment_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    booking_search(s, "Appointment").await
}
/// `GET /fhir/r4/Encounter/{id}`.
pub(crate) async fn encounter_read<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let a = booking(s, true).await?;
    resource(resources::encounter(&a))
}
/// `GET /fhir/r4/Encounter`: by `patient`, `date`.
pub(crate) async fn encounter_search<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    booking_search(s, "Encounter").await
}

// ---- Bulk Data export ----

/// `GET /fhir/r4/$export` with `Prefer: respond-async`: the whole clinic,
/// every type or those of `_type`. The files are written after this
/// request's audit entry commits and before its 202 answers
/// ([`crate::fhir::bulk`]).
pub(crate) async fn export_start<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let prefer_async = s
        .headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    if !prefer_async {
        return Err(ApiError::invalid(
            "Prefer",
            "a bulk export is asynchronous: send Prefer: respond-async",
        ));
    }
    let mut types: Vec<&'static str> = TYPES.to_vec();
    let raw = s.query.clone().unwrap_or_default();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        match k.as_ref() {
            "_type" => {
                let asked: Vec<&str> = v.split(',').map(str::trim).collect();
                if asked.iter().any(|t| !TYPES.contains(t)) {
                    return Err(ApiError::invalid(
                        "_type",
                        "a type this server does not export (Patient, Practitioner, Condition, AllergyIntolerance, Observation, MedicationRequest, Appointment, Encounter)",
                    ));
                }
                types.retain(|t| asked.contains(t));
            }
            "_outputFormat"
                if !matches!(
                    v.as_ref(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) =>
            {
                return Err(ApiError::invalid("_outputFormat", "only NDJSON is served"));
            }
            "_since" => {
                return Err(ApiError::invalid(
                    "_since",
                    "not supported: every export is the whole clinic",
                ))
            }
            _ => {}
        }
    }
    // Each export is a copy of the whole record for an hour: a few at once.
    let (live, first_expiry) = bulk_exports::live(s.db, s.now).await?;
    if live >= bulk_exports::MAX_LIVE {
        return Err(ApiError::rate_limited(
            first_expiry.map_or(bulk_exports::LIFETIME_SECS, |t| t - s.now),
        ));
    }
    let id = s.new_id(kind::BULK_EXPORT);
    s.audit.about(Resource::BulkExport(&id));
    let base = base(s).unwrap_or_else(|| fhir::BASE.to_owned());
    let request = match s.query.as_deref() {
        Some(q) if !q.is_empty() => format!("{base}/$export?{q}"),
        _ => format!("{base}/$export"),
    };
    bulk_exports::start(s.db, &id, s.actor.id(), &request, s.now).await?;
    let job = Job {
        status_url: format!("{base}/$export-status/{}", fhir::fhir_id(&id)),
        id,
        types,
        national_id_system: fhir::national_id_system(&s.app.config.region.id),
    };
    Ok(Reply {
        status: StatusCode::ACCEPTED,
        body: Payload::BulkExport(job),
        headers: Vec::new(),
    })
}

/// The export `id`, not expired, of the user who asked for it (another
/// owner of the clinic finds nothing: the files are the requester's, as
/// Bulk Data's `requiresAccessToken` means).
async fn mine<H: Host>(s: &mut Scope<'_, '_, H>, id: &str) -> ApiResult<bulk_exports::Export> {
    s.audit.about(Resource::BulkExport(id));
    bulk_exports::load(s.db, id, s.now)
        .await?
        .filter(|e| e.requested_by == s.actor.id())
        .ok_or_else(ApiError::not_found)
}

/// The export of the path.
async fn export_of<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<bulk_exports::Export> {
    let id = fhir::api_id(
        kind::BULK_EXPORT,
        s.params.first().map_or("", String::as_str),
    )?;
    mine(s, &id).await
}

/// `GET /fhir/r4/$export-status/{id}`: 202 while running, then the
/// manifest; an export that failed is a 500 `OperationOutcome`.
pub(crate) async fn export_status<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let e = export_of(s).await?;
    match e.status.as_str() {
        "running" => Ok(Reply {
            status: StatusCode::ACCEPTED,
            body: Payload::Empty,
            headers: vec![("x-progress", "writing the files".to_owned())],
        }),
        "failed" => Err(ApiError::internal("the export failed; start another")),
        _ => {
            let base = base(s).unwrap_or_else(|| fhir::BASE.to_owned());
            let output: Vec<Json> = e
                .files
                .iter()
                .map(|(t, count)| {
                    json!({
                        "type": t,
                        "url": format!("{base}/$export-file/{}.{t}", fhir::fhir_id(&e.id)),
                        "count": count,
                    })
                })
                .collect();
            Ok(Reply {
                status: StatusCode::OK,
                body: Payload::Json(json!({
                    "transactionTime": clock::rfc3339(e.created_at),
                    "request": e.request,
                    "requiresAccessToken": true,
                    "output": output,
                    "error": [],
                })),
                // The manifest is plain JSON, as Bulk Data says.
                headers: vec![
                    ("expires", http_date(e.expires_at)),
                    ("content-type", "application/json".to_owned()),
                ],
            })
        }
    }
}

/// An HTTP date (`Expires`).
fn http_date(unix: i64) -> String {
    use time::macros::format_description;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// `DELETE /fhir/r4/$export-status/{id}`: the export and its files, gone.
pub(crate) async fn export_delete<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let e = export_of(s).await?;
    bulk_exports::remove(s.db, &e.id).await?;
    Ok(Reply {
        status: StatusCode::ACCEPTED,
        body: Payload::Empty,
        headers: Vec::new(),
    })
}

/// `GET /fhir/r4/$export-file/{id}` (`<export>.<Type>`): one file, NDJSON,
/// streamed after this request's audit entry commits.
pub(crate) async fn export_file<H: Host>(s: &mut Scope<'_, '_, H>) -> ApiResult<Reply> {
    let raw = s.params.first().cloned().unwrap_or_default();
    let (export, kind) = raw.split_once('.').ok_or_else(ApiError::not_found)?;
    let kind = TYPES
        .iter()
        .find(|t| **t == kind)
        .copied()
        .ok_or_else(ApiError::not_found)?;
    let id = fhir::api_id(kind::BULK_EXPORT, export)?;
    let e = mine(s, &id).await?;
    if e.status != "complete" || !e.files.iter().any(|(t, _)| t == kind) {
        return Err(ApiError::not_found());
    }
    Ok(Reply {
        status: StatusCode::OK,
        body: Payload::FhirFile { export: e.id, kind },
        headers: Vec::new(),
    })
}
