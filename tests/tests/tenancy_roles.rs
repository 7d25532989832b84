//! Another clinic's ids answer 404; roles without the right answer 403 before
//! any lookup.

use amanah_e2e::{Deployment, PASSWORD};
use serde_json::json;

#[test]
fn another_clinics_ids_are_not_found() {
    let d = Deployment::start();
    let (a, owner_a, _) = d.ready_clinic("pk", "Clinic A", "owner@a.pk");
    let (_b, owner_b, _) = d.ready_clinic("pk", "Clinic B", "owner@b.pk");
    let pid = owner_a.create_patient(
        json!({"name": "Rabia Anwar", "dob": "1985-03-02", "phone": "0300 1234567"}),
    );
    let nurse_a = a.add_staff(&owner_a, "nurse", "nurse@a.pk");
    let before = owner_a.get(&format!("/api/v1/patients/{pid}")).body;

    for (method, path, body) in [
        ("GET", format!("/api/v1/patients/{pid}"), None),
        (
            "PATCH",
            format!("/api/v1/patients/{pid}"),
            Some(json!({"name": "Hijacked Name"})),
        ),
        ("DELETE", format!("/api/v1/patients/{pid}"), None),
        ("POST", format!("/api/v1/patients/{pid}/restore"), None),
        ("GET", format!("/api/v1/patients/{pid}/audit"), None),
        (
            "PATCH",
            format!("/api/v1/users/{nurse_a}"),
            Some(json!({"active": false})),
        ),
        // guessed ids of the right shape, and junk
        (
            "GET",
            "/api/v1/patients/pat_aaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
            None,
        ),
        ("GET", "/api/v1/patients/1".to_owned(), None),
        (
            "GET",
            "/api/v1/patients/..%2f..%2fdirectory".to_owned(),
            None,
        ),
    ] {
        let m = amanah_e2e::Method::from_bytes(method.as_bytes()).unwrap();
        owner_b.send(m, &path, body).assert_error(404, "not_found");
    }
    // Search in B never returns A's patient.
    let r = owner_b.get("/api/v1/patients?q=rabia");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    let r = owner_b.get("/api/v1/patients?q=03001234567");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    // A's data is untouched.
    assert_eq!(owner_a.get(&format!("/api/v1/patients/{pid}")).body, before);
    let r = owner_a.get("/api/v1/users");
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == nurse_a.as_str() && u["active"] == true));
}

#[test]
fn receptionist_sees_demographics_but_not_staff_audit_or_deletion() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Reception Clinic", "owner@rc.pk");
    clinic.add_staff(&owner, "receptionist", "desk@rc.pk");
    let desk = clinic.login("desk@rc.pk", PASSWORD);
    let pid =
        desk.create_patient(json!({"name": "Bilal Ahmed", "dob": "1970-07-07", "sex": "male"}));
    assert_eq!(desk.get(&format!("/api/v1/patients/{pid}")).status, 200);
    assert_eq!(
        desk.patch(
            &format!("/api/v1/patients/{pid}"),
            json!({"phone": "042-1234567"})
        )
        .status,
        200
    );
    assert_eq!(
        desk.get("/api/v1/patients?q=bilal").body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Role checks come before lookups: 403 whatever the id.
    for (method, path) in [
        ("GET", "/api/v1/users".to_owned()),
        ("GET", "/api/v1/audit".to_owned()),
        ("GET", "/api/v1/audit/verify".to_owned()),
        ("GET", format!("/api/v1/patients/{pid}/audit")),
        ("DELETE", format!("/api/v1/patients/{pid}")),
        (
            "DELETE",
            "/api/v1/patients/pat_aaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
        ),
        ("POST", format!("/api/v1/patients/{pid}/restore")),
        (
            "PATCH",
            "/api/v1/users/usr_aaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
        ),
    ] {
        let m = amanah_e2e::Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method == "PATCH").then(|| json!({"active": false}));
        desk.send(m, &path, body).assert_error(403, "forbidden");
    }
    let r = desk.post(
        "/api/v1/users",
        json!({"name": "X", "email": "x@rc.pk", "role": "owner", "password": PASSWORD}),
    );
    r.assert_error(403, "forbidden");
    // The refusals are on the record as denied.
    let r = owner.get("/api/v1/audit?action=user.create");
    let items = r.body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|e| e["outcome"] == "denied" && e["role"] == "receptionist"),
        "{}",
        r.body
    );
    // Doctors must enrol TOTP too; nurses need not.
    clinic.add_staff(&owner, "doctor", "doc@rc.pk");
    clinic
        .login("doc@rc.pk", PASSWORD)
        .get("/api/v1/patients")
        .assert_error(403, "mfa_enrollment_required");
}

#[test]
fn the_last_owner_stays() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Owner Clinic", "owner@oc.pk");
    owner
        .patch(
            &format!("/api/v1/users/{}", clinic.owner_id),
            json!({"role": "doctor"}),
        )
        .assert_error(409, "conflict");
    owner
        .patch(
            &format!("/api/v1/users/{}", clinic.owner_id),
            json!({"active": false}),
        )
        .assert_error(409, "conflict");
    let r = owner.post(
        "/api/v1/users",
        json!({"name": "Dup", "email": "OWNER@oc.pk", "role": "nurse", "password": PASSWORD}),
    );
    r.assert_error(409, "conflict");
    assert_eq!(r.body["error"]["field"], "email");
}

/// Walks the route table: every route that takes an id answers 404 to another
/// clinic's owner for this clinic's ids, and every non-public route answers 401
/// without a token. A new route is covered without anyone writing a test.
#[test]
fn every_route_from_the_route_table_keeps_clinics_apart() {
    use amanah_functions::routes::{Access, ROUTES};
    let d = Deployment::start();
    let (a, owner_a, _) = d.ready_clinic("pk", "Walk A", "owner@walk-a.pk");
    let (b, owner_b, _) = d.ready_clinic("pk", "Walk B", "owner@walk-b.pk");
    let pid = owner_a.create_patient(json!({"name": "Route Walker", "dob": "1999-09-09"}));
    let uid = a.add_staff(&owner_a, "nurse", "nurse@walk-a.pk");
    let apt = owner_a.book_appointment(&pid, &uid, "2030-01-01T09:00:00Z", "2030-01-01T09:30:00Z");
    // Platform staff: A asks for clinic A (approved); B is another agent.
    let staff = |email: &str| {
        let (_, secret) = d.add_platform_staff("pk", "support", email);
        let r = d.client("pk").post(
            "/api/v1/support/login",
            json!({"email": email, "password": PASSWORD, "code": amanah_e2e::totp_code(&secret, amanah_e2e::unix_now())}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        d.client("pk")
            .with_bearer(r.body["token"].as_str().unwrap())
    };
    let (staff_a, staff_b) = (staff("a@walk.example"), staff("b@walk.example"));
    let r = staff_a.post(
        "/api/v1/support/access-requests",
        json!({"clinic": a.id, "ticket": "W-1", "reason": "walk"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let acr = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        owner_a
            .post_empty(&format!("/api/v1/access-requests/{acr}/approve"))
            .status,
        200
    );
    // A's clinical entries and a bulk export, for the FHIR face's ids.
    let entry = |path: &str, body: serde_json::Value| {
        let r = owner_a.post(&format!("/api/v1/patients/{pid}/{path}"), body);
        assert_eq!(r.status, 201, "{path}: {}", r.body);
        r.body["id"].as_str().unwrap().replacen('_', "-", 1)
    };
    let condition = entry(
        "conditions",
        json!({"display": "Asthma", "status": "active"}),
    );
    let allergy = entry("allergies", json!({"substance": "Penicillin"}));
    let vitals = entry("vitals", json!({"pulse": 70}));
    let prescription = entry(
        "prescriptions",
        json!({"drug": "Paracetamol", "dose": "500 mg", "route": "oral", "frequency": "twice a day"}),
    );
    owner_a.patch(
        &format!("/api/v1/appointments/{apt}"),
        json!({"status": "arrived"}),
    );
    let r = owner_a.raw(
        amanah_e2e::Method::GET,
        "/fhir/r4/$export?_type=Patient",
        &[("prefer", "respond-async")],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let export = r
        .header("content-location")
        .and_then(|l| l.rsplit('/').next())
        .unwrap()
        .to_owned();
    let fhir_file = format!("{export}.Patient");
    let (fpid, fuid, fapt) = (
        pid.replacen('_', "-", 1),
        uid.replacen('_', "-", 1),
        apt.replacen('_', "-", 1),
    );
    let mut walked = 0;
    for route in ROUTES {
        let m = amanah_e2e::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        if route.access != Access::Public {
            let path = route.path.replace("{id}", "x");
            let r = owner_a.anonymous().send(m.clone(), &path, None);
            if route.path.starts_with("/fhir/") {
                assert_eq!(r.status, 401, "{path}: {}", r.body);
                assert_eq!(r.body["issue"][0]["diagnostics"], "unauthenticated");
            } else {
                r.assert_error(401, "unauthenticated");
            }
        }
        if !route.path.contains("{id}") {
            continue;
        }
        let fhir = route
            .path
            .strip_prefix("/fhir/r4/")
            .and_then(|r| r.split('/').next());
        let (id, body) = if let Some(kind) = fhir {
            let id = match kind {
                "Patient" => fpid.as_str(),
                "Practitioner" => fuid.as_str(),
                "Appointment" | "Encounter" => fapt.as_str(),
                "Condition" => condition.as_str(),
                "AllergyIntolerance" => allergy.as_str(),
                "Observation" => vitals.as_str(),
                "MedicationRequest" => prescription.as_str(),
                "$export-status" => export.as_str(),
                "$export-file" => fhir_file.as_str(),
                other => {
                    panic!("FHIR route of {other} takes an id this test does not know: teach it")
                }
            };
            (id, json!({}))
        } else if route.path.ends_with("/reset") {
            (uid.as_str(), json!({"password": true}))
        } else if route.path.starts_with("/api/v1/users/") {
            (uid.as_str(), json!({"active": false}))
        } else if route.path.starts_with("/api/v1/patients/") {
            (pid.as_str(), json!({"name": "Hijacked"}))
        } else if route.path.starts_with("/api/v1/appointments/") {
            (apt.as_str(), json!({"status": "cancelled"}))
        } else if route.path.starts_with("/api/v1/access-requests/")
            || route.path.starts_with("/api/v1/support/access-requests/")
        {
            (acr.as_str(), json!({}))
        } else {
            panic!(
                "route {} {} takes an id this test does not know: teach it",
                route.method, route.path
            );
        };
        let path = route.path.replace("{id}", id);
        let body = matches!(route.method.as_str(), "POST" | "PATCH" | "PUT").then_some(body);
        let body = if path.ends_with("/restore") {
            None
        } else {
            body
        };
        // Staff routes: another agent is the outsider.
        let outsider = if route.access == Access::Staff {
            &staff_b
        } else {
            &owner_b
        };
        let body = if route.path.ends_with("/approve") || route.path.ends_with("/session") {
            None
        } else {
            body
        };
        let r = outsider.send(m, &path, body);
        if fhir.is_some() {
            // The FHIR face's refusal is an OperationOutcome.
            assert_eq!(r.status, 404, "{path}: {}", r.body);
            assert_eq!(
                r.body["issue"][0]["code"], "not-found",
                "{path}: {}",
                r.body
            );
        } else {
            r.assert_error(404, "not_found");
        }
        walked += 1;
    }
    assert!(walked >= 6, "{walked}");
    // Nothing of A changed.
    assert_eq!(
        owner_a.get(&format!("/api/v1/patients/{pid}")).body["name"],
        "Route Walker"
    );
    let listed =
        owner_a.get("/api/v1/appointments?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z");
    // (A's owner marked it arrived, for its Encounter.)
    assert_eq!(listed.body["items"][0]["status"], "arrived");
    // B's schedule shows none of A's bookings.
    let b_listed =
        owner_b.get("/api/v1/appointments?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z");
    assert_eq!(b_listed.body["items"], json!([]));
    // Who can be booked in B is B's staff alone.
    let p = owner_b.get("/api/v1/practitioners");
    let ids: Vec<&str> = p.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, [b.owner_id.as_str()], "{}", p.body);
    // B cannot book A's patient or A's practitioner: their ids name nothing
    // in B's clinic, and nothing is booked anywhere.
    let (b_doctor, b_patient) = (
        b.add_staff(&owner_b, "nurse", "nurse@walk-b.pk"),
        owner_b.create_patient(json!({"name": "B Person", "dob": "1990-01-01"})),
    );
    for (patient, practitioner, field) in [
        (pid.as_str(), b_doctor.as_str(), "patient_id"),
        (b_patient.as_str(), uid.as_str(), "practitioner_id"),
    ] {
        let r = owner_b.post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner,
                   "start": "2030-01-01T11:00:00Z", "end": "2030-01-01T11:30:00Z"}),
        );
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["field"], field);
    }
    for (owner, booked) in [(&owner_a, 1), (&owner_b, 0)] {
        let day =
            owner.get("/api/v1/appointments?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z");
        assert_eq!(
            day.body["items"].as_array().unwrap().len(),
            booked,
            "{}",
            day.body
        );
    }
}
