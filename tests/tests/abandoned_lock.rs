//! A client that dies inside a write transaction on sqld (a wasm host's
//! instance dropped mid-request) leaves the clinic's database locked until
//! sqld's transaction timeout (5 s). The next requests wait for the lock
//! (the Hrana client starts again a `BEGIN` the server refused as busy, for
//! longer than that timeout) instead of answering 503.
//!
//! Natively, file locks are the native host's writer queue's business (its
//! unit tests).

use amanah_e2e::{abandon_write_transaction, Deployment, Layout};
use serde_json::json;

#[test]
fn a_lock_left_by_a_dead_transaction_delays_requests_but_does_not_fail_them() {
    let d = Deployment::start();
    let Layout::Sqld(_) = &d.layout else {
        eprintln!("skipped: the native host's file locks are covered by its unit tests");
        return;
    };
    let (clinic, owner, _) = d.ready_clinic("pk", "Lock Clinic", "owner@lock.pk");
    let sqld = d.sqld("pk").expect("sqld");
    abandon_write_transaction(&sqld.url, &clinic.id).expect("a write transaction left open");
    let started = std::time::Instant::now();
    let r = owner.post(
        "/api/v1/patients",
        json!({"name": "Waited Patient", "dob": "1980-01-01"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = owner.get("/api/v1/patients");
    assert_eq!(r.status, 200, "{}", r.body);
    eprintln!("waited {:?} for the lock", started.elapsed());
}
