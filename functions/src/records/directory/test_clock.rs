//! `test_clock`: per-clinic clock offsets that tests move forward
//! (`POST /__test/clock`, test hooks only), so that suites cross idle
//! timeouts, TOTP steps and grace periods without sleeping.

use crate::error::ApiResult;
use crate::host::Conn;
use crate::ids::ClinicId;
use crate::records::table::Table;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "test_clock",
    schema: &[(
        1,
        r#"
CREATE TABLE test_clock (
    clinic_id TEXT PRIMARY KEY,
    offset_secs INTEGER NOT NULL
);
"#,
    )],
    row_key: "clinic_id",
    columns: &[],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// The clinic's offset in seconds (0 when it has none).
pub(crate) async fn offset<C: Conn>(dir: &C, clinic: &ClinicId) -> ApiResult<i64> {
    let rows = dir
        .query(
            "SELECT offset_secs FROM test_clock WHERE clinic_id = ?1",
            vec![clinic.as_str().into()],
        )
        .await?;
    Ok(match rows.first() {
        Some(row) => row.int(0)?,
        None => 0,
    })
}

/// Moves the clinic's clock forward; returns its new offset.
pub(crate) async fn advance<C: Conn>(dir: &C, clinic: &ClinicId, secs: i64) -> ApiResult<i64> {
    let rows = dir
        .query(
            "INSERT INTO test_clock (clinic_id, offset_secs) VALUES (?1, ?2) \
             ON CONFLICT (clinic_id) DO UPDATE SET offset_secs = offset_secs + ?2 RETURNING offset_secs",
            vec![clinic.as_str().into(), secs.into()],
        )
        .await?;
    Ok(rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0))
}
