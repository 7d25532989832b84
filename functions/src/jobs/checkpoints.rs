//! Audit chains checked against their checkpoints, and new checkpoints
//! signed: the rule behind `amanah audit checkpoint | verify` and the last
//! step of [`super::maintain`] on a host with a store. Where the
//! checkpoints live is a [`CheckpointStore`]: a directory of JSON-lines
//! files for the operator command (and `amanah serve --checkpoint-dir`), an
//! R2 bucket for the Worker.
//!
//! A chain is checked from its first entry against every checkpoint it ever
//! had: an edited entry breaks the chain; fewer entries than a checkpoint
//! saw is a truncation; a different hash where a checkpoint was taken is a
//! chain rewritten from the start (which links up by itself). A chain that
//! fails is never checkpointed again until someone looks.

use serde::Serialize;

use crate::app::App;
use crate::checkpoint::Checkpoint;
use crate::clock::rfc3339;
use crate::host::Host;
use crate::ids::ClinicId;
use crate::ops::Chain;
use crate::records::audit::Verification;
use crate::region_key::RegionKey;

pub use crate::host::CheckpointStore;

/// One chain, as found.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub chain: String,
    /// `ok`, `no_checkpoint` (nothing to compare with yet), `purged` (the
    /// clinic and its chain are gone by design) or `failed`.
    pub status: &'static str,
    pub entries: i64,
    pub checkpoints: usize,
    /// The newest checkpoint's entry count, if any.
    pub checkpointed_seq: Option<i64>,
    /// What is wrong: sequence numbers and kinds, never an entry's content.
    pub problems: Vec<String>,
    /// Whether a new checkpoint of it was signed.
    pub signed: bool,
}

/// One region's chains.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub region: String,
    /// The checkpoint store ([`CheckpointStore::describe`]).
    pub dir: String,
    pub ok: bool,
    pub public_key: String,
    pub chains: Vec<ChainReport>,
}

/// How far [`run`] is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// This many chains will be walked.
    Chains(usize),
    /// One more chain is done.
    Done,
}

/// Checks every chain of the region (or `only` one clinic's) against the
/// store's checkpoints; with `sign`, signs the head of each that passed
/// and keeps it in the store.
pub async fn run<H: Host, S: CheckpointStore>(
    app: &App<H>,
    store: &S,
    only: Option<&ClinicId>,
    sign: bool,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Report, String> {
    let region = app.config().region.id.clone();
    let region_key = app.region_key().await.map_err(|e| e.log_text())?;
    let chains = chains(app, only).await?;
    progress(Step::Chains(chains.len()));
    let mut reports = Vec::with_capacity(chains.len());
    for (chain, purged) in chains {
        let (checkpoints, problems) = parse(store.load(&region, chain.name()).await);
        let newest = checkpoints.iter().map(|c| c.seq).max();
        let mut r = ChainReport {
            chain: chain.name().to_owned(),
            status: "ok",
            entries: 0,
            checkpoints: checkpoints.len(),
            checkpointed_seq: newest,
            problems: Vec::new(),
            signed: false,
        };
        if purged {
            r.status = "purged";
            reports.push(r);
            progress(Step::Done);
            continue;
        }
        // One chain that cannot be read (its database unreachable, or gone
        // under a purge running meanwhile) fails alone; the rest are
        // still checked and checkpointed.
        let (entries, head, problems) = examine(app, &region_key, &chain, &checkpoints, problems)
            .await
            .unwrap_or_else(|e| (0, String::new(), vec![format!("unreadable: {e}")]));
        r.entries = entries;
        r.problems = problems;
        r.status = if !r.problems.is_empty() {
            "failed"
        } else if checkpoints.is_empty() {
            "no_checkpoint"
        } else {
            "ok"
        };
        if sign && r.problems.is_empty() {
            let at = rfc3339(app.host().now());
            let c = Checkpoint::sign(&region_key, chain.name(), entries, &head, &at);
            let text = serde_json::to_string(&c).map_err(|e| e.to_string())?;
            // A store that refuses one chain's checkpoint fails that chain
            // alone; the others are still kept.
            match store.append(&region, &c, &text).await {
                Ok(()) => {
                    r.signed = true;
                    r.checkpoints += 1;
                    r.checkpointed_seq = Some(entries);
                    r.status = "ok";
                }
                Err(e) => {
                    r.problems.push(format!("checkpoint not kept: {e}"));
                    r.status = "failed";
                }
            }
        }
        reports.push(r);
        progress(Step::Done);
    }
    Ok(Report {
        region,
        dir: store.describe(),
        ok: reports.iter().all(|r| r.problems.is_empty()),
        public_key: crate::checkpoint::public_key(&region_key),
        chains: reports,
    })
}

/// The stored checkpoints; texts that do not parse, and a store that
/// cannot be read, are problems of the chain.
fn parse(loaded: Result<Vec<String>, String>) -> (Vec<Checkpoint>, Vec<String>) {
    let texts = match loaded {
        Ok(t) => t,
        Err(e) => return (Vec::new(), vec![format!("checkpoints unreadable: {e}")]),
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match serde_json::from_str(text) {
            Ok(c) => out.push(c),
            Err(_) => problems.push(format!("checkpoint {} is not a checkpoint", i + 1)),
        }
    }
    (out, problems)
}

/// Walks `chain` against its checkpoints.
async fn examine<H: Host>(
    app: &App<H>,
    region_key: &RegionKey,
    chain: &Chain,
    checkpoints: &[Checkpoint],
    mut problems: Vec<String>,
) -> Result<(i64, String, Vec<String>), String> {
    let mut trusted = Vec::new();
    for (i, c) in checkpoints.iter().enumerate() {
        match c.check(region_key) {
            Ok(()) if c.chain == chain.name() => trusted.push(c),
            Ok(()) => problems.push(format!(
                "checkpoint {} was signed for another chain ({})",
                i + 1,
                c.chain
            )),
            Err(e) => problems.push(format!("checkpoint {}: {e}", i + 1)),
        }
    }
    let marks: Vec<i64> = trusted.iter().map(|c| c.seq).collect();
    let state = app
        .check_chain(chain, &marks)
        .await
        .map_err(|e| format!("{}: {}", chain.name(), e.log_text()))?;
    let (entries, head) = match state.verification {
        Verification::Ok { entries, head } => (entries, head),
        Verification::Broken { first_bad_seq } => {
            problems.push(format!(
                "edited: the chain breaks at entry #{first_bad_seq} (an entry changed, removed or inserted)"
            ));
            (first_bad_seq - 1, String::new())
        }
    };
    let complete = problems.iter().all(|p| !p.starts_with("edited"));
    for c in trusted {
        if c.seq > entries && complete {
            problems.push(format!(
                "truncated: the checkpoint of {} saw {} entries; the chain now has {entries}",
                c.at, c.seq
            ));
        } else if c.seq > 0 && c.seq <= entries {
            let seen = state
                .at_marks
                .get(&c.seq)
                .map(|h| data_encoding::HEXLOWER.encode(h));
            if seen.as_deref() != Some(c.head.as_str()) {
                problems.push(format!(
                    "rewritten: entry #{} is not the one the checkpoint of {} saw",
                    c.seq, c.at
                ));
            }
        }
    }
    Ok((entries, head, problems))
}

/// The chains of the region: the platform stream and every clinic the
/// directory lists (purged ones only to report them), or one clinic.
async fn chains<H: Host>(
    app: &App<H>,
    only: Option<&ClinicId>,
) -> Result<Vec<(Chain, bool)>, String> {
    let mut out = Vec::new();
    if only.is_none() {
        out.push((Chain::Platform, false));
    }
    let records = app.clinic_records().await.map_err(|e| e.log_text())?;
    if let Some(c) = only {
        if !records.iter().any(|r| &r.id == c) {
            return Err(format!(
                "region {} has no clinic {c}",
                app.config().region.id
            ));
        }
    }
    for r in records {
        if only.is_none_or(|c| c == &r.id) {
            let purged = r.status == "purged";
            out.push((Chain::Clinic(r.id), purged));
        }
    }
    Ok(out)
}

/// The newest checkpoint of `chain` the host's store keeps that this
/// region signed: (entry count, head hash). `None` where the host keeps no
/// checkpoints, none is kept yet, or the store cannot be read (a caller
/// then walks the whole chain).
pub(crate) async fn newest<H: Host>(app: &App<H>, chain: &str) -> Option<(i64, Vec<u8>)> {
    let store = app.host().checkpoints()?;
    let region = &app.config().region.id;
    let texts = store.load(region, chain).await.ok()?;
    let key = app.region_key().await.ok()?;
    texts
        .iter()
        .filter_map(|t| serde_json::from_str::<Checkpoint>(t).ok())
        .filter(|c| c.chain == chain && c.check(&key).is_ok())
        .max_by_key(|c| c.seq)
        .and_then(|c| {
            Some((
                c.seq,
                data_encoding::HEXLOWER.decode(c.head.as_bytes()).ok()?,
            ))
        })
}
