//! Idempotency keys on writes: a request sent again under its key gets the
//! first answer back and writes nothing twice; the key cannot be reused for
//! another request, by another user, or after a day; two requests racing
//! under one key make one record; the stored answers are ciphertext.

use amanah_e2e::{fresh_key, Deployment, PASSWORD};
use serde_json::json;

const PATIENTS: &str = "/api/v1/patients";

fn patient_count(c: &amanah_e2e::Client) -> usize {
    let r = c.get("/api/v1/patients?limit=200");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().expect("items").len()
}

#[test]
fn a_write_sent_again_under_its_key_is_answered_once_and_audited_as_a_replay() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Retry Clinic", "owner@retry.pk");
    clinic.add_staff(&owner, "receptionist", "desk@retry.pk");
    let desk = clinic.login("desk@retry.pk", PASSWORD);
    let key = fresh_key();
    let body = json!({"name": "Once Only Patient", "dob": "1971-03-04", "phone": "0300 1112223"});

    let first = desk.post_with_key(PATIENTS, &key, &body);
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed());
    let again = desk.post_with_key(PATIENTS, &key, &body);
    assert_eq!(again.status, 201, "{}", again.body);
    assert!(again.replayed(), "the answer says it is a replay");
    assert_eq!(again.body, first.body, "the first answer, word for word");
    assert_eq!(patient_count(&owner), 1);

    // The trail shows the create once, and the replay as what it was.
    let id = first.body["id"].as_str().unwrap();
    let r = owner.get("/api/v1/audit?action=patient.create");
    assert_eq!(r.status, 200, "{}", r.body);
    let outcomes: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["patient_id"], id, "{e}");
            e["outcome"].as_str().unwrap()
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{}", r.body);
    assert!(outcomes.contains(&"success") && outcomes.contains(&"replayed"));
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);

    // Updates take keys too: the second PATCH is the first one's answer.
    let path = format!("{PATIENTS}/{id}");
    let patch = |k: &str, phone: &str| {
        desk.raw(
            amanah_e2e::Method::PATCH,
            &path,
            &[("content-type", "application/json"), ("idempotency-key", k)],
            Some(json!({"phone": phone}).to_string().into_bytes()),
        )
    };
    let k2 = fresh_key();
    let p1 = patch(&k2, "0300 9998887");
    assert_eq!(p1.status, 200, "{}", p1.body);
    let p2 = patch(&k2, "0300 9998887");
    assert!(p2.replayed());
    assert_eq!(p2.body, p1.body);
}

#[test]
fn a_key_is_one_users_for_one_request_for_one_day() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("ae", "Key Clinic", "owner@key.ae");
    clinic.add_staff(&owner, "nurse", "nurse@key.ae");
    clinic.add_staff(&owner, "receptionist", "desk@key.ae");
    let nurse = clinic.login("nurse@key.ae", PASSWORD);
    let desk = clinic.login("desk@key.ae", PASSWORD);
    let key = fresh_key();
    let body = json!({"name": "Keyed Patient", "dob": "1980-01-01"});
    assert_eq!(nurse.post_with_key(PATIENTS, &key, &body).status, 201);

    // The same key with another body, or on another route: refused, nothing
    // written.
    let r = nurse.post_with_key(
        PATIENTS,
        &key,
        &json!({"name": "Other Patient", "dob": "1980-01-01"}),
    );
    r.assert_error(409, "conflict");
    assert!(!r.replayed());
    let id = nurse.get("/api/v1/patients").body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = nurse.post_with_key(
        &format!("{PATIENTS}/{id}/notes"),
        &key,
        &json!({"kind": "progress", "text": "a note"}),
    );
    r.assert_error(409, "conflict");
    assert_eq!(patient_count(&owner), 1);

    // Another user's key of the same text is their own.
    let r = desk.post_with_key(PATIENTS, &key, &body);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.replayed());
    assert_eq!(patient_count(&owner), 2);

    // A key that is not one: 400, nothing written.
    for bad in ["", "with space", &"k".repeat(129)] {
        let r = nurse.post_with_key(PATIENTS, bad, &body);
        r.assert_error(400, "invalid_request");
    }
    assert_eq!(patient_count(&owner), 2);

    // A day later the key is forgotten: the same request writes again.
    clinic.advance(24 * 60 * 60 + 60);
    let nurse = clinic.login("nurse@key.ae", PASSWORD);
    let r = nurse.post_with_key(PATIENTS, &key, &body);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.replayed());
    // (the owner's session ended with the day; count as the nurse)
    assert_eq!(patient_count(&nurse), 3);
    // ...and that write dropped the day-old records: only its own is left.
    let rows = d
        .scalar("ae", Some(&clinic), "SELECT count(*) FROM idempotency")
        .expect("a deployment whose databases can be read")
        .unwrap();
    assert_eq!(rows, json!(1));
}

#[test]
fn requests_racing_under_one_key_make_one_record() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Race Clinic", "owner@race.pk");
    clinic.add_staff(&owner, "nurse", "nurse@race.pk");
    let nurse = clinic.login("nurse@race.pk", PASSWORD);
    for round in 0..3 {
        let key = fresh_key();
        let body = json!({"name": format!("Raced Patient{round}"), "dob": "1990-02-02"});
        let answers: Vec<_> = (0..6)
            .map(|_| {
                let (c, key, body) = (nurse.clone(), key.clone(), body.clone());
                std::thread::spawn(move || {
                    // a 503 here is the database's lock, asked again
                    for _ in 0..4 {
                        let r = c.post_with_key(PATIENTS, &key, &body);
                        if r.status != 503 {
                            return r;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(300));
                    }
                    panic!("503 four times");
                })
            })
            .map(|t| t.join().expect("racer"))
            .collect();
        let ids: std::collections::BTreeSet<_> = answers
            .iter()
            .map(|r| {
                assert_eq!(r.status, 201, "{}", r.body);
                r.body["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1, "one record for one key");
        assert_eq!(answers.iter().filter(|r| !r.replayed()).count(), 1);
    }
    assert_eq!(patient_count(&owner), 3);
}

#[test]
fn stored_answers_are_ciphertext_under_opaque_ids() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Sealed Clinic", "owner@sealed.pk");
    let key = "visible-key-Zarghuna";
    let r = owner.post_with_key(
        PATIENTS,
        key,
        &json!({"name": "Zarghuna Sealedname", "dob": "1965-07-08", "national_id": "35202-1234567-1"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = "SELECT count(*) FROM idempotency \
               WHERE instr(id, 'Zarghuna') > 0 OR instr(reply, CAST('Zarghuna' AS BLOB)) > 0 \
               OR instr(reply, CAST('Sealedname' AS BLOB)) > 0 OR instr(reply, CAST('35202' AS BLOB)) > 0";
    let found = d
        .scalar("pk", Some(&clinic), sql)
        .expect("a deployment whose databases can be read")
        .unwrap();
    assert_eq!(found, json!(0), "neither key nor patient data in the clear");
    let total = d
        .scalar("pk", Some(&clinic), "SELECT count(*) FROM idempotency")
        .expect("readable")
        .unwrap();
    assert_eq!(total, json!(1));
}
