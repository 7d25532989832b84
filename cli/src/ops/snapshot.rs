//! How a backup copies one database of a region into a fresh local file,
//! one transaction's view of it, for each kind of store.
//!
//! - The native host's files: `VACUUM INTO` the new file.
//! - A libSQL server's namespaces (`--sqld`): the schema and rows read in
//!   one read transaction over Hrana and written into a new local file
//!   ([`amanah_functions::ops::copy`]), every table's row count checked.
//!
//! The copy lands in the backup's work directory, where a second, local host
//! opens it; the rest of a backup (emptying the directory of keys, counting,
//! sealing) is the same for both.

use std::future::Future;
use std::path::Path;

use amanah_functions::host::{Conn, DbError, Host};
use amanah_functions::ids::ClinicId;
use amanah_functions::ops::copy::copy_database;
use amanah_functions::store::hrana::Transport;
use amanah_functions::store::sqld::SqldHost;
use amanah_functions::App;

use crate::native_host::NativeHost;

/// Which database of the region.
#[derive(Clone, Copy)]
pub enum Db<'a> {
    Directory,
    Clinic(&'a ClinicId),
}

/// A host whose databases a backup can copy into `scratch`'s files.
pub trait Snapshot: Host {
    /// What the region's databases are, for reports: `files` or `sqld`.
    const STORE: &'static str;

    /// Copies `live` (the database `db` of this host) into the same
    /// database of `scratch`, which must not exist yet.
    fn snapshot(
        live: &Self::Conn,
        scratch: &App<NativeHost>,
        db: Db<'_>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Whether an opened database exists: a store that creates databases by
/// a call of its own (a libSQL server's namespaces) hands out a connection
/// to any name and only its first statement says there is none.
pub async fn exists<C: Conn>(live: &C) -> Result<bool, String> {
    match live.query("SELECT 1", vec![]).await {
        Ok(_) => Ok(true),
        Err(DbError::NotFound) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// The file the scratch host keeps `db` in.
pub fn scratch_file(scratch: &App<NativeHost>, db: Db<'_>) -> std::path::PathBuf {
    let dir = scratch.host().region_dir();
    match db {
        Db::Directory => dir.join("directory.db"),
        Db::Clinic(c) => dir.join(format!("{}.db", c.as_str())),
    }
}

impl Snapshot for NativeHost {
    const STORE: &'static str = "files";

    async fn snapshot(
        live: &Self::Conn,
        scratch: &App<NativeHost>,
        db: Db<'_>,
    ) -> Result<(), String> {
        let to = scratch_file(scratch, db);
        vacuum_into(live, &to).await
    }
}

/// `VACUUM INTO` a new file.
async fn vacuum_into<C: Conn>(conn: &C, to: &Path) -> Result<(), String> {
    let path = to
        .to_str()
        .ok_or("the backup path is not UTF-8")?
        .to_owned();
    conn.execute("VACUUM INTO ?1", vec![path.into()])
        .await
        .map(|_| ())
        .map_err(|e| format!("snapshot failed: {e}"))
}

impl<T: Transport + Clone + 'static> Snapshot for SqldHost<T> {
    const STORE: &'static str = "sqld";

    async fn snapshot(
        live: &Self::Conn,
        scratch: &App<NativeHost>,
        db: Db<'_>,
    ) -> Result<(), String> {
        let host = scratch.host();
        let to = match db {
            Db::Directory => host.directory().await,
            Db::Clinic(c) => host.create_clinic(c).await,
        }
        .map_err(|e| format!("cannot create the snapshot's file: {e}"))?;
        copy_database(live, &to)
            .await
            .map(|_| ())
            .map_err(|e| format!("snapshot failed: {}", e.log_text()))
    }
}

#[cfg(test)]
mod tests {
    use amanah_functions::crypto::keys::{KeyBytes, RootKey};
    use amanah_functions::host::{Conn, Host, Value};
    use amanah_functions::ids::ClinicId;
    use amanah_functions::ops::copy::copy_database;
    use amanah_functions::store::{self, schema};

    use crate::native_host::NativeHost;

    fn host(dir: &std::path::Path) -> NativeHost {
        let root = RootKey::new("pk", 1, KeyBytes::new([1; 32]));
        NativeHost::new("pk", dir.to_path_buf(), root).expect("host")
    }

    async fn all(c: &impl Conn, sql: &str) -> Vec<Vec<Value>> {
        c.query(sql, vec![]).await.expect(sql)
    }

    #[tokio::test]
    async fn a_copy_holds_every_row_index_and_trigger_of_the_source() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src_host, dst_host) = (host(a.path()), host(b.path()));
        let id = ClinicId::generate("pk", [3; 16]);
        let src = src_host.create_clinic(&id).await.unwrap();
        store::migrate(&src, schema::clinic()).await.unwrap();
        src.execute_script(
            "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, r REAL, n INTEGER) WITHOUT ROWID;
             CREATE INDEX kv_r ON kv (r);",
        )
        .await
        .unwrap();
        // More rows than one page, with every kind of value.
        for i in 0..1203i64 {
            src.execute(
                "INSERT INTO kv VALUES (?1, ?2, ?3, ?4)",
                vec![
                    format!("k\"{i}").into(),
                    Value::Blob(vec![0, 255, i as u8]),
                    Value::Real(i as f64 / 3.0),
                    if i % 2 == 0 { Value::Null } else { i.into() },
                ],
            )
            .await
            .unwrap();
        }
        let dst = dst_host.create_clinic(&id).await.unwrap();
        let copied = copy_database(&src, &dst).await.expect("copy");
        assert_eq!(copied["kv"], 1203);
        let q = "SELECT k, v, r, n FROM kv ORDER BY k";
        assert_eq!(all(&src, q).await, all(&dst, q).await);
        let schema_q = "SELECT type, name, sql FROM sqlite_schema ORDER BY name";
        assert_eq!(all(&src, schema_q).await, all(&dst, schema_q).await);
        let v = "SELECT version FROM schema_migrations ORDER BY version";
        assert_eq!(all(&src, v).await, all(&dst, v).await);
        // The audit trail's append-only triggers came along.
        let triggers = all(
            &dst,
            "SELECT name FROM sqlite_schema WHERE type = 'trigger'",
        )
        .await;
        assert!(
            triggers.contains(&vec![Value::Text("audit_no_delete".into())]),
            "{triggers:?}"
        );
        dst.execute_script("DROP TABLE kv").await.unwrap();
        // A destination that holds tables is refused, and left as it was.
        let again = copy_database(&src, &dst).await;
        assert!(again.is_err(), "copied over a database with tables");
        let n = all(&dst, "SELECT count(*) FROM sqlite_schema WHERE name = 'kv'").await;
        assert_eq!(n, vec![vec![Value::Integer(0)]]);
    }
}
