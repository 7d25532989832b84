//! `amanah restore`: a backup into a fresh data dir, checked as it goes.
//!
//! The keys come from the region's key store (the live directory's clinic
//! keys and region key, `--keys-from`), never from the backup: a clinic whose key the
//! purge destroyed is reported unreadable and left out. Every restored
//! file must match the manifest's checksums, its audit chain must verify
//! from the first entry and end at the manifest's head, and its row counts
//! must be the snapshot's; otherwise the restore fails and says where.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use amanah_functions::audit::Verification;
use amanah_functions::host::Host;
use amanah_functions::ids::ClinicId;
use amanah_functions::ops::{self, Chain};
use amanah_functions::App;
use serde::Serialize;

use super::manifest::{self, ClinicSnapshot, Manifest};
use super::{open_region_host, progress, seal};
use crate::native_host::NativeHost;

#[derive(Debug, Clone, Serialize)]
pub struct RestoredClinic {
    pub id: String,
    pub status: String,
    pub audit_entries: i64,
    pub rows: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub id: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup: PathBuf,
    pub backup_id: String,
    pub region: String,
    pub started_at: String,
    pub data_dir: PathBuf,
    pub restored: Vec<RestoredClinic>,
    pub unreadable: Vec<Unreadable>,
    /// Clinics the backup found without a database (nothing to restore).
    pub without_database: Vec<String>,
    /// With `--into-sqld`: the fresh libSQL server the restore went on to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<super::publish::Published>,
    pub platform_audit_entries: i64,
    pub seconds: f64,
}

/// The target region directory must be new or empty.
fn check_target(target: &Path, region: &str) -> Result<(), String> {
    let dir = target.join(region);
    if let Ok(mut entries) = std::fs::read_dir(&dir) {
        if entries.next().is_some() {
            return Err(format!(
                "{} already holds data: a restore goes into a fresh data dir",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Restores the backup at `from` into `target`, with the keys of the key
/// store `keys` (an application over the live directory of the region: its
/// files, or its libSQL server).
pub async fn run<K: Host>(
    from: &Path,
    target: &Path,
    keys: &App<K>,
    only: Option<&ClinicId>,
    quiet: bool,
) -> Result<RestoreReport, String> {
    let started = Instant::now();
    let region = keys.config().region.id.clone();
    let fail = |e: amanah_functions::error::ApiError| e.log_text();
    let (region_key_version, manifest_key) =
        keys.region_backup_key("manifest").await.map_err(fail)?;
    let (_, directory_key) = keys.region_backup_key("directory").await.map_err(fail)?;
    let m = manifest::read(from, &manifest_key)?;
    if m.region != region {
        return Err(super::region_refusal(&m.region, &region));
    }
    if m.region_key_version != region_key_version {
        return Err(format!(
            "the backup was made under region key v{}; this key store's is v{region_key_version}",
            m.region_key_version
        ));
    }
    let root = keys.host().root_keys();
    let chosen: Vec<&ClinicSnapshot> = match only {
        Some(c) => {
            let s = m
                .clinics
                .iter()
                .find(|s| s.id == c.as_str())
                .ok_or_else(|| format!("the backup holds no clinic {}", c.as_str()))?;
            vec![s]
        }
        None => m.clinics.iter().collect(),
    };
    check_target(target, &region)?;
    std::fs::create_dir_all(target.join(&region))
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;

    // The directory.
    let plain = seal::open_file(
        &directory_key,
        &seal::binding(&region, &m.directory.sealed_in, "directory.db"),
        &m.directory.sha256,
        &from.join(&m.directory.file),
        &target.join(&region).join("directory.db"),
    )
    .map_err(|e| format!("the directory file: {e}"))?;
    if plain != m.directory.plain_sha256 {
        return Err("the directory file is not the snapshot the manifest lists".into());
    }
    let restored_app = open_region_host(target, &root, &region)?;
    // The region key first: the platform's records open under it.
    let region_key = keys.wrapped_region_key().await.map_err(fail)?;
    restored_app
        .import_wrapped_keys(&[region_key])
        .await
        .map_err(fail)?;

    let bar = progress(chosen.len() as u64, "clinics", quiet);
    let mut report = RestoreReport {
        backup: from.to_path_buf(),
        backup_id: m.id.clone(),
        region: region.clone(),
        started_at: m.started_at.clone(),
        data_dir: target.to_path_buf(),
        restored: Vec::new(),
        unreadable: Vec::new(),
        without_database: m.without_database.clone(),
        published: None,
        platform_audit_entries: 0,
        seconds: 0.0,
    };
    let mut problems = Vec::new();
    for s in chosen {
        match clinic(from, &m, s, keys, &restored_app).await {
            Ok(Some(r)) => report.restored.push(r),
            Ok(None) => report.unreadable.push(Unreadable {
                id: s.id.clone(),
                why: "its data key is gone from the key store (the clinic was purged): \
                      no backup of it can be read"
                    .into(),
            }),
            Err(e) => problems.push(format!("clinic {}: {e}", s.id)),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    match restored_app
        .check_chain(&Chain::Platform, &[])
        .await
        .map_err(|e| e.log_text())?
        .verification
    {
        Verification::Ok { entries, head }
            if entries == m.platform_audit_seq && head == m.platform_audit_head =>
        {
            report.platform_audit_entries = entries;
        }
        other => problems.push(format!(
            "the platform audit stream is not the snapshot's: {other:?}"
        )),
    }
    if !problems.is_empty() {
        return Err(format!(
            "the restore did not verify:\n  {}",
            problems.join("\n  ")
        ));
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One clinic; `None` if its key is gone.
async fn clinic<K: Host>(
    from: &Path,
    m: &Manifest,
    s: &ClinicSnapshot,
    keys: &App<K>,
    restored: &App<NativeHost>,
) -> Result<Option<RestoredClinic>, String> {
    let id = ClinicId::parse(&s.id).ok_or("not a clinic id")?;
    if id.region() != m.region {
        return Err(super::region_refusal(id.region(), &m.region));
    }
    let wrapped = keys
        .wrapped_keys(Some(&id))
        .await
        .map_err(|e| e.log_text())?;
    if wrapped.is_empty() {
        return Ok(None);
    }
    restored
        .import_wrapped_keys(&wrapped)
        .await
        .map_err(|e| e.log_text())?;
    let (_, key) = restored
        .clinic_backup_key(&id, Some(s.key_version))
        .await
        .map_err(|e| e.log_text())?;
    let to = restored.host().region_dir().join(format!("{}.db", s.id));
    let plain = seal::open_file(
        &key,
        &seal::binding(&m.region, &s.sealed.sealed_in, &s.sealed.file),
        &s.sealed.sha256,
        &from.join(&s.sealed.file),
        &to,
    )?;
    if plain != s.sealed.plain_sha256 {
        return Err("the file is not the snapshot the manifest lists".into());
    }
    let conn = restored
        .host()
        .open_clinic(&id)
        .await
        .map_err(|e| e.to_string())?;
    let rows = ops::row_counts(&conn).await.map_err(|e| e.log_text())?;
    drop(conn);
    if rows != s.rows {
        return Err(format!(
            "row counts {rows:?} are not the snapshot's {:?}",
            s.rows
        ));
    }
    let chain = restored
        .check_chain(&Chain::Clinic(id), &[])
        .await
        .map_err(|e| e.log_text())?;
    match chain.verification {
        Verification::Ok { entries, head } if entries == s.audit_seq && head == s.audit_head => {}
        Verification::Ok { entries, .. } => {
            return Err(format!(
                "its audit chain ends at entry #{entries}, not at the snapshot's #{}",
                s.audit_seq
            ))
        }
        Verification::Broken { first_bad_seq } => {
            return Err(format!("its audit chain breaks at entry #{first_bad_seq}"))
        }
    }
    Ok(Some(RestoredClinic {
        id: s.id.clone(),
        status: s.status.clone(),
        audit_entries: s.audit_seq,
        rows,
    }))
}
