//! How each of the clinic's records is shown as a FHIR R4 resource: one
//! function per type, from what the records already decrypted. Only what
//! the record holds is said; nothing is invented to fill a field (a
//! condition without an ICD-10 code has `code.text` alone).
//!
//! Mappings decided here:
//! - `Patient.name`: the one name the clinic keeps, as `text`, with its
//!   last word as `family` and the others as `given` (how the region's
//!   names are written); the national id as an `NI` identifier with the
//!   region's system (`regions.toml`).
//! - `Appointment.status`: `completed` is `fulfilled`, `no_show` `noshow`.
//! - `Encounter`: a visit is an appointment the patient arrived for
//!   (`arrived`: `in-progress`, `completed`: `finished`), same id, class
//!   `AMB`.
//! - `Observation`: one set of vital signs is one Observation (LOINC
//!   85353-1, the vital signs panel) with a component per measurement,
//!   each LOINC-coded with its UCUM unit.
//! - `MedicationRequest`: `status` `active`, `intent` `order` (a clinic's
//!   prescription); dose, route, frequency and duration as the dosage's
//!   text, the route also as `route.text`.

use serde_json::{json, Map, Value as Json};

use crate::records::appointments::AppointmentView;
use crate::records::patients::PatientView;

use super::{fhir_id, reference};

const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";

/// Drops `null` members, so that absent facts are absent.
fn compact(mut v: Json) -> Json {
    if let Json::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

fn text(v: &Json, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

/// `Patient`.
pub(crate) fn patient(p: &PatientView, national_id_system: Option<&str>) -> Json {
    let d = &p.data;
    let words: Vec<&str> = d.name.split_whitespace().collect();
    let name = match words.split_last() {
        Some((family, given)) if !given.is_empty() => {
            json!({"use": "official", "text": d.name, "family": family, "given": given})
        }
        _ => json!({"use": "official", "text": d.name}),
    };
    let identifier = d.national_id.as_ref().map(|n| {
        let mut i = json!({
            "use": "official",
            "type": {"coding": [{"system": V2_0203, "code": "NI", "display": "National unique individual identifier"}]},
            "value": n,
        });
        if let Some(s) = national_id_system {
            i["system"] = json!(s);
        }
        json!([i])
    });
    let mut telecom = Vec::new();
    if let Some(ph) = &d.phone {
        telecom.push(json!({"system": "phone", "value": ph}));
    }
    if let Some(e) = &d.email {
        telecom.push(json!({"system": "email", "value": e}));
    }
    compact(json!({
        "resourceType": "Patient",
        "id": fhir_id(&p.id),
        "meta": {"lastUpdated": p.updated_at},
        "identifier": identifier,
        "active": true,
        "name": [name],
        "telecom": if telecom.is_empty() { Json::Null } else { Json::Array(telecom) },
        "gender": d.sex.as_deref().map(|s| match s {
            "female" | "male" | "other" => s,
            _ => "unknown",
        }),
        "birthDate": d.dob,
        "address": d.address.as_ref().map(|a| json!([{"text": a}])),
    }))
}

/// `Practitioner`: a clinic user who sees patients.
pub(crate) fn practitioner(id: &str, name: &str, active: bool) -> Json {
    json!({
        "resourceType": "Practitioner",
        "id": fhir_id(id),
        "active": active,
        "name": [{"text": name}],
    })
}

/// `Condition`, from a condition entry.
pub(crate) fn condition(e: &Json) -> Json {
    let status = text(e, "status").unwrap_or_else(|| "active".into());
    let mut code = json!({"text": e["display"]});
    if let Some(c) = text(e, "code") {
        code["coding"] = json!([{"system": ICD10, "code": c}]);
    }
    compact(json!({
        "resourceType": "Condition",
        "id": fhir_id(e["id"].as_str().unwrap_or_default()),
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": if status == "resolved" { "resolved" } else { "active" },
        }]},
        "code": code,
        "subject": reference("Patient", e["patient_id"].as_str().unwrap_or_default()),
        "onsetDateTime": e["onset"],
        "recordedDate": e["created_at"],
        "recorder": reference("Practitioner", e["author_id"].as_str().unwrap_or_default()),
    }))
}

/// `AllergyIntolerance`, from an allergy entry.
pub(crate) fn allergy(e: &Json) -> Json {
    let mut code = json!({"text": e["substance"]});
    if let Some(c) = text(e, "code") {
        code["coding"] = json!([{"code": c}]);
    }
    let reaction = text(e, "reaction").map(|r| {
        json!([compact(json!({
            "manifestation": [{"text": r}],
            "severity": e["severity"],
        }))])
    });
    compact(json!({
        "resourceType": "AllergyIntolerance",
        "id": fhir_id(e["id"].as_str().unwrap_or_default()),
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active",
        }]},
        "code": code,
        "patient": reference("Patient", e["patient_id"].as_str().unwrap_or_default()),
        "recordedDate": e["created_at"],
        "recorder": reference("Practitioner", e["author_id"].as_str().unwrap_or_default()),
        "reaction": reaction,
    }))
}

/// Each measurement of a set of vital signs: its field, LOINC code and
/// display, UCUM unit.
const VITALS: &[(&str, &str, &str, &str)] = &[
    ("systolic", "8480-6", "Systolic blood pressure", "mm[Hg]"),
    ("diastolic", "8462-4", "Diastolic blood pressure", "mm[Hg]"),
    ("pulse", "8867-4", "Heart rate", "/min"),
    ("temperature_c", "8310-5", "Body temperature", "Cel"),
    ("weight_kg", "29463-7", "Body weight", "kg"),
    ("height_cm", "8302-2", "Body height", "cm"),
    (
        "spo2",
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        "%",
    ),
];

/// `Observation` (vital signs), from a vitals entry.
pub(crate) fn vitals(e: &Json) -> Json {
    let components: Vec<Json> = VITALS
        .iter()
        .filter_map(|(field, code, display, unit)| {
            let value = e[*field].as_f64()?;
            Some(json!({
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }))
        })
        .collect();
    json!({
        "resourceType": "Observation",
        "id": fhir_id(e["id"].as_str().unwrap_or_default()),
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }]}],
        "code": {"coding": [{"system": LOINC, "code": "85353-1", "display": "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel"}], "text": "Vital signs"},
        "subject": reference("Patient", e["patient_id"].as_str().unwrap_or_default()),
        "effectiveDateTime": e["at"],
        "issued": e["created_at"],
        "performer": [reference("Practitioner", e["author_id"].as_str().unwrap_or_default())],
        "component": components,
    })
}

/// `MedicationRequest`, from a prescription entry.
pub(crate) fn prescription(e: &Json) -> Json {
    let parts: Vec<String> = ["dose", "route", "frequency", "duration"]
        .iter()
        .filter_map(|k| text(e, k))
        .collect();
    let mut dosage = Map::new();
    dosage.insert("text".into(), json!(parts.join(", ")));
    if let Some(r) = text(e, "route") {
        dosage.insert("route".into(), json!({"text": r}));
    }
    compact(json!({
        "resourceType": "MedicationRequest",
        "id": fhir_id(e["id"].as_str().unwrap_or_default()),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": e["drug"]},
        "subject": reference("Patient", e["patient_id"].as_str().unwrap_or_default()),
        "authoredOn": e["created_at"],
        "requester": reference("Practitioner", e["author_id"].as_str().unwrap_or_default()),
        "dosageInstruction": [Json::Object(dosage)],
        "note": text(e, "notes").map(|n| json!([{"text": n}])),
    }))
}

/// The FHIR status of a booking.
fn appointment_status(status: &str) -> &'static str {
    match status {
        "arrived" => "arrived",
        "completed" => "fulfilled",
        "cancelled" => "cancelled",
        "no_show" => "noshow",
        _ => "booked",
    }
}

/// `Appointment`.
pub(crate) fn appointment(a: &AppointmentView) -> Json {
    let mut patient = reference("Patient", &a.patient_id);
    patient["display"] = json!(a.patient_name);
    json!({
        "resourceType": "Appointment",
        "id": fhir_id(&a.id),
        "status": appointment_status(&a.status),
        "start": a.start,
        "end": a.end,
        "participant": [
            {"actor": patient, "status": "accepted"},
            {"actor": reference("Practitioner", &a.practitioner_id), "status": "accepted"},
        ],
    })
}

/// Whether a booking is a visit (an `Encounter`).
pub(crate) fn is_encounter(status: &str) -> bool {
    matches!(status, "arrived" | "completed")
}

/// `Encounter`: the visit of a booking the patient arrived for.
pub(crate) fn encounter(a: &AppointmentView) -> Json {
    let finished = a.status == "completed";
    let period = if finished {
        json!({"start": a.start, "end": a.end})
    } else {
        json!({"start": a.start})
    };
    json!({
        "resourceType": "Encounter",
        "id": fhir_id(&a.id),
        "status": if finished { "finished" } else { "in-progress" },
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "subject": reference("Patient", &a.patient_id),
        "participant": [{"individual": reference("Practitioner", &a.practitioner_id)}],
        "appointment": [reference("Appointment", &a.id)],
        "period": period,
    })
}
