//! Deletion and the purge, as a clinic and as an attacker with the files see
//! them: a clinic scheduled for deletion answers only what lets its owner
//! cancel or leave; after 30 days the purge destroys its data key and its
//! database; a deleted patient's every row goes after its grace period.

use amanah_e2e::{files_under, Client, Clinic, Deployment, Layout, PASSWORD};
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn scalar(d: &Deployment, clinic: &Clinic, on_clinic: bool, sql: &str) -> Value {
    d.scalar(&clinic.region, on_clinic.then_some(clinic), sql)
        .expect("databases reachable in this deployment")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The purge runs over the whole region (`amanah maintain`, the Worker's
/// cron, Spin's trigger). A test that leaves a clinic past its purge time
/// on purpose (to see the state before the purge) must not meet another
/// test's purge meanwhile: the tests here that purge `pk` take turns.
/// (Seen once on the Worker in CI: the shred test's clinic was purged by
/// the patient test's run between its clock move and its next sign-in.)
static PK_PURGES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn purges_in_turn() -> std::sync::MutexGuard<'static, ()> {
    PK_PURGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The owner signs in again after days have passed on the clinic's clock.
fn owner_again(clinic: &Clinic, secret: &str) -> Client {
    clinic.login_with_totp(&clinic.owner_email, PASSWORD, secret)
}

#[test]
fn a_deleted_clinic_waits_30_days_can_cancel_and_is_then_shredded() {
    let _turn = purges_in_turn();
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("pk", "Shred Clinic", "owner@shred.pk");
    let (_, other_owner, _) = d.ready_clinic("pk", "Bystander Clinic", "owner@bystander.pk");
    clinic.add_staff(&owner, "receptionist", "desk@shred.pk");
    let pid = owner.create_patient(json!({"name": "Zarmeena Khattak", "dob": "1984-04-04"}));
    let desk = clinic.login("desk@shred.pk", PASSWORD);

    // The clinic's own record.
    let r = owner.get("/api/v1/clinic");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["id"],
            &r.body["name"],
            &r.body["region"],
            &r.body["deletion"]
        ),
        (
            &json!(clinic.id),
            &json!("Shred Clinic"),
            &json!("pk"),
            &Value::Null
        )
    );
    assert!(r.body["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    desk.get("/api/v1/clinic").assert_error(403, "forbidden");
    desk.post("/api/v1/clinic/deletion", json!({"password": PASSWORD}))
        .assert_error(403, "forbidden");

    // A wrong password changes nothing.
    owner
        .post(
            "/api/v1/clinic/deletion",
            json!({"password": "Not-The-Password-1"}),
        )
        .assert_error(401, "unauthenticated");
    owner
        .post(
            "/api/v1/clinic/deletion",
            json!({"password": PASSWORD, "now": true}),
        )
        .assert_error(400, "invalid_request");
    assert!(owner.get("/api/v1/clinic").body["deletion"].is_null());
    owner
        .delete("/api/v1/clinic/deletion")
        .assert_error(409, "conflict");

    // Scheduled: 30 days; the clinic answers only the owner's way out.
    let r = owner.post("/api/v1/clinic/deletion", json!({"password": PASSWORD}));
    assert_eq!(r.status, 202, "{}", r.body);
    let purge_after = r.body["purge_after"].as_str().unwrap().to_owned();
    let days = (amanah_functions::clock::parse_rfc3339(&purge_after).unwrap() - clinic.now())
        as f64
        / DAY as f64;
    assert!((29.9..=30.0).contains(&days), "{days}");
    assert_eq!(
        owner.get("/api/v1/clinic").body["deletion"]["purge_after"],
        json!(purge_after)
    );
    owner.get("/api/v1/patients").assert_error(409, "conflict");
    desk.get("/api/v1/appointments?from=2030-01-01&to=2030-01-02")
        .assert_error(409, "conflict");
    owner
        .post("/api/v1/clinic/deletion", json!({"password": PASSWORD}))
        .assert_error(409, "conflict");
    assert_eq!(owner.get("/api/v1/audit/verify").body["ok"], true);
    // Another clinic of the region is untouched.
    assert_eq!(other_owner.get("/api/v1/patients").status, 200);

    // Cancelled: back to work.
    assert_eq!(owner.delete("/api/v1/clinic/deletion").status, 204);
    assert!(owner.get("/api/v1/clinic").body["deletion"].is_null());
    assert_eq!(desk.get(&format!("/api/v1/patients/{pid}")).status, 200);

    // Scheduled again, and left to run out.
    let r = owner.post("/api/v1/clinic/deletion", json!({"password": PASSWORD}));
    assert_eq!(r.status, 202, "{}", r.body);
    let wrapped = scalar(
        &d,
        &clinic,
        false,
        &format!(
            "SELECT wrapped FROM clinic_keys WHERE clinic_id = '{}'",
            clinic.id
        ),
    );
    let wrapped = data_encoding::HEXLOWER
        .decode(wrapped.as_str().expect("a wrapped key").as_bytes())
        .unwrap();
    // An attacker's copy of the clinic's database (a backup).
    let backup = tempfile::tempdir().unwrap();
    for f in d.clinic_files(&clinic) {
        std::fs::copy(&f, backup.path().join(f.file_name().unwrap())).unwrap();
    }
    assert!(!files_under(backup.path()).is_empty() || d.data_dir.is_none());

    clinic.advance(29 * DAY);
    d.run_purge("pk");
    let owner = owner_again(&clinic, &secret);
    assert!(owner.get("/api/v1/clinic").body["deletion"].is_object());

    clinic.advance(DAY + 60);
    let owner = owner_again(&clinic, &secret);
    owner
        .delete("/api/v1/clinic/deletion")
        .assert_error(409, "conflict");
    let out = d.run_purge("pk");
    if matches!(d.layout, Layout::Files) {
        assert!(out.contains("clinics=1"), "{out}");
    }

    // Gone: no session, no sign-in, no key, no database.
    owner
        .get("/api/v1/clinic")
        .assert_error(401, "unauthenticated");
    let r = Client::new(&clinic.base).post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": clinic.owner_email, "password": PASSWORD}),
    );
    r.assert_error(401, "unauthenticated");
    assert_eq!(
        scalar(
            &d,
            &clinic,
            false,
            &format!(
                "SELECT count(*) FROM clinic_keys WHERE clinic_id = '{}'",
                clinic.id
            )
        ),
        json!(0)
    );
    assert_eq!(
        scalar(
            &d,
            &clinic,
            false,
            &format!("SELECT status FROM clinics WHERE id = '{}'", clinic.id)
        ),
        json!("purged")
    );
    assert!(
        d.clinic_files(&clinic).is_empty(),
        "{:?}",
        d.clinic_files(&clinic)
    );
    // The purge is idempotent and left the other clinic alone.
    d.run_purge("pk");
    assert_eq!(other_owner.get("/api/v1/patients").status, 200);

    // The wrapped key's bytes are gone from every directory file where the
    // store allows scrubbing (the native host); a libSQL server keeps past
    // pages in its own log until the root key version is retired.
    if matches!(d.layout, Layout::Files) {
        let files = d.directory_files("pk");
        assert!(!files.is_empty());
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !contains(&bytes, &wrapped),
                "wrapped key still in {}",
                f.display()
            );
        }
    }
    // The backup holds ciphertext only.
    for f in files_under(backup.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!contains(&bytes, b"Zarmeena"), "{}", f.display());
    }
}

#[test]
fn a_deleted_patients_every_row_is_purged_after_the_grace_period() {
    let _turn = purges_in_turn();
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("pk", "Purge Clinic", "owner@purge.pk");
    let nurse = clinic.add_staff(&owner, "nurse", "nurse@purge.pk");
    let gone = owner.create_patient(
        json!({"name": "Parveen Shakir", "dob": "1952-11-24", "phone": "0300-1234567"}),
    );
    let kept = owner.create_patient(json!({"name": "Parveen Rahman", "dob": "1957-01-22"}));
    for pid in [&gone, &kept] {
        for (path, body) in [
            (
                "conditions",
                json!({"display": "Asthma", "status": "active"}),
            ),
            (
                "prescriptions",
                json!({"drug": "Salbutamol", "dose": "100 mcg", "route": "inhaled", "frequency": "as needed"}),
            ),
            (
                "notes",
                json!({"kind": "visit", "text": "Wheeze on exertion."}),
            ),
        ] {
            let r = owner.post(&format!("/api/v1/patients/{pid}/{path}"), body);
            assert_eq!(r.status, 201, "{path}: {}", r.body);
        }
    }
    owner.book_appointment(
        &gone,
        &nurse,
        "2031-01-01T09:00:00Z",
        "2031-01-01T09:15:00Z",
    );
    owner.book_appointment(
        &kept,
        &nurse,
        "2031-01-01T10:00:00Z",
        "2031-01-01T10:15:00Z",
    );
    for pid in [&gone, &kept] {
        assert_eq!(owner.delete(&format!("/api/v1/patients/{pid}")).status, 202);
    }
    assert_eq!(
        owner
            .post_empty(&format!("/api/v1/patients/{kept}/restore"))
            .status,
        200
    );

    let rows_of = |pid: &str| -> i64 {
        [
            "patients WHERE id",
            "patient_terms WHERE patient_id",
            "conditions WHERE patient_id",
            "prescriptions WHERE patient_id",
            "notes WHERE patient_id",
            "appointments WHERE patient_id",
        ]
        .iter()
        .map(|t| {
            scalar(
                &d,
                &clinic,
                true,
                &format!("SELECT count(*) FROM {t} = '{pid}'"),
            )
            .as_i64()
            .unwrap()
        })
        .sum()
    };
    let before = rows_of(&gone);
    let kept_before = rows_of(&kept);
    assert!(before >= 7 && kept_before >= 7, "{before} {kept_before}");

    // Within grace the purge keeps it.
    clinic.advance(29 * DAY);
    d.run_purge("pk");
    assert_eq!(rows_of(&gone), before);

    clinic.advance(DAY + 60);
    let out = d.run_purge("pk");
    if matches!(d.layout, Layout::Files) {
        assert!(out.contains("patients=1"), "{out}");
    }
    assert_eq!(rows_of(&gone), 0);
    assert_eq!(rows_of(&kept), kept_before);

    let owner = owner_again(&clinic, &secret);
    owner
        .post_empty(&format!("/api/v1/patients/{gone}/restore"))
        .assert_error(404, "not_found");
    assert_eq!(
        owner.get(&format!("/api/v1/patients/{kept}/notes")).status,
        200
    );
    // The chain still verifies and records the purge by the system, with the
    // patient's opaque id only.
    assert_eq!(owner.get("/api/v1/audit/verify").body["ok"], true);
    let r = owner.get(&format!(
        "/api/v1/audit?action=patient.purge&patient={gone}"
    ));
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["actor"], "system");
}

/// `amanah serve` runs the purge on its own, every `--purge-interval`.
#[test]
fn amanah_serve_purges_periodically() {
    // A property of the native server only.
    let Some(d) = Deployment::native_only(&["--maintain-interval", "1"]) else {
        return;
    };
    let (clinic, owner, _) = d.ready_clinic("pk", "Tick Clinic", "owner@tick.pk");
    let pid = owner.create_patient(json!({"name": "Tick Person", "dob": "1999-09-09"}));
    assert_eq!(owner.delete(&format!("/api/v1/patients/{pid}")).status, 202);
    clinic.advance(31 * DAY);
    let count = || {
        scalar(
            &d,
            &clinic,
            true,
            &format!("SELECT count(*) FROM patients WHERE id = '{pid}'"),
        )
        .as_i64()
        .unwrap()
    };
    // Waits for the server's own timer (no clock is moved by this wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not purged within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
