//! Scale: the export of one large clinic (10,000 patients, 100,000
//! appointments) through the API of a native release host, timed, with the
//! host's peak RSS during it; and the audit chain's verification over
//! 1,000,000 entries.

use std::path::Path;
use std::time::Instant;

use amanah::native_host::NativeHost;
use amanah_functions::audit::{self, Entry, Outcome, Verification};
use amanah_functions::crypto::field::FieldCipher;
use amanah_functions::crypto::keys::{DataKey, KeyBytes, RootKey};
use amanah_functions::host::{Conn, Host as _};
use amanah_functions::ids::ClinicId;
use amanah_functions::store::{self, schema};
use serde_json::{json, Value};

use crate::api::{self, login_and_enrol, str_of, Api, Result};
use crate::hosts::Host;
use crate::procs::{self, Meter};
use crate::seed::{rfc3339, PASSWORD};

/// Splits `0..n` over `threads` threads running `work(i)`.
fn parallel(n: usize, threads: usize, work: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return Ok(());
                    }
                    work(i)?;
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| "a seeding thread panicked".to_owned())?
        })
    })
}

/// The export of a clinic with `patients` patients and `appointments`
/// appointments, in both formats.
pub fn export(bin: &Path, work: &Path, patients: usize, appointments: usize) -> Result<Value> {
    let host = Host::native(bin, &work.join("export-data"))?;
    let base = host.url("pk")?.to_owned();
    let email = format!("owner-scale-{}@bench.example", api::unix_now());
    let v = Api::new(&base).post(
        "/api/v1/clinics",
        json!({"name": "Bench Scale Clinic", "region": "pk",
               "owner": {"name": "Dr Scale Owner", "email": email, "password": PASSWORD}}),
        201,
    )?;
    let clinic = str_of(&v, &["clinic", "id"])?;
    let owner = login_and_enrol(&base, &clinic, &email, PASSWORD)?;
    // Ten practitioners share the appointments: the owner and nine doctors.
    let mut practitioners = vec![owner.id.clone()];
    for i in 0..9 {
        let v = owner.api.post(
            "/api/v1/users",
            json!({"name": format!("Dr Scale {i}"), "email": format!("doctor{i}-{email}"), "role": "doctor", "password": PASSWORD}),
            201,
        )?;
        practitioners.push(str_of(&v, &["id"])?);
    }
    let started = Instant::now();
    let ids = std::sync::Mutex::new(vec![String::new(); patients]);
    parallel(patients, 4, |i| {
        let v = owner.api.post(
            "/api/v1/patients",
            json!({"name": format!("Scale Patient {i} Khan"), "dob": "1980-02-03", "sex": "female",
                   "phone": format!("+92 300-{:07}", i), "national_id": format!("35202-{:07}-1", i),
                   "address": "House 12, Street 4, Lahore"}),
            201,
        )?;
        let id = str_of(&v, &["id"])?;
        ids.lock().map_err(|_| "poisoned")?[i] = id;
        Ok(())
    })?;
    let ids = ids.into_inner().map_err(|_| "poisoned")?;
    let base_time = api::unix_now() - 200 * 86_400;
    let per = appointments.div_ceil(practitioners.len());
    parallel(appointments, 4, |i| {
        let (p, slot) = (i % practitioners.len(), (i / practitioners.len()) as i64);
        let start = base_time + slot * 1800;
        owner.api.post(
            "/api/v1/appointments",
            json!({"patient_id": ids[i % ids.len()], "practitioner_id": practitioners[p],
                   "start": rfc3339(start), "end": rfc3339(start + 1200), "reason": "Review"}),
            201,
        )?;
        Ok(())
    })?;
    let seeded_s = started.elapsed().as_secs_f64();
    eprintln!(
        "amanah-bench: scale clinic seeded ({patients} patients, {appointments} appointments, {per} per practitioner) in {seeded_s:.0} s"
    );
    // A fresh host process on the same data, as after a restart: the
    // export's memory is then its own, not what seeding 110,000 writes
    // left in the allocator and the connection caches.
    drop(host);
    let host = Host::native(bin, &work.join("export-data"))?;
    let owner = api::User {
        api: owner.api.rebased(host.url("pk")?),
        id: owner.id,
    };
    let mut formats = serde_json::Map::new();
    for format in ["json", "csv"] {
        let path = format!("/api/v1/export?format={format}");
        let (r, m) = measured(&host.pids, || owner.api.call_raw("GET", &path, None));
        let (status, body) = r?;
        let (t, cost, peak_anon, base_anon) =
            (m.elapsed, m.cost, m.peak_heap_kib, m.heap_before_kib);
        let secs = t.as_secs_f64();
        if status != 200 {
            return Err(format!("export {format} answered {status}"));
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        eprintln!(
            "amanah-bench: export {format}: {secs:.2} s, {:.1} MiB, host peak rss {:.0} MiB (heap {:.0} MiB, {:.0} MiB before)",
            body.len() as f64 / 1048576.0,
            mib(cost.peak_rss_kib),
            mib(peak_anon),
            mib(base_anon),
        );
        formats.insert(
            format.to_owned(),
            json!({"seconds": secs, "bytes": body.len(), "host_peak_rss_mib": mib(cost.peak_rss_kib),
                   "host_peak_heap_mib": mib(peak_anon), "host_heap_before_mib": mib(base_anon),
                   "host_cpu_cores": cost.cpu_cores}),
        );
    }
    // The FHIR Bulk Data export of the same clinic: the kick-off writes
    // every file (sealed into the clinic's database), then each is fetched.
    let fhir = {
        let run = || -> Result<(f64, f64, usize)> {
            let t = Instant::now();
            let (status, location, _) = owner.api.get_with(
                "/fhir/r4/$export",
                &[("prefer", "respond-async")],
                "content-location",
            )?;
            let kick = t.elapsed().as_secs_f64();
            let location = location.ok_or("no Content-Location")?;
            if status != 202 {
                return Err(format!("$export answered {status}"));
            }
            let path = &location[location.find("/fhir/r4/").ok_or("bad location")?..];
            let manifest = owner.api.get(path)?;
            let mut bytes = 0;
            for o in manifest["output"].as_array().ok_or("no output")? {
                let url = o["url"].as_str().ok_or("no url")?;
                let p = &url[url.find("/fhir/r4/").ok_or("bad url")?..];
                let (status, raw) = owner.api.call_raw("GET", p, None)?;
                if status != 200 {
                    return Err(format!("{p} answered {status}"));
                }
                bytes += raw.len();
            }
            Ok((kick, t.elapsed().as_secs_f64(), bytes))
        };
        let (r, m) = measured(&host.pids, run);
        let (kick_s, total_s, bytes) = r?;
        let (cost, peak_anon, base_anon) = (m.cost, m.peak_heap_kib, m.heap_before_kib);
        let mib = |kib: u64| kib as f64 / 1024.0;
        eprintln!(
            "amanah-bench: FHIR $export: files written in {kick_s:.2} s, all fetched by {total_s:.2} s, {:.1} MiB, host peak rss {:.0} MiB (heap {:.0} MiB, {:.0} MiB before)",
            bytes as f64 / 1048576.0,
            mib(cost.peak_rss_kib),
            mib(peak_anon),
            mib(base_anon),
        );
        json!({"kickoff_seconds": kick_s, "seconds": total_s, "bytes": bytes,
               "host_peak_rss_mib": mib(cost.peak_rss_kib), "host_peak_heap_mib": mib(peak_anon),
               "host_heap_before_mib": mib(base_anon), "host_cpu_cores": cost.cpu_cores})
    };
    formats.insert("fhir".to_owned(), fhir);
    // The same clinic's chain, verified through the API.
    let t = Instant::now();
    let v = owner.api.get("/api/v1/audit/verify")?;
    let verify_s = t.elapsed().as_secs_f64();
    let drill = drill(bin, work)?;
    let rotation = rotation(bin, work, &clinic)?;
    Ok(json!({
        "patients": patients, "appointments": appointments, "seed_seconds": seeded_s,
        "export": formats,
        "api_verify": {"entries": v["entries"], "ok": v["ok"], "seconds": verify_s},
        "drill": drill,
        "rotation": rotation,
    }))
}

/// What one measured piece of work cost the host.
struct Measured {
    elapsed: std::time::Duration,
    cost: crate::procs::Cost,
    /// The heap's peak (`RssAnon`, sampled every 5 ms) and where it began:
    /// `VmHWM` also counts the database pages the host maps (mmap), which
    /// the kernel may drop at any time.
    peak_heap_kib: u64,
    heap_before_kib: u64,
}

/// Runs `work` while sampling the host's heap; its result and cost.
fn measured<T>(pids: &[u32], work: impl FnOnce() -> T) -> (T, Measured) {
    let meter = Meter::start(pids);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let pid = pids[0];
    let heap_before_kib = procs::rss_anon_kib(pid);
    let (out, elapsed, peak_heap_kib) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(procs::rss_anon_kib(pid));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        });
        let t = Instant::now();
        let out = work();
        let elapsed = t.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, elapsed, sampler.join().unwrap_or(0))
    });
    let m = Measured {
        elapsed,
        cost: meter.stop(),
        peak_heap_kib,
        heap_before_kib,
    };
    (out, m)
}

/// Runs `amanah <args> --json --data-dir <the scale data>`, timed.
fn timed_command(bin: &Path, work: &Path, args: &[&str]) -> Result<(Value, f64)> {
    let t = Instant::now();
    let out = std::process::Command::new(bin)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(work.join("export-data"))
        .output()
        .map_err(|e| format!("run amanah {}: {e}", args.join(" ")))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "amanah {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v = serde_json::from_slice(&out.stdout).map_err(|e| format!("amanah output: {e}"))?;
    Ok((v, secs))
}

/// Key rotation on the scale clinic's data, online beside its host: the
/// clinic's data key rotated and swept (every row re-sealed, the search
/// index rebuilt), then the region's root key rotated (every wrapped key
/// re-wrapped).
fn rotation(bin: &Path, work: &Path, clinic: &str) -> Result<Value> {
    let (c, clinic_s) = timed_command(bin, work, &["keys", "rotate-clinic", "--clinic", clinic])?;
    let (r, root_s) = timed_command(bin, work, &["keys", "rotate-root", "--region", "pk"])?;
    eprintln!(
        "amanah-bench: rotate-clinic {clinic_s:.1} s ({} rows re-sealed, {} indexes rebuilt), rotate-root {root_s:.2} s ({} keys)",
        c["resealed_rows"], c["rebuilt_terms"], r["rewrapped"]
    );
    Ok(json!({
        "clinic_seconds": clinic_s, "resealed_rows": c["resealed_rows"],
        "rebuilt_terms": c["rebuilt_terms"], "left": c["left"],
        "root_seconds": root_s, "rewrapped": r["rewrapped"],
    }))
}

/// `amanah drill` on the scale clinic's data, online beside its host: the
/// RTO (restore and verification) and RPO of the benchmark data set.
fn drill(bin: &Path, work: &Path) -> Result<Value> {
    let out = std::process::Command::new(bin)
        .args(["drill", "--region", "pk", "--json", "--data-dir"])
        .arg(work.join("export-data"))
        .arg("--scratch")
        .arg(work.join("drill"))
        .output()
        .map_err(|e| format!("run amanah drill: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "amanah drill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("drill output: {e}"))?;
    eprintln!(
        "amanah-bench: drill: backup {:.1} s, restore and verification (RTO) {:.1} s, RPO {:.0} s",
        v["backup_seconds"].as_f64().unwrap_or(0.0),
        v["rto_seconds"].as_f64().unwrap_or(0.0),
        v["rpo_seconds"].as_f64().unwrap_or(0.0)
    );
    Ok(json!({
        "clinics": v["clinics"], "rows": v["rows"], "audit_entries": v["audit_entries"],
        "backup_bytes": v["backup_bytes"], "backup_seconds": v["backup_seconds"],
        "rto_seconds": v["rto_seconds"], "rpo_seconds": v["rpo_seconds"],
        "rto_met": v["rto_met"], "rpo_met": v["rpo_met"],
    }))
}

/// Appends `entries` audit entries with the production `audit::append` to
/// a clinic database file of the native host, then times `audit::verify`
/// (what `GET /api/v1/audit/verify` runs) over them.
pub fn audit_verify(work: &Path, entries: u64) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| e.to_string())?;
    let host = NativeHost::new(
        "pk",
        work.join("audit-data"),
        RootKey::new("pk", 1, KeyBytes::new(key)),
    )
    .map_err(|e| e.to_string())?;
    let clinic = ClinicId::generate("pk", [11; 16]);
    let cipher = FieldCipher::new(
        clinic.as_str(),
        &DataKey {
            version: 1,
            key: KeyBytes::new(key),
        },
    );
    rt.block_on(async {
        let conn = host.create_clinic(&clinic).await.map_err(|e| e.to_string())?;
        store::migrate(&conn, schema::clinic())
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut nonce_n: u64 = 0;
        let mut nonce = || {
            nonce_n += 1;
            let mut n = [0u8; 12];
            n[..8].copy_from_slice(&nonce_n.to_be_bytes());
            n
        };
        let batch = 10_000;
        let mut seq = 0;
        while seq < entries {
            conn.execute("BEGIN IMMEDIATE", vec![]).await.map_err(|e| e.to_string())?;
            for _ in 0..batch.min(entries - seq) {
                seq += 1;
                let e = Entry {
                    at: rfc3339(1_790_000_000 + seq as i64),
                    actor: "usr_abcdefghijklmnopqrstuvwxyz".into(),
                    role: Some("doctor".into()),
                    on_behalf_of: None,
                    action: "patient.read".into(),
                    resource: Some(format!("patients/pat_{seq:026}")),
                    patient_id: Some(format!("pat_{seq:026}")),
                    reason: None,
                    ip: Some("203.0.113.7".into()),
                    outcome: Outcome::Success,
                };
                audit::append(&conn, &cipher, &mut nonce, &e, None)
                    .await
                    .map_err(|e| format!("append: {e:?}"))?;
            }
            conn.execute("COMMIT", vec![]).await.map_err(|e| e.to_string())?;
        }
        let append_s = started.elapsed().as_secs_f64();
        let t = Instant::now();
        let result = audit::verify(&conn).await.map_err(|e| format!("verify: {e:?}"))?;
        let verify_s = t.elapsed().as_secs_f64();
        let ok = matches!(result, Verification::Ok { entries: n, .. } if n as u64 == entries);
        if !ok {
            return Err(format!("the chain did not verify: {result:?}"));
        }
        eprintln!("amanah-bench: audit: {entries} entries appended in {append_s:.1} s, verified in {verify_s:.2} s");
        Ok(json!({"entries": entries, "append_seconds": append_s, "verify_seconds": verify_s}))
    })
}
