//! What the operator commands (`amanah keys | backup | restore | drill |
//! audit`) ask of the application: the region's clinics and key records,
//! the re-wrap of a root key rotation, chains walked against checkpoints,
//! the keys backups are sealed with, and the facts a restore is checked
//! against. The commands themselves (files,
//! progress, output) live in the `amanah` binary; every SQL statement on
//! the schemas stays in this crate.

pub mod copy;

use std::collections::BTreeMap;

use crate::app::App;
use crate::audit::{self, Verification};
use crate::crypto::keys::{self, KeyBytes, REGION_KEY_OWNER};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::records::directory::{clinic_keys, clinics, region_keys};
use crate::records::{self, RowExt};

pub use crate::records::directory::clinic_keys::{remove_every_key as remove_keys, WrappedKey};
pub use crate::records::directory::clinics::ClinicRecord;

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

/// Row counts of a clinic database, by table, in one round trip.
pub async fn row_counts<C: Conn>(conn: &C) -> ApiResult<BTreeMap<String, i64>> {
    let statements = records::CLINIC
        .iter()
        .filter(|t| t.counted)
        .map(|t| t.count())
        .collect();
    let results = conn.query_many(statements).await?;
    let mut out = BTreeMap::new();
    for (table, rows) in records::counted().zip(results) {
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
        clinics::all(&self.ops_directory().await?).await
    }

    /// The wrapped data keys the directory holds: of one clinic, or all.
    pub async fn wrapped_keys(&self, clinic: Option<&ClinicId>) -> ApiResult<Vec<WrappedKey>> {
        clinic_keys::list(&self.ops_directory().await?, clinic).await
    }

    /// The region key as the directory holds it (made now if it had none).
    pub async fn wrapped_region_key(&self) -> ApiResult<WrappedKey> {
        self.region_key().await?;
        let (version, root_version, wrapped, created_at) =
            region_keys::newest(&self.ops_directory().await?)
                .await?
                .ok_or_else(|| ApiError::internal("the directory has no region key"))?;
        Ok(WrappedKey {
            clinic: REGION_KEY_OWNER.to_owned(),
            version,
            root_version,
            wrapped,
            created_at,
        })
    }

    /// Puts wrapped keys taken from the region's key store into this
    /// directory (a restore's): clinics' data keys and the region key. Each
    /// must unwrap under this host's root keys for the owner it names, or
    /// nothing is written.
    pub async fn import_wrapped_keys(&self, wrapped: &[WrappedKey]) -> ApiResult<()> {
        let ring = self.host.root_keys();
        for k in wrapped {
            if keys::wrapped_root_version(&k.wrapped) != u32::try_from(k.root_version).ok() {
                return Err(ApiError::internal(
                    "a wrapped key's root version is not the one its row names",
                ));
            }
            ring.unwrap(&k.clinic, clinic_keys::version(k.version)?, &k.wrapped)
                .map_err(|_| {
                    ApiError::internal("a wrapped key does not open under this region's root keys")
                })?;
        }
        let dir = self.ops_directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        let work = async {
            for k in wrapped {
                clinic_keys::put(&dir, k).await?;
            }
            Ok::<(), ApiError>(())
        }
        .await;
        crate::store::finish(&dir, work).await
    }

    /// How many wrapped keys (clinic data keys and the region key) each
    /// root key version wraps.
    pub async fn root_versions_in_use(&self) -> ApiResult<BTreeMap<u32, i64>> {
        let mut out = BTreeMap::new();
        for (v, n) in clinic_keys::root_versions_in_use(&self.ops_directory().await?).await? {
            let v =
                u32::try_from(v).map_err(|_| ApiError::internal("a root version out of range"))?;
            out.insert(v, n);
        }
        Ok(out)
    }

    /// One step of a root key rotation: up to `limit` wrapped keys that an
    /// older root version wraps are unwrapped and wrapped again under the
    /// newest, in one transaction. Each row changes only if it is still as
    /// read (another run, or a sign-up, may have moved it). Returns how many
    /// changed; 0 when the newest version wraps everything.
    pub async fn rewrap_batch(&self, limit: i64) -> ApiResult<usize> {
        let ring = self.host.root_keys();
        let newest = i64::from(ring.current().version);
        let dir = self.ops_directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        let work = async {
            let mut changed = 0;
            for (owner, version, old, wrapped) in clinic_keys::wrapped_by_older(&dir, newest, limit).await? {
                let key = ring
                    .unwrap(&owner, clinic_keys::version(version)?, &wrapped)
                    .map_err(|_| {
                        ApiError::internal(format!(
                            "a key of {owner} wrapped by root v{old} does not open: is that version still in the key file?"
                        ))
                    })?;
                let rewrapped = ring.wrap(&owner, &key, self.random());
                changed += usize::from(
                    clinic_keys::rewrap(&dir, &owner, version, old, newest, rewrapped).await?,
                );
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
            None => keys.current().ok_or_else(crate::tenancy::missing_current)?,
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
}
