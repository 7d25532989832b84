//! The clinical record: conditions, prescriptions and notes, role by role.
//! Receptionists never reach clinical content, not even inside other
//! responses; only doctors and owners prescribe; a note's author and time are
//! the server's; bad input changes nothing.

use amanah_e2e::{Client, Deployment, PASSWORD};
use serde_json::{json, Value};

const CONDITION: &str = "Gestational diabetes mellitus";
const DRUG: &str = "Metformin hydrochloride";
const NOTE: &str = "Reviewed glucose diary; counselled on diet";

fn count(c: &Client, path: &str) -> usize {
    let r = c.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body["items"].as_array().expect("items").len()
}

#[test]
fn clinical_record_role_by_role() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Clinical Clinic", "owner@clin.pk");
    clinic.add_staff(&owner, "doctor", "doc@clin.pk");
    clinic.add_staff(&owner, "nurse", "nurse@clin.pk");
    clinic.add_staff(&owner, "receptionist", "desk@clin.pk");
    let mut doctor = clinic.login("doc@clin.pk", PASSWORD);
    doctor.enrol_totp(&clinic, PASSWORD);
    let nurse = clinic.login("nurse@clin.pk", PASSWORD);
    let desk = clinic.login("desk@clin.pk", PASSWORD);
    let pid = desk.create_patient(json!({"name": "Clinical Person", "dob": "1991-03-03"}));
    let base = format!("/api/v1/patients/{pid}");

    // Doctor: all three, prescriptions included.
    let c = doctor.post(
        &format!("{base}/conditions"),
        json!({"display": CONDITION, "code": "O24.4", "onset": "2024-05-01", "status": "active"}),
    );
    assert_eq!(c.status, 201, "{}", c.body);
    assert_eq!(c.body["display"], CONDITION);
    assert_eq!(c.body["patient_id"], pid.as_str());
    let rx = doctor.post(
        &format!("{base}/prescriptions"),
        json!({"drug": DRUG, "dose": "500 mg", "route": "oral", "frequency": "twice daily"}),
    );
    assert_eq!(rx.status, 201, "{}", rx.body);
    assert_eq!(rx.body["duration"], Value::Null);
    let doctor_id = rx.body["author_id"].clone();

    // Nurse: reads everything, writes conditions and notes, never prescribes.
    let n = nurse.post(
        &format!("{base}/notes"),
        json!({"kind": "progress", "text": NOTE}),
    );
    assert_eq!(n.status, 201, "{}", n.body);
    assert_eq!(n.body["text"], NOTE);
    assert_ne!(n.body["author_id"], doctor_id, "the nurse wrote it");
    assert!(n.body["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    nurse
        .post(
            &format!("{base}/prescriptions"),
            json!({"drug": "Anything", "dose": "1", "route": "oral", "frequency": "once"}),
        )
        .assert_error(403, "forbidden");
    for kind in ["conditions", "prescriptions", "notes"] {
        assert_eq!(count(&nurse, &format!("{base}/{kind}")), 1, "{kind}");
        assert_eq!(count(&owner, &format!("{base}/{kind}")), 1, "{kind}");
    }

    // Receptionist: refused on every clinical route, and no clinical text in
    // what a receptionist may read.
    for kind in ["conditions", "prescriptions", "notes"] {
        desk.get(&format!("{base}/{kind}"))
            .assert_error(403, "forbidden");
        desk.post(&format!("{base}/{kind}"), json!({"kind": "x", "text": "y"}))
            .assert_error(403, "forbidden");
    }
    for path in [base.clone(), "/api/v1/patients".to_owned()] {
        let r = desk.get(&path);
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.raw).to_string();
        for secret in [CONDITION, DRUG, NOTE] {
            assert!(!text.contains(secret), "{path} shows clinical text");
        }
    }

    // The server sets author and time; unknown or bad fields change nothing.
    nurse
        .post(
            &format!("{base}/notes"),
            json!({"kind": "progress", "text": "x", "author_id": doctor_id}),
        )
        .assert_error(400, "invalid_request");
    nurse
        .post(
            &format!("{base}/notes"),
            json!({"kind": "progress", "text": "x", "created_at": "2020-01-01T00:00:00Z"}),
        )
        .assert_error(400, "invalid_request");
    let bad = doctor.post(
        &format!("{base}/conditions"),
        json!({"display": "Something", "status": "cured"}),
    );
    bad.assert_error(400, "invalid_request");
    assert_eq!(bad.body["error"]["field"], "status");
    doctor
        .post(
            &format!("{base}/conditions"),
            json!({"display": "Future", "onset": "2999-01-01", "status": "active"}),
        )
        .assert_error(400, "invalid_request");
    doctor
        .post(
            &format!("{base}/notes"),
            json!({"kind": "progress", "text": "   "}),
        )
        .assert_error(400, "invalid_request");
    assert_eq!(count(&doctor, &format!("{base}/conditions")), 1);
    assert_eq!(count(&doctor, &format!("{base}/notes")), 1);

    // An unknown or deleted patient has no record.
    doctor
        .get("/api/v1/patients/pat_aaaaaaaaaaaaaaaaaaaaaaaaaa/notes")
        .assert_error(404, "not_found");
    assert_eq!(owner.delete(&base).status, 202);
    doctor
        .get(&format!("{base}/conditions"))
        .assert_error(404, "not_found");
    doctor
        .post(
            &format!("{base}/notes"),
            json!({"kind": "progress", "text": "late"}),
        )
        .assert_error(404, "not_found");

    // Every read and write is on the patient's audit timeline.
    assert_eq!(owner.post_empty(&format!("{base}/restore")).status, 200);
    let timeline = owner.get(&format!("{base}/audit"));
    let actions: Vec<&str> = timeline.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "condition.create",
        "condition.list",
        "prescription.create",
        "prescription.list",
        "note.create",
        "note.list",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

#[test]
fn entries_page_in_order() {
    let d = Deployment::start();
    let (_clinic, owner, _) = d.ready_clinic("ae", "Paging Clinic", "owner@paging.ae");
    let pid = owner.create_patient(json!({"name": "Paged Person", "dob": "1960-06-06"}));
    let path = format!("/api/v1/patients/{pid}/notes");
    for i in 0..5 {
        let r = owner.post(
            &path,
            json!({"kind": "progress", "text": format!("note {i}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let first = owner.get(&format!("{path}?limit=3"));
    let texts = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| n["text"].as_str().expect("text").to_owned())
            .collect()
    };
    assert_eq!(texts(&first.body), ["note 0", "note 1", "note 2"]);
    let cursor = first.body["next_cursor"].as_str().expect("cursor");
    let rest = owner.get(&format!("{path}?limit=3&cursor={cursor}"));
    assert_eq!(texts(&rest.body), ["note 3", "note 4"]);
    assert_eq!(rest.body["next_cursor"], Value::Null);
}
