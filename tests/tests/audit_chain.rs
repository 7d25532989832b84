//! The audit trail records every access with its actor, and tampering done
//! directly on the database file is reported at the first bad entry.

use amanah_e2e::{Deployment, Method, PASSWORD};
use serde_json::json;

#[test]
fn accesses_are_recorded_and_the_patient_timeline_is_newest_first() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("ae", "Audit Clinic", "owner@audit.ae");
    clinic.add_staff(&owner, "nurse", "nurse@audit.ae");
    let nurse = clinic.login("nurse@audit.ae", PASSWORD);
    let pid = nurse.create_patient(json!({"name": "Fatima Al Mansoori", "dob": "2001-09-09"}));
    let r = nurse.raw(
        Method::GET,
        &format!("/api/v1/patients/{pid}"),
        &[("x-access-reason", "triage")],
        None,
    );
    assert_eq!(r.status, 200);
    nurse.patch(
        &format!("/api/v1/patients/{pid}"),
        json!({"phone": "+971 50 123 4567"}),
    );

    let r = owner.get(&format!("/api/v1/patients/{pid}/audit"));
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["patient.update", "patient.read", "patient.create"]
    );
    let read = &items[1];
    assert_eq!(read["role"], "nurse");
    assert_eq!(read["reason"], "triage");
    assert_eq!(read["outcome"], "success");
    if d.knows_client_address {
        assert_eq!(read["ip"], "127.0.0.1");
    } else {
        assert!(read["ip"].is_null(), "no address is made up");
    }
    assert_eq!(read["patient_id"], pid.as_str());
    assert!(read["on_behalf_of"].is_null());
    assert!(read["at"].as_str().unwrap().ends_with('Z'));
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]));
    // No personal data in entries.
    assert!(!r.body.to_string().contains("Fatima"));

    // Logins and failed logins are on the record too.
    let _ = amanah_e2e::Client::new(&clinic.base).post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "nurse@audit.ae", "password": "wrong password!!"}),
    );
    let r = owner.get("/api/v1/audit?action=auth.login");
    let outcomes: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"failure") && outcomes.contains(&"success"),
        "{outcomes:?}"
    );
    // Filters and paging.
    let r = owner.get("/api/v1/audit?limit=2");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let next = r.body["next_cursor"].as_str().unwrap();
    let r2 = owner.get(&format!("/api/v1/audit?limit=2&cursor={next}"));
    assert!(r2.body["items"][0]["seq"].as_i64() < r.body["items"][1]["seq"].as_i64());

    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true);
    assert_eq!(v.body["head"].as_str().unwrap().len(), 64);
}

/// Seeds a clinic, then, as an attacker holding its database file, drops the
/// append-only triggers and runs `statements`. Returns what verification
/// says afterwards, or `None` where this deployment's files cannot be reached.
fn tamper_case(statements: &[&str]) -> Option<serde_json::Value> {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Tamper Clinic", "owner@tamper.pk");
    for i in 0..4 {
        owner.create_patient(json!({"name": format!("Patient Number{i}"), "dob": "1990-01-01"}));
    }
    assert!(owner.audit_entries() >= 6);
    let mut attack = vec![
        "DROP TRIGGER audit_no_update",
        "DROP TRIGGER audit_no_delete",
    ];
    attack.extend_from_slice(statements);
    d.clinic_sql(&clinic, &attack)?.expect("tamper");
    Some(owner.get("/api/v1/audit/verify").body)
}

#[test]
fn the_database_refuses_updates_and_deletes_of_audit_rows() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Append Only", "owner@append.pk");
    owner.audit_entries();
    let Some(e) = d.clinic_sql(
        &clinic,
        &["UPDATE audit SET action = 'nothing' WHERE seq = 1"],
    ) else {
        return;
    };
    let e = e.unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    let e = d
        .clinic_sql(&clinic, &["DELETE FROM audit WHERE seq = 1"])
        .expect("reachable")
        .unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    assert_eq!(owner.get("/api/v1/audit/verify").body["ok"], true);
}

#[test]
fn an_edited_row_is_reported_at_that_row() {
    let Some(v) = tamper_case(&["UPDATE audit SET actor = 'usr_someoneelse' WHERE seq = 4"]) else {
        return;
    };
    assert_eq!(v, json!({"ok": false, "first_bad_seq": 4}));
}

#[test]
fn a_deleted_row_is_reported_where_it_was() {
    let Some(v) = tamper_case(&["DELETE FROM audit WHERE seq = 3"]) else {
        return;
    };
    assert_eq!(v, json!({"ok": false, "first_bad_seq": 3}));
}

#[test]
fn reordered_rows_are_reported() {
    // Swap the contents of rows 2 and 5 (hashes travel with them).
    let Some(v) = tamper_case(&[
        "UPDATE audit SET seq = -2 WHERE seq = 2",
        "UPDATE audit SET seq = 2 WHERE seq = 5",
        "UPDATE audit SET seq = 5 WHERE seq = -2",
    ]) else {
        return;
    };
    assert_eq!(v, json!({"ok": false, "first_bad_seq": 2}));
}

#[test]
fn an_inserted_row_is_reported() {
    // A forged entry slipped in after row 3, later rows renumbered.
    let Some(v) = tamper_case(&[
        "UPDATE audit SET seq = seq + 1000 WHERE seq > 3",
        "UPDATE audit SET seq = seq - 999 WHERE seq > 1000",
        "INSERT INTO audit (seq, at, actor, action, outcome, prev_hash, hash) \
         SELECT 4, at, actor, 'patient.read', 'success', hash, hash FROM audit WHERE seq = 3",
    ]) else {
        return;
    };
    assert_eq!(v, json!({"ok": false, "first_bad_seq": 4}));
}
