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
//! re-sealed user's email term are rebuilt. It is idempotent (a value already
//! under the current version is skipped by its header, without decrypting),
//! so an interrupted sweep is simply run again. When a count finds nothing
//! left under an older version, the directory records the clinic as swept.
//! `amanah keys rotate-clinic` runs it at once; `amanah serve`, the Worker's
//! cron trigger and Spin's purge call run [`App::sweep_due`] in the
//! background for any clinic whose sweep is unfinished.
//!
//! Old versions are never destroyed while the clinic lives: the audit
//! trail's `reason` and `ip` are sealed inside hash-chained, append-only
//! rows that cannot be re-sealed. The purge destroys every version.

use crate::app::App;
use crate::audit::{Entry, Outcome};
use crate::clock;
use crate::crypto::blind::TermKind;
use crate::crypto::field::{self, Field};
use crate::crypto::keys::{DataKey, KeyBytes};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host, Value};
use crate::ids::ClinicId;
use crate::purge::SYSTEM_ACTOR;
use crate::store::schema::{SealedColumns, SEALED};
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
            let rows = dir
                .query(
                    "SELECT status, key_version, swept_version FROM clinics WHERE id = ?1",
                    vec![clinic.as_str().into()],
                )
                .await?;
            let row = rows.first().ok_or_else(ApiError::not_found)?;
            if row.text(0)? != "active" {
                return Err(ApiError::conflict(
                    "only an active clinic's key rotates: this one is scheduled for deletion or purged",
                ));
            }
            let (current, swept) = (row.int(1)?, row.int(2)?);
            let current = u32::try_from(current)
                .map_err(|_| ApiError::internal("a key version out of range"))?;
            if swept < i64::from(current) {
                return Ok(Rotation {
                    version: current,
                    resumed: true,
                });
            }
            let next = current + 1;
            let mut fresh = [0u8; 32];
            self.host().fill_random(&mut fresh);
            let dek = DataKey {
                version: next,
                key: KeyBytes::new(fresh),
            };
            let mut nonce = [0u8; 12];
            self.host().fill_random(&mut nonce);
            let ring = self.host().root_keys();
            dir.execute(
                "INSERT INTO clinic_keys (clinic_id, version, root_version, wrapped, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                vec![
                    clinic.as_str().into(),
                    i64::from(next).into(),
                    i64::from(ring.current().version).into(),
                    ring.wrap(clinic.as_str(), &dek, nonce).into(),
                    self.host().now().into(),
                ],
            )
            .await?;
            dir.execute(
                "UPDATE clinics SET key_version = ?2 WHERE id = ?1",
                vec![clinic.as_str().into(), i64::from(next).into()],
            )
            .await?;
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
                self.host().now(),
                "clinic.key_rotate",
                format!("key/v{}", rotation.version),
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
            .query_many(
                SEALED
                    .iter()
                    .map(|t| (format!("SELECT COUNT(*) FROM {}", t.table), vec![]))
                    .collect(),
            )
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
        for table in SEALED {
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
            self.ops_directory()
                .await?
                .execute(
                    "UPDATE clinics SET swept_version = ?2 WHERE id = ?1 AND key_version = ?2",
                    vec![clinic.as_str().into(), i64::from(target).into()],
                )
                .await?;
        }
        Ok(report)
    }

    /// One batch of one table, inside the caller's transaction.
    async fn sweep_batch(
        &self,
        conn: &H::Conn,
        keys: &crate::app::ClinicKeys,
        table: &SealedColumns,
        after: i64,
        batch: i64,
    ) -> ApiResult<BatchStep> {
        let target = keys.cipher.version();
        let rows = conn
            .query(
                &format!(
                    "SELECT rowid, {}, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                    table.row_key,
                    table.columns.join(", "),
                    table.table
                ),
                vec![after.into(), batch.into()],
            )
            .await?;
        let mut step = BatchStep {
            rows: rows.len() as u64,
            last_rowid: rows.last().map(|r| r.int(0)).transpose()?,
            ..BatchStep::default()
        };
        for row in &rows {
            let (rowid, id) = (row.int(0)?, row.text(1)?);
            let mut values = Vec::with_capacity(table.columns.len());
            let mut changed = Vec::new();
            for (i, column) in table.columns.iter().enumerate() {
                let sealed = row.opt_blob(2 + i)?;
                let stale = sealed
                    .as_deref()
                    .is_some_and(|b| field::sealed_version(b) != Some(target));
                if stale {
                    changed.push(*column);
                }
                values.push(sealed);
            }
            if changed.is_empty() {
                continue;
            }
            let f = |column: &'static str| Field::new(table.table, column);
            let plain = |i: usize| -> ApiResult<Option<Vec<u8>>> {
                values[i]
                    .as_deref()
                    .map(|b| keys.cipher.open(f(table.columns[i]), &id, b))
                    .transpose()
                    .map_err(Into::into)
            };
            let mut sets = Vec::new();
            let mut params: Vec<Value> = vec![rowid.into()];
            for (i, column) in table.columns.iter().enumerate() {
                if !changed.contains(column) {
                    continue;
                }
                let pt = plain(i)?.ok_or_else(|| ApiError::internal("a stale value vanished"))?;
                params.push(keys.cipher.seal(f(column), &id, &pt, self.nonce()).into());
                sets.push(format!("{column} = ?{}", params.len()));
            }
            let text = |i: usize| -> ApiResult<Option<String>> {
                plain(i)?
                    .map(|b| {
                        String::from_utf8(b)
                            .map_err(|_| ApiError::internal("a sealed text is not UTF-8"))
                    })
                    .transpose()
            };
            let column_index = |name: &str| {
                table
                    .columns
                    .iter()
                    .position(|c| *c == name)
                    .ok_or_else(|| ApiError::internal("a swept column is missing"))
            };
            match table.table {
                "users" if changed.contains(&"email") => {
                    let email = text(column_index("email")?)?
                        .ok_or_else(|| ApiError::internal("a user without an email"))?;
                    params.push(keys.blind.token(TermKind::Email, &email).into());
                    sets.push(format!("email_term = ?{}", params.len()));
                    step.rebuilt += 1;
                }
                "patients" if changed.contains(&"name") => {
                    let name = text(column_index("name")?)?
                        .ok_or_else(|| ApiError::internal("a patient without a name"))?;
                    let phone = text(column_index("phone")?)?;
                    let national_id = text(column_index("national_id")?)?;
                    let terms = crate::api::patients::search_terms(
                        &keys.blind,
                        &name,
                        phone.as_deref(),
                        national_id.as_deref(),
                    );
                    conn.execute_later(
                        "DELETE FROM patient_terms WHERE patient_id = ?1",
                        vec![id.clone().into()],
                    )
                    .await?;
                    if let Some((sql, p)) = crate::api::patients::insert_terms(&id, terms) {
                        conn.execute_later(&sql, p).await?;
                    }
                    step.rebuilt += 1;
                }
                _ => {}
            }
            conn.execute_later(
                &format!(
                    "UPDATE {} SET {} WHERE rowid = ?1",
                    table.table,
                    sets.join(", ")
                ),
                params,
            )
            .await?;
            step.resealed += 1;
        }
        if step.resealed > 0 {
            let entry = system_entry(
                self.host().now(),
                "clinic.key_sweep",
                format!("{}/key/v{target}", table.table),
            );
            self.append_audit(conn, &keys.cipher, &entry, None).await?;
        }
        Ok(step)
    }

    /// Sweeps every active clinic of the region whose last rotation's sweep
    /// is unfinished (the background sweep of the hosts' schedulers).
    pub async fn sweep_due(&self) -> ApiResult<SweepDue> {
        let dir = self.ops_directory().await?;
        let rows = dir
            .query(
                "SELECT id FROM clinics WHERE status = 'active' AND swept_version < key_version ORDER BY id",
                vec![],
            )
            .await?;
        drop(dir);
        let mut report = SweepDue::default();
        for row in rows {
            let Some(clinic) = ClinicId::parse(&row.text(0)?) else {
                continue;
            };
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

    fn nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        self.host().fill_random(&mut n);
        n
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
    let header = target.to_be_bytes().to_vec();
    let statements = SEALED
        .iter()
        .map(|t| {
            let stale = t
                .columns
                .iter()
                .map(|c| format!("({c} IS NOT NULL AND substr({c}, 2, 4) <> ?1)"))
                .collect::<Vec<_>>()
                .join(" + ");
            (
                format!("SELECT COALESCE(SUM({stale}), 0) FROM {}", t.table),
                vec![Value::Blob(header.clone())],
            )
        })
        .collect();
    let mut left = 0u64;
    for rows in conn.query_many(statements).await? {
        left += rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0) as u64;
    }
    Ok(left)
}

/// An audit entry the platform writes on its own.
fn system_entry(now: i64, action: &str, resource: String) -> Entry {
    Entry {
        at: clock::rfc3339(now),
        actor: SYSTEM_ACTOR.to_owned(),
        role: None,
        on_behalf_of: None,
        action: action.to_owned(),
        resource: Some(resource),
        patient_id: None,
        reason: None,
        ip: None,
        outcome: Outcome::Success,
    }
}
