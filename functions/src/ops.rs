//! What the operator commands (`amanah keys | backup | restore | drill |
//! audit`) ask of the application: the region's clinics and key records,
//! the re-wrap of a root key rotation, chains walked against checkpoints,
//! the keys backups are sealed with, and the facts a restore is checked
//! against. The commands themselves (files,
//! progress, output) live in the `amanah` binary; every SQL statement on
//! the schemas stays in this crate.

pub mod checkpoints;
pub mod copy;

use std::collections::BTreeMap;

use crate::app::App;
use crate::audit::{self, Verification};
use crate::crypto::keys::{self, KeyBytes, REGION_KEY_OWNER};
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
    /// The data key version the last completed sweep re-sealed everything
    /// under (below `key_version`: a rotation's sweep is unfinished).
    pub swept_version: i64,
}

/// One wrapped key, as the directory (the region's key store) holds it: a
/// clinic's data key, or (owner [`REGION_KEY_OWNER`]) the region key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The clinic id, or [`REGION_KEY_OWNER`].
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
                "SELECT id, status, key_version, swept_version FROM clinics ORDER BY id",
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
                swept_version: row.int(3)?,
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

    /// The region key as the directory holds it (made now if it had none).
    pub async fn wrapped_region_key(&self) -> ApiResult<WrappedKey> {
        self.region_key().await?;
        let dir = self.ops_directory().await?;
        let rows = dir
            .query(
                "SELECT version, root_version, wrapped, created_at FROM region_keys ORDER BY version DESC LIMIT 1",
                vec![],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::internal("the directory has no region key"))?;
        Ok(WrappedKey {
            clinic: REGION_KEY_OWNER.to_owned(),
            version: row.int(0)?,
            root_version: row.int(1)?,
            wrapped: row.blob(2)?,
            created_at: row.int(3)?,
        })
    }

    /// Puts wrapped keys taken from the region's key store into this
    /// directory (a restore's): clinics' data keys and the region key. Each
    /// must unwrap under this host's root keys for the owner it names, or
    /// nothing is written.
    pub async fn import_wrapped_keys(&self, wrapped: &[WrappedKey]) -> ApiResult<()> {
        let ring = self.host().root_keys();
        for k in wrapped {
            if keys::wrapped_root_version(&k.wrapped) != u32::try_from(k.root_version).ok() {
                return Err(ApiError::internal(
                    "a wrapped key's root version is not the one its row names",
                ));
            }
            let version = u32::try_from(k.version)
                .map_err(|_| ApiError::internal("a key version out of range"))?;
            ring.unwrap(&k.clinic, version, &k.wrapped).map_err(|_| {
                ApiError::internal("a wrapped key does not open under this region's root keys")
            })?;
        }
        let dir = self.ops_directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        for k in wrapped {
            let sql = if k.clinic == REGION_KEY_OWNER {
                "INSERT OR REPLACE INTO region_keys (version, root_version, wrapped, created_at) \
                 VALUES (?2, ?3, ?4, ?5)"
            } else {
                "INSERT OR REPLACE INTO clinic_keys (clinic_id, version, root_version, wrapped, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)"
            };
            let r = dir
                .execute(
                    sql,
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

    /// How many wrapped keys (clinic data keys and the region key) each
    /// root key version wraps.
    pub async fn root_versions_in_use(&self) -> ApiResult<BTreeMap<u32, i64>> {
        let dir = self.ops_directory().await?;
        let rows = dir
            .query(
                "SELECT root_version, COUNT(*) FROM (SELECT root_version FROM clinic_keys \
                 UNION ALL SELECT root_version FROM region_keys) GROUP BY root_version",
                vec![],
            )
            .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let v = u32::try_from(row.int(0)?)
                .map_err(|_| ApiError::internal("a root version out of range"))?;
            out.insert(v, row.int(1)?);
        }
        Ok(out)
    }

    /// One step of a root key rotation: up to `limit` wrapped keys that an
    /// older root version wraps are unwrapped and wrapped again under the
    /// newest, in one transaction. Each row changes only if it is still as
    /// read (another run, or a sign-up, may have moved it). Returns how many
    /// changed; 0 when the newest version wraps everything.
    pub async fn rewrap_batch(&self, limit: i64) -> ApiResult<usize> {
        let ring = self.host().root_keys();
        let newest = i64::from(ring.current().version);
        let dir = self.ops_directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        let work = async {
            let rows = dir
                .query(
                    "SELECT clinic_id, version, root_version, wrapped FROM clinic_keys WHERE root_version <> ?1 \
                     UNION ALL SELECT ?2, version, root_version, wrapped FROM region_keys WHERE root_version <> ?1 \
                     LIMIT ?3",
                    vec![newest.into(), REGION_KEY_OWNER.into(), limit.into()],
                )
                .await?;
            let mut changed = 0;
            for row in &rows {
                let (owner, version, old) = (row.text(0)?, row.int(1)?, row.int(2)?);
                let v = u32::try_from(version)
                    .map_err(|_| ApiError::internal("a key version out of range"))?;
                let key = ring.unwrap(&owner, v, &row.blob(3)?).map_err(|_| {
                    ApiError::internal(format!(
                        "a key of {owner} wrapped by root v{old} does not open: is that version still in the key file?"
                    ))
                })?;
                let mut nonce = [0u8; 12];
                self.host().fill_random(&mut nonce);
                let wrapped = ring.wrap(&owner, &key, nonce);
                let sql = if owner == REGION_KEY_OWNER {
                    "UPDATE region_keys SET root_version = ?3, wrapped = ?4 WHERE version = ?2 AND root_version = ?5"
                } else {
                    "UPDATE clinic_keys SET root_version = ?3, wrapped = ?4 \
                     WHERE clinic_id = ?1 AND version = ?2 AND root_version = ?5"
                };
                changed += dir
                    .execute(
                        sql,
                        vec![
                            owner.into(),
                            version.into(),
                            newest.into(),
                            wrapped.into(),
                            old.into(),
                        ],
                    )
                    .await? as usize;
            }
            Ok::<usize, ApiError>(changed)
        }
        .await;
        crate::store::finish(&dir, work).await
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

    /// The key one backup file of a clinic is sealed with: derived from one
    /// version of the clinic's data key (the current one when `None`), so
    /// that destroying the clinic's keys (the purge) leaves every backup of
    /// it unreadable. Returns the version with it.
    pub async fn clinic_backup_key(
        &self,
        clinic: &ClinicId,
        version: Option<i64>,
    ) -> ApiResult<(i64, KeyBytes)> {
        let (_, keys) = self.data_keys(clinic).await?;
        let dek = match version {
            None => keys.current()?,
            Some(v) => u32::try_from(v)
                .ok()
                .and_then(|v| keys.get(v))
                .ok_or_else(|| ApiError::internal(format!("the clinic has no data key v{v}")))?,
        };
        let info = format!("clinic:{}:backup", clinic.as_str());
        Ok((
            i64::from(dek.version),
            keys::derive(&dek.key, info.as_bytes()),
        ))
    }

    /// The key the directory's backup file (which holds no key) and backup
    /// manifests are sealed and authenticated with, derived from the region
    /// key (so root rotations leave backups readable). Returns the region
    /// key's version with it.
    pub async fn region_backup_key(&self, purpose: &str) -> ApiResult<(u32, KeyBytes)> {
        let key = self.region_key().await?;
        Ok((key.version(), key.derive(&format!("backup:{purpose}"))))
    }

    /// The directory, its schema brought up to date (out of the request
    /// path, at once).
    pub(crate) async fn ops_directory(&self) -> ApiResult<H::Conn> {
        let dir = self.host().directory().await?;
        self.migrate_directory(&dir).await?;
        Ok(dir)
    }
}

/// Empties a directory copy of its wrapped keys (clinics' and the region
/// key) and rewrites the file, so that no page of it still holds one: a
/// backup's directory carries no key.
pub async fn remove_keys<C: Conn>(conn: &C) -> ApiResult<()> {
    conn.execute("DELETE FROM clinic_keys", vec![]).await?;
    conn.execute("DELETE FROM region_keys", vec![]).await?;
    conn.execute("VACUUM", vec![]).await?;
    Ok(())
}
