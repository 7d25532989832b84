//! The purge: what happens when a grace period ends, or in a region that
//! keeps records ([`purge_after`]) the retention period after it.
//!
//! - A clinic scheduled for deletion whose purge time has passed loses its
//!   data key first (the wrapped key rows are deleted from the directory and
//!   the clinic is marked `purged`): from that moment every copy of its
//!   database, backups included, is ciphertext nobody can open. Then its
//!   database is destroyed.
//! - In every other clinic, patients deleted more than 30 days ago are
//!   removed with every row that names them
//!   ([`crate::records::naming_patients`]: search terms, clinical record,
//!   appointments, the stored answers of idempotent writes about them); the
//!   audit chain keeps their opaque id and records the purge. Stored
//!   answers past their day, and FHIR bulk exports past their hour, are
//!   dropped too.
//!
//! Where the store allows it the deleted bytes are scrubbed from the files
//! too ([`crate::host::Host::scrub`]). A libSQL server keeps past pages in its
//! own log, so there a purged clinic's wrapped key outlives the row until the
//! root key version that wrapped it is retired. Backups (`amanah backup`)
//! hold no clinic key at all: the directory's copy is emptied of them, and a
//! clinic's file is sealed under a key derived from its data key, so the
//! purge leaves every backup of the clinic unreadable.
//!
//! It runs as the first step of [`super::maintain`]. Running it twice
//! changes nothing the second time.

use crate::app::{App, Retention};
use crate::clock;
use crate::error::ApiResult;
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::records::directory::{clinic_keys, clinics};
use crate::records::{idempotency, patients};
use crate::request::audit::system_entry;
use crate::request::Resource;
use crate::store;

/// Grace period between a deletion and its purge.
pub const GRACE_SECS: i64 = 30 * clock::DAY;

/// When a record deleted at `now`, last clinically active at
/// `last_activity`, may be purged: when the grace period ends or, in a
/// region whose law keeps records (`regions.toml` `[region.retention]`),
/// when that period after the last activity ends, whichever is later. Until
/// then the record is archived: hidden, encrypted, exported, restorable.
pub fn purge_after(now: i64, last_activity: i64, retention: Option<&Retention>) -> i64 {
    let grace = now + GRACE_SECS;
    match retention {
        None => grace,
        Some(t) => grace.max(clock::add_years(last_activity, t.years)),
    }
}

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

impl<H: Host> App<H> {
    /// Runs the purge over every clinic of this region.
    pub async fn purge(&self) -> ApiResult<PurgeReport> {
        // Out of the request path, schemas are checked at once (no retry).
        let dir = self.ops_directory().await?;
        let all = clinics::all(&dir).await?;
        let mut report = PurgeReport::default();
        for c in all
            .iter()
            .filter(|c| matches!(c.status.as_str(), "active" | "deleting"))
        {
            let now = self.clinic_now(&c.id).await?;
            let outcome = if c.status == "deleting" {
                match c.purge_after {
                    Some(t) if t <= now => self.purge_clinic(&c.id).await.map(|scrubbed| {
                        report.clinics += 1;
                        report.unscrubbed += usize::from(!scrubbed);
                    }),
                    _ => Ok(()),
                }
            } else {
                self.purge_patients(&c.id, now).await.map(|(n, scrubbed)| {
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
            clinic_keys::remove_all(&dir, clinic).await?;
            clinics::mark_purged(&dir, clinic).await
        }
        .await;
        store::finish(&dir, shredded).await?;
        self.forget_clinic(clinic);
        self.host.drop_clinic(clinic).await?;
        Ok(self.host.scrub(None).await?)
    }

    /// Removes patients whose grace period has ended; returns how many, and
    /// whether the clinic's files were scrubbed of them.
    async fn purge_patients(&self, clinic: &ClinicId, now: i64) -> ApiResult<(usize, bool)> {
        let db = self.clinic_conn(clinic, false, true).await?;
        idempotency::expire(&db, now - idempotency::KEPT_SECS).await?;
        // FHIR bulk exports live an hour.
        crate::records::bulk_exports::expire(&db, now).await?;
        let due = patients::due_for_purge(&db, now).await?;
        if due.is_empty() {
            return Ok((0, true));
        }
        let (_, keys) = self.clinic_keys(clinic).await?;
        let mut purged = 0;
        for id in due {
            db.execute("BEGIN IMMEDIATE", vec![]).await?;
            let work = async {
                let gone = patients::remove(&db, &id, now).await?;
                if gone {
                    let entry = system_entry(
                        now,
                        "patient.purge",
                        Resource::Patient(&id),
                        Some("grace period ended"),
                    );
                    self.append_audit(&db, &keys.cipher, &entry, None).await?;
                }
                Ok::<bool, crate::error::ApiError>(gone)
            }
            .await;
            purged += usize::from(store::finish(&db, work).await?);
        }
        drop(db);
        Ok((purged, self.host.scrub(Some(clinic)).await?))
    }
}
