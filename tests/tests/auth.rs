//! Login, TOTP, sessions and throttling.

use amanah_e2e::{totp_code, Client, Deployment, PASSWORD};
use serde_json::json;

#[test]
fn owner_must_enrol_totp_then_log_in_with_a_code_that_cannot_be_reused() {
    let d = Deployment::start();
    let clinic = d.sign_up("pk", "Ittefaq Clinic", "owner@ittefaq.pk");
    let mut owner = clinic.login("owner@ittefaq.pk", PASSWORD);
    // Before enrolment only /auth/* answers.
    owner
        .get("/api/v1/patients")
        .assert_error(403, "mfa_enrollment_required");
    owner
        .get("/api/v1/users")
        .assert_error(403, "mfa_enrollment_required");
    assert_eq!(owner.get("/api/v1/auth/session").status, 200);
    // Enrolment needs the password.
    owner
        .post(
            "/api/v1/auth/totp",
            json!({"password": "wrong password here"}),
        )
        .assert_error(401, "unauthenticated");
    let secret = owner.enrol_totp(&clinic, PASSWORD);
    assert_eq!(owner.get("/api/v1/patients").status, 200);

    // Password login now asks for the code.
    let anon = Client::new(&clinic.base);
    let r = anon.post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "owner@ittefaq.pk", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["mfa_required"], true);
    assert!(r.body.get("session").is_none());
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-amanah_mfa="))
        .expect("mfa cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let mfa_token = r.body["mfa_token"].as_str().unwrap().to_owned();
    // The MFA token is not a session.
    anon.with_bearer(&mfa_token)
        .get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");
    let mfa = anon.with_bearer(&mfa_token);
    mfa.post("/api/v1/auth/mfa", json!({"code": "000000"}))
        .assert_error(401, "unauthenticated");
    // The code the enrolment used is spent: refused.
    let now = clinic.now();
    mfa.post("/api/v1/auth/mfa", json!({"code": totp_code(&secret, now)}))
        .assert_error(401, "unauthenticated");
    // Next step's code works, once; the cookie works like the bearer.
    clinic.advance(30);
    let code = totp_code(&secret, clinic.now());
    let mfa_cookie = cookie.split(';').next().unwrap().to_owned();
    let r = anon.raw(
        amanah_e2e::Method::POST,
        "/api/v1/auth/mfa",
        &[
            ("content-type", "application/json"),
            ("cookie", &mfa_cookie),
        ],
        Some(json!({"code": code}).to_string().into_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-amanah_session="))
        .expect("cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert_eq!(r.body["session"]["user"]["role"], "owner");
    assert_eq!(r.body["session"]["clinic"]["id"], clinic.id.as_str());
    // The same code, again, with a fresh password login: refused.
    let r = anon.post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "owner@ittefaq.pk", "password": PASSWORD}),
    );
    let mfa2 = anon.with_bearer(r.body["mfa_token"].as_str().unwrap());
    mfa2.post("/api/v1/auth/mfa", json!({"code": code}))
        .assert_error(401, "unauthenticated");
    // The challenge is single use after success too.
    let used = r.body["mfa_token"].as_str().unwrap().to_owned();
    clinic.advance(30);
    let ok = anon.with_bearer(&used).post(
        "/api/v1/auth/mfa",
        json!({"code": totp_code(&secret, clinic.now())}),
    );
    assert_eq!(ok.status, 200);
    clinic.advance(30);
    anon.with_bearer(&used)
        .post(
            "/api/v1/auth/mfa",
            json!({"code": totp_code(&secret, clinic.now())}),
        )
        .assert_error(401, "unauthenticated");
}

#[test]
fn unknown_email_and_wrong_password_answer_alike() {
    let d = Deployment::start();
    let clinic = d.sign_up("pk", "Alike Clinic", "owner@alike.pk");
    let c = Client::new(&clinic.base);
    let a = c.post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "owner@alike.pk", "password": "not the password!"}),
    );
    let b = c.post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "nobody@alike.pk", "password": "not the password!"}),
    );
    let e = c.post(
        "/api/v1/auth/login",
        json!({"clinic": "pk_aaaaaaaaaaaaaaaaaaaaaaaaaa", "email": "owner@alike.pk", "password": "not the password!"}),
    );
    a.assert_error(401, "unauthenticated");
    assert_eq!(a.body, b.body);
    assert_eq!(a.body, e.body);
}

#[test]
fn logout_kills_the_token_for_bearer_and_cookie() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Logout Clinic", "owner@logout.pk");
    let token = owner.token.clone().unwrap();
    let cookie = format!("__Host-amanah_session={token}");
    let via_cookie = owner.anonymous();
    let r = via_cookie.raw(
        amanah_e2e::Method::GET,
        "/api/v1/auth/session",
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token"], token.as_str());
    assert_eq!(r.body["user"]["email"], clinic.owner_email.as_str());
    let r = owner.post_empty("/api/v1/auth/logout");
    assert_eq!(r.status, 204);
    assert!(r
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("__Host-amanah_session=;") && c.contains("Max-Age=0")));
    owner
        .get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");
    via_cookie
        .raw(
            amanah_e2e::Method::GET,
            "/api/v1/auth/session",
            &[("cookie", &cookie)],
            None,
        )
        .assert_error(401, "unauthenticated");
}

#[test]
fn deactivation_and_role_change_take_effect_on_the_next_request() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Staff Clinic", "owner@staff.pk");
    let nurse_id = clinic.add_staff(&owner, "nurse", "nurse@staff.pk");
    let nurse = clinic.login("nurse@staff.pk", PASSWORD);
    assert_eq!(nurse.get("/api/v1/patients").status, 200);
    // nurse → receptionist: still patients, but the nurse token holds no more than the role now
    let r = owner.patch(
        &format!("/api/v1/users/{nurse_id}"),
        json!({"role": "receptionist"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        nurse.get("/api/v1/auth/session").body["user"]["role"],
        "receptionist"
    );
    let r = owner.patch(
        &format!("/api/v1/users/{nurse_id}"),
        json!({"active": false}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["active"], false);
    nurse
        .get("/api/v1/patients")
        .assert_error(401, "unauthenticated");
    // and the deactivated user cannot log in again
    let r = Client::new(&clinic.base).post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "nurse@staff.pk", "password": PASSWORD}),
    );
    r.assert_error(401, "unauthenticated");
}

#[test]
fn idle_timeout_and_absolute_limit() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Timeout Clinic", "owner@timeout.pk");
    clinic.add_staff(&owner, "nurse", "nurse@timeout.pk");
    let nurse = clinic.login("nurse@timeout.pk", PASSWORD);
    // 14 minutes idle: still alive (and the request refreshes it).
    clinic.advance(14 * 60);
    assert_eq!(nurse.get("/api/v1/auth/session").status, 200);
    // 15 minutes idle: gone.
    clinic.advance(15 * 60);
    nurse
        .get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");

    // Active every 10 minutes, the session still ends 12 hours after login.
    let nurse = clinic.login("nurse@timeout.pk", PASSWORD);
    for _ in 0..71 {
        clinic.advance(10 * 60);
        assert_eq!(nurse.get("/api/v1/auth/session").status, 200);
    }
    clinic.advance(10 * 60 + 1);
    nurse
        .get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");
}

#[test]
fn login_throttling_holds_with_retry_after() {
    let d = Deployment::start();
    let clinic = d.sign_up("pk", "Throttle Clinic", "owner@throttle.pk");
    let c = Client::new(&clinic.base);
    let attempt = |password: &str| {
        c.post(
            "/api/v1/auth/login",
            json!({"clinic": clinic.id, "email": "owner@throttle.pk", "password": password}),
        )
    };
    for _ in 0..5 {
        attempt("wrong password value").assert_error(401, "unauthenticated");
    }
    // Locked: even the right password is refused, with Retry-After.
    let locked_for = || {
        let r = attempt(PASSWORD);
        r.assert_error(429, "rate_limited");
        r.header("retry-after")
            .expect("Retry-After")
            .parse::<i64>()
            .unwrap()
    };
    let retry = locked_for();
    assert!((1..=60).contains(&retry), "{retry}");
    clinic.advance(retry + 1);
    // One more failure in the window locks for twice as long.
    attempt("wrong password value").assert_error(401, "unauthenticated");
    let retry = locked_for();
    assert!((61..=120).contains(&retry), "the lock doubles: {retry}");
    clinic.advance(retry + 1);
    assert_eq!(attempt(PASSWORD).status, 200);
    // An unknown email is throttled the same way (no account enumeration).
    let unknown = |p: &str| {
        c.post(
            "/api/v1/auth/login",
            json!({"clinic": clinic.id, "email": "ghost@throttle.pk", "password": p}),
        )
    };
    for _ in 0..5 {
        unknown("wrong password value").assert_error(401, "unauthenticated");
    }
    unknown("wrong password value").assert_error(429, "rate_limited");
}

#[test]
fn password_change_ends_other_sessions() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Password Clinic", "owner@pw.pk");
    clinic.add_staff(&owner, "receptionist", "desk@pw.pk");
    let a = clinic.login("desk@pw.pk", PASSWORD);
    let b = clinic.login("desk@pw.pk", PASSWORD);
    let r = a.post(
        "/api/v1/auth/password",
        json!({"current": PASSWORD, "new": "short"}),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "new");
    a.post(
        "/api/v1/auth/password",
        json!({"current": "not my password", "new": "Another-Good-Passphrase-9"}),
    )
    .assert_error(401, "unauthenticated");
    let r = a.post(
        "/api/v1/auth/password",
        json!({"current": PASSWORD, "new": "Another-Good-Passphrase-9"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(a.get("/api/v1/auth/session").status, 200);
    b.get("/api/v1/auth/session")
        .assert_error(401, "unauthenticated");
    clinic.login("desk@pw.pk", "Another-Good-Passphrase-9");
}

#[test]
fn forged_and_foreign_tokens_are_refused() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Forgery Clinic", "owner@forge.pk");
    let token = owner.token.clone().unwrap();
    let anon = owner.anonymous();
    // tampered payload, stripped signature, alg none
    let parts: Vec<&str> = token.split('.').collect();
    let header_none =
        data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"amanah-session+jwt"}"#);
    for bad in [
        format!("{}.{}x.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{header_none}.{}.", parts[1]),
        "garbage".to_owned(),
    ] {
        anon.with_bearer(&bad)
            .get("/api/v1/auth/session")
            .assert_error(401, "unauthenticated");
    }
    // A token of another clinic of the same region works only for that clinic's data.
    let (_other, other_owner, _) = d.ready_clinic("pk", "Other Clinic", "owner@other.pk");
    let pid = owner.create_patient(json!({"name": "Token Test", "dob": "1990-01-01"}));
    other_owner
        .get(&format!("/api/v1/patients/{pid}"))
        .assert_error(404, "not_found");
    let _ = clinic;
}

/// RFC 8725's cases one by one, over HTTP, each token signed with the
/// region's real key so that only the one thing wrong with it is wrong. The
/// first token is a correct one made the same way: the forger works, so
/// every refusal below is the server's.
#[test]
fn tokens_signed_with_the_real_key_but_wrong_in_one_way_are_refused() {
    use data_encoding::BASE64URL_NOPAD as B64;
    use hmac::{Hmac, Mac};

    let d = Deployment::start();
    let Some(root) = d.root_key("pk") else {
        eprintln!("skipped: an external deployment's root key is not known here");
        return;
    };
    let other_region = d.root_key("ae").expect("ae key");
    let (clinic, owner, _) = d.ready_clinic("pk", "Claims Clinic", "owner@claims.pk");
    // The live session's claims, read from its own token.
    let token = owner.token.clone().expect("session token");
    let claims: serde_json::Value = serde_json::from_slice(
        &B64.decode(token.split('.').nth(1).expect("payload").as_bytes())
            .expect("base64url"),
    )
    .expect("claims");
    let (sub, cid, sid) = (
        claims["sub"].as_str().expect("sub"),
        claims["cid"].as_str().expect("cid"),
        claims["sid"].as_str().expect("sid"),
    );
    assert_eq!(cid, clinic.id);
    let now = clinic.now();

    let sign = |key: &amanah_functions::crypto::keys::RootKey, header: &str, payload: &str| {
        let (h, p) = (
            B64.encode(header.as_bytes()),
            B64.encode(payload.as_bytes()),
        );
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.derive("jwt-hs256").expose())
            .expect("hmac key");
        mac.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", B64.encode(&mac.finalize().into_bytes()))
    };
    let kid = format!("v{}", root.version);
    let header = |alg: &str, typ: &str| format!(r#"{{"alg":"{alg}","typ":"{typ}","kid":"{kid}"}}"#);
    let payload = |iss: &str, aud: &str, nbf: i64, exp: i64| {
        json!({"iss": iss, "aud": aud, "sub": sub, "cid": cid, "sid": sid, "iat": nbf, "nbf": nbf, "exp": exp})
            .to_string()
    };
    let session = "amanah-session+jwt";
    let good_payload = payload("amanah:pk", "amanah:pk:session", now - 10, now + 600);

    let anon = owner.anonymous();
    let r = anon
        .with_bearer(&sign(&root, &header("HS256", session), &good_payload))
        .get("/api/v1/auth/session");
    assert_eq!(r.status, 200, "the forger's correct token: {}", r.body);
    let as_cookie = |t: &str| {
        anon.raw(
            amanah_e2e::Method::GET,
            "/api/v1/auth/session",
            &[(
                "cookie",
                &format!("{}={t}", amanah_functions::web::SESSION_COOKIE),
            )],
            None,
        )
    };
    let good = sign(&root, &header("HS256", session), &good_payload);
    assert_eq!(as_cookie(&good).status, 200, "as a cookie");

    let cases = [
        (
            "alg RS256 over an HS256 signature (algorithm confusion)",
            sign(&root, &header("RS256", session), &good_payload),
        ),
        (
            "alg HS512",
            sign(&root, &header("HS512", session), &good_payload),
        ),
        (
            "alg none, signed anyway",
            sign(&root, &header("none", session), &good_payload),
        ),
        (
            "typ JWT",
            sign(&root, &header("HS256", "JWT"), &good_payload),
        ),
        (
            "no typ",
            sign(&root, &format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &good_payload),
        ),
        (
            "no kid (which root key version signed it)",
            sign(&root, &format!(r#"{{"alg":"HS256","typ":"{session}"}}"#), &good_payload),
        ),
        (
            "kid of a root key version the region does not hold",
            sign(
                &root,
                &format!(r#"{{"alg":"HS256","typ":"{session}","kid":"v{}"}}"#, root.version + 1),
                &good_payload,
            ),
        ),
        (
            "typ of an MFA challenge",
            sign(&root, &header("HS256", "amanah-mfa+jwt"), &good_payload),
        ),
        (
            "typ of a support session",
            sign(&root, &header("HS256", "amanah-support+jwt"), &good_payload),
        ),
        (
            "wrong iss",
            sign(
                &root,
                &header("HS256", session),
                &payload("amanah:evil", "amanah:pk:session", now - 10, now + 600),
            ),
        ),
        (
            "wrong aud (another region)",
            sign(
                &root,
                &header("HS256", session),
                &payload("amanah:pk", "amanah:ae:session", now - 10, now + 600),
            ),
        ),
        (
            "aud of an MFA challenge",
            sign(
                &root,
                &header("HS256", session),
                &payload("amanah:pk", "amanah:pk:mfa", now - 10, now + 600),
            ),
        ),
        (
            "expired",
            sign(
                &root,
                &header("HS256", session),
                &payload("amanah:pk", "amanah:pk:session", now - 7200, now - 3600),
            ),
        ),
        (
            "not yet valid (nbf an hour ahead)",
            sign(
                &root,
                &header("HS256", session),
                &payload("amanah:pk", "amanah:pk:session", now + 3600, now + 7200),
            ),
        ),
        (
            "no exp",
            sign(
                &root,
                &header("HS256", session),
                &json!({"iss": "amanah:pk", "aud": "amanah:pk:session", "sub": sub, "cid": cid, "sid": sid, "nbf": now - 10})
                    .to_string(),
            ),
        ),
        (
            "signed with the other region's key",
            sign(&other_region, &header("HS256", session), &good_payload),
        ),
        (
            "another session id",
            sign(
                &root,
                &header("HS256", session),
                &good_payload.replace(sid, "ses_aaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ),
        ),
        (
            "another user of the session",
            sign(
                &root,
                &header("HS256", session),
                &good_payload.replace(sub, "usr_aaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ),
        ),
    ];
    for (what, forged) in &cases {
        let r = anon.with_bearer(forged).get("/api/v1/auth/session");
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{what}: {}",
            r.body
        );
        // The same token as a cookie is refused alike.
        let r = as_cookie(forged);
        assert_eq!(r.status, 401, "{what} (cookie): {}", r.body);
    }
    eprintln!("{} forged tokens refused, bearer and cookie", cases.len());
}
