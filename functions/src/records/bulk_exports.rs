//! `bulk_exports` and `bulk_export_files`: the FHIR Bulk Data exports of a
//! clinic while they wait to be fetched ([`crate::fhir::bulk`]). An export's
//! NDJSON files are kept in parts of at most [`PART_BYTES`], each sealed
//! with the clinic's key like any field (so the files are as unreadable at
//! rest as the record, covered by crypto-shredding and backups, and never
//! leave the region's database), and are gone after [`LIFETIME_SECS`]:
//! refused from then on, removed by the next `maintain`.

use crate::crypto::field::{Field, FieldCipher};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Value};

use super::table::Kind::{Int, SealedSecret, Text, Time};
use super::table::{col, Table};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "bulk_exports",
    schema: &[(
        7,
        r#"
CREATE TABLE bulk_exports (
    id TEXT PRIMARY KEY,
    requested_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed'))
);
"#,
    )],
    row_key: "id",
    columns: &[
        col("id", Text),
        col("requested_by", Text),
        col("created_at", Time),
        col("expires_at", Time),
        col("request", Text),
        col("status", Text),
    ],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

pub const FILES: Table = Table {
    name: "bulk_export_files",
    schema: &[(
        7,
        r#"
CREATE TABLE bulk_export_files (
    id TEXT PRIMARY KEY,
    export_id TEXT NOT NULL,
    type TEXT NOT NULL,
    part INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX bulk_export_files_export ON bulk_export_files(export_id, type, part);
"#,
    )],
    row_key: "id",
    columns: &[
        col("id", Text),
        col("export_id", Text),
        col("type", Text),
        col("part", Int),
        col("lines", Int),
        col("data", SealedSecret),
    ],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

const DATA: Field = Field::new("bulk_export_files", "data");

/// How long an export's files may be fetched.
pub const LIFETIME_SECS: i64 = 3600;
/// Exports a clinic may hold at once: each is a copy of its whole record
/// for an hour, so more would let one owner fill the disk.
pub const MAX_LIVE: i64 = 3;
/// The largest part of a file, before sealing.
pub const PART_BYTES: usize = 256 * 1024;

/// An export as its status shows it.
pub(crate) struct Export {
    pub id: String,
    pub requested_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub request: String,
    pub status: String,
    /// Each file's resource type and how many resources it holds, in the
    /// order written.
    pub files: Vec<(String, i64)>,
}

/// A new export, running.
pub(crate) async fn start<C: Conn>(
    db: &C,
    id: &str,
    requested_by: &str,
    request: &str,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "INSERT INTO bulk_exports (id, requested_by, created_at, expires_at, request, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
        vec![
            id.into(),
            requested_by.into(),
            now.into(),
            (now + LIFETIME_SECS).into(),
            request.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Ends an export: `complete`, or `failed` (its parts removed).
pub(crate) async fn finish<C: Conn>(db: &C, id: &str, ok: bool) -> ApiResult<()> {
    if !ok {
        db.execute(
            "DELETE FROM bulk_export_files WHERE export_id = ?1",
            vec![id.into()],
        )
        .await?;
    }
    db.execute(
        "UPDATE bulk_exports SET status = ?2 WHERE id = ?1",
        vec![id.into(), if ok { "complete" } else { "failed" }.into()],
    )
    .await?;
    Ok(())
}

/// Keeps one part of a file, sealed (queued: it goes with the caller's
/// next statement, its `COMMIT`).
pub(crate) async fn write_part<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    export: &str,
    kind: &str,
    part: i64,
    lines: i64,
    ndjson: &[u8],
) -> ApiResult<()> {
    let id = format!("{export}/{kind}/{part}");
    let sealed = v.seal_bytes(DATA, &id, ndjson);
    db.execute_later(
        "INSERT INTO bulk_export_files (id, export_id, type, part, lines, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        vec![
            id.clone().into(),
            export.into(),
            kind.into(),
            part.into(),
            lines.into(),
            Value::Blob(sealed),
        ],
    )
    .await?;
    Ok(())
}

/// An export not yet expired at `now`, with its files; `None` otherwise.
pub(crate) async fn load<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<Option<Export>> {
    let rows = db
        .query_many(vec![
            (
                "SELECT id, requested_by, created_at, expires_at, request, status \
                 FROM bulk_exports WHERE id = ?1 AND expires_at > ?2"
                    .to_owned(),
                vec![id.into(), now.into()],
            ),
            (
                "SELECT type, SUM(lines), MIN(rowid) FROM bulk_export_files WHERE export_id = ?1 \
                 GROUP BY type ORDER BY MIN(rowid)"
                    .to_owned(),
                vec![id.into()],
            ),
        ])
        .await?;
    let (head, files) = match rows.as_slice() {
        [h, f] => (h, f),
        _ => return Err(ApiError::internal("bulk export: two answers expected")),
    };
    let Some(r) = head.first() else {
        return Ok(None);
    };
    Ok(Some(Export {
        id: r.text(0)?,
        requested_by: r.text(1)?,
        created_at: r.int(2)?,
        expires_at: r.int(3)?,
        request: r.text(4)?,
        status: r.text(5)?,
        files: files
            .iter()
            .map(|f| Ok((f.text(0)?, f.int(1)?)))
            .collect::<ApiResult<_>>()?,
    }))
}

/// The part of a file after `after` (its number), decrypted; `None` past
/// the last.
pub(crate) async fn part<C: Conn>(
    db: &C,
    cipher: &FieldCipher,
    export: &str,
    kind: &str,
    after: i64,
) -> ApiResult<Option<(i64, Vec<u8>)>> {
    let rows = db
        .query(
            "SELECT id, part, data FROM bulk_export_files WHERE export_id = ?1 AND type = ?2 \
             AND part > ?3 ORDER BY part LIMIT 1",
            vec![export.into(), kind.into(), after.into()],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let id = r.text(0)?;
    Ok(Some((r.int(1)?, cipher.open(DATA, &id, &r.blob(2)?)?)))
}

/// The clinic's exports not expired at `now`: how many, and when the
/// first of them expires.
pub(crate) async fn live<C: Conn>(db: &C, now: i64) -> ApiResult<(i64, Option<i64>)> {
    let rows = db
        .query(
            "SELECT count(*), MIN(expires_at) FROM bulk_exports WHERE expires_at > ?1",
            vec![now.into()],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| ApiError::internal("bulk export count"))?;
    Ok((r.int(0)?, r.opt_int(1)?))
}

/// Removes an export and its files.
pub(crate) async fn remove<C: Conn>(db: &C, id: &str) -> ApiResult<()> {
    db.execute(
        "DELETE FROM bulk_export_files WHERE export_id = ?1",
        vec![id.into()],
    )
    .await?;
    db.execute("DELETE FROM bulk_exports WHERE id = ?1", vec![id.into()])
        .await?;
    Ok(())
}

/// Removes every export expired at `now` (the scheduled work); how many.
pub(crate) async fn expire<C: Conn>(db: &C, now: i64) -> ApiResult<u64> {
    db.execute(
        "DELETE FROM bulk_export_files WHERE export_id IN \
         (SELECT id FROM bulk_exports WHERE expires_at <= ?1)",
        vec![now.into()],
    )
    .await?;
    Ok(db
        .execute(
            "DELETE FROM bulk_exports WHERE expires_at <= ?1",
            vec![now.into()],
        )
        .await?)
}
