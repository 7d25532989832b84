//! The scheduled work's trigger (`POST /internal/maintain`: purge, key sweep,
//! checkpoints, for the deployment's scheduler) answers only its bearer
//! token: to anyone else, on any host, the path does not exist, and nothing
//! is purged.

use amanah_e2e::{log_count, wait_until, Deployment, HostKind, Method};

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

/// The Worker's cron trigger does no work itself (Cron Triggers run outside
/// Regional Services): it calls `POST /internal/maintain` on the region's
/// own URL, and the work happens in that request. Seen here as that request
/// arriving at the region's `wrangler dev`, and its report being logged.
#[test]
fn the_workers_cron_works_only_through_the_regions_hostname() {
    let d = Deployment::start();
    if d.host != HostKind::Worker {
        eprintln!("skipped: the Worker's cron trigger");
        return;
    }
    let log = d
        .logs
        .iter()
        .find(|l| l.ends_with("pk/wrangler.log"))
        .expect("the pk Worker's log")
        .clone();
    let count = |what: &str| log_count(&log, what);
    let (calls, reports) = (
        count("POST /internal/maintain 200"),
        count("\"audit_checkpoint\""),
    );
    d.run_purge("pk");
    // wrangler writes its log on its own time: wait for the lines.
    wait_until(
        "the cron trigger calls the region's /internal/maintain and its report is logged",
        || count("POST /internal/maintain 200") > calls && count("\"audit_checkpoint\"") > reports,
    );
}
