//! `role_settings`: what a clinic's owner changed of the nurses' and the
//! receptionists' rights (see [`crate::rbac::effective`]); a role without a
//! row holds its defaults.

use crate::error::ApiResult;
use crate::host::Conn;
use crate::rbac::{Grants, Role};

use super::table::Kind::{Text, Time};
use super::table::{col, Table};
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "role_settings",
    schema: &[(
        4,
        r#"
CREATE TABLE role_settings (
    role TEXT PRIMARY KEY CHECK (role IN ('nurse', 'receptionist')),
    permissions TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
    )],
    row_key: "role",
    columns: &[
        col("role", Text),
        col("permissions", Text),
        col("updated_by", Text),
        col("updated_at", Time),
    ],
    export: true,
    counted: false,
    patient: None,
    reindex: None,
};

/// Every stored setting: (role name, stored permissions).
pub(crate) async fn all<C: Conn>(db: &C) -> ApiResult<Vec<(String, String)>> {
    let rows = db
        .query("SELECT role, permissions FROM role_settings", vec![])
        .await?;
    rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
}

/// Stores a role's rights (`None`: back to its defaults). Queued.
pub(crate) async fn set<C: Conn>(
    db: &C,
    role: Role,
    grants: Option<Grants>,
    by: &str,
    now: i64,
) -> ApiResult<()> {
    match grants {
        None => {
            db.execute_later(
                "DELETE FROM role_settings WHERE role = ?1",
                vec![role.as_str().into()],
            )
            .await?
        }
        Some(g) => {
            db.execute_later(
                "INSERT INTO role_settings (role, permissions, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (role) DO UPDATE SET permissions = ?2, updated_by = ?3, updated_at = ?4",
                vec![role.as_str().into(), g.encode().into(), by.into(), now.into()],
            )
            .await?
        }
    }
    Ok(())
}
