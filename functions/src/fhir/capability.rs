//! The `CapabilityStatement` (`GET /fhir/r4/metadata`), derived from the
//! route table's `/fhir/r4/…` rows (which types can be read, which
//! searched, which operations exist) and from [`PARAMS`] (each type's
//! search parameters, which the handlers also parse by): what is served
//! and what is said are one fact.

use serde_json::{json, Value as Json};

use crate::route::Route;

use super::{BASE, CONTENT_TYPE, VERSION};

/// A search parameter of a type: name, FHIR parameter type, what it does.
pub(crate) type Param = (&'static str, &'static str, &'static str);

const PATIENT_REF: Param = (
    "patient",
    "reference",
    "The patient (Patient/pat-… or pat-…)",
);

/// Each type's search parameters (besides `_count`).
pub(crate) const PARAMS: &[(&str, &[Param])] = &[
    (
        "Patient",
        &[
            (
                "name",
                "string",
                "Every word of the name, whole or a prefix of 3 or more letters",
            ),
            ("identifier", "token", "The national id ([system|]value)"),
            (
                "birthdate",
                "date",
                "Date of birth (eq, ne, lt, le, gt, ge)",
            ),
        ],
    ),
    ("Practitioner", &[("name", "string", "A word of the name")]),
    ("Condition", &[PATIENT_REF]),
    ("AllergyIntolerance", &[PATIENT_REF]),
    ("Observation", &[PATIENT_REF]),
    ("MedicationRequest", &[PATIENT_REF]),
    (
        "Appointment",
        &[
            PATIENT_REF,
            (
                "practitioner",
                "reference",
                "The practitioner (Practitioner/usr-…)",
            ),
            (
                "date",
                "date",
                "The day the appointment starts (eq, lt, le, gt, ge)",
            ),
        ],
    ),
    (
        "Encounter",
        &[
            PATIENT_REF,
            (
                "date",
                "date",
                "The day the visit starts (eq, lt, le, gt, ge)",
            ),
        ],
    ),
];

/// The search parameters of `kind`.
pub(crate) fn params(kind: &str) -> &'static [Param] {
    PARAMS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| *p)
        .unwrap_or(&[])
}

/// Their names, as a search parses them.
pub(crate) fn names(kind: &str) -> Vec<&'static str> {
    params(kind).iter().map(|(n, _, _)| *n).collect()
}

/// The statement of the routes under [`BASE`] among `routes`.
pub(crate) fn statement(routes: &[Route], software_version: &str, date: &str) -> Json {
    let mut resources: Vec<(String, Vec<&str>)> = Vec::new();
    let mut operations = Vec::new();
    for r in routes.iter().filter(|r| r.method == http::Method::GET) {
        let Some(rest) = r.path.strip_prefix(BASE).and_then(|p| p.strip_prefix('/')) else {
            continue;
        };
        if rest == "$export" {
            operations.push(json!({
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                "documentation": "Bulk Data export of the whole clinic (system level), Prefer: respond-async; owners only",
            }));
            continue;
        }
        if rest.starts_with('$') || rest == "metadata" {
            continue;
        }
        let mut parts = rest.split('/');
        let (Some(kind), read) = (parts.next(), parts.next() == Some("{id}")) else {
            continue;
        };
        let code = if read { "read" } else { "search-type" };
        match resources.iter_mut().find(|(k, _)| k == kind) {
            Some((_, i)) => i.push(code),
            None => resources.push((kind.to_owned(), vec![code])),
        }
    }
    let resource: Vec<Json> = resources
        .into_iter()
        .map(|(kind, interactions)| {
            let search: Vec<Json> = params(&kind)
                .iter()
                .map(|(n, t, d)| json!({"name": n, "type": t, "documentation": d}))
                .collect();
            json!({
                "type": kind,
                "interaction": interactions.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "searchParam": search,
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "Amanah", "version": software_version},
        "implementation": {"description": "Amanah clinic records: one clinic per session, encrypted per field, audited per read"},
        "fhirVersion": VERSION,
        "format": ["json", CONTENT_TYPE],
        "rest": [{
            "mode": "server",
            "documentation": "Sign in at /api/v1/auth/login and send the session token as a bearer token (or the session cookie). Everything is scoped to the token's clinic and audited as the API is.",
            "resource": resource,
            "operation": operations,
        }],
    })
}
