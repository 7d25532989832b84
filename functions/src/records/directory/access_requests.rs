//! `access_requests`: support's requests to reach a clinic under a ticket,
//! and what became of each (`pending`, `approved` by an owner, `used` by
//! the one session an approval allows). The reason is sealed under the
//! platform key.

use crate::crypto::field::Field;
use crate::crypto::keysets::PlatformKeys;
use crate::error::ApiResult;
use crate::host::Conn;
use crate::ids::ClinicId;
use crate::records::table::Kind::Sealed;
use crate::records::table::{col, Table};
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "access_requests",
    schema: &[(
        2,
        r#"
CREATE TABLE access_requests (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    clinic_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    ticket TEXT NOT NULL,
    reason BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'used')),
    created_at INTEGER NOT NULL,
    approved_by TEXT,
    approved_at INTEGER,
    session_id TEXT,
    session_expires_at INTEGER
);
CREATE INDEX access_requests_clinic ON access_requests(clinic_id, seq);
"#,
    )],
    row_key: "id",
    columns: &[col("reason", Sealed)],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

const REASON: Field = Field::new("access_requests", "reason");

/// A request, its reason decrypted.
pub(crate) struct Request {
    pub id: String,
    pub staff_id: String,
    pub ticket: String,
    pub reason: String,
    pub status: String,
    pub created_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub session_expires_at: Option<i64>,
}

/// Writes a new pending request.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert<C: Conn>(
    dir: &C,
    keys: &PlatformKeys,
    id: &str,
    clinic: &ClinicId,
    staff: &str,
    ticket: &str,
    reason: &str,
    nonce: [u8; 12],
    now: i64,
) -> ApiResult<()> {
    dir.execute(
        "INSERT INTO access_requests (id, clinic_id, staff_id, ticket, reason, status, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
        vec![
            id.into(),
            clinic.as_str().into(),
            staff.into(),
            ticket.into(),
            keys.cipher.seal(REASON, id, reason.as_bytes(), nonce).into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The clinic's newest 200 requests, newest first.
pub(crate) async fn of_clinic<C: Conn>(
    dir: &C,
    keys: &PlatformKeys,
    clinic: &ClinicId,
) -> ApiResult<Vec<Request>> {
    let rows = dir
        .query(
            "SELECT id, staff_id, ticket, reason, status, created_at, approved_by, approved_at, session_expires_at \
             FROM access_requests WHERE clinic_id = ?1 ORDER BY seq DESC LIMIT 200",
            vec![clinic.as_str().into()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id = r.text(0)?;
            let reason = keys.cipher.open(REASON, &id, &r.blob(3)?)?;
            Ok(Request {
                staff_id: r.text(1)?,
                ticket: r.text(2)?,
                reason: String::from_utf8_lossy(&reason).into_owned(),
                status: r.text(4)?,
                created_at: r.int(5)?,
                approved_by: r.opt_text(6)?,
                approved_at: r.opt_int(7)?,
                session_expires_at: r.opt_int(8)?,
                id,
            })
        })
        .collect()
}

/// Approves a pending request of the clinic; `false` if there is none.
pub(crate) async fn approve<C: Conn>(
    dir: &C,
    id: &str,
    clinic: &ClinicId,
    owner: &str,
    now: i64,
) -> ApiResult<bool> {
    let changed = dir
        .execute(
            "UPDATE access_requests SET status = 'approved', approved_by = ?3, approved_at = ?4 \
             WHERE id = ?1 AND clinic_id = ?2 AND status = 'pending'",
            vec![id.into(), clinic.as_str().into(), owner.into(), now.into()],
        )
        .await?;
    Ok(changed > 0)
}

/// Whether the clinic has a request of this id (in any state).
pub(crate) async fn exists<C: Conn>(dir: &C, id: &str, clinic: &ClinicId) -> ApiResult<bool> {
    let rows = dir
        .query(
            "SELECT 1 FROM access_requests WHERE id = ?1 AND clinic_id = ?2",
            vec![id.into(), clinic.as_str().into()],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// A request as its requester sees it before starting a session.
pub(crate) struct Own {
    pub clinic_id: String,
    pub ticket: String,
    pub status: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
}

/// The staff member's own request of this id.
pub(crate) async fn own<C: Conn>(dir: &C, id: &str, staff: &str) -> ApiResult<Option<Own>> {
    let rows = dir
        .query(
            "SELECT clinic_id, ticket, status, approved_by, approved_at FROM access_requests \
             WHERE id = ?1 AND staff_id = ?2",
            vec![id.into(), staff.into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(Own {
                clinic_id: r.text(0)?,
                ticket: r.text(1)?,
                status: r.text(2)?,
                approved_by: r.opt_text(3)?,
                approved_at: r.opt_int(4)?,
            })
        })
        .transpose()
}

/// Marks an approved request used by `session`; `false` if it was not
/// approved (used meanwhile). The caller holds the transaction.
pub(crate) async fn mark_used<C: Conn>(
    dir: &C,
    id: &str,
    session: &str,
    expires_at: i64,
) -> ApiResult<bool> {
    let used = dir
        .execute(
            "UPDATE access_requests SET status = 'used', session_id = ?2, session_expires_at = ?3 \
             WHERE id = ?1 AND status = 'approved'",
            vec![id.into(), session.into(), expires_at.into()],
        )
        .await?;
    Ok(used == 1)
}
