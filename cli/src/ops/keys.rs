//! `amanah keys`: the region's key hierarchy, and its rotations.
//!
//! - `status`: the root key versions held (file, mode) and how many wrapped
//!   keys each wraps; the region key and the public key that checks audit
//!   checkpoints; every clinic's data key version, the root version wrapping
//!   it, and whether its last rotation's sweep is done.
//! - `rotate-root`: adds a root key version to the key file, then re-wraps
//!   every clinic data key and the region key under it, a batch per
//!   transaction, online (a running `amanah serve` follows the key file). An
//!   interrupted run is finished by running it again: while any key is
//!   wrapped by an older version, a run resumes instead of adding another.
//! - `retire-root`: removes an old version from the key file once nothing
//!   names it: from then on, copies of the directory taken before the
//!   rotation (a sqld log, a stolen file) no longer unwrap anything.
//! - `rotate-clinic`: gives a clinic a new data key version and sweeps its
//!   fields and search terms under it ([`amanah_functions::rekey`]).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use amanah_functions::crypto::keys::RootKeyring;
use amanah_functions::host::Host;
use amanah_functions::ids::ClinicId;
use amanah_functions::App;
use serde::Serialize;

use super::progress;
use crate::native_host::NativeHost;
use crate::root_key;

#[derive(Debug, Clone, Serialize)]
pub struct ClinicKey {
    pub clinic: String,
    pub status: String,
    /// The data key version in use (`None` once purged: the key is gone).
    pub key_version: Option<i64>,
    /// The root key version wrapping it.
    pub wrapped_by_root_version: Option<i64>,
    /// Older data key versions still held (they open the audit trail's
    /// values, and fields the sweep has not reached).
    pub older_versions: usize,
    /// The version the last completed sweep re-sealed everything under.
    pub swept_version: i64,
    /// A rotation whose sweep is not done yet (`serve` finishes it in the
    /// background; `keys rotate-clinic` again finishes it now).
    pub sweep_unfinished: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub region: String,
    pub root_key_file: PathBuf,
    pub root_key_mode: String,
    /// The newest root key version: the one that wraps.
    pub root_key_version: u32,
    /// Every root key version the key file holds.
    pub root_key_versions: Vec<u32>,
    /// How many wrapped keys (clinic data keys and the region key) each
    /// root version wraps.
    pub wrapped_by_root: BTreeMap<String, i64>,
    /// Some key is still wrapped by an older root version: a rotation is
    /// unfinished (run `keys rotate-root` again).
    pub rotation_unfinished: bool,
    pub region_key_version: u32,
    pub checkpoint_public_key: String,
    pub clinics: Vec<ClinicKey>,
    /// Clinics whose key another root version than the newest wraps.
    pub wrapped_by_other_root: usize,
}

fn text(e: amanah_functions::error::ApiError) -> String {
    e.log_text()
}

pub async fn status<H: Host>(app: &App<H>, key_dir: &Path) -> Result<Status, String> {
    let region = app.config().region.id.clone();
    let region_key = app.region_key().await.map_err(text)?;
    let ring = app.host().root_keys();
    let newest = ring.current().version;
    let file = root_key::path(key_dir, &region);
    let mode = std::fs::metadata(&file)
        .map(|m| format!("{:o}", m.permissions().mode() & 0o777))
        .unwrap_or_else(|_| "unknown".into());
    let records = app.clinic_records().await.map_err(text)?;
    let keys = app.wrapped_keys(None).await.map_err(text)?;
    let in_use = app.root_versions_in_use().await.map_err(text)?;
    let clinics: Vec<ClinicKey> = records
        .iter()
        .map(|r| {
            let mine: Vec<_> = keys.iter().filter(|k| k.clinic == r.id.as_str()).collect();
            let current = mine.iter().find(|k| k.version == r.key_version);
            ClinicKey {
                clinic: r.id.as_str().to_owned(),
                status: r.status.clone(),
                key_version: current.map(|k| k.version),
                wrapped_by_root_version: current.map(|k| k.root_version),
                older_versions: mine.len().saturating_sub(usize::from(current.is_some())),
                swept_version: r.swept_version,
                sweep_unfinished: r.status == "active" && r.swept_version < r.key_version,
            }
        })
        .collect();
    let wrapped_by_other_root = clinics
        .iter()
        .filter(|c| {
            c.wrapped_by_root_version
                .is_some_and(|v| v != i64::from(newest))
        })
        .count();
    Ok(Status {
        region,
        root_key_file: file,
        root_key_mode: mode,
        root_key_version: newest,
        root_key_versions: ring.versions(),
        wrapped_by_root: in_use.iter().map(|(v, n)| (format!("v{v}"), *n)).collect(),
        rotation_unfinished: in_use.keys().any(|v| *v != newest),
        region_key_version: region_key.version(),
        checkpoint_public_key: amanah_functions::checkpoint::public_key(&region_key),
        clinics,
        wrapped_by_other_root,
    })
}

/// What `keys rotate-root` did.
#[derive(Debug, Clone, Serialize)]
pub struct RootRotation {
    pub region: String,
    /// The root key version that now wraps every key.
    pub version: u32,
    /// A version was added by this run (`false`: an unfinished rotation to
    /// `version` was resumed).
    pub added: bool,
    /// Wrapped keys re-wrapped by this run.
    pub rewrapped: usize,
    /// Older versions the key file still holds; none wraps anything now, so
    /// each can be retired (`keys retire-root`).
    pub retirable: Vec<u32>,
    /// Whether the old wrapped bytes were scrubbed from the directory's
    /// files (always, on the native host).
    pub scrubbed: bool,
}

/// Debug builds only: abort (as a crash would: no cleanup, nothing
/// flushed) after `AMANAH_TEST_CRASH_AFTER_BATCHES` committed batches, so
/// that a test can interrupt a rotation at a known point.
fn crash_point(batches: usize) {
    #[cfg(debug_assertions)]
    if std::env::var("AMANAH_TEST_CRASH_AFTER_BATCHES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(batches)
    {
        std::process::abort();
    }
    let _ = batches;
}

/// The region's root keyring and how many keys each root version wraps,
/// refused if any version in use is missing from the key file. The region
/// key is made first if missing, so that a rotation re-wraps it with the rest.
async fn held_versions_in_use<H: Host>(
    app: &App<H>,
    key_dir: &Path,
) -> Result<(std::sync::Arc<RootKeyring>, BTreeMap<u32, i64>), String> {
    let region = &app.config().region.id;
    app.region_key().await.map_err(text)?;
    let ring = app.host().root_keys();
    let in_use = app.root_versions_in_use().await.map_err(text)?;
    if let Some(lost) = in_use.keys().find(|v| ring.get(**v).is_none()) {
        return Err(format!(
            "keys of region {region} are wrapped by root key v{lost}, which {} does not hold: \
             put that version back in the key file before rotating",
            root_key::path(key_dir, region).display()
        ));
    }
    Ok((ring, in_use))
}

/// Rotates the region's root key, or finishes an unfinished rotation.
pub async fn rotate_root(
    app: &App<NativeHost>,
    key_dir: &Path,
    batch: i64,
    quiet: bool,
) -> Result<RootRotation, String> {
    let region = app.config().region.id.clone();
    let (ring, in_use) = held_versions_in_use(app, key_dir).await?;
    let unfinished = in_use.keys().any(|v| *v != ring.current().version);
    let added = !unfinished;
    let expected = ring.current().version + u32::from(added);
    if added {
        let next = ring.with_next(root_key::random_key()?);
        root_key::write(key_dir, &next)?;
    }
    // The host follows the key file: from here on it wraps under the new
    // version, as every running `serve` does from its next request.
    let ring = app.host().root_keys();
    let newest = ring.current().version;
    if newest != expected {
        return Err(format!(
            "the key file changed under this run (newest root version v{newest}, expected v{expected}); run rotate-root again"
        ));
    }
    let rewrapped = rewrap_all(app, newest, batch, quiet).await?;
    let scrubbed = app.host().scrub(None).await.map_err(|e| e.to_string())?;
    Ok(RootRotation {
        region,
        version: newest,
        added,
        rewrapped,
        retirable: older_than(&ring, newest),
        scrubbed,
    })
}

fn older_than(ring: &RootKeyring, newest: u32) -> Vec<u32> {
    ring.versions()
        .into_iter()
        .filter(|v| *v != newest)
        .collect()
}

/// Re-wraps, a batch per transaction, every key wrapped by another root
/// version than `newest`; fails if any is left.
async fn rewrap_all<H: Host>(
    app: &App<H>,
    newest: u32,
    batch: i64,
    quiet: bool,
) -> Result<usize, String> {
    let stale: i64 = app
        .root_versions_in_use()
        .await
        .map_err(text)?
        .iter()
        .filter(|(v, _)| **v != newest)
        .map(|(_, n)| *n)
        .sum();
    let bar = progress(stale.max(0) as u64, "re-wrap", quiet);
    let mut rewrapped = 0;
    let mut batches = 0;
    loop {
        let n = app.rewrap_batch(batch).await.map_err(text)?;
        if n == 0 {
            break;
        }
        rewrapped += n;
        batches += 1;
        bar.inc(n as u64);
        crash_point(batches);
    }
    bar.finish_and_clear();
    let left = app.root_versions_in_use().await.map_err(text)?;
    if left.keys().any(|v| *v != newest) {
        return Err(format!(
            "some keys are still wrapped by an older root version ({left:?}); run rotate-root again"
        ));
    }
    Ok(rewrapped)
}

/// The root versions each of a region's hosts says it holds
/// (`GET /healthz/keys`).
pub type HostVersions = dyn Fn(&str) -> Result<Vec<u32>, String> + Sync;

/// Root rotation of a sqld region, whose hosts (Worker, Spin) hold the root
/// keys as a deployed secret and learn a new version only from a redeploy.
/// So it takes two runs with a redeploy between them:
///
/// 1. everything is wrapped by the key file's newest version: a version is
///    added to the key file and nothing else is done (redeploy the hosts
///    from the file now);
/// 2. something is wrapped by an older version: every host named must say
///    it holds the newest (`hosts`), then every key is re-wrapped under it.
///    An interrupted run resumes the same way.
///
/// Nothing is ever wrapped under a version a running host lacks.
pub async fn rotate_root_remote<H: Host>(
    app: &App<H>,
    key_dir: &Path,
    hosts: &[String],
    host_versions: &HostVersions,
    batch: i64,
    quiet: bool,
) -> Result<RootRotation, String> {
    let region = app.config().region.id.clone();
    if hosts.is_empty() {
        return Err(format!(
            "--host-url: name every host of region {region} (repeat the flag), so that the \
             rotation can check each holds the new root version before anything is wrapped by it"
        ));
    }
    let (ring, in_use) = held_versions_in_use(app, key_dir).await?;
    let newest = ring.current().version;
    if in_use.keys().all(|v| *v == newest) {
        let next = ring.with_next(root_key::random_key()?);
        root_key::write(key_dir, &next)?;
        return Ok(RootRotation {
            region,
            version: next.current().version,
            added: true,
            rewrapped: 0,
            retirable: Vec::new(),
            scrubbed: false,
        });
    }
    for url in hosts {
        let held = host_versions(url)?;
        if !held.contains(&newest) {
            return Err(format!(
                "the host at {url} holds root key versions {held:?}, not v{newest}: redeploy \
                 region {region}'s hosts from the key file first (nothing was re-wrapped)"
            ));
        }
    }
    let rewrapped = rewrap_all(app, newest, batch, quiet).await?;
    Ok(RootRotation {
        region,
        version: newest,
        added: false,
        rewrapped,
        retirable: older_than(&ring, newest),
        // A sqld keeps old pages in its log; retiring the old version is
        // what makes them useless.
        scrubbed: false,
    })
}

/// What `keys retire-root` did.
#[derive(Debug, Clone, Serialize)]
pub struct Retirement {
    pub region: String,
    pub retired: u32,
    /// The versions the key file holds now.
    pub held: Vec<u32>,
}

/// Removes root key `version` from the region's key file, if nothing it
/// wraps is left.
pub async fn retire_root<H: Host>(
    app: &App<H>,
    key_dir: &Path,
    version: u32,
) -> Result<Retirement, String> {
    let region = app.config().region.id.clone();
    let ring = app.host().root_keys();
    if ring.get(version).is_none() {
        return Err(format!(
            "the key file of region {region} holds no root key v{version} (it holds {:?})",
            ring.versions()
        ));
    }
    let next = ring.without(version).map_err(|e| format!("refused: {e}"))?;
    let in_use = app.root_versions_in_use().await.map_err(text)?;
    if let Some(n) = in_use.get(&version).filter(|n| **n > 0) {
        return Err(format!(
            "refused: root key v{version} still wraps {n} key(s) of region {region}; \
             run `amanah keys rotate-root --region {region}` to finish the rotation first"
        ));
    }
    root_key::write(key_dir, &next)?;
    Ok(Retirement {
        region,
        retired: version,
        held: next.versions(),
    })
}

/// What `keys rotate-clinic` did.
#[derive(Debug, Clone, Serialize)]
pub struct ClinicRotation {
    pub clinic: String,
    /// The data key version now current.
    pub version: u32,
    /// `true`: an unfinished rotation to `version` was resumed, no new
    /// version made.
    pub resumed: bool,
    /// Whether this run swept (without `--no-sweep`).
    pub swept: bool,
    pub resealed_rows: u64,
    pub rebuilt_terms: u64,
    /// Values still under an older version (0 once swept).
    pub left: u64,
}

/// Rotates one clinic's data key, then (unless `sweep` is false) re-seals
/// its fields under the new version.
pub async fn rotate_clinic<H: Host>(
    app: &App<H>,
    clinic: &ClinicId,
    sweep: bool,
    batch: i64,
    quiet: bool,
) -> Result<ClinicRotation, String> {
    let rotation = app
        .rotate_clinic_key(clinic)
        .await
        .map_err(|e| match e.code {
            amanah_functions::error::Code::NotFound => {
                format!(
                    "region {} has no clinic {}",
                    clinic.region(),
                    clinic.as_str()
                )
            }
            _ if e.detail.is_none() => format!("refused: {}", e.message),
            _ => e.log_text(),
        })?;
    let mut report = ClinicRotation {
        clinic: clinic.as_str().to_owned(),
        version: rotation.version,
        resumed: rotation.resumed,
        swept: sweep,
        resealed_rows: 0,
        rebuilt_terms: 0,
        left: 0,
    };
    if sweep {
        let bar = progress(0, "re-seal", quiet);
        let s = app
            .sweep_clinic(clinic, batch, &mut |seen, total| {
                bar.set_length(total);
                bar.set_position(seen);
            })
            .await
            .map_err(text)?;
        bar.finish_and_clear();
        report.resealed_rows = s.resealed_rows;
        report.rebuilt_terms = s.rebuilt_terms;
        report.left = s.left;
    }
    Ok(report)
}
