//! `clinic`: the clinic's own one-row record in its database (its name
//! sealed; id, region and creation time plain).

use crate::clock;
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::ids::ClinicId;

use super::table::Kind::{Sealed, Text, Time};
use super::table::{col, Table};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "clinic",
    schema: &[(
        1,
        r#"
CREATE TABLE clinic (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    name BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    )],
    row_key: "id",
    columns: &[
        col("id", Text),
        col("name", Sealed),
        col("region", Text),
        col("created_at", Time),
    ],
    export: true,
    counted: false,
    patient: None,
    reindex: None,
};

const NAME: Field = Field::new("clinic", "name");

/// The clinic as sessions and sign-up show it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ClinicSummary {
    pub id: String,
    pub name: String,
    pub region: String,
}

/// The clinic's record.
pub(crate) struct Clinic {
    pub summary: ClinicSummary,
    pub created_at: String,
}

/// The statement that reads the record, for a batch: see [`from_rows`].
pub(crate) const SELECT: &str = "SELECT id, name, region, created_at FROM clinic";

/// Writes the record of a new clinic (sign-up).
pub(crate) async fn insert<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    clinic: &ClinicId,
    name: &str,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "INSERT INTO clinic (id, region, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        vec![
            clinic.as_str().into(),
            clinic.region().into(),
            v.seal(NAME, clinic.as_str(), name).into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The record from the rows of [`SELECT`].
pub(crate) fn from_rows(v: &Vault<'_>, rows: &[crate::host::Row]) -> ApiResult<Clinic> {
    let c = rows
        .first()
        .ok_or_else(|| ApiError::internal("clinic row missing"))?;
    let id = c.text(0)?;
    Ok(Clinic {
        summary: ClinicSummary {
            name: v.open(NAME, &id, &c.blob(1)?)?,
            region: c.text(2)?,
            id,
        },
        created_at: clock::rfc3339(c.int(3)?),
    })
}

/// The clinic's record.
pub(crate) async fn load<C: Conn>(db: &C, v: &Vault<'_>) -> ApiResult<Clinic> {
    from_rows(v, &db.query(SELECT, vec![]).await?)
}
