//! Region root keys for the native host: one 0600 file per region, created on
//! first run. (Workers and Spin take theirs from the platform's secret store.)

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use amanah_functions::crypto::keys::RootKey;

/// Where a region's key lives under `key_dir`.
pub fn path(key_dir: &Path, region: &str) -> PathBuf {
    key_dir.join(format!("{region}.root.key"))
}

/// Loads a region's root key, creating it if absent. Returns the key and
/// whether it was created now.
pub fn load_or_create(key_dir: &Path, region: &str) -> Result<(RootKey, bool), String> {
    fs::create_dir_all(key_dir).map_err(|e| format!("cannot create {}: {e}", key_dir.display()))?;
    let _ = fs::set_permissions(key_dir, fs::Permissions::from_mode(0o700));
    let file = path(key_dir, region);
    let mut created = false;
    if !file.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
        writeln!(f, "{}", RootKey::encode(1, &key))
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        created = true;
    }
    Ok((load(key_dir, region)?, created))
}

/// Loads a region's existing root key; refuses a missing one (operator
/// commands never create keys) or one readable by other users.
pub fn load(key_dir: &Path, region: &str) -> Result<RootKey, String> {
    let file = path(key_dir, region);
    if !file.exists() {
        return Err(format!(
            "no root key for region {region} at {} (give --key-dir where it is)",
            file.display()
        ));
    }
    let mode = fs::metadata(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by other users (mode {:o}); run chmod 600 on it",
            file.display(),
            mode & 0o777
        ));
    }
    let text =
        fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    RootKey::parse(region, &text).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_0600_and_refused_when_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create(dir.path(), "pk").unwrap();
        assert!(created);
        let mode = fs::metadata(path(dir.path(), "pk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (b, created) = load_or_create(dir.path(), "pk").unwrap();
        assert!(!created);
        assert_eq!(a.derive("x").expose(), b.derive("x").expose());
        fs::set_permissions(path(dir.path(), "pk"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(dir.path(), "pk")
            .unwrap_err()
            .contains("chmod 600"));
        assert!(load(dir.path(), "ae").unwrap_err().contains("no root key"));
    }
}
