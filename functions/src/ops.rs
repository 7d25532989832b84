//! What the operator commands (`amanah keys | backup | restore | drill |
//! audit`) ask of the application: the region's clinics and key records,
//! chains walked against checkpoints, the keys backups are sealed with, and
//! the facts a restore is checked against. The commands themselves (files,
//! progress, output) live in the `amanah` binary; every SQL statement on
//! the schemas stays in this crate.

use std::collections::BTreeMap;

use crate::app::App;
use crate::audit::{self, Verification};
use crate::crypto::keys::{self, KeyBytes};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::store::RowExt;

/// A clinic as the region directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicRecord {
    pub id: ClinicId,
    /// `active`, `deleting` or `purged`.
    pub status: String,
    pub key_version: i64,
}

/// One wrapped data key of a clinic, as the directory (the region's key
/// store) holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub clinic: String,
    pub version: i64,
    pub root_version: i64,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

/// An audit chain of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chain {
    /// The platform audit stream, in the directory.
    Platform,
    Clinic(ClinicId),
}

impl Chain {
    /// The name checkpoints and reports use: `platform` or the clinic id.
    pub fn name(&self) -> &str {
        match self {
            Chain::Platform => "platform",
            Chain::Clinic(c) => c.as_str(),
        }
    }
}

/// A chain walked from its first entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub verification: Verification,
    /// The hash of each entry asked for that the chain reached.
    pub at_marks: BTreeMap<i64, Vec<u8>>,
}

/// The tables whose row counts a backup records and a restore must match.
pub const COUNTED_TABLES: &[&str] = &[
    "users",
    "patients",
    "patient_terms",
    "conditions",
    "prescriptions",
    "notes",
    "appointments",
    "audit",
];

/// Row counts of a clinic database, by table, in one round trip.
pub async fn row_counts<C: Conn>(conn: &C) -> ApiResult<BTreeMap<String, i64>> {
    let statements = COUNTED_TABLES
        .iter()
        .map(|t| (format!("SELECT COUNT(*) FROM {t}"), vec![]))
        .collect();
    let results = conn.query_many(statements).await?;
    let mut out = BTreeMap::new();
    for (table, rows) in COUNTED_TABLES.iter().zip(results) {
        let n = rows
            .first()
            .ok_or_else(|| ApiError::internal("COUNT returned no row"))?
            .int(0)?;
        out.insert((*table).to_owned(), n);
    }
    Ok(out)
}

/// The chain's last sequence number and hex hash (zeros when empty).
pub async fn audit_head<C: Conn>(conn: &C) -> ApiResult<(i64, String)> {
    let rows = conn.query(audit::HEAD_SQL, vec![]).await?;
    Ok(match rows.first() {
        Some(row) => (row.int(0)?, data_encoding::HEXLOWER.encode(&row.blob(1)?)),
        None => (0, data_encoding::HEXLOWER.encode(&[0u8; 32])),
    })
}

impl<H: Host> App<H> {
    /// Every clinic of the region's directory, purged ones included.
    pub async fn clinic_records(&self) -> ApiResult<Vec<ClinicRecord>> {
        let dir = self.ops_directory().await?;
        let rows = dir
            .query(
                "SELECT id, status, key_version FROM clinics ORDER BY id",
                vec![],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = ClinicId::parse(&row.text(0)?)
                .ok_or_else(|| ApiError::internal("a malformed clinic id in the directory"))?;
            out.push(ClinicRecord {
                id,
                status: row.text(1)?,
                key_version: row.int(2)?,
            });
        }
        Ok(out)
    }

    /// The wrapped data keys the directory holds: of one clinic, or all.
    pub async fn wrapped_keys(&self, clinic: Option<&ClinicId>) -> ApiResult<Vec<WrappedKey>> {
        let dir = self.ops_directory().await?;
        let rows = dir
            .query(
                "SELECT clinic_id, version, root_version, wrapped, created_at FROM clinic_keys \
                 WHERE ?1 IS NULL OR clinic_id = ?1 ORDER BY clinic_id, version",
                vec![clinic.map(|c| c.as_str().to_owned()).into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(WrappedKey {
                    clinic: row.text(0)?,
                    version: row.int(1)?,
                    root_version: row.int(2)?,
                    wrapped: row.blob(3)?,
                    created_at: row.int(4)?,
                })
            })
            .collect()
    }

    /// Puts wrapped keys taken from the region's key store into this
    /// directory (a restore's). Each must unwrap under this host's root key
    /// for the clinic it names, or nothing is written.
    pub async fn import_wrapped_keys(&self, wrapped: &[WrappedKey]) -> ApiResult<()> {
        let root = self.host().root_key();
        for k in wrapped {
            if k.root_version != i64::from(root.version) {
                return Err(ApiError::internal(
                    "a clinic key is wrapped by another root key version than this one",
                ));
            }
            let version = u32::try_from(k.version)
                .map_err(|_| ApiError::internal("a clinic key version out of range"))?;
            root.unwrap(&k.clinic, version, &k.wrapped)?;
        }
        let dir = self.ops_directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        for k in wrapped {
            let r = dir
                .execute(
                    "INSERT OR REPLACE INTO clinic_keys (clinic_id, version, root_version, wrapped, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    vec![
                        k.clinic.clone().into(),
                        k.version.into(),
                        k.root_version.into(),
                        k.wrapped.clone().into(),
                        k.created_at.into(),
                    ],
                )
                .await;
            if let Err(e) = r {
                let _ = dir.execute("ROLLBACK", vec![]).await;
                return Err(e.into());
            }
        }
        dir.execute("COMMIT", vec![]).await?;
        Ok(())
    }

    /// Walks a chain from its first entry, noting the hashes at `marks`.
    pub async fn check_chain(&self, chain: &Chain, marks: &[i64]) -> ApiResult<ChainState> {
        let (verification, at_marks) = match chain {
            Chain::Platform => {
                let dir = self.ops_directory().await?;
                audit::verify_marked(&dir, marks).await?
            }
            Chain::Clinic(c) => {
                let conn = self.clinic_conn(c, false, true).await?;
                audit::verify_marked(&conn, marks).await?
            }
        };
        Ok(ChainState {
            verification,
            at_marks,
        })
    }

    /// The key one backup file of a clinic is sealed with: derived from the
    /// clinic's current data key, so that destroying that key (the purge)
    /// leaves every backup of the clinic unreadable. Returns the data key's
    /// version with it.
    pub async fn clinic_backup_key(&self, clinic: &ClinicId) -> ApiResult<(i64, KeyBytes)> {
        let (_, dek) = self.data_key(clinic).await?;
        let info = format!("clinic:{}:backup", clinic.as_str());
        Ok((
            i64::from(dek.version),
            keys::derive(&dek.key, info.as_bytes()),
        ))
    }

    /// The key the directory's backup file (which holds no clinic key) and
    /// backup manifests are sealed and authenticated with.
    pub fn region_backup_key(&self, purpose: &str) -> KeyBytes {
        self.host().root_key().derive(&format!("backup:{purpose}"))
    }

    /// The directory, its schema brought up to date (out of the request
    /// path, at once).
    async fn ops_directory(&self) -> ApiResult<H::Conn> {
        let dir = self.host().directory().await?;
        self.migrate_directory(&dir).await?;
        Ok(dir)
    }
}

/// Empties a directory copy of its clinic keys and rewrites the file, so
/// that no page of it still holds one: a backup's directory carries no key.
pub async fn remove_clinic_keys<C: Conn>(conn: &C) -> ApiResult<()> {
    conn.execute("DELETE FROM clinic_keys", vec![]).await?;
    conn.execute("VACUUM", vec![]).await?;
    Ok(())
}
