//! The injected "forgot the clinic" bug: a test build of `amanah`
//! (feature `inject-forgot-clinic`, see amanah-functions' `injected` module)
//! whose handlers, once a request is authenticated, work on the first clinic
//! database the process opened in the region. Two clinics are set up by the
//! normal build; the test build then serves the same data dir, clinic A's
//! owner comes first, and every role of clinic B tries every route with A's
//! ids, A's search words and both export formats. Nothing of A's comes back:
//! A's rows are found, but blind-index terms do not match and ciphertext
//! does not open under B's key, so B gets an error (or a broken download),
//! never A's plaintext.
//!
//! `cargo xtask test` builds the binary and names it in
//! `AMANAH_INJECTED_BIN`; without it the test says so and does nothing.

use amanah_e2e::{item_where, Deployment, Method, PASSWORD};
use amanah_functions::routes::{Access, ROUTES};
use serde_json::json;
use std::path::PathBuf;

/// What clinic A writes: none of it may reach clinic B.
const A_SECRETS: &[&str] = &[
    "Zarghuna Qizilbash",
    "zarghuna",
    "Qizilbash",
    "03337654321",
    "0333 7654321",
    "zq@private.example",
    "Kohat Road 17",
    "Dengue fever",
    "Paracetamol",
    "platelets ninety thousand",
    "Suspected dengue",
    "Farrukh Jamali",
    "owner@first.pk",
    "doc@first.pk",
    "farrukh@first.pk",
    "17301",
];

#[test]
fn a_pool_that_forgot_the_clinic_leaks_nothing_of_the_first_clinic() {
    let Some(bin) = std::env::var_os("AMANAH_INJECTED_BIN") else {
        eprintln!("skipped: AMANAH_INJECTED_BIN is not set (cargo xtask test sets it)");
        return;
    };
    if std::env::var_os("AMANAH_DEPLOYMENT").is_some()
        || std::env::var_os("AMANAH_PK_URL").is_some()
    {
        eprintln!("skipped: the injected build is a native one; it ran with the native suite");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut d = Deployment::start_native_in(&data, &[]);

    // Clinic A comes first: its database is the one the bug hands out.
    let (a, a_owner, _) = d.ready_clinic("pk", "First Clinic", "owner@first.pk");
    let a_doctor_id = a.add_staff(&a_owner, "doctor", "doc@first.pk");
    let mut a_doctor = a.login("doc@first.pk", PASSWORD);
    a_doctor.enrol_totp(&a, PASSWORD);
    let pid = a_owner.create_patient(json!({
        "name": "Zarghuna Qizilbash", "dob": "1979-04-12", "phone": "0333 7654321",
        "email": "zq@private.example", "address": "Kohat Road 17", "national_id": "17301-1234567-1"
    }));
    let base = format!("/api/v1/patients/{pid}");
    for (kind, body) in [
        (
            "conditions",
            json!({"display": "Dengue fever", "code": "A90", "status": "active"}),
        ),
        (
            "prescriptions",
            json!({"drug": "Paracetamol", "dose": "500 mg", "route": "oral", "frequency": "as needed"}),
        ),
        (
            "notes",
            json!({"kind": "progress", "text": "Suspected dengue, platelets ninety thousand"}),
        ),
    ] {
        let r = a_doctor.post(&format!("{base}/{kind}"), body);
        assert_eq!(r.status, 201, "{kind}: {}", r.body);
    }
    let apt = a_owner.book_appointment(
        &pid,
        &a_doctor_id,
        "2030-01-07T09:00:00Z",
        "2030-01-07T09:30:00Z",
    );
    let r = a_owner.post("/api/v1/users", json!({"name": "Farrukh Jamali", "email": "farrukh@first.pk", "role": "nurse", "password": PASSWORD}));
    assert_eq!(r.status, 201, "{}", r.body);
    let a_nurse_id = r.body["id"].as_str().expect("user id").to_owned();

    // Clinic B, every role logged in, with a patient of its own.
    let (b, b_owner, _) = d.ready_clinic("pk", "Second Clinic", "owner@second.pk");
    b.add_staff(&b_owner, "doctor", "doc@second.pk");
    b.add_staff(&b_owner, "nurse", "nurse@second.pk");
    b.add_staff(&b_owner, "receptionist", "desk@second.pk");
    let mut b_doctor = b.login("doc@second.pk", PASSWORD);
    b_doctor.enrol_totp(&b, PASSWORD);
    let b_pid = b_owner.create_patient(json!({"name": "Second Person", "dob": "1990-01-01"}));
    let b_clients = [
        ("owner", b_owner),
        ("doctor", b_doctor),
        ("nurse", b.login("nurse@second.pk", PASSWORD)),
        ("receptionist", b.login("desk@second.pk", PASSWORD)),
    ];

    // The test build takes over the same data; A's owner is first through
    // the door, so A's database is the one the bug hands to everyone.
    d.kill();
    let injected = Deployment::start_native_bin(&PathBuf::from(bin), &data, &[]);
    let a_owner = a_owner.rebased(injected.url("pk"));
    assert_eq!(a_owner.get(&base).status, 200);
    let b_clients = b_clients.map(|(who, c)| (who, c.rebased(injected.url("pk"))));
    // The bug is live: B's own patient is not where B's handlers look.
    let r = b_clients[0].1.get(&format!("/api/v1/patients/{b_pid}"));
    assert_eq!(r.status, 404, "{}", r.body);

    // A's ids are not secret from B's requests (they are in B's paths), but
    // no answer may carry them back.
    let a_ids = [
        pid.as_str(),
        apt.as_str(),
        a_doctor_id.as_str(),
        a_nurse_id.as_str(),
        a.owner_id.as_str(),
    ];
    // The FHIR face spells them with a dash.
    let fhir = |id: &str| id.replacen('_', "-", 1);
    let a_fhir_ids: Vec<String> = a_ids.iter().map(|i| fhir(i)).collect();
    let (f_pid, f_apt, f_nurse, f_doctor) = (
        fhir(&pid),
        fhir(&apt),
        fhir(&a_nurse_id),
        fhir(&a_doctor_id),
    );
    let mut tried = 0;
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    let mut check = |who: &str, what: &str, r: &amanah_e2e::Resp| {
        // A FHIR Bundle's links say the search back: they may repeat what
        // the request sent (`patient=` an id of A's), nothing else of A's.
        let mut body = r.body.clone();
        let links = body
            .as_object_mut()
            .and_then(|b| b.remove("link"))
            .map(|l| l.to_string().to_lowercase())
            .unwrap_or_default();
        let text = if links.is_empty() {
            String::from_utf8_lossy(&r.raw).to_lowercase()
        } else {
            body.to_string().to_lowercase()
        };
        let asked = what.to_lowercase();
        for s in A_SECRETS
            .iter()
            .chain(&a_ids)
            .copied()
            .chain(a_fhir_ids.iter().map(String::as_str))
        {
            let s = s.to_lowercase();
            assert!(
                !text.contains(&s),
                "{who} {what} answered {} with clinic A's {s:?}",
                r.status
            );
            assert!(
                !links.contains(&s) || asked.contains(&s),
                "{who} {what}: a link names clinic A's {s:?}"
            );
        }
        for h in r.headers.values() {
            let v = String::from_utf8_lossy(h.as_bytes()).to_lowercase();
            assert!(
                A_SECRETS.iter().all(|s| !v.contains(&s.to_lowercase())),
                "{who} {what}: header"
            );
        }
        tried += 1;
        *answers.entry(r.status).or_default() += 1;
    };
    for (who, client) in &b_clients {
        for route in ROUTES {
            if route.method != Method::GET || route.access == Access::Public {
                continue;
            }
            if matches!(route.access, Access::Staff) {
                continue;
            }
            let ids: &[&str] = if !route.path.contains("{id}") {
                &[""]
            } else if route.path.starts_with("/api/v1/patients/") {
                &[&pid, "pat_aaaaaaaaaaaaaaaaaaaaaaaaaa"]
            } else if route.path.starts_with("/api/v1/users/") {
                &[&a_nurse_id, &a_doctor_id]
            } else if route.path.starts_with("/api/v1/appointments/") {
                &[&apt]
            } else if route.path.starts_with("/fhir/r4/Patient/") {
                &[&f_pid, "pat-aaaaaaaaaaaaaaaaaaaaaaaaaa"]
            } else if route.path.starts_with("/fhir/r4/Practitioner/") {
                &[&f_nurse, &f_doctor]
            } else if route.path.starts_with("/fhir/r4/Appointment/")
                || route.path.starts_with("/fhir/r4/Encounter/")
            {
                &[&f_apt]
            } else if route.path.starts_with("/fhir/r4/$export") {
                &[
                    "bex-aaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "bex-aaaaaaaaaaaaaaaaaaaaaaaaaa.Patient",
                ]
            } else if route.path.starts_with("/fhir/r4/") {
                // A's clinical entries have ids this test never learns;
                // the searches below ask for them by A's patient.
                &["cnd-aaaaaaaaaaaaaaaaaaaaaaaaaa"]
            } else {
                panic!(
                    "route {} {} takes an id this test does not know: teach it",
                    route.method, route.path
                );
            };
            for id in ids {
                let path = route.path.replace("{id}", id);
                let queries: &[&str] = match path.as_str() {
                    "/api/v1/patients" => &["", "?q=zarghuna", "?q=03337654321", "?q=qizilbash"],
                    "/api/v1/appointments" => &[
                        "",
                        "?from=2030-01-01T00:00:00Z&to=2030-02-01T00:00:00Z",
                        "?from=2030-01-07T00:00:00Z&to=2030-01-08T00:00:00Z&practitioner={doc}",
                    ],
                    "/api/v1/export" => &["?format=json", "?format=csv"],
                    "/fhir/r4/Patient" => &[
                        "",
                        "?name=zarghuna",
                        "?identifier=35202-7654321-9",
                        "?birthdate=1979-04-04",
                    ],
                    "/fhir/r4/Condition"
                    | "/fhir/r4/AllergyIntolerance"
                    | "/fhir/r4/Observation"
                    | "/fhir/r4/MedicationRequest"
                    | "/fhir/r4/Encounter"
                    | "/fhir/r4/Appointment" => &["", "?patient={fpid}"],
                    "/api/v1/audit" => &["", "?action=patient.create"],
                    _ => &[""],
                };
                for q in queries {
                    let q = q.replace("{doc}", &a_doctor_id).replace("{fpid}", &f_pid);
                    let r = client.get(&format!("{path}{q}"));
                    check(who, &format!("GET {path}{q}"), &r);
                    // Found, but it does not open: an error, never a record.
                    if path == base {
                        r.assert_error(500, "internal");
                    }
                    if q.starts_with("?q=") && r.status == 200 {
                        assert_eq!(r.body["items"], json!([]), "{who} {path}{q}");
                    }
                    if path == "/api/v1/export" && *who == "owner" {
                        assert!(!r.complete, "{who} {path}{q}: a whole download");
                    }
                }
            }
        }
        // Writes aimed at A's objects by id.
        for (method, path, body) in [
            ("PATCH", base.clone(), json!({"phone": "0300 0000000"})),
            (
                "PATCH",
                format!("/api/v1/appointments/{apt}"),
                json!({"status": "arrived"}),
            ),
            (
                "PATCH",
                format!("/api/v1/users/{a_nurse_id}"),
                json!({"active": false}),
            ),
        ] {
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let r = client.send(m, &path, Some(body));
            check(who, &format!("{method} {path}"), &r);
        }
    }
    assert!(tried >= 4 * 20, "{tried} requests");
    eprintln!("clinic B tried {tried} requests inside A's database: answers {answers:?}");

    // A's record is what A wrote: no write of B's reached it.
    let r = a_owner.get(&base);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["phone"], "0333 7654321");
    let r = a_owner.get("/api/v1/users");
    assert_eq!(item_where(&r.body, "id", &a_nurse_id)["active"], true);
    // And B's session, user and search words are B's alone: A's owner finds
    // none of them, even though the rows sit in the same file.
    let r = a_owner.get("/api/v1/patients?q=zarghuna");
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
}
