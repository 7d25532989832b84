//! `amanah restore --into-sqld`: a restored, verified data dir's databases
//! copied into a fresh libSQL server, the way a Worker or Spin region comes
//! back after losing its server: one namespace per restored clinic and the
//! region directory, created through the server's admin API.
//!
//! The server must be fresh: a region directory with tables, or a namespace
//! of a restored clinic, already there refuses the whole copy before it
//! writes anything (a restore never merges into live data). Clinics are
//! copied first and the directory last, so hosts pointed at the server find
//! no clinic in the directory whose database is not there yet. Afterwards
//! every copied database is checked on the server itself: row counts equal
//! the restored files', and each audit chain verifies from its first entry
//! to the same head.

use amanah_functions::audit::Verification;
use amanah_functions::host::{Conn, DbError, Host};
use amanah_functions::ids::ClinicId;
use amanah_functions::ops::copy::{copy_database, table_count};
use amanah_functions::ops::{self, Chain};
use amanah_functions::store::hrana::Transport;
use amanah_functions::store::sqld::SqldHost;
use amanah_functions::App;
use serde::Serialize;

use super::progress;
use super::snapshot::exists;
use crate::native_host::NativeHost;

/// What went into the server.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub url: String,
    /// Namespaces created: the restored clinics' and the directory.
    pub namespaces: usize,
    /// Rows copied into them, every table counted.
    pub rows: i64,
}

/// How many tables a database on the server holds (`None`: no such
/// namespace).
async fn tables<C: Conn>(conn: &C) -> Result<Option<i64>, String> {
    if !exists(conn).await? {
        return Ok(None);
    }
    table_count(conn).await.map(Some).map_err(|e| e.log_text())
}

/// Refuses a server that already holds region data: checked before a
/// restore starts, so a refused one writes nothing anywhere.
pub async fn check_fresh<T: Transport + Clone + 'static>(
    into: &App<SqldHost<T>>,
    url: &str,
) -> Result<(), String> {
    let dir = into.host().directory().await.map_err(|e| e.to_string())?;
    match tables(&dir).await {
        Ok(None | Some(0)) => Ok(()),
        Ok(Some(_)) => Err(format!(
            "the libSQL server at {url} already holds region {}'s directory: \
             a restore goes into a fresh server, never over live data",
            into.config().region.id
        )),
        Err(e) => Err(format!("the libSQL server at {url}: {e}")),
    }
}

/// Copies the directory and `clinics` of `staged` (a restore's verified
/// files) into the fresh server of `into`, then checks them there.
pub async fn run<T: Transport + Clone + 'static>(
    staged: &App<NativeHost>,
    into: &App<SqldHost<T>>,
    url: &str,
    clinics: &[ClinicId],
    quiet: bool,
) -> Result<Published, String> {
    // Again, right before writing: the restore into files took a while.
    check_fresh(into, url).await?;
    for id in clinics {
        let conn = into.host().open_clinic(id).await.map_err(text)?;
        if tables(&conn).await?.is_some() {
            return Err(format!(
                "the libSQL server at {url} already has a database {}: \
                 a restore goes into a fresh server, never over live data",
                id.as_str()
            ));
        }
    }
    let bar = progress(clinics.len() as u64 + 1, "databases", quiet);
    let mut rows = 0i64;
    for id in clinics {
        let from = staged.host().open_clinic(id).await.map_err(text)?;
        let to = into.host().create_clinic(id).await.map_err(|e| {
            format!(
                "cannot create the namespace of {} on {url}: {e}",
                id.as_str()
            )
        })?;
        rows += copied(copy_database(&from, &to).await, id.as_str())?;
        bar.inc(1);
    }
    into.host()
        .create_directory()
        .await
        .map_err(|e| format!("cannot create the directory's namespace on {url}: {e}"))?;
    let from = staged.host().directory().await.map_err(text)?;
    let to = into.host().directory().await.map_err(text)?;
    rows += copied(copy_database(&from, &to).await, "the directory")?;
    bar.finish_and_clear();

    let mut problems = Vec::new();
    for id in clinics {
        let from = staged.host().open_clinic(id).await.map_err(text)?;
        let to = into.host().open_clinic(id).await.map_err(text)?;
        let (want, got) = (counts(&from).await?, counts(&to).await?);
        if want != got {
            problems.push(format!(
                "{}: row counts on the server {got:?}, restored {want:?}",
                id.as_str()
            ));
        }
        let chain = Chain::Clinic(id.clone());
        if let Err(e) = same_chain(staged, into, &chain).await {
            problems.push(format!("{}: {e}", id.as_str()));
        }
    }
    if let Err(e) = same_chain(staged, into, &Chain::Platform).await {
        problems.push(format!("the platform audit stream: {e}"));
    }
    if !problems.is_empty() {
        return Err(format!(
            "the copy on {url} did not verify:\n  {}",
            problems.join("\n  ")
        ));
    }
    Ok(Published {
        url: url.to_owned(),
        namespaces: clinics.len() + 1,
        rows,
    })
}

fn text(e: DbError) -> String {
    e.to_string()
}

fn copied(
    r: amanah_functions::error::ApiResult<std::collections::BTreeMap<String, i64>>,
    what: &str,
) -> Result<i64, String> {
    r.map(|by_table| by_table.values().sum())
        .map_err(|e| format!("copying {what}: {}", e.log_text()))
}

async fn counts<C: Conn>(conn: &C) -> Result<std::collections::BTreeMap<String, i64>, String> {
    ops::row_counts(conn).await.map_err(|e| e.log_text())
}

/// The chain verifies on the server and ends where the restored one does.
async fn same_chain<T: Transport + Clone + 'static>(
    staged: &App<NativeHost>,
    into: &App<SqldHost<T>>,
    chain: &Chain,
) -> Result<(), String> {
    let want = staged
        .check_chain(chain, &[])
        .await
        .map_err(|e| e.log_text())?
        .verification;
    let got = into
        .check_chain(chain, &[])
        .await
        .map_err(|e| e.log_text())?
        .verification;
    match (&want, &got) {
        (Verification::Ok { .. }, Verification::Ok { .. }) if want == got => Ok(()),
        _ => Err(format!(
            "audit chain on the server {got:?}, restored {want:?}"
        )),
    }
}
