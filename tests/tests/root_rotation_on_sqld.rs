//! Root key rotation of a sqld region (the Worker's and Spin's databases),
//! whose hosts hold the root keys as a deployed secret: `keys rotate-root
//! --sqld` adds the version to the key file, refuses to re-wrap until every
//! host named says it holds it, re-wraps after the redeploy, and
//! `retire-root` then takes the old version out of the file and, after the
//! next redeploy, out of the hosts: tokens signed under it are dead and the
//! old wrapped copies in sqld's log open nothing.
//!
//! One test in its own file: the redeploys restart the shared deployment's
//! hosts, which no other test of the same binary may meet mid-request.
//! Skipped on the native host (whose `serve` follows the key file; see
//! `key_rotation.rs`).

use std::path::Path;

use amanah_e2e::operators::{operator, Ran};
use amanah_e2e::{Deployment, PASSWORD};
use serde_json::json;

fn on_sqld(args: &[&str], url: &str, data: &Path) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--sqld", url]);
    operator(&all, &[("--data-dir", data)], &[])
}

/// The root version a session token names (`kid = v<N>`).
fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("a JWT");
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(header.as_bytes())
        .expect("base64url header");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON header");
    v["kid"].as_str().expect("kid").to_owned()
}

#[test]
fn a_sqld_region_rotates_its_root_key_across_a_redeploy_and_retires_the_old_one() {
    let d = Deployment::start();
    let Some(url) = d.sqld("pk").map(|s| s.operator_url()) else {
        eprintln!("skipped: this deployment keeps its databases in files");
        return;
    };
    let data = d.data_dir.clone().expect("data dir of a sqld deployment");
    let host = d.pk.clone();
    let email = "owner@root-rotation.pk";
    let (clinic, owner, secret) = d.ready_clinic("pk", "Root Rotation Clinic", email);
    let pid = owner.create_patient(json!({
        "name": "Rooted Person", "dob": "1966-06-16", "phone": "0300 4440001"
    }));
    let old_token = owner.token.clone().expect("token");
    let start = d.host_root_versions("pk");
    let newest = *start.last().expect("a root version");
    assert_eq!(kid(&old_token), format!("v{newest}"));

    // Without the hosts named, nothing is done.
    let r = on_sqld(&["keys", "rotate-root", "--region", "pk"], &url, &data);
    assert!(!r.ok, "rotate-root without --host-url must refuse");
    assert!(r.stderr.contains("--host-url"), "{}", r.stderr);

    // Step 1: a version is added to the key file; nothing is wrapped by it.
    let rotate = || {
        on_sqld(
            &["keys", "rotate-root", "--region", "pk", "--host-url", &host],
            &url,
            &data,
        )
    };
    let r = rotate();
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["added"], true, "{}", r.json);
    let next = newest + 1;
    assert_eq!(r.json["version"], next);
    assert_eq!(r.json["rewrapped"], 0);
    let key_file = std::fs::read_to_string(data.join("keys/pk.root.key")).unwrap();
    assert!(
        key_file.contains(&format!("v{next}:")),
        "the file holds v{next}"
    );
    let status = on_sqld(&["keys", "status", "--regions", "pk"], &url, &data);
    assert!(status.ok, "{}", status.stderr);
    assert!(
        status.json[0]["wrapped_by_root"]
            .get(format!("v{next}"))
            .is_none(),
        "nothing wrapped by v{next} yet: {}",
        status.json
    );

    // Step 2 before the redeploy: refused, the hosts lack the version.
    let r = rotate();
    assert!(!r.ok, "re-wrap before the redeploy must refuse");
    assert!(
        r.stderr.contains("redeploy") && r.stderr.contains(&format!("not v{next}")),
        "{}",
        r.stderr
    );
    assert_eq!(owner.get(&format!("/api/v1/patients/{pid}")).status, 200);

    // The redeploy: the hosts hold both versions; the old session lives.
    d.redeploy();
    assert!(d.host_root_versions("pk").contains(&next));
    let owner = owner.rebased(&d.pk);
    let r = owner.get(&format!("/api/v1/patients/{pid}"));
    assert_eq!(r.status, 200, "{}", r.body);

    // Step 2: every key re-wrapped; the clinic works as before.
    let r = rotate();
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.json["added"], false, "{}", r.json);
    assert_eq!(r.json["version"], next);
    assert!(
        r.json["rewrapped"].as_u64().unwrap() >= 2,
        "the clinic's key and the region key at least: {}",
        r.json
    );
    assert!(r.json["retirable"]
        .as_array()
        .unwrap()
        .contains(&json!(newest)));
    let status = on_sqld(&["keys", "status", "--regions", "pk"], &url, &data);
    let wraps = status.json[0]["wrapped_by_root"].as_object().unwrap();
    assert_eq!(
        wraps.keys().collect::<Vec<_>>(),
        vec![&format!("v{next}")],
        "{}",
        status.json
    );
    assert_eq!(owner.search_count("03004440001"), 1);
    clinic.advance(60); // a fresh TOTP step
    let fresh = clinic.login_with_totp(email, PASSWORD, &secret);
    assert_eq!(kid(fresh.token.as_deref().unwrap()), format!("v{next}"));

    // A rotation already done adds the next version only when asked again;
    // retiring the newest is refused.
    let retire = |version: u64| {
        let v = version.to_string();
        on_sqld(
            &["keys", "retire-root", "--region", "pk", "--version", &v],
            &url,
            &data,
        )
    };
    let r = retire(next);
    assert!(!r.ok, "the newest version is never retired");

    // Retire the old version, redeploy: tokens under it are dead, the rest
    // works.
    let r = retire(newest);
    assert!(r.ok, "{}", r.stderr);
    assert!(!r.json["held"].as_array().unwrap().contains(&json!(newest)));
    d.redeploy();
    assert!(!d.host_root_versions("pk").contains(&newest));
    let r = owner.get(&format!("/api/v1/patients/{pid}"));
    r.assert_error(401, "unauthenticated");
    let fresh = fresh.rebased(&d.pk);
    let r = fresh.get(&format!("/api/v1/patients/{pid}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Rooted Person");
    let v = fresh.get("/api/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{}", v.body);
}
