//! Sign-up in each region, the region list, and the region guard.

use amanah_e2e::{Deployment, PASSWORD};
use serde_json::json;

#[test]
fn health_and_regions() {
    let d = Deployment::start();
    for region in ["pk", "ae"] {
        let r = d.client(region).get("/healthz");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"status": "ok", "region": region}));
    }
    let r = d.client("pk").get("/api/v1/regions");
    assert_eq!(r.status, 200);
    let list = r.body.as_array().expect("array");
    let find = |id: &str| list.iter().find(|x| x["id"] == id).cloned().expect(id);
    assert_eq!(find("pk")["location"], "Singapore");
    assert_eq!(find("pk")["name"], "Pakistan");
    assert_eq!(find("ae")["location"], "UAE");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn sign_up_in_pk_and_ae_pins_the_clinic_to_its_region() {
    let d = Deployment::start();
    let pk = d.sign_up("pk", "Shifa Clinic Lahore", "owner@shifa.pk");
    let ae = d.sign_up("ae", "Al Noor Clinic Dubai", "owner@alnoor.ae");
    assert!(pk.id.starts_with("pk_"), "{}", pk.id);
    assert!(ae.id.starts_with("ae_"), "{}", ae.id);

    // Each clinic logs in at its own region; the other region answers 421
    // without opening anything, whatever the password.
    let login = |region: &str, clinic: &str, email: &str| {
        d.client(region).post(
            "/api/v1/auth/login",
            json!({"clinic": clinic, "email": email, "password": PASSWORD}),
        )
    };
    assert_eq!(login("pk", &pk.id, "owner@shifa.pk").status, 200);
    assert_eq!(login("ae", &ae.id, "owner@alnoor.ae").status, 200);
    login("ae", &pk.id, "owner@shifa.pk").assert_error(421, "wrong_region");
    login("pk", &ae.id, "owner@alnoor.ae").assert_error(421, "wrong_region");

    // A pk session token presented to ae: 421 as well.
    let owner = pk.login("owner@shifa.pk", PASSWORD);
    let token = owner.token.clone().expect("token");
    d.client("ae")
        .with_bearer(&token)
        .get("/api/v1/auth/session")
        .assert_error(421, "wrong_region");

    // Sign-up for ae sent to pk's address is refused, and creates nothing there.
    let r = d.client("pk").post(
        "/api/v1/clinics",
        json!({"name": "Wrong Door", "region": "ae", "owner": {"name": "A B", "email": "a@b.ae", "password": PASSWORD}}),
    );
    r.assert_error(421, "wrong_region");
    if let Some(data) = &d.data_dir {
        // Each region's data lives under `<data>/<region>/` (files or sqld),
        // and no clinic of one region has anything under the other's.
        for (region, other) in [("pk", "ae_"), ("ae", "pk_")] {
            let strays = amanah_e2e::files_under(&data.join(region))
                .into_iter()
                .filter(|p| p.to_string_lossy().contains(other))
                .count();
            assert_eq!(strays, 0, "{other} files under {region}");
        }
        for c in [&pk, &ae] {
            let file = d.db_file(c).expect("db file");
            assert!(file.exists(), "{}", file.display());
            assert!(file.starts_with(data.join(&c.region)), "{}", file.display());
        }
    }
}

#[test]
fn sign_up_validation() {
    let d = Deployment::start();
    let c = d.client("pk");
    let body = |name: &str, region: &str, email: &str, password: &str| json!({"name": name, "region": region, "owner": {"name": "Dr X", "email": email, "password": password}});
    let r = c.post("/api/v1/clinics", body("Clinic", "zz", "a@b.pk", PASSWORD));
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "region");
    let r = c.post(
        "/api/v1/clinics",
        body("Clinic", "pk", "not-an-email", PASSWORD),
    );
    assert_eq!(r.body["error"]["field"], "owner.email");
    let r = c.post("/api/v1/clinics", body("Clinic", "pk", "a@b.pk", "short"));
    assert_eq!(r.body["error"]["field"], "owner.password");
    let r = c.post(
        "/api/v1/clinics",
        body("Clinic", "pk", "a@b.pk", "qwerty123456"),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "owner.password");
    let r = c.post("/api/v1/clinics", body(" ", "pk", "a@b.pk", PASSWORD));
    assert_eq!(r.body["error"]["field"], "name");
}
