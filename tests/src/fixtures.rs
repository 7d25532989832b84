//! Fixtures: a good password, signed-up clinics ready for a day's work,
//! platform staff, TOTP codes at a clinic's time, and writes kept going
//! during a backup.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use totp_rs::{Algorithm, TOTP};

use crate::client::{Client, Resp};
use crate::deployment::{amanah_bin, Deployment, Layout};

/// A good password for fixtures.
pub const PASSWORD: &str = "Saffron-Tea-Window-42";

impl Deployment {
    /// Creates platform staff as an operator does: `amanah staff add` on the
    /// native host's files, the test hook where the directory is a sqld
    /// namespace. Returns the id and the TOTP secret.
    pub fn add_platform_staff(&self, region: &str, role: &str, email: &str) -> (String, String) {
        match &self.layout {
            Layout::Files => {
                use std::io::Write;
                let data = self.data_dir.as_ref().expect("native data dir");
                let mut child = Command::new(amanah_bin())
                    .args([
                        "staff",
                        "add",
                        "--region",
                        region,
                        "--role",
                        role,
                        "--email",
                        email,
                        "--data-dir",
                    ])
                    .arg(data)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run amanah staff add");
                writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
                let out = child.wait_with_output().expect("staff add");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "staff add: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let field = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}=")))
                        .unwrap_or_else(|| panic!("no {k} in {text}"))
                        .to_owned()
                };
                (field("id"), field("totp_secret"))
            }
            Layout::Sqld(_) => {
                let r = self.client(region).post(
                    "/__test/staff",
                    json!({"role": role, "email": email, "password": PASSWORD}),
                );
                assert_eq!(r.status, 201, "staff: {}", r.body);
                (
                    r.body["id"].as_str().unwrap().to_owned(),
                    r.body["totp_secret"].as_str().unwrap().to_owned(),
                )
            }
        }
    }

    /// A sign-up as a test's setup (see [`Client::post_setup`]).
    pub fn post_sign_up(&self, region: &str, body: Value) -> Resp {
        self.client(region).post_setup("/api/v1/clinics", body)
    }

    /// Signs a clinic up; returns its owner (not yet logged in).
    pub fn sign_up(&self, region: &str, clinic_name: &str, owner_email: &str) -> Clinic {
        let r = self.post_sign_up(
            region,
            json!({"name": clinic_name, "region": region,
                   "owner": {"name": "Dr Owner Person", "email": owner_email, "password": PASSWORD}}),
        );
        assert_eq!(r.status, 201, "sign-up: {}", r.body);
        Clinic {
            id: r.body["clinic"]["id"]
                .as_str()
                .expect("clinic id")
                .to_owned(),
            region: region.to_owned(),
            base: self.url(region).to_owned(),
            owner_id: r.body["owner"]["id"].as_str().expect("owner id").to_owned(),
            owner_email: owner_email.to_owned(),
        }
    }

    /// A clinic with an owner who has enrolled TOTP and is logged in.
    pub fn ready_clinic(&self, region: &str, name: &str, email: &str) -> (Clinic, Client, String) {
        let clinic = self.sign_up(region, name, email);
        let mut owner = clinic.login(email, PASSWORD);
        let secret = owner.enrol_totp(&clinic, PASSWORD);
        (clinic, owner, secret)
    }
}

/// A signed-up clinic.
#[derive(Clone, Debug)]
pub struct Clinic {
    pub id: String,
    pub region: String,
    pub base: String,
    pub owner_id: String,
    pub owner_email: String,
}

impl Clinic {
    /// Moves this clinic's clock forward on the server.
    pub fn advance(&self, seconds: i64) -> i64 {
        let r = Client::new(&self.base).post(
            "/__test/clock",
            json!({"clinic": self.id, "advance_seconds": seconds}),
        );
        assert_eq!(r.status, 200, "clock: {}", r.body);
        r.body["offset_seconds"].as_i64().expect("offset")
    }

    /// The clinic's current server time (Unix seconds).
    pub fn now(&self) -> i64 {
        unix_now() + self.advance(0)
    }

    /// The password step of login; asserts 200 and whether a code is asked for.
    fn password_step(&self, email: &str, password: &str, mfa_required: bool) -> (Client, Value) {
        let c = Client::new(&self.base);
        let r = c.post(
            "/api/v1/auth/login",
            json!({"clinic": self.id, "email": email, "password": password}),
        );
        assert_eq!(r.status, 200, "login: {}", r.body);
        assert_eq!(r.body["mfa_required"], mfa_required, "{}", r.body);
        (c, r.body)
    }

    /// Password login of a user without TOTP; panics unless it succeeds.
    pub fn login(&self, email: &str, password: &str) -> Client {
        let (c, body) = self.password_step(email, password, false);
        c.with_session(&body)
    }

    /// Full login with a TOTP code at the clinic's current time.
    pub fn login_with_totp(&self, email: &str, password: &str, secret: &str) -> Client {
        let (c, body) = self.password_step(email, password, true);
        let mfa = body["mfa_token"].as_str().expect("mfa token");
        let r = c.with_bearer(mfa).post(
            "/api/v1/auth/mfa",
            json!({"code": totp_code(secret, self.now())}),
        );
        assert_eq!(r.status, 200, "mfa: {}", r.body);
        c.with_session(&r.body)
    }

    /// Adds a staff member (as the given owner client); returns the user id.
    pub fn add_staff(&self, owner: &Client, role: &str, email: &str) -> String {
        let r = owner.post(
            "/api/v1/users",
            json!({"name": format!("Staff {role}"), "email": email, "role": role, "password": PASSWORD}),
        );
        assert_eq!(r.status, 201, "add staff: {}", r.body);
        r.body["id"].as_str().expect("user id").to_owned()
    }
}

/// Patients created one after another on another thread until stopped:
/// the load a backup is taken under. Names are `<name><i>`, phones
/// `<phone_prefix> <i>` (seven digits).
pub struct BackgroundWrites {
    acknowledged: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl BackgroundWrites {
    pub fn start(owner: &Client, name: &'static str, phone_prefix: &'static str) -> Self {
        use std::sync::atomic::Ordering;
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (owner, acknowledged, stop) = (owner.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let r = owner.post(
                        "/api/v1/patients",
                        json!({"name": format!("{name}{i}"), "dob": "1970-01-01", "phone": format!("{phone_prefix} {i:07}")}),
                    );
                    if r.status == 201 {
                        let id = r.body["id"].as_str().expect("id").to_owned();
                        acknowledged.lock().expect("writes").push(id);
                    }
                }
            })
        };
        BackgroundWrites {
            acknowledged,
            stop,
            thread,
        }
    }

    /// Waits until `n` creates were answered 201; returns every one so far.
    pub fn after(&self, n: usize) -> Vec<String> {
        loop {
            let done = self.acknowledged.lock().expect("writes").clone();
            if done.len() >= n {
                return done;
            }
            std::thread::yield_now();
        }
    }

    /// Stops the writer; every id it was answered 201 for.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the writer thread");
        let all = self.acknowledged.lock().expect("writes").clone();
        all
    }
}

/// What a copy restored from a backup taken under [`BackgroundWrites`]
/// must hold, as `nurse` of the restored copy sees it: every patient
/// acknowledged `before` the backup began, none that was never
/// acknowledged (`all`), and every `step`th one opens and is found by its
/// phone. Returns the restored patients' ids.
pub fn check_restored_writes(
    nurse: &Client,
    before: &[String],
    all: &[String],
    step: usize,
) -> Vec<String> {
    let got = nurse.patient_ids();
    for id in before {
        assert!(
            got.contains(id),
            "{id} acknowledged before the backup, missing"
        );
    }
    for id in &got {
        assert!(all.contains(id), "{id} restored but never acknowledged");
    }
    for (i, id) in got.iter().enumerate().step_by(step) {
        let p = nurse.get(&format!("/api/v1/patients/{id}"));
        assert_eq!(p.status, 200, "{}", p.body);
        let phone = p.body["phone"].as_str().expect("phone").replace(' ', "");
        let found = nurse.get(&format!("/api/v1/patients?q={phone}"));
        assert!(
            found.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|x| x["id"] == **id),
            "patient {i} not found by phone in the restored copy: {}",
            found.body
        );
    }
    got
}

/// An idempotency key no other request of this test run uses.
pub fn fresh_key() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("e2e-{}-{t:x}-{n}", std::process::id())
}

/// The item of a list answer (`{"items": [...]}`) whose `key` is `value`.
pub fn item_where<'a>(body: &'a Value, key: &str, value: &str) -> &'a Value {
    body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i[key] == value))
        .unwrap_or_else(|| panic!("no item with {key} = {value} in {body}"))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The RFC 6238 code of a base32 secret at a Unix time.
pub fn totp_code(secret_b32: &str, unix: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .expect("base32 secret");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret).generate(unix as u64)
}
