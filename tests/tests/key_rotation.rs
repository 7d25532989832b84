//! Key rotation as an operator runs it, beside a running `amanah serve`:
//! the root key rotated online, interrupted by a crash and resumed, the
//! old version retired (and its wrapped bytes gone from every file); a
//! clinic's data key rotated, read lazily, re-sealed by the sweep (by the
//! command, and by the server in the background), with its search index
//! rebuilt; backups and checkpoints taken before each rotation still good.
//!
//! Native host only: the commands work on the embedded files.

use std::path::Path;

use amanah_e2e::operators::{native, operator, Ran};
use amanah_e2e::{files_under, scalar_on_file, totp_code, unix_now, Clinic, Deployment, PASSWORD};
use amanah_functions::crypto::blind::{self, BlindIndex, TermKind};
use amanah_functions::crypto::keys::RootKeyring;
use serde_json::{json, Value};

fn amanah(args: &[&str], data: &Path) -> Ran {
    operator(args, &[("--data-dir", data)], &[])
}

fn rotate_clinic(data: &Path, clinic: &str, extra: &[&str]) -> Ran {
    let mut args = vec!["keys", "rotate-clinic", "--clinic", clinic];
    args.extend_from_slice(extra);
    amanah(&args, data)
}

fn key_status(data: &Path) -> Value {
    let s = amanah(&["keys", "status", "--regions", "pk"], data);
    assert!(s.ok, "{}", s.stderr);
    s.json[0].clone()
}

fn clinic_key<'a>(status: &'a Value, clinic: &Clinic) -> &'a Value {
    status["clinics"]
        .as_array()
        .expect("clinics")
        .iter()
        .find(|c| c["clinic"] == clinic.id.as_str())
        .expect("clinic in keys status")
}

/// The root key versions the key file holds, read as an attacker with the
/// file would.
fn versions_in_key_file(data: &Path) -> Vec<String> {
    std::fs::read_to_string(data.join("keys").join("pk.root.key"))
        .expect("key file")
        .lines()
        .filter_map(|l| l.split_once(':').map(|(v, _)| v.to_owned()))
        .collect()
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER
        .decode(v.as_str().expect("hex").as_bytes())
        .expect("hex")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn root_rotation_is_online_resumes_after_a_crash_and_retires_the_old_version() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let mut clinics = Vec::new();
    for i in 0..3 {
        let (c, owner, _) = d.ready_clinic(
            "pk",
            &format!("Root Clinic {i}"),
            &format!("owner@root{i}.pk"),
        );
        let nurse = format!("nurse@root{i}.pk");
        c.add_staff(&owner, "nurse", &nurse);
        let pid = owner.create_patient(json!({"name": format!("Rotated Person{i}"), "dob": "1970-07-07", "phone": format!("0300 555000{i}")}));
        clinics.push((c, nurse, pid));
    }
    let (_, support_secret) = d.add_platform_staff("pk", "support", "agent@rotate.example");
    // Before the rotation: a session, a backup, a checkpoint, and the bytes
    // of every wrapped key the directory holds.
    let (c0, _, p0) = &clinics[0];
    let early = c0.login("nurse@root0.pk", PASSWORD);
    let backup = work.path().join("before-rotation");
    let r = operator(
        &["backup", "--region", "pk"],
        &[("--out", &backup), ("--data-dir", &data)],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let cp = work.path().join("checkpoints");
    let r = operator(
        &["audit", "checkpoint", "--regions", "pk"],
        &[("--checkpoint-dir", &cp), ("--data-dir", &data)],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let old_wrapped: Vec<Vec<u8>> = clinics
        .iter()
        .map(|(c, _, _)| {
            hex_bytes(
                &d.scalar(
                    "pk",
                    None,
                    &format!(
                        "SELECT wrapped FROM clinic_keys WHERE clinic_id = '{}'",
                        c.id
                    ),
                )
                .unwrap()
                .unwrap(),
            )
        })
        .chain(std::iter::once(hex_bytes(
            &d.scalar("pk", None, "SELECT wrapped FROM region_keys")
                .unwrap()
                .unwrap(),
        )))
        .collect();
    assert_eq!(old_wrapped.len(), 4);
    let status = key_status(&data);
    assert_eq!(status["root_key_versions"], json!([1]));
    assert_eq!(status["wrapped_by_root"], json!({"v1": 4}));

    // A crash after the second batch of one key: the key file has v2, two
    // keys are wrapped by it, two still by v1.
    let crashed = operator(
        &["keys", "rotate-root", "--region", "pk", "--batch", "1"],
        &[("--data-dir", &data)],
        &[("AMANAH_TEST_CRASH_AFTER_BATCHES", "2")],
    );
    assert!(!crashed.ok, "the run was to crash: {}", crashed.stderr);
    assert_eq!(versions_in_key_file(&data), ["v1", "v2"]);
    let status = key_status(&data);
    assert_eq!(status["rotation_unfinished"], true);
    assert_eq!(status["root_key_version"], 2);
    assert_eq!(status["wrapped_by_root"], json!({"v1": 2, "v2": 2}));

    // Meanwhile the running server serves everyone: it follows the key
    // file, so keys under either version open, the session from before
    // still works, and a new sign-up's key is wrapped by v2.
    for (c, nurse, pid) in &clinics {
        let r = c
            .login(nurse, PASSWORD)
            .get(&format!("/api/v1/patients/{pid}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(early.get(&format!("/api/v1/patients/{p0}")).status, 200);
    let late = d.sign_up("pk", "Late Clinic", "owner@late.pk");
    assert_eq!(
        d.scalar(
            "pk",
            None,
            &format!(
                "SELECT root_version FROM clinic_keys WHERE clinic_id = '{}'",
                late.id
            )
        )
        .unwrap()
        .unwrap(),
        2
    );
    // v1 still wraps keys: it cannot be retired yet; v2 never can.
    let r = amanah(
        &["keys", "retire-root", "--region", "pk", "--version", "1"],
        &data,
    );
    assert!(
        !r.ok && r.stderr.contains("still wraps 2 key(s)"),
        "{}",
        r.stderr
    );
    let r = amanah(
        &["keys", "retire-root", "--region", "pk", "--version", "2"],
        &data,
    );
    assert!(!r.ok && r.stderr.contains("newest"), "{}", r.stderr);

    // Run again: it resumes (no v3) and finishes.
    let r = amanah(&["keys", "rotate-root", "--region", "pk"], &data);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["added"], false);
    assert_eq!(r.json["rewrapped"], 2);
    assert_eq!(r.json["retirable"], json!([1]));
    let status = key_status(&data);
    assert_eq!(status["rotation_unfinished"], false);
    assert_eq!(status["wrapped_by_root"], json!({"v2": 5}));

    // Retire v1: the key file holds v2 alone, and no file of the data dir
    // holds the bytes of a key wrapped by v1 any more.
    let r = amanah(
        &["keys", "retire-root", "--region", "pk", "--version", "1"],
        &data,
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["held"], json!([2]));
    assert_eq!(versions_in_key_file(&data), ["v2"]);
    for file in files_under(&data.join("pk")) {
        let bytes = std::fs::read(&file).unwrap();
        for w in &old_wrapped {
            assert!(
                !contains(&bytes, w),
                "a v1-wrapped key is still in {}",
                file.display()
            );
        }
    }

    // The running server: sessions signed under v1 have ended; everything
    // else works, platform staff included (their records are under the
    // region key, which the rotation re-wrapped but did not change).
    let r = early.get(&format!("/api/v1/patients/{p0}"));
    r.assert_error(401, "unauthenticated");
    for (c, nurse, pid) in &clinics {
        let nurse = c.login(nurse, PASSWORD);
        let r = nurse.get(&format!("/api/v1/patients/{pid}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(nurse.search_count("rotated"), 1);
    }
    let anon = d.client("pk");
    let r = anon.post(
        "/api/v1/support/login",
        json!({"email": "agent@rotate.example", "password": PASSWORD, "code": totp_code(&support_secret, unix_now())}),
    );
    assert_eq!(
        r.status, 200,
        "support login after the rotation: {}",
        r.body
    );

    // Checkpoints and backups from before the rotation still check out.
    let r = operator(
        &["audit", "verify", "--regions", "pk"],
        &[("--checkpoint-dir", &cp), ("--data-dir", &data)],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json[0]["ok"], true, "{}", r.json);
    let target = work.path().join("restored");
    let r = restore(&backup, &target, &data);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["restored"].as_array().unwrap().len(), 3);

    // And a fresh start on the rotated files: nothing needed v1.
    let mut d = d;
    d.restart_native();
    let c = Clinic {
        base: d.url("pk").to_owned(),
        ..c0.clone()
    };
    let nurse = c.login("nurse@root0.pk", PASSWORD);
    assert_eq!(
        nurse.get(&format!("/api/v1/patients/{p0}")).body["name"],
        "Rotated Person0"
    );
}

/// A clinic's blind index of data key `version`, from the region's key file
/// and the directory's wrapped key.
fn blind_index(data: &Path, clinic: &Clinic, version: u32) -> BlindIndex {
    let ring = RootKeyring::parse(
        "pk",
        &std::fs::read_to_string(data.join("keys").join("pk.root.key")).unwrap(),
    )
    .unwrap();
    let wrapped = hex_bytes(
        &scalar_on_file(
            &data.join("pk").join("directory.db"),
            &format!(
                "SELECT wrapped FROM clinic_keys WHERE clinic_id = '{}' AND version = {version}",
                clinic.id
            ),
        )
        .unwrap(),
    );
    BlindIndex::new(&ring.unwrap(&clinic.id, version, &wrapped).unwrap())
}

/// A patient's search terms in the file, sorted.
fn terms_of(file: &Path, patient: &str) -> Vec<Vec<u8>> {
    let all = scalar_on_file(
        file,
        &format!(
            "SELECT group_concat(hex(term), ',') FROM (SELECT term FROM patient_terms WHERE patient_id = '{patient}' ORDER BY term)"
        ),
    )
    .unwrap();
    all.as_str()
        .unwrap()
        .split(',')
        .map(|h| data_encoding::HEXUPPER.decode(h.as_bytes()).unwrap())
        .collect()
}

/// Restores `backup` into `target` with the keys of the live `data`.
fn restore(backup: &Path, target: &Path, data: &Path) -> Ran {
    operator(
        &["restore"],
        &[
            ("--from", backup),
            ("--data-dir", target),
            ("--keys-from", data),
        ],
        &[],
    )
}

#[test]
fn a_clinic_key_rotates_lazily_and_the_sweep_reseals_and_reindexes() {
    let Some((d, data, work)) = native() else {
        return;
    };
    let (clinic, owner, secret) = d.ready_clinic("pk", "Rekey Clinic", "owner@rekey.pk");
    let nurse_id = clinic.add_staff(&owner, "nurse", "nurse@rekey.pk");
    let nurse = clinic.login("nurse@rekey.pk", PASSWORD);
    let amina = owner.create_patient(json!({"name": "Amina Rehman", "dob": "1984-03-02", "phone": "0301 2223334", "national_id": "35202-1111111-1"}));
    let bilal = owner.create_patient(
        json!({"name": "Bilal Ahmed", "dob": "1990-10-10", "phone": "0302 5556667"}),
    );
    let r = owner.post(
        &format!("/api/v1/patients/{amina}/notes"),
        json!({"kind": "visit", "text": "BP 120/80, well."}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = owner.post(
        "/api/v1/appointments",
        json!({"patient_id": bilal, "practitioner_id": nurse_id, "start": "2026-12-10T09:00:00Z", "end": "2026-12-10T09:15:00Z", "reason": "follow-up"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let file = d.db_file(&clinic).expect("clinic file");
    let terms_before = scalar_on_file(&file, "SELECT count(*) FROM patient_terms").unwrap();
    let backup = work.path().join("before-rekey");
    let r = operator(
        &["backup", "--region", "pk"],
        &[("--out", &backup), ("--data-dir", &data)],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(d.sealed_under(&clinic, 2), 0);

    // A new version, not swept: the clinic works on, under both.
    let r = rotate_clinic(&data, &clinic.id, &["--no-sweep"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        (r.json["version"].as_u64(), r.json["resumed"].as_bool()),
        (Some(2), Some(false))
    );
    let k = key_status(&data);
    let ck = clinic_key(&k, &clinic);
    assert_eq!(
        (ck["key_version"].as_i64(), ck["older_versions"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(ck["sweep_unfinished"], true);
    assert!(d.sealed_under(&clinic, 1) > 10);
    for q in ["amina", "rehm", "03012223334", "35202-1111111-1", "bilal"] {
        assert_eq!(nurse.search_count(q), 1, "{q} before any re-seal");
    }
    assert_eq!(
        nurse.get(&format!("/api/v1/patients/{amina}/notes")).body["items"][0]["text"],
        "BP 120/80, well."
    );
    // Logins find users by their old email term; the owner's TOTP secret
    // (sealed under v1) still checks codes.
    let nurse = clinic.login("nurse@rekey.pk", PASSWORD);
    clinic.advance(31);
    let owner = clinic.login_with_totp("owner@rekey.pk", PASSWORD, &secret);
    // Lazy on write: a patient written now is sealed and indexed under v2,
    // and is found beside those still under v1.
    let r = nurse.patch(
        &format!("/api/v1/patients/{bilal}"),
        json!({"address": "House 7, Lahore"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let bilal_name = scalar_on_file(
        &file,
        &format!("SELECT hex(substr(name, 2, 4)) FROM patients WHERE id = '{bilal}'"),
    )
    .unwrap();
    assert_eq!(bilal_name, "00000002");
    for q in ["bilal", "03025556667", "amina"] {
        assert_eq!(
            nurse.search_count(q),
            1,
            "{q} with two versions in the index"
        );
    }
    let carol = nurse.create_patient(json!({"name": "Carol Amina", "dob": "2000-01-01"}));
    assert_eq!(
        nurse.search_count("amina"),
        2,
        "one term under v1, one under v2"
    );
    // The same email cannot come back as a second user under the new key.
    let r = owner.post(
        "/api/v1/users",
        json!({"name": "Dup", "email": "nurse@rekey.pk", "role": "nurse", "password": PASSWORD}),
    );
    r.assert_error(409, "conflict");

    // The sweep (the command run again resumes the rotation: no v3).
    let r = rotate_clinic(&data, &clinic.id, &["--batch", "2"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        (r.json["version"].as_u64(), r.json["resumed"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(r.json["left"], 0);
    assert!(r.json["resealed_rows"].as_u64().unwrap() >= 5, "{}", r.json);
    assert_eq!(
        d.sealed_under(&clinic, 1),
        0,
        "nothing under v1 but the audit trail"
    );
    assert!(d.sealed_under(&clinic, 2) > 10);
    assert_eq!(
        clinic_key(&key_status(&data), &clinic)["sweep_unfinished"],
        false
    );
    // Rebuilt, not added to: Bilal and Carol were already under v2.
    assert_eq!(
        scalar_on_file(&file, "SELECT count(*) FROM patient_terms")
            .unwrap()
            .as_i64()
            .unwrap(),
        terms_before.as_i64().unwrap()
            + scalar_on_file(
                &file,
                &format!("SELECT count(*) FROM patient_terms WHERE patient_id = '{carol}'")
            )
            .unwrap()
            .as_i64()
            .unwrap()
    );
    for (q, n) in [
        ("amina", 2),
        ("rehman", 1),
        ("03012223334", 1),
        ("3520211111111", 1),
        ("bilal", 1),
    ] {
        assert_eq!(nurse.search_count(q), n, "{q} after the sweep");
    }
    // The index itself is rebuilt: computed from the key file and the
    // directory as someone holding both could, Amina's terms and the
    // nurse's email term are exactly the v2 ones.
    let ix = blind_index(&data, &clinic, 2);
    let mut want = blind::name_tokens(&ix, "Amina Rehman");
    want.push(ix.token(TermKind::Phone, "03012223334"));
    want.push(ix.token(TermKind::NationalId, "3520211111111"));
    want.sort();
    assert_eq!(terms_of(&file, &amina), want);
    assert_eq!(
        scalar_on_file(&file, "SELECT email_term FROM users WHERE role = 'nurse'").unwrap(),
        data_encoding::HEXLOWER.encode(&ix.token(TermKind::Email, "nurse@rekey.pk"))
    );
    let nurse = clinic.login("nurse@rekey.pk", PASSWORD);
    clinic.advance(31);
    let owner = clinic.login_with_totp("owner@rekey.pk", PASSWORD, &secret);
    assert_eq!(
        owner.get(&format!("/api/v1/patients/{amina}")).body["national_id"],
        "35202-1111111-1"
    );
    assert_eq!(
        nurse.get(&format!("/api/v1/patients/{amina}/notes")).body["items"][0]["text"],
        "BP 120/80, well."
    );
    let appts = nurse.get("/api/v1/appointments?from=2026-12-10T00:00:00Z&to=2026-12-11T00:00:00Z");
    assert_eq!(
        appts.body["items"][0]["patient_name"], "Bilal Ahmed",
        "{}",
        appts.body
    );
    // Every step is on the trail, and the trail (reasons sealed under v1
    // included) still verifies and reads.
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);
    let trail = owner.get("/api/v1/audit?action=clinic.key_sweep");
    assert!(
        !trail.body["items"].as_array().unwrap().is_empty(),
        "{}",
        trail.body
    );
    assert_eq!(trail.body["items"][0]["actor"], "system");
    assert_eq!(
        owner.get("/api/v1/audit?action=clinic.key_rotate").body["items"][0]["resource"],
        "key/v2"
    );
    let export = owner.get("/api/v1/export?format=json");
    assert_eq!(export.status, 200);

    // The backup from before the rotation still restores (v1 is kept).
    let target = work.path().join("restored");
    let r = restore(&backup, &target, &data);
    assert!(r.ok, "{}", r.stderr);

    // A finished rotation: the next run makes v3.
    let r = rotate_clinic(&data, &clinic.id, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        (
            r.json["version"].as_u64(),
            r.json["resumed"].as_bool(),
            r.json["left"].as_u64()
        ),
        (Some(3), Some(false), Some(0))
    );
    assert_eq!(nurse.search_count("amina"), 2);

    // A clinic scheduled for deletion keeps its keys until the purge.
    let r = owner.post("/api/v1/clinic/deletion", json!({"password": PASSWORD}));
    assert_eq!(r.status, 202, "{}", r.body);
    let r = rotate_clinic(&data, &clinic.id, &[]);
    assert!(
        !r.ok && r.stderr.contains("scheduled for deletion"),
        "{}",
        r.stderr
    );
    let r = rotate_clinic(&data, "pk_aaaaaaaaaaaaaaaaaaaaaaaaaa", &[]);
    assert!(!r.ok && r.stderr.contains("has no clinic"), "{}", r.stderr);
}

#[test]
fn the_server_finishes_an_unswept_rotation_in_the_background() {
    // A property of the native server only.
    let Some(d) = Deployment::native_only(&["--maintain-interval", "1"]) else {
        return;
    };
    let data = d.data_dir.clone().expect("native data dir");
    let (clinic, owner, _) = d.ready_clinic("pk", "Background Clinic", "owner@background.pk");
    for i in 0..5 {
        owner.create_patient(json!({"name": format!("Background Person{i}"), "dob": "1999-09-09"}));
    }
    let r = rotate_clinic(&data, &clinic.id, &["--no-sweep"]);
    assert!(r.ok, "{}", r.stderr);
    // Waits for the server's own timer (no clock is moved by this wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while clinic_key(&key_status(&data), &clinic)["sweep_unfinished"] == true {
        assert!(
            std::time::Instant::now() < deadline,
            "not swept within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(d.sealed_under(&clinic, 1), 0);
    assert_eq!(owner.search_count("background"), 5);
}
