//! How many round trips to the libSQL server one API request costs on a host
//! whose databases are remote (the Worker, Spin). Counted by the server
//! itself (sqld's HTTP response counter), so what is measured is what
//! crossed the network. The bounds are the design (DESIGN.md, "The request
//! on a remote database"): the directory's key lookup and the clinic's
//! first batch — the session, the audit chain's head and the reads the
//! route declares, in a snapshot without the lock — sent at the same time
//! where the host can (the Worker); then one write batch that commits or
//! rolls back inside the server. Three in all, two one after another. A
//! search needs the clinic's blind-index keys for its read: the Worker
//! keeps them between requests, Spin (an instance per request) takes a
//! third round trip for it. A sign-in: the directory (keys and throttling
//! counters in one batch), the clinic's read, the commit with the
//! counters' writes beside it. With test hooks on, each request also reads
//! its clinic's test clock: one more.

use amanah_e2e::{Deployment, HostKind, PASSWORD};
use serde_json::json;

#[test]
fn requests_cost_the_designed_number_of_round_trips() {
    let d = Deployment::start();
    let Some(sqld) = d.sqld("pk").cloned() else {
        eprintln!("skipped: this deployment's databases are local files");
        return;
    };
    let (clinic, owner, _) = d.ready_clinic("pk", "Round Trip Clinic", "owner@trips.pk");
    clinic.add_staff(&owner, "nurse", "nurse@trips.pk");
    let pid = owner.create_patient(json!({"name": "Counted Person", "dob": "1970-01-01"}));

    let trips = |f: &dyn Fn() -> u16| {
        let before = sqld.answered_requests();
        let status = f();
        (status, sqld.answered_requests() - before)
    };
    let test_clock = 1;
    // Spin keeps no blind-index keys between requests.
    let search = if d.host == HostKind::Spin { 4 } else { 3 };
    let nurse_login = json!({"clinic": clinic.id, "email": "nurse@trips.pk", "password": PASSWORD});
    let cases: Vec<(&str, u64, (u16, u64))> = vec![
        (
            "GET /api/v1/patients/{id}",
            3,
            trips(&|| owner.get(&format!("/api/v1/patients/{pid}")).status),
        ),
        (
            "GET /api/v1/patients?q=",
            search,
            trips(&|| owner.get("/api/v1/patients?q=counted").status),
        ),
        (
            "POST /api/v1/patients/search",
            search,
            trips(&|| {
                owner
                    .post("/api/v1/patients/search", json!({"q": "counted"}))
                    .status
            }),
        ),
        (
            "GET /api/v1/patients (a page)",
            3,
            trips(&|| owner.get("/api/v1/patients?limit=5").status),
        ),
        (
            "PATCH /api/v1/patients/{id}",
            3,
            trips(&|| {
                owner
                    .patch(
                        &format!("/api/v1/patients/{pid}"),
                        json!({"phone": "0300 1234567"}),
                    )
                    .status
            }),
        ),
        (
            "POST /api/v1/patients",
            3,
            trips(&|| {
                owner
                    .post(
                        "/api/v1/patients",
                        json!({"name": "Another Person", "dob": "1971-01-01"}),
                    )
                    .status
            }),
        ),
        (
            "GET /api/v1/auth/session",
            3,
            trips(&|| owner.get("/api/v1/auth/session").status),
        ),
        (
            "POST /api/v1/auth/login (nurse, no TOTP)",
            3,
            trips(&|| {
                owner
                    .anonymous()
                    .post("/api/v1/auth/login", nurse_login.clone())
                    .status
            }),
        ),
    ];
    // A wrong password: the same three, and its counters written beside
    // the refusal's audit entry.
    let wrong =
        json!({"clinic": clinic.id, "email": "nurse@trips.pk", "password": "not the password"});
    let before = sqld.answered_requests();
    owner
        .anonymous()
        .post("/api/v1/auth/login", wrong)
        .assert_error(401, "unauthenticated");
    let refused = sqld.answered_requests() - before - test_clock;
    eprintln!("POST /api/v1/auth/login (wrong password): {refused} round trips");
    assert!(refused <= 4, "a refused sign-in: {refused} round trips");
    // Another region's clinic: 421 before any database of this region is
    // touched, test clock included.
    let ae = d.sqld("ae").expect("ae's sqld");
    let token = owner.token.clone().expect("token");
    for (path, body) in [
        ("/api/v1/auth/session", None),
        (
            "/api/v1/auth/login",
            Some(json!({"clinic": clinic.id, "email": "nurse@trips.pk", "password": PASSWORD})),
        ),
    ] {
        let before = ae.answered_requests();
        let c = d.client("ae").with_bearer(&token);
        let r = match body {
            None => c.get(path),
            Some(b) => c.anonymous().post(path, b),
        };
        r.assert_error(421, "wrong_region");
        assert_eq!(
            ae.answered_requests(),
            before,
            "{path}: no database touched for another region's clinic"
        );
    }

    for (what, bound, (status, n)) in &cases {
        assert!((200..300).contains(status), "{what}: {status}");
        let production = n - test_clock;
        eprintln!("{what}: {production} round trips (+{test_clock} for the test clock)");
        assert!(
            production <= *bound,
            "{what}: {production} round trips, designed for at most {bound}"
        );
    }
}
