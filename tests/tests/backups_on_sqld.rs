//! Backups, restores and the drill of a sqld region (the Worker's and
//! Spin's databases), run from this machine with `--sqld` beside the
//! running host: a backup taken while a clinic writes restores consistently
//! into files that `amanah serve` serves, the backup holds no plaintext, and
//! the drill over the server measures and verifies.
//!
//! One test alone in its file: the backup copies every clinic of the
//! region, so no other test of this binary signs clinics up meanwhile.
//! On the native host the same commands are tested in `operations.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use amanah_e2e::operators::operator;
use amanah_e2e::{files_under, Clinic, Deployment, PASSWORD};
use serde_json::json;

#[test]
fn a_sqld_region_backs_up_during_writes_restores_into_files_and_drills() {
    let d = Deployment::start();
    let Some(url) = d.sqld("pk").map(|s| s.url.clone()) else {
        eprintln!("skipped: this deployment keeps its databases in files");
        return;
    };
    let data = d.data_dir.clone().expect("data dir of a sqld deployment");
    let keys = data.join("keys");
    let work = tempfile::tempdir().expect("temp dir");
    let (clinic, owner, _) = d.ready_clinic("pk", "Sqld Backup Clinic", "owner@sqld-backup.pk");
    clinic.add_staff(&owner, "nurse", "nurse@sqld-backup.pk");

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (owner, acknowledged, stop) = (owner.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = owner.post(
                    "/api/v1/patients",
                    json!({"name": format!("Remote Writer{i}"), "dob": "1970-01-01", "phone": format!("0301 {i:07}")}),
                );
                if r.status == 201 {
                    let id = r.body["id"].as_str().unwrap().to_owned();
                    acknowledged.lock().unwrap().push(id);
                }
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 10 {
        std::thread::yield_now();
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let out = work.path().join("b");
    let r = operator(
        &["backup", "--region", "pk", "--sqld", &url],
        &[("--out", &out), ("--data-dir", &data)],
        &[],
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(r.ok, "{}", r.stderr);
    assert!(r.json["clinics"].as_u64().unwrap() >= 1, "{}", r.json);
    let all: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(all.len() > before.len(), "writes went on during the backup");
    for file in files_under(&out) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [
            "Remote Writer",
            "owner@sqld-backup.pk",
            "Sqld Backup Clinic",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in {}",
                file.display()
            );
        }
    }

    // The key store is the server's directory; --keys-from makes no sense.
    let target = work.path().join("r");
    let refused = operator(
        &["restore", "--clinic", clinic.id.as_str(), "--sqld", &url],
        &[
            ("--from", &out),
            ("--data-dir", &target),
            ("--keys-from", &data),
            ("--key-dir", &keys),
        ],
        &[],
    );
    assert!(!refused.ok, "--keys-from with --sqld must be refused");
    assert!(!target.exists(), "a refused restore writes nothing");
    // One clinic and the directory (other tests' clinics on this shared
    // server may have chains they tampered with on purpose).
    let r = operator(
        &["restore", "--clinic", clinic.id.as_str(), "--sqld", &url],
        &[
            ("--from", &out),
            ("--data-dir", &target),
            ("--key-dir", &keys),
        ],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let rows = &r.json["restored"][0]["rows"];

    // The restored files, served natively.
    let restored = Deployment::start_native_in(&target, &["--key-dir", keys.to_str().unwrap()]);
    let there = Clinic {
        base: restored.url("pk").to_owned(),
        ..clinic.clone()
    };
    let nurse = there.login("nurse@sqld-backup.pk", PASSWORD);
    let got = nurse.patient_ids();
    for id in &before {
        assert!(
            got.contains(id),
            "{id} acknowledged before the backup, missing"
        );
    }
    for id in &got {
        assert!(all.contains(id), "{id} restored but never acknowledged");
    }
    assert_eq!(rows["patients"], got.len() as i64);
    for id in got.iter().step_by(5) {
        let p = nurse.get(&format!("/api/v1/patients/{id}"));
        assert_eq!(p.status, 200, "{}", p.body);
        let phone = p.body["phone"].as_str().unwrap().replace(' ', "");
        let found = nurse.get(&format!("/api/v1/patients?q={phone}"));
        assert!(
            found.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == **id),
            "not found by phone in the restored copy: {}",
            found.body
        );
    }
    drop(restored);

    // The drill over the server: backup, restore into scratch files, verify.
    let scratch = work.path().join("drill");
    let r = operator(
        &[
            "drill",
            "--region",
            "pk",
            "--clinic",
            clinic.id.as_str(),
            "--sqld",
            &url,
        ],
        &[("--scratch", &scratch), ("--data-dir", &data)],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["ok"], true, "{}", r.json);
    assert_eq!(r.json["source"], "sqld");
    assert_eq!(r.json["clinics"], 1);
    assert!(
        r.json["rows"].as_i64().unwrap() as usize > all.len(),
        "{}",
        r.json
    );
    for k in ["rpo_seconds", "rto_seconds", "backup_seconds"] {
        assert!(r.json[k].as_f64().is_some(), "{k}: {}", r.json);
    }
    assert!(scratch.join("drill.json").exists());
}
