//! Work outside a request: the purge of ended grace periods ([`purge`]),
//! the sweep after a data key rotation ([`sweep`]), and the audit
//! checkpoints ([`checkpoints`]). [`maintain`] runs them in that order, the
//! same on every host: `amanah serve`'s own timer, and on the wasm hosts
//! `POST /internal/maintain` called by the deployment's scheduler (the
//! Worker's cron trigger, or the operator's for Spin). Each step's failure
//! is reported and the next one still runs.

pub mod checkpoints;
pub mod purge;
pub mod sweep;

use serde_json::{json, Value};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::host::Host;

/// What one run of [`maintain`] did; a step that failed as a whole holds
/// its error (free of personal data).
#[derive(Debug, Clone)]
pub struct MaintainReport {
    pub purge: Result<purge::PurgeReport, String>,
    pub sweep: Result<sweep::SweepDue, String>,
    /// `None` where the host keeps no checkpoints.
    pub checkpoints: Option<Result<CheckpointSummary, String>>,
}

/// The checkpoint step in short: chains walked, heads signed, and the
/// chains that failed with their problems (ids and kinds, no content).
#[derive(Debug, Clone)]
pub struct CheckpointSummary {
    pub chains: usize,
    pub signed: usize,
    pub failed: Vec<(String, Vec<String>)>,
}

impl MaintainReport {
    /// Whether every step ran and found nothing wrong.
    pub fn ok(&self) -> bool {
        self.purge.as_ref().is_ok_and(|p| p.failed == 0)
            && self.sweep.as_ref().is_ok_and(|s| s.failed == 0)
            && self
                .checkpoints
                .as_ref()
                .is_none_or(|c| c.as_ref().is_ok_and(|c| c.failed.is_empty()))
    }

    /// The report as one JSON document (what `/internal/maintain` answers
    /// and the hosts log).
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "purge": match &self.purge {
                Ok(r) => json!({"clinics": r.clinics, "patients": r.patients, "failed": r.failed, "unscrubbed": r.unscrubbed}),
                Err(e) => json!({"error": e}),
            },
            "key_sweep": match &self.sweep {
                Ok(r) => json!({"swept": r.swept, "resealed_rows": r.resealed_rows, "failed": r.failed}),
                Err(e) => json!({"error": e}),
            },
        });
        if let Some(c) = &self.checkpoints {
            out["audit_checkpoint"] = match c {
                Ok(c) => json!({
                    "chains": c.chains,
                    "signed": c.signed,
                    "failed": c.failed.iter().map(|(chain, problems)| json!({"chain": chain, "problems": problems})).collect::<Vec<_>>(),
                }),
                Err(e) => json!({"error": e}),
            };
        }
        out
    }
}

/// The region's scheduled work, once: purge, then key sweep, then (where
/// the host keeps checkpoints) every chain checked and its head signed.
/// An error only when nothing could run at all (the directory unreachable).
pub async fn maintain<H: Host>(app: &App<H>) -> ApiResult<MaintainReport> {
    let purge = app.purge().await;
    if let Err(e) = &purge {
        if e.code == crate::error::Code::Unavailable {
            return Err(ApiError::unavailable(e.log_text()));
        }
    }
    let sweep = app.sweep_due().await.map_err(|e| e.log_text());
    let checkpoints = match app.host.checkpoints() {
        None => None,
        Some(store) => Some(
            checkpoints::run(app, store, None, true, &|_| {})
                .await
                .map(|r| CheckpointSummary {
                    chains: r.chains.len(),
                    signed: r.chains.iter().filter(|c| c.signed).count(),
                    failed: r
                        .chains
                        .iter()
                        .filter(|c| !c.problems.is_empty())
                        .map(|c| (c.chain.clone(), c.problems.clone()))
                        .collect(),
                }),
        ),
    };
    Ok(MaintainReport {
        purge: purge.map_err(|e| e.log_text()),
        sweep,
        checkpoints,
    })
}
