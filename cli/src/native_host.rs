//! The native [`Host`]: each clinic is a libSQL file `<data>/<region>/<clinic>.db`
//! and the region directory is `<data>/<region>/directory.db`.
//!
//! A clinic costs nothing while idle: its pool (an open database, its idle
//! connections) exists only while it is used. Pools idle for
//! [`IDLE_CLOSE`] are closed, and at most [`MAX_OPEN`] are open at once
//! (the least recently used goes first), so memory and file descriptors
//! stay bounded whatever the number of clinics. One task per host
//! checkpoints every file written since its last round.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use amanah_functions::crypto::keys::{RootKey, RootKeyring};
use amanah_functions::host::{Conn, DbError, Host, Row, Value};
use amanah_functions::ids::ClinicId;

/// libSQL result codes we tell apart.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_FULL: i32 = 13;

pub struct NativeHost {
    region: String,
    dir: PathBuf,
    root: crate::root_key::KeyFile,
    databases: Arc<Databases>,
    /// Where the scheduled work signs audit checkpoints (`--checkpoint-dir`).
    checkpoints: Option<crate::ops::checkpoints::Directory>,
}

/// Pools at most open at once, in all regions of the process; beyond, the
/// least recently used idle ones are closed. Each costs about four file
/// descriptors (the file and its log, for a request connection and for
/// the checkpointer), more while a clinic is busy; `amanah serve` raises
/// its soft file limit to the hard one.
pub const MAX_OPEN: usize = 256;

/// A pool unused this long is closed (its connections, its file
/// descriptors, its page caches).
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// The open databases of a host, shared with its checkpointer task.
pub struct Databases {
    pools: Mutex<HashMap<PathBuf, Arc<Pool>>>,
    /// When the host began: the clock of [`Pool::last_used`].
    epoch: Instant,
    /// How often the checkpointer goes round ([`CHECKPOINT_EVERY`]; tests
    /// shorten it).
    checkpoint_every: Mutex<Duration>,
    /// Whether the checkpointer task runs.
    checkpointer: AtomicBool,
    max_open: std::sync::atomic::AtomicUsize,
    idle_close: Mutex<Duration>,
}

impl Databases {
    /// None open yet; [`MAX_OPEN`], [`IDLE_CLOSE`], [`CHECKPOINT_EVERY`].
    pub fn new() -> Arc<Databases> {
        Arc::new(Databases {
            pools: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            checkpoint_every: Mutex::new(CHECKPOINT_EVERY),
            checkpointer: AtomicBool::new(false),
            max_open: std::sync::atomic::AtomicUsize::new(MAX_OPEN),
            idle_close: Mutex::new(IDLE_CLOSE),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Takes out pools nobody holds that have idled past `idle_close`, and,
    /// beyond `max`, the least recently used of the rest. The caller drops
    /// them outside the lock ([`close`]): closing a file may checkpoint it.
    fn close_idle(
        pools: &mut HashMap<PathBuf, Arc<Pool>>,
        now_ms: u64,
        idle: Duration,
        max: usize,
    ) -> Vec<Arc<Pool>> {
        let unused = |p: &Arc<Pool>| Arc::strong_count(p) == 1;
        let mut closed = Vec::new();
        let expired: Vec<PathBuf> = pools
            .iter()
            .filter(|(_, p)| {
                unused(p)
                    && now_ms.saturating_sub(p.last_used.load(Ordering::Relaxed))
                        >= idle.as_millis() as u64
            })
            .map(|(path, _)| path.clone())
            .collect();
        closed.extend(expired.iter().filter_map(|path| pools.remove(path)));
        if pools.len() > max {
            let mut lru: Vec<(u64, PathBuf)> = pools
                .iter()
                .filter(|(_, p)| unused(p))
                .map(|(path, p)| (p.last_used.load(Ordering::Relaxed), path.clone()))
                .collect();
            lru.sort();
            let over = pools.len() - max;
            closed.extend(
                lru.into_iter()
                    .take(over)
                    .filter_map(|(_, path)| pools.remove(&path)),
            );
        }
        closed
    }

    /// How many pools are open (benchmarks, tests).
    pub fn open(&self) -> usize {
        self.pools.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// Closes pools taken out of the map: on the blocking pool where there is
/// a runtime (the last connection of a file checkpoints it on close).
fn close(pools: Vec<Arc<Pool>>) {
    if pools.is_empty() {
        return;
    }
    let close = move || {
        drop(pools);
        // Their page caches and statements were freed into the allocator's
        // arenas: give the free pages back to the system.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory of the allocator.
        unsafe {
            libc::malloc_trim(0);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(r) => {
            r.spawn_blocking(close);
        }
        Err(_) => close(),
    }
}

/// Idle connections of one database file, reused across requests.
pub struct Pool {
    /// The database file.
    path: PathBuf,
    db: libsql::Database,
    idle: Mutex<Vec<Pooled>>,
    /// When a connection was last taken ([`Databases::now_ms`]).
    last_used: AtomicU64,
    /// Written since the checkpointer's last round.
    dirty: AtomicBool,
    /// The checkpointer's own connection to the file, opened without
    /// SQLite's create flag (a purged file is never brought back), with
    /// the database it comes from.
    checkpoint_conn: tokio::sync::Mutex<Option<(libsql::Database, libsql::Connection)>>,
    /// The file's one writer in this process. SQLite admits one write
    /// transaction at a time; left to its busy handler, waiting writers
    /// sleep and poll (1, 2, 5 … 100 ms), which idled a core and put
    /// p99 at 50–200 ms under load (BENCHMARKS.md). Waiting here instead is
    /// a fair queue: the next writer starts the moment the last one ends.
    /// SQLite's busy timeout still covers other processes (`amanah maintain`).
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Whether the host's checkpointer covers this file (always inside a
    /// Tokio runtime); without it, SQLite checkpoints as usual.
    checkpointer: bool,
}

/// How often a database's WAL is checkpointed into its file.
///
/// Request connections never checkpoint (`wal_autocheckpoint = 0`): SQLite
/// would run it inside the `COMMIT` that crosses 1,000 pages, fsyncs
/// included, and that request (and every writer queued behind it) stalled
/// 100–400 ms (BENCHMARKS.md). A task per database checkpoints on its own
/// connection, on the blocking pool, instead.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// WAL frames left after a background checkpoint above which the next one
/// finishes under the file's writer. A PASSIVE checkpoint beside constant
/// writes never catches up with the log's end, so the log never starts
/// over: under load it grew by 8 MB/s per clinic. Copying the last frames
/// while no transaction runs lets the next writer restart the log.
const RESTART_FRAMES: i64 = 1000;

/// One PASSIVE checkpoint; the frames in the log and how many of them are
/// now in the database file, if it answered.
fn checkpoint(handle: &tokio::runtime::Handle, conn: &libsql::Connection) -> Option<(i64, i64)> {
    handle.block_on(async {
        let mut rows = conn
            .query("PRAGMA wal_checkpoint(PASSIVE)", ())
            .await
            .ok()?;
        let row = rows.next().await.ok()??;
        Some((row.get::<i64>(1).ok()?, row.get::<i64>(2).ok()?))
    })
}

/// Runs `checkpoint` on the blocking pool (its fsyncs block a thread).
async fn checkpoint_blocking(
    conn: libsql::Connection,
) -> Option<(libsql::Connection, Option<(i64, i64)>)> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let frames = checkpoint(&handle, &conn);
        (conn, frames)
    })
    .await
    .ok()
}

/// A connection to a database file that must exist: opened without
/// SQLite's create flag, so that a file removed by another process (the
/// purge) is never brought back empty.
async fn open_existing(path: &Path) -> Result<(libsql::Database, libsql::Connection), DbError> {
    let db = libsql::Builder::new_local(path)
        .flags(libsql::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .build()
        .await
        .map_err(map_err)?;
    let conn = db.connect().map_err(map_err)?;
    Ok((db, conn))
}

/// One round of the host's checkpointer over a pool written since the
/// last: most of the copying beside the writers, the rest (when the log
/// would otherwise never start over) under the file's writer.
async fn checkpoint_pool(p: &Pool) {
    let mut slot = p.checkpoint_conn.lock().await;
    let c = match slot.take() {
        Some((db, c)) => (db, c),
        None => match open_existing(&p.path).await {
            Ok(opened) => opened,
            // Removed meanwhile (`amanah maintain` in another process):
            // nothing to checkpoint.
            Err(_) => return,
        },
    };
    let (db, c) = c;
    let started = Instant::now();
    let Some((c, done)) = checkpoint_blocking(c).await else {
        return;
    };
    let passive_ms = started.elapsed().as_millis() as u64;
    let (frames, copied) = done.unwrap_or((0, 0));
    if frames < RESTART_FRAMES || copied >= frames {
        tracing::debug!(passive_ms, frames, "checkpoint");
        *slot = Some((db, c));
        return;
    }
    let writer = p.writer.clone().lock_owned().await;
    let locked = Instant::now();
    let c = checkpoint_blocking(c).await.map(|(c, _)| c);
    drop(writer);
    let locked_ms = locked.elapsed().as_millis() as u64;
    tracing::debug!(passive_ms, frames, locked_ms, "checkpoint, log restarted");
    *slot = c.map(|c| (db, c));
}

/// The host's checkpointer: every round, each pool written since the last
/// is checkpointed, and idle pools are closed; it ends with the host.
fn spawn_checkpointer(runtime: &tokio::runtime::Handle, databases: Weak<Databases>) {
    runtime.spawn(async move {
        loop {
            let every = match databases.upgrade() {
                Some(d) => d
                    .checkpoint_every
                    .lock()
                    .map(|e| *e)
                    .unwrap_or(CHECKPOINT_EVERY),
                None => return,
            };
            tokio::time::sleep(every).await;
            let Some(d) = databases.upgrade() else {
                return;
            };
            // Weak: a pool waiting its turn here may still be closed.
            let dirty: Vec<Weak<Pool>> = match d.pools.lock() {
                Ok(pools) => pools
                    .values()
                    .filter(|p| p.dirty.swap(false, Ordering::AcqRel))
                    .map(Arc::downgrade)
                    .collect(),
                Err(_) => continue,
            };
            for p in dirty {
                if let Some(p) = p.upgrade() {
                    checkpoint_pool(&p).await;
                }
            }
            let (idle, max) = (
                d.idle_close.lock().map(|i| *i).unwrap_or(IDLE_CLOSE),
                d.max_open.load(Ordering::Relaxed),
            );
            let now = d.now_ms();
            let closed = match d.pools.lock() {
                Ok(mut pools) => Databases::close_idle(&mut pools, now, idle, max),
                Err(_) => Vec::new(),
            };
            close(closed);
        }
    });
}

/// How long a write transaction waits for the file's writer before the
/// request answers 503 (as SQLite's busy timeout would).
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Idle connections kept per database file: as many as requests of one
/// clinic commonly wait on its writer at once, so that a busy clinic does
/// not open (and warm, and prepare statements on) fresh connections.
const MAX_IDLE: usize = 16;

/// A connection to one libSQL file; back to its pool when dropped, unless a
/// transaction was left open.
pub struct LocalConn {
    conn: Option<Pooled>,
    pool: Arc<Pool>,
    /// Held from `BEGIN IMMEDIATE` until the transaction ends.
    writing: Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>,
}

/// A connection with its prepared statements. Parsing SQL was a fifth of
/// the native host's CPU under load (BENCHMARKS.md); the application's
/// statements are a fixed set of texts, so each connection keeps them
/// prepared.
struct Pooled {
    conn: libsql::Connection,
    statements: Mutex<HashMap<String, libsql::Statement>>,
}

/// Prepared statements kept per connection (the application has fewer).
const MAX_STATEMENTS: usize = 256;

impl Pooled {
    fn new(conn: libsql::Connection) -> Self {
        Pooled {
            conn,
            statements: Mutex::new(HashMap::new()),
        }
    }

    /// The statement for `sql`, prepared once per connection.
    async fn statement(&self, sql: &str) -> Result<libsql::Statement, DbError> {
        if let Some(s) = self.statements.lock().map_err(poisoned)?.remove(sql) {
            return Ok(s);
        }
        self.conn.prepare(sql).await.map_err(map_err)
    }

    /// Back to the cache, reset (its locks released), for the next use.
    fn keep(&self, sql: &str, statement: libsql::Statement) {
        statement.reset();
        if let Ok(mut cache) = self.statements.lock() {
            if cache.len() >= MAX_STATEMENTS {
                cache.clear();
            }
            cache.insert(sql.to_owned(), statement);
        }
    }
}

/// Whether a statement starts a write transaction.
fn begins_write(sql: &str) -> bool {
    let mut words = sql.split_whitespace();
    let (a, b) = (words.next(), words.next());
    a.is_some_and(|w| w.eq_ignore_ascii_case("BEGIN"))
        && b.is_some_and(|w| {
            w.eq_ignore_ascii_case("IMMEDIATE") || w.eq_ignore_ascii_case("EXCLUSIVE")
        })
}

impl LocalConn {
    fn conn(&self) -> Result<&Pooled, DbError> {
        self.conn
            .as_ref()
            .ok_or_else(|| DbError::Other("connection already returned".into()))
    }

    /// Before a statement: a write transaction first waits for the file's
    /// writer. Anything but a plain read may write: the file is noted for
    /// the checkpointer.
    async fn before(&self, sql: &str) -> Result<(), DbError> {
        if !sql
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
        {
            self.pool.dirty.store(true, Ordering::Release);
        }
        if !begins_write(sql) {
            return Ok(());
        }
        let guard = tokio::time::timeout(WRITER_WAIT, self.pool.writer.clone().lock_owned())
            .await
            .map_err(|_| DbError::Unavailable("database is busy".into()))?;
        *self.writing.lock().map_err(poisoned)? = Some(guard);
        Ok(())
    }

    /// After a statement, whatever its outcome: once no transaction is
    /// open (committed, rolled back, or never begun), the writer is free.
    fn after<T>(&self, result: Result<T, DbError>) -> Result<T, DbError> {
        if self.conn.as_ref().is_none_or(|c| c.conn.is_autocommit()) {
            if let Ok(mut w) = self.writing.lock() {
                w.take();
            }
        }
        result
    }
}

impl Drop for LocalConn {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if c.conn.is_autocommit() {
                if let Ok(mut idle) = self.pool.idle.lock() {
                    if idle.len() < MAX_IDLE {
                        idle.push(c);
                    }
                }
            }
        }
    }
}

fn map_err(e: libsql::Error) -> DbError {
    match &e {
        libsql::Error::SqliteFailure(code, msg) => match code & 0xff {
            SQLITE_CONSTRAINT => DbError::Constraint(msg.clone()),
            SQLITE_BUSY | SQLITE_LOCKED => DbError::Unavailable(msg.clone()),
            SQLITE_FULL => DbError::Full(msg.clone()),
            _ => DbError::Other(e.to_string()),
        },
        _ => DbError::Other(e.to_string()),
    }
}

fn to_libsql(v: Value) -> libsql::Value {
    match v {
        Value::Null => libsql::Value::Null,
        Value::Integer(i) => libsql::Value::Integer(i),
        Value::Real(r) => libsql::Value::Real(r),
        Value::Text(s) => libsql::Value::Text(s),
        Value::Blob(b) => libsql::Value::Blob(b),
    }
}

fn from_libsql(v: libsql::Value) -> Value {
    match v {
        libsql::Value::Null => Value::Null,
        libsql::Value::Integer(i) => Value::Integer(i),
        libsql::Value::Real(r) => Value::Real(r),
        libsql::Value::Text(s) => Value::Text(s),
        libsql::Value::Blob(b) => Value::Blob(b),
    }
}

fn params(p: Vec<Value>) -> libsql::params::Params {
    libsql::params::Params::Positional(p.into_iter().map(to_libsql).collect())
}

impl Conn for LocalConn {
    async fn query(&self, sql: &str, p: Vec<Value>) -> Result<Vec<Row>, DbError> {
        self.before(sql).await?;
        let result = self.query_now(sql, p).await;
        self.after(result)
    }

    async fn execute(&self, sql: &str, p: Vec<Value>) -> Result<u64, DbError> {
        self.before(sql).await?;
        let result = self.execute_now(sql, p).await;
        self.after(result)
    }

    /// A local file costs no round trip: run it now.
    async fn execute_later(&self, sql: &str, p: Vec<Value>) -> Result<(), DbError> {
        self.execute(sql, p).await.map(|_| ())
    }

    async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.before(sql).await?;
        let result = match self.conn() {
            Ok(c) => c.conn.execute_batch(sql).await.map(|_| ()).map_err(map_err),
            Err(e) => Err(e),
        };
        self.after(result)
    }
}

impl LocalConn {
    async fn query_now(&self, sql: &str, p: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let conn = self.conn()?;
        let statement = conn.statement(sql).await?;
        let result = async {
            let mut rows = statement.query(params(p)).await.map_err(map_err)?;
            let n = rows.column_count();
            let mut out = Vec::new();
            while let Some(row) = rows.next().await.map_err(map_err)? {
                let mut r = Vec::with_capacity(n as usize);
                for i in 0..n {
                    r.push(from_libsql(row.get_value(i).map_err(map_err)?));
                }
                out.push(r);
            }
            Ok(out)
        }
        .await;
        conn.keep(sql, statement);
        result
    }

    async fn execute_now(&self, sql: &str, p: Vec<Value>) -> Result<u64, DbError> {
        let conn = self.conn()?;
        let statement = conn.statement(sql).await?;
        let result = statement
            .execute(params(p))
            .await
            .map(|n| n as u64)
            .map_err(map_err);
        conn.keep(sql, statement);
        result
    }
}

impl NativeHost {
    /// A host with one fixed root key (tests, benchmarks).
    pub fn new(region: &str, data_dir: PathBuf, root: RootKey) -> std::io::Result<Self> {
        Self::with_keys(
            region,
            data_dir,
            crate::root_key::KeyFile::fixed(RootKeyring::single(root)),
        )
    }

    /// A host whose root keys come from `root` (the region's key file,
    /// followed across rotations, for `serve` and operator commands).
    pub fn with_keys(
        region: &str,
        data_dir: PathBuf,
        root: crate::root_key::KeyFile,
    ) -> std::io::Result<Self> {
        let dir = data_dir.join(region);
        std::fs::create_dir_all(&dir)?;
        Ok(NativeHost {
            region: region.to_owned(),
            dir,
            root,
            databases: Databases::new(),
            checkpoints: None,
        })
    }

    /// The same host, signing the scheduled work's audit checkpoints into
    /// `dir` (one JSON-lines file per chain under `<dir>/<region>/`).
    pub fn with_checkpoint_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.checkpoints = dir.map(crate::ops::checkpoints::Directory);
        self
    }

    /// The same host over `databases`, shared with other regions' hosts:
    /// one cap on open clinics, and one checkpointer, for the process.
    pub fn with_databases(mut self, databases: Arc<Databases>) -> Self {
        self.databases = databases;
        self
    }

    /// The open databases (benchmarks and tests look at how many).
    pub fn databases(&self) -> &Databases {
        &self.databases
    }

    /// Shorter rounds and limits (tests): the checkpointer's period, how
    /// long a pool may idle, and how many may be open.
    pub fn tune(&self, checkpoint_every: Duration, idle_close: Duration, max_open: usize) {
        if let Ok(mut e) = self.databases.checkpoint_every.lock() {
            *e = checkpoint_every;
        }
        if let Ok(mut i) = self.databases.idle_close.lock() {
            *i = idle_close;
        }
        self.databases.max_open.store(max_open, Ordering::Relaxed);
    }

    /// The region's directory of files, `<data>/<region>`.
    pub fn region_dir(&self) -> &Path {
        &self.dir
    }

    fn clinic_path(&self, clinic: &ClinicId) -> Result<PathBuf, DbError> {
        // ClinicId admits only `[a-z]+_[a-z2-7]{26}`: no path can escape `dir`.
        if clinic.region() != self.region {
            return Err(DbError::NotFound);
        }
        Ok(self.dir.join(format!("{}.db", clinic.as_str())))
    }

    async fn connect(&self, path: PathBuf) -> Result<LocalConn, DbError> {
        let cached = self
            .databases
            .pools
            .lock()
            .map_err(poisoned)?
            .get(&path)
            .cloned();
        let pool = match cached {
            Some(p) => p,
            None => {
                let db = libsql::Builder::new_local(&path)
                    .build()
                    .await
                    .map_err(map_err)?;
                let conn = db.connect().map_err(map_err)?;
                // Another opener (a request and the purge timer at start-up)
                // may hold the file: wait for it rather than fail.
                conn.query("PRAGMA busy_timeout = 5000", ())
                    .await
                    .map_err(map_err)?;
                // WAL once per file; it persists in the database header.
                conn.query("PRAGMA journal_mode = WAL", ())
                    .await
                    .map_err(map_err)?;
                let runtime = tokio::runtime::Handle::try_current().ok();
                if let Some(r) = &runtime {
                    if !self.databases.checkpointer.swap(true, Ordering::AcqRel) {
                        spawn_checkpointer(r, Arc::downgrade(&self.databases));
                    }
                }
                let pool = Arc::new(Pool {
                    path: path.clone(),
                    db,
                    idle: Mutex::new(Vec::new()),
                    last_used: AtomicU64::new(self.databases.now_ms()),
                    dirty: AtomicBool::new(true),
                    checkpoint_conn: tokio::sync::Mutex::new(None),
                    writer: Arc::new(tokio::sync::Mutex::new(())),
                    checkpointer: runtime.is_some(),
                });
                let (idle, max) = (
                    self.databases
                        .idle_close
                        .lock()
                        .map(|i| *i)
                        .unwrap_or(IDLE_CLOSE),
                    self.databases.max_open.load(Ordering::Relaxed),
                );
                let (pool, closed) = {
                    let mut pools = self.databases.pools.lock().map_err(poisoned)?;
                    let pool = pools.entry(path).or_insert(pool).clone();
                    let closed = if pools.len() > max {
                        Databases::close_idle(&mut pools, self.databases.now_ms(), idle, max)
                    } else {
                        Vec::new()
                    };
                    (pool, closed)
                };
                close(closed);
                pool
            }
        };
        pool.last_used
            .store(self.databases.now_ms(), Ordering::Relaxed);
        let reused = pool.idle.lock().map_err(poisoned)?.pop();
        let conn = match reused {
            Some(c) => c,
            None => {
                let conn = pool.db.connect().map_err(map_err)?;
                // Per-connection settings. NORMAL in WAL mode survives a crash
                // of this process; the last commits may be lost on power failure.
                conn.query("PRAGMA busy_timeout = 5000", ())
                    .await
                    .map_err(map_err)?;
                conn.execute("PRAGMA foreign_keys = ON", ())
                    .await
                    .map_err(map_err)?;
                conn.execute("PRAGMA synchronous = NORMAL", ())
                    .await
                    .map_err(map_err)?;
                if pool.checkpointer {
                    // The checkpointer task does it (see CHECKPOINT_EVERY).
                    conn.query("PRAGMA wal_autocheckpoint = 0", ())
                        .await
                        .map_err(map_err)?;
                }
                // Reads map the file instead of copying pages into each
                // connection's cache (a tenth of the CPU under load, and
                // memory per idle connection; BENCHMARKS.md). Writes still
                // go through the WAL.
                conn.query("PRAGMA mmap_size = 268435456", ())
                    .await
                    .map_err(map_err)?;
                // A purged patient's pages are zeroed, not left free.
                conn.query("PRAGMA secure_delete = ON", ())
                    .await
                    .map_err(map_err)?;
                Pooled::new(conn)
            }
        };
        Ok(LocalConn {
            conn: Some(conn),
            pool,
            writing: Mutex::new(None),
        })
    }
}

fn poisoned<T>(_: T) -> DbError {
    DbError::Other("database cache poisoned".into())
}

impl Host for NativeHost {
    type Conn = LocalConn;
    type Checkpoints = crate::ops::checkpoints::Directory;

    fn checkpoints(&self) -> Option<&Self::Checkpoints> {
        self.checkpoints.as_ref()
    }

    async fn directory(&self) -> Result<LocalConn, DbError> {
        self.connect(self.dir.join("directory.db")).await
    }

    async fn open_clinic(&self, clinic: &ClinicId) -> Result<LocalConn, DbError> {
        let path = self.clinic_path(clinic)?;
        if !path.exists() {
            return Err(DbError::NotFound);
        }
        self.connect(path).await
    }

    async fn create_clinic(&self, clinic: &ClinicId) -> Result<LocalConn, DbError> {
        let path = self.clinic_path(clinic)?;
        if path.exists() {
            return Err(DbError::Constraint("clinic database already exists".into()));
        }
        self.connect(path).await
    }

    async fn drop_clinic(&self, clinic: &ClinicId) -> Result<(), DbError> {
        let path = self.clinic_path(clinic)?;
        // Forget the pool first: no new connection reaches the file.
        self.databases.pools.lock().map_err(poisoned)?.remove(&path);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DbError::Other(format!("cannot remove a clinic file: {e}"))),
            }
        }
        Ok(())
    }

    /// Deleted cells are already zeroed (`secure_delete`); a truncating
    /// checkpoint moves every page into the database file and empties the
    /// WAL, so no frame with the old bytes is left.
    async fn scrub(&self, clinic: Option<&ClinicId>) -> Result<bool, DbError> {
        let conn = match clinic {
            Some(c) => self.open_clinic(c).await?,
            None => self.directory().await?,
        };
        // The background checkpointer may hold the checkpoint for a moment:
        // SQLite then answers busy at once, without its busy handler.
        for _ in 0..40 {
            let rows = conn
                .query("PRAGMA wal_checkpoint(TRUNCATE)", vec![])
                .await?;
            // (busy, log frames, checkpointed frames): busy = 1 when a
            // reader or another checkpoint held it back.
            if matches!(
                rows.first().and_then(|r| r.first()),
                Some(Value::Integer(0))
            ) {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(false)
    }

    fn root_keys(&self) -> Arc<RootKeyring> {
        self.root.keys()
    }

    fn now(&self) -> i64 {
        crate::ops::now()
    }

    fn fill_random(&self, buf: &mut [u8]) {
        os_random(buf)
    }
}

/// Fills `buf` from the OS random source: this machine's randomness, for the
/// native host and for operator commands on a sqld region.
pub fn os_random(buf: &mut [u8]) {
    // Without an OS random source no key, nonce or id is safe to make.
    getrandom::fill(buf).expect("the OS random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use amanah_functions::store::{self, schema};

    fn host(dir: &std::path::Path) -> NativeHost {
        let root = RootKey::new(
            "pk",
            1,
            amanah_functions::crypto::keys::KeyBytes::new([1; 32]),
        );
        NativeHost::new("pk", dir.to_path_buf(), root).expect("host")
    }

    async fn clinic(h: &NativeHost) -> (ClinicId, LocalConn) {
        let id = ClinicId::generate("pk", [2; 16]);
        let conn = h.create_clinic(&id).await.expect("create");
        store::migrate(&conn, schema::clinic())
            .await
            .expect("schema");
        (id, conn)
    }

    #[tokio::test]
    async fn cached_statements_rebind_and_survive_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let h = host(dir.path());
        let (_, c) = clinic(&h).await;
        c.execute_script("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .await
            .expect("table");
        let insert = "INSERT INTO t (k, v) VALUES (?1, ?2)";
        for k in 0..5 {
            c.execute(insert, vec![k.into(), format!("v{k}").into()])
                .await
                .expect("insert");
        }
        // The same cached statement fails on a duplicate key, then works.
        let dup = c.execute(insert, vec![1.into(), "again".into()]).await;
        assert!(matches!(dup, Err(DbError::Constraint(_))), "{dup:?}");
        c.execute(insert, vec![9.into(), "v9".into()])
            .await
            .expect("after the error");
        let select = "SELECT v FROM t WHERE k = ?1";
        for k in [0, 4, 9] {
            let rows = c.query(select, vec![k.into()]).await.expect("select");
            assert_eq!(rows, vec![vec![Value::Text(format!("v{k}"))]]);
        }
        // An unfinished row set never holds a statement: a transaction commits.
        c.execute("BEGIN IMMEDIATE", vec![]).await.expect("begin");
        c.query("SELECT v FROM t", vec![])
            .await
            .expect("select all");
        c.execute("COMMIT", vec![]).await.expect("commit");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_of_one_file_queue_instead_of_failing_busy() {
        let dir = tempfile::tempdir().expect("tmp");
        let h = Arc::new(host(dir.path()));
        let (id, first) = clinic(&h).await;
        first
            .execute_script("CREATE TABLE n (i INTEGER)")
            .await
            .expect("table");
        first
            .execute("BEGIN IMMEDIATE", vec![])
            .await
            .expect("begin");
        // Twenty writers arrive while the first holds the file; they wait
        // their turn in the process's queue, not in SQLite's busy handler.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (h, id) = (h.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let c = h.open_clinic(&id).await?;
                // No busy handler: without the queue, SQLite would answer
                // busy at once.
                c.query("PRAGMA busy_timeout = 0", vec![]).await?;
                c.execute("BEGIN IMMEDIATE", vec![]).await?;
                c.execute("INSERT INTO n (i) VALUES (?1)", vec![Value::Integer(i)])
                    .await?;
                c.execute("COMMIT", vec![]).await.map(|_| ())
            }));
        }
        tokio::task::yield_now().await;
        first
            .execute("INSERT INTO n (i) VALUES (-1)", vec![])
            .await
            .expect("first writes");
        first
            .execute("COMMIT", vec![])
            .await
            .expect("first commits");
        for t in tasks {
            t.await.expect("task").expect("a queued writer failed");
        }
        let rows = first
            .query("SELECT count(*) FROM n", vec![])
            .await
            .expect("count");
        assert_eq!(rows, vec![vec![Value::Integer(21)]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_removed_by_another_process_is_not_brought_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let h = host(dir.path());
        h.tune(Duration::from_millis(10), IDLE_CLOSE, MAX_OPEN);
        let (id, c) = clinic(&h).await;
        drop(c);
        // As `amanah purge` does from its own process, before the
        // checkpointer's first round.
        let file = dir.path().join("pk").join(format!("{}.db", id.as_str()));
        crate::ops::remove_db_files(&file);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!file.exists(), "the purged clinic's file came back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_keeps_the_log_from_growing() {
        let dir = tempfile::tempdir().expect("tmp");
        let h = host(dir.path());
        h.tune(Duration::from_millis(10), IDLE_CLOSE, MAX_OPEN);
        let (id, c) = clinic(&h).await;
        c.execute_script("CREATE TABLE b (x BLOB)")
            .await
            .expect("table");
        let wal = dir
            .path()
            .join("pk")
            .join(format!("{}.db-wal", id.as_str()));
        // Request connections never checkpoint: without the checkpointer
        // the log takes every frame written (60 rounds of ~200 here, ~50 MB).
        // With it, the log starts over, and its file (which keeps its
        // largest size) stays within a few times the restart threshold.
        for _ in 0..60 {
            for _ in 0..25 {
                c.execute("BEGIN IMMEDIATE", vec![]).await.expect("begin");
                for _ in 0..4 {
                    c.execute("INSERT INTO b (x) VALUES (zeroblob(4000))", vec![])
                        .await
                        .expect("insert");
                }
                c.execute("COMMIT", vec![]).await.expect("commit");
            }
            // Room for the checkpointer (every 10 ms here) between rounds:
            // a few of its turns, so that a busy machine (the unit tests
            // run again beside a wasm deployment's suite) does not starve
            // it into a lag the bound below mistakes for growth. Without
            // the checkpointer the log grows whatever the pause.
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        }
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let bound = 4 * RESTART_FRAMES as u64 * 4096;
        assert!(len < bound, "the log grew to {len} bytes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_clinics_are_closed_and_at_most_so_many_stay_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let h = host(dir.path());
        h.tune(Duration::from_millis(10), Duration::from_secs(3600), 8);
        for i in 0..40u8 {
            let id = ClinicId::generate("pk", [i; 16]);
            let c = h.create_clinic(&id).await.expect("create");
            c.execute_script("CREATE TABLE t (x)").await.expect("table");
        }
        // Never more than the cap once nobody holds them.
        assert!(h.databases().open() <= 9, "{} open", h.databases().open());
        // Idle ones close on the checkpointer's round.
        h.tune(Duration::from_millis(10), Duration::from_millis(1), 8);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.databases().open(), 0);
        // A closed clinic opens again on its next use.
        let id = ClinicId::generate("pk", [3; 16]);
        let c = h.open_clinic(&id).await.expect("reopen");
        assert!(c.query("SELECT count(*) FROM t", vec![]).await.is_ok());
    }
}
