//! A host killed in the middle of writes — SIGKILL to the Worker's or Spin's
//! host process and everything under it, as a crash would — leaves no lock
//! on its clinic: on a remote database the write lock lives only inside
//! one batch on the server (DESIGN.md, "The request on a remote
//! database"), so once the host is back the clinic's requests answer at
//! once. A file of its own: the kill cuts off every request of the
//! deployment, so nothing else may run beside it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amanah_e2e::{wait_until, Deployment, Layout, Method};
use serde_json::json;

/// The Worker's and Spin's host processes killed (SIGKILL, everything
/// under them) while writes of one clinic are in flight, then started
/// again: the clinic's next requests answer 200 first time (a lock left
/// behind would hold them past the tests' 2 s database timeout: 503), no
/// acknowledged write is lost, the audit chain is unbroken.
#[test]
fn a_host_killed_mid_write_leaves_its_clinic_answering() {
    let d = Deployment::start();
    if !matches!(d.layout, Layout::Sqld(_)) || d.data_dir.is_none() {
        eprintln!("skipped: only a Worker or Spin deployment's hosts are killed here");
        return;
    }
    let (clinic, owner, _) = d.ready_clinic("ae", "Killed Host Clinic", "owner@killed.ae");
    let pid = owner.create_patient(json!({"name": "Steady Person", "dob": "1975-05-05"}));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (c, stop, answered) = (owner.clone(), stop.clone(), answered.clone());
            let path = format!("/api/v1/patients/{pid}");
            std::thread::spawn(move || {
                let mut created = Vec::new();
                let mut cut = 0;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let r = if t % 2 == 0 {
                        c.post(
                            "/api/v1/patients",
                            json!({"name": format!("Killed Person{t}x{i}"), "dob": "1990-01-01"}),
                        )
                    } else {
                        c.send(
                            Method::PATCH,
                            &path,
                            Some(json!({"phone": format!("0300 77{t}{:05}", i % 100_000)})),
                        )
                    };
                    answered.fetch_add(1, Ordering::Relaxed);
                    match r.status {
                        201 => created.push(r.body["id"].as_str().unwrap_or_default().to_owned()),
                        200 => {}
                        _ => {
                            cut += 1;
                            // The host is down: ask again a little later
                            // rather than thousands of times.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                (created, cut)
            })
        })
        .collect();
    // Writes are flowing; kill the hosts in their midst.
    wait_until("writes flowing", || answered.load(Ordering::Relaxed) >= 20);
    d.kill_hosts();
    stop.store(true, Ordering::Relaxed);
    let mut created = Vec::new();
    let mut cut = 0;
    for w in writers {
        let (c, n) = w.join().expect("a writer");
        created.extend(c);
        cut += n;
    }
    eprintln!("{cut} writes cut off by the kill");
    assert!(cut > 0, "no write met the kill: the test proved nothing");
    // The clinic answers at once, first time.
    for step in 0..5 {
        let r = owner.send(
            Method::PATCH,
            &format!("/api/v1/patients/{pid}"),
            Some(json!({"phone": format!("0300 66600{step:02}")})),
        );
        assert_eq!(r.status, 200, "after the kill: {}", r.body);
    }
    let listing = owner.get("/api/v1/patients?limit=200");
    let listed: Vec<&str> = listing.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    for id in &created {
        assert!(
            listed.contains(&id.as_str()),
            "acknowledged {id} is missing"
        );
    }
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);
    drop(clinic);
}
