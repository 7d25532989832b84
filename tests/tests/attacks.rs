//! What an outside attack found (SECURITY.md, "An outside attack"), each
//! finding replayed as the tester ran it, against what stops it now. Tests
//! that act from several addresses run natively, where the suite can start
//! a host that believes its own `X-Forwarded-For` (`--trusted-proxy
//! 127.0.0.1/32`); the rest run on every host.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use amanah_e2e::{
    fresh_key, scalar_on_file, totp_code, Client, Clinic, Deployment, Layout, Method, Resp,
    PASSWORD,
};
use serde_json::{json, Value};

/// A six-digit code that is none of the codes valid at `now`.
fn wrong_code(secret: &str, now: i64) -> String {
    let valid: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|d| totp_code(secret, now + d))
        .collect();
    (0..1000)
        .map(|i| format!("{:06}", 123_457 + i * 7919))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

fn login_body(clinic: &Clinic, email: &str, password: &str) -> Value {
    json!({"clinic": clinic.id, "email": email, "password": password})
}

/// A request as if from `ip` (through the host's trusted proxy).
fn from(c: &Client, ip: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
    let mut headers = vec![("x-forwarded-for", ip)];
    let bytes = body.map(|b| {
        headers.push(("content-type", "application/json"));
        b.to_string().into_bytes()
    });
    c.raw(method, path, &headers, bytes)
}

/// Finding 1: the TOTP step could be guessed without end by signing in
/// again every four wrong codes (a right password cleared the counter).
/// Now wrong codes count per account across every sign-in: 429 within 10
/// wrong codes, the right code refused too while locked, the lock ends by
/// itself, and the user is told at their next sign-in.
#[test]
fn totp_guesses_across_sign_ins_end_in_429() {
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("pk", "Guess Clinic", "owner@guess.pk");
    let anon = d.client("pk").anonymous();
    let mut wrong = 0;
    let mut refused = None;
    'attack: for _ in 0..6 {
        let r = anon.post(
            "/api/v1/auth/login",
            login_body(&clinic, "owner@guess.pk", PASSWORD),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let mfa = anon.with_bearer(r.body["mfa_token"].as_str().expect("mfa token"));
        for _ in 0..4 {
            let r = mfa.post(
                "/api/v1/auth/mfa",
                json!({"code": wrong_code(&secret, clinic.now())}),
            );
            if r.status == 429 {
                refused = Some(r);
                break 'attack;
            }
            r.assert_error(401, "unauthenticated");
            wrong += 1;
        }
    }
    let refused = refused.expect("the attack ends in 429");
    assert!(wrong <= 10, "{wrong} wrong codes before 429");
    assert!(refused.header("retry-after").is_some());

    // Locked: even the right code waits.
    let r = anon.post(
        "/api/v1/auth/login",
        login_body(&clinic, "owner@guess.pk", PASSWORD),
    );
    let mfa = anon.with_bearer(r.body["mfa_token"].as_str().expect("mfa token"));
    mfa.post(
        "/api/v1/auth/mfa",
        json!({"code": totp_code(&secret, clinic.now())}),
    )
    .assert_error(429, "rate_limited");

    // The lock ends; the right code signs in and says what happened.
    clinic.advance(6 * 60);
    let r = anon.post(
        "/api/v1/auth/login",
        login_body(&clinic, "owner@guess.pk", PASSWORD),
    );
    let mfa = anon.with_bearer(r.body["mfa_token"].as_str().expect("mfa token"));
    let r = mfa.post(
        "/api/v1/auth/mfa",
        json!({"code": totp_code(&secret, clinic.now())}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["session"]["notice"]["failed_codes"].as_i64(),
        Some(wrong as i64),
        "{}",
        r.body
    );
    // Told once: the next sign-in has nothing to say.
    clinic.advance(31);
    let again = clinic.login_with_totp("owner@guess.pk", PASSWORD, &secret);
    let session = again.get("/api/v1/auth/session");
    assert!(session.body["notice"].is_null(), "{}", session.body);
    // The owner's trail shows every wrong code.
    let trail = owner.get("/api/v1/audit?action=auth.mfa&limit=200");
    let failures = trail.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .count();
    assert!(
        failures > wrong,
        "{failures} failures on the trail for {wrong} wrong codes"
    );
}

/// Finding 8: TOTP could be enrolled again with a session and the password
/// alone. Now a code of the device in use is needed (counted like the
/// sign-in's); a lost device is the owner's reset, which, like a reset
/// password, ends the user's sessions and is on the trail.
#[test]
fn the_second_factor_moves_only_with_a_code_or_an_owners_reset() {
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("pk", "Device Clinic", "owner@device.pk");
    owner
        .post("/api/v1/auth/totp", json!({"password": PASSWORD}))
        .assert_error(400, "invalid_request");
    // The sign-in just used this step's code; the next step's is fresh.
    clinic.advance(31);
    let r = owner.post(
        "/api/v1/auth/totp",
        json!({"password": PASSWORD, "code": wrong_code(&secret, clinic.now())}),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "code");
    let r = owner.post(
        "/api/v1/auth/totp",
        json!({"password": PASSWORD, "code": totp_code(&secret, clinic.now())}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let new_secret = r.body["secret"].as_str().expect("secret").to_owned();
    let r = owner.post(
        "/api/v1/auth/totp/confirm",
        json!({"code": totp_code(&new_secret, clinic.now())}),
    );
    assert_eq!(r.status, 204, "{}", r.body);

    // The owner resets a doctor's lost device and a nurse's password.
    let doctor_id = clinic.add_staff(&owner, "doctor", "doc@device.pk");
    let mut doctor = clinic.login("doc@device.pk", PASSWORD);
    let doctor_secret = doctor.enrol_totp(&clinic, PASSWORD);
    let nurse_id = clinic.add_staff(&owner, "nurse", "nurse@device.pk");
    let nurse = clinic.login("nurse@device.pk", PASSWORD);
    let desk_id = clinic.add_staff(&owner, "receptionist", "desk@device.pk");
    let desk = clinic.login("desk@device.pk", PASSWORD);
    desk.post(
        &format!("/api/v1/users/{nurse_id}/reset"),
        json!({"password": true}),
    )
    .assert_error(403, "forbidden");
    owner
        .post(
            &format!("/api/v1/users/{}/reset", clinic.owner_id),
            json!({"totp": true}),
        )
        .assert_error(400, "invalid_request");
    owner
        .post(&format!("/api/v1/users/{doctor_id}/reset"), json!({}))
        .assert_error(400, "invalid_request");

    let r = owner.post(
        &format!("/api/v1/users/{doctor_id}/reset"),
        json!({"totp": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("temporary_password").is_none(), "{}", r.body);
    doctor
        .get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");
    let doctor = clinic.login("doc@device.pk", PASSWORD);
    doctor
        .get("/api/v1/patients")
        .assert_error(403, "mfa_enrollment_required");
    let _ = doctor_secret;

    let r = owner.post(
        &format!("/api/v1/users/{nurse_id}/reset"),
        json!({"password": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let temporary = r.body["temporary_password"]
        .as_str()
        .expect("a temporary password")
        .to_owned();
    nurse
        .get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");
    let anon = d.client("pk").anonymous();
    anon.post(
        "/api/v1/auth/login",
        login_body(&clinic, "nurse@device.pk", PASSWORD),
    )
    .assert_error(401, "unauthenticated");
    let nurse = clinic.login("nurse@device.pk", &temporary);
    let session = nurse.get("/api/v1/auth/session");
    assert_eq!(session.body["user"]["password_change_required"], true);
    nurse
        .get("/api/v1/patients")
        .assert_error(403, "password_change_required");
    let r = nurse.post(
        "/api/v1/auth/password",
        json!({"current": temporary, "new": "Another-Long-Passphrase-77"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(nurse.get("/api/v1/patients").status, 200);

    let trail = owner.get("/api/v1/audit?action=user.reset");
    let resets: Vec<&Value> = trail.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .collect();
    assert!(
        resets.iter().filter(|e| e["outcome"] == "success").count() == 2,
        "{}",
        trail.body
    );
    let _ = desk_id;

    // Another clinic's user is not found.
    let (_, other_owner, _) = d.ready_clinic("pk", "Other Device", "owner@other-device.pk");
    other_owner
        .post(
            &format!("/api/v1/users/{nurse_id}/reset"),
            json!({"password": true}),
        )
        .assert_error(404, "not_found");
}

/// Finding 2: sign-up was unthrottled. Now an address signs up so many
/// clinics an hour, and the region so many (`--signup-limits`).
#[test]
fn sign_ups_are_throttled_per_address_and_per_region() {
    let Some(d) =
        Deployment::native_only(&["--trusted-proxy", "127.0.0.1/32", "--signup-limits", "2,3"])
    else {
        return;
    };
    let c = d.client("pk");
    let sign_up = |ip: &str, n: usize| {
        from(
            &c,
            ip,
            Method::POST,
            "/api/v1/clinics",
            Some(json!({
                "name": format!("Throttled {n}"),
                "region": "pk",
                "owner": {"name": "Owner", "email": format!("o{n}@throttle.pk"), "password": PASSWORD}
            })),
        )
    };
    assert_eq!(sign_up("198.51.100.1", 1).status, 201);
    assert_eq!(sign_up("198.51.100.1", 2).status, 201);
    let r = sign_up("198.51.100.1", 3);
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    assert_eq!(sign_up("198.51.100.2", 4).status, 201);
    // The region's third of the hour was the last.
    sign_up("198.51.100.3", 5).assert_error(429, "rate_limited");
}

/// Finding 3: five wrong passwords from anywhere locked a user out from
/// everywhere. Now a lock holds the account from the failing address only;
/// many addresses slow the account down for addresses that failed, and the
/// user's own address stays open.
#[test]
fn nobody_locks_a_user_out_of_their_own_address() {
    let Some(d) = Deployment::native_only(&["--trusted-proxy", "127.0.0.1/32"]) else {
        return;
    };
    let clinic = d.sign_up("pk", "Lockout Clinic", "owner@lockout.pk");
    let c = d.client("pk");
    let login = |ip: &str, password: &str| {
        from(
            &c,
            ip,
            Method::POST,
            "/api/v1/auth/login",
            Some(login_body(&clinic, "owner@lockout.pk", password)),
        )
    };
    for _ in 0..5 {
        login("203.0.113.66", "wrong password entirely").assert_error(401, "unauthenticated");
    }
    login("203.0.113.66", "wrong password entirely").assert_error(429, "rate_limited");
    login("203.0.113.66", PASSWORD).assert_error(429, "rate_limited");
    // The user, from their own address, signs in.
    assert_eq!(login("198.51.100.20", PASSWORD).status, 200);

    // Guessing from many addresses passes the account's ceiling: the
    // addresses that failed are slowed; a fresh one still signs in.
    for i in 0..25 {
        login(&format!("203.0.113.{}", 100 + i), "wrong password entirely")
            .assert_error(401, "unauthenticated");
    }
    login("203.0.113.100", "wrong password entirely").assert_error(429, "rate_limited");
    assert_eq!(login("198.51.100.21", PASSWORD).status, 200);
}

/// Finding 4: fifty failures from one address locked every login from it,
/// to every clinic: a clinic behind one shared address lost its staff. Now
/// the address lock (spraying) spares accounts that signed in from it
/// before.
#[test]
fn a_shared_address_locked_for_spraying_still_lets_its_staff_in() {
    let Some(d) = Deployment::native_only(&["--trusted-proxy", "127.0.0.1/32"]) else {
        return;
    };
    let clinic = d.sign_up("pk", "Shared Clinic", "owner@shared.pk");
    let c = d.client("pk");
    let nat = "192.0.2.44";
    let login = |email: &str, password: &str| {
        from(
            &c,
            nat,
            Method::POST,
            "/api/v1/auth/login",
            Some(login_body(&clinic, email, password)),
        )
    };
    // The owner signs in from the clinic's address.
    let r = login("owner@shared.pk", PASSWORD);
    assert_eq!(r.status, 200, "{}", r.body);
    let owner = c.with_session(&r.body);
    from(
        &owner,
        nat,
        Method::POST,
        "/api/v1/users",
        Some(
            json!({"name": "New Nurse", "email": "new@shared.pk", "role": "nurse", "password": PASSWORD}),
        ),
    );
    // Someone behind the same address sprays a password over accounts.
    for i in 0..50 {
        login(&format!("guess{i}@shared.pk"), "Summer2026Summer!")
            .assert_error(401, "unauthenticated");
    }
    login("guess99@shared.pk", "Summer2026Summer!").assert_error(429, "rate_limited");
    // The owner, known at this address, still signs in; a colleague who
    // never signed in from it waits out the lock (or signs in elsewhere).
    assert_eq!(login("owner@shared.pk", PASSWORD).status, 200);
    login("new@shared.pk", PASSWORD).assert_error(429, "rate_limited");
}

/// Finding 5: a body that never arrived held its connection for good. Now
/// one address holds at most so many connections, and hyper's own answers
/// to malformed requests carry the security headers like every other.
#[test]
fn slow_clients_hold_bounded_connections_and_every_answer_is_secured() {
    let Some(d) = Deployment::native_only(&["--max-connections-per-address", "4"]) else {
        return;
    };
    let addr = d.url("pk").trim_start_matches("http://").to_owned();
    // Four connections that send half a body and wait.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(
            b"POST /api/v1/clinics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{",
        )
        .expect("write");
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    // A fifth from the same address is closed at once, unanswered.
    let mut fifth = TcpStream::connect(&addr).expect("connect");
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(
        matches!(fifth.read(&mut buf), Ok(0) | Err(_)),
        "the fifth connection was served"
    );
    drop(slow);
    std::thread::sleep(Duration::from_millis(200));

    // A malformed request line: hyper's own 400, with the headers.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 400"), "{text}");
    for h in [
        "x-content-type-options: nosniff",
        "strict-transport-security:",
        "content-security-policy:",
        "referrer-policy: no-referrer",
    ] {
        assert!(text.contains(h), "{h} missing: {text}");
    }
}

/// Finding 6: a purged patient survived in the stored answers of keyed
/// writes. Now the purge removes them with the patient, and answers past
/// their day go on the scheduled run whatever else happens.
#[test]
fn a_purged_patient_leaves_no_stored_answer() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Leftover Clinic", "owner@leftover.pk");
    let count = |sql: &str| {
        d.scalar(&clinic.region, Some(&clinic), sql)
            .map(|r| r.expect("query").as_i64().expect("count"))
    };
    let r = owner.post_with_key(
        "/api/v1/patients",
        &fresh_key(),
        &json!({"name": "Keyed Leftover", "dob": "1960-01-01", "phone": "0300 5550001", "national_id": "35202-1234567-1"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let gone = r.body["id"].as_str().expect("id").to_owned();
    let kept = owner.post_with_key(
        "/api/v1/patients",
        &fresh_key(),
        &json!({"name": "Keyed Keeper", "dob": "1961-01-01"}),
    );
    let kept = kept.body["id"].as_str().expect("id").to_owned();
    let Some(before) = count("SELECT count(*) FROM idempotency") else {
        eprintln!("skipped: this deployment's databases cannot be read");
        return;
    };
    assert_eq!(before, 2);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM idempotency WHERE patient_id = '{gone}'"
        )),
        Some(1)
    );
    assert_eq!(
        owner.delete(&format!("/api/v1/patients/{gone}")).status,
        202
    );
    clinic.advance(31 * 24 * 60 * 60);
    d.run_purge("pk");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM idempotency WHERE patient_id = '{gone}'"
        )),
        Some(0)
    );
    // Past its day, the other answer goes on the scheduled run too.
    assert_eq!(count("SELECT count(*) FROM idempotency"), Some(0));
    let _ = kept;
}

/// Finding 7: a sealed value's length showed its plaintext's (`sex` told
/// female from male). Now values are padded to buckets: one size for every
/// short value, and names of similar length alike.
#[test]
fn sealed_values_do_not_show_their_length() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Length Clinic", "owner@length.pk");
    for (name, sex) in [
        ("Ann Lee", "female"),
        ("Bob Khan", "male"),
        ("Cy Ali", "other"),
        ("Dee Noor", "unknown"),
    ] {
        owner.create_patient(json!({"name": name, "dob": "1980-02-02", "sex": sex}));
    }
    let Some(sizes) = d.scalar(
        &clinic.region,
        Some(&clinic),
        "SELECT count(DISTINCT length(sex)) || ',' || count(DISTINCT length(name)) || ',' || count(DISTINCT length(dob)) FROM patients",
    ) else {
        eprintln!("skipped: this deployment's databases cannot be read");
        return;
    };
    assert_eq!(sizes.expect("query"), json!("1,1,1"));
}

/// Finding 8: a refused clinical read was audited without its patient, so
/// it was missing from that patient's timeline.
#[test]
fn a_refused_read_is_on_the_patients_timeline() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Timeline Clinic", "owner@timeline.pk");
    clinic.add_staff(&owner, "receptionist", "desk@timeline.pk");
    let desk = clinic.login("desk@timeline.pk", PASSWORD);
    let pid = owner.create_patient(json!({"name": "Watched Person", "dob": "1970-07-07"}));
    desk.get(&format!("/api/v1/patients/{pid}/notes"))
        .assert_error(403, "forbidden");
    let timeline = owner.get(&format!("/api/v1/patients/{pid}/audit"));
    assert!(
        timeline.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["action"] == "note.list" && e["outcome"] == "denied"),
        "{}",
        timeline.body
    );
}

/// Finding 8: one user (or address) could call as fast as the machine
/// answers. Now each has a bucket (`--request-limits`).
#[test]
fn one_user_calls_at_a_bounded_rate() {
    let Some(d) = Deployment::native_only(&["--request-limits", "1/5,1000/1000"]) else {
        return;
    };
    let (_, owner, _) = d.ready_clinic("pk", "Rate Clinic", "owner@rate.pk");
    let statuses: Vec<u16> = (0..12)
        .map(|_| owner.get("/api/v1/patients").status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = owner.get("/api/v1/patients");
    if r.status == 429 {
        assert!(r.header("retry-after").is_some());
        r.assert_error(429, "rate_limited");
    }
}

/// Finding 8: `GET /audit/verify` walked the whole chain on every audit
/// page. Now it walks from the newest signed checkpoint, which it still
/// holds the chain to: a chain cut below it is caught.
#[test]
fn verification_starts_at_the_newest_checkpoint_and_still_catches_a_cut() {
    let checkpoints = tempfile::tempdir().expect("tmp");
    let dir = checkpoints.path().to_str().expect("path").to_owned();
    let Some(d) = Deployment::native_only(&["--checkpoint-dir", &dir]) else {
        return;
    };
    let (clinic, owner, _) = d.ready_clinic("pk", "Anchor Clinic", "owner@anchor.pk");
    for i in 0..5 {
        owner.create_patient(json!({"name": format!("Anchor {i}"), "dob": "1990-01-01"}));
    }
    let data = d.data_dir.clone().expect("data dir");
    let out = std::process::Command::new(amanah_e2e::amanah_bin())
        .args([
            "maintain",
            "--insecure-test-hooks",
            "--regions",
            "pk",
            "--data-dir",
        ])
        .arg(&data)
        .args(["--checkpoint-dir", &dir])
        .output()
        .expect("maintain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);
    let entries = v.body["entries"].as_i64().expect("entries");

    // Cut the chain below the checkpoint (triggers dropped, tail deleted):
    // the chain alone still links up; the checkpoint says otherwise.
    d.tamper_audit(
        &clinic,
        &format!("DELETE FROM audit WHERE seq > {}", entries - 3),
    );
    let v = owner.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], false, "{}", v.body);
    assert!(v.body["first_bad_seq"].as_i64().is_some(), "{}", v.body);
}

/// Finding 8: look-alike input (full-width letters, direction overrides)
/// made a second account of one email, hid names, and missed searches.
#[test]
fn look_alike_input_is_one_form_and_hiding_characters_are_refused() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Form Clinic", "owner@form.pk");
    clinic.add_staff(&owner, "nurse", "nurse@form.pk");
    // The full-width spelling is the same account: taken, and it signs in.
    let r = owner.post(
        "/api/v1/users",
        json!({"name": "Twin", "email": "ｎｕｒｓｅ@form.pk", "role": "nurse", "password": PASSWORD}),
    );
    r.assert_error(409, "conflict");
    let r = d.client("pk").post(
        "/api/v1/auth/login",
        login_body(&clinic, "ｎｕｒｓｅ@form.pk", PASSWORD),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for name in ["Ali\u{202E}nahK", "Zero\u{200B}Width"] {
        let r = owner.post(
            "/api/v1/patients",
            json!({"name": name, "dob": "1980-01-01"}),
        );
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["field"], "name");
    }
    owner.create_patient(
        json!({"name": "Sana Javed", "dob": "1985-05-05", "phone": "0300 4445566"}),
    );
    assert_eq!(owner.search_count("ｓａｎａ"), 1);
    assert_eq!(owner.search_count("０３００ ４４４５５６６"), 1);
}

/// Finding 8: a support agent could file access requests without end.
#[test]
fn a_support_agent_files_a_bounded_number_of_requests_a_day() {
    let d = Deployment::start();
    let (clinic, _owner, _) = d.ready_clinic("pk", "Ask Clinic", "owner@ask.pk");
    let (_, secret) = d.add_platform_staff("pk", "support", "agent@ask.example");
    let r = d.client("pk").post(
        "/api/v1/support/login",
        json!({"email": "agent@ask.example", "password": PASSWORD, "code": totp_code(&secret, amanah_e2e::unix_now())}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let agent = d
        .client("pk")
        .with_bearer(r.body["token"].as_str().expect("token"));
    let ask = |i: usize| {
        agent.post(
            "/api/v1/support/access-requests",
            json!({"clinic": clinic.id, "ticket": format!("T-{i}"), "reason": "checking"}),
        )
    };
    for i in 0..20 {
        assert_eq!(ask(i).status, 201);
    }
    let r = ask(20);
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
}

/// Finding 8: database and key files were world-readable (0644). Now the
/// native host makes every file 0600 and every directory 0700.
#[test]
fn every_file_the_native_host_writes_is_its_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let Some(d) = Deployment::native_only(&[]) else {
        return;
    };
    let (_, owner, _) = d.ready_clinic("pk", "Mode Clinic", "owner@mode.pk");
    owner.create_patient(json!({"name": "Mode Person", "dob": "1990-09-09"}));
    let Layout::Files = d.layout else {
        return;
    };
    let data = d.data_dir.clone().expect("data dir");
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            let meta = e.metadata().expect("meta");
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode & 0o077, 0, "{}: {mode:o}", e.path().display());
                stack.push(e.path());
            } else {
                assert_eq!(mode & 0o077, 0, "{}: {mode:o}", e.path().display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "{seen} files");
    let _ = scalar_on_file;
}
