//! Per-clinic role settings: the owner narrows or widens what nurses and
//! receptionists may do, never past the fixed ceilings, and a change applies
//! to a signed-in user's very next request.

use amanah_e2e::{Deployment, PASSWORD};
use serde_json::{json, Value};

fn role<'a>(body: &'a Value, name: &str) -> &'a Value {
    amanah_e2e::item_where(body, "role", name)
}

#[test]
fn owners_adjust_nurses_and_receptionists_within_the_ceilings() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Roles Clinic", "owner@roles.pk");
    clinic.add_staff(&owner, "nurse", "nurse@roles.pk");
    clinic.add_staff(&owner, "receptionist", "desk@roles.pk");
    let nurse = clinic.login("nurse@roles.pk", PASSWORD);
    let desk = clinic.login("desk@roles.pk", PASSWORD);
    let pid = owner.create_patient(json!({"name": "Roles Person", "dob": "1970-07-07"}));

    let r = owner.get("/api/v1/clinic/roles");
    assert_eq!(r.status, 200, "{}", r.body);
    let n = role(&r.body, "nurse");
    assert_eq!(n["adjustable"], true);
    assert_eq!(n["permissions"], n["default"]);
    assert!(n["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("clinical_read")));
    assert_eq!(role(&r.body, "doctor")["adjustable"], false);
    let ceiling = role(&r.body, "receptionist")["ceiling"].clone();
    for never in [
        "clinical_read",
        "clinical_write",
        "prescription_write",
        "staff_manage",
    ] {
        assert!(
            !ceiling.as_array().unwrap().contains(&json!(never)),
            "{never}"
        );
    }
    nurse
        .get("/api/v1/clinic/roles")
        .assert_error(403, "forbidden");
    desk.send(
        amanah_e2e::Method::PUT,
        "/api/v1/clinic/roles",
        Some(json!({"receptionist": ["patient_read"]})),
    )
    .assert_error(403, "forbidden");

    // Beyond a ceiling, unknown names, unknown roles: 400, and nothing changes.
    let put = |body: Value| owner.send(amanah_e2e::Method::PUT, "/api/v1/clinic/roles", Some(body));
    let entries = owner.audit_entries();
    for (body, field) in [
        (
            json!({"receptionist": ["patient_read", "clinical_read"]}),
            Some("receptionist"),
        ),
        (json!({"nurse": ["prescription_write"]}), Some("nurse")),
        (json!({"nurse": ["staff_manage"]}), Some("nurse")),
        (json!({"nurse": ["fly"]}), Some("nurse")),
        (json!({"doctor": []}), None),
        (json!({"nurse": "clinical_read"}), None),
    ] {
        let r = put(body.clone());
        r.assert_error(400, "invalid_request");
        if let Some(f) = field {
            assert_eq!(r.body["error"]["field"], f, "{body}");
        }
    }
    // Bad input writes nothing (the one new entry is the verification's own).
    assert_eq!(owner.audit_entries(), entries + 1);
    assert_eq!(
        desk.get(&format!("/api/v1/patients/{pid}/conditions"))
            .status,
        403
    );

    // Narrow the nurse, widen the receptionist: the same sessions feel it at once.
    assert_eq!(
        nurse
            .get(&format!("/api/v1/patients/{pid}/conditions"))
            .status,
        200
    );
    let r = put(json!({
        "nurse": ["patient_read", "schedule_read"],
        "receptionist": ["patient_read", "patient_write", "schedule_read", "schedule_write", "patient_delete"],
    }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        role(&r.body, "nurse")["permissions"],
        json!(["patient_read", "schedule_read"])
    );
    nurse
        .get(&format!("/api/v1/patients/{pid}/conditions"))
        .assert_error(403, "forbidden");
    nurse
        .post(
            "/api/v1/patients",
            json!({"name": "New Person", "dob": "2001-01-01"}),
        )
        .assert_error(403, "forbidden");
    assert_eq!(nurse.get(&format!("/api/v1/patients/{pid}")).status, 200);
    assert_eq!(desk.delete(&format!("/api/v1/patients/{pid}")).status, 202);
    assert_eq!(
        desk.post_empty(&format!("/api/v1/patients/{pid}/restore"))
            .status,
        200
    );

    // `null` restores a role's defaults; an absent role stays as it is.
    let r = put(json!({"nurse": null}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        role(&r.body, "nurse")["permissions"],
        role(&r.body, "nurse")["default"]
    );
    assert!(role(&r.body, "receptionist")["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("patient_delete")));
    assert_eq!(
        nurse
            .get(&format!("/api/v1/patients/{pid}/conditions"))
            .status,
        200
    );

    // Every change is in the audit trail as a permission change, and so is
    // the receptionist's refused attempt.
    let r = owner.get("/api/v1/audit?action=clinic.roles.update");
    let outcomes: Vec<(&str, &str)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["role"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("owner", "success"),
            ("owner", "success"),
            ("receptionist", "denied")
        ],
        "{}",
        r.body
    );
}
