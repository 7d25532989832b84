//! Restarts and concurrency: migrations re-run harmlessly on open, root keys
//! are reused, every acknowledged write survives a kill, and parallel writers
//! to one clinic keep a single unbroken audit chain.

use amanah_e2e::{Deployment, PASSWORD};
use serde_json::json;

#[test]
fn data_keys_and_schema_survive_a_kill_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut d = Deployment::start_native_in(&data, &[]);
    let (clinic, owner, secret) = d.ready_clinic("pk", "Restart Clinic", "owner@restart.pk");
    let pid = owner.create_patient(
        json!({"name": "Durable Person", "dob": "1960-06-06", "phone": "0300 5550001"}),
    );
    let entries = owner.audit_entries();
    let key = std::fs::read(data.join("keys/pk.root.key")).unwrap();
    d.kill();

    let d2 = Deployment::start_native_in(&data, &[]);
    assert_eq!(
        std::fs::read(data.join("keys/pk.root.key")).unwrap(),
        key,
        "root key reused, not replaced"
    );
    let clinic = amanah_e2e::Clinic {
        base: d2.pk.clone(),
        ..clinic
    };
    clinic.advance(60); // a fresh TOTP step
    let owner = clinic.login_with_totp(&clinic.owner_email, PASSWORD, &secret);
    let r = owner.get(&format!("/api/v1/patients/{pid}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Durable Person");
    assert_eq!(owner.get("/api/v1/patients?q=05550001").status, 200);
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);
    assert!(v.body["entries"].as_i64().unwrap() > entries);
}

#[test]
fn parallel_writers_keep_one_unbroken_chain() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("ae", "Busy Clinic", "owner@busy.ae");
    clinic.add_staff(&owner, "nurse", "nurse@busy.ae");
    let nurse = clinic.login("nurse@busy.ae", PASSWORD);
    let before = owner.audit_entries();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = nurse.clone();
            std::thread::spawn(move || {
                let mut replays = 0;
                for i in 0..10 {
                    // Under load a host may give up on a write that sqld
                    // then commits (503); the retry under the same key
                    // returns that write, so nothing is made twice.
                    let r = c.post_once(
                        "/api/v1/patients",
                        json!({"name": format!("Parallel Person{t}x{i}"), "dob": "1990-01-01"}),
                    );
                    assert_eq!(r.status, 201, "{}", r.body);
                    replays += usize::from(r.replayed());
                    let path = format!("/api/v1/patients/{}", r.body["id"].as_str().unwrap());
                    let r = c.send_setup(amanah_e2e::Method::GET, &path, None);
                    assert_eq!(r.status, 200, "{}", r.body);
                }
                replays
            })
        })
        .collect();
    let replays: usize = threads
        .into_iter()
        .map(|t| t.join().expect("writer thread"))
        .sum();
    let r = owner.get("/api/v1/patients?limit=200");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 80);
    // 80 creates + 80 reads + each replayed answer + the verify before +
    // the list above
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);
    assert_eq!(
        v.body["entries"].as_i64().unwrap(),
        before + 1 + 160 + replays as i64 + 1
    );
}
