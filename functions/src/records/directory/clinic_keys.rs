//! `clinic_keys`: the region's key store for clinics: every version of each
//! clinic's data key, wrapped by a root key version (AES-256-GCM, bound to
//! region, clinic and version). A clinic's rows go first when it is purged
//! (crypto-shredding). With `region_keys` it is what a root rotation
//! re-wraps; the statements over both live here.

use crate::crypto::keys::REGION_KEY_OWNER;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Row};
use crate::ids::ClinicId;
use crate::records::table::Table;
use crate::store::{RowExt, Statement};

pub const TABLE: Table = Table {
    name: "clinic_keys",
    schema: &[(
        1,
        r#"
CREATE TABLE clinic_keys (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    version INTEGER NOT NULL,
    root_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, version)
);
"#,
    )],
    row_key: "clinic_id",
    columns: &[crate::records::table::col(
        "wrapped",
        crate::records::table::Kind::Secret,
    )],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

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

/// A clinic's state and wrapped keys, as a request needs them.
pub(crate) struct Held {
    /// `active`, `deleting` or `purged`.
    pub status: String,
    pub purge_after: Option<i64>,
    /// The version that seals.
    pub current: i64,
    /// (version, wrapped key), oldest first.
    pub keys: Vec<(i64, Vec<u8>)>,
}

/// The query of a clinic's state and every wrapped version of its data
/// key, to ride in a batch with others; [`held_from_rows`] reads it.
pub(crate) fn held_query(clinic: &ClinicId) -> Statement {
    (
        "SELECT c.status, c.purge_after, c.key_version, k.version, k.wrapped \
         FROM clinics c JOIN clinic_keys k ON k.clinic_id = c.id WHERE c.id = ?1 ORDER BY k.version"
            .to_owned(),
        vec![clinic.as_str().into()],
    )
}

/// What the rows of [`held_query`] say: `None` for a clinic the directory
/// does not know or holds no key of.
pub(crate) fn held_from_rows(rows: &[Row]) -> ApiResult<Option<Held>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Held {
        status: first.text(0)?,
        purge_after: first.opt_int(1)?,
        current: first.int(2)?,
        keys: rows
            .iter()
            .map(|r| Ok((r.int(3)?, r.blob(4)?)))
            .collect::<ApiResult<_>>()?,
    }))
}

/// Stores one wrapped version of a clinic's data key.
pub(crate) async fn insert<C: Conn>(
    dir: &C,
    clinic: &ClinicId,
    version: u32,
    root_version: u32,
    wrapped: Vec<u8>,
    now: i64,
) -> ApiResult<()> {
    dir.execute(
        "INSERT INTO clinic_keys (clinic_id, version, root_version, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            clinic.as_str().into(),
            i64::from(version).into(),
            i64::from(root_version).into(),
            wrapped.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Destroys every version of a clinic's data key.
pub(crate) async fn remove_all<C: Conn>(dir: &C, clinic: &ClinicId) -> ApiResult<()> {
    dir.execute(
        "DELETE FROM clinic_keys WHERE clinic_id = ?1",
        vec![clinic.as_str().into()],
    )
    .await?;
    Ok(())
}

/// The wrapped data keys held: of one clinic, or all.
pub(crate) async fn list<C: Conn>(
    dir: &C,
    clinic: Option<&ClinicId>,
) -> ApiResult<Vec<WrappedKey>> {
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

/// Puts a wrapped key (a clinic's or the region key) in place, replacing
/// one of the same owner and version (a restore's import).
pub(crate) async fn put<C: Conn>(dir: &C, k: &WrappedKey) -> ApiResult<()> {
    let sql = if k.clinic == REGION_KEY_OWNER {
        "INSERT OR REPLACE INTO region_keys (version, root_version, wrapped, created_at) \
         VALUES (?2, ?3, ?4, ?5)"
    } else {
        "INSERT OR REPLACE INTO clinic_keys (clinic_id, version, root_version, wrapped, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)"
    };
    dir.execute(
        sql,
        vec![
            k.clinic.clone().into(),
            k.version.into(),
            k.root_version.into(),
            k.wrapped.clone().into(),
            k.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// How many wrapped keys (clinics' and the region key) each root version
/// wraps: (root version, count).
pub(crate) async fn root_versions_in_use<C: Conn>(dir: &C) -> ApiResult<Vec<(i64, i64)>> {
    let rows = dir
        .query(
            "SELECT root_version, COUNT(*) FROM (SELECT root_version FROM clinic_keys \
             UNION ALL SELECT root_version FROM region_keys) GROUP BY root_version",
            vec![],
        )
        .await?;
    rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
}

/// Up to `limit` wrapped keys (clinics' and the region key) that a root
/// version other than `newest` wraps: (owner, version, root version, wrapped).
pub(crate) async fn wrapped_by_older<C: Conn>(
    dir: &C,
    newest: i64,
    limit: i64,
) -> ApiResult<Vec<(String, i64, i64, Vec<u8>)>> {
    let rows = dir
        .query(
            "SELECT clinic_id, version, root_version, wrapped FROM clinic_keys WHERE root_version <> ?1 \
             UNION ALL SELECT ?2, version, root_version, wrapped FROM region_keys WHERE root_version <> ?1 \
             LIMIT ?3",
            vec![newest.into(), REGION_KEY_OWNER.into(), limit.into()],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?, r.blob(3)?)))
        .collect()
}

/// Replaces one wrapped key by its re-wrap under `root_version`, if it is
/// still wrapped by `old` as read; returns whether it changed.
pub(crate) async fn rewrap<C: Conn>(
    dir: &C,
    owner: &str,
    version: i64,
    old: i64,
    root_version: i64,
    wrapped: Vec<u8>,
) -> ApiResult<bool> {
    let sql = if owner == REGION_KEY_OWNER {
        "UPDATE region_keys SET root_version = ?3, wrapped = ?4 WHERE version = ?2 AND root_version = ?5"
    } else {
        "UPDATE clinic_keys SET root_version = ?3, wrapped = ?4 \
         WHERE clinic_id = ?1 AND version = ?2 AND root_version = ?5"
    };
    let n = dir
        .execute(
            sql,
            vec![
                owner.into(),
                version.into(),
                root_version.into(),
                wrapped.into(),
                old.into(),
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Empties a directory copy of every wrapped key (clinics' and the region
/// key) and rewrites the file, so that no page of it still holds one: a
/// backup's directory carries no key.
pub async fn remove_every_key<C: Conn>(dir: &C) -> ApiResult<()> {
    dir.execute("DELETE FROM clinic_keys", vec![]).await?;
    dir.execute("DELETE FROM region_keys", vec![]).await?;
    dir.execute("VACUUM", vec![]).await?;
    Ok(())
}

/// A stored version number as a key version.
pub(crate) fn version(v: i64) -> ApiResult<u32> {
    u32::try_from(v).map_err(|_| ApiError::internal("a key version out of range"))
}
