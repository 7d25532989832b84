//! `idempotency`: the answers kept for clients' idempotency keys (the rule is
//! [`crate::request::idempotency`]). The id is a blind-index term of user and
//! key; the answer is sealed; rows older than a day are dropped by the next
//! write that keeps one.

use data_encoding::HEXLOWER;

use crate::crypto::blind::TermKind;
use crate::crypto::field::Field;
use crate::error::ApiResult;
use crate::host::{Conn, Value};

use super::table::Kind::SealedSecret;
use super::table::{col, Table};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "idempotency",
    schema: &[
        (
            5,
            r#"
CREATE TABLE idempotency (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    reply BLOB NOT NULL
);
CREATE INDEX idempotency_created ON idempotency(created_at);
"#,
        ),
        // The patient a stored answer is about, so that the purge of a
        // patient removes the answers that hold their demographics.
        (
            6,
            r#"
ALTER TABLE idempotency ADD COLUMN patient_id TEXT;
CREATE INDEX idempotency_patient ON idempotency(patient_id);
"#,
        ),
    ],
    row_key: "id",
    columns: &[col("reply", SealedSecret)],
    export: false,
    counted: false,
    patient: Some("patient_id"),
    reindex: None,
};

const REPLY: Field = Field::new("idempotency", "reply");

/// How long an answer is kept.
pub const KEPT_SECS: i64 = 24 * 60 * 60;

/// The stored answer (its JSON text) under `term` (a user's key), if one
/// was kept after `since`; asked under every key version the clinic holds.
pub(crate) async fn find<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    term: &str,
    since: i64,
) -> ApiResult<Option<String>> {
    let ids: Vec<String> = v
        .lookup_terms(TermKind::Idempotency, term)
        .iter()
        .map(|t| HEXLOWER.encode(t))
        .collect();
    let marks: Vec<String> = (2..ids.len() + 2).map(|i| format!("?{i}")).collect();
    let mut params: Vec<Value> = vec![since.into()];
    params.extend(ids.into_iter().map(Value::Text));
    let rows = db
        .query(
            &format!(
                "SELECT id, reply FROM idempotency WHERE created_at > ?1 AND id IN ({})",
                marks.join(", ")
            ),
            params,
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let id = row.text(0)?;
    Ok(Some(v.open(REPLY, &id, &row.blob(1)?)?))
}

/// Keeps an answer under `term`, naming the patient it is about, and drops
/// answers kept at or before `expired` (queued, in the request's
/// transaction).
pub(crate) async fn keep<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    term: &str,
    answer: &str,
    patient: Option<&str>,
    now: i64,
    expired: i64,
) -> ApiResult<()> {
    let id = HEXLOWER.encode(&v.term(TermKind::Idempotency, term));
    db.execute_later(
        "DELETE FROM idempotency WHERE created_at <= ?1",
        vec![expired.into()],
    )
    .await?;
    db.execute_later(
        "INSERT INTO idempotency (id, created_at, reply, patient_id) VALUES (?1, ?2, ?3, ?4)",
        vec![
            id.clone().into(),
            now.into(),
            v.seal(REPLY, &id, answer).into(),
            patient.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Drops the answers kept at or before `expired` (the scheduled work, so
/// that a clinic with no more keyed writes still forgets them); how many.
pub(crate) async fn expire<C: Conn>(db: &C, expired: i64) -> ApiResult<u64> {
    Ok(db
        .execute(
            "DELETE FROM idempotency WHERE created_at <= ?1",
            vec![expired.into()],
        )
        .await?)
}
