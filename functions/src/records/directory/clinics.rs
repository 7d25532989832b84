//! `clinics`: every clinic of the region with its status (`active`,
//! `deleting` with its purge time, `purged`), its current data key version
//! and the version its last key sweep finished under.

use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::ids::ClinicId;
use crate::records::table::Table;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "clinics",
    schema: &[
        (
            1,
            r#"
CREATE TABLE clinics (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active','deleting','purged')),
    created_at INTEGER NOT NULL,
    purge_after INTEGER,
    key_version INTEGER NOT NULL
);
"#,
        ),
        (
            3,
            r#"
ALTER TABLE clinics ADD COLUMN swept_version INTEGER NOT NULL DEFAULT 1;
"#,
        ),
        // Whether every sealed value of the clinic is padded (see
        // `crypto::field`); clinics from before padding are swept once.
        (
            4,
            r#"
ALTER TABLE clinics ADD COLUMN padded INTEGER NOT NULL DEFAULT 0;
"#,
        ),
    ],
    row_key: "id",
    columns: &[],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

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
    /// Set while the clinic is scheduled for deletion.
    pub purge_after: Option<i64>,
}

fn parse_id(text: &str) -> ApiResult<ClinicId> {
    ClinicId::parse(text)
        .ok_or_else(|| ApiError::internal("a malformed clinic id in the directory"))
}

/// Every clinic, purged ones included, by id.
pub(crate) async fn all<C: Conn>(dir: &C) -> ApiResult<Vec<ClinicRecord>> {
    let rows = dir
        .query(
            "SELECT id, status, key_version, swept_version, purge_after FROM clinics ORDER BY id",
            vec![],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ClinicRecord {
                id: parse_id(&row.text(0)?)?,
                status: row.text(1)?,
                key_version: row.int(2)?,
                swept_version: row.int(3)?,
                purge_after: row.opt_int(4)?,
            })
        })
        .collect()
}

/// One clinic's record, if the directory has it.
pub(crate) async fn get<C: Conn>(dir: &C, clinic: &ClinicId) -> ApiResult<Option<ClinicRecord>> {
    let rows = dir
        .query(
            "SELECT id, status, key_version, swept_version, purge_after FROM clinics WHERE id = ?1",
            vec![clinic.as_str().into()],
        )
        .await?;
    rows.first()
        .map(|row| {
            Ok(ClinicRecord {
                id: parse_id(&row.text(0)?)?,
                status: row.text(1)?,
                key_version: row.int(2)?,
                swept_version: row.int(3)?,
                purge_after: row.opt_int(4)?,
            })
        })
        .transpose()
}

/// Registers a new clinic, its data key at version 1 (the caller writes the
/// key in the same transaction).
pub(crate) async fn insert<C: Conn>(dir: &C, clinic: &ClinicId, now: i64) -> ApiResult<()> {
    dir.execute(
        "INSERT INTO clinics (id, status, created_at, key_version, padded) VALUES (?1, 'active', ?2, 1, 1)",
        vec![clinic.as_str().into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Schedules an active clinic's deletion; `false` if it was not active.
pub(crate) async fn schedule_deletion<C: Conn>(
    dir: &C,
    clinic: &ClinicId,
    purge_after: i64,
) -> ApiResult<bool> {
    let changed = dir
        .execute(
            "UPDATE clinics SET status = 'deleting', purge_after = ?2 WHERE id = ?1 AND status = 'active'",
            vec![clinic.as_str().into(), purge_after.into()],
        )
        .await?;
    Ok(changed > 0)
}

/// Cancels a scheduled deletion whose time has not come; `false` otherwise.
pub(crate) async fn cancel_deletion<C: Conn>(
    dir: &C,
    clinic: &ClinicId,
    now: i64,
) -> ApiResult<bool> {
    let changed = dir
        .execute(
            "UPDATE clinics SET status = 'active', purge_after = NULL \
             WHERE id = ?1 AND status = 'deleting' AND purge_after > ?2",
            vec![clinic.as_str().into(), now.into()],
        )
        .await?;
    Ok(changed > 0)
}

/// Marks a clinic being deleted as purged (its keys are removed in the same
/// transaction).
pub(crate) async fn mark_purged<C: Conn>(dir: &C, clinic: &ClinicId) -> ApiResult<()> {
    dir.execute(
        "UPDATE clinics SET status = 'purged' WHERE id = ?1 AND status = 'deleting'",
        vec![clinic.as_str().into()],
    )
    .await?;
    Ok(())
}

/// Makes `version` the clinic's current data key version.
pub(crate) async fn set_key_version<C: Conn>(
    dir: &C,
    clinic: &ClinicId,
    version: u32,
) -> ApiResult<()> {
    dir.execute(
        "UPDATE clinics SET key_version = ?2 WHERE id = ?1",
        vec![clinic.as_str().into(), i64::from(version).into()],
    )
    .await?;
    Ok(())
}

/// Records that everything of the clinic is sealed, padded, under
/// `version`, if that is still its current version.
pub(crate) async fn set_swept<C: Conn>(dir: &C, clinic: &ClinicId, version: u32) -> ApiResult<()> {
    dir.execute(
        "UPDATE clinics SET swept_version = ?2, padded = 1 WHERE id = ?1 AND key_version = ?2",
        vec![clinic.as_str().into(), i64::from(version).into()],
    )
    .await?;
    Ok(())
}

/// Active clinics whose last rotation's sweep is unfinished, or with
/// values sealed before padding.
pub(crate) async fn unswept<C: Conn>(dir: &C) -> ApiResult<Vec<ClinicId>> {
    let rows = dir
        .query(
            "SELECT id FROM clinics WHERE status = 'active' AND (swept_version < key_version OR padded = 0) ORDER BY id",
            vec![],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.text(0).ok().and_then(|t| ClinicId::parse(&t)))
        .collect())
}
