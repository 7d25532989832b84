//! `staff` and `staff_sessions`: platform staff (support, superadmin) and
//! their support-console sessions. Email and TOTP secret are sealed under
//! the platform key; the email is found through its blind-index term.

use crate::crypto::blind::TermKind;
use crate::crypto::field::Field;
use crate::crypto::keysets::PlatformKeys;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, DbError};
use crate::rbac::StaffRole;
use crate::records::table::Kind::{Sealed, SealedSecret, Secret};
use crate::records::table::{col, Table};
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "staff",
    schema: &[(
        2,
        r#"
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    email BLOB NOT NULL,
    email_term BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('support', 'superadmin')),
    password_hash TEXT NOT NULL,
    totp_secret BLOB NOT NULL,
    totp_last_step INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
"#,
    )],
    row_key: "id",
    columns: &[
        col("email", Sealed),
        col("email_term", Secret),
        col("password_hash", Secret),
        col("totp_secret", SealedSecret),
    ],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

pub const SESSIONS: Table = Table {
    name: "staff_sessions",
    schema: &[(
        2,
        r#"
CREATE TABLE staff_sessions (
    id TEXT PRIMARY KEY,
    staff_id TEXT NOT NULL,
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

const EMAIL: Field = Field::new("staff", "email");
const TOTP: Field = Field::new("staff", "totp_secret");

/// A new staff account's values.
pub(crate) struct NewStaff<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub role: StaffRole,
    pub password_hash: &'a str,
    pub totp_secret: &'a [u8],
}

/// Writes a new account; 409 if the email is taken.
pub(crate) async fn insert<C: Conn>(
    dir: &C,
    keys: &PlatformKeys,
    s: &NewStaff<'_>,
    nonces: [[u8; 12]; 2],
    now: i64,
) -> ApiResult<()> {
    let inserted = dir
        .execute(
            "INSERT INTO staff (id, email, email_term, role, password_hash, totp_secret, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            vec![
                s.id.into(),
                keys.cipher.seal(EMAIL, s.id, s.email.as_bytes(), nonces[0]).into(),
                keys.blind.token(TermKind::Email, s.email).into(),
                s.role.as_str().into(),
                s.password_hash.into(),
                keys.cipher.seal(TOTP, s.id, s.totp_secret, nonces[1]).into(),
                now.into(),
            ],
        )
        .await;
    match inserted {
        Err(DbError::Constraint(_)) => {
            Err(ApiError::conflict("a staff member with this email exists"))
        }
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// An account as its sign-in reads it.
pub(crate) struct Account {
    pub id: String,
    pub role: String,
    pub password_hash: String,
    pub totp_secret: Vec<u8>,
    pub totp_last_step: Option<i64>,
    pub active: bool,
}

/// The account with this email, if any.
pub(crate) async fn find_by_email<C: Conn>(
    dir: &C,
    keys: &PlatformKeys,
    email: &str,
) -> ApiResult<Option<Account>> {
    let rows = dir
        .query(
            "SELECT id, role, password_hash, totp_secret, totp_last_step, active FROM staff WHERE email_term = ?1",
            vec![keys.blind.token(TermKind::Email, email).into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            let id = r.text(0)?;
            Ok(Account {
                role: r.text(1)?,
                password_hash: r.text(2)?,
                totp_secret: keys.cipher.open(TOTP, &id, &r.blob(3)?)?,
                totp_last_step: r.opt_int(4)?,
                active: r.int(5)? == 1,
                id,
            })
        })
        .transpose()
}

/// Records the step of a used TOTP code.
pub(crate) async fn use_totp_step<C: Conn>(dir: &C, id: &str, step: i64) -> ApiResult<()> {
    dir.execute(
        "UPDATE staff SET totp_last_step = ?2 WHERE id = ?1",
        vec![id.into(), step.into()],
    )
    .await?;
    Ok(())
}

/// A new console session.
pub(crate) async fn start_session<C: Conn>(
    dir: &C,
    id: &str,
    staff: &str,
    now: i64,
    expires_at: i64,
) -> ApiResult<()> {
    dir.execute(
        "INSERT INTO staff_sessions (id, staff_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        vec![id.into(), staff.into(), now.into(), expires_at.into()],
    )
    .await?;
    Ok(())
}

/// The active staff member of a live console session: (id, role).
pub(crate) async fn of_session<C: Conn>(
    dir: &C,
    session: &str,
    now: i64,
) -> ApiResult<Option<(String, String)>> {
    let rows = dir
        .query(
            "SELECT st.id, st.role FROM staff_sessions s JOIN staff st ON st.id = s.staff_id \
             WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 AND st.active = 1",
            vec![session.into(), now.into()],
        )
        .await?;
    rows.first()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .transpose()
}
