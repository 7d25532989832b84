//! `users`: a clinic's staff accounts. Name, email and TOTP secrets are
//! sealed; the email is found through its blind-index term (unique); role,
//! status and the password's Argon2id hash are plain.

use serde::Serialize;
use utoipa::ToSchema;

use crate::crypto::blind::TermKind;
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Row};
use crate::rbac::Role;
use crate::store::Statement;

use super::table::Kind::{Bool, Sealed, SealedSecret, Secret, Text, Time};
use super::table::{col, Reindex, Table};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "users",
    schema: &[
        (
            1,
            r#"
CREATE TABLE users (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name BLOB NOT NULL,
    email BLOB NOT NULL,
    email_term BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('owner','doctor','nurse','receptionist')),
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    mfa_enabled INTEGER NOT NULL DEFAULT 0,
    totp_secret BLOB,
    totp_pending BLOB,
    totp_last_step INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
        ),
        // Wrong TOTP codes since the user's last sign-in (shown at the next
        // one); a password an owner reset must be changed before anything
        // else.
        (
            6,
            r#"
ALTER TABLE users ADD COLUMN mfa_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_change_required INTEGER NOT NULL DEFAULT 0;
"#,
        ),
    ],
    row_key: "id",
    columns: &[
        col("id", Text),
        col("name", Sealed),
        col("email", Sealed),
        col("role", Text),
        col("active", Bool),
        col("mfa_enabled", Bool),
        col("created_at", Time),
        col("updated_at", Time),
        col("email_term", Secret),
        col("password_hash", Secret),
        col("totp_secret", SealedSecret),
        col("totp_pending", SealedSecret),
    ],
    export: true,
    counted: true,
    patient: None,
    reindex: Some(Reindex {
        when: "email",
        statements: |ix, id, value| {
            let email =
                value("email")?.ok_or_else(|| ApiError::internal("a user without an email"))?;
            Ok(vec![(
                "UPDATE users SET email_term = ?2 WHERE id = ?1".to_owned(),
                vec![id.into(), ix.token(TermKind::Email, &email).into()],
            )])
        },
    }),
};

pub(crate) const NAME: Field = Field::new("users", "name");
pub(crate) const EMAIL: Field = Field::new("users", "email");
const TOTP_SECRET: Field = Field::new("users", "totp_secret");
const TOTP_PENDING: Field = Field::new("users", "totp_pending");

/// Roles a patient can be booked with.
const PRACTITIONER_ROLES: &str = "('owner', 'doctor', 'nurse')";

/// A staff member as the owner sees them.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub mfa_enabled: bool,
    #[serde(skip)]
    pub seq: i64,
}

/// Someone a patient can be booked with, as every role that reads the
/// schedule may see them (no email, no account state).
#[derive(Serialize, ToSchema)]
pub(crate) struct Practitioner {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// A new account's values.
pub(crate) struct NewUser<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

/// What a sign-in needs of an account.
pub(crate) struct Account {
    pub id: String,
    pub role: Role,
    pub active: bool,
    pub password_hash: String,
    pub mfa_enabled: bool,
}

const COLUMNS: &str = "seq, id, name, email, role, active, mfa_enabled";

fn view(v: &Vault<'_>, r: &Row) -> ApiResult<UserView> {
    let id = r.text(1)?;
    Ok(UserView {
        name: v.open(NAME, &id, &r.blob(2)?)?,
        email: v.open(EMAIL, &id, &r.blob(3)?)?,
        role: r.text(4)?,
        active: r.int(5)? == 1,
        mfa_enabled: r.int(6)? == 1,
        seq: r.int(0)?,
        id,
    })
}

fn role(text: &str) -> ApiResult<Role> {
    Role::parse(text).ok_or_else(|| ApiError::internal("unknown role in users"))
}

/// One user; not found if the id is not of this clinic.
pub(crate) async fn load<C: Conn>(db: &C, v: &Vault<'_>, id: &str) -> ApiResult<UserView> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            vec![id.into()],
        )
        .await?;
    view(v, rows.first().ok_or_else(ApiError::not_found)?)
}

/// A page of users after `after` (their `seq`), `limit` of them.
pub(crate) async fn page<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    after: i64,
    limit: i64,
) -> ApiResult<Vec<UserView>> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            vec![after.into(), limit.into()],
        )
        .await?;
    rows.iter().map(|r| view(v, r)).collect()
}

/// The active owners, doctors and nurses.
pub(crate) async fn practitioners<C: Conn>(db: &C, v: &Vault<'_>) -> ApiResult<Vec<Practitioner>> {
    let rows = db
        .query(
            &format!("SELECT id, name, role FROM users WHERE active = 1 AND role IN {PRACTITIONER_ROLES} ORDER BY seq"),
            vec![],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id = r.text(0)?;
            Ok(Practitioner {
                name: v.open(NAME, &id, &r.blob(1)?)?,
                role: r.text(2)?,
                id,
            })
        })
        .collect()
}

/// Every user who sees patients (owners, doctors, nurses), active or not,
/// with their `seq`: the FHIR face's practitioners.
pub(crate) async fn practitioners_all<C: Conn>(
    db: &C,
    v: &Vault<'_>,
) -> ApiResult<Vec<(i64, UserView)>> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE role IN {PRACTITIONER_ROLES} ORDER BY seq"),
            vec![],
        )
        .await?;
    rows.iter().map(|r| Ok((r.int(0)?, view(v, r)?))).collect()
}

/// The statement finding an active practitioner by id (one row if so), for
/// a batch of checks.
pub(crate) fn practitioner_check(id: &str) -> Statement {
    (
        format!(
            "SELECT 1 FROM users WHERE id = ?1 AND active = 1 AND role IN {PRACTITIONER_ROLES}"
        ),
        vec![id.into()],
    )
}

/// The statement finding an account by email (under every key version
/// still in the index), for [`account_from_rows`].
pub(crate) fn find_by_email(v: &Vault<'_>, email: &str) -> Statement {
    crate::store::any_of(
        "SELECT id, role, active, password_hash, mfa_enabled FROM users WHERE email_term IN",
        v.lookup_terms(TermKind::Email, email),
    )
}

pub(crate) fn account_from_rows(rows: &[Row]) -> ApiResult<Option<Account>> {
    rows.first()
        .map(|r| {
            Ok(Account {
                id: r.text(0)?,
                role: role(&r.text(1)?)?,
                active: r.int(2)? == 1,
                password_hash: r.text(3)?,
                mfa_enabled: r.int(4)? == 1,
            })
        })
        .transpose()
}

/// Whether an email is taken, under any key version still in the index
/// (after a rotation the UNIQUE column alone would not see the same email
/// under the old key).
pub(crate) async fn email_taken<C: Conn>(db: &C, v: &Vault<'_>, email: &str) -> ApiResult<bool> {
    let (sql, params) = crate::store::any_of(
        "SELECT 1 FROM users WHERE email_term IN",
        v.lookup_terms(TermKind::Email, email),
    );
    Ok(!db.query(&sql, params).await?.is_empty())
}

/// Writes a new account.
pub(crate) async fn insert<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    u: &NewUser<'_>,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "INSERT INTO users (id, name, email, email_term, role, password_hash, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        vec![
            u.id.into(),
            v.seal(NAME, u.id, u.name).into(),
            v.seal(EMAIL, u.id, u.email).into(),
            v.term(TermKind::Email, u.email).into(),
            u.role.as_str().into(),
            u.password_hash.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Other active owners than `id`.
pub(crate) async fn other_active_owners<C: Conn>(db: &C, id: &str) -> ApiResult<i64> {
    let rows = db
        .query(
            "SELECT COUNT(*) FROM users WHERE role = 'owner' AND active = 1 AND id != ?1",
            vec![id.into()],
        )
        .await?;
    Ok(rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0))
}

/// Changes role and/or status (`None` leaves each as it is).
pub(crate) async fn set_role_and_status<C: Conn>(
    db: &C,
    id: &str,
    role: Option<Role>,
    active: Option<bool>,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "UPDATE users SET role = COALESCE(?2, role), active = COALESCE(?3, active), updated_at = ?4 WHERE id = ?1",
        vec![id.into(), role.map(|r| r.as_str()).into(), active.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// A user's name, email and role (for their session's view).
pub(crate) struct Profile {
    pub name: String,
    pub email: String,
    pub role: String,
    pub mfa_enabled: bool,
    pub password_change_required: bool,
}

/// The statement reading a profile, for a batch: see [`profile_from_rows`].
pub(crate) fn profile(id: &str) -> Statement {
    (
        "SELECT name, email, role, mfa_enabled, password_change_required FROM users WHERE id = ?1"
            .to_owned(),
        vec![id.into()],
    )
}

pub(crate) fn profile_from_rows(v: &Vault<'_>, id: &str, rows: &[Row]) -> ApiResult<Profile> {
    let u = rows
        .first()
        .ok_or_else(|| ApiError::internal("session user vanished"))?;
    profile_of(v, id, u, 0)
}

/// The profile of the account of `email`, for a batch (a sign-in reads it
/// with the account, before knowing its id): see [`profile_by_email_rows`].
pub(crate) fn profile_by_email(v: &Vault<'_>, email: &str) -> Statement {
    crate::store::any_of(
        "SELECT id, name, email, role, mfa_enabled, password_change_required FROM users WHERE email_term IN",
        v.lookup_terms(TermKind::Email, email),
    )
}

/// The profile of user `id` among the rows of [`profile_by_email`].
pub(crate) fn profile_by_email_rows(v: &Vault<'_>, id: &str, rows: &[Row]) -> ApiResult<Profile> {
    for r in rows {
        if r.text(0)? == id {
            return profile_of(v, id, r, 1);
        }
    }
    Err(ApiError::internal(
        "the signed-in user's profile was not read",
    ))
}

/// A profile from its columns in `r`, from column `at` on.
fn profile_of(v: &Vault<'_>, id: &str, r: &Row, at: usize) -> ApiResult<Profile> {
    Ok(Profile {
        name: v.open(NAME, id, &r.blob(at)?)?,
        email: v.open(EMAIL, id, &r.blob(at + 1)?)?,
        role: r.text(at + 2)?,
        mfa_enabled: r.int(at + 3)? == 1,
        password_change_required: r.int(at + 4)? == 1,
    })
}

/// A user's password hash and email (a re-check of the password).
pub(crate) async fn credentials<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
) -> ApiResult<Option<(String, String)>> {
    let rows = db
        .query(
            "SELECT password_hash, email FROM users WHERE id = ?1",
            vec![id.into()],
        )
        .await?;
    rows.first()
        .map(|r| Ok((r.text(0)?, v.open(EMAIL, id, &r.blob(1)?)?)))
        .transpose()
}

/// Sets a new password hash; `temporary`: an owner's reset, to be changed
/// at the user's next sign-in.
pub(crate) async fn set_password<C: Conn>(
    db: &C,
    id: &str,
    hash: &str,
    temporary: bool,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "UPDATE users SET password_hash = ?2, password_change_required = ?3, updated_at = ?4 WHERE id = ?1",
        vec![id.into(), hash.into(), temporary.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Removes a user's TOTP (an owner's reset): they enrol again.
pub(crate) async fn reset_totp<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<()> {
    db.execute(
        "UPDATE users SET mfa_enabled = 0, totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL, \
         mfa_failures = 0, updated_at = ?2 WHERE id = ?1",
        vec![id.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// The TOTP secret in force and the last step a code was used at, if the
/// user has enrolled.
pub(crate) async fn totp_in_force<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
) -> ApiResult<Option<(Vec<u8>, Option<i64>)>> {
    let rows = db
        .query(
            "SELECT totp_secret, totp_last_step FROM users WHERE id = ?1 AND mfa_enabled = 1",
            vec![id.into()],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let Some(sealed) = r.opt_blob(0)? else {
        return Ok(None);
    };
    Ok(Some((
        v.open_bytes(TOTP_SECRET, id, &sealed)?,
        r.opt_int(1)?,
    )))
}

/// Keeps a TOTP secret being enrolled (not yet in force).
pub(crate) async fn set_pending_totp<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
    secret: &[u8],
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "UPDATE users SET totp_pending = ?2, updated_at = ?3 WHERE id = ?1",
        vec![
            id.into(),
            v.seal_bytes(TOTP_PENDING, id, secret).into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The TOTP secret being enrolled, and the last step a code was used at.
pub(crate) async fn pending_totp<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
) -> ApiResult<Option<(Option<Vec<u8>>, Option<i64>)>> {
    let rows = db
        .query(
            "SELECT totp_pending, totp_last_step FROM users WHERE id = ?1",
            vec![id.into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            let pending = r
                .opt_blob(0)?
                .map(|p| v.open_bytes(TOTP_PENDING, id, &p))
                .transpose()?;
            Ok((pending, r.opt_int(1)?))
        })
        .transpose()
}

/// Puts an enrolled TOTP secret in force, the code's step as used.
pub(crate) async fn confirm_totp<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
    secret: &[u8],
    step: i64,
    now: i64,
) -> ApiResult<()> {
    db.execute(
        "UPDATE users SET totp_secret = ?2, totp_pending = NULL, totp_last_step = ?3, mfa_enabled = 1, updated_at = ?4 WHERE id = ?1",
        vec![id.into(), v.seal_bytes(TOTP_SECRET, id, secret).into(), step.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Records the step of a used TOTP code (no code is accepted twice) and
/// forgets the wrong codes before it (the user has been told of them).
pub(crate) async fn use_totp_step<C: Conn>(db: &C, id: &str, step: i64) -> ApiResult<()> {
    db.execute_later(
        "UPDATE users SET totp_last_step = ?2, mfa_failures = 0 WHERE id = ?1",
        vec![id.into(), step.into()],
    )
    .await?;
    Ok(())
}

/// Counts a wrong TOTP code against the user (queued).
pub(crate) async fn count_totp_failure<C: Conn>(db: &C, id: &str) -> ApiResult<()> {
    db.execute_later(
        "UPDATE users SET mfa_failures = mfa_failures + 1 WHERE id = ?1",
        vec![id.into()],
    )
    .await?;
    Ok(())
}

/// What the TOTP step of a sign-in reads of the user.
pub(crate) struct TotpAccount {
    pub role: Role,
    pub active: bool,
    pub secret: Option<Vec<u8>>,
    pub last_step: Option<i64>,
    /// Wrong codes since the user's last sign-in.
    pub failures: i64,
}

/// The TOTP step's view of a user, decrypted.
pub(crate) fn totp_account(
    v: &Vault<'_>,
    id: &str,
    r: &Row,
    first: usize,
) -> ApiResult<TotpAccount> {
    Ok(TotpAccount {
        role: role(&r.text(first)?)?,
        active: r.int(first + 1)? == 1,
        secret: r
            .opt_blob(first + 2)?
            .map(|s| v.open_bytes(TOTP_SECRET, id, &s))
            .transpose()?,
        last_step: r.opt_int(first + 3)?,
        failures: r.int(first + 4)?,
    })
}

/// The columns [`totp_account`] reads, prefixed `u.`.
pub(crate) const TOTP_COLUMNS: &str =
    "u.role, u.active, u.totp_secret, u.totp_last_step, u.mfa_failures";

/// Parses a stored role.
pub(crate) fn parse_role(text: &str) -> ApiResult<Role> {
    role(text)
}
