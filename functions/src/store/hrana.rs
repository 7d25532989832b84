//! A libSQL connection over Hrana 3 (JSON over HTTP, `POST /v3/pipeline`), for
//! hosts whose clinic databases live on a libSQL server (sqld or Turso).
//!
//! The host gives the HTTP sender ([`Transport`]); this module speaks the
//! protocol. A transaction holds the server stream (the baton) from `BEGIN`
//! to `COMMIT`/`ROLLBACK`, which ends the stream in the same round trip.
//! Statements queued with [`Conn::execute_later`] travel with the next
//! statement as one conditional batch, so a request's `BEGIN`, its writes,
//! its audit entry and its `COMMIT` cost as few round trips as the work allows.
//!
//! Why not the `libsql` crate's own Hrana client: its `wasm` client sends a
//! `describe` request before every statement (two round trips each) and has
//! no way to queue writes or batch queries; a request here costs four to six
//! round trips in all (the README's Worker section has the counts).

use std::future::Future;
use std::sync::Mutex;

use data_encoding::{BASE64, BASE64_NOPAD};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::host::{Conn, DbError, Row, Value};

/// An HTTP request as the host can send it.
pub trait Transport: Send + Sync {
    /// Sends `body` to `url` with `method` (`POST`, `DELETE`) and `headers`;
    /// returns the status and body, or a message when nothing came back
    /// (refused, reset, timed out).
    fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), String>> + Send;
}

/// Where one database lives on a libSQL server.
#[derive(Clone)]
pub struct Endpoint {
    /// Base URL of the server (`http://127.0.0.1:8090`, `https://db-org.turso.io`).
    pub url: String,
    /// sqld namespace, sent as `x-namespace-bin`; `None` for a server whose
    /// URL names the database (Turso).
    pub namespace: Option<String>,
    /// Bearer token, where the server requires one.
    pub auth_token: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Endpoint {
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        if let Some(ns) = &self.namespace {
            h.push(("x-namespace-bin", BASE64_NOPAD.encode(ns.as_bytes())));
        }
        if let Some(t) = &self.auth_token {
            h.push(("authorization", format!("Bearer {t}")));
        }
        h
    }
}

/// One statement to send.
struct Stmt {
    sql: String,
    args: Vec<Value>,
}

#[derive(Default)]
struct State {
    /// The open stream, while a transaction is open.
    baton: Option<String>,
    /// Statements queued by `execute_later`, sent before the next one.
    pending: Vec<Stmt>,
}

/// A connection to one database over Hrana.
pub struct HranaConn<T: Transport> {
    transport: T,
    endpoint: Endpoint,
    state: Mutex<State>,
}

impl<T: Transport> HranaConn<T> {
    pub fn new(transport: T, endpoint: Endpoint) -> Self {
        HranaConn {
            transport,
            endpoint,
            state: Mutex::new(State::default()),
        }
    }

    fn take_state(&self) -> (Option<String>, Vec<Stmt>) {
        match self.state.lock() {
            Ok(mut s) => (s.baton.take(), std::mem::take(&mut s.pending)),
            Err(_) => (None, Vec::new()),
        }
    }

    fn put_baton(&self, baton: Option<String>) {
        if let Ok(mut s) = self.state.lock() {
            s.baton = baton;
        }
    }

    /// Sends the queued statements and then `stmts` as one batch, each step
    /// run only if the one before it succeeded. Returns the results of
    /// `stmts`.
    async fn run(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, DbError> {
        let (baton, mut steps) = self.take_state();
        let ends_tx = stmts.last().is_some_and(|s| ends_transaction(&s.sql));
        let starts_tx = steps
            .iter()
            .chain(stmts.iter())
            .any(|s| starts_transaction(&s.sql));
        let wanted = stmts.len();
        steps.extend(stmts);
        if steps.is_empty() {
            self.put_baton(baton);
            return Ok(Vec::new());
        }
        let in_tx = (baton.is_some() || starts_tx) && !ends_tx;
        let n = steps.len();
        let batch: Vec<Json> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let condition = match i {
                    0 => Json::Null,
                    _ => json!({"type": "ok", "step": i - 1}),
                };
                json!({"condition": condition, "stmt": stmt_json(s)})
            })
            .collect();
        let mut requests = vec![json!({"type": "batch", "batch": {"steps": batch}})];
        if !in_tx {
            requests.push(json!({"type": "close"}));
        }
        let body = json!({"baton": baton, "requests": requests});
        let resp = self.pipeline(body).await?;
        self.put_baton(if in_tx { resp.baton } else { None });
        let first = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| DbError::Other("empty pipeline response".into()))?;
        let batch: BatchResult = match first {
            PipelineResult::Ok { response } => match response {
                Response::Batch { result } => result,
                _ => return Err(DbError::Other("unexpected pipeline response".into())),
            },
            PipelineResult::Error { error } => return Err(error.into_db_error()),
        };
        // The first failed step is the batch's failure; later steps did not
        // run. As with a local connection, an open transaction stays open
        // until the caller ends it.
        if let Some(e) = batch.step_errors.into_iter().flatten().next() {
            return Err(e.into_db_error());
        }
        let mut results = batch.step_results;
        if results.len() != n {
            return Err(DbError::Other("a batch step did not run".into()));
        }
        results
            .drain(n - wanted..)
            .map(|r| r.ok_or_else(|| DbError::Other("a batch step did not run".into())))
            .collect()
    }

    async fn run_one(&self, stmt: Stmt) -> Result<StmtResult, DbError> {
        self.run(vec![stmt])
            .await?
            .pop()
            .ok_or_else(|| DbError::Other("a batch step did not run".into()))
    }

    async fn pipeline(&self, body: Json) -> Result<PipelineResponse, DbError> {
        let url = format!("{}/v3/pipeline", self.endpoint.url.trim_end_matches('/'));
        let bytes = serde_json::to_vec(&body).map_err(|e| DbError::Other(e.to_string()))?;
        let (status, body) = self
            .transport
            .send("POST", &url, self.endpoint.headers(), bytes)
            .await
            .map_err(DbError::Unavailable)?;
        match status {
            200 => serde_json::from_slice(&body)
                .map_err(|e| DbError::Other(format!("malformed Hrana response: {e}"))),
            404 => Err(DbError::NotFound),
            s if s >= 500 || s == 429 => {
                Err(DbError::Unavailable(format!("libSQL server answered {s}")))
            }
            s => {
                let text = String::from_utf8_lossy(&body);
                if text.contains("doesn't exist") {
                    Err(DbError::NotFound)
                } else {
                    Err(DbError::Other(format!(
                        "libSQL server answered {s}: {}",
                        text.chars().take(200).collect::<String>()
                    )))
                }
            }
        }
    }

    /// Runs statements without parameters, in order, in one round trip.
    async fn sequence(&self, sql: &str) -> Result<(), DbError> {
        let steps: Vec<Stmt> = split_script(sql)
            .into_iter()
            .map(|s| Stmt {
                sql: s.to_owned(),
                args: Vec::new(),
            })
            .collect();
        self.run(steps).await.map(|_| ())
    }
}

fn rows(r: StmtResult) -> Result<Vec<Row>, DbError> {
    r.rows
        .into_iter()
        .map(|row| row.into_iter().map(from_hrana).collect())
        .collect()
}

impl<T: Transport> Conn for HranaConn<T> {
    fn query(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send {
        let stmt = Stmt {
            sql: sql.to_owned(),
            args: params,
        };
        async move { rows(self.run_one(stmt).await?) }
    }

    fn query_many(
        &self,
        statements: Vec<(String, Vec<Value>)>,
    ) -> impl Future<Output = Result<Vec<Vec<Row>>, DbError>> + Send {
        let stmts: Vec<Stmt> = statements
            .into_iter()
            .map(|(sql, args)| Stmt { sql, args })
            .collect();
        async move { self.run(stmts).await?.into_iter().map(rows).collect() }
    }

    fn execute(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, DbError>> + Send {
        let stmt = Stmt {
            sql: sql.to_owned(),
            args: params,
        };
        async move { Ok(self.run_one(stmt).await?.affected_row_count) }
    }

    fn execute_later(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        if let Ok(mut s) = self.state.lock() {
            s.pending.push(Stmt {
                sql: sql.to_owned(),
                args: params,
            });
        }
        async { Ok(()) }
    }

    fn execute_script(&self, sql: &str) -> impl Future<Output = Result<(), DbError>> + Send {
        let sql = sql.to_owned();
        async move { self.sequence(&sql).await }
    }
}

fn first_word(sql: &str) -> String {
    sql.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn starts_transaction(sql: &str) -> bool {
    first_word(sql) == "BEGIN"
}

fn ends_transaction(sql: &str) -> bool {
    matches!(first_word(sql).as_str(), "COMMIT" | "ROLLBACK" | "END")
}

/// Splits a migration script at `;` outside quotes, string literals and
/// `BEGIN … END` trigger bodies.
fn split_script(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut depth, mut quote) = (0, 0i32, None::<char>);
    let bytes: Vec<(usize, char)> = sql.char_indices().collect();
    let mut word = String::new();
    for &(i, c) in &bytes {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            word.push(c.to_ascii_uppercase());
            continue;
        }
        match word.as_str() {
            "BEGIN" | "CASE" => depth += 1,
            "END" => depth -= 1,
            _ => {}
        }
        word.clear();
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            ';' if depth <= 0 => {
                let s = sql[start..i].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = i + 1;
                depth = 0;
            }
            _ => {}
        }
    }
    let s = sql[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

fn stmt_json(s: &Stmt) -> Json {
    json!({
        "sql": s.sql,
        "args": s.args.iter().map(to_hrana).collect::<Vec<_>>(),
        "want_rows": true,
    })
}

fn to_hrana(v: &Value) -> Json {
    match v {
        Value::Null => json!({"type": "null"}),
        Value::Integer(i) => json!({"type": "integer", "value": i.to_string()}),
        Value::Real(f) => json!({"type": "float", "value": f}),
        Value::Text(t) => json!({"type": "text", "value": t}),
        Value::Blob(b) => json!({"type": "blob", "base64": BASE64.encode(b)}),
    }
}

fn from_hrana(v: HranaValue) -> Result<Value, DbError> {
    let bad = || DbError::Other("malformed value in Hrana response".into());
    Ok(match v {
        HranaValue::Null => Value::Null,
        HranaValue::Integer { value } => Value::Integer(value.parse().map_err(|_| bad())?),
        HranaValue::Float { value } => Value::Real(value),
        HranaValue::Text { value } => Value::Text(value),
        HranaValue::Blob { base64 } => Value::Blob(
            data_encoding::BASE64_NOPAD
                .decode(base64.trim_end_matches('=').as_bytes())
                .map_err(|_| bad())?,
        ),
    })
}

#[derive(Deserialize)]
struct PipelineResponse {
    baton: Option<String>,
    results: Vec<PipelineResult>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PipelineResult {
    Ok { response: Response },
    Error { error: HranaError },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Response {
    Batch {
        result: BatchResult,
    },
    /// `close` and anything else: not read.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BatchResult {
    step_results: Vec<Option<StmtResult>>,
    step_errors: Vec<Option<HranaError>>,
}

#[derive(Deserialize, Default)]
struct StmtResult {
    #[serde(default)]
    rows: Vec<Vec<HranaValue>>,
    #[serde(default)]
    affected_row_count: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum HranaValue {
    Null,
    Integer { value: String },
    Float { value: f64 },
    Text { value: String },
    Blob { base64: String },
}

#[derive(Deserialize)]
struct HranaError {
    message: String,
    #[serde(default)]
    code: Option<String>,
}

impl HranaError {
    fn into_db_error(self) -> DbError {
        let code = self.code.unwrap_or_default();
        if code.starts_with("SQLITE_CONSTRAINT") || self.message.contains("constraint failed") {
            DbError::Constraint(self.message)
        } else if code == "SQLITE_BUSY" || code.contains("STREAM_EXPIRED") {
            DbError::Unavailable(self.message)
        } else if code == "SQLITE_FULL" {
            DbError::Full(self.message)
        } else {
            DbError::Other(format!("{code}: {}", self.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_outside_triggers_and_strings() {
        let s = "CREATE TABLE a (x TEXT DEFAULT ';');\n\
                 CREATE TRIGGER t BEFORE UPDATE ON a BEGIN SELECT RAISE(ABORT, 'no; never'); END;\n\
                 CREATE INDEX i ON a (x)";
        let parts = split_script(s);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[1].starts_with("CREATE TRIGGER") && parts[1].ends_with("END"));
    }

    #[test]
    fn values_round_trip_through_the_wire_shape() {
        for v in [
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(1.5),
            Value::Text("ناصر".into()),
            Value::Blob(vec![0, 1, 254, 255]),
        ] {
            let wire: HranaValue = serde_json::from_value(to_hrana(&v)).unwrap();
            assert_eq!(from_hrana(wire).unwrap(), v);
        }
    }

    #[test]
    fn transaction_words() {
        assert!(starts_transaction("  begin immediate"));
        assert!(ends_transaction("COMMIT"));
        assert!(ends_transaction("rollback"));
        assert!(!ends_transaction("SELECT 1"));
    }
}
