//! `amanah backup`: a consistent snapshot of every clinic database of a
//! region and of its directory, each sealed as a whole ([`super::seal`]),
//! with a manifest of checksums, audit heads and row counts.
//!
//! - Each database is copied as one transaction's view ([`super::snapshot`]:
//!   `VACUUM INTO` natively, a read transaction over Hrana on a libSQL
//!   server): writes that go on meanwhile are either wholly in the copy or
//!   not at all. Backups run online, beside the running hosts.
//! - A clinic's file is sealed with a key derived from its data key, so the
//!   purge (which destroys that key) leaves every backup of it unreadable.
//!   For the same reason the directory's copy is emptied of wrapped keys
//!   (clinics' and the region key) before it is sealed: backups hold no key
//!   at all, and a restore takes the keys from the region's key store (the
//!   live directory). The directory's file and the manifest are sealed
//!   under keys derived from the region key, which root rotations re-wrap
//!   but never change: backups stay readable across them.
//! - `--since` makes an incremental backup for hourly runs: a clinic whose
//!   audit chain has not moved since the earlier backup (every change of
//!   its records appends an entry in the same transaction) is carried over
//!   by a hard link to the earlier file instead of copied again.

use std::path::{Path, PathBuf};
use std::time::Instant;

use amanah_functions::clock::rfc3339;
use amanah_functions::host::{DbError, Host};
use amanah_functions::ops::{self, ClinicRecord};
use amanah_functions::App;

use super::manifest::{self, ClinicSnapshot, Manifest, SealedFile};
use super::seal::{self, hex};
use super::snapshot::{exists, scratch_file, Db, Snapshot};
use super::{now, progress, remove_db_files};
use crate::native_host::NativeHost;

/// What a backup run did, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    pub dir: PathBuf,
    pub id: String,
    pub region: String,
    pub clinics: usize,
    pub carried_over: usize,
    /// Clinics of the directory that had no database (nothing to back up).
    pub without_database: Vec<String>,
    pub bytes: u64,
    pub seconds: f64,
}

fn random_hex<const N: usize>() -> Result<(String, [u8; N]), String> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok((hex(&b), b))
}

/// Creates `out` (which must not exist, or be empty), 0700.
fn create_out(out: &Path) -> Result<(), String> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| format!("cannot read {}: {e}", out.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(format!(
                "{} is not empty: a backup goes into a new directory",
                out.display()
            ));
        }
    }
    std::fs::create_dir_all(out.join("clinics"))
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700));
    Ok(())
}

/// Backs up `app`'s region (the live data dir, or a libSQL server's
/// namespaces) into `out`.
pub async fn run<H: Snapshot>(
    app: &App<H>,
    out: &Path,
    since: Option<&Path>,
    quiet: bool,
) -> Result<(Manifest, BackupReport), String> {
    let started = Instant::now();
    let region = app.config().region.id.clone();
    let root = app.host().root_keys();
    let fail = |e: amanah_functions::error::ApiError| e.log_text();
    let (region_key_version, manifest_key) =
        app.region_backup_key("manifest").await.map_err(fail)?;
    let (_, directory_key) = app.region_backup_key("directory").await.map_err(fail)?;
    let earlier = match since {
        Some(dir) => {
            let m = manifest::read(dir, &manifest_key)?;
            if m.region != region {
                return Err(format!(
                    "{} is a backup of region {}, not {region}",
                    dir.display(),
                    m.region
                ));
            }
            Some((dir.to_path_buf(), m))
        }
        None => None,
    };
    create_out(out)?;
    let (id, _) = random_hex::<16>()?;
    let started_at = rfc3339(now());
    let work = tempfile::Builder::new()
        .prefix(".work")
        .tempdir_in(out)
        .map_err(|e| format!("cannot create a work directory in {}: {e}", out.display()))?;
    // The snapshots are opened by a second host over the work directory.
    let scratch = super::open_region_host(work.path(), &root, &region)?;

    // The directory first: it lists the clinics to copy.
    let dir_copy = scratch_file(&scratch, Db::Directory);
    let live_dir = app.host().directory().await.map_err(|e| e.to_string())?;
    H::snapshot(&live_dir, &scratch, Db::Directory).await?;
    drop(live_dir);
    let (clinics, platform_head) = {
        let conn = scratch
            .host()
            .directory()
            .await
            .map_err(|e| e.to_string())?;
        ops::remove_keys(&conn).await.map_err(|e| e.log_text())?;
        let head = ops::audit_head(&conn).await.map_err(|e| e.log_text())?;
        drop(conn);
        let clinics = scratch.clinic_records().await.map_err(|e| e.log_text())?;
        scratch
            .host()
            .scrub(None)
            .await
            .map_err(|e| e.to_string())?;
        (clinics, head)
    };
    let (_, prefix) = random_hex::<7>()?;
    let dir_sealed = seal::seal_file(
        &directory_key,
        &seal::binding(&region, &id, "directory.db"),
        prefix,
        &dir_copy,
        &out.join("directory.db.sealed"),
    )
    .map_err(|e| format!("cannot seal the directory: {e}"))?;

    let wanted: Vec<&ClinicRecord> = clinics.iter().filter(|c| c.status != "purged").collect();
    let bar = progress(wanted.len() as u64, "clinics", quiet);
    let mut snapshots = Vec::with_capacity(wanted.len());
    let mut without_database = Vec::new();
    for c in wanted {
        match clinic(app, &scratch, c, out, &id, earlier.as_ref()).await? {
            Some(snap) => snapshots.push(snap),
            None => without_database.push(c.id.as_str().to_owned()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(scratch);
    drop(work);

    let manifest = Manifest {
        format: manifest::FORMAT,
        id: id.clone(),
        region: region.clone(),
        started_at,
        finished_at: rfc3339(now()),
        region_key_version,
        since: earlier.as_ref().map(|(_, m)| m.id.clone()),
        directory: SealedFile {
            file: "directory.db.sealed".into(),
            sealed_in: id.clone(),
            bytes: dir_sealed.bytes,
            sha256: dir_sealed.sha256,
            plain_sha256: dir_sealed.plain_sha256,
        },
        platform_audit_seq: platform_head.0,
        platform_audit_head: platform_head.1,
        clinics: snapshots,
        without_database,
    };
    manifest::write(out, &manifest, &manifest_key)?;
    let report = BackupReport {
        dir: out.to_path_buf(),
        id,
        region,
        clinics: manifest.clinics.len(),
        carried_over: manifest.clinics.iter().filter(|c| c.carried_over).count(),
        without_database: manifest.without_database.clone(),
        bytes: manifest.directory.bytes
            + manifest.clinics.iter().map(|c| c.sealed.bytes).sum::<u64>(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((manifest, report))
}

/// One clinic: carried over from the earlier backup if its chain has not
/// moved, else snapshotted, counted and sealed; `None` if it has no
/// database (see [`Manifest::without_database`]).
async fn clinic<H: Snapshot>(
    app: &App<H>,
    scratch: &App<NativeHost>,
    c: &ClinicRecord,
    out: &Path,
    id: &str,
    earlier: Option<&(PathBuf, Manifest)>,
) -> Result<Option<ClinicSnapshot>, String> {
    let name = format!("clinics/{}.db.sealed", c.id.as_str());
    let fail = |what: &str, e: String| format!("clinic {}: {what}: {e}", c.id.as_str());
    let live = match app.host().open_clinic(&c.id).await {
        Err(DbError::NotFound) => return Ok(None),
        other => other.map_err(|e| fail("cannot open its database", e.to_string()))?,
    };
    if !exists(&live)
        .await
        .map_err(|e| fail("cannot open its database", e))?
    {
        return Ok(None);
    }
    if let Some((dir, m)) = earlier {
        let head = ops::audit_head(&live)
            .await
            .map_err(|e| fail("cannot read its audit head", e.log_text()))?;
        let before = m.clinics.iter().find(|s| {
            s.id == c.id.as_str()
                && s.key_version == c.key_version
                && s.status == c.status
                && (s.audit_seq, s.audit_head.as_str()) == (head.0, head.1.as_str())
        });
        if let Some(before) = before {
            let from = dir.join(&before.sealed.file);
            let to = out.join(&name);
            std::fs::hard_link(&from, &to)
                .or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
                .map_err(|e| fail("cannot carry its earlier file over", e.to_string()))?;
            let mut snap = before.clone();
            snap.carried_over = true;
            snap.sealed.file = name;
            return Ok(Some(snap));
        }
    }
    let copy = scratch_file(scratch, Db::Clinic(&c.id));
    let taken_at = rfc3339(now());
    H::snapshot(&live, scratch, Db::Clinic(&c.id))
        .await
        .map_err(|e| fail("snapshot", e))?;
    drop(live);
    let (head, rows) = {
        let conn = scratch
            .host()
            .open_clinic(&c.id)
            .await
            .map_err(|e| fail("cannot open its snapshot", e.to_string()))?;
        let head = ops::audit_head(&conn)
            .await
            .map_err(|e| fail("audit head", e.log_text()))?;
        let rows = ops::row_counts(&conn)
            .await
            .map_err(|e| fail("row counts", e.log_text()))?;
        drop(conn);
        scratch
            .host()
            .scrub(Some(&c.id))
            .await
            .map_err(|e| fail("snapshot checkpoint", e.to_string()))?;
        (head, rows)
    };
    let (key_version, key) = app
        .clinic_backup_key(&c.id, None)
        .await
        .map_err(|e| fail("its data key", e.log_text()))?;
    let (_, prefix) = random_hex::<7>()?;
    let sealed = seal::seal_file(
        &key,
        &seal::binding(&app.config().region.id, id, &name),
        prefix,
        &copy,
        &out.join(&name),
    )
    .map_err(|e| fail("cannot seal it", e.to_string()))?;
    remove_db_files(&copy);
    Ok(Some(ClinicSnapshot {
        id: c.id.as_str().to_owned(),
        status: c.status.clone(),
        key_version,
        taken_at,
        audit_seq: head.0,
        audit_head: head.1,
        rows,
        carried_over: false,
        sealed: SealedFile {
            file: name,
            sealed_in: id.to_owned(),
            bytes: sealed.bytes,
            sha256: sealed.sha256,
            plain_sha256: sealed.plain_sha256,
        },
    }))
}
