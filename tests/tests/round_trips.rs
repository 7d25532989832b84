//! How many round trips to the libSQL server one API request costs on a host
//! whose databases are remote (the Worker). Counted by the server itself
//! (sqld's HTTP response counter), so what is measured is what crossed the
//! network. The bounds are the design: the directory lookup; `BEGIN` with
//! the session check and the audit chain's head; the handler's queries
//! (queued writes riding along); the audit entry with `COMMIT`. With test
//! hooks on, each request also reads its clinic's test clock: one more.

use amanah_e2e::{Deployment, PASSWORD};
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
    let cases: Vec<(&str, u64, (u16, u64))> = vec![
        (
            "GET /api/v1/patients/{id}",
            4,
            trips(&|| owner.get(&format!("/api/v1/patients/{pid}")).status),
        ),
        (
            "GET /api/v1/patients?q=",
            4,
            trips(&|| owner.get("/api/v1/patients?q=counted").status),
        ),
        (
            "PATCH /api/v1/patients/{id}",
            5,
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
            "GET /api/v1/auth/session",
            4,
            trips(&|| owner.get("/api/v1/auth/session").status),
        ),
        (
            "POST /api/v1/auth/login (nurse, no TOTP)",
            5,
            trips(&|| {
                owner
                    .anonymous()
                    .post(
                        "/api/v1/auth/login",
                        json!({"clinic": clinic.id, "email": "nurse@trips.pk", "password": PASSWORD}),
                    )
                    .status
            }),
        ),
    ];
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
