//! What a clinic costs the native host while idle: many clinics signed up
//! (each touched once, by its sign-up), then the host's resident memory,
//! open files and threads right after and once the idle clinics are closed.
//! The finding it measures: every clinic ever opened kept its pool, its
//! files and a checkpointer task for good, so sign-ups alone could exhaust
//! memory and the file limit.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{Api, Result};
use crate::hosts::Host;
use crate::procs;

/// Sign-ups at once (each is an Argon2id hash on the host).
const CLIENTS: usize = 8;
/// How long the host is left alone before the second reading: longer than
/// its idle close (60 s) plus one sweep of its checkpointer.
const IDLE_WAIT: Duration = Duration::from_secs(75);

fn reading(pid: u32) -> Value {
    json!({
        "rss_mib": procs::rss_kib(pid) as f64 / 1024.0,
        "open_files": procs::open_files(pid),
        "threads": procs::threads(pid),
    })
}

/// Signs up `n` clinics (alternating regions) on a fresh native host.
pub fn idle_cost(bin: &Path, work: &Path, n: usize) -> Result<Value> {
    // Sign-ups are throttled per address; the benchmark is one address
    // (`Host::native` lifts the limits).
    let host = Host::native(bin, &work.join("data"))?;
    let pid = host.pids[0];
    let before = reading(pid);
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        let region = if i % 2 == 0 { "pk" } else { "ae" };
                        let api = Api::new(host.url(region)?);
                        api.post(
                            "/api/v1/clinics",
                            json!({"name": format!("Idle Clinic {i}"), "region": region,
                                   "owner": {"name": "Dr Idle", "email": format!("owner-{i}@idle.example"),
                                             "password": crate::seed::PASSWORD}}),
                            201,
                        )?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| match w.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a sign-up thread panicked".into()),
            })
            .collect()
    });
    if let Some(e) = failures.first() {
        return Err(format!("sign-up: {e}"));
    }
    let signup_seconds = started.elapsed().as_secs_f64();
    let after = reading(pid);
    let peak_rss_mib = procs::peak_rss_kib(pid) as f64 / 1024.0;
    eprintln!(
        "amanah-bench: {n} clinics signed up in {signup_seconds:.0} s; waiting {} s for the idle close",
        IDLE_WAIT.as_secs()
    );
    std::thread::sleep(IDLE_WAIT);
    let idle = reading(pid);
    Ok(json!({
        "clinics": n,
        "signup_seconds": signup_seconds,
        "before": before,
        "after": after,
        "idle": idle,
        "peak_rss_mib": peak_rss_mib,
    }))
}
