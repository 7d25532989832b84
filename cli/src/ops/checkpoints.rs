//! `amanah audit checkpoint` and `amanah audit verify`: audit chain heads
//! signed with the region's checkpoint key ([`amanah_functions::checkpoint`])
//! and kept outside the clinic databases, one append-only JSON-lines file
//! per chain: `<checkpoint dir>/<region>/<chain>.jsonl`.
//!
//! A chain is checked from its first entry against every checkpoint it ever
//! had: an edited entry breaks the chain; fewer entries than a checkpoint
//! saw is a truncation; a different hash where a checkpoint was taken is a
//! chain rewritten from the start (which links up by itself). A chain that
//! fails is never checkpointed again until someone looks.

use std::io::Write;
use std::path::{Path, PathBuf};

use amanah_functions::audit::Verification;
use amanah_functions::checkpoint::Checkpoint;
use amanah_functions::clock::rfc3339;
use amanah_functions::host::Host;
use amanah_functions::ids::ClinicId;
use amanah_functions::ops::Chain;
use amanah_functions::App;
use serde::Serialize;

use super::{now, progress};

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
    pub problems: Vec<String>,
    /// Whether `audit checkpoint` signed a new checkpoint of it.
    pub signed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub region: String,
    pub dir: PathBuf,
    pub ok: bool,
    pub public_key: String,
    pub chains: Vec<ChainReport>,
}

fn file_of(dir: &Path, region: &str, chain: &str) -> PathBuf {
    dir.join(region).join(format!("{chain}.jsonl"))
}

/// The checkpoints of a chain; lines that do not parse are problems.
fn load(path: &Path) -> (Vec<Checkpoint>, Vec<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(c) => out.push(c),
            Err(_) => problems.push(format!("checkpoint line {} is not a checkpoint", i + 1)),
        }
    }
    (out, problems)
}

/// Walks `chain` against its checkpoints.
async fn examine<H: Host>(
    app: &App<H>,
    chain: &Chain,
    checkpoints: &[Checkpoint],
    mut problems: Vec<String>,
) -> Result<(i64, String, Vec<String>), String> {
    let region_key = app.region_key().await.map_err(|e| e.log_text())?;
    let mut trusted = Vec::new();
    for (i, c) in checkpoints.iter().enumerate() {
        match c.check(&region_key) {
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

/// `amanah audit verify`.
pub async fn verify<H: Host>(
    app: &App<H>,
    dir: &Path,
    only: Option<&ClinicId>,
    quiet: bool,
) -> Result<Report, String> {
    run(app, dir, only, false, quiet).await
}

/// `amanah audit checkpoint`: verifies, then signs the head of every chain
/// that passed.
pub async fn checkpoint<H: Host>(app: &App<H>, dir: &Path, quiet: bool) -> Result<Report, String> {
    run(app, dir, None, true, quiet).await
}

async fn run<H: Host>(
    app: &App<H>,
    dir: &Path,
    only: Option<&ClinicId>,
    sign: bool,
    quiet: bool,
) -> Result<Report, String> {
    let region = app.config().region.id.clone();
    let root = app.region_key().await.map_err(|e| e.log_text())?;
    let chains = chains(app, only).await?;
    let bar = progress(chains.len() as u64, "chains", quiet);
    let mut reports = Vec::with_capacity(chains.len());
    for (chain, purged) in chains {
        let path = file_of(dir, &region, chain.name());
        let (checkpoints, problems) = load(&path);
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
            bar.inc(1);
            continue;
        }
        // One chain that cannot be read (its database unreachable, or gone
        // under a purge running meanwhile) fails alone; the rest are
        // still checked and checkpointed.
        let (entries, head, problems) = examine(app, &chain, &checkpoints, problems)
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
            let c = Checkpoint::sign(&root, chain.name(), entries, &head, &rfc3339(now()));
            append(&path, &c)?;
            r.signed = true;
            r.checkpoints += 1;
            r.checkpointed_seq = Some(entries);
            r.status = "ok";
        }
        reports.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Report {
        region,
        dir: dir.to_path_buf(),
        ok: reports.iter().all(|r| r.problems.is_empty()),
        public_key: amanah_functions::checkpoint::public_key(&root),
        chains: reports,
    })
}

/// Appends one checkpoint line and syncs it to disk.
fn append(path: &Path, c: &Checkpoint) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut line = serde_json::to_string(c).map_err(|e| e.to_string())?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
