//! `known_addresses`: the addresses each account signed in from, kept 30
//! days as blind-index terms of email and address (no address is stored). An
//! address's region-wide lock (spraying one password over many accounts)
//! does not shut out a user who signed in from it before: the colleagues
//! behind one clinic's shared address.

use crate::clock;
use crate::crypto::blind::TermKind;
use crate::error::ApiResult;
use crate::host::{Conn, Row};
use crate::store::Statement;

use super::table::Kind::Secret;
use super::table::{col, Table};
use super::vault::Vault;

pub const TABLE: Table = Table {
    name: "known_addresses",
    schema: &[(
        6,
        r#"
CREATE TABLE known_addresses (
    term BLOB PRIMARY KEY,
    until INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    )],
    row_key: "term",
    columns: &[col("term", Secret)],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// How long a sign-in vouches for its address.
pub const KEPT_SECS: i64 = 30 * clock::DAY;

fn term_text(email: &str, address: &str) -> String {
    format!("{email}\u{0}{address}")
}

/// The statement finding whether the account of `email` signed in from
/// `address` within [`KEPT_SECS`] (a row if so), for the sign-in's first
/// batch.
pub(crate) fn check(v: &Vault<'_>, email: &str, address: &str, now: i64) -> Statement {
    let (sql, mut params) = crate::store::any_of(
        "SELECT 1 FROM known_addresses WHERE term IN",
        v.lookup_terms(TermKind::KnownAddress, &term_text(email, address)),
    );
    params.push(now.into());
    (format!("{sql} AND until > ?{}", params.len()), params)
}

/// Whether the rows of [`check`] say yes.
pub(crate) fn known(rows: &[Row]) -> bool {
    !rows.is_empty()
}

/// Notes a sign-in of the account of `email` from `address` (queued, with
/// the sign-in's commit), and forgets addresses past their time.
pub(crate) async fn remember<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    email: &str,
    address: &str,
    now: i64,
) -> ApiResult<()> {
    db.execute_later(
        "DELETE FROM known_addresses WHERE until <= ?1",
        vec![now.into()],
    )
    .await?;
    db.execute_later(
        "INSERT OR REPLACE INTO known_addresses (term, until) VALUES (?1, ?2)",
        vec![
            v.term(TermKind::KnownAddress, &term_text(email, address))
                .into(),
            (now + KEPT_SECS).into(),
        ],
    )
    .await?;
    Ok(())
}
