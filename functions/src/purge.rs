//! The purge: what happens when a grace period ends.
//!
//! - A clinic scheduled for deletion whose purge time has passed loses its
//!   data key first (the wrapped key rows are deleted from the directory and
//!   the clinic is marked `purged`): from that moment every copy of its
//!   database, backups included, is ciphertext nobody can open. Then its
//!   database is destroyed.
//! - In every other clinic, patients deleted more than 30 days ago are
//!   removed with everything recorded about them (search terms, conditions,
//!   prescriptions, notes, appointments); the audit chain keeps their opaque
//!   id and records the purge.
//!
//! Where the store allows it the deleted bytes are scrubbed from the files
//! too ([`crate::host::Host::scrub`]). A libSQL server keeps past pages in its
//! own log, so there a purged clinic's wrapped key outlives the row until the
//! root key version that wrapped it is retired. Backups (`amanah backup`)
//! hold no clinic key at all: the directory's copy is emptied of them, and a
//! clinic's file is sealed under a key derived from its data key, so the
//! purge leaves every backup of the clinic unreadable.
//!
//! `amanah purge` runs it once; `amanah serve` runs it periodically and the
//! Worker on a cron trigger. Running it twice changes nothing the second time.

use crate::app::App;
use crate::audit::{Entry, Outcome};
use crate::clock;
use crate::error::ApiResult;
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::store::{self, RowExt};

/// The actor of entries the platform writes on its own.
pub const SYSTEM_ACTOR: &str = "system";

/// What one run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Clinics whose key and database were destroyed.
    pub clinics: usize,
    /// Patients removed from clinics that remain.
    pub patients: usize,
    /// Clinics that could not be processed this time (tried again next run).
    pub failed: usize,
    /// Databases whose deleted bytes could not be scrubbed from their files
    /// (see [`crate::host::Host::scrub`]).
    pub unscrubbed: usize,
}

/// The tables that hold rows about one patient, by their `patient_id`
/// column; `patients` itself is removed last.
const PATIENT_TABLES: &[&str] = &[
    "patient_terms",
    "conditions",
    "prescriptions",
    "notes",
    "appointments",
];

impl<H: Host> App<H> {
    /// Runs the purge over every clinic of this region.
    pub async fn purge(&self) -> ApiResult<PurgeReport> {
        // Out of the request path, schemas are checked at once (no retry).
        let dir = self.host.directory().await?;
        self.migrate_directory(&dir).await?;
        let rows = dir
            .query(
                "SELECT id, status, purge_after FROM clinics WHERE status IN ('active', 'deleting') ORDER BY id",
                vec![],
            )
            .await?;
        let mut report = PurgeReport::default();
        for row in rows {
            let Some(clinic) = ClinicId::parse(&row.text(0)?) else {
                continue;
            };
            let now = self.clinic_now(&clinic).await?;
            let outcome = if row.text(1)? == "deleting" {
                match row.opt_int(2)? {
                    Some(t) if t <= now => self.purge_clinic(&clinic).await.map(|scrubbed| {
                        report.clinics += 1;
                        report.unscrubbed += usize::from(!scrubbed);
                    }),
                    _ => Ok(()),
                }
            } else {
                self.purge_patients(&clinic, now)
                    .await
                    .map(|(n, scrubbed)| {
                        report.patients += n;
                        report.unscrubbed += usize::from(!scrubbed);
                    })
            };
            if outcome.is_err() {
                report.failed += 1;
            }
        }
        Ok(report)
    }

    /// Crypto-shreds a clinic, then removes its database.
    /// Returns whether the directory's files were scrubbed of the key.
    async fn purge_clinic(&self, clinic: &ClinicId) -> ApiResult<bool> {
        let dir = self.directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        let shredded = async {
            dir.execute(
                "DELETE FROM clinic_keys WHERE clinic_id = ?1",
                vec![clinic.as_str().into()],
            )
            .await?;
            dir.execute(
                "UPDATE clinics SET status = 'purged' WHERE id = ?1 AND status = 'deleting'",
                vec![clinic.as_str().into()],
            )
            .await?;
            Ok::<(), crate::error::ApiError>(())
        }
        .await;
        store::finish(&dir, shredded).await?;
        self.forget_clinic(clinic);
        self.host().drop_clinic(clinic).await?;
        Ok(self.host().scrub(None).await?)
    }

    /// Removes patients whose grace period has ended; returns how many, and
    /// whether the clinic's files were scrubbed of them.
    async fn purge_patients(&self, clinic: &ClinicId, now: i64) -> ApiResult<(usize, bool)> {
        let db = self.clinic_conn(clinic, false, true).await?;
        let due = db
            .query(
                "SELECT id FROM patients WHERE deleted_at IS NOT NULL AND purge_after <= ?1 ORDER BY seq",
                vec![now.into()],
            )
            .await?;
        if due.is_empty() {
            return Ok((0, true));
        }
        let (_, keys) = self.clinic_keys(clinic).await?;
        let mut purged = 0;
        for row in due {
            let id = row.text(0)?;
            db.execute("BEGIN IMMEDIATE", vec![]).await?;
            let work = async {
                for table in PATIENT_TABLES {
                    db.execute_later(
                        &format!("DELETE FROM {table} WHERE patient_id = ?1"),
                        vec![id.clone().into()],
                    )
                    .await?;
                }
                let gone = db
                    .execute(
                        "DELETE FROM patients WHERE id = ?1 AND deleted_at IS NOT NULL AND purge_after <= ?2",
                        vec![id.clone().into(), now.into()],
                    )
                    .await?;
                if gone == 1 {
                    let entry = Entry {
                        at: clock::rfc3339(now),
                        actor: SYSTEM_ACTOR.to_owned(),
                        role: None,
                        on_behalf_of: None,
                        action: "patient.purge".to_owned(),
                        resource: Some(format!("patient/{id}")),
                        patient_id: Some(id.clone()),
                        reason: Some("grace period ended".to_owned()),
                        ip: None,
                        outcome: Outcome::Success,
                    };
                    self.append_audit(&db, &keys.cipher, &entry, None).await?;
                }
                Ok::<u64, crate::error::ApiError>(gone)
            }
            .await;
            purged += store::finish(&db, work).await? as usize;
        }
        drop(db);
        Ok((purged, self.host().scrub(Some(clinic)).await?))
    }
}
