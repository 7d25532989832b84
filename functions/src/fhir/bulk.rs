//! FHIR Bulk Data export of a whole clinic (`GET /fhir/r4/$export`):
//! writing its NDJSON files and reading them back.
//!
//! The files are written after the kick-off's audit entry commits, before
//! its 202 answers ([`generate`]): every type is read in one read
//! transaction (one snapshot, however long it takes), a page at a time,
//! and written in parts of at most 256 KiB, each sealed with the clinic's
//! key into its own small transaction on a second connection
//! ([`crate::records::bulk_exports`]): memory stays flat whatever the
//! clinic's size, no write lock is held while reading, and the files are
//! as unreadable at rest as the record. Producing them before answering
//! needs no background work, which neither the Worker (30 s after the
//! answer) nor Spin (none) can promise; the status URL then answers 200
//! at once. A file is streamed back part by part ([`stream`]).

use bytes::Bytes;
use serde_json::Value as Json;

use crate::body::{Chunks, StreamError};
use crate::crypto::field::FieldCipher;
use crate::error::ApiResult;
use crate::host::Conn;
use crate::records::appointments::{self, Filter};
use crate::records::bulk_exports::{self, PART_BYTES};
use crate::records::clinical::{Clinical, ALLERGIES, CONDITIONS, PRESCRIPTIONS, VITALS};
use crate::records::{patients, users, Vault};

use super::resources;

/// Every type an export holds, in the order written.
pub(crate) const TYPES: [&str; 8] = [
    "Patient",
    "Practitioner",
    "Condition",
    "AllergyIntolerance",
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
];

/// Rows read per round trip.
const PAGE: i64 = 200;

/// An export the kick-off accepted: written after its audit entry commits.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// The types asked for (`_type`), in [`TYPES`] order.
    pub types: Vec<&'static str>,
    /// The region's national id system.
    pub national_id_system: Option<String>,
    /// Where the status is asked (`Content-Location`).
    pub status_url: String,
}

/// How an entry of a clinical kind becomes its resource.
type Mapping = fn(&Json) -> Json;

/// The clinical kind behind a clinical type.
fn clinical(kind: &str) -> Option<(&'static Clinical, Mapping)> {
    Some(match kind {
        "Condition" => (&CONDITIONS, resources::condition),
        "AllergyIntolerance" => (&ALLERGIES, resources::allergy),
        "Observation" => (&VITALS, resources::vitals),
        "MedicationRequest" => (&PRESCRIPTIONS, resources::prescription),
        _ => return None,
    })
}

/// One file being written, a part at a time.
struct File<'a, W: Conn> {
    write: &'a W,
    v: &'a Vault<'a>,
    export: &'a str,
    kind: &'a str,
    part: i64,
    lines: i64,
    buf: Vec<u8>,
}

impl<W: Conn> File<'_, W> {
    async fn push(&mut self, resource: &Json) -> ApiResult<()> {
        serde_json::to_writer(&mut self.buf, resource)
            .map_err(|e| crate::error::ApiError::internal(format!("ndjson: {e}")))?;
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= PART_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Seals and keeps what is buffered, in a transaction of its own (one
    /// round trip on a remote database).
    async fn flush(&mut self) -> ApiResult<()> {
        if self.lines == 0 {
            return Ok(());
        }
        self.write.execute_later("BEGIN IMMEDIATE", vec![]).await?;
        bulk_exports::write_part(
            self.write,
            self.v,
            self.export,
            self.kind,
            self.part,
            self.lines,
            &self.buf,
        )
        .await?;
        if let Err(e) = self.write.execute("COMMIT", vec![]).await {
            let _ = self.write.execute("ROLLBACK", vec![]).await;
            return Err(e.into());
        }
        self.part += 1;
        self.lines = 0;
        self.buf.clear();
        Ok(())
    }
}

/// Writes one type's file from the snapshot `read` holds.
async fn write_type<R: Conn, W: Conn>(
    read: &R,
    file: &mut File<'_, W>,
    v: &Vault<'_>,
    job: &Job,
) -> ApiResult<()> {
    let kind = file.kind;
    let mut after = 0;
    match kind {
        "Patient" => loop {
            let page = patients::page(read, v, None, after, PAGE).await?;
            for p in &page {
                file.push(&resources::patient(p, job.national_id_system.as_deref()))
                    .await?;
            }
            match page.last() {
                Some(p) if page.len() as i64 == PAGE => after = p.seq,
                _ => break,
            }
        },
        "Practitioner" => {
            for (_, u) in users::practitioners_all(read, v).await? {
                file.push(&resources::practitioner(&u.id, &u.name, u.active))
                    .await?;
            }
        }
        "Appointment" | "Encounter" => {
            let filter = Filter {
                visits: kind == "Encounter",
                ..Filter::default()
            };
            loop {
                let page = appointments::search(read, v, &filter, after, PAGE).await?;
                for (_, a) in &page {
                    let r = if kind == "Encounter" {
                        resources::encounter(a)
                    } else {
                        resources::appointment(a)
                    };
                    file.push(&r).await?;
                }
                match page.last() {
                    Some((seq, _)) if page.len() as i64 == PAGE => after = *seq,
                    _ => break,
                }
            }
        }
        other => {
            let Some((table, map)) = clinical(other) else {
                return Ok(());
            };
            loop {
                let page = table.page_all(read, v, None, after, PAGE).await?;
                for (_, e) in &page {
                    file.push(&map(e)).await?;
                }
                match page.last() {
                    Some((seq, _)) if page.len() as i64 == PAGE => after = *seq,
                    _ => break,
                }
            }
        }
    }
    file.flush().await
}

/// Writes every file of `job`: reads on `read` inside one read
/// transaction, writes parts on `write`. The caller marks the export
/// complete or failed.
pub(crate) async fn generate<R: Conn, W: Conn>(
    read: &R,
    write: &W,
    v: &Vault<'_>,
    job: &Job,
) -> ApiResult<()> {
    read.execute("BEGIN", vec![]).await?;
    let mut result = Ok(());
    for kind in &job.types {
        let mut file = File {
            write,
            v,
            export: &job.id,
            kind,
            part: 0,
            lines: 0,
            buf: Vec::with_capacity(PART_BYTES + 4096),
        };
        result = write_type(read, &mut file, v, job).await;
        if result.is_err() {
            break;
        }
    }
    let _ = read.execute("ROLLBACK", vec![]).await;
    result
}

/// One file of an export, streamed part by part as the client reads it.
pub(crate) fn stream<C: Conn + 'static>(
    conn: C,
    cipher: FieldCipher,
    export: String,
    kind: String,
) -> Chunks {
    Box::pin(futures_util::stream::unfold(
        Some((conn, cipher, -1i64)),
        move |state| {
            let (export, kind) = (export.clone(), kind.clone());
            async move {
                let (conn, cipher, after) = state?;
                match bulk_exports::part(&conn, &cipher, &export, &kind, after).await {
                    Ok(Some((part, bytes))) => {
                        Some((Ok(Bytes::from(bytes)), Some((conn, cipher, part))))
                    }
                    Ok(None) => None,
                    Err(e) => Some((
                        Err(StreamError {
                            detail: e.log_text(),
                        }),
                        None,
                    )),
                }
            }
        },
    ))
}
