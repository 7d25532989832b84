//! A whole database copied over a connection, where the operator cannot
//! reach one side as a file (a libSQL server's namespace): a backup of a
//! server's database into a local file, and a restored file into a fresh
//! server. The schema and every row are read inside one read transaction
//! of the source, so the copy is one moment's view as `VACUUM INTO` gives
//! natively, and written into an empty destination in one write
//! transaction, a page of rows per round trip.
//!
//! Each table's rows are counted in the same read transaction and the copy
//! fails unless it wrote exactly that many: a copy is never silently short.

use std::collections::BTreeMap;

use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Value};
use crate::store::RowExt;

/// Rows read per statement (a bounded answer per round trip).
const PAGE: i64 = 500;

/// The schema objects copied: ours only, never SQLite's or the server's own
/// (`sqlite_…`, `libsql_…`, `_litestream…`), and not the automatic indexes
/// that have no SQL (their constraints come with their tables).
const SCHEMA_SQL: &str = "SELECT type, name, sql FROM sqlite_schema \
     WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
     AND name NOT LIKE 'libsql\\_%' ESCAPE '\\' AND name NOT LIKE '\\_litestream%' ESCAPE '\\' \
     ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid";

/// A table or other name from the schema, quoted as an identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How many tables a database holds (a copy's destination must hold none).
pub async fn table_count<C: Conn>(conn: &C) -> ApiResult<i64> {
    let rows = conn
        .query(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            vec![],
        )
        .await?;
    Ok(rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0))
}

/// Copies every table, its rows, and then its indexes and triggers from
/// `src` into `dst`, which must hold no table yet. Returns the rows copied
/// by table.
pub async fn copy_database<S: Conn, D: Conn>(src: &S, dst: &D) -> ApiResult<BTreeMap<String, i64>> {
    src.execute("BEGIN", vec![]).await?;
    let copied = copy_in_read_tx(src, dst).await;
    // A read transaction: nothing to keep, whatever happened.
    let ended = src.execute("ROLLBACK", vec![]).await;
    let copied = copied?;
    ended?;
    Ok(copied)
}

async fn copy_in_read_tx<S: Conn, D: Conn>(src: &S, dst: &D) -> ApiResult<BTreeMap<String, i64>> {
    let schema = src.query(SCHEMA_SQL, vec![]).await?;
    let mut tables = Vec::new();
    let mut later = Vec::new();
    for row in &schema {
        let (kind, name, sql) = (row.text(0)?, row.text(1)?, row.text(2)?);
        if kind == "table" {
            tables.push((name, sql));
        } else {
            later.push(sql);
        }
    }
    if table_count(dst).await? != 0 {
        return Err(ApiError::internal(
            "the copy's destination already holds tables",
        ));
    }
    dst.execute("BEGIN IMMEDIATE", vec![]).await?;
    let written = async {
        let mut copied = BTreeMap::new();
        for (name, sql) in &tables {
            dst.execute_script(sql).await?;
            let n = copy_rows(src, dst, name).await?;
            copied.insert(name.clone(), n);
        }
        for sql in &later {
            dst.execute_script(sql).await?;
        }
        Ok::<_, ApiError>(copied)
    }
    .await;
    match written {
        Ok(copied) => {
            dst.execute("COMMIT", vec![]).await?;
            Ok(copied)
        }
        Err(e) => {
            let _ = dst.execute("ROLLBACK", vec![]).await;
            Err(e)
        }
    }
}

/// One table's rows, a page at a time, checked against its count.
async fn copy_rows<S: Conn, D: Conn>(src: &S, dst: &D, table: &str) -> ApiResult<i64> {
    let t = quoted(table);
    let expected = src
        .query(&format!("SELECT count(*) FROM {t}"), vec![])
        .await?
        .first()
        .ok_or_else(|| ApiError::internal("COUNT returned no row"))?
        .int(0)?;
    let read = format!("SELECT * FROM {t} LIMIT {PAGE} OFFSET ?1");
    let mut written = 0i64;
    loop {
        let rows = src.query(&read, vec![Value::Integer(written)]).await?;
        let Some(width) = rows.first().map(Vec::len) else {
            break;
        };
        let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
        let insert = format!("INSERT INTO {t} VALUES ({})", marks.join(", "));
        let page = rows.len() as i64;
        // A page's inserts travel together: queued, then sent with its last.
        let mut rows = rows.into_iter();
        let last = rows.next_back();
        for row in rows {
            dst.execute_later(&insert, row).await?;
        }
        if let Some(row) = last {
            dst.execute(&insert, row).await?;
        }
        written += page;
        if page < PAGE {
            break;
        }
    }
    if written != expected {
        return Err(ApiError::internal(format!(
            "table {table}: {written} rows copied of {expected}"
        )));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn names_are_quoted_as_identifiers() {
        assert_eq!(quoted("patients"), "\"patients\"");
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }
}
