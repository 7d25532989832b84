//! The FHIR R4 face (`/fhir/r4`) on every host: every type read and
//! searched, each answer checked by a FHIR validator that is not ours
//! (`fhir.resources`' R4B models, pinned with hashes by `cargo xtask`,
//! which sets `AMANAH_FHIR_VALIDATOR`); other clinics' ids are not found;
//! a receptionist never reaches a clinical type; bad input is an
//! `OperationOutcome`; the bulk export is complete, valid, sealed at rest
//! and gone after its hour.

use std::io::Write;
use std::process::{Command, Stdio};

use amanah_e2e::{Client, Deployment, Method, Resp, PASSWORD};
use serde_json::{json, Value};

const FHIR_JSON: &str = "application/fhir+json";

/// Every type the FHIR face serves.
const TYPES: [&str; 8] = [
    "Patient",
    "Practitioner",
    "Condition",
    "AllergyIntolerance",
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
];

/// Validates every resource with the validator that is not ours; panics
/// with its report when one fails. Without `AMANAH_FHIR_VALIDATOR` (a
/// plain `cargo test`), says so and checks only the resource types.
fn validate(resources: &[Value]) {
    assert!(!resources.is_empty());
    for r in resources {
        assert!(r["resourceType"].is_string(), "{r}");
        required_bindings(r);
    }
    let Ok(python) = std::env::var("AMANAH_FHIR_VALIDATOR") else {
        eprintln!("not validated: AMANAH_FHIR_VALIDATOR is not set (cargo xtask test sets it)");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fhir_validate.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the FHIR validator");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for r in resources {
            writeln!(stdin, "{r}").expect("write to the validator");
        }
    }
    let out = child.wait_with_output().expect("the validator's report");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the FHIR validator refused:\n{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        resources.len(),
        "{report}"
    );
}

/// The codes of the required value sets the resources use. The validator
/// checks structure, cardinality, choice types and primitive formats, not
/// value-set bindings; these are FHIR R4's, as published.
fn required_bindings(r: &Value) {
    let one_of = |v: &Value, allowed: &[&str], what: &str| {
        if let Some(s) = v.as_str() {
            assert!(
                allowed.contains(&s),
                "{what} {s:?} is not in its value set: {r}"
            );
        }
    };
    match r["resourceType"].as_str().unwrap_or_default() {
        "Patient" => one_of(
            &r["gender"],
            &["male", "female", "other", "unknown"],
            "gender",
        ),
        "Observation" => one_of(
            &r["status"],
            &[
                "registered",
                "preliminary",
                "final",
                "amended",
                "corrected",
                "cancelled",
                "entered-in-error",
                "unknown",
            ],
            "status",
        ),
        "Encounter" => one_of(
            &r["status"],
            &[
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            ],
            "status",
        ),
        "Appointment" => one_of(
            &r["status"],
            &[
                "proposed",
                "pending",
                "booked",
                "arrived",
                "fulfilled",
                "cancelled",
                "noshow",
                "entered-in-error",
                "checked-in",
                "waitlist",
            ],
            "status",
        ),
        "MedicationRequest" => {
            one_of(
                &r["status"],
                &[
                    "active",
                    "on-hold",
                    "cancelled",
                    "completed",
                    "entered-in-error",
                    "stopped",
                    "draft",
                    "unknown",
                ],
                "status",
            );
            one_of(
                &r["intent"],
                &[
                    "proposal",
                    "plan",
                    "order",
                    "original-order",
                    "reflex-order",
                    "filler-order",
                    "instance-order",
                    "option",
                ],
                "intent",
            );
        }
        "Condition" => one_of(
            &r["clinicalStatus"]["coding"][0]["code"],
            &[
                "active",
                "recurrence",
                "relapse",
                "inactive",
                "remission",
                "resolved",
            ],
            "clinicalStatus",
        ),
        "AllergyIntolerance" => {
            one_of(
                &r["clinicalStatus"]["coding"][0]["code"],
                &["active", "inactive", "resolved"],
                "clinicalStatus",
            );
            for reaction in r["reaction"].as_array().into_iter().flatten() {
                one_of(
                    &reaction["severity"],
                    &["mild", "moderate", "severe"],
                    "severity",
                );
            }
        }
        "Bundle" => {
            for e in r["entry"].as_array().into_iter().flatten() {
                required_bindings(&e["resource"]);
            }
        }
        _ => {}
    }
}

fn fid(id: &str) -> String {
    id.replacen('_', "-", 1)
}

/// A FHIR answer: status and media type checked.
fn fhir_ok(r: &Resp, kind: &str) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with(FHIR_JSON)),
        "{:?}",
        r.header("content-type")
    );
    assert_eq!(r.body["resourceType"], kind, "{}", r.body);
    r.body.clone()
}

/// An `OperationOutcome` with `status` and issue `code`.
fn outcome(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["resourceType"], "OperationOutcome", "{}", r.body);
    assert_eq!(r.body["issue"][0]["code"], code, "{}", r.body);
    r.body.clone()
}

/// The resources of a searchset Bundle.
fn entries(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["type"], "searchset", "{bundle}");
    bundle["entry"]
        .as_array()
        .expect("entry")
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

/// The path (and query) of a Bundle link, for this client.
fn link_path(bundle: &Value, relation: &str) -> Option<String> {
    let url = bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)?["url"]
        .as_str()?
        .to_owned();
    Some(match url.find("/fhir/r4/") {
        Some(i) => url[i..].to_owned(),
        None => url,
    })
}

/// A clinic with one patient's whole record; (patient id, ids by type).
struct Seeded {
    patient: String,
    condition: String,
    prescription: String,
    allergy: String,
    vitals: String,
    appointment: String,
}

fn seed(owner: &Client, practitioner: &str, name: &str, nid: &str) -> Seeded {
    let patient = owner.create_patient(json!({
        "name": name, "dob": "1985-05-05", "sex": "female", "phone": "0300 4445566",
        "national_id": nid, "address": "House 1, Street 2, Lahore",
    }));
    let p = format!("/api/v1/patients/{patient}");
    let made = |path: &str, body: Value| {
        let r = owner.post_once(&format!("{p}/{path}"), body);
        assert_eq!(r.status, 201, "{path}: {}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    };
    let condition = made(
        "conditions",
        json!({"display": "Asthma", "code": "J45.9", "onset": "2010-01-01", "status": "active"}),
    );
    let prescription = made(
        "prescriptions",
        json!({"drug": "Salbutamol", "dose": "100 mcg", "route": "inhaled", "frequency": "as needed", "notes": "with a spacer"}),
    );
    let allergy = made(
        "allergies",
        json!({"substance": "Penicillin", "reaction": "Rash", "severity": "moderate"}),
    );
    let vitals = made(
        "vitals",
        json!({"systolic": 120, "diastolic": 80, "pulse": 72, "temperature_c": 37.1, "weight_kg": 60.5, "height_cm": 162, "spo2": 98}),
    );
    let appointment = owner.book_appointment(
        &patient,
        practitioner,
        "2030-01-02T09:00:00Z",
        "2030-01-02T09:30:00Z",
    );
    let r = owner.patch(
        &format!("/api/v1/appointments/{appointment}"),
        json!({"status": "arrived"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    Seeded {
        patient,
        condition,
        prescription,
        allergy,
        vitals,
        appointment,
    }
}

#[test]
fn every_type_is_read_and_searched_and_valid_to_a_validator_not_ours() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "FHIR Clinic", "owner@fhir.pk");
    let doctor = clinic.add_staff(&owner, "doctor", "doctor@fhir.pk");
    let s = seed(&owner, &doctor, "Sana Javed", "35202-1234567-1");
    let mut seen: Vec<Value> = Vec::new();

    // The CapabilityStatement is public and names every type.
    let cap = fhir_ok(
        &d.client("pk").get("/fhir/r4/metadata"),
        "CapabilityStatement",
    );
    let listed: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    for t in TYPES {
        assert!(listed.contains(&t), "{t} missing from {listed:?}");
    }
    seen.push(cap);

    // Every type by id.
    let reads = [
        ("Patient", &s.patient),
        ("Practitioner", &doctor),
        ("Condition", &s.condition),
        ("AllergyIntolerance", &s.allergy),
        ("Observation", &s.vitals),
        ("MedicationRequest", &s.prescription),
        ("Appointment", &s.appointment),
        ("Encounter", &s.appointment),
    ];
    for (kind, id) in reads {
        let r = fhir_ok(&owner.get(&format!("/fhir/r4/{kind}/{}", fid(id))), kind);
        assert_eq!(r["id"], fid(id));
        seen.push(r);
    }
    let patient = &seen[1];
    assert_eq!(patient["birthDate"], "1985-05-05");
    assert_eq!(patient["name"][0]["family"], "Javed");
    assert_eq!(
        patient["identifier"][0]["system"],
        "https://www.nadra.gov.pk/cnic"
    );
    let obs = &seen[5];
    assert!(obs["component"]
        .as_array()
        .expect("components")
        .iter()
        .any(
            |c| c["code"]["coding"][0]["code"] == "8480-6" && c["valueQuantity"]["value"] == 120.0
        ));

    // Every type searched, clinical ones by patient.
    let pref = format!("Patient/{}", fid(&s.patient));
    let searches = [
        ("Patient", "name=sana".to_owned(), 1),
        ("Patient", "name=Sana%20Jav".to_owned(), 1),
        ("Patient", "identifier=35202-1234567-1".to_owned(), 1),
        ("Patient", "birthdate=1985-05-05".to_owned(), 1),
        ("Patient", "birthdate=ge1990-01-01".to_owned(), 0),
        ("Patient", "name=nobody".to_owned(), 0),
        ("Practitioner", String::new(), 2),
        ("Condition", format!("patient={pref}"), 1),
        ("AllergyIntolerance", format!("patient={pref}"), 1),
        ("Observation", format!("patient={}", fid(&s.patient)), 1),
        ("MedicationRequest", format!("patient={pref}"), 1),
        ("Appointment", format!("patient={pref}&date=2030-01-02"), 1),
        ("Appointment", "date=2030-01-03".to_owned(), 0),
        ("Encounter", format!("patient={pref}"), 1),
    ];
    for (kind, q, n) in searches {
        let b = fhir_ok(&owner.get(&format!("/fhir/r4/{kind}?{q}")), "Bundle");
        let found = entries(&b);
        assert_eq!(found.len(), n, "{kind}?{q}: {b}");
        for r in &found {
            assert_eq!(r["resourceType"], kind);
        }
        seen.push(b);
    }

    // A search by a person's name or id never goes back into a URL: the
    // links carry it sealed. POST _search takes it in a form body.
    let r = owner.raw(
        Method::POST,
        "/fhir/r4/Patient/_search",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"name=sana&_count=1".to_vec()),
    );
    let b = fhir_ok(&r, "Bundle");
    assert_eq!(entries(&b).len(), 1);
    let links = b["link"].to_string().to_lowercase();
    assert!(!links.contains("sana"), "{links}");
    seen.push(b);

    // Paging: more patients, two at a time, every one once.
    for i in 0..4 {
        owner.create_patient(json!({"name": format!("Paged Person{i}"), "dob": "1990-01-01"}));
    }
    let mut path = "/fhir/r4/Patient?_count=2".to_owned();
    let mut ids = Vec::new();
    loop {
        let b = fhir_ok(&owner.get(&path), "Bundle");
        for r in entries(&b) {
            ids.push(r["id"].as_str().expect("id").to_owned());
        }
        match link_path(&b, "next") {
            Some(next) => path = next,
            None => break,
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (5, 5), "{ids:?}");

    validate(&seen);
}

#[test]
fn bad_input_is_an_operation_outcome_and_other_clinics_ids_are_not_found() {
    let d = Deployment::start();
    let (a, owner_a, _) = d.ready_clinic("pk", "FHIR A", "owner@fhir-a.pk");
    let (_, owner_b, _) = d.ready_clinic("pk", "FHIR B", "owner@fhir-b.pk");
    let s = seed(&owner_a, &a.owner_id, "Amina Qureshi", "35202-7654321-1");
    let mut seen = Vec::new();
    // Another clinic's ids: 404, whatever the type.
    for (kind, id) in [
        ("Patient", &s.patient),
        ("Condition", &s.condition),
        ("Observation", &s.vitals),
        ("Appointment", &s.appointment),
        ("Practitioner", &a.owner_id),
    ] {
        seen.push(outcome(
            &owner_b.get(&format!("/fhir/r4/{kind}/{}", fid(id))),
            404,
            "not-found",
        ));
    }
    let b = fhir_ok(
        &owner_b.get(&format!("/fhir/r4/Condition?patient={}", fid(&s.patient))),
        "Bundle",
    );
    assert!(entries(&b).is_empty());
    // A's sealed page is nothing to B.
    let r = owner_a.raw(
        Method::POST,
        "/fhir/r4/Patient/_search",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"name=amina".to_vec()),
    );
    let page = link_path(&fhir_ok(&r, "Bundle"), "self").expect("self link");
    seen.push(outcome(&owner_b.get(&page), 400, "invalid"));
    assert_eq!(owner_a.get(&page).status, 200);

    // Malformed ids, unknown types and paths.
    for path in [
        "/fhir/r4/Patient/pat_notfhir",
        "/fhir/r4/Patient/usr-abcdefghijklmnopqrstuvwxyz",
        "/fhir/r4/Patient/%2e%2e",
        "/fhir/r4/Spaceship/1",
        "/fhir/r4/Spaceship",
    ] {
        seen.push(outcome(&owner_a.get(path), 404, "not-found"));
    }
    // Unknown parameters are ignored, unless the client asks for strict.
    let b = fhir_ok(&owner_a.get("/fhir/r4/Patient?colour=blue"), "Bundle");
    assert_eq!(entries(&b).len(), 1);
    let r = owner_a.raw(
        Method::GET,
        "/fhir/r4/Patient?colour=blue",
        &[("prefer", "handling=strict")],
        None,
    );
    let o = outcome(&r, 400, "invalid");
    assert_eq!(o["issue"][0]["expression"][0], "colour");
    seen.push(o);
    for q in [
        "birthdate=1985-13-01",
        "birthdate=xx1985-01-01",
        "_count=0",
        "_count=500",
        "_page=garbage",
        "name=",
    ] {
        seen.push(outcome(
            &owner_a.get(&format!("/fhir/r4/Patient?{q}")),
            400,
            "invalid",
        ));
    }
    seen.push(outcome(
        &owner_a.get("/fhir/r4/Condition?patient=Patient/nobody"),
        400,
        "invalid",
    ));
    // No token: 401; a forged one too.
    seen.push(outcome(
        &d.client("pk").get("/fhir/r4/Patient"),
        401,
        "login",
    ));
    seen.push(outcome(
        &d.client("pk")
            .with_bearer("e30.e30.e30")
            .get("/fhir/r4/Patient"),
        401,
        "login",
    ));
    validate(&seen);
}

#[test]
fn a_receptionist_reads_demographics_and_the_schedule_never_a_clinical_type() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "FHIR Desk", "owner@fhir-desk.pk");
    let s = seed(&owner, &clinic.owner_id, "Hina Baig", "35202-1111111-1");
    clinic.add_staff(&owner, "receptionist", "desk@fhir-desk.pk");
    let desk = clinic.login("desk@fhir-desk.pk", PASSWORD);
    for kind in ["Patient", "Practitioner", "Appointment"] {
        fhir_ok(&desk.get(&format!("/fhir/r4/{kind}")), "Bundle");
    }
    fhir_ok(
        &desk.get(&format!("/fhir/r4/Patient/{}", fid(&s.patient))),
        "Patient",
    );
    for (kind, id) in [
        ("Condition", &s.condition),
        ("AllergyIntolerance", &s.allergy),
        ("Observation", &s.vitals),
        ("MedicationRequest", &s.prescription),
        ("Encounter", &s.appointment),
    ] {
        outcome(&desk.get(&format!("/fhir/r4/{kind}")), 403, "forbidden");
        outcome(
            &desk.get(&format!("/fhir/r4/{kind}/{}", fid(id))),
            403,
            "forbidden",
        );
    }
    let r = desk.raw(
        Method::GET,
        "/fhir/r4/$export",
        &[("prefer", "respond-async")],
        None,
    );
    outcome(&r, 403, "forbidden");
    // And the refusals are on the trail.
    let trail = owner.get("/api/v1/audit?action=condition.list&limit=50");
    assert!(trail.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["outcome"] == "denied"));
}

#[test]
fn the_bulk_export_is_complete_valid_sealed_at_rest_and_gone_after_its_hour() {
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("pk", "FHIR Bulk", "owner@fhir-bulk.pk");
    let s = seed(
        &owner,
        &clinic.owner_id,
        "Bulkname Zubair",
        "35202-2222222-1",
    );
    for i in 0..25 {
        owner.create_patient(json!({"name": format!("Bulkname Person{i}"), "dob": "1970-01-01"}));
    }
    // Asynchronous only.
    outcome(&owner.get("/fhir/r4/$export"), 400, "invalid");
    outcome(
        &owner.raw(
            Method::GET,
            "/fhir/r4/$export?_type=Spaceship",
            &[("prefer", "respond-async")],
            None,
        ),
        400,
        "invalid",
    );
    let kick = |q: &str| {
        owner.raw(
            Method::GET,
            &format!("/fhir/r4/$export{q}"),
            &[("prefer", "respond-async"), ("accept", FHIR_JSON)],
            None,
        )
    };
    let r = kick("");
    assert_eq!(r.status, 202, "{}", r.body);
    let status_url = r
        .header("content-location")
        .expect("Content-Location")
        .to_owned();
    let status_path = status_url[status_url.find("/fhir/r4/").expect("fhir path")..].to_owned();
    let manifest = owner.get(&status_path);
    assert_eq!(manifest.status, 200, "{}", manifest.body);
    assert_eq!(manifest.body["requiresAccessToken"], true);
    let output = manifest.body["output"].as_array().expect("output").clone();
    let mut lines: Vec<Value> = Vec::new();
    let mut patients = Vec::new();
    for o in &output {
        let url = o["url"].as_str().expect("url");
        let path = &url[url.find("/fhir/r4/").expect("fhir path")..];
        // The same token is needed.
        assert_eq!(d.client("pk").get(path).status, 401);
        let f = owner.get(path);
        assert_eq!(f.status, 200);
        assert!(f.complete);
        assert_eq!(
            f.header("content-type"),
            Some("application/fhir+ndjson"),
            "{path}"
        );
        let text = String::from_utf8(f.raw.clone()).expect("utf-8");
        let these: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one resource per line"))
            .collect();
        assert_eq!(
            these.len() as u64,
            o["count"].as_u64().expect("count"),
            "{path}"
        );
        for r in &these {
            assert_eq!(r["resourceType"], o["type"]);
            if r["resourceType"] == "Patient" {
                patients.push(r["id"].as_str().expect("id").to_owned());
            }
        }
        lines.extend(these);
    }
    let types: Vec<&str> = output.iter().filter_map(|o| o["type"].as_str()).collect();
    for t in TYPES {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert_eq!(patients.len(), 26, "every patient, once");
    assert!(patients.contains(&fid(&s.patient)));
    validate(&lines);

    // At rest the files are sealed: no resource in the clear in the
    // database's rows, nor any name in its files.
    let sealed = d
        .scalar(
            "pk",
            Some(&clinic),
            "SELECT count(*) FROM bulk_export_files",
        )
        .map(|r| r.expect("count"));
    if let Some(n) = sealed {
        assert!(
            n.as_i64().unwrap_or(0) > 0,
            "the files are kept in the clinic's database"
        );
        let clear = d
            .scalar(
                "pk",
                Some(&clinic),
                "SELECT count(*) FROM bulk_export_files WHERE instr(data, CAST('resourceType' AS BLOB)) > 0",
            )
            .expect("reachable")
            .expect("count");
        assert_eq!(clear.as_i64(), Some(0));
    }
    for file in d.clinic_files(&clinic) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for needle in [&b"Bulkname"[..], b"resourceType"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in the clear",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    // The kick-off and every download are on the trail.
    let trail = owner.get("/api/v1/audit?action=bulk_export.download&limit=50");
    assert_eq!(
        trail.body["items"].as_array().expect("items").len(),
        output.len(),
        "{}",
        trail.body
    );

    // One export removed on request; the other gone after its hour.
    let second = kick("?_type=Patient");
    assert_eq!(second.status, 202);
    let second_path = {
        let u = second.header("content-location").expect("location");
        u[u.find("/fhir/r4/").expect("path")..].to_owned()
    };
    assert_eq!(owner.delete(&second_path).status, 202);
    outcome(&owner.get(&second_path), 404, "not-found");
    // Each export is a copy of the whole record for an hour: three at once
    // at most, then 429 until the oldest expires.
    for _ in 0..2 {
        assert_eq!(kick("?_type=Practitioner").status, 202);
    }
    let refused = kick("?_type=Practitioner");
    outcome(&refused, 429, "throttled");
    assert!(refused.header("retry-after").is_some());

    clinic.advance(3601);
    // The session idled out meanwhile: the owner signs in again.
    let owner = clinic.login_with_totp("owner@fhir-bulk.pk", PASSWORD, &secret);
    outcome(&owner.get(&status_path), 404, "not-found");
    let file = output[0]["url"].as_str().expect("url");
    outcome(
        &owner.get(&file[file.find("/fhir/r4/").expect("path")..]),
        404,
        "not-found",
    );
    d.run_purge("pk");
    if let Some(left) = d.scalar(
        "pk",
        Some(&clinic),
        "SELECT count(*) FROM bulk_export_files",
    ) {
        assert_eq!(
            left.expect("count").as_i64(),
            Some(0),
            "expired files are removed"
        );
    }
}
