//! Clinic data key rotation and the sweep that follows it.
//!
//! [`App::rotate_clinic_key`] gives a clinic a new random data key version,
//! wrapped by the newest root key, in one directory transaction. From the
//! next request on every host, new values are sealed and new search terms
//! made under it; every older version stays held, so what it sealed still
//! opens and lookups ask for the terms of every version (a write of a
//! patient re-seals all of its fields and terms at once: rotation is lazy on
//! write).
//!
//! [`App::sweep_clinic`] re-seals the rest: table by table, a batch of rows
//! per transaction (each with its audit entry, `clinic.key_sweep`), every
//! field whose ciphertext names an older version is opened and sealed again
//! under the current one, and a re-sealed patient's search terms and a
//! re-sealed user's email term are rebuilt. Values sealed before padding
//! (`crypto::field`) are re-sealed the same way, once per clinic. It is
//! idempotent (a padded value already under the current version is
//! skipped by its header, without decrypting),
//! so an interrupted sweep is simply run again. When a count finds nothing
//! left under an older version, the directory records the clinic as swept.
//! `amanah keys rotate-clinic` runs it at once; every host's scheduled
//! [`super::maintain`] runs [`App::sweep_due`] for any clinic whose sweep
//! is unfinished.
//!
//! Old versions are never destroyed while the clinic lives: the audit
//! trail's `reason` and `ip` are sealed inside hash-chained, append-only
//! rows that cannot be re-sealed. The purge destroys every version.

use crate::app::App;
use crate::crypto::field::{self, Field};
use crate::crypto::keys::{DataKey, KeyBytes};
use crate::crypto::keysets::ClinicKeys;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::records::directory::{clinic_keys, clinics};
use crate::records::{self, Table};
use crate::request::audit::system_entry;
use crate::request::Resource;
use crate::store::{self, RowExt};

/// Rows re-sealed per transaction by the background sweep.
pub const SWEEP_BATCH: i64 = 200;

/// What [`App::rotate_clinic_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The data key version now current.
    pub version: u32,
    /// `true`: the last rotation's sweep was unfinished, so no new version
    /// was made (run the sweep to finish it).
    pub resumed: bool,
}

/// What one sweep of a clinic did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// The version everything was re-sealed under.
    pub version: u32,
    /// Rows with at least one value re-sealed.
    pub resealed_rows: u64,
    /// Patients and users whose search terms were rebuilt.
    pub rebuilt_terms: u64,
    /// Values still under an older version when it ended (0: swept).
    pub left: u64,
}

/// What [`App::sweep_due`] did over a region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepDue {
    pub swept: usize,
    pub resealed_rows: u64,
    pub failed: usize,
}

impl<H: Host> App<H> {
    /// Gives the clinic a new data key version, unless the last rotation's
    /// sweep is unfinished (then it is resumed instead: see [`Rotation`]).
    /// Only an active clinic rotates: one awaiting its purge keeps its keys
    /// until they are destroyed.
    pub async fn rotate_clinic_key(&self, clinic: &ClinicId) -> ApiResult<Rotation> {
        let dir = self.ops_directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        let work = async {
            let record = clinics::get(&dir, clinic)
                .await?
                .ok_or_else(ApiError::not_found)?;
            if record.status != "active" {
                return Err(ApiError::conflict(
                    "only an active clinic's key rotates: this one is scheduled for deletion or purged",
                ));
            }
            let current = clinic_keys::version(record.key_version)?;
            if record.swept_version < i64::from(current) {
                return Ok(Rotation {
                    version: current,
                    resumed: true,
                });
            }
            let next = current + 1;
            let dek = DataKey {
                version: next,
                key: KeyBytes::new(self.random()),
            };
            let ring = self.host.root_keys();
            let wrapped = ring.wrap(clinic.as_str(), &dek, self.random());
            clinic_keys::insert(&dir, clinic, next, ring.current().version, wrapped, self.host.now())
                .await?;
            clinics::set_key_version(&dir, clinic, next).await?;
            Ok(Rotation {
                version: next,
                resumed: false,
            })
        }
        .await;
        let rotation = store::finish(&dir, work).await?;
        drop(dir);
        if !rotation.resumed {
            let (_, keys) = self.clinic_keys(clinic).await?;
            let conn = self.clinic_conn(clinic, false, true).await?;
            conn.execute("BEGIN IMMEDIATE", vec![]).await?;
            let entry = system_entry(
                self.host.now(),
                "clinic.key_rotate",
                Resource::Key(rotation.version),
                None,
            );
            let appended = self
                .append_audit(&conn, &keys.cipher, &entry, None)
                .await
                .map(|_| ());
            store::finish(&conn, appended).await?;
        }
        Ok(rotation)
    }

    /// Re-seals every value of the clinic still under an older data key
    /// version, `batch` rows a transaction; `progress(rows seen, rows in
    /// all)` after each. Marks the clinic swept when nothing is left.
    pub async fn sweep_clinic(
        &self,
        clinic: &ClinicId,
        batch: i64,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> ApiResult<Sweep> {
        let (_, keys) = self.clinic_keys(clinic).await?;
        let target = keys.cipher.version();
        let conn = self.clinic_conn(clinic, false, true).await?;
        let counts = conn
            .query_many(records::sealed().map(Table::count).collect())
            .await?;
        let mut total = 0u64;
        for rows in &counts {
            total += rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0) as u64;
        }
        let mut report = Sweep {
            version: target,
            ..Sweep::default()
        };
        let mut seen = 0u64;
        for table in records::sealed() {
            let mut after = 0i64;
            loop {
                conn.execute("BEGIN IMMEDIATE", vec![]).await?;
                let step = self.sweep_batch(&conn, &keys, table, after, batch).await;
                let step = store::finish(&conn, step).await?;
                seen += step.rows;
                report.resealed_rows += step.resealed;
                report.rebuilt_terms += step.rebuilt;
                progress(seen.min(total), total);
                match step.last_rowid {
                    Some(last) if step.rows == batch as u64 => after = last,
                    _ => break,
                }
            }
        }
        report.left = left_under_older(&conn, target).await?;
        if report.left == 0 {
            clinics::set_swept(&self.ops_directory().await?, clinic, target).await?;
        }
        Ok(report)
    }

    /// One batch of one table, inside the caller's transaction.
    async fn sweep_batch(
        &self,
        conn: &H::Conn,
        keys: &ClinicKeys,
        table: &'static Table,
        after: i64,
        batch: i64,
    ) -> ApiResult<BatchStep> {
        let target = keys.cipher.version();
        let columns: Vec<&'static str> = table.swept_columns().collect();
        let (sql, params) = table.sealed_page(after, batch);
        let rows = conn.query(&sql, params).await?;
        let mut step = BatchStep {
            rows: rows.len() as u64,
            last_rowid: rows.last().map(|r| r.int(0)).transpose()?,
            ..BatchStep::default()
        };
        for row in &rows {
            let (rowid, id) = (row.int(0)?, row.text(1)?);
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(row.opt_blob(2 + i)?);
            }
            let stale: Vec<usize> = (0..columns.len())
                .filter(|&i| {
                    values[i].as_deref().is_some_and(|b| {
                        field::sealed_version(b) != Some(target) || field::unpadded(b)
                    })
                })
                .collect();
            if stale.is_empty() {
                continue;
            }
            let f = |column: &'static str| Field::new(table.name, column);
            let plain = |i: usize| -> ApiResult<Option<Vec<u8>>> {
                values[i]
                    .as_deref()
                    .map(|b| keys.cipher.open(f(columns[i]), &id, b))
                    .transpose()
                    .map_err(Into::into)
            };
            let mut resealed = Vec::with_capacity(stale.len());
            for &i in &stale {
                let pt = plain(i)?.ok_or_else(|| ApiError::internal("a stale value vanished"))?;
                resealed.push((
                    columns[i],
                    keys.cipher.seal(f(columns[i]), &id, &pt, self.random()),
                ));
            }
            let (sql, params) = table.reseal(rowid, resealed);
            conn.execute_later(&sql, params).await?;
            if let Some(reindex) = table.reindex {
                if stale.iter().any(|&i| columns[i] == reindex.when) {
                    let value = |name: &str| -> ApiResult<Option<String>> {
                        let i = columns
                            .iter()
                            .position(|c| *c == name)
                            .ok_or_else(|| ApiError::internal("a swept column is missing"))?;
                        plain(i)?
                            .map(|b| {
                                String::from_utf8(b)
                                    .map_err(|_| ApiError::internal("a sealed text is not UTF-8"))
                            })
                            .transpose()
                    };
                    for (sql, params) in (reindex.statements)(&keys.blind, &id, &value)? {
                        conn.execute_later(&sql, params).await?;
                    }
                    step.rebuilt += 1;
                }
            }
            step.resealed += 1;
        }
        if step.resealed > 0 {
            let entry = system_entry(
                self.host.now(),
                "clinic.key_sweep",
                Resource::TableKey(table.name, target),
                None,
            );
            self.append_audit(conn, &keys.cipher, &entry, None).await?;
        }
        Ok(step)
    }

    /// Sweeps every active clinic of the region whose last rotation's sweep
    /// is unfinished (the background sweep of [`super::maintain`]).
    pub async fn sweep_due(&self) -> ApiResult<SweepDue> {
        let due = clinics::unswept(&self.ops_directory().await?).await?;
        let mut report = SweepDue::default();
        for clinic in due {
            match self
                .sweep_clinic(&clinic, SWEEP_BATCH, &mut |_, _| {})
                .await
            {
                Ok(s) => {
                    report.swept += usize::from(s.left == 0);
                    report.resealed_rows += s.resealed_rows;
                }
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Default)]
struct BatchStep {
    rows: u64,
    last_rowid: Option<i64>,
    resealed: u64,
    rebuilt: u64,
}

/// How many sealed values of the clinic name another version than
/// `target` in their header (the audit trail's excepted).
pub async fn left_under_older<C: Conn>(conn: &C, target: u32) -> ApiResult<u64> {
    let statements = records::sealed()
        .map(|t| t.sealed_under_other(target))
        .collect();
    let mut left = 0u64;
    for rows in conn.query_many(statements).await? {
        left += rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0) as u64;
    }
    Ok(left)
}
