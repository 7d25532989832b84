//! Support access as API.md gives it, tried as an attacker would: platform
//! staff sign in with TOTP always, reach a clinic only through a ticket its
//! owner approved, read-only, for 30 minutes from the start whatever the
//! activity, visibly and on both audit records; tokens of one kind never
//! stand in for another, and another clinic stays out of reach.

use amanah_e2e::{totp_code, unix_now, Client, Deployment, Method, Resp, PASSWORD};
use serde_json::json;

const REASON: (&str, &str) = ("x-access-reason", "ticket T-1001: appointments missing");

fn as_support(c: &Client, method: Method, path: &str) -> Resp {
    c.raw(method, path, &[REASON], None)
}

#[test]
fn support_reaches_one_clinic_by_approved_ticket_for_30_minutes() {
    let d = Deployment::start();
    let (clinic, owner, owner_secret) = d.ready_clinic("pk", "Help Clinic", "owner@help.pk");
    let (_, other_owner, _) = d.ready_clinic("pk", "Other Clinic", "owner@other-help.pk");
    let pid = owner.create_patient(json!({"name": "Bilquis Edhi", "dob": "1947-08-14"}));
    let r = owner.post(
        &format!("/api/v1/patients/{pid}/conditions"),
        json!({"display": "Hypertension", "status": "active"}),
    );
    assert_eq!(r.status, 201);
    let other_pid =
        other_owner.create_patient(json!({"name": "Other Person", "dob": "1960-01-01"}));
    let (staff_id, secret) = d.add_platform_staff("pk", "support", "agent@amanah.example");

    // Sign-in: TOTP always, no code reuse.
    let anon = d.client("pk");
    let login = |code: String| {
        anon.post(
            "/api/v1/support/login",
            json!({"email": "agent@amanah.example", "password": PASSWORD, "code": code}),
        )
    };
    login("000000".into()).assert_error(401, "unauthenticated");
    let code = totp_code(&secret, unix_now());
    let r = login(code.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("__Host-amanah_staff=") && c.contains("HttpOnly")));
    let staff = anon.with_bearer(r.body["token"].as_str().unwrap());
    login(code).assert_error(401, "unauthenticated");

    // Kinds of token never stand in for each other.
    staff
        .get("/api/v1/patients")
        .assert_error(401, "unauthenticated");
    owner
        .post(
            "/api/v1/support/access-requests",
            json!({"clinic": clinic.id, "ticket": "T-1", "reason": "x"}),
        )
        .assert_error(401, "unauthenticated");

    // The request: checked input, region guard, then pending.
    let ask = |clinic_id: &str, ticket: &str| {
        staff.post(
            "/api/v1/support/access-requests",
            json!({"clinic": clinic_id, "ticket": ticket, "reason": "Appointments missing from the day list"}),
        )
    };
    let r = ask(&clinic.id, "T 1001; drop");
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "ticket");
    ask("not-a-clinic", "T-1001").assert_error(400, "invalid_request");
    let ae = d.sign_up("ae", "Far Clinic", "owner@far.ae");
    ask(&ae.id, "T-1001").assert_error(421, "wrong_region");
    let r = ask(&clinic.id, "T-1001");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    let request = r.body["id"].as_str().unwrap().to_owned();
    let start = format!("/api/v1/support/access-requests/{request}/session");
    staff.post_empty(&start).assert_error(409, "conflict");

    // Only this clinic's owner sees and approves it.
    let r = owner.get("/api/v1/access-requests");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"][0]["ticket"], "T-1001");
    assert_eq!(
        r.body["items"][0]["reason"],
        "Appointments missing from the day list"
    );
    assert_eq!(r.body["items"][0]["status"], "pending");
    assert_eq!(
        other_owner.get("/api/v1/access-requests").body["items"],
        json!([])
    );
    let approve = format!("/api/v1/access-requests/{request}/approve");
    other_owner
        .post_empty(&approve)
        .assert_error(404, "not_found");
    clinic.add_staff(&owner, "receptionist", "desk@help.pk");
    clinic
        .login("desk@help.pk", PASSWORD)
        .post_empty(&approve)
        .assert_error(403, "forbidden");
    let r = owner.post_empty(&approve);
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("approved")),
        "{}",
        r.body
    );
    owner.post_empty(&approve).assert_error(409, "conflict");

    // The session: one per approval, visibly impersonating.
    let r = staff.post_empty(&start);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["impersonation"]["ticket"], "T-1001");
    assert_eq!(r.body["impersonation"]["support_user"], staff_id.as_str());
    let support = anon.with_bearer(r.body["token"].as_str().unwrap());
    staff.post_empty(&start).assert_error(409, "conflict");

    // A reason on every request; reading, never writing.
    support
        .get(&format!("/api/v1/patients/{pid}"))
        .assert_error(400, "invalid_request");
    let r = as_support(&support, Method::GET, &format!("/api/v1/patients/{pid}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Bilquis Edhi");
    let banner = r.header("x-impersonation").unwrap_or_default().to_owned();
    assert!(banner.starts_with("ticket=T-1001; expires=20"), "{banner}");
    let r = as_support(
        &support,
        Method::GET,
        &format!("/api/v1/patients/{pid}/conditions"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for (method, path) in [
        (Method::POST, "/api/v1/patients".to_owned()),
        (Method::DELETE, format!("/api/v1/patients/{pid}")),
        (Method::GET, "/api/v1/users".to_owned()),
        (Method::GET, "/api/v1/clinic".to_owned()),
        (Method::GET, "/api/v1/access-requests".to_owned()),
        (
            Method::POST,
            format!("/api/v1/access-requests/{request}/approve"),
        ),
        (Method::POST, "/api/v1/auth/password".to_owned()),
    ] {
        let r = support.raw(method.clone(), &path, &[REASON], None);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert!(r.header("x-impersonation").is_some(), "{path}");
    }
    // Another clinic's patient does not exist for this session.
    as_support(
        &support,
        Method::GET,
        &format!("/api/v1/patients/{other_pid}"),
    )
    .assert_error(404, "not_found");
    let r = as_support(&support, Method::GET, "/api/v1/auth/session");
    assert_eq!(r.body["user"]["role"], "support");
    assert_eq!(r.body["clinic"]["id"], clinic.id.as_str());

    // Both identities in the clinic's chain, and in the platform stream.
    let r = owner.get(&format!("/api/v1/audit?actor={staff_id}"));
    let items = r.body["items"].as_array().unwrap().clone();
    assert!(items.len() >= 4, "{}", r.body);
    for e in &items {
        assert_eq!(e["role"], "support", "{e}");
        let obo = e["on_behalf_of"].as_str().unwrap_or_default();
        assert!(obo.contains("ticket:T-1001"), "{e}");
    }
    assert!(items.iter().any(|e| e["action"] == "patient.read"
        && e["reason"] == REASON.1
        && e["on_behalf_of"]
            .as_str()
            .unwrap()
            .contains(&format!("approved_by:{}", clinic.owner_id))));
    assert_eq!(owner.get("/api/v1/audit/verify").body["ok"], true);
    let platform = d
        .scalar(
            "pk",
            None,
            &format!("SELECT count(*) FROM audit WHERE actor = '{staff_id}' AND resource LIKE 'clinic/{}%'", clinic.id),
        )
        .expect("directory reachable")
        .unwrap();
    assert!(platform.as_i64().unwrap() >= 4, "{platform}");

    // 30 minutes from the start, whatever the activity.
    clinic.advance(20 * 60);
    assert_eq!(
        as_support(&support, Method::GET, &format!("/api/v1/patients/{pid}")).status,
        200
    );
    clinic.advance(9 * 60);
    assert_eq!(
        as_support(&support, Method::GET, "/api/v1/patients").status,
        200
    );
    clinic.advance(2 * 60);
    as_support(&support, Method::GET, &format!("/api/v1/patients/{pid}"))
        .assert_error(401, "unauthenticated");
    // The owner sees the approval used.
    let owner = clinic.login_with_totp(&clinic.owner_email, PASSWORD, &owner_secret);
    let r = owner.get("/api/v1/access-requests");
    assert_eq!(r.body["items"][0]["status"], "used");
}
