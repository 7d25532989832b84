//! Operator commands on a seeded native data dir, run as an operator runs
//! them (the `amanah` binary, beside a running `amanah serve`): keys
//! status, backups (full and incremental) and restores (whole, one clinic,
//! at a time), a backup taken while writes go on, the restore drill, audit
//! checkpoints against truncation, edits and forged checkpoints, a purged
//! clinic's backups, and the refusal to move data to another region.
//!
//! Native host only: the commands work on the embedded files.

use std::path::{Path, PathBuf};

use amanah_e2e::operators::{chain, native, operator, Ran};
use amanah_e2e::{
    check_restored_writes, files_under, sql_on_file, BackgroundWrites, Client, Clinic, Deployment,
    PASSWORD,
};
use amanah_functions::checkpoint::Checkpoint;
use amanah_functions::crypto::keys::KeyBytes;
use amanah_functions::region_key::RegionKey;
use serde_json::{json, Value};

/// Runs `amanah <args> --json`.
fn amanah(args: &[&str], paths: &[(&str, &Path)]) -> Ran {
    operator(args, paths, &[])
}

/// `amanah restore <args> --from F --data-dir TO --keys-from KEYS --json`.
fn restore(args: &[&str], from: &Path, to: &Path, keys_from: &Path) -> Ran {
    amanah(
        &[&["restore"], args].concat(),
        &[
            ("--from", from),
            ("--data-dir", to),
            ("--keys-from", keys_from),
        ],
    )
}

/// A nurse of the clinic (no TOTP), for reading a restored copy.
fn nurse(clinic: &Clinic, owner: &Client, email: &str) {
    clinic.add_staff(owner, "nurse", email);
}

#[test]
fn backups_restore_whole_incremental_by_time_and_by_clinic() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let (a, owner_a, _) = d.ready_clinic("pk", "Backup Clinic A", "owner@backup-a.pk");
    let (b, owner_b, _) = d.ready_clinic("pk", "Backup Clinic B", "owner@backup-b.pk");
    nurse(&a, &owner_a, "nurse@backup-a.pk");
    nurse(&b, &owner_b, "nurse@backup-b.pk");
    let mut a_patients: Vec<String> = ["Amina Farooq", "Bilal Qureshi", "Sana Malik"]
        .iter()
        .map(|n| owner_a.create_patient(json!({"name": n, "dob": "1985-04-12"})))
        .collect();
    owner_b.create_patient(json!({"name": "Zara Sheikh", "dob": "1990-01-01"}));

    let status = amanah(&["keys", "status"], &[("--data-dir", &data)]);
    assert!(status.ok, "{}", status.stderr);
    let pk = &status.json[0];
    assert_eq!(pk["region"], "pk");
    assert_eq!(pk["root_key_mode"], "600");
    for c in [&a.id, &b.id] {
        let k = pk["clinics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["clinic"] == **c)
            .expect("clinic in keys status");
        assert_eq!(k["key_version"], 1);
        assert_eq!(k["wrapped_by_root_version"], 1);
    }

    let backups = work.path().join("backups");
    let b1 = backups.join("b1");
    let r = amanah(
        &["backup", "--region", "pk"],
        &[("--out", &b1), ("--data-dir", &data)],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["clinics"], 2);
    assert_eq!(r.json["carried_over"], 0);
    // The backup holds no plaintext of anyone.
    for file in files_under(&b1) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in ["Amina", "Farooq", "Zara", "owner@backup-a.pk"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in {}",
                file.display()
            );
        }
    }
    // A backup never goes into a directory that holds something.
    let again = amanah(
        &["backup", "--region", "pk"],
        &[("--out", &b1), ("--data-dir", &data)],
    );
    assert!(
        !again.ok && again.stderr.contains("not empty"),
        "{}",
        again.stderr
    );

    // Backups are stamped to the second; the next one must be later.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    a_patients.push(owner_a.create_patient(json!({"name": "Late Patient", "dob": "2001-02-03"})));
    let b2 = backups.join("b2");
    let r = amanah(
        &["backup", "--region", "pk"],
        &[("--out", &b2), ("--since", &b1), ("--data-dir", &data)],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["clinics"], 2);
    assert_eq!(
        r.json["carried_over"], 1,
        "clinic B did not change: {}",
        r.json
    );

    // At the time of the first backup: A without its late patient.
    let m1: Value =
        serde_json::from_slice(&std::fs::read(b1.join("manifest.json")).unwrap()).unwrap();
    let at = m1["started_at"].as_str().unwrap();
    let r1 = work.path().join("r1");
    let r = restore(&["--at", at], &backups, &r1, &data);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["backup_id"], m1["id"]);
    assert_eq!(r.json["restored"].as_array().unwrap().len(), 2);
    let keys = data.join("keys");
    let restored = Deployment::start_native_in(&r1, &["--key-dir", keys.to_str().unwrap()]);
    let a_there = Clinic {
        base: restored.url("pk").to_owned(),
        ..a.clone()
    };
    let nurse_a = a_there.login("nurse@backup-a.pk", PASSWORD);
    let mut got = nurse_a.patient_ids();
    got.sort();
    let mut want = a_patients[..3].to_vec();
    want.sort();
    assert_eq!(got, want);
    // Search terms came back with the patients they index.
    let found = nurse_a.get("/api/v1/patients?q=farooq");
    assert_eq!(
        found.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.body
    );
    assert_eq!(
        nurse_a
            .get(&format!("/api/v1/patients/{}", a_patients[0]))
            .body["name"],
        "Amina Farooq"
    );
    drop(restored);

    // The newest backup (b2 is incremental: B's file carried over), one clinic.
    let r2 = work.path().join("r2");
    let r = restore(&["--clinic", &b.id], &backups, &r2, &data);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["restored"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["restored"][0]["id"], b.id.as_str());
    assert!(r2.join("pk").join(format!("{}.db", b.id)).exists());
    assert!(!r2.join("pk").join(format!("{}.db", a.id)).exists());
    let r = restore(&[], &b2, &r2, &data);
    assert!(!r.ok && r.stderr.contains("fresh data dir"), "{}", r.stderr);
    let r = restore(
        &["--at", "2000-01-01T00:00:00Z"],
        &backups,
        &work.path().join("r4"),
        &data,
    );
    assert!(!r.ok && r.stderr.contains("at or before"), "{}", r.stderr);

    // Region placement is immutable.
    let r3 = work.path().join("r3");
    let r = restore(&["--region", "ae"], &b2, &r3, &data);
    assert!(!r.ok, "a pk backup restored into ae");
    assert!(
        r.stderr.contains("region placement is immutable"),
        "{}",
        r.stderr
    );
    assert!(!r3.exists(), "a refused restore wrote something");

    // A tampered manifest is refused.
    let text = std::fs::read_to_string(b2.join("manifest.json")).unwrap();
    std::fs::write(
        b2.join("manifest.json"),
        text.replacen("\"patients\": 4", "\"patients\": 5", 1),
    )
    .unwrap();
    let r = restore(&[], &b2, &work.path().join("r5"), &data);
    assert!(
        !r.ok && r.stderr.contains("does not match its MAC"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_backup_taken_during_writes_restores_consistently() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let (clinic, owner, _) = d.ready_clinic("pk", "Busy Clinic", "owner@busy.pk");
    nurse(&clinic, &owner, "nurse@busy.pk");
    let writes = BackgroundWrites::start(&owner, "Writer Patient", "0300");
    let before = writes.after(20);
    let out = work.path().join("b");
    let r = amanah(
        &["backup", "--region", "pk"],
        &[("--out", &out), ("--data-dir", &data)],
    );
    let all = writes.stop();
    assert!(r.ok, "{}", r.stderr);
    assert!(all.len() > before.len(), "writes went on during the backup");

    // The restore checks checksums, the chain and the row counts itself.
    let target = work.path().join("r");
    let r = restore(&[], &out, &target, &data);
    assert!(r.ok, "{}", r.stderr);
    let rows = &r.json["restored"][0]["rows"];
    let restored =
        Deployment::start_native_in(&target, &["--key-dir", data.join("keys").to_str().unwrap()]);
    let there = Clinic {
        base: restored.url("pk").to_owned(),
        ..clinic.clone()
    };
    let nurse = there.login("nurse@busy.pk", PASSWORD);
    // Everything acknowledged before the backup began is there; nothing is
    // there that was not written; every patient opens and is findable.
    let got = check_restored_writes(&nurse, &before, &all, 7);
    assert_eq!(rows["patients"], got.len() as i64);
}

#[test]
fn the_drill_backs_up_restores_verifies_and_reports() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let (_, owner, _) = d.ready_clinic("pk", "Drill Clinic", "owner@drill.pk");
    for i in 0..5 {
        owner.create_patient(json!({"name": format!("Drill Patient{i}"), "dob": "1999-09-09"}));
    }
    let scratch = work.path().join("drill");
    let r = amanah(
        &["drill", "--region", "pk"],
        &[("--scratch", &scratch), ("--data-dir", &data)],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["ok"], true);
    assert_eq!(r.json["clinics"], 1);
    assert!(r.json["rows"].as_i64().unwrap() >= 6, "{}", r.json);
    assert!(r.json["audit_entries"].as_i64().unwrap() > 5);
    for k in ["rpo_seconds", "rto_seconds", "backup_seconds"] {
        assert!(r.json[k].as_f64().is_some(), "{k}: {}", r.json);
    }
    let published: Value =
        serde_json::from_slice(&std::fs::read(scratch.join("drill.json")).unwrap()).unwrap();
    assert_eq!(published["rto_seconds"], r.json["rto_seconds"]);
    // Again: the scratch dir is wiped and reused.
    let again = amanah(
        &["drill", "--region", "pk"],
        &[("--scratch", &scratch), ("--data-dir", &data)],
    );
    assert!(again.ok, "{}", again.stderr);
}

#[test]
fn checkpoints_catch_truncation_rewrites_edits_and_forgeries() {
    let Some((d, data, cp)) = native() else {
        return;
    };
    let dirs = |extra: &[(&'static str, PathBuf)]| {
        let mut v = vec![
            ("--data-dir", data.clone()),
            ("--checkpoint-dir", cp.path().to_path_buf()),
        ];
        v.extend_from_slice(extra);
        v
    };
    let run = |args: &[&str]| {
        let v = dirs(&[]);
        let paths: Vec<(&str, &Path)> = v.iter().map(|(f, p)| (*f, p.as_path())).collect();
        amanah(args, &paths)
    };
    let (t, owner_t, _) = d.ready_clinic("pk", "Truncated Clinic", "owner@trunc.pk");
    let (e, owner_e, _) = d.ready_clinic("pk", "Edited Clinic", "owner@edit.pk");
    let (f, _, _) = d.ready_clinic("pk", "Forged Clinic", "owner@forge.pk");
    for o in [&owner_t, &owner_e] {
        for i in 0..3 {
            o.create_patient(json!({"name": format!("Chain Patient{i}"), "dob": "1960-06-06"}));
        }
    }
    let v = run(&["audit", "verify", "--regions", "pk"]);
    assert!(v.ok, "{}", v.stderr);
    assert_eq!(chain(&v.json, &t.id)["status"], "no_checkpoint");

    let c = run(&["audit", "checkpoint", "--regions", "pk"]);
    assert!(c.ok, "{}", c.stderr);
    let signed_at = chain(&c.json, &t.id)["entries"].as_i64().unwrap();
    assert!(signed_at > 3);
    assert_eq!(chain(&c.json, "platform")["signed"], true);
    // More entries since the checkpoint are fine.
    owner_t.get("/api/v1/patients");
    let v = run(&["audit", "verify", "--regions", "pk"]);
    assert!(v.ok, "{}", v.stderr);
    assert_eq!(chain(&v.json, &t.id)["status"], "ok");

    // Truncation: the last entries deleted. The chain still links up by
    // itself (the API's own check passes); only the checkpoint shows it.
    d.tamper_audit(
        &t,
        &format!("DELETE FROM audit WHERE seq > {}", signed_at - 2),
    );
    let api = owner_t.get("/api/v1/audit/verify");
    assert_eq!(api.body["ok"], true, "{}", api.body);
    let v = run(&["audit", "verify", "--clinic", &t.id]);
    assert!(!v.ok, "a truncated chain verified");
    let problems = chain(&v.json, &t.id)["problems"].to_string();
    assert!(problems.contains("truncated"), "{problems}");
    // Requests append again past the checkpoint's length: now the entry the
    // checkpoint saw is another one.
    for _ in 0..4 {
        owner_t.get("/api/v1/patients");
    }
    let v = run(&["audit", "verify", "--clinic", &t.id]);
    assert!(!v.ok);
    let problems = chain(&v.json, &t.id)["problems"].to_string();
    assert!(problems.contains("rewritten"), "{problems}");
    // A failed chain is not checkpointed again.
    let c = run(&["audit", "checkpoint", "--regions", "pk"]);
    assert!(!c.ok);
    assert_eq!(chain(&c.json, &t.id)["signed"], false);
    assert_eq!(chain(&c.json, &e.id)["signed"], true);

    // An edited entry.
    d.tamper_audit(
        &e,
        "UPDATE audit SET action = 'tampered.action' WHERE seq = 2",
    );
    let v = run(&["audit", "verify", "--clinic", &e.id]);
    assert!(!v.ok);
    let problems = chain(&v.json, &e.id)["problems"].to_string();
    assert!(
        problems.contains("edited") && problems.contains("#2"),
        "{problems}"
    );

    // Forged checkpoints: signed with another key, and a real one altered.
    let file = cp.path().join("pk").join(format!("{}.jsonl", f.id));
    let real: Checkpoint = serde_json::from_str(
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let other = RegionKey::new("pk", 1, KeyBytes::new([9; 32]));
    let forged = Checkpoint::sign(&other, &f.id, 1000, &real.head, &real.at);
    let mut altered = real.clone();
    altered.seq += 1;
    let mut text = std::fs::read_to_string(&file).unwrap();
    for c in [&forged, &altered] {
        text.push_str(&serde_json::to_string(c).unwrap());
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    let v = run(&["audit", "verify", "--clinic", &f.id]);
    assert!(!v.ok);
    let problems = chain(&v.json, &f.id)["problems"].to_string();
    assert!(problems.contains("another key"), "{problems}");
    assert!(
        problems.contains("does not match its contents"),
        "{problems}"
    );
    assert!(
        !problems.contains("truncated"),
        "a forged checkpoint was believed: {problems}"
    );
}

#[test]
fn backups_of_a_purged_clinic_stay_unreadable() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let (gone, owner, _) = d.ready_clinic("pk", "Closing Clinic", "owner@closing.pk");
    let (stays, owner_s, _) = d.ready_clinic("pk", "Staying Clinic", "owner@staying.pk");
    owner.create_patient(json!({"name": "Closing Patient", "dob": "1950-05-05"}));
    owner_s.create_patient(json!({"name": "Staying Patient", "dob": "1950-05-05"}));
    let b = work.path().join("b");
    let r = amanah(
        &["backup", "--region", "pk"],
        &[("--out", &b), ("--data-dir", &data)],
    );
    assert!(r.ok, "{}", r.stderr);

    let r = owner.post("/api/v1/clinic/deletion", json!({"password": PASSWORD}));
    assert_eq!(r.status, 202, "{}", r.body);
    gone.advance(31 * 24 * 3600);
    d.run_purge("pk");
    let status = amanah(&["keys", "status"], &[("--data-dir", &data)]);
    let k = status.json[0]["clinics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["clinic"] == gone.id.as_str())
        .cloned()
        .expect("purged clinic listed");
    assert_eq!(k["status"], "purged");
    assert_eq!(k["key_version"], Value::Null);

    let target = work.path().join("r");
    let r = restore(&[], &b, &target, &data);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["unreadable"][0]["id"], gone.id.as_str());
    assert!(r.json["unreadable"][0]["why"]
        .as_str()
        .unwrap()
        .contains("purged"));
    assert_eq!(r.json["restored"][0]["id"], stays.id.as_str());
    assert!(!target.join("pk").join(format!("{}.db", gone.id)).exists());
    // Its sealed file is still in the backup, and nothing in any file of the
    // backup or the restore is its plaintext.
    assert!(b
        .join("clinics")
        .join(format!("{}.db.sealed", gone.id))
        .exists());
    for file in files_under(&b).into_iter().chain(files_under(&target)) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"Closing"),
            "plaintext in {}",
            file.display()
        );
    }
}

#[test]
fn a_clinic_without_a_database_is_named_and_the_rest_is_backed_up() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let (a, owner, _) = d.ready_clinic("pk", "Whole Clinic", "owner@whole.pk");
    owner.create_patient(json!({"name": "Kept Person", "dob": "1980-08-08"}));
    // A sign-up that stopped between the directory and the database.
    let orphan = "pk_aaaaaaaaaaaaaaaaaaaaaaaaaa";
    sql_on_file(
        &data.join("pk").join("directory.db"),
        &[&format!(
            "INSERT INTO clinics (id, status, created_at, key_version) VALUES ('{orphan}', 'active', 0, 1)"
        )],
    )
    .expect("orphan directory row");
    let out = work.path().join("b");
    let r = amanah(
        &["backup", "--region", "pk"],
        &[("--out", &out), ("--data-dir", &data)],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["clinics"], 1, "{}", r.json);
    assert_eq!(r.json["without_database"], json!([orphan]));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["without_database"], json!([orphan]));
    // The text report warns.
    let text = std::process::Command::new(amanah_e2e::amanah_bin())
        .args(["backup", "--region", "pk", "--out"])
        .arg(work.path().join("b2"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run amanah");
    assert!(text.status.success());
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.contains(&format!("warning: clinic {orphan}")),
        "{said}"
    );
    let target = work.path().join("r");
    let r = restore(&[], &out, &target, &data);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["restored"][0]["id"], a.id.as_str());
    assert_eq!(r.json["without_database"], json!([orphan]));
}
