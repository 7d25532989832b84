//! The libSQL server of a region goes away mid-run (kill -9 of `sqld` under
//! write load), or hangs (SIGSTOP): requests answer 503 `unavailable` in the
//! API's error shape, nothing is half-written, and service comes back when
//! the server does.
//! Runs where the deployment has a `sqld` per region (the Worker host).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amanah_e2e::{Client, Deployment, Resp, PASSWORD};
use serde_json::json;

#[test]
fn sqld_killed_under_writes_gives_503_then_service_returns_intact() {
    let d = Deployment::start();
    let Some(sqld) = d.sqld("pk").cloned() else {
        eprintln!("skipped: this deployment has no sqld to stop");
        return;
    };
    let (_clinic, owner, _) = d.ready_clinic("pk", "Outage Clinic", "owner@outage.pk");

    // A writer creates patients until told to stop, keeping every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (owner, stop) = (owner.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = owner.post(
                    "/api/v1/patients",
                    json!({"name": format!("Outage Person{i}"), "dob": "1980-01-01"}),
                );
                answers.push((r.status, r.body));
                i += 1;
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let pid = sqld.running_pid().expect("pk's sqld is running");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success(), "sqld {pid} was running");
    std::thread::sleep(Duration::from_millis(700));

    // With the server gone: 503 in the error shape, for reads and sign-up too.
    owner
        .get("/api/v1/patients")
        .assert_error(503, "unavailable");
    d.client("pk")
        .post(
            "/api/v1/clinics",
            json!({"name": "Down Clinic", "region": "pk",
                   "owner": {"name": "Dr Down", "email": "o@down.pk", "password": amanah_e2e::PASSWORD}}),
        )
        .assert_error(503, "unavailable");
    stop.store(true, Ordering::Relaxed);
    let answers = writer.join().expect("writer");

    let created: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b["id"].as_str().expect("id").to_owned())
        .collect();
    let refused = answers.iter().filter(|(s, _)| *s == 503).count();
    assert!(!created.is_empty(), "some writes landed before the kill");
    assert!(refused > 0, "some writes met the outage");
    for (status, body) in &answers {
        assert!(
            *status == 201 || (*status == 503 && body["error"]["code"] == "unavailable"),
            "{status} {body}"
        );
    }

    // The server comes back on the same data (in the deployment's process
    // group, so the deployment's shutdown stops it).
    let spawn = |group: Option<u32>| {
        let mut c = Command::new(&sqld.bin);
        c.args(&sqld.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(g) = group {
            use std::os::unix::process::CommandExt;
            c.process_group(g as i32);
        }
        c.spawn()
    };
    // (Joining the group fails when the deployment runs in another session.)
    // Never waited for: the server outlives this test, serving the rest of
    // the suite, and stops with the deployment.
    #[allow(clippy::zombie_processes)]
    let _server = spawn(d.process_group)
        .or_else(|_| spawn(None))
        .expect("restart sqld");
    let listing = once_back(&owner, "/api/v1/patients?limit=200");

    // Every acknowledged write is there. A write whose COMMIT landed just as
    // the server died may be there unacknowledged (at most one), and whole.
    // Nothing is half-written: every listed patient reads back complete, and
    // the audit chain is unbroken.
    let listed: Vec<String> = listing.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect();
    for id in &created {
        assert!(listed.contains(id), "acknowledged {id} is missing");
    }
    assert!(
        listed.len() <= created.len() + 1,
        "{listed:?} vs {created:?}"
    );
    for id in &listed {
        let p = owner.get(&format!("/api/v1/patients/{id}"));
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(
            p.body["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Outage Person")),
            "{}",
            p.body
        );
    }
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);

    // A hung server (stopped, not dead): the host gives up after its database
    // timeout and answers 503; when the server resumes, so does the service.
    let pid = sqld.running_pid().expect("the restarted sqld");
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let asked = Instant::now();
    let r = owner.get("/api/v1/patients");
    let waited = asked.elapsed();
    signal("-CONT");
    r.assert_error(503, "unavailable");
    assert!(waited < Duration::from_secs(30), "gave up after {waited:?}");
    let back = once_back(&owner, "/api/v1/audit/verify");
    assert_eq!(back.body["ok"], true, "{}", back.body);

    // Sign-ups come back too (they also reach sqld's admin API, whose
    // connections the outage broke as well).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = d.client("pk").post(
            "/api/v1/clinics",
            json!({"name": "After Outage", "region": "pk",
                   "owner": {"name": "Dr After", "email": "owner@after-outage.pk", "password": PASSWORD}}),
        );
        if r.status == 201 {
            break;
        }
        assert!(
            r.status == 503 && Instant::now() < deadline,
            "sign-up after the outage: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET path` as soon as it answers 200 (within a minute), asserting it does.
fn once_back(client: &Client, path: &str) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client.get(path);
        if r.status == 200 || Instant::now() > deadline {
            assert_eq!(r.status, 200, "service is back: {}", r.body);
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
