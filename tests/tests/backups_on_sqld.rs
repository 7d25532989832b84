//! Backups, restores and the drill of a sqld region (the Worker's and
//! Spin's databases), run from this machine with `--sqld` beside the
//! running host: a backup taken while a clinic writes restores consistently
//! into files that `amanah serve` serves, and into a fresh libSQL server
//! (refused over one that holds data); the backup holds no plaintext, and
//! the drill over the server measures and verifies.
//!
//! One test alone in its file: the backup copies every clinic of the
//! region, so no other test of this binary signs clinics up meanwhile.
//! On the native host the same commands are tested in `operations.rs`.

use std::path::Path;

use amanah_e2e::operators::operator;
use amanah_e2e::{
    check_restored_writes, files_under, scalar_on_sqld, BackgroundWrites, Clinic, Deployment,
    FreshSqld, PASSWORD,
};
use serde_json::json;

#[test]
fn a_sqld_region_backs_up_during_writes_restores_into_files_and_a_fresh_server() {
    let d = Deployment::start();
    let Some(url) = d.sqld("pk").map(|s| s.operator_url()) else {
        eprintln!("skipped: this deployment keeps its databases in files");
        return;
    };
    let data = d.data_dir.clone().expect("data dir of a sqld deployment");
    let keys = data.join("keys");
    let work = tempfile::tempdir().expect("temp dir");
    let (clinic, owner, _) = d.ready_clinic("pk", "Sqld Backup Clinic", "owner@sqld-backup.pk");
    clinic.add_staff(&owner, "nurse", "nurse@sqld-backup.pk");

    let writes = BackgroundWrites::start(&owner, "Remote Writer", "0301");
    let before = writes.after(10);
    let out = work.path().join("b");
    let r = operator(
        &["backup", "--region", "pk", "--sqld", &url],
        &[("--out", &out), ("--data-dir", &data)],
        &[],
    );
    let all = writes.stop();
    assert!(r.ok, "{}", r.stderr);
    assert!(r.json["clinics"].as_u64().unwrap() >= 1, "{}", r.json);
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
    let got = check_restored_writes(&nurse, &before, &all, 5);
    assert_eq!(rows["patients"], got.len() as i64);
    drop(restored);

    // `amanah drill` of this clinic on the server at `server`: its report.
    let drill = |server: &str, scratch: &Path| {
        let r = operator(
            &[
                "drill",
                "--region",
                "pk",
                "--clinic",
                clinic.id.as_str(),
                "--sqld",
                server,
            ],
            &[
                ("--scratch", scratch),
                ("--data-dir", work.path()),
                ("--key-dir", &keys),
            ],
            &[],
        );
        assert!(r.ok, "drill of {server}: {}", r.stderr);
        r.json
    };

    // The region's server lost: the same backup into a fresh libSQL server,
    // a namespace per clinic and the directory, checked there.
    let bin = d.sqld("pk").expect("sqld").bin.clone();
    let fresh = FreshSqld::start(&bin);
    let into = |data_dir: &Path| {
        operator(
            &[
                "restore",
                "--clinic",
                clinic.id.as_str(),
                "--sqld",
                &url,
                "--into-sqld",
                &fresh.url,
                "--into-admin",
                &fresh.admin_url,
            ],
            &[
                ("--from", &out),
                ("--data-dir", data_dir),
                ("--key-dir", &keys),
            ],
            &[],
        )
    };
    let r = into(&work.path().join("staged"));
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["published"]["namespaces"], 2, "{}", r.json);
    assert_eq!(
        scalar_on_sqld(
            &fresh.url,
            clinic.id.as_str(),
            "SELECT count(*) FROM patients"
        ),
        Ok(json!(got.len()))
    );
    // A second restore into it is refused before it writes anything.
    let again = work.path().join("staged-again");
    let refused = into(&again);
    assert!(!refused.ok, "a restore over live data: {}", refused.json);
    assert!(
        refused.stderr.contains("fresh server"),
        "{}",
        refused.stderr
    );
    assert!(!again.exists(), "a refused restore writes nothing");
    // The new server is a whole region: its directory holds the clinic's
    // keys, and a drill of it backs up, restores and verifies.
    let drilled = drill(&fresh.url, &work.path().join("fresh-drill"));
    assert_eq!(drilled["ok"], true, "{drilled}");
    assert_eq!(drilled["clinics"], 1, "{drilled}");
    drop(fresh);

    // The drill over the server: backup, restore into scratch files, verify.
    let scratch = work.path().join("drill");
    let r = drill(&url, &scratch);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["source"], "sqld");
    assert_eq!(r["clinics"], 1);
    assert!(r["rows"].as_i64().unwrap() as usize > all.len(), "{r}");
    for k in ["rpo_seconds", "rto_seconds", "backup_seconds"] {
        assert!(r[k].as_f64().is_some(), "{k}: {r}");
    }
    assert!(scratch.join("drill.json").exists());
}
