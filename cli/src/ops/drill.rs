//! `amanah drill`: a restore drill on the live data. It backs up the
//! region, wipes a scratch data dir, restores the backup into it, checks
//! every clinic's audit chain and row counts there (the restore's own
//! checks), and reports the recovery point and recovery time measured
//! against the promised ones (RPO 1 hour, RTO 15 minutes).
//!
//! - RTO: from the start of the restore until the restored data has
//!   verified, the time a real recovery would take with this data.
//! - RPO: how old the restored data was when the restore began (the oldest
//!   clinic snapshot). With hourly backups a disaster loses at most the
//!   writes since the last backup, so the schedule holds RPO only while a
//!   backup takes less than its interval: both are reported.
//! - On a libSQL server (`--sqld`) the backup reads the server's
//!   namespaces and the restore goes into the scratch data dir's files, as
//!   everywhere: the RTO is that of a restore into files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use amanah_functions::clock::{parse_rfc3339, rfc3339};
use amanah_functions::ids::ClinicId;
use amanah_functions::App;
use serde::Serialize;

use super::backup::{self, BackupReport};
use super::now;
use super::restore::{self, RestoreReport};
use super::snapshot::Snapshot;

/// The promises drills measure.
pub const RPO_TARGET_SECONDS: f64 = 3600.0;
pub const RTO_TARGET_SECONDS: f64 = 900.0;

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub region: String,
    /// What was backed up: the region's `files`, or its `sqld`. The restore
    /// always goes into a scratch data dir's files.
    pub source: String,
    pub at: String,
    pub ok: bool,
    pub clinics: usize,
    pub unreadable_clinics: usize,
    pub rows: i64,
    pub audit_entries: i64,
    pub backup_bytes: u64,
    pub backup_seconds: f64,
    pub restore_seconds: f64,
    pub rpo_seconds: f64,
    pub rto_seconds: f64,
    pub rpo_target_seconds: f64,
    pub rto_target_seconds: f64,
    pub rpo_met: bool,
    pub rto_met: bool,
    pub backup: BackupReport,
    pub restore: RestoreReport,
}

/// Runs the drill in `scratch` (its `backup/` and `restore/` are replaced):
/// the whole region is backed up, and restored whole or, with `only`, that
/// clinic with the directory.
pub async fn run<H: Snapshot>(
    app: &App<H>,
    scratch: &Path,
    only: Option<&ClinicId>,
    quiet: bool,
) -> Result<DrillReport, String> {
    let backup_dir: PathBuf = scratch.join("backup");
    let restore_dir: PathBuf = scratch.join("restore");
    for d in [&backup_dir, &restore_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| format!("cannot wipe {}: {e}", d.display()))?;
        }
    }
    let (manifest, backup_report) = backup::run(app, &backup_dir, None, quiet).await?;
    let restore_started_unix = now();
    let restore_started = Instant::now();
    let restore_report = restore::run(&backup_dir, &restore_dir, app, only, quiet).await?;
    let rto = restore_started.elapsed().as_secs_f64();
    let oldest = manifest
        .clinics
        .iter()
        .filter_map(|c| parse_rfc3339(&c.taken_at))
        .chain(parse_rfc3339(&manifest.started_at))
        .min()
        .unwrap_or(restore_started_unix);
    let rpo = (restore_started_unix - oldest).max(0) as f64;
    let rows = restore_report
        .restored
        .iter()
        .flat_map(|c| {
            c.rows
                .iter()
                .filter(|(t, _)| *t != "audit")
                .map(|(_, n)| *n)
        })
        .sum();
    let audit_entries = restore_report
        .restored
        .iter()
        .map(|c| c.audit_entries)
        .sum::<i64>()
        + restore_report.platform_audit_entries;
    let rpo_met = rpo <= RPO_TARGET_SECONDS && backup_report.seconds < RPO_TARGET_SECONDS;
    let rto_met = rto <= RTO_TARGET_SECONDS;
    Ok(DrillReport {
        region: app.config().region.id.clone(),
        source: H::STORE.to_owned(),
        at: rfc3339(now()),
        ok: rpo_met && rto_met,
        clinics: restore_report.restored.len(),
        unreadable_clinics: restore_report.unreadable.len(),
        rows,
        audit_entries,
        backup_bytes: backup_report.bytes,
        backup_seconds: backup_report.seconds,
        restore_seconds: restore_report.seconds,
        rpo_seconds: rpo,
        rto_seconds: rto,
        rpo_target_seconds: RPO_TARGET_SECONDS,
        rto_target_seconds: RTO_TARGET_SECONDS,
        rpo_met,
        rto_met,
        backup: backup_report,
        restore: restore_report,
    })
}
