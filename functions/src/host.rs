//! What a host gives the application: a libSQL connection per clinic (and the
//! region's directory), the region root keys, a clock and randomness; and,
//! where the platform has one, a store for audit checkpoints outside every
//! clinic database.
//!
//! Hosts (native `amanah serve`, the Worker, the Spin component) implement
//! [`Host`] and [`Conn`]; nothing else in this crate knows which platform it
//! runs on.

use std::future::Future;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::crypto::keys::RootKeyring;
use crate::ids::ClinicId;

/// A SQLite/libSQL value, as bound to and read from statements.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row.
pub type Row = Vec<Value>;

/// Why a database call failed. Messages carry SQL and engine text, never bound
/// values, so they may be logged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached now (server down, file locked too long).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The named database does not exist.
    #[error("database does not exist")]
    NotFound,
    /// A UNIQUE, CHECK or trigger constraint refused the statement.
    #[error("constraint: {0}")]
    Constraint(String),
    /// The storage refused to grow: disk (or quota) full. Nothing of the
    /// statement was kept.
    #[error("storage full: {0}")]
    Full(String),
    /// Work begun optimistically ([`Conn::begin_work`]) found its version
    /// moved at `COMMIT`: someone committed after it read. Nothing of it
    /// was written; the caller runs it again.
    #[error("the data changed since it was read")]
    Conflict,
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// Whether the error says the database needs its migrations first: a
    /// schema guard ([`crate::store::schema_guard`]) failed, or the
    /// database does not exist yet.
    pub fn schema_behind(&self) -> bool {
        match self {
            DbError::NotFound => true,
            DbError::Other(m) => {
                m.contains("integer overflow") || m.contains("no such table: schema_migrations")
            }
            _ => false,
        }
    }
}

/// A connection to one libSQL database, exclusive to the current request.
///
/// `BEGIN`/`COMMIT` issued through it hold for the statements that follow.
pub trait Conn: Send + Sync {
    /// Runs a statement that returns rows.
    fn query(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send;
    /// Runs a statement; returns the number of rows changed.
    fn execute(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, DbError>> + Send;
    /// Queues a statement whose result the caller does not need. It runs, in
    /// order, before the next statement of this connection, and its failure
    /// is that statement's failure: a remote host sends both in one round
    /// trip. A local host may simply run it now.
    fn execute_later(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<(), DbError>> + Send;
    /// Queues a write that nothing in this work reads back (a session's
    /// last use): it goes with the `COMMIT`, and reads before it need not
    /// take the lock on its account ([`Conn::begin_work`]). Elsewhere the
    /// same as [`Conn::execute_later`].
    fn execute_at_commit(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        self.execute_later(sql, params)
    }
    /// Runs several queries in order and returns each one's rows: a remote
    /// host sends them (and anything queued) in one round trip.
    fn query_many(
        &self,
        statements: Vec<(String, Vec<Value>)>,
    ) -> impl Future<Output = Result<Vec<Vec<Row>>, DbError>> + Send {
        async move {
            let mut out = Vec::with_capacity(statements.len());
            for (sql, params) in statements {
                out.push(self.query(&sql, params).await?);
            }
            Ok(out)
        }
    }
    /// Runs several `;`-separated statements without parameters (migrations).
    fn execute_script(&self, sql: &str) -> impl Future<Output = Result<(), DbError>> + Send;
    /// Begins a request's work: what follows, up to `COMMIT` or `ROLLBACK`,
    /// is one transaction. A local connection takes the write lock
    /// (`BEGIN IMMEDIATE`, queued), and its host queues its writers.
    ///
    /// A connection across the network may run the work optimistically when
    /// given `version` (a query of one integer that every commit moves):
    /// reads go at once, each batch in a read snapshot of its own; writes
    /// wait for `COMMIT`, which sends them in one batch that takes the lock,
    /// checks that `version` is what the first read saw, writes and commits
    /// or rolls back, all inside the server, so no lock is held across a
    /// round trip. A moved version fails the `COMMIT` with
    /// [`DbError::Conflict`], nothing written. A statement that needs its
    /// answer while writes wait (`execute`, or a read after a queued write)
    /// takes the lock from there to `COMMIT`, the version checked first.
    fn begin_work(
        &self,
        version: Option<&'static str>,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        let _ = version;
        self.execute_later("BEGIN IMMEDIATE", vec![])
    }
    /// Commits work whose writes depend on nothing it read but the head of
    /// an append-only chain, its last write `first` (built on the head at
    /// `version`). Where optimistic work finds the chain moved, only that
    /// last write moves: `rebuild` makes it again from the rows of
    /// `head_sql` read in the failed batch, and the batch is sent again, a
    /// bounded number of times (then unavailable, nothing written); one
    /// that keeps losing claims the chain's `turn`. A local connection,
    /// holding the lock already, queues `first` and commits.
    /// Nothing is written on failure (the caller rolls back).
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
        let _ = (head_sql, turn, rebuild);
        async move {
            let ((sql, params), _) = first;
            self.execute_later(&sql, params).await?;
            self.execute("COMMIT", vec![]).await.map(|_| ())
        }
    }
    /// How many statements wait for the next one (or for the commit).
    fn queued(&self) -> usize {
        0
    }
    /// Whether the work begun runs optimistically ([`Conn::begin_work`]
    /// given a version, on a connection across the network): it holds no
    /// lock, even after a `ROLLBACK` of its writes.
    fn optimistic(&self) -> bool {
        false
    }
    /// Whether [`Conn::prefetch`] is of use here (optimistic work across
    /// the network), so that a caller may skip building its statements.
    fn prefetches(&self) -> bool {
        false
    }
    /// Reads the work declared it will make, sent with its next read
    /// batch (one round trip for all, in the same snapshot); a later query
    /// of exactly such a statement, with no write queued, is answered from
    /// what came back. A local connection ignores them: its reads cost no
    /// round trip.
    fn prefetch(&self, statements: Vec<Statement>) {
        let _ = statements;
    }
}

/// A statement and its parameters.
pub type Statement = (String, Vec<Value>);

/// Whose turn it is to append to a chain, where appends across the network
/// keep meeting each other (a lease in the database, never a lock:
/// [`crate::records::append_turn`]). Each statement takes the holder as
/// `?1`; `claim` takes the lease's length in milliseconds as `?2`.
pub struct AppendTurn {
    /// This request's random holder value.
    pub holder: Vec<u8>,
    /// Fails while a live turn is another's.
    pub guard: &'static str,
    /// Takes the turn unless another holds a live one.
    pub claim: &'static str,
    /// Ends the holder's turn.
    pub release: &'static str,
    pub lease_ms: i64,
}

/// The platform under the application.
pub trait Host: Send + Sync {
    /// Owned, so that a streamed response can read on after the handler.
    type Conn: Conn + 'static;
    /// Where the region's audit checkpoints are kept
    /// ([`crate::jobs::checkpoints`]); [`NoCheckpoints`] for a host that
    /// keeps none.
    type Checkpoints: CheckpointStore;

    /// The region's directory database (non-personal facts). Where creating
    /// it costs a call (a sqld namespace), a missing one may show as
    /// [`DbError::NotFound`] on its first statement instead; the application
    /// then calls [`Host::create_directory`].
    fn directory(&self) -> impl Future<Output = Result<Self::Conn, DbError>> + Send;
    /// Creates the directory database if it does not exist.
    fn create_directory(&self) -> impl Future<Output = Result<(), DbError>> + Send {
        async { Ok(()) }
    }
    /// An existing clinic's database; [`DbError::NotFound`] if it has none.
    fn open_clinic(
        &self,
        clinic: &ClinicId,
    ) -> impl Future<Output = Result<Self::Conn, DbError>> + Send;
    /// Creates a new, empty clinic database and opens it.
    fn create_clinic(
        &self,
        clinic: &ClinicId,
    ) -> impl Future<Output = Result<Self::Conn, DbError>> + Send;
    /// Destroys a clinic's database and every file of it (purge after the
    /// grace period); a database already gone is fine.
    fn drop_clinic(&self, clinic: &ClinicId) -> impl Future<Output = Result<(), DbError>> + Send;
    /// After a purge deleted rows of a database (a clinic's, or with `None`
    /// the directory): makes their bytes unrecoverable from its files where
    /// the store allows it (`Ok(true)`), or says it cannot (`Ok(false)`: a
    /// libSQL server keeps its own log of past pages).
    fn scrub(
        &self,
        clinic: Option<&ClinicId>,
    ) -> impl Future<Output = Result<bool, DbError>> + Send;
    /// The region's root keys (KEK versions; the newest wraps). A host whose
    /// keys can change while it runs (the native host re-reads its key file
    /// after a rotation) returns a new `Arc` when they did: the application
    /// derives its token keys again when the pointer changes.
    fn root_keys(&self) -> Arc<RootKeyring>;
    /// Seconds since the Unix epoch, UTC.
    fn now(&self) -> i64;
    /// Fills `buf` with cryptographically secure random bytes.
    fn fill_random(&self, buf: &mut [u8]);
    /// The store the scheduled work signs checkpoints into, if this host
    /// has one.
    fn checkpoints(&self) -> Option<&Self::Checkpoints>;
}

/// Where a region's checkpoints are kept: append-only, outside every
/// clinic database.
pub trait CheckpointStore: Send + Sync {
    /// The store, for reports: a directory's path, a bucket's binding.
    fn describe(&self) -> String;
    /// The checkpoints of `chain` as stored (each one's JSON text), oldest
    /// first; none yet is an empty list.
    fn load(
        &self,
        region: &str,
        chain: &str,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// Keeps one more checkpoint of `chain`, never replacing one kept.
    fn append(
        &self,
        region: &str,
        c: &Checkpoint,
        text: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The checkpoint store of a host that keeps none: never asked for.
pub struct NoCheckpoints;

impl CheckpointStore for NoCheckpoints {
    fn describe(&self) -> String {
        "none".into()
    }
    async fn load(&self, _region: &str, _chain: &str) -> Result<Vec<String>, String> {
        Err("this host keeps no checkpoints".into())
    }
    async fn append(&self, _region: &str, _c: &Checkpoint, _text: &str) -> Result<(), String> {
        Err("this host keeps no checkpoints".into())
    }
}
