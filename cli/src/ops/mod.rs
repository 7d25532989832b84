//! Operator commands on a region's databases: the native host's embedded
//! libSQL files, or (with `--sqld`) the libSQL server of a Worker or Spin
//! region: key status and rotation, backups and restores, restore drills,
//! and audit checkpoints. Each module is one command; what they ask of the
//! application (every SQL statement) is `amanah_functions::ops`. A backup
//! of either kind restores into files (`restore`), which `amanah serve`
//! serves.
//!
//! Long work shows a progress bar on standard error when it is a terminal,
//! never with `--json`, whose one JSON document on standard output is for
//! scripts.

pub mod backup;
pub mod checkpoints;
pub mod drill;
pub mod keys;
pub mod manifest;
pub mod publish;
pub mod restore;
pub mod seal;
pub mod snapshot;

use std::path::Path;

use amanah_functions::crypto::keys::RootKeyring;
use amanah_functions::{App, Config, RegionInfo};
use amanah_region_config::{Region, Regions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::native_host::NativeHost;
use crate::root_key;

/// What `/api/v1/regions` says of a region.
pub fn region_info(r: &Region, url: Option<String>) -> RegionInfo {
    RegionInfo::of(r, url)
}

/// The application over a region's files, for an operator command: its root
/// key and its directory must exist (keys are never created here).
pub fn open_region(
    data_dir: &Path,
    key_dir: &Path,
    region: &Region,
) -> Result<App<NativeHost>, String> {
    let keys = root_key::KeyFile::follow(key_dir, &region.id)?;
    let directory = data_dir.join(&region.id).join("directory.db");
    if !directory.exists() {
        return Err(format!(
            "no data of region {} under {} (no {})",
            region.id,
            data_dir.display(),
            directory.display()
        ));
    }
    app_on(data_dir, keys, region)
}

/// The application over `data_dir` with given root keys.
fn app_on(
    data_dir: &Path,
    keys: root_key::KeyFile,
    region: &Region,
) -> Result<App<NativeHost>, String> {
    let host = NativeHost::with_keys(&region.id, data_dir.to_path_buf(), keys)
        .map_err(|e| format!("cannot open {}: {e}", data_dir.display()))?;
    let info = region_info(region, None);
    Ok(App::new(host, Config::new(info.clone(), vec![info])))
}

/// A second host over a work directory (a backup's snapshots, a restore's
/// target) with the region's root keys.
pub fn open_region_host(
    data_dir: &Path,
    root: &RootKeyring,
    region: &str,
) -> Result<App<NativeHost>, String> {
    let region = Regions::builtin()
        .select(&[region.to_owned()])
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or("no such region")?;
    app_on(data_dir, root_key::KeyFile::fixed(root.clone()), &region)
}

/// A progress bar on standard error: drawn only on a terminal and never
/// when `quiet` (`--json`).
pub fn progress(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Seconds since the epoch, UTC.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Removes a database file and its WAL and shared-memory files.
pub fn remove_db_files(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Why data of `from` cannot go to `to`: a clinic's region is chosen at
/// sign-up and pins every byte of its data.
pub fn region_refusal(from: &str, to: &str) -> String {
    format!(
        "refused: this is data of region {from}, and region placement is immutable. \
         A clinic's region is chosen at sign-up and every byte of its data stays there \
         (its clinic id, keys and backups are bound to it); moving it to {to} would be a \
         migration, which Amanah does not do. Restore it into region {from}."
    )
}
