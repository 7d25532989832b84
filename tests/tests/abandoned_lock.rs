//! A client that dies inside a write transaction on sqld (a wasm host's
//! instance dropped mid-request) leaves the clinic's database locked until
//! sqld's transaction timeout (5 s). The next requests should wait for the
//! lock, not answer 503.
//!
//! This reproduces an open finding (SECURITY.md, "Found, not fixed yet"):
//! on the Worker with test hooks (a 2 s database timeout) the next write
//! answers 503 "no answer within 2000 ms"; on Spin, schemathesis met
//! `database is locked`. It is ignored until the wasm hosts wait for such a
//! lock; run it with `--ignored` against a Worker or Spin deployment.

use amanah_e2e::{abandon_write_transaction, Deployment, Layout};
use serde_json::json;

#[test]
#[ignore = "open finding: a lock left on sqld by a dead transaction fails the next requests (SECURITY.md)"]
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
