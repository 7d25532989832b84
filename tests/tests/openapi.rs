//! `GET /api/v1/openapi.json` tells the truth: every route of the route
//! table is in it, its schemas are valid JSON Schema, and a walk through a
//! clinic's day answers every route successfully with a body that validates
//! against the document's schema for that route and status (errors against
//! `Error`). A route the walk does not reach fails the test, so a new route
//! must be added here.

use std::cell::RefCell;
use std::collections::BTreeSet;

use amanah_e2e::{totp_code, unix_now, Client, Clinic, Deployment, Method, Resp, PASSWORD};
use amanah_functions::routes::{self, ROUTES};
use serde_json::{json, Value};

/// Validates every answer against the document and records what it saw.
struct Checker {
    doc: Value,
    /// (method, template) answered with a success status.
    succeeded: RefCell<BTreeSet<(String, &'static str)>>,
    checked: RefCell<usize>,
}

impl Checker {
    fn new(doc: Value) -> Self {
        Checker {
            doc,
            succeeded: RefCell::new(BTreeSet::new()),
            checked: RefCell::new(0),
        }
    }

    fn send(&self, c: &Client, method: Method, path: &str, body: Option<Value>) -> Resp {
        let r = c.send(method.clone(), path, body);
        self.check(&method, path, &r);
        r
    }

    fn check(&self, method: &Method, path: &str, r: &Resp) {
        let bare = path.split('?').next().unwrap();
        let (route, _) = routes::find(method, bare).unwrap_or_else(|| panic!("no route {path}"));
        let op = &self.doc["paths"][route.path][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {} undocumented", route.path);
        let response = &op["responses"][r.status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {} which the document does not list: {}",
            r.status,
            r.body
        );
        if (200..300).contains(&r.status) {
            self.succeeded
                .borrow_mut()
                .insert((method.to_string(), route.path));
        }
        let media = r.header("content-type").unwrap_or("");
        let Some(schema) = response["content"][media].get("schema") else {
            assert!(
                r.raw.is_empty(),
                "{method} {path} {}: a body the document does not describe ({media})",
                r.status
            );
            return;
        };
        if media != "application/json" && media != "application/fhir+json" {
            return;
        }
        let root = json!({ "components": self.doc["components"], "allOf": [schema] });
        let validator = jsonschema::validator_for(&root).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&r.body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {} does not match the document: {errors:?}\n{}",
            r.status,
            r.body
        );
        *self.checked.borrow_mut() += 1;
    }
}

#[test]
fn the_document_covers_every_route_and_every_answer_matches_it() {
    let d = Deployment::start();
    let anon = d.client("pk");
    let r = anon.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.body.clone();
    assert_eq!(doc["openapi"], "3.1.0");
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing", route.method, route.path);
        for status in ["400", "500", "503"] {
            assert!(
                op["responses"][status].is_object(),
                "{} {}",
                route.path,
                status
            );
        }
        assert_eq!(
            op["security"].as_array().is_some_and(|s| s.is_empty()),
            route.access == routes::Access::Public,
            "{} {}",
            route.method,
            route.path
        );
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(
            jsonschema::meta::is_valid(schema),
            "{name} is not JSON Schema"
        );
    }

    let v = Checker::new(doc.clone());
    let get = |c: &Client, p: &str| v.send(c, Method::GET, p, None);
    let post = |c: &Client, p: &str, b: Value| v.send(c, Method::POST, p, Some(b));
    let post0 = |c: &Client, p: &str| v.send(c, Method::POST, p, None);
    let patch = |c: &Client, p: &str, b: Value| v.send(c, Method::PATCH, p, Some(b));
    let delete = |c: &Client, p: &str| v.send(c, Method::DELETE, p, None);
    let ok = |r: Resp, status: u16| {
        assert_eq!(r.status, status, "{}", r.body);
        r
    };

    ok(get(&anon, "/healthz"), 200);
    ok(get(&anon, "/healthz/keys"), 200);
    ok(get(&anon, "/api/v1/regions"), 200);
    ok(get(&anon, "/api/v1/openapi.json"), 200);

    // Sign-up and the owner's first login, TOTP enrolment and a TOTP login.
    let r = ok(
        post(
            &anon,
            "/api/v1/clinics",
            json!({"name": "Spec Clinic", "region": "pk",
                   "owner": {"name": "Dr Spec", "email": "owner@spec.pk", "password": PASSWORD}}),
        ),
        201,
    );
    let clinic_id = r.body["clinic"]["id"].as_str().unwrap().to_owned();
    let clinic = Clinic {
        id: clinic_id.clone(),
        region: "pk".into(),
        base: d.url("pk").to_owned(),
        owner_id: r.body["owner"]["id"].as_str().unwrap().to_owned(),
        owner_email: "owner@spec.pk".into(),
    };
    let login = |email: &str| {
        post(
            &anon,
            "/api/v1/auth/login",
            json!({"clinic": clinic_id, "email": email, "password": PASSWORD}),
        )
    };
    let first = anon.with_session(&ok(login("owner@spec.pk"), 200).body);
    let r = ok(
        post(&first, "/api/v1/auth/totp", json!({"password": PASSWORD})),
        200,
    );
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    ok(
        post(
            &first,
            "/api/v1/auth/totp/confirm",
            json!({"code": totp_code(&secret, clinic.now())}),
        ),
        204,
    );
    let r = ok(login("owner@spec.pk"), 200);
    assert_eq!(r.body["mfa_required"], true);
    let mfa = anon.with_bearer(r.body["mfa_token"].as_str().unwrap());
    // The code of the next step: the enrolment's code may not be used twice.
    clinic.advance(30);
    let r = ok(
        post(
            &mfa,
            "/api/v1/auth/mfa",
            json!({"code": totp_code(&secret, clinic.now())}),
        ),
        200,
    );
    let owner = anon.with_session(&r.body);
    ok(get(&owner, "/api/v1/auth/session"), 200);
    ok(post0(&first, "/api/v1/auth/logout"), 204);
    get(&first, "/api/v1/auth/session");

    // Staff.
    let r = ok(
        post(
            &owner,
            "/api/v1/users",
            json!({"name": "Nurse Spec", "email": "nurse@spec.pk", "role": "nurse", "password": PASSWORD}),
        ),
        201,
    );
    let nurse_id = r.body["id"].as_str().unwrap().to_owned();
    ok(get(&owner, "/api/v1/users"), 200);
    ok(
        patch(
            &owner,
            &format!("/api/v1/users/{nurse_id}"),
            json!({"role": "nurse"}),
        ),
        200,
    );
    let nurse = anon.with_session(&ok(login("nurse@spec.pk"), 200).body);
    ok(
        post(
            &nurse,
            "/api/v1/auth/password",
            json!({"current": PASSWORD, "new": format!("{PASSWORD}-2")}),
        ),
        204,
    );
    get(&nurse, "/api/v1/users");

    // Patients, the clinical record, the schedule.
    let r = ok(
        post(
            &owner,
            "/api/v1/patients",
            json!({"name": "Spec Person", "dob": "1990-02-03", "phone": "0300 1234567"}),
        ),
        201,
    );
    let pid = r.body["id"].as_str().unwrap().to_owned();
    let p = format!("/api/v1/patients/{pid}");
    ok(get(&owner, "/api/v1/patients?q=spec"), 200);
    ok(
        post(&owner, "/api/v1/patients/search", json!({"q": "spec"})),
        200,
    );
    ok(get(&owner, &p), 200);
    ok(patch(&owner, &p, json!({"address": "Street 1"})), 200);
    ok(
        post(
            &owner,
            &format!("{p}/conditions"),
            json!({"display": "Asthma", "status": "active"}),
        ),
        201,
    );
    ok(get(&owner, &format!("{p}/conditions")), 200);
    ok(
        post(
            &owner,
            &format!("{p}/prescriptions"),
            json!({"drug": "Salbutamol", "dose": "100 mcg", "route": "inhaled", "frequency": "as needed"}),
        ),
        201,
    );
    ok(get(&owner, &format!("{p}/prescriptions")), 200);
    ok(
        post(
            &owner,
            &format!("{p}/notes"),
            json!({"kind": "progress", "text": "Well controlled"}),
        ),
        201,
    );
    ok(get(&owner, &format!("{p}/notes")), 200);
    let r = ok(
        post(
            &owner,
            &format!("{p}/allergies"),
            json!({"substance": "Penicillin", "reaction": "Rash", "severity": "mild"}),
        ),
        201,
    );
    let allergy = r.body["id"].as_str().unwrap().replacen('_', "-", 1);
    ok(get(&owner, &format!("{p}/allergies")), 200);
    let r = ok(
        post(
            &owner,
            &format!("{p}/vitals"),
            json!({"systolic": 118, "diastolic": 76, "spo2": 99}),
        ),
        201,
    );
    let vitals = r.body["id"].as_str().unwrap().replacen('_', "-", 1);
    ok(get(&owner, &format!("{p}/vitals")), 200);
    let book = |start: &str, end: &str| {
        post(
            &owner,
            "/api/v1/appointments",
            json!({"patient_id": pid, "practitioner_id": nurse_id, "start": start, "end": end}),
        )
    };
    let r = ok(book("2030-03-03T09:00:00Z", "2030-03-03T09:30:00Z"), 201);
    let apt = r.body["id"].as_str().unwrap().to_owned();
    ok(book("2030-03-03T09:15:00Z", "2030-03-03T09:45:00Z"), 409);
    ok(
        get(
            &owner,
            "/api/v1/appointments?from=2030-03-03T00:00:00Z&to=2030-03-04T00:00:00Z",
        ),
        200,
    );
    ok(
        patch(
            &owner,
            &format!("/api/v1/appointments/{apt}"),
            json!({"status": "arrived"}),
        ),
        200,
    );
    ok(get(&owner, &format!("{p}/audit")), 200);

    // Roles, the audit trail, the clinic, export.
    ok(get(&owner, "/api/v1/clinic/roles"), 200);
    ok(
        v.send(
            &owner,
            Method::PUT,
            "/api/v1/clinic/roles",
            Some(json!({"receptionist": null})),
        ),
        200,
    );
    ok(get(&owner, "/api/v1/audit?limit=5"), 200);
    ok(get(&owner, "/api/v1/audit/verify"), 200);
    ok(get(&owner, "/api/v1/clinic"), 200);
    ok(get(&owner, "/api/v1/export?format=json"), 200);
    ok(get(&owner, "/api/v1/export?format=csv"), 200);
    get(&owner, "/api/v1/export?format=pdf");

    // Support access.
    let (_, staff_secret) = d.add_platform_staff("pk", "support", "agent@spec.example");
    let r = ok(
        post(
            &anon,
            "/api/v1/support/login",
            json!({"email": "agent@spec.example", "password": PASSWORD, "code": totp_code(&staff_secret, unix_now())}),
        ),
        200,
    );
    let staff = anon.with_bearer(r.body["token"].as_str().unwrap());
    let r = ok(
        post(
            &staff,
            "/api/v1/support/access-requests",
            json!({"clinic": clinic_id, "ticket": "T-77", "reason": "Spec walk"}),
        ),
        201,
    );
    let req = r.body["id"].as_str().unwrap().to_owned();
    ok(get(&owner, "/api/v1/access-requests"), 200);
    ok(
        post0(&owner, &format!("/api/v1/access-requests/{req}/approve")),
        200,
    );
    let r = ok(
        post0(
            &staff,
            &format!("/api/v1/support/access-requests/{req}/session"),
        ),
        200,
    );
    let support = anon.with_bearer(r.body["token"].as_str().unwrap());
    ok(get(&support, "/api/v1/auth/session"), 200);

    ok(get(&owner, "/api/v1/practitioners"), 200);

    // The FHIR face: every type read and searched, the bulk export.
    let f = |id: &str| id.replacen('_', "-", 1);
    let conditions = get(&owner, &format!("{p}/conditions"));
    let condition = f(conditions.body["items"][0]["id"].as_str().unwrap());
    let prescriptions = get(&owner, &format!("{p}/prescriptions"));
    let prescription = f(prescriptions.body["items"][0]["id"].as_str().unwrap());
    ok(get(&anon, "/fhir/r4/metadata"), 200);
    for (kind, id) in [
        ("Patient", f(&pid)),
        ("Practitioner", f(&nurse_id)),
        ("Condition", condition),
        ("AllergyIntolerance", allergy),
        ("Observation", vitals),
        ("MedicationRequest", prescription),
        ("Appointment", f(&apt)),
        ("Encounter", f(&apt)),
    ] {
        ok(get(&owner, &format!("/fhir/r4/{kind}/{id}")), 200);
        ok(
            get(&owner, &format!("/fhir/r4/{kind}?patient={}", f(&pid))),
            200,
        );
    }
    let r = owner.raw(
        Method::POST,
        "/fhir/r4/Patient/_search",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"name=spec".to_vec()),
    );
    v.check(&Method::POST, "/fhir/r4/Patient/_search", &r);
    ok(r, 200);
    get(&owner, "/fhir/r4/Patient/pat-nothere");
    let r = owner.raw(
        Method::GET,
        "/fhir/r4/$export",
        &[("prefer", "respond-async")],
        None,
    );
    v.check(&Method::GET, "/fhir/r4/$export", &r);
    let r = ok(r, 202);
    let status = r.header("content-location").unwrap();
    let status = status[status.find("/fhir/r4/").unwrap()..].to_owned();
    let r = ok(get(&owner, &status), 200);
    let file = r.body["output"][0]["url"].as_str().unwrap();
    ok(get(&owner, &file[file.find("/fhir/r4/").unwrap()..]), 200);
    ok(delete(&owner, &status), 202);

    // Deletion of a patient and of the clinic, each undone.
    ok(delete(&owner, &p), 202);
    ok(post0(&owner, &format!("{p}/restore")), 200);
    ok(
        post(
            &owner,
            "/api/v1/clinic/deletion",
            json!({"password": PASSWORD}),
        ),
        202,
    );
    get(&owner, "/api/v1/patients");
    ok(delete(&owner, "/api/v1/clinic/deletion"), 204);

    // Refusals, in the error shape the document gives.
    get(&anon, "/api/v1/patients");
    get(&owner, "/api/v1/patients/pat_doesnotexist");
    get(&nurse, "/api/v1/audit");

    // An owner's reset of a user's password (the nurse's session ends).
    let r = ok(
        post(
            &owner,
            &format!("/api/v1/users/{nurse_id}/reset"),
            json!({"password": true}),
        ),
        200,
    );
    assert!(r.body["temporary_password"].is_string(), "{}", r.body);
    get(&nurse, "/api/v1/auth/session");

    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|r| {
            !v.succeeded
                .borrow()
                .contains(&(r.method.to_string(), r.path))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "routes the walk never answered successfully: {missing:?}"
    );
    assert!(
        *v.checked.borrow() >= 45,
        "{} bodies checked",
        v.checked.borrow()
    );
}
