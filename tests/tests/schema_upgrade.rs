//! A database whose schema is behind the code (a deployment upgraded while
//! the database was not) is migrated before the request that finds it, and
//! that request runs once: on the native host when a new process first opens
//! it, on the Spin host (an instance per request) by the schema guard that
//! rides with the request's first statement. A Worker isolate checks each
//! database once in its life, which a test cannot end on demand.

use amanah_e2e::{Deployment, HostKind, Method};
use serde_json::json;

#[test]
fn a_clinic_database_a_version_behind_is_migrated_and_the_request_runs_once() {
    let mut d = Deployment::start();
    if d.host == HostKind::Worker || d.host == HostKind::External {
        eprintln!("skipped: the {} host's instances outlive the test", d.host);
        return;
    }
    let (clinic, owner, _) = d.ready_clinic("pk", "Upgrade Clinic", "owner@upgrade.pk");
    let put = |c: &amanah_e2e::Client| {
        c.send(
            Method::PUT,
            "/api/v1/clinic/roles",
            Some(json!({"nurse": ["patient_read", "schedule_read"]})),
        )
    };
    // What one such request adds to the audit trail on a current schema.
    let before = owner.audit_entries();
    let r = put(&owner);
    assert_eq!(r.status, 200, "{}", r.body);
    let per_request = owner.audit_entries() - before;

    // The database as it was before role settings existed (version 3):
    // every later step undone, so the upgrade runs more than one of them.
    d.clinic_sql(
        &clinic,
        &[
            "DROP TABLE role_settings",
            "DROP TABLE idempotency",
            "DROP TABLE known_addresses",
            "DROP TABLE allergies",
            "DROP TABLE vitals",
            "DROP TABLE bulk_exports",
            "DROP TABLE bulk_export_files",
            "DROP TABLE append_turn",
            "ALTER TABLE users DROP COLUMN mfa_failures",
            "ALTER TABLE users DROP COLUMN password_change_required",
            "DELETE FROM schema_migrations WHERE version >= 4",
        ],
    )
    .expect("this deployment's databases are reachable")
    .expect("rewind the schema");
    if d.host == HostKind::Native {
        d.restart_native();
    }
    let owner = owner.rebased(d.url("pk"));

    let before = owner.audit_entries();
    let r = put(&owner);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        owner.audit_entries() - before,
        per_request,
        "the request ran once: no entry of a failed first attempt"
    );
    let r = owner.get("/api/v1/clinic/roles");
    assert_eq!(r.status, 200, "{}", r.body);
    let nurse = amanah_e2e::item_where(&r.body, "role", "nurse");
    assert_eq!(
        nurse["permissions"],
        json!(["patient_read", "schedule_read"])
    );
}
