//! The scheduled work's trigger (`POST /internal/maintain`: purge, key sweep,
//! checkpoints, for the deployment's scheduler) answers only its bearer
//! token: to anyone else, on any host, the path does not exist, and nothing
//! is purged.

use amanah_e2e::{Deployment, Method};

#[test]
fn the_maintain_trigger_exists_only_for_its_token() {
    let d = Deployment::start();
    let (_clinic, owner, _) = d.ready_clinic("pk", "Trigger Clinic", "owner@trigger.pk");
    let session = owner.token.clone().expect("session token");
    let anon = d.client("pk").anonymous();
    let wrong = "0".repeat(64);
    let attempts = [
        ("anonymous", anon.post_empty("/internal/maintain")),
        (
            "a wrong token",
            anon.with_bearer(&wrong).post_empty("/internal/maintain"),
        ),
        (
            "a clinic owner's session",
            anon.with_bearer(&session).post_empty("/internal/maintain"),
        ),
    ];
    for (who, r) in attempts {
        assert_eq!(
            r.status,
            404,
            "{who}: {:?}",
            String::from_utf8_lossy(&r.raw)
        );
        assert!(
            !String::from_utf8_lossy(&r.raw).contains("purge"),
            "{who}: no report"
        );
    }
    if let Some(token) = d.maintain_token() {
        // The right token, but not a POST; then a prefix of it.
        let r = anon
            .with_bearer(token)
            .send(Method::GET, "/internal/maintain", None);
        assert_eq!(r.status, 404, "GET");
        let r = anon
            .with_bearer(&token[..token.len() - 1])
            .post_empty("/internal/maintain");
        assert_eq!(r.status, 404, "a prefix of the token");
        let r = anon.with_bearer(token).post_empty("/internal/maintain");
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.raw));
        assert!(r.body["purge"]["failed"].is_number(), "{}", r.body);
    }
}
