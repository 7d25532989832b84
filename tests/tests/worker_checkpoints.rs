//! The Worker's audit checkpoint into its object store binding
//! (`AUDIT_CHECKPOINTS`, an R2 bucket; under `wrangler dev`, workerd's own
//! local R2): the cron trigger signs each chain's head into the bucket; a
//! chain cut short afterwards fails the next run and is not checkpointed
//! over; and the bucket's checkpoints, copied out, let `amanah audit
//! verify` catch the truncation independently.
//!
//! Worker only: the Spin component has no object store under `wasmtime
//! serve`, and the native host's checkpoints are the operator command's
//! directory (`operations.rs`).

use amanah_e2e::operators::{chain, operator};
use amanah_e2e::{Client, Deployment, HostKind};
use serde_json::{json, Value};

/// The checkpoints the bucket keeps of `chain`, as stored.
fn kept(c: &Client, chain: &str) -> Vec<String> {
    let r = c.get(&format!("/__test/checkpoints?chain={chain}"));
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_value(r.body).expect("a list of checkpoints")
}

#[test]
fn the_workers_cron_checkpoints_into_its_bucket_and_a_cut_chain_is_caught() {
    let d = Deployment::start();
    if d.host != HostKind::Worker {
        eprintln!("skipped: the object store binding is the Worker's");
        return;
    }
    let url = d.sqld("pk").expect("the Worker's sqld").operator_url();
    let data = d.data_dir.clone().expect("data dir of the deployment");
    let (clinic, owner, _) = d.ready_clinic("pk", "Bucket Chain Clinic", "owner@bucket-chain.pk");
    for i in 0..3 {
        owner.create_patient(json!({"name": format!("Bucket Chain{i}"), "dob": "1977-07-07"}));
    }
    let anon = d.client("pk");
    assert!(kept(&anon, &clinic.id).is_empty());

    // The hourly trigger signs the chain's head into the bucket.
    let entries = owner.audit_entries();
    d.run_purge("pk");
    let texts = kept(&anon, &clinic.id);
    assert_eq!(texts.len(), 1, "{texts:?}");
    let c: Value = serde_json::from_str(&texts[0]).expect("a checkpoint");
    assert_eq!(c["chain"], clinic.id.as_str());
    assert_eq!(c["region"], "pk");
    assert!(c["seq"].as_i64().unwrap() >= entries, "{c}");
    let signed_at = c["seq"].as_i64().unwrap();
    for needle in ["Bucket Chain", "owner@bucket-chain.pk"] {
        assert!(!texts[0].contains(needle), "{needle} in a checkpoint");
    }

    // The operator checks the bucket's checkpoints (copied out) against
    // the chain on the server: they are genuine and match.
    let verify = |texts: &[String]| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("pk")).unwrap();
        std::fs::write(
            dir.path().join("pk").join(format!("{}.jsonl", clinic.id)),
            texts.join("\n"),
        )
        .unwrap();
        operator(
            &[
                "audit",
                "verify",
                "--clinic",
                clinic.id.as_str(),
                "--sqld",
                &url,
            ],
            &[("--data-dir", &data), ("--checkpoint-dir", dir.path())],
            &[],
        )
    };
    let v = verify(&kept(&anon, &clinic.id));
    assert!(v.ok, "{}: {}", v.stderr, v.json);
    assert_eq!(chain(&v.json, &clinic.id)["checkpoints"], 1, "{}", v.json);

    // Someone with the database drops the triggers and cuts the tail off:
    // the shorter chain links up by itself, but the API's check starts at
    // the bucket's newest checkpoint, past the cut: it is caught there too.
    d.tamper_audit(
        &clinic,
        &format!("DELETE FROM audit WHERE seq > {}", signed_at - 2),
    );
    let api = owner.get("/api/v1/audit/verify");
    assert_eq!(api.body["ok"], false, "{}", api.body);
    assert!(api.body["first_bad_seq"].as_i64().is_some(), "{}", api.body);
    // The next trigger finds the cut and does not checkpoint over it.
    d.run_purge("pk");
    let texts = kept(&anon, &clinic.id);
    assert_eq!(texts.len(), 1, "a cut chain was checkpointed: {texts:?}");
    let v = verify(&texts);
    assert!(!v.ok, "a truncated chain verified: {}", v.json);
    let problems = chain(&v.json, &clinic.id)["problems"].to_string();
    assert!(problems.contains("truncated"), "{problems}");
}
