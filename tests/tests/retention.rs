//! Retention per region (API.md "Retention per region"): in `ae` the law
//! keeps health records 25 years, so a deleted patient, or a clinic that
//! leaves, is archived (hidden at once, kept encrypted, exported with
//! `archived_at`, restorable by the owner) until 25 years after the last
//! clinical activity, and purged only when the clinic's test clock passes
//! that. Pakistan's 30-day grace is `patients` and `deletion`'s business
//! and unchanged. Every host.

use amanah_e2e::{Client, Deployment, PASSWORD};
use amanah_functions::clock::{add_years, parse_rfc3339, DAY};
use serde_json::{json, Value};

fn exported_patient(owner: &Client, id: &str) -> Option<Value> {
    let r = owner.get("/api/v1/export?format=json");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["tables"]["patients"]
        .as_array()
        .expect("patients")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
}

fn found(owner: &Client, q: &str) -> usize {
    let r = owner.post("/api/v1/patients/search", json!({ "q": q }));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().len()
}

#[test]
fn regions_say_what_they_keep_and_under_which_law() {
    let d = Deployment::start();
    let r = d.client("ae").get("/api/v1/regions");
    assert_eq!(r.status, 200);
    let region = |id: &str| {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(region("ae")["retention"]["years"], 25);
    assert!(region("ae")["retention"]["law"]
        .as_str()
        .unwrap()
        .contains("Federal Law No. 2 of 2019"));
    assert!(region("pk")["retention"].is_null());
}

#[test]
fn a_uae_patient_is_archived_until_25_years_after_the_last_visit_then_purged() {
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("ae", "Keep Clinic", "owner@keep.ae");
    let nurse = clinic.add_staff(&owner, "nurse", "nurse@keep.ae");
    let pid = owner.create_patient(json!({"name": "Mariam Archived", "dob": "1970-04-04"}));
    let base = format!("/api/v1/patients/{pid}");
    let r = owner.post(
        &format!("{base}/conditions"),
        json!({"display": "Diabetes", "status": "active"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // A booking still to come is no activity yet.
    owner.book_appointment(&pid, &nurse, "2040-01-01T09:00:00Z", "2040-01-01T09:20:00Z");
    let before = clinic.now();

    let r = owner.delete(&base);
    assert_eq!(r.status, 202, "{}", r.body);
    let purge_after = parse_rfc3339(r.body["purge_after"].as_str().unwrap()).unwrap();
    let end = add_years(before, 25);
    assert!(
        (end - 5..=end + 120).contains(&purge_after),
        "purge_after {purge_after}, 25 years on {end}"
    );
    // Archived: gone from reads, lists, search and the schedule at once.
    owner.get(&base).assert_error(404, "not_found");
    owner
        .get(&format!("{base}/conditions"))
        .assert_error(404, "not_found");
    assert_eq!(found(&owner, "mariam"), 0);
    let r = owner.get("/api/v1/appointments?from=2040-01-01T00:00:00Z&to=2040-01-02T00:00:00Z");
    assert_eq!(r.body["items"], json!([]), "{}", r.body);
    // ... but in the clinic's export, marked.
    let p = exported_patient(&owner, &pid).expect("an archived patient is exported");
    assert!(p["archived_at"].is_string(), "{p}");
    assert_eq!(p["name"], "Mariam Archived");

    // The 30-day grace passes: the purge keeps the record; the owner brings
    // it back.
    clinic.advance(31 * DAY);
    let text = d.run_purge("ae");
    let owner = clinic.login_with_totp(&clinic.owner_email, PASSWORD, &secret);
    let r = owner.post_empty(&format!("{base}/restore"));
    assert_eq!(r.status, 200, "{} (purge said {text})", r.body);
    assert_eq!(r.body["name"], "Mariam Archived");
    assert_eq!(found(&owner, "mariam"), 1);

    // Deleted again, and 25 years pass: purged, for good.
    assert_eq!(owner.delete(&base).status, 202);
    // (The test clock moves at most a year a call.)
    for _ in 0..26 {
        clinic.advance(355 * DAY);
    }
    assert!(clinic.now() > purge_after + 30 * DAY);
    d.run_purge("ae");
    let owner = clinic.login_with_totp(&clinic.owner_email, PASSWORD, &secret);
    owner
        .post_empty(&format!("{base}/restore"))
        .assert_error(404, "not_found");
    assert!(exported_patient(&owner, &pid).is_none());
    let r = owner.get("/api/v1/audit?limit=200");
    assert_eq!(r.status, 200, "{}", r.body);
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"patient.purge"), "{actions:?}");
}

#[test]
fn a_uae_clinic_that_leaves_is_kept_archived_and_its_owner_may_come_back() {
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("ae", "Leaving Clinic", "owner@leaving.ae");
    let pid = owner.create_patient(json!({"name": "Kept Person", "dob": "1980-01-01"}));
    let before = clinic.now();
    let r = owner.post("/api/v1/clinic/deletion", json!({"password": PASSWORD}));
    assert_eq!(r.status, 202, "{}", r.body);
    let purge_after = parse_rfc3339(r.body["purge_after"].as_str().unwrap()).unwrap();
    let end = add_years(before, 25);
    assert!(
        (end - 5..=end + 120).contains(&purge_after),
        "{purge_after} {end}"
    );

    // Past the grace period the purge leaves it; the owner signs in, takes
    // the export, and cancels.
    clinic.advance(31 * DAY);
    d.run_purge("ae");
    let owner = clinic.login_with_totp(&clinic.owner_email, PASSWORD, &secret);
    owner.get("/api/v1/patients").assert_error(409, "conflict");
    assert!(exported_patient(&owner, &pid).is_some());
    assert_eq!(owner.delete("/api/v1/clinic/deletion").status, 204);
    assert_eq!(owner.get(&format!("/api/v1/patients/{pid}")).status, 200);
}
