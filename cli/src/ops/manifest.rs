//! A backup's manifest: what the backup holds (each file's checksums, each
//! clinic's audit head and row counts at its snapshot), authenticated with
//! an HMAC under a key derived from the region's root key, so that a
//! manifest edited to match altered files is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use amanah_functions::crypto::keys::KeyBytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const FILE: &str = "manifest.json";
const MAC_FILE: &str = "manifest.mac";
/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 2;

/// One sealed file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedFile {
    /// Path inside the backup directory.
    pub file: String,
    /// The backup whose id the file was sealed under (an incremental
    /// backup carries files of an earlier one over unchanged).
    pub sealed_in: String,
    pub bytes: u64,
    /// SHA-256 of the sealed file.
    pub sha256: String,
    /// SHA-256 of the plaintext snapshot.
    pub plain_sha256: String,
}

/// One clinic's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicSnapshot {
    pub id: String,
    /// `active` or `deleting` (purged clinics are never backed up).
    pub status: String,
    /// The data key version the file is sealed with a key derived from.
    pub key_version: i64,
    /// When the snapshot was taken, RFC 3339 UTC.
    pub taken_at: String,
    pub audit_seq: i64,
    pub audit_head: String,
    pub rows: BTreeMap<String, i64>,
    /// Whether the file is an earlier backup's (nothing changed since).
    pub carried_over: bool,
    #[serde(flatten)]
    pub sealed: SealedFile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Random, hex: bound into every file sealed for this backup.
    pub id: String,
    pub region: String,
    pub started_at: String,
    pub finished_at: String,
    /// The region key version the directory file and this manifest are
    /// keyed by (see `amanah_functions::region_key`).
    pub region_key_version: u32,
    /// The earlier backup this one is incremental to.
    pub since: Option<String>,
    /// The region directory, without its wrapped keys (see `backup`).
    pub directory: SealedFile,
    pub platform_audit_seq: i64,
    pub platform_audit_head: String,
    pub clinics: Vec<ClinicSnapshot>,
    /// Clinics the directory lists whose database did not exist when the
    /// backup reached them: a sign-up in flight, or one that failed before
    /// its database was made. Nothing of theirs was ever written, so there
    /// is nothing to restore; they are named so that a lost database is
    /// never passed over silently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without_database: Vec<String>,
}

fn mac(key: &KeyBytes, bytes: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes any key");
    m.update(bytes);
    m
}

/// Writes `manifest.json` and its MAC into `dir`.
pub fn write(dir: &Path, m: &Manifest, key: &KeyBytes) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(m).map_err(|e| e.to_string())?;
    let tag = super::seal::hex(&mac(key, &bytes).finalize().into_bytes());
    std::fs::write(dir.join(FILE), &bytes)
        .and_then(|_| std::fs::write(dir.join(MAC_FILE), tag))
        .map_err(|e| format!("cannot write the manifest in {}: {e}", dir.display()))
}

/// Reads a backup's manifest, refusing one whose MAC does not match.
pub fn read(dir: &Path, key: &KeyBytes) -> Result<Manifest, String> {
    let bytes = std::fs::read(dir.join(FILE))
        .map_err(|e| format!("{} is not a backup: {e}", dir.display()))?;
    let tag = std::fs::read_to_string(dir.join(MAC_FILE))
        .map_err(|e| format!("{}: no manifest MAC: {e}", dir.display()))?;
    let tag = data_encoding::HEXLOWER
        .decode(tag.trim().as_bytes())
        .map_err(|_| format!("{}: the manifest MAC is not hex", dir.display()))?;
    mac(key, &bytes).verify_slice(&tag).map_err(|_| {
        format!(
            "{}: the manifest does not match its MAC: altered, or made with another region's root key",
            dir.display()
        )
    })?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: malformed manifest: {e}", dir.display()))?;
    if m.format != FORMAT {
        return Err(format!(
            "{}: backup format {} is not this version's ({FORMAT})",
            dir.display(),
            m.format
        ));
    }
    Ok(m)
}

/// The region a backup says it holds, read before its MAC can be checked
/// (the MAC key is the region's): only to pick the key and to refuse a
/// restore into another region with a clear message.
pub fn claimed_region(dir: &Path) -> Result<String, String> {
    let bytes = std::fs::read(dir.join(FILE))
        .map_err(|e| format!("{} is not a backup: {e}", dir.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: malformed manifest: {e}", dir.display()))?;
    v["region"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: the manifest names no region", dir.display()))
}

/// `dir` itself if it is a backup, else the newest backup directly under it
/// that started at or before `at` (unix seconds; any time if `None`).
pub fn choose(dir: &Path, at: Option<i64>) -> Result<PathBuf, String> {
    let started = |d: &Path| -> Option<i64> {
        let bytes = std::fs::read(d.join(FILE)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        amanah_functions::clock::parse_rfc3339(v["started_at"].as_str()?)
    };
    if dir.join(FILE).exists() {
        return match (at, started(dir)) {
            (Some(at), Some(t)) if t > at => Err(format!(
                "{} was taken after the time asked for",
                dir.display()
            )),
            _ => Ok(dir.to_path_buf()),
        };
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "{} is neither a backup nor a directory of backups: {e}",
            dir.display()
        )
    })?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| started(&p).map(|t| (t, p)))
        .filter(|(t, _)| at.is_none_or(|at| *t <= at))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .ok_or_else(|| match at {
            Some(_) => format!(
                "no backup under {} was taken at or before the time asked for",
                dir.display()
            ),
            None => format!("no backup under {}", dir.display()),
        })
}
