//! `amanah keys status`: the region's root key (version, file, mode), the
//! public key that checks its audit checkpoints, and every clinic's data
//! key: its version and the root key version that wraps it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use amanah_functions::host::Host;
use amanah_functions::App;
use serde::Serialize;

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
    /// Older data key versions still held.
    pub older_versions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub region: String,
    pub root_key_file: PathBuf,
    pub root_key_version: u32,
    pub root_key_mode: String,
    pub checkpoint_public_key: String,
    pub clinics: Vec<ClinicKey>,
    /// Clinics whose key another root version than the current one wraps.
    pub wrapped_by_other_root: usize,
}

pub async fn status(app: &App<NativeHost>, key_dir: &Path) -> Result<Status, String> {
    let region = app.config().region.id.clone();
    let root = app.host().root_key();
    let file = root_key::path(key_dir, &region);
    let mode = std::fs::metadata(&file)
        .map(|m| format!("{:o}", m.permissions().mode() & 0o777))
        .unwrap_or_else(|_| "unknown".into());
    let records = app.clinic_records().await.map_err(|e| e.log_text())?;
    let keys = app.wrapped_keys(None).await.map_err(|e| e.log_text())?;
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
            }
        })
        .collect();
    let wrapped_by_other_root = clinics
        .iter()
        .filter(|c| {
            c.wrapped_by_root_version
                .is_some_and(|v| v != i64::from(root.version))
        })
        .count();
    Ok(Status {
        region,
        root_key_file: file,
        root_key_version: root.version,
        root_key_mode: mode,
        checkpoint_public_key: amanah_functions::checkpoint::public_key(root),
        clinics,
        wrapped_by_other_root,
    })
}
