//! `region_keys`: the region key ([`crate::region_key`]), wrapped by the
//! root key like a clinic's data key.

use crate::error::ApiResult;
use crate::host::Conn;
use crate::records::table::{col, Kind, Table};
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "region_keys",
    schema: &[(
        3,
        r#"
CREATE TABLE region_keys (
    version INTEGER PRIMARY KEY,
    root_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    )],
    row_key: "version",
    columns: &[col("wrapped", Kind::Secret)],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// The newest region key: (version, root version, wrapped, created at).
pub(crate) async fn newest<C: Conn>(dir: &C) -> ApiResult<Option<(i64, i64, Vec<u8>, i64)>> {
    let rows = dir
        .query(
            "SELECT version, root_version, wrapped, created_at FROM region_keys ORDER BY version DESC LIMIT 1",
            vec![],
        )
        .await?;
    rows.first()
        .map(|r| Ok((r.int(0)?, r.int(1)?, r.blob(2)?, r.int(3)?)))
        .transpose()
}

/// Stores the first region key, unless another process stored one first.
pub(crate) async fn insert_first<C: Conn>(
    dir: &C,
    root_version: u32,
    wrapped: Vec<u8>,
    now: i64,
) -> ApiResult<()> {
    dir.execute(
        "INSERT OR IGNORE INTO region_keys (version, root_version, wrapped, created_at) VALUES (1, ?1, ?2, ?3)",
        vec![i64::from(root_version).into(), wrapped.into(), now.into()],
    )
    .await?;
    Ok(())
}
