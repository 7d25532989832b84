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
//! A request's work runs optimistically ([`Conn::begin_work`] with a
//! version): each read batch is a snapshot of its own (`BEGIN` … `COMMIT`
//! in one batch), the first one also reads the version; the writes wait
//! for the `COMMIT`, which is one batch — `BEGIN IMMEDIATE`, the version
//! check, the writes, `COMMIT`, and a `ROLLBACK` conditioned on the commit
//! failing — so the write lock lives only inside the server, and an
//! instance that dies mid-request leaves nothing locked. Reads the request
//! declared ahead ([`Conn::prefetch`]) ride in the first read batch, and a
//! later query of one of them is answered from it.
//!
//! Why not the `libsql` crate's own Hrana client: its `wasm` client sends a
//! `describe` request before every statement (two round trips each) and has
//! no way to queue writes or batch queries; a request here costs three
//! round trips, two of them one after another (docs/deploy-worker.md has
//! the counts).

use std::future::Future;
use std::sync::Mutex;

use data_encoding::{BASE64, BASE64_NOPAD};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::host::{AppendTurn, Conn, DbError, Row, Statement, Value};

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
#[derive(Clone, PartialEq)]
struct Stmt {
    sql: String,
    args: Vec<Value>,
}

impl Stmt {
    fn new(sql: &str) -> Self {
        Stmt {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }
}

/// The work between `BEGIN` and `COMMIT`, run optimistically
/// ([`Conn::begin_work`]).
struct Optimistic {
    /// The query of the version.
    version_sql: &'static str,
    /// The version the first read saw.
    seen: Option<i64>,
}

#[derive(Default)]
struct State {
    /// The open stream, while a transaction is open on the server.
    baton: Option<String>,
    /// Statements queued by `execute_later`, sent before the next one (in
    /// optimistic work: with the `COMMIT`).
    pending: Vec<Stmt>,
    /// In optimistic work: writes for the commit that nothing reads back
    /// ([`Conn::execute_at_commit`]); they make no read take the lock.
    at_commit: Vec<Stmt>,
    /// In optimistic work: checks queued before it began (the schema
    /// guard), sent ahead of the next batch of any kind.
    checks: Vec<Stmt>,
    /// Set while work runs optimistically.
    optimistic: Option<Optimistic>,
    /// In optimistic work: reads the request declared it will make
    /// ([`Conn::prefetch`]), to ride with the next read batch.
    prefetch: Vec<Stmt>,
    /// Their answers, in the snapshot of the first read (the one whose
    /// version the commit checks), until asked for or the work ends.
    prefetched: Vec<(Stmt, StmtResult)>,
}

impl State {
    /// The answers of `stmts` if every one was prefetched (each answer is
    /// given once).
    fn take_prefetched(&mut self, stmts: &[Stmt]) -> Option<Vec<StmtResult>> {
        let all = stmts
            .iter()
            .all(|s| self.prefetched.iter().any(|(p, _)| p == s));
        if !all || stmts.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            let i = self.prefetched.iter().position(|(p, _)| p == s)?;
            out.push(self.prefetched.swap_remove(i).1);
        }
        Some(out)
    }

    /// Work holding the lock from its first batch (not optimistic): its
    /// `BEGIN IMMEDIATE` waits for that batch, or the stream is open.
    fn locked_work(&self) -> bool {
        self.optimistic.is_none()
            && (self.baton.is_some()
                || self
                    .pending
                    .first()
                    .is_some_and(|p| starts_transaction(&p.sql)))
    }

    /// Whether declared reads can ride with the next batch: optimistic
    /// work before its lock, or locked work before its first batch.
    fn takes_prefetch(&self) -> bool {
        self.baton.is_none() && (self.optimistic.is_some() || self.locked_work())
    }

    /// The work ended: nothing queued or prefetched is kept.
    fn end_work(&mut self) {
        self.optimistic = None;
        self.prefetch.clear();
        self.prefetched.clear();
    }
}

/// Moves of the chain [`HranaConn::run_appending`] meets before it gives
/// up (503, nothing written).
const REBASES: usize = 32;
/// Moves after which it claims the chain's turn.
const CLAIM_AFTER: usize = 3;
/// Its tries in all, moves and another's turns alike.
const TRIES: usize = 160;

/// What one batch asks of the server: its steps, each run only if the one
/// before it succeeded, and optionally a last `ROLLBACK` run only if step
/// `rollback_unless` did not succeed.
struct Batch {
    steps: Vec<Stmt>,
    rollback_unless: Option<usize>,
    /// Run after that `ROLLBACK`, under the same condition: what the
    /// caller needs to try again (the chain's new head).
    then_read: Option<Stmt>,
}

/// A batch's outcome: each step's result, or the first step that failed
/// (its index and error).
struct Outcome {
    results: Vec<Option<StmtResult>>,
    failed: Option<(usize, DbError)>,
}

/// A connection to one database over Hrana.
pub struct HranaConn<T: Transport> {
    transport: T,
    endpoint: Endpoint,
    state: Mutex<State>,
}

/// How a call on an optimistic connection is sent.
enum Route {
    /// Read ahead already ([`Conn::prefetch`]).
    Answered(Vec<StmtResult>),
    /// As the caller sends it (a transaction already open, or none begun).
    Plain,
    /// Reads alone, in a snapshot of their own.
    Read,
    /// The lock from here to `COMMIT`, the version checked first.
    Escalate,
    Commit,
    Rollback,
}

impl<T: Transport> HranaConn<T> {
    pub fn new(transport: T, endpoint: Endpoint) -> Self {
        HranaConn {
            transport,
            endpoint,
            state: Mutex::new(State::default()),
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Sends one batch (and `close` unless the transaction stays open);
    /// returns the stream's baton when it stays open.
    async fn send(
        &self,
        baton: Option<String>,
        batch: &Batch,
        keep_open: bool,
    ) -> Result<(Option<String>, Outcome), DbError> {
        let mut steps: Vec<Json> = batch
            .steps
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
        if let Some(step) = batch.rollback_unless {
            let unless = json!({"type": "not", "cond": {"type": "ok", "step": step}});
            steps.push(json!({"condition": unless, "stmt": stmt_json(&Stmt::new("ROLLBACK"))}));
            if let Some(read) = &batch.then_read {
                steps.push(json!({"condition": unless, "stmt": stmt_json(read)}));
            }
        }
        let mut requests = vec![json!({"type": "batch", "batch": {"steps": steps}})];
        if !keep_open {
            requests.push(json!({"type": "close"}));
        }
        let resp = self
            .pipeline(json!({"baton": baton, "requests": requests}))
            .await?;
        let baton = if keep_open { resp.baton } else { None };
        let first = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| DbError::Other("empty pipeline response".into()))?;
        let result: BatchResult = match first {
            PipelineResult::Ok { response } => match response {
                Response::Batch { result } => result,
                _ => return Err(DbError::Other("unexpected pipeline response".into())),
            },
            PipelineResult::Error { error } => return Err(error.into_db_error()),
        };
        // The first failed step is the batch's failure; later steps did not
        // run.
        let failed = result
            .step_errors
            .into_iter()
            .enumerate()
            .find_map(|(i, e)| e.map(|e| (i, e)))
            .map(|(i, mut e)| {
                // Which step, for the operator's log: its first word only.
                let word = batch
                    .steps
                    .get(i)
                    .map_or_else(|| "ROLLBACK".to_owned(), |s| first_word(&s.sql));
                e.message = format!("{} (step {i}, {word})", e.message);
                (i, e.into_db_error())
            });
        Ok((
            baton,
            Outcome {
                results: result.step_results,
                failed,
            },
        ))
    }

    /// Sends the queued statements and then `stmts` as one batch, as the
    /// caller asks: a `BEGIN` keeps the stream open until `COMMIT` or
    /// `ROLLBACK`. Returns the results of `stmts`.
    async fn run_plain(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, DbError> {
        let ends_tx = stmts.last().is_some_and(|s| ends_transaction(&s.sql));
        let (baton, mut steps, prefetch) = self.with_state(|s| {
            let mut steps = std::mem::take(&mut s.checks);
            steps.append(&mut s.pending);
            // Writes nothing reads back wait for the end of the
            // transaction (or go now where there is none).
            if ends_tx || !s.locked_work() {
                steps.append(&mut s.at_commit);
            }
            let prefetch = if s.takes_prefetch() {
                std::mem::take(&mut s.prefetch)
            } else {
                Vec::new()
            };
            (s.baton.take(), steps, prefetch)
        });
        let writes = steps
            .iter()
            .chain(stmts.iter())
            .any(|s| !reads(&s.sql) && !starts_transaction(&s.sql));
        if writes {
            // What was read ahead may be what these change.
            self.with_state(|s| s.prefetched.clear());
        }
        let starts_tx = steps
            .iter()
            .chain(stmts.iter())
            .any(|s| starts_transaction(&s.sql));
        let wanted = stmts.len();
        let m = prefetch.len();
        steps.extend(stmts);
        steps.extend(prefetch.iter().cloned());
        if steps.is_empty() {
            self.with_state(|s| s.baton = baton);
            return Ok(Vec::new());
        }
        let in_tx = (baton.is_some() || starts_tx) && !ends_tx;
        let n = steps.len();
        let batch = Batch {
            steps,
            rollback_unless: None,
            then_read: None,
        };
        // Reads outside any transaction are sent again once when no answer
        // came (a stale pooled connection): nothing was written.
        let resendable = baton.is_none() && !in_tx && batch.steps.iter().all(|s| reads(&s.sql));
        let (baton, outcome) = match self.send(baton, &batch, in_tx).await {
            Err(DbError::Unavailable(_)) if resendable => self.send(None, &batch, false).await?,
            other => other?,
        };
        // As with a local connection, an open transaction stays open until
        // the caller ends it, even after a failed step.
        let committed = ends_tx && batch.steps.last().is_some_and(|s| !rolls_back(&s.sql));
        self.with_state(|s| {
            s.baton = baton;
            if committed {
                s.end_work();
            } else if ends_tx {
                s.prefetch.clear();
                s.prefetched.clear();
            }
        });
        let mut results = take_results(outcome, n - wanted - m..n)?;
        let answers: Vec<StmtResult> = results.drain(wanted..).collect();
        if m > 0 {
            self.with_state(|s| s.prefetched.extend(prefetch.into_iter().zip(answers)));
        }
        Ok(results)
    }

    /// Reads of optimistic work: one batch in a read snapshot (`BEGIN` …
    /// `COMMIT`, no write lock), carrying the checks and, the first time,
    /// the version. Sent once more if no answer came (nothing was written).
    async fn run_read(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, DbError> {
        let (checks, version_sql, prefetch) = self.with_state(|s| {
            let version = s
                .optimistic
                .as_ref()
                .filter(|o| o.seen.is_none())
                .map(|o| o.version_sql);
            (
                std::mem::take(&mut s.checks),
                version,
                std::mem::take(&mut s.prefetch),
            )
        });
        let n = stmts.len();
        let m = prefetch.len();
        let first = 1 + checks.len();
        let mut steps = vec![Stmt::new("BEGIN")];
        steps.extend(checks);
        steps.extend(stmts);
        steps.extend(prefetch.iter().cloned());
        if let Some(v) = version_sql {
            steps.push(Stmt::new(v));
        }
        steps.push(Stmt::new("COMMIT"));
        let batch = Batch {
            steps,
            rollback_unless: None,
            then_read: None,
        };
        let outcome = match self.send(None, &batch, false).await {
            Err(DbError::Unavailable(_)) => self.send(None, &batch, false).await?.1,
            other => other?.1,
        };
        let mut results = take_results(
            outcome,
            first..first + n + m + usize::from(version_sql.is_some()),
        )?;
        let version = if version_sql.is_some() {
            results.pop()
        } else {
            None
        };
        let answers: Vec<StmtResult> = results.drain(n..).collect();
        self.with_state(|s| s.prefetched.extend(prefetch.into_iter().zip(answers)));
        if let Some(version) = version {
            let seen = Some(version)
                .and_then(|r| r.rows.into_iter().next())
                .and_then(|row| row.into_iter().next())
                .and_then(|v| from_hrana(v).ok());
            let Some(Value::Integer(seen)) = seen else {
                return Err(DbError::Other("the version query gave no integer".into()));
            };
            self.with_state(|s| {
                if let Some(o) = s.optimistic.as_mut() {
                    o.seen = Some(seen);
                }
            });
        }
        Ok(results)
    }

    /// The first steps of optimistic work's write batch: the lock, then the
    /// version check (when a read saw one), the checks and the queued
    /// writes. Returns them and the index of the version check.
    fn write_steps(&self) -> (Vec<Stmt>, Option<usize>) {
        self.with_state(|s| {
            let mut steps = vec![Stmt::new("BEGIN IMMEDIATE")];
            let mut guard = None;
            if let Some(Optimistic {
                version_sql,
                seen: Some(v),
            }) = &s.optimistic
            {
                guard = Some(steps.len());
                steps.push(version_guard(version_sql, *v));
            }
            steps.append(&mut s.checks);
            steps.append(&mut s.pending);
            steps.append(&mut s.at_commit);
            (steps, guard)
        })
    }

    /// Optimistic work takes the lock now, for a statement that needs its
    /// answer while writes wait; the stream stays open to `COMMIT`.
    async fn run_escalated(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, DbError> {
        let (mut steps, guard) = self.write_steps();
        let n = stmts.len();
        steps.extend(stmts);
        let total = steps.len();
        let batch = Batch {
            steps,
            rollback_unless: None,
            then_read: None,
        };
        let (baton, outcome) = self.send(None, &batch, true).await?;
        if let (Some(g), Some((i, _))) = (guard, &outcome.failed) {
            if *i == g {
                // Moved: end the transaction (closing the stream rolls it
                // back) and say so.
                self.close(baton).await;
                return Err(DbError::Conflict);
            }
        }
        self.with_state(|s| s.baton = baton);
        take_results(outcome, total - n..total)
    }

    /// Optimistic work's `COMMIT`: one batch that locks, checks the
    /// version, writes and commits, or rolls back, inside the server.
    async fn run_commit(&self) -> Result<Vec<StmtResult>, DbError> {
        let (mut steps, guard) = self.write_steps();
        self.with_state(State::end_work);
        if steps.len() == 1 + usize::from(guard.is_some()) {
            // Nothing to write.
            return Ok(vec![StmtResult::default()]);
        }
        let commit = steps.len();
        steps.push(Stmt::new("COMMIT"));
        let batch = Batch {
            steps,
            rollback_unless: Some(commit),
            then_read: None,
        };
        let (_, outcome) = self.send(None, &batch, false).await?;
        match outcome.failed {
            Some((i, _)) if Some(i) == guard => Err(DbError::Conflict),
            _ => take_results(outcome, commit..commit + 1),
        }
    }

    /// [`Conn::commit_appending`] of optimistic work: the write batch
    /// with `last` as its last write, checked against the chain's head
    /// (`version`) and the chain's turn; when the head moved, a live turn
    /// is another's, or the lock could not be had before anything ran,
    /// `last` is rebuilt on the head the same batch read after its
    /// `ROLLBACK`, and sent again. After [`CLAIM_AFTER`] moves the batch
    /// first claims the turn (a transaction of its own that commits
    /// whatever follows), so that its next try wins; it gives up after
    /// [`REBASES`] moves, or [`TRIES`] tries in all (503, nothing written).
    async fn run_appending<F>(
        &self,
        head_sql: &'static str,
        turn: AppendTurn,
        first: (Stmt, i64),
        mut rebuild: F,
    ) -> Result<(), DbError>
    where
        F: FnMut(&[Row]) -> Result<(Stmt, i64), DbError> + Send,
    {
        let (version_sql, writes) = self.with_state(|s| {
            let version_sql = s.optimistic.take().map(|o| o.version_sql);
            s.end_work();
            let mut writes = std::mem::take(&mut s.checks);
            writes.append(&mut s.pending);
            writes.append(&mut s.at_commit);
            (version_sql, writes)
        });
        let version_sql = version_sql.unwrap_or(crate::records::audit::VERSION_SQL);
        let holder = || vec![Value::Blob(turn.holder.clone())];
        let (mut last, mut version) = first;
        let mut moved = 0;
        for _ in 0..TRIES {
            let mut steps = Vec::new();
            if moved >= CLAIM_AFTER {
                steps.push(Stmt::new("BEGIN IMMEDIATE"));
                steps.push(Stmt {
                    sql: turn.claim.to_owned(),
                    args: vec![
                        Value::Blob(turn.holder.clone()),
                        Value::Integer(turn.lease_ms),
                    ],
                });
                steps.push(Stmt::new("COMMIT"));
            }
            // Another's live turn stops the batch before it waits for the
            // lock, and again under the lock (it may have been claimed
            // between the two).
            let ahead = steps.len();
            steps.push(Stmt {
                sql: turn.guard.to_owned(),
                args: holder(),
            });
            let begin = steps.len();
            steps.push(Stmt::new("BEGIN IMMEDIATE"));
            steps.push(version_guard(version_sql, version));
            steps.push(Stmt {
                sql: turn.guard.to_owned(),
                args: holder(),
            });
            steps.extend(writes.iter().cloned());
            steps.push(last);
            steps.push(Stmt {
                sql: turn.release.to_owned(),
                args: holder(),
            });
            let commit = steps.len();
            steps.push(Stmt::new("COMMIT"));
            let batch = Batch {
                steps,
                rollback_unless: Some(commit),
                then_read: Some(Stmt::new(head_sql)),
            };
            let (_, outcome) = self.send(None, &batch, false).await?;
            let again = match &outcome.failed {
                None => return Ok(()),
                Some((i, _)) if *i == begin + 1 => {
                    moved += 1;
                    true
                }
                // Another's turn: no move of this request's own.
                Some((i, _)) if *i == ahead || *i == begin + 2 => true,
                Some((i, DbError::Unavailable(_))) if *i <= begin => {
                    moved += 1;
                    true
                }
                Some(_) => false,
            };
            if !again {
                return take_results(outcome, 0..0).map(|_| ());
            }
            if moved >= REBASES {
                break;
            }
            let head = outcome
                .results
                .into_iter()
                .nth(commit + 2)
                .flatten()
                .ok_or_else(|| DbError::Other("the chain's head was not read".into()))?;
            (last, version) = rebuild(&rows(head)?)?;
        }
        // Contention beyond that: a clean 503 with nothing written (the
        // client's `Idempotency-Key` makes its retry safe), rather than a
        // lock held across a round trip: tried, a batch that took the lock
        // and kept its stream but got no answer in time (it waited for the
        // lock behind the others) left the lock to sqld's transaction
        // timeout, and the whole clinic answered 503 for 5 s.
        Err(DbError::Unavailable(format!(
            "the clinic's audit chain moved {moved} times before this request could append"
        )))
    }

    /// Ends a stream (and any transaction on it) without waiting to know.
    async fn close(&self, baton: Option<String>) {
        if baton.is_some() {
            let _ = self
                .pipeline(json!({"baton": baton, "requests": [{"type": "close"}]}))
                .await;
        }
    }

    /// Sends `stmts` the way the connection's state asks.
    async fn run(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, DbError> {
        let route = self.with_state(|s| {
            if s.optimistic.is_none() || s.baton.is_some() {
                // Locked work: a read with nothing queued ahead of it may
                // be one declared ahead (under the same lock).
                if s.baton.is_some() && s.pending.is_empty() && stmts.iter().all(|s| reads(&s.sql))
                {
                    if let Some(answers) = s.take_prefetched(&stmts) {
                        return Route::Answered(answers);
                    }
                }
                return Route::Plain;
            }
            match stmts.as_slice() {
                [one] if first_word(&one.sql) == "COMMIT" || first_word(&one.sql) == "END" => {
                    Route::Commit
                }
                [one] if first_word(&one.sql) == "ROLLBACK" => Route::Rollback,
                _ if s.pending.is_empty() && stmts.iter().all(|s| reads(&s.sql)) => Route::Read,
                _ => Route::Escalate,
            }
        });
        match route {
            Route::Answered(answers) => Ok(answers),
            Route::Plain => self.run_plain(stmts).await,
            Route::Read => match self.with_state(|s| s.take_prefetched(&stmts)) {
                Some(answers) => Ok(answers),
                None => self.run_read(stmts).await,
            },
            Route::Escalate => self.run_escalated(stmts).await,
            Route::Commit => self.run_commit().await,
            Route::Rollback => {
                self.with_state(|s| {
                    s.pending.clear();
                    s.at_commit.clear();
                    s.prefetch.clear();
                    s.prefetched.clear();
                });
                Ok(vec![StmtResult::default()])
            }
        }
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
        let steps: Vec<Stmt> = split_script(sql).into_iter().map(Stmt::new).collect();
        self.run(steps).await.map(|_| ())
    }
}

/// The results of the steps in `range`, or the batch's first failure.
fn take_results(
    outcome: Outcome,
    range: std::ops::Range<usize>,
) -> Result<Vec<StmtResult>, DbError> {
    if let Some((_, e)) = outcome.failed {
        return Err(e);
    }
    let mut results = outcome.results;
    if results.len() < range.end {
        return Err(DbError::Other("a batch step did not run".into()));
    }
    results
        .drain(range)
        .map(|r| r.ok_or_else(|| DbError::Other("a batch step did not run".into())))
        .collect()
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
        self.with_state(|s| {
            // Optimistic work begins its own transaction in its write batch.
            if !(s.optimistic.is_some() && s.baton.is_none() && starts_transaction(sql)) {
                s.pending.push(Stmt {
                    sql: sql.to_owned(),
                    args: params,
                });
            }
        });
        async { Ok(()) }
    }

    fn execute_script(&self, sql: &str) -> impl Future<Output = Result<(), DbError>> + Send {
        let sql = sql.to_owned();
        async move { self.sequence(&sql).await }
    }

    fn commit_appending<F>(
        &self,
        head_sql: &'static str,
        turn: AppendTurn,
        first: (Statement, i64),
        rebuild: F,
    ) -> impl Future<Output = Result<(), DbError>> + Send
    where
        F: FnMut(&[Row]) -> Result<(Statement, i64), DbError> + Send,
    {
        let optimistic = self.with_state(|s| s.optimistic.is_some() && s.baton.is_none());
        async move {
            let ((sql, args), version) = first;
            if !optimistic {
                self.execute_later(&sql, args).await?;
                return self.execute("COMMIT", vec![]).await.map(|_| ());
            }
            let mut rebuild = rebuild;
            let rebuild =
                move |rows: &[Row]| rebuild(rows).map(|((sql, args), v)| (Stmt { sql, args }, v));
            self.run_appending(head_sql, turn, (Stmt { sql, args }, version), rebuild)
                .await
        }
    }

    fn queued(&self) -> usize {
        self.with_state(|s| s.pending.len() + s.at_commit.len())
    }

    fn optimistic(&self) -> bool {
        self.with_state(|s| s.optimistic.is_some() && s.baton.is_none())
    }

    fn prefetches(&self) -> bool {
        self.with_state(|s| s.takes_prefetch())
    }

    fn prefetch(&self, statements: Vec<Statement>) {
        self.with_state(|s| {
            if s.takes_prefetch() {
                s.prefetch
                    .extend(statements.into_iter().map(|(sql, args)| Stmt { sql, args }));
            }
        });
    }

    fn execute_at_commit(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        self.with_state(|s| {
            let stmt = Stmt {
                sql: sql.to_owned(),
                args: params,
            };
            if (s.optimistic.is_some() && s.baton.is_none()) || s.locked_work() {
                s.at_commit.push(stmt);
            } else {
                s.pending.push(stmt);
            }
        });
        async { Ok(()) }
    }

    fn begin_work(
        &self,
        version: Option<&'static str>,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        self.with_state(|s| match version {
            Some(version_sql) if s.baton.is_none() => {
                // What was queued before the work began guards its first
                // batch, whatever it is.
                let queued = std::mem::take(&mut s.pending);
                s.checks.extend(queued);
                s.optimistic = Some(Optimistic {
                    version_sql,
                    seen: None,
                });
            }
            _ => s.pending.push(Stmt::new("BEGIN IMMEDIATE")),
        });
        async { Ok(()) }
    }
}

/// A step that fails (SQLite's "integer overflow", as the schema guard)
/// unless `version_sql` still answers `version`: optimistic work's check
/// that nothing committed since it read.
fn version_guard(version_sql: &str, version: i64) -> Stmt {
    Stmt {
        sql: format!("SELECT abs(-9223372036854775807 - 1) WHERE ({version_sql}) IS NOT ?1"),
        args: vec![Value::Integer(version)],
    }
}

/// Whether a statement only reads (so optimistic work may send it alone).
fn reads(sql: &str) -> bool {
    matches!(first_word(sql).as_str(), "SELECT" | "VALUES")
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

fn rolls_back(sql: &str) -> bool {
    first_word(sql) == "ROLLBACK"
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
