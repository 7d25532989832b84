//! Region root keys for the native host: one 0600 file per region, created on
//! first run, holding every root key version the region still has (one
//! `v<version>:<hex>` a line; the newest wraps). (Workers and Spin take
//! theirs from the platform's secret store.)
//!
//! A running `amanah serve` follows its key file ([`KeyFile`]): after
//! `amanah keys rotate-root` or `retire-root` rewrites it, the next request
//! uses the new keyring, so rotation needs no restart.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use amanah_functions::crypto::keys::{KeyBytes, RootKey, RootKeyring};

/// Where a region's key lives under `key_dir`.
pub fn path(key_dir: &Path, region: &str) -> PathBuf {
    key_dir.join(format!("{region}.root.key"))
}

/// Loads a region's root keys, creating the file (one version) if absent.
/// Returns the keys and whether they were created now.
pub fn load_or_create(key_dir: &Path, region: &str) -> Result<(RootKeyring, bool), String> {
    fs::create_dir_all(key_dir).map_err(|e| format!("cannot create {}: {e}", key_dir.display()))?;
    let _ = fs::set_permissions(key_dir, fs::Permissions::from_mode(0o700));
    let file = path(key_dir, region);
    let mut created = false;
    if !file.exists() {
        let key = random_key()?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
        writeln!(f, "{}", RootKey::encode(1, key.expose()))
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        created = true;
    }
    Ok((load(key_dir, region)?, created))
}

/// 256 fresh random bits for a root key version.
pub fn random_key() -> Result<KeyBytes, String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
    Ok(KeyBytes::new(key))
}

/// Loads a region's existing root keys; refuses a missing file (operator
/// commands never create keys) or one readable by other users.
pub fn load(key_dir: &Path, region: &str) -> Result<RootKeyring, String> {
    load_file(&path(key_dir, region), region)
}

fn load_file(file: &Path, region: &str) -> Result<RootKeyring, String> {
    if !file.exists() {
        return Err(format!(
            "no root key for region {region} at {} (give --key-dir where it is)",
            file.display()
        ));
    }
    let mode = fs::metadata(file)
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
        fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    RootKeyring::parse(region, &text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Replaces a region's key file with `ring`, atomically: a reader (a
/// running server) sees the old file or the new one, never a part, and a
/// crash leaves one of the two.
pub fn write(key_dir: &Path, ring: &RootKeyring) -> Result<(), String> {
    let file = path(key_dir, ring.region());
    let tmp = key_dir.join(format!(".{}.root.key.tmp", ring.region()));
    let _ = fs::remove_file(&tmp);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(ring.to_text().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    drop(f);
    fs::rename(&tmp, &file).map_err(|e| format!("cannot replace {}: {e}", file.display()))?;
    if let Ok(d) = fs::File::open(key_dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// What identifies one version of the file: a rewrite is a new inode, a
/// change of mode a new ctime.
type Stamp = (u64, u64, i64, i64, i64, i64, u64);

fn stamp(file: &Path) -> Option<Stamp> {
    let m = fs::metadata(file).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.len(),
    ))
}

/// A region's root keys as a host holds them: fixed, or followed from the
/// key file, which is looked at (one `stat`) whenever the keys are asked
/// for and read again when it changed.
pub struct KeyFile {
    file: Option<(PathBuf, String)>,
    state: Mutex<(Option<Stamp>, Arc<RootKeyring>)>,
}

impl KeyFile {
    /// Keys that never change (tests, benchmarks, a restore's work host).
    pub fn fixed(ring: RootKeyring) -> Self {
        KeyFile {
            file: None,
            state: Mutex::new((None, Arc::new(ring))),
        }
    }

    /// The region's key file under `key_dir`, followed.
    pub fn follow(key_dir: &Path, region: &str) -> Result<Self, String> {
        let file = path(key_dir, region);
        let at = stamp(&file);
        let ring = load_file(&file, region)?;
        Ok(KeyFile {
            file: Some((file, region.to_owned())),
            state: Mutex::new((at, Arc::new(ring))),
        })
    }

    /// The keys now. A file that cannot be read (or is refused) keeps the
    /// keys last read, and says so in the log.
    pub fn keys(&self) -> Arc<RootKeyring> {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((file, region)) = &self.file {
            let now = stamp(file);
            if now != state.0 {
                match load_file(file, region) {
                    Ok(ring) => {
                        tracing::info!(region, versions = ?ring.versions(), "root keys read again");
                        *state = (now, Arc::new(ring));
                    }
                    Err(e) => {
                        tracing::error!(region, error = e, "root key file changed but cannot be used; keeping the keys read before");
                        state.0 = now;
                    }
                }
            }
        }
        state.1.clone()
    }
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
        assert_eq!(
            a.current().derive("x").expose(),
            b.current().derive("x").expose()
        );
        fs::set_permissions(path(dir.path(), "pk"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(dir.path(), "pk")
            .unwrap_err()
            .contains("chmod 600"));
        assert!(load(dir.path(), "ae").unwrap_err().contains("no root key"));
    }

    #[test]
    fn a_followed_key_file_is_read_again_when_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (one, _) = load_or_create(dir.path(), "pk").unwrap();
        let followed = KeyFile::follow(dir.path(), "pk").unwrap();
        let first = followed.keys();
        assert!(
            Arc::ptr_eq(&first, &followed.keys()),
            "unchanged: same keys"
        );
        let two = one.with_next(random_key().unwrap());
        write(dir.path(), &two).unwrap();
        let mode = fs::metadata(path(dir.path(), "pk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(followed.keys().versions(), [1, 2]);
        assert_eq!(load(dir.path(), "pk").unwrap().versions(), [1, 2]);
        // A file made readable by others is refused; the keys stay.
        fs::set_permissions(path(dir.path(), "pk"), fs::Permissions::from_mode(0o644)).unwrap();
        write(dir.path(), &two.without(1).unwrap()).unwrap();
        fs::set_permissions(path(dir.path(), "pk"), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(followed.keys().versions(), [1, 2]);
        fs::set_permissions(path(dir.path(), "pk"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(followed.keys().versions(), [2]);
    }
}
