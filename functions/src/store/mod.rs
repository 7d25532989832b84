//! Storage over a host's [`Conn`]: versioned migrations applied on open,
//! transactions, and typed row access. The tables themselves are
//! [`crate::records`]'.

pub mod hrana;
pub mod schema;
pub mod sqld;
pub mod turso;

use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, DbError, Row, Value};

/// Typed access to a result row; a type mismatch is an internal error.
pub trait RowExt {
    fn text(&self, i: usize) -> ApiResult<String>;
    fn opt_text(&self, i: usize) -> ApiResult<Option<String>>;
    fn int(&self, i: usize) -> ApiResult<i64>;
    fn opt_int(&self, i: usize) -> ApiResult<Option<i64>>;
    fn blob(&self, i: usize) -> ApiResult<Vec<u8>>;
    fn opt_blob(&self, i: usize) -> ApiResult<Option<Vec<u8>>>;
}

fn mismatch(i: usize) -> ApiError {
    ApiError::internal(format!("unexpected column type at index {i}"))
}

impl RowExt for Row {
    fn text(&self, i: usize) -> ApiResult<String> {
        self.opt_text(i)?.ok_or_else(|| mismatch(i))
    }
    fn opt_text(&self, i: usize) -> ApiResult<Option<String>> {
        match self.get(i) {
            Some(Value::Text(s)) => Ok(Some(s.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(mismatch(i)),
        }
    }
    fn int(&self, i: usize) -> ApiResult<i64> {
        self.opt_int(i)?.ok_or_else(|| mismatch(i))
    }
    fn opt_int(&self, i: usize) -> ApiResult<Option<i64>> {
        match self.get(i) {
            Some(Value::Integer(n)) => Ok(Some(*n)),
            Some(Value::Null) => Ok(None),
            _ => Err(mismatch(i)),
        }
    }
    fn blob(&self, i: usize) -> ApiResult<Vec<u8>> {
        self.opt_blob(i)?.ok_or_else(|| mismatch(i))
    }
    fn opt_blob(&self, i: usize) -> ApiResult<Option<Vec<u8>>> {
        match self.get(i) {
            Some(Value::Blob(b)) => Ok(Some(b.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(mismatch(i)),
        }
    }
}

/// `<prefix> (?1, ?2, …)` with one parameter per value: a lookup of any of
/// several blind-index terms.
pub fn any_of(prefix: &str, values: Vec<Vec<u8>>) -> (String, Vec<Value>) {
    let marks: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    (
        format!("{prefix} ({})", marks.join(", ")),
        values.into_iter().map(Value::Blob).collect(),
    )
}

/// A statement and its parameters, as a batch carries it.
pub use crate::host::Statement;

/// One schema step.
pub struct Migration {
    pub version: i64,
    pub sql: String,
}

/// Applies every migration newer than the database's version, each in its own
/// write transaction; safe to run concurrently and repeatedly.
pub async fn migrate<C: Conn>(conn: &C, steps: &[Migration]) -> Result<(), DbError> {
    conn.execute_script(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .await?;
    let current = current_version(conn).await?;
    for step in steps.iter().filter(|s| s.version > current) {
        conn.execute("BEGIN IMMEDIATE", vec![]).await?;
        let result = async {
            // Another opener may have applied it while we waited for the lock.
            if current_version(conn).await? >= step.version {
                return Ok(());
            }
            conn.execute_script(&step.sql).await?;
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
                vec![Value::Integer(step.version)],
            )
            .await?;
            Ok(())
        }
        .await;
        finish(conn, result).await?;
    }
    Ok(())
}

/// A statement that fails unless the database's schema is at the newest
/// version of `steps`. Queued (`execute_later`) ahead of a request's first
/// statement, it rides in that statement's round trip, so a host whose
/// instances remember nothing between requests (Spin makes one per request)
/// checks the schema without a round trip of its own. Behind, it fails with
/// SQLite's "integer overflow" (`abs` of the smallest integer); without a
/// schema at all, with "no such table"; see [`schema_behind`].
pub fn schema_guard(steps: &[Migration]) -> String {
    let newest = steps.iter().map(|s| s.version).max().unwrap_or(0);
    format!(
        "SELECT abs(-9223372036854775807 - 1) \
         WHERE (SELECT COALESCE(MAX(version), 0) FROM schema_migrations) < {newest}"
    )
}

/// Whether an error says the database needs [`migrate`] first (see
/// [`DbError::schema_behind`]).
pub fn schema_behind(e: &DbError) -> bool {
    e.schema_behind()
}

async fn current_version<C: Conn>(conn: &C) -> Result<i64, DbError> {
    let rows = conn
        .query(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            vec![],
        )
        .await?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(v)) => Ok(*v),
        _ => Ok(0),
    }
}

/// Commits after success, rolls back after failure; returns the work's result.
pub async fn finish<C: Conn, T, E: From<DbError>>(conn: &C, result: Result<T, E>) -> Result<T, E> {
    match result {
        Ok(v) => {
            if let Err(e) = conn.execute("COMMIT", vec![]).await {
                let _ = conn.execute("ROLLBACK", vec![]).await;
                return Err(e.into());
            }
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK", vec![]).await;
            Err(e)
        }
    }
}
