//! Operator commands on a sqld region (the Worker's and Spin's databases),
//! run from this machine with `--sqld` beside the running host: key status,
//! a clinic key rotation whose sweep the host's own scheduler finishes (the
//! Worker's cron trigger, Spin's purge call), and audit checkpoints that
//! catch a truncated chain in a sqld namespace.
//!
//! On the native host these commands work on the files and are tested in
//! `key_rotation.rs` and `operations.rs`; here the tests run only against a
//! deployment with sqld regions.

use std::path::{Path, PathBuf};

use amanah_e2e::operators::{chain, operator, Ran};
use amanah_e2e::{Clinic, Deployment, PASSWORD};
use serde_json::{json, Value};

/// The deployment, its pk sqld's URL and its data dir (where its key file
/// is); `None` (skipped) where the deployment has no sqld.
fn sqld_deployment() -> Option<(Deployment, String, PathBuf)> {
    let d = Deployment::start();
    let Some(url) = d.sqld("pk").map(|s| s.operator_url()) else {
        eprintln!("skipped: this deployment keeps its databases in files");
        return None;
    };
    let data = d.data_dir.clone().expect("data dir of a sqld deployment");
    Some((d, url, data))
}

fn on_sqld(args: &[&str], url: &str, data: &Path, extra: &[(&str, &Path)]) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--sqld", url]);
    let mut paths = vec![("--data-dir", data)];
    paths.extend_from_slice(extra);
    operator(&all, &paths, &[])
}

fn clinic_status(url: &str, data: &Path, clinic: &Clinic) -> Value {
    let s = on_sqld(&["keys", "status", "--regions", "pk"], url, data, &[]);
    assert!(s.ok, "{}", s.stderr);
    s.json[0]["clinics"]
        .as_array()
        .expect("clinics")
        .iter()
        .find(|c| c["clinic"] == clinic.id.as_str())
        .cloned()
        .expect("clinic in keys status")
}

fn int(d: &Deployment, clinic: &Clinic, sql: &str) -> i64 {
    d.scalar("pk", Some(clinic), sql)
        .expect("a sqld deployment")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .as_i64()
        .unwrap_or_else(|| panic!("{sql}: not a number"))
}

#[test]
fn a_sqld_clinic_key_rotates_and_the_hosts_scheduler_sweeps_it() {
    let Some((d, url, data)) = sqld_deployment() else {
        return;
    };
    let email = "owner@remote-rotation.pk";
    let (clinic, owner, secret) = d.ready_clinic("pk", "Remote Rotation Clinic", email);
    for i in 0..3 {
        owner.create_patient(json!({
            "name": format!("Remote Person{i}"),
            "dob": format!("1971-01-0{}", i + 1),
            "phone": format!("0300 777000{i}"),
        }));
    }
    let before = clinic_status(&url, &data, &clinic);
    assert_eq!(before["key_version"], 1, "{before}");
    assert_eq!(before["sweep_unfinished"], false);

    // The new version only; the host is left to sweep.
    let r = on_sqld(
        &[
            "keys",
            "rotate-clinic",
            "--clinic",
            &clinic.id,
            "--no-sweep",
        ],
        &url,
        &data,
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["version"], 2, "{}", r.json);
    assert_eq!(r.json["resumed"], false);
    let mid = clinic_status(&url, &data, &clinic);
    assert_eq!(mid["key_version"], 2, "{mid}");
    assert_eq!(mid["older_versions"], 1);
    assert_eq!(mid["sweep_unfinished"], true);

    // Old and new values are found meanwhile; a new one is sealed under v2.
    assert_eq!(owner.search_count("remote"), 3);
    assert_eq!(owner.search_count("03007770001"), 1);
    let later = owner.create_patient(json!({"name": "Remote Latecomer", "dob": "1972-02-02"}));
    assert_eq!(
        int(
            &d,
            &clinic,
            &format!("SELECT substr(name, 2, 4) = X'00000002' FROM patients WHERE id = '{later}'")
        ),
        1
    );
    assert_eq!(owner.search_count("remote"), 4);
    assert!(d.sealed_under(&clinic, 1) > 0);

    // The host's scheduler (Worker cron, Spin purge call) finishes it.
    d.run_purge("pk");
    let after = clinic_status(&url, &data, &clinic);
    assert_eq!(after["sweep_unfinished"], false, "{after}");
    assert_eq!(after["swept_version"], 2);
    assert_eq!(d.sealed_under(&clinic, 1), 0);
    assert_eq!(owner.search_count("remote"), 4);
    assert_eq!(owner.search_count("03007770002"), 1);
    // The login finds the owner by the rebuilt email term, and opens the
    // re-sealed TOTP secret (a step on: the enrolment's code is used).
    clinic.advance(31);
    let again = clinic.login_with_totp(email, PASSWORD, &secret);
    assert_eq!(again.get("/api/v1/patients").status, 200);
    let verify = owner.get("/api/v1/audit/verify");
    assert_eq!(verify.body["ok"], true, "{}", verify.body);
    assert!(
        int(
            &d,
            &clinic,
            "SELECT count(*) FROM audit WHERE action IN ('clinic.key_rotate', 'clinic.key_sweep')"
        ) >= 2
    );
}

#[test]
fn sqld_checkpoints_catch_a_truncated_chain() {
    let Some((d, url, data)) = sqld_deployment() else {
        return;
    };
    let cp = tempfile::tempdir().expect("temp dir");
    let (clinic, owner, _) = d.ready_clinic("pk", "Remote Chain Clinic", "owner@remote-chain.pk");
    for i in 0..3 {
        owner.create_patient(json!({"name": format!("Chain Remote{i}"), "dob": "1966-06-06"}));
    }
    let audit = |verb: &str, more: &[&str]| {
        let mut args = vec!["audit", verb, "--regions", "pk"];
        args.extend_from_slice(more);
        on_sqld(&args, &url, &data, &[("--checkpoint-dir", cp.path())])
    };
    // The region's other chains belong to other tests (some tamper with
    // theirs): only this clinic's is judged.
    let c = audit("checkpoint", &[]);
    let mine = chain(&c.json, &clinic.id);
    assert_eq!(mine["signed"], true, "{}: {}", c.stderr, c.json);
    let signed_at = mine["entries"].as_i64().expect("entries");
    assert!(signed_at > 3, "{}", c.json);
    assert!(cp
        .path()
        .join("pk")
        .join(format!("{}.jsonl", clinic.id))
        .exists());
    owner.get("/api/v1/patients");
    let v = audit("verify", &["--clinic", &clinic.id]);
    assert!(v.ok, "{}", v.stderr);
    assert_eq!(chain(&v.json, &clinic.id)["status"], "ok");

    // Someone with the database drops the triggers and cuts the tail off:
    // the shorter chain links up by itself, the checkpoint shows the cut.
    d.tamper_audit(
        &clinic,
        &format!("DELETE FROM audit WHERE seq > {}", signed_at - 2),
    );
    // The API's verification starts at the host's own newest checkpoint:
    // it catches the cut as well when that store (the Worker's bucket, the
    // Spin host has none) holds one past it, which a scheduled run of
    // another test may have signed; otherwise the shorter chain links up
    // by itself. The operator's checkpoints catch it either way.
    let api = owner.get("/api/v1/audit/verify");
    assert_eq!(api.status, 200, "{}", api.body);
    if api.body["ok"] == false {
        assert!(api.body["first_bad_seq"].as_i64().is_some(), "{}", api.body);
    }
    let v = audit("verify", &["--clinic", &clinic.id]);
    assert!(!v.ok, "a truncated chain verified: {}", v.json);
    let problems = chain(&v.json, &clinic.id)["problems"].to_string();
    assert!(problems.contains("truncated"), "{problems}");
    // A failed chain is not checkpointed over.
    let c = audit("checkpoint", &[]);
    assert!(!c.ok);
    assert_eq!(chain(&c.json, &clinic.id)["signed"], false, "{}", c.json);
}

#[test]
fn sqld_commands_refuse_what_they_cannot_do() {
    let Some((_d, url, data)) = sqld_deployment() else {
        return;
    };
    // One server is one region's.
    let r = on_sqld(&["keys", "status"], &url, &data, &[]);
    assert!(!r.ok);
    assert!(r.stderr.contains("one region"), "{}", r.stderr);
    // Plain HTTP to loopback or a tunnel only; no https client is built in.
    let r = operator(
        &[
            "keys",
            "status",
            "--regions",
            "pk",
            "--sqld",
            "https://db.example",
        ],
        &[("--data-dir", &data)],
        &[],
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("http://"), "{}", r.stderr);
    // A key dir without the region's key is refused, never created.
    let empty = tempfile::tempdir().expect("temp dir");
    let r = operator(
        &["keys", "status", "--regions", "pk", "--sqld", &url],
        &[("--data-dir", empty.path())],
        &[],
    );
    assert!(!r.ok);
    assert!(!empty.path().join("keys").exists());
    // A restore into a fresh server needs its admin API, which makes the
    // namespaces; without it nothing is tried.
    let target = empty.path().join("r");
    let r = operator(
        &["restore", "--into-sqld", &url],
        &[("--from", empty.path()), ("--data-dir", &target)],
        &[],
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("--into-admin"), "{}", r.stderr);
    assert!(!target.exists());
}
