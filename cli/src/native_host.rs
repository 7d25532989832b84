//! The native [`Host`]: each clinic is a libSQL file `<data>/<region>/<clinic>.db`
//! and the region directory is `<data>/<region>/directory.db`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use amanah_functions::crypto::keys::RootKey;
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
    root: RootKey,
    databases: Mutex<HashMap<PathBuf, Arc<Pool>>>,
}

/// Idle connections of one database file, reused across requests.
struct Pool {
    db: libsql::Database,
    idle: Mutex<Vec<libsql::Connection>>,
}

/// Idle connections kept per database file.
const MAX_IDLE: usize = 4;

/// A connection to one libSQL file; back to its pool when dropped, unless a
/// transaction was left open.
pub struct LocalConn {
    conn: Option<libsql::Connection>,
    pool: Arc<Pool>,
}

impl LocalConn {
    fn conn(&self) -> Result<&libsql::Connection, DbError> {
        self.conn
            .as_ref()
            .ok_or_else(|| DbError::Other("connection already returned".into()))
    }
}

impl Drop for LocalConn {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if c.is_autocommit() {
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
        let mut rows = self.conn()?.query(sql, params(p)).await.map_err(map_err)?;
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

    async fn execute(&self, sql: &str, p: Vec<Value>) -> Result<u64, DbError> {
        self.conn()?.execute(sql, params(p)).await.map_err(map_err)
    }

    /// A local file costs no round trip: run it now.
    async fn execute_later(&self, sql: &str, p: Vec<Value>) -> Result<(), DbError> {
        self.execute(sql, p).await.map(|_| ())
    }

    async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.conn()?
            .execute_batch(sql)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

impl NativeHost {
    pub fn new(region: &str, data_dir: PathBuf, root: RootKey) -> std::io::Result<Self> {
        let dir = data_dir.join(region);
        std::fs::create_dir_all(&dir)?;
        Ok(NativeHost {
            region: region.to_owned(),
            dir,
            root,
            databases: Mutex::new(HashMap::new()),
        })
    }

    fn clinic_path(&self, clinic: &ClinicId) -> Result<PathBuf, DbError> {
        // ClinicId admits only `[a-z]+_[a-z2-7]{26}`: no path can escape `dir`.
        if clinic.region() != self.region {
            return Err(DbError::NotFound);
        }
        Ok(self.dir.join(format!("{}.db", clinic.as_str())))
    }

    async fn connect(&self, path: PathBuf) -> Result<LocalConn, DbError> {
        let cached = self.databases.lock().map_err(poisoned)?.get(&path).cloned();
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
                let pool = Arc::new(Pool {
                    db,
                    idle: Mutex::new(Vec::new()),
                });
                self.databases
                    .lock()
                    .map_err(poisoned)?
                    .entry(path)
                    .or_insert(pool)
                    .clone()
            }
        };
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
                // A purged patient's pages are zeroed, not left free.
                conn.query("PRAGMA secure_delete = ON", ())
                    .await
                    .map_err(map_err)?;
                conn
            }
        };
        Ok(LocalConn {
            conn: Some(conn),
            pool,
        })
    }
}

fn poisoned<T>(_: T) -> DbError {
    DbError::Other("database cache poisoned".into())
}

impl Host for NativeHost {
    type Conn = LocalConn;

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
        self.databases.lock().map_err(poisoned)?.remove(&path);
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
        let rows = conn
            .query("PRAGMA wal_checkpoint(TRUNCATE)", vec![])
            .await?;
        // (busy, log frames, checkpointed frames): busy = 1 when a reader held it back.
        Ok(matches!(
            rows.first().and_then(|r| r.first()),
            Some(Value::Integer(0))
        ))
    }

    fn root_key(&self) -> &RootKey {
        &self.root
    }

    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // Without an OS random source no key, nonce or id is safe to make.
        getrandom::fill(buf).expect("the OS random source failed");
    }
}
