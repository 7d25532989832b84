//! `support_sessions`: the 30-minute sessions support staff start inside a
//! clinic under an approved ticket.

use crate::error::ApiResult;
use crate::host::Conn;
use crate::records::table::Table;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "support_sessions",
    schema: &[(
        2,
        r#"
CREATE TABLE support_sessions (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    ticket TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
"#,
    )],
    row_key: "id",
    columns: &[],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// A new support session's values.
pub(crate) struct NewSession<'a> {
    pub id: &'a str,
    pub request_id: &'a str,
    pub staff_id: &'a str,
    pub clinic_id: &'a str,
    pub ticket: &'a str,
    pub approved_by: &'a str,
    pub expires_at: i64,
}

/// Writes a new session (the caller holds the transaction that marks its
/// request used).
pub(crate) async fn insert<C: Conn>(dir: &C, s: &NewSession<'_>, now: i64) -> ApiResult<()> {
    dir.execute(
        "INSERT INTO support_sessions (id, request_id, staff_id, clinic_id, ticket, approved_by, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        vec![
            s.id.into(),
            s.request_id.into(),
            s.staff_id.into(),
            s.clinic_id.into(),
            s.ticket.into(),
            s.approved_by.into(),
            now.into(),
            s.expires_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// A session with its staff member's status.
pub(crate) struct Live {
    pub staff_id: String,
    pub clinic_id: String,
    pub ticket: String,
    pub approved_by: String,
    pub expires_at: i64,
    pub revoked: bool,
    pub staff_active: bool,
}

pub(crate) async fn get<C: Conn>(dir: &C, id: &str) -> ApiResult<Option<Live>> {
    let rows = dir
        .query(
            "SELECT s.staff_id, s.clinic_id, s.ticket, s.approved_by, s.expires_at, s.revoked_at, st.active \
             FROM support_sessions s JOIN staff st ON st.id = s.staff_id WHERE s.id = ?1",
            vec![id.into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(Live {
                staff_id: r.text(0)?,
                clinic_id: r.text(1)?,
                ticket: r.text(2)?,
                approved_by: r.text(3)?,
                expires_at: r.int(4)?,
                revoked: r.opt_int(5)?.is_some(),
                staff_active: r.int(6)? == 1,
            })
        })
        .transpose()
}

/// Ends a session early (logout).
pub(crate) async fn end<C: Conn>(dir: &C, id: &str, now: i64) -> ApiResult<()> {
    dir.execute(
        "UPDATE support_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        vec![id.into(), now.into()],
    )
    .await?;
    Ok(())
}
