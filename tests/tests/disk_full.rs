//! Disk full, for real: the native host's data dir on a small tmpfs. Writes
//! go on until the file system refuses one; that request answers 503
//! `unavailable` with a message that says why, nothing of it is kept, the
//! database files pass SQLite's integrity check, and once there is room
//! again every acknowledged write is there, the audit chain verifies and new
//! writes succeed.
//!
//! Mounting needs root (CI and `cargo xtask test` run as root on this kind
//! of machine); elsewhere the test fails and says so. Native host only: the
//! wasm hosts' storage is sqld's, whose disk is its operator's.

use amanah_e2e::{scalar_on_file, Deployment, PASSWORD};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(at: &'a Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "disk_full mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at)
    }
    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_clearly_and_loses_nothing() {
    if Deployment::external() {
        eprintln!("skipped: disk full is simulated on the native host's own data dir");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let disk = Tmpfs::mount(&data, "3m");
    let mut d = Deployment::start_native_in(&data, &[]);
    let (clinic, owner, _) = d.ready_clinic("pk", "Full Clinic", "owner@full.pk");

    let address = "House 12, Street 4, Gulberg III, Lahore ".repeat(5);
    let mut acknowledged = Vec::new();
    let refused = loop {
        let n = acknowledged.len();
        assert!(n < 5_000, "3 MiB never filled up");
        let r = owner.post(
            "/api/v1/patients",
            json!({"name": format!("Full Disk Person {n}"), "dob": "1980-01-01", "address": address}),
        );
        match r.status {
            201 => acknowledged.push(r.body["id"].as_str().expect("id").to_owned()),
            _ => break r,
        }
    };
    eprintln!(
        "{} patients written before the disk was full",
        acknowledged.len()
    );
    assert!(acknowledged.len() >= 5, "the disk filled too early");
    refused.assert_error(503, "unavailable");
    let message = refused.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("storage is full"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    // Still full: the same clear answer, not a crash. The host may win
    // room back (its background checkpoint lets the WAL start over), so a
    // later write may be stored; each is either acknowledged and kept, or
    // refused in the same words. Once nothing fits, every write is refused.
    let mut refused_names = vec![format!("Full Disk Person {}", acknowledged.len())];
    let mut refusals_in_a_row = 0;
    for n in 0..60 {
        let name = format!("One More Person {n}");
        let r = owner.post(
            "/api/v1/patients",
            json!({"name": name, "dob": "1980-01-01", "address": address}),
        );
        if r.status == 201 {
            acknowledged.push(r.body["id"].as_str().expect("id").to_owned());
            refusals_in_a_row = 0;
            continue;
        }
        r.assert_error(503, "unavailable");
        refused_names.push(name);
        refusals_in_a_row += 1;
        if refusals_in_a_row == 3 {
            break;
        }
    }
    assert_eq!(refusals_in_a_row, 3, "the disk never stayed full");

    // No corruption, even while full.
    let db = d.db_file(&clinic).expect("clinic file");
    assert_eq!(
        scalar_on_file(&db, "PRAGMA integrity_check").expect("integrity check"),
        json!("ok")
    );

    // Room again, a new process: every acknowledged write is there.
    d.kill();
    disk.resize("64m");
    d.restart_native();
    let owner = owner.rebased(d.url("pk"));
    for id in &acknowledged {
        let r = owner.get(&format!("/api/v1/patients/{id}"));
        assert_eq!(r.status, 200, "{id}: {}", r.body);
    }
    let r = owner.get("/api/v1/patients?limit=200");
    assert_eq!(
        r.body["next_cursor"],
        json!(null),
        "every patient on one page"
    );
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in &refused_names {
        assert!(
            !names.contains(&name.as_str()),
            "a refused write left {name}"
        );
    }
    let r = owner.get("/api/v1/audit/verify");
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(
        owner
            .post(
                "/api/v1/patients",
                json!({"name": "After The Fix", "dob": "1980-01-01"})
            )
            .status,
        201
    );
    // And the staff can still log in.
    assert_eq!(
        d.client("pk")
            .post(
                "/api/v1/auth/login",
                json!({"clinic": clinic.id, "email": "owner@full.pk", "password": PASSWORD}),
            )
            .status,
        200
    );
}
