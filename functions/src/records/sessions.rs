//! `sessions`: server-side sessions of a clinic's users, and the short-lived
//! challenges between the password and the TOTP step of a sign-in (`mfa`).
//! A token is only good while its row is live: not revoked, not past its
//! absolute end, used within the idle limit.

use crate::error::ApiResult;
use crate::host::{Conn, Row};
use crate::rbac::Role;
use crate::store::Statement;

use super::table::Table;
use super::users::{self, TotpAccount};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "sessions",
    schema: &[(
        1,
        r#"
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('session','mfa')),
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions(user_id);
"#,
    )],
    row_key: "id",
    columns: &[],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// What kind of session a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKind {
    /// A signed-in user's session.
    Session,
    /// The password step passed; the TOTP step is due.
    Mfa,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Session => "session",
            SessionKind::Mfa => "mfa",
        }
    }
}

/// A session row and its user, as a request's authentication reads them.
pub(crate) struct Live {
    pub user_id: String,
    pub last_seen: i64,
    pub expires_at: i64,
    pub revoked: bool,
    pub role: Role,
    pub active: bool,
    pub mfa_enabled: bool,
    /// The clinic's setting for the user's role, if any.
    pub role_setting: Option<String>,
    /// An owner reset the password: it must be changed first.
    pub password_change_required: bool,
}

/// The statement reading a session with its user and role setting, for the
/// request's first batch: see [`live_from_rows`].
pub(crate) fn live(session: &str) -> Statement {
    (
        "SELECT s.user_id, s.last_seen, s.expires_at, s.revoked_at, u.role, u.active, u.mfa_enabled, r.permissions, \
         u.password_change_required \
         FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN role_settings r ON r.role = u.role \
         WHERE s.id = ?1 AND s.kind = 'session'"
            .to_owned(),
        vec![session.into()],
    )
}

pub(crate) fn live_from_rows(rows: &[Row]) -> ApiResult<Option<Live>> {
    rows.first()
        .map(|row| {
            Ok(Live {
                user_id: row.text(0)?,
                last_seen: row.int(1)?,
                expires_at: row.int(2)?,
                revoked: row.opt_int(3)?.is_some(),
                role: users::parse_role(&row.text(4)?)?,
                active: row.int(5)? == 1,
                mfa_enabled: row.int(6)? == 1,
                role_setting: row.opt_text(7)?,
                password_change_required: row.int(8)? == 1,
            })
        })
        .transpose()
}

/// Notes the session's use now (queued for the request's commit: nothing
/// in the request reads it back).
pub(crate) async fn touch<C: Conn>(db: &C, session: &str, now: i64) -> ApiResult<()> {
    db.execute_at_commit(
        "UPDATE sessions SET last_seen = ?2 WHERE id = ?1",
        vec![session.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// A new session of `kind` for a user, ending at `expires_at` (queued).
pub(crate) async fn insert<C: Conn>(
    db: &C,
    kind: SessionKind,
    id: &str,
    user: &str,
    now: i64,
    expires_at: i64,
) -> ApiResult<()> {
    db.execute_later(
        "INSERT INTO sessions (id, user_id, kind, created_at, last_seen, expires_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        vec![id.into(), user.into(), kind.as_str().into(), now.into(), expires_at.into()],
    )
    .await?;
    Ok(())
}

/// A TOTP challenge with its user.
pub(crate) struct Challenge {
    pub user_id: String,
    pub expires_at: i64,
    pub revoked: bool,
    pub failures: i64,
    pub user: TotpAccount,
}

/// The challenge `id`, if it exists.
pub(crate) async fn challenge<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
) -> ApiResult<Option<Challenge>> {
    let rows = db
        .query(
            &format!(
                "SELECT s.user_id, s.expires_at, s.revoked_at, s.failures, {} \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1 AND s.kind = 'mfa'",
                users::TOTP_COLUMNS
            ),
            vec![id.into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            let user_id = r.text(0)?;
            Ok(Challenge {
                expires_at: r.int(1)?,
                revoked: r.opt_int(2)?.is_some(),
                failures: r.int(3)?,
                user: users::totp_account(v, &user_id, r, 4)?,
                user_id,
            })
        })
        .transpose()
}

/// Counts a wrong code against a challenge (queued).
pub(crate) async fn count_failure<C: Conn>(db: &C, id: &str) -> ApiResult<()> {
    db.execute_later(
        "UPDATE sessions SET failures = failures + 1 WHERE id = ?1",
        vec![id.into()],
    )
    .await?;
    Ok(())
}

/// Ends one session or challenge (queued).
pub(crate) async fn end_later<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<()> {
    db.execute_later(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1",
        vec![id.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Ends one session.
pub(crate) async fn end<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<()> {
    db.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1",
        vec![id.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Ends every live session of a user, but `except`.
pub(crate) async fn end_all_of<C: Conn>(
    db: &C,
    user: &str,
    except: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    match except {
        Some(keep) => {
            db.execute(
                "UPDATE sessions SET revoked_at = ?3 WHERE user_id = ?1 AND id != ?2 AND revoked_at IS NULL",
                vec![user.into(), keep.into(), now.into()],
            )
            .await?
        }
        None => {
            db.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                vec![user.into(), now.into()],
            )
            .await?
        }
    };
    Ok(())
}
