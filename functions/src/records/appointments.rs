//! `appointments`: the schedule. Times and status are plain (the overlap
//! rule and the day/week listing run in SQL); the booking's reason is
//! sealed, and listings carry the patient's name decrypted from
//! `patients`. One practitioner's bookings never overlap, cancelled and
//! no-show ones aside.

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock;
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Row, Value};

use super::patients;
use super::table::Kind::{Sealed, Text, Time};
use super::table::{col, Table};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "appointments",
    schema: &[(
        3,
        r#"
CREATE TABLE appointments (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    practitioner_id TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'arrived', 'completed', 'cancelled', 'no_show')),
    reason BLOB,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (end_at > start_at)
);
CREATE INDEX appointments_practitioner ON appointments(practitioner_id, start_at);
CREATE INDEX appointments_start ON appointments(start_at);
"#,
    )],
    row_key: "id",
    columns: &[
        col("id", Text),
        col("patient_id", Text),
        col("practitioner_id", Text),
        col("start_at", Time),
        col("end_at", Time),
        col("status", Text),
        col("reason", Sealed),
        col("created_by", Text),
        col("created_at", Time),
        col("updated_at", Time),
    ],
    export: true,
    counted: true,
    patient: Some("patient_id"),
    reindex: None,
};

const REASON: Field = Field::new("appointments", "reason");

/// Every status a booking can have.
pub(crate) const STATUSES: &[&str] = &["booked", "arrived", "completed", "cancelled", "no_show"];
/// Statuses that no longer hold the practitioner's time.
const RELEASED: &str = "('cancelled', 'no_show')";
/// The longest appointment.
pub(crate) const MAX_LENGTH: i64 = 12 * 60 * clock::MINUTE;
/// The most appointments one listing returns; a range holding more is
/// refused rather than cut short.
pub(crate) const MAX_LISTED: usize = 2000;

/// Whether a status frees the practitioner's time.
pub(crate) fn releases_time(status: &str) -> bool {
    matches!(status, "cancelled" | "no_show")
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AppointmentView {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub practitioner_id: String,
    pub start: String,
    pub end: String,
    pub status: String,
    pub reason: Option<String>,
}

/// A booking's plain facts, for a change to it.
pub(crate) struct Booking {
    pub patient_id: String,
    pub practitioner_id: String,
    pub start: i64,
    pub end: i64,
    pub status: String,
}

const SELECT: &str = "SELECT a.id, a.patient_id, p.name, a.practitioner_id, a.start_at, a.end_at, \
     a.status, a.reason FROM appointments a JOIN patients p ON p.id = a.patient_id \
     WHERE p.deleted_at IS NULL";

fn view(v: &Vault<'_>, r: &Row) -> ApiResult<AppointmentView> {
    let (id, patient_id) = (r.text(0)?, r.text(1)?);
    Ok(AppointmentView {
        patient_name: patients::name_of(v, &patient_id, &r.blob(2)?)?,
        practitioner_id: r.text(3)?,
        start: clock::rfc3339(r.int(4)?),
        end: clock::rfc3339(r.int(5)?),
        status: r.text(6)?,
        reason: v.open_opt(REASON, &id, r.opt_blob(7)?)?,
        patient_id,
        id,
    })
}

/// One booking of a live patient; not found otherwise.
pub(crate) async fn load<C: Conn>(db: &C, v: &Vault<'_>, id: &str) -> ApiResult<AppointmentView> {
    let rows = db
        .query(&format!("{SELECT} AND a.id = ?1"), vec![id.into()])
        .await?;
    view(v, rows.first().ok_or_else(ApiError::not_found)?)
}

/// The plain facts of one booking of a live patient; not found otherwise.
pub(crate) async fn booking<C: Conn>(db: &C, id: &str) -> ApiResult<Booking> {
    let rows = db
        .query(
            "SELECT a.patient_id, a.practitioner_id, a.start_at, a.end_at, a.status \
             FROM appointments a JOIN patients p ON p.id = a.patient_id \
             WHERE p.deleted_at IS NULL AND a.id = ?1",
            vec![id.into()],
        )
        .await?;
    let r = rows.first().ok_or_else(ApiError::not_found)?;
    Ok(Booking {
        patient_id: r.text(0)?,
        practitioner_id: r.text(1)?,
        start: r.int(2)?,
        end: r.int(3)?,
        status: r.text(4)?,
    })
}

/// Bookings of live patients overlapping `from..to`, of one practitioner or
/// all, in time order; at most [`MAX_LISTED`] + 1 (more than
/// [`MAX_LISTED`] says the range holds too many).
pub(crate) async fn between<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    from: i64,
    to: i64,
    practitioner: Option<&str>,
) -> ApiResult<Vec<AppointmentView>> {
    let mut sql = format!("{SELECT} AND a.start_at < ?2 AND a.end_at > ?1");
    let mut params: Vec<Value> = vec![from.into(), to.into()];
    if let Some(p) = practitioner {
        sql.push_str(" AND a.practitioner_id = ?3");
        params.push(p.into());
    }
    sql.push_str(&format!(
        " ORDER BY a.start_at, a.seq LIMIT {}",
        MAX_LISTED + 1
    ));
    let rows = db.query(&sql, params).await?;
    rows.iter().map(|r| view(v, r)).collect()
}

/// What a search of bookings may narrow by (plain columns only).
#[derive(Default)]
pub(crate) struct Filter<'a> {
    pub patient: Option<&'a str>,
    pub practitioner: Option<&'a str>,
    /// Starts at or after / before these times.
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// Only visits (arrived or completed).
    pub visits: bool,
}

/// Bookings of live patients after `after` (their `seq`), narrowed by
/// `f`, `limit` of them, each with its `seq`.
pub(crate) async fn search<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    f: &Filter<'_>,
    after: i64,
    limit: i64,
) -> ApiResult<Vec<(i64, AppointmentView)>> {
    let mut sql = format!(
        "SELECT a.seq, {} AND a.seq > ?1",
        &SELECT["SELECT ".len()..]
    );
    let mut params: Vec<Value> = vec![after.into(), limit.into()];
    let mut and = |cond: &str, value: Value, params: &mut Vec<Value>| {
        params.push(value);
        sql.push_str(&format!(" AND {cond} ?{}", params.len()));
    };
    if let Some(p) = f.patient {
        and("a.patient_id =", p.into(), &mut params);
    }
    if let Some(p) = f.practitioner {
        and("a.practitioner_id =", p.into(), &mut params);
    }
    if let Some(t) = f.from {
        and("a.start_at >=", t.into(), &mut params);
    }
    if let Some(t) = f.until {
        and("a.start_at <", t.into(), &mut params);
    }
    if f.visits {
        sql.push_str(" AND a.status IN ('arrived', 'completed')");
    }
    sql.push_str(" ORDER BY a.seq LIMIT ?2");
    let rows = db.query(&sql, params).await?;
    rows.iter()
        .map(|r| {
            // The view's columns follow `seq`.
            let shifted: Row = r.get(1..).map(<[Value]>::to_vec).unwrap_or_default();
            Ok((r.int(0)?, view(v, &shifted)?))
        })
        .collect()
}

/// Whether the practitioner holds another booking overlapping `start..end`
/// (`except` a booking being moved).
///
/// No appointment lasts longer than [`MAX_LENGTH`], so one that overlaps
/// `start..end` starts within `start - MAX_LENGTH..end`: the lower bound
/// keeps the index scan (practitioner, start) to those few rows. Without
/// it every booking read all of the practitioner's earlier appointments:
/// the benchmark's 100,000 bookings took quadratic time (BENCHMARKS.md).
pub(crate) async fn overlaps<C: Conn>(
    db: &C,
    practitioner: &str,
    start: i64,
    end: i64,
    except: &str,
) -> ApiResult<bool> {
    let rows = db
        .query(
            &format!(
                "SELECT 1 FROM appointments WHERE practitioner_id = ?1 AND start_at < ?3 AND end_at > ?2 \
                 AND start_at > ?5 AND id <> ?4 AND status NOT IN {RELEASED} LIMIT 1"
            ),
            vec![
                practitioner.into(),
                start.into(),
                end.into(),
                except.into(),
                (start - MAX_LENGTH).into(),
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// A new booking's values.
pub(crate) struct NewBooking<'a> {
    pub id: &'a str,
    pub patient_id: &'a str,
    pub practitioner_id: &'a str,
    pub start: i64,
    pub end: i64,
    pub reason: Option<&'a str>,
    pub created_by: &'a str,
}

/// Writes a new booking (queued).
pub(crate) async fn insert<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    b: &NewBooking<'_>,
    now: i64,
) -> ApiResult<()> {
    db.execute_later(
        "INSERT INTO appointments (id, patient_id, practitioner_id, start_at, end_at, status, reason, created_by, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'booked', ?6, ?7, ?8, ?8)",
        vec![
            b.id.into(),
            b.patient_id.into(),
            b.practitioner_id.into(),
            b.start.into(),
            b.end.into(),
            v.seal_opt(REASON, b.id, b.reason),
            b.created_by.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Moves a booking or changes its status (queued).
pub(crate) async fn update<C: Conn>(
    db: &C,
    id: &str,
    start: i64,
    end: i64,
    status: &str,
    now: i64,
) -> ApiResult<()> {
    db.execute_later(
        "UPDATE appointments SET start_at = ?2, end_at = ?3, status = ?4, updated_at = ?5 WHERE id = ?1",
        vec![id.into(), start.into(), end.into(), status.into(), now.into()],
    )
    .await?;
    Ok(())
}
