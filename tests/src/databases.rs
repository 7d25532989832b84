//! A deployment's databases and files as someone holding them would see
//! them: a clinic's database file or sqld namespace, SQL run on it
//! directly (to tamper, to count sealed values), and every file a region
//! writes (for plaintext scans).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::deployment::{Deployment, Layout};
use crate::fixtures::Clinic;

impl Deployment {
    /// The file holding a clinic's database, where this deployment's files
    /// can be read.
    pub fn db_file(&self, clinic: &Clinic) -> Option<PathBuf> {
        match &self.layout {
            Layout::Files => self
                .data_dir
                .as_ref()
                .map(|d| d.join(&clinic.region).join(format!("{}.db", clinic.id))),
            Layout::Sqld(_) => self
                .sqld(&clinic.region)
                .map(|s| s.dir.join("dbs").join(s.namespace(&clinic.id)).join("data")),
        }
    }

    /// Drops the audit table's append-only triggers and runs `sql` on a
    /// clinic's database, as someone with the database itself could (to cut
    /// the chain short, edit an entry, …).
    pub fn tamper_audit(&self, clinic: &Clinic, sql: &str) {
        self.clinic_sql(
            clinic,
            &[
                "DROP TRIGGER IF EXISTS audit_no_delete",
                "DROP TRIGGER IF EXISTS audit_no_update",
                sql,
            ],
        )
        .expect("this deployment's databases are reachable")
        .expect("tamper with the audit table");
    }

    /// Runs statements directly on a clinic's database, as someone with
    /// access to the database itself (not the API) could; `None` where this
    /// deployment's databases cannot be reached.
    pub fn clinic_sql(&self, clinic: &Clinic, statements: &[&str]) -> Option<Result<(), String>> {
        match &self.layout {
            Layout::Files => self.db_file(clinic).map(|f| sql_on_file(&f, statements)),
            Layout::Sqld(_) => self
                .sqld(&clinic.region)
                .map(|s| sql_on_sqld(&s.url, &s.namespace(&clinic.id), statements)),
        }
    }

    /// The first column of the first row of a query on a region's directory
    /// or, with `clinic`, on a clinic's database (blobs as lowercase hex);
    /// `None` where this deployment's databases cannot be reached.
    pub fn scalar(
        &self,
        region: &str,
        clinic: Option<&Clinic>,
        sql: &str,
    ) -> Option<Result<Value, String>> {
        let ns = clinic.map_or("directory", |c| c.id.as_str());
        match &self.layout {
            Layout::Files => self
                .data_dir
                .as_ref()
                .map(|d| scalar_on_file(&d.join(region).join(format!("{ns}.db")), sql)),
            Layout::Sqld(_) => self
                .sqld(region)
                .map(|s| scalar_on_sqld(&s.url, &s.namespace(ns), sql)),
        }
    }

    /// Counts the values of a clinic's database sealed under data key
    /// `version` (the header's bytes 2..5), in every sealed column the key
    /// sweep covers, read from the database itself (its file, or its sqld
    /// namespace over Hrana) as someone with it would.
    pub fn sealed_under(&self, clinic: &Clinic, version: u32) -> i64 {
        let v = format!("X'{version:08x}'");
        let mut n = 0;
        for t in amanah_functions::store::schema::sealed() {
            for c in &t.columns {
                let sql = format!(
                    "SELECT count(*) FROM {} WHERE substr({c}, 2, 4) = {v}",
                    t.table
                );
                n += self
                    .scalar(&clinic.region, Some(clinic), &sql)
                    .expect("a deployment whose databases can be read")
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .as_i64()
                    .unwrap_or_else(|| panic!("{sql}: not a number"));
            }
        }
        n
    }

    /// Every file of a region's directory database (database, WAL, and for
    /// sqld its replication log).
    pub fn directory_files(&self, region: &str) -> Vec<PathBuf> {
        match &self.layout {
            Layout::Files => self
                .data_dir
                .iter()
                .flat_map(|d| files_under(&d.join(region)))
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("directory.db"))
                })
                .collect(),
            Layout::Sqld(_) => self
                .sqld(region)
                .map(|s| files_under(&s.dir.join("dbs").join(s.namespace("directory"))))
                .unwrap_or_default(),
        }
    }

    /// Every file of a clinic's database, where they can be read.
    pub fn clinic_files(&self, clinic: &Clinic) -> Vec<PathBuf> {
        let Some(main) = self.db_file(clinic) else {
            return Vec::new();
        };
        match &self.layout {
            Layout::Files => ["", "-wal", "-shm"]
                .iter()
                .map(|s| PathBuf::from(format!("{}{s}", main.display())))
                .filter(|p| p.exists())
                .collect(),
            Layout::Sqld(_) => main.parent().map(files_under).unwrap_or_default(),
        }
    }
}

/// Every file under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs `work` on a connection to a database file (waiting for the
/// server's locks), on a runtime of its own.
fn on_file<T, F, Fut>(path: &Path, work: F) -> Result<T, String>
where
    F: FnOnce(libsql::Connection) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let conn = db.connect().map_err(|e| e.to_string())?;
        conn.query("PRAGMA busy_timeout = 5000", ())
            .await
            .map_err(|e| e.to_string())?;
        work(conn).await
    })
}

/// Runs statements directly on a database file, as an attacker with the file would.
pub fn sql_on_file(path: &Path, statements: &[&str]) -> Result<(), String> {
    on_file(path, |conn| async move {
        for s in statements {
            conn.execute(s, ()).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

fn libsql_json(v: libsql::Value) -> Value {
    match v {
        libsql::Value::Null => Value::Null,
        libsql::Value::Integer(i) => json!(i),
        libsql::Value::Real(r) => json!(r),
        libsql::Value::Text(t) => json!(t),
        libsql::Value::Blob(b) => json!(data_encoding::HEXLOWER.encode(&b)),
    }
}

/// The first column of the first row of a query on a database file
/// (`Value::Null` for no row).
pub fn scalar_on_file(path: &Path, sql: &str) -> Result<Value, String> {
    on_file(path, |conn| async move {
        let mut rows = conn.query(sql, ()).await.map_err(|e| e.to_string())?;
        match rows.next().await.map_err(|e| e.to_string())? {
            Some(row) => Ok(libsql_json(row.get_value(0).map_err(|e| e.to_string())?)),
            None => Ok(Value::Null),
        }
    })
}

/// The first column of the first row of a query on a sqld namespace.
pub fn scalar_on_sqld(url: &str, namespace: &str, sql: &str) -> Result<Value, String> {
    let body = hrana(url, namespace, &[sql])?;
    let result = &body["results"][0];
    if result["type"] == "error" {
        return Err(result["error"]["message"]
            .as_str()
            .unwrap_or("error")
            .to_owned());
    }
    let cell = &result["response"]["result"]["rows"][0][0];
    Ok(match cell["type"].as_str() {
        None | Some("null") => Value::Null,
        Some("integer") => json!(cell["value"].as_str().and_then(|v| v.parse::<i64>().ok())),
        Some("blob") => {
            let b = data_encoding::BASE64
                .decode(cell["base64"].as_str().unwrap_or("").as_bytes())
                .or_else(|_| {
                    data_encoding::BASE64_NOPAD
                        .decode(cell["base64"].as_str().unwrap_or("").as_bytes())
                })
                .map_err(|e| e.to_string())?;
            json!(data_encoding::HEXLOWER.encode(&b))
        }
        _ => cell["value"].clone(),
    })
}

/// One Hrana pipeline of statements on a namespace, its stream closed at
/// the end; the parsed response.
fn hrana(url: &str, namespace: &str, statements: &[&str]) -> Result<Value, String> {
    let requests: Vec<Value> = statements
        .iter()
        .map(|s| json!({"type": "execute", "stmt": {"sql": s}}))
        .chain([json!({"type": "close"})])
        .collect();
    pipeline(url, namespace, requests)
}

/// `POST /v3/pipeline` of `requests` on a fresh stream of a namespace.
fn pipeline(url: &str, namespace: &str, requests: Vec<Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("{url}/v3/pipeline"))
        .header(
            "x-namespace-bin",
            data_encoding::BASE64_NOPAD.encode(namespace.as_bytes()),
        )
        .send_json(json!({"baton": null, "requests": requests}))
        .map_err(|e| e.to_string())?;
    resp.body_mut().read_json().map_err(|e| e.to_string())
}

/// Runs statements on a sqld namespace over Hrana, stopping at the first
/// failure.
pub fn sql_on_sqld(url: &str, namespace: &str, statements: &[&str]) -> Result<(), String> {
    let body = hrana(url, namespace, statements)?;
    for r in body["results"].as_array().into_iter().flatten() {
        if r["type"] == "error" {
            return Err(r["error"]["message"].as_str().unwrap_or("error").to_owned());
        }
    }
    if body["results"].is_null() {
        return Err(body.to_string());
    }
    Ok(())
}

/// Starts a write transaction on a sqld namespace and leaves its stream
/// open, as a client that died mid-transaction does: sqld holds the lock
/// until its transaction timeout (5 s) lets a waiting writer take it.
pub fn abandon_write_transaction(url: &str, namespace: &str) -> Result<(), String> {
    // No `close`: the stream, and its transaction, stay open.
    let body = pipeline(
        url,
        namespace,
        vec![
            json!({"type": "execute", "stmt": {"sql": "BEGIN IMMEDIATE"}}),
            json!({"type": "execute", "stmt": {"sql": "SELECT count(*) FROM patients"}}),
        ],
    )?;
    match body["results"].as_array() {
        Some(r) if r.iter().all(|x| x["type"] == "ok") => Ok(()),
        _ => Err(body.to_string()),
    }
}
