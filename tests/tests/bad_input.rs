//! Every bad input of API.md's conventions answers its status and error body,
//! carries the security headers, and writes nothing.

use amanah_e2e::{Deployment, Method, Resp};
use serde_json::json;

fn assert_headers(r: &Resp, api: bool) {
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r
        .header("strict-transport-security")
        .is_some_and(|v| v.contains("max-age=")));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|v| v.contains("frame-ancestors 'none'")));
    if api {
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    assert!(r.header("access-control-allow-origin").is_none());
}

/// method, path, headers, body, expected status, code and field.
type Case<'a> = (
    Method,
    String,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
    u16,
    &'a str,
    Option<&'a str>,
);

#[test]
fn bad_requests_answer_in_the_error_shape_and_change_nothing() {
    let d = Deployment::start();
    let (_clinic, owner, _) = d.ready_clinic("pk", "Strict Clinic", "owner@strict.pk");
    let pid = owner.create_patient(json!({"name": "Zainab Malik", "dob": "1992-12-12"}));
    let patient_before = owner.get(&format!("/api/v1/patients/{pid}")).body;
    let list_before = owner.get("/api/v1/patients").body;
    let entries_before = owner.audit_entries();

    let json_ct = [("content-type", "application/json")];
    let big = vec![b' '; 1024 * 1024 + 10];
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/v1/patients".into(), vec![("content-type", "text/plain")], Some(b"name=x".to_vec()), 415, "unsupported_media_type", None),
        (Method::POST, "/api/v1/patients".into(), vec![], Some(br#"{"name":"x","dob":"1990-01-01"}"#.to_vec()), 415, "unsupported_media_type", None),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(b"{not json".to_vec()), 400, "invalid_request", None),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), None, 400, "invalid_request", None),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"name":"x","dob":"1990-01-01","ssn":"1"}"#.to_vec()), 400, "invalid_request", Some("ssn")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"dob":"1990-01-01"}"#.to_vec()), 400, "invalid_request", Some("name")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"name":"x","dob":"1990-02-30"}"#.to_vec()), 400, "invalid_request", Some("dob")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"name":"x","dob":"2999-01-01"}"#.to_vec()), 400, "invalid_request", Some("dob")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"name":"x","dob":"1990-01-01","sex":"robot"}"#.to_vec()), 400, "invalid_request", Some("sex")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"name":5,"dob":"1990-01-01"}"#.to_vec()), 400, "invalid_request", Some("name")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"{"name":"x","dob":"1990-01-01","phone":"call me"}"#.to_vec()), 400, "invalid_request", Some("phone")),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(br#"[1,2]"#.to_vec()), 400, "invalid_request", None),
        (Method::POST, "/api/v1/patients".into(), json_ct.to_vec(), Some(big), 413, "payload_too_large", None),
        (Method::PATCH, format!("/api/v1/patients/{pid}"), json_ct.to_vec(), Some(br#"{"name":null}"#.to_vec()), 400, "invalid_request", Some("name")),
        (Method::PATCH, format!("/api/v1/patients/{pid}"), json_ct.to_vec(), Some(br#"{"email":"nope"}"#.to_vec()), 400, "invalid_request", Some("email")),
        (Method::PATCH, format!("/api/v1/patients/{pid}"), json_ct.to_vec(), Some(br#"{"colour":"red"}"#.to_vec()), 400, "invalid_request", Some("colour")),
        (Method::PATCH, format!("/api/v1/patients/{pid}"), json_ct.to_vec(), Some(br#"{"dob":null}"#.to_vec()), 400, "invalid_request", Some("dob")),
        (Method::GET, "/api/v1/patients?limit=0".into(), vec![], None, 400, "invalid_request", Some("limit")),
        (Method::GET, "/api/v1/patients?limit=201".into(), vec![], None, 400, "invalid_request", Some("limit")),
        (Method::GET, "/api/v1/patients?cursor=forged".into(), vec![], None, 400, "invalid_request", Some("cursor")),
        (Method::GET, "/api/v1/patients?sort=name".into(), vec![], None, 400, "invalid_request", None),
        (Method::GET, "/api/v1/audit?from=yesterday".into(), vec![], None, 400, "invalid_request", Some("from")),
        (Method::POST, "/api/v1/users".into(), json_ct.to_vec(), Some(br#"{"name":"x","email":"x@y.pk","role":"admin","password":"Saffron-Tea-Window-42"}"#.to_vec()), 400, "invalid_request", Some("role")),
        (Method::POST, "/api/v1/users".into(), json_ct.to_vec(), Some(br#"{"name":"x","email":"x@y.pk","role":"nurse","password":"password"}"#.to_vec()), 400, "invalid_request", Some("password")),
        (Method::GET, "/api/v1/nothing-here".into(), vec![], None, 404, "not_found", None),
        (Method::PUT, "/api/v1/patients".into(), vec![], None, 404, "not_found", None),
    ];
    for (method, path, headers, body, status, code, field) in cases {
        let r = owner.raw(method.clone(), &path, &headers, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        r.assert_error(status, code);
        if let Some(f) = field {
            assert_eq!(r.body["error"]["field"], f, "{method} {path}: {}", r.body);
        }
        assert_headers(&r, true);
    }
    // Nothing changed and nothing was recorded.
    assert_eq!(
        owner.get(&format!("/api/v1/patients/{pid}")).body,
        patient_before
    );
    assert_eq!(owner.get("/api/v1/patients").body, list_before);
    // entries_before + the three audited reads just above (get, list, verify)
    assert_eq!(owner.audit_entries(), entries_before + 3);
}

#[test]
fn every_response_carries_the_security_headers() {
    let d = Deployment::start();
    let c = d.client("pk");
    assert_headers(&c.get("/healthz"), false);
    assert_headers(&c.get("/api/v1/regions"), true);
    let r = c.get("/api/v1/patients");
    r.assert_error(401, "unauthenticated");
    assert_headers(&r, true);
}

#[test]
fn a_cross_site_request_changes_nothing() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Csrf Clinic", "owner@csrf.pk");
    let cookie = format!("__Host-amanah_session={}", owner.token.clone().unwrap());
    let browser = owner.anonymous();
    let body = Some(
        json!({"name": "Injected Patient", "dob": "1990-01-01"})
            .to_string()
            .into_bytes(),
    );
    for extra in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let headers = [
            ("content-type", "application/json"),
            ("cookie", cookie.as_str()),
            extra,
        ];
        browser
            .raw(Method::POST, "/api/v1/patients", &headers, body.clone())
            .assert_error(403, "forbidden");
        let r = browser.raw(
            Method::POST,
            "/api/v1/auth/logout",
            &[("cookie", cookie.as_str()), extra],
            None,
        );
        r.assert_error(403, "forbidden");
    }
    assert_eq!(
        owner.get("/api/v1/patients?q=injected").body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(owner.get("/api/v1/auth/session").status, 200);
    let _ = clinic;
}

/// Found by schemathesis: serde takes a struct from a JSON array,
/// positionally, so `[null, null]` once reset both roles' settings. A body,
/// and any object inside it, must be an object that names its fields.
#[test]
fn arrays_in_place_of_objects_are_refused_and_change_nothing() {
    let d = Deployment::start();
    let (_clinic, owner, _) = d.ready_clinic("pk", "Array Clinic", "owner@array.pk");
    let narrowed = json!({"nurse": ["patient_read"]});
    let r = owner.send(Method::PUT, "/api/v1/clinic/roles", Some(narrowed));
    assert_eq!(r.status, 200, "{}", r.body);
    for body in [
        json!([null, null]),
        json!([["patient_read"], null]),
        json!([]),
    ] {
        owner
            .send(Method::PUT, "/api/v1/clinic/roles", Some(body))
            .assert_error(400, "invalid_request");
    }
    let roles = owner.get("/api/v1/clinic/roles");
    let nurse = amanah_e2e::item_where(&roles.body, "role", "nurse");
    assert_eq!(nurse["permissions"], json!(["patient_read"]), "unchanged");

    // An object inside the body: the owner at sign-up.
    let r = d.client("pk").anonymous().post(
        "/api/v1/clinics",
        json!({"name": "Positional", "region": "pk",
               "owner": ["Dr Array", "array@positional.pk", "a long passphrase 42"]}),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "owner");
}
