//! The permission matrix, derived from the route table and the one permission
//! table: for every route that names a permission and every clinic role, the
//! API answers 403 exactly when the table says no. Bodies are deliberately
//! invalid, so an allowed write is refused with 400 and changes nothing; a new
//! route is in this test without anyone writing it (one with a new kind of id
//! stops the test until the test is taught that id).

use amanah_e2e::{totp_code, unix_now, Client, Deployment, Method, PASSWORD};
use amanah_functions::rbac::{allows, Role};
use amanah_functions::routes::{Access, ROUTES};
use serde_json::json;

#[test]
fn every_route_answers_each_role_as_the_permission_table_says() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Matrix Clinic", "owner@matrix.pk");
    clinic.add_staff(&owner, "doctor", "doc@matrix.pk");
    let nurse_id = clinic.add_staff(&owner, "nurse", "nurse@matrix.pk");
    clinic.add_staff(&owner, "receptionist", "desk@matrix.pk");
    let mut doctor = clinic.login("doc@matrix.pk", PASSWORD);
    doctor.enrol_totp(&clinic, PASSWORD);
    let pid = owner.create_patient(json!({"name": "Matrix Person", "dob": "1980-08-08"}));
    let apt = owner.book_appointment(
        &pid,
        &nurse_id,
        "2030-05-05T10:00:00Z",
        "2030-05-05T10:30:00Z",
    );

    let (_, staff_secret) = d.add_platform_staff("pk", "support", "agent@matrix.example");
    let r = d.client("pk").post(
        "/api/v1/support/login",
        json!({"email": "agent@matrix.example", "password": PASSWORD, "code": totp_code(&staff_secret, unix_now())}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d
        .client("pk")
        .with_bearer(r.body["token"].as_str().unwrap())
        .post(
            "/api/v1/support/access-requests",
            json!({"clinic": clinic.id, "ticket": "T-9", "reason": "matrix"}),
        );
    assert_eq!(r.status, 201, "{}", r.body);
    let access_request = r.body["id"].as_str().unwrap().to_owned();

    // The owner goes last: an allowed DELETE really deletes.
    let roles: Vec<(Role, Client)> = vec![
        (Role::Receptionist, clinic.login("desk@matrix.pk", PASSWORD)),
        (Role::Nurse, clinic.login("nurse@matrix.pk", PASSWORD)),
        (Role::Doctor, doctor),
        (Role::Owner, owner),
    ];
    let mut checked = 0;
    let mut fhir_ids: Vec<String> = Vec::new();
    for (role, client) in &roles {
        for route in ROUTES {
            let Access::Permission(permission) = route.access else {
                continue;
            };
            let id = if !route.path.contains("{id}") {
                ""
            } else if route.path.starts_with("/api/v1/patients/") {
                pid.as_str()
            } else if route.path.starts_with("/api/v1/users/") {
                nurse_id.as_str()
            } else if route.path.starts_with("/api/v1/appointments/") {
                apt.as_str()
            } else if route.path.starts_with("/api/v1/access-requests/") {
                access_request.as_str()
            } else if let Some(rest) = route.path.strip_prefix("/fhir/r4/") {
                // FHIR ids: the same ids with a dash; clinical entries and
                // exports need none that exists (a refusal comes first).
                fhir_ids.push(match rest.split('/').next() {
                    Some("Patient") => pid.replacen('_', "-", 1),
                    Some("Practitioner") => nurse_id.replacen('_', "-", 1),
                    Some("Appointment" | "Encounter") => apt.replacen('_', "-", 1),
                    Some("Condition") => "cnd-none".to_owned(),
                    Some("AllergyIntolerance") => "alg-none".to_owned(),
                    Some("Observation") => "vit-none".to_owned(),
                    Some("MedicationRequest") => "rx-none".to_owned(),
                    Some("$export-status") => "bex-none".to_owned(),
                    Some("$export-file") => "bex-none.Patient".to_owned(),
                    _ => panic!(
                        "route {} {} takes an id this test does not know: teach it",
                        route.method, route.path
                    ),
                });
                fhir_ids.last().map_or("", String::as_str)
            } else {
                panic!(
                    "route {} {} takes an id this test does not know: teach it",
                    route.method, route.path
                );
            };
            let path = route.path.replace("{id}", id);
            let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
            let body = matches!(route.method.as_str(), "POST" | "PATCH" | "PUT")
                .then(|| json!({"not_a_field": true}));
            let r = client.send(method, &path, body);
            if allows(*role, permission) {
                assert_ne!(
                    r.status, 403,
                    "{role:?} may {} {}: {}",
                    route.method, route.path, r.body
                );
            } else {
                // The API's error, or the FHIR face's OperationOutcome.
                let code = r.body["error"]["code"]
                    .as_str()
                    .or_else(|| r.body["issue"][0]["diagnostics"].as_str());
                assert_eq!(
                    (r.status, code),
                    (403, Some("forbidden")),
                    "{role:?} may not {} {}",
                    route.method,
                    route.path
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 20, "{checked} cases");
}
