//! `/api/v1/appointments`: the schedule. Times and status are plain (the
//! overlap rule and the day/week listing run in SQL); the booking reason is
//! field ciphertext, and patient names come decrypted from the patients
//! table. One practitioner cannot be booked twice for overlapping times
//! (cancelled and no-show bookings do not count): 409.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::clock;
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host, Row, Value};
use crate::ids::kind;
use crate::store::RowExt;
use crate::validate;

use super::patients::LIVE_PATIENT_SQL;
use super::{not_null, patch_field};

const REASON: Field = Field::new("appointments", "reason");
const PATIENT_NAME: Field = Field::new("patients", "name");
const STATUSES: &[&str] = &["booked", "arrived", "completed", "cancelled", "no_show"];
/// `GET /api/v1/appointments`: the range and one practitioner.
pub(crate) const LIST_QUERY: &[&str] = &["from", "to", "practitioner"];
/// Statuses that no longer hold the practitioner's time.
const RELEASED: &str = "('cancelled', 'no_show')";
/// The longest appointment, and the longest listed range.
const MAX_LENGTH: i64 = 12 * 60 * clock::MINUTE;
const MAX_RANGE: i64 = 31 * clock::DAY;
/// The most appointments one listing returns; a range holding more is
/// refused rather than cut short.
const MAX_LISTED: usize = 2000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAppointment {
    patient_id: String,
    practitioner_id: String,
    start: String,
    end: String,
    reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppointmentPatch {
    #[serde(default, deserialize_with = "patch_field")]
    start: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    end: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    status: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AppointmentView {
    id: String,
    patient_id: String,
    patient_name: String,
    practitioner_id: String,
    start: String,
    end: String,
    status: String,
    reason: Option<String>,
}

const SELECT: &str = "SELECT a.id, a.patient_id, p.name, a.practitioner_id, a.start_at, a.end_at, \
     a.status, a.reason FROM appointments a JOIN patients p ON p.id = a.patient_id \
     WHERE p.deleted_at IS NULL";

fn view<H: Host>(ctx: &Ctx<'_, H>, r: &Row) -> ApiResult<AppointmentView> {
    let (id, patient_id) = (r.text(0)?, r.text(1)?);
    Ok(AppointmentView {
        patient_name: ctx.open(PATIENT_NAME, &patient_id, &r.blob(2)?)?,
        practitioner_id: r.text(3)?,
        start: clock::rfc3339(r.int(4)?),
        end: clock::rfc3339(r.int(5)?),
        status: r.text(6)?,
        reason: ctx.open_opt(REASON, &id, r.opt_blob(7)?)?,
        patient_id,
        id,
    })
}

fn time(field: &str, s: &str) -> ApiResult<i64> {
    clock::parse_rfc3339(s.trim())
        .ok_or_else(|| ApiError::invalid(field, "must be a time like 2026-01-31T09:30:00Z"))
}

fn span(start: i64, end: i64) -> ApiResult<()> {
    if end <= start {
        return Err(ApiError::invalid("end", "must be after start"));
    }
    if end - start > MAX_LENGTH {
        return Err(ApiError::invalid(
            "end",
            "an appointment lasts at most 12 hours",
        ));
    }
    Ok(())
}

/// 409 if the practitioner holds another booking that overlaps.
///
/// No appointment lasts longer than [`MAX_LENGTH`], so one that overlaps
/// `start..end` starts within `start - MAX_LENGTH..end`: the lower bound
/// keeps the index scan (practitioner, start) to those few rows. Without
/// it every booking read all of the practitioner's earlier appointments:
/// the benchmark's 100,000 bookings took quadratic time (BENCHMARKS.md).
async fn refuse_overlap<H: Host>(
    ctx: &Ctx<'_, H>,
    practitioner: &str,
    start: i64,
    end: i64,
    except: &str,
) -> ApiResult<()> {
    let rows = ctx
        .db()?
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
    if rows.is_empty() {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "the practitioner already has an appointment at that time",
        ))
    }
}

async fn load<H: Host>(ctx: &Ctx<'_, H>, id: &str) -> ApiResult<AppointmentView> {
    let rows = ctx
        .db()?
        .query(&format!("{SELECT} AND a.id = ?1"), vec![id.into()])
        .await?;
    view(ctx, rows.first().ok_or_else(ApiError::not_found)?)
}

pub(crate) async fn list<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let q = ctx.query(LIST_QUERY)?;
    let from = time(
        "from",
        q.get("from")
            .ok_or_else(|| ApiError::invalid("from", "is required"))?,
    )?;
    let to = time(
        "to",
        q.get("to")
            .ok_or_else(|| ApiError::invalid("to", "is required"))?,
    )?;
    if to <= from || to - from > MAX_RANGE {
        return Err(ApiError::invalid(
            "to",
            "must be after from, within 31 days",
        ));
    }
    ctx.audit.resource = Some("appointments".into());
    let mut sql = format!("{SELECT} AND a.start_at < ?2 AND a.end_at > ?1");
    let mut params: Vec<Value> = vec![from.into(), to.into()];
    if let Some(p) = q.get("practitioner") {
        sql.push_str(" AND a.practitioner_id = ?3");
        params.push(p.into());
    }
    sql.push_str(&format!(
        " ORDER BY a.start_at, a.seq LIMIT {}",
        MAX_LISTED + 1
    ));
    let rows = ctx.db()?.query(&sql, params).await?;
    if rows.len() > MAX_LISTED {
        return Err(ApiError::invalid(
            "to",
            "more appointments than one answer holds: ask for a shorter range",
        ));
    }
    let items = rows
        .iter()
        .map(|r| view(ctx, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(super::Items { items })
}

pub(crate) async fn create<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let a: NewAppointment = ctx.json()?;
    let (start, end) = (time("start", &a.start)?, time("end", &a.end)?);
    span(start, end)?;
    let reason = a
        .reason
        .as_deref()
        .map(|r| validate::text("reason", r, 500))
        .transpose()?;
    let checks = ctx
        .db()?
        .query_many(vec![
            (
                LIVE_PATIENT_SQL.to_owned(),
                vec![a.patient_id.clone().into()],
            ),
            (
                "SELECT 1 FROM users WHERE id = ?1 AND active = 1 AND role IN ('owner', 'doctor', 'nurse')"
                    .to_owned(),
                vec![a.practitioner_id.clone().into()],
            ),
        ])
        .await?;
    if checks.first().is_none_or(Vec::is_empty) {
        return Err(ApiError::invalid("patient_id", "no such patient"));
    }
    if checks.get(1).is_none_or(Vec::is_empty) {
        return Err(ApiError::invalid(
            "practitioner_id",
            "not an active owner, doctor or nurse of this clinic",
        ));
    }
    refuse_overlap(ctx, &a.practitioner_id, start, end, "").await?;
    let id = ctx.new_id(kind::APPOINTMENT);
    let sealed = ctx.seal_opt(REASON, &id, reason.as_deref())?;
    let author = ctx.principal()?.user_id.clone();
    ctx.db()?
        .execute_later(
            "INSERT INTO appointments (id, patient_id, practitioner_id, start_at, end_at, status, reason, created_by, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'booked', ?6, ?7, ?8, ?8)",
            vec![
                id.clone().into(),
                a.patient_id.clone().into(),
                a.practitioner_id.into(),
                start.into(),
                end.into(),
                sealed,
                author.into(),
                ctx.now.into(),
            ],
        )
        .await?;
    ctx.audit.resource = Some(format!("appointment/{id}"));
    ctx.audit.patient_id = Some(a.patient_id);
    Reply::created(load(ctx, &id).await?)
}

pub(crate) async fn update<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let id = ctx.path_id(kind::APPOINTMENT)?;
    ctx.audit.resource = Some(format!("appointment/{id}"));
    let current = load(ctx, &id).await?;
    ctx.audit.patient_id = Some(current.patient_id.clone());
    let patch: AppointmentPatch = ctx.json()?;
    let start = match not_null("start", patch.start)? {
        Some(s) => time("start", &s)?,
        None => time("start", &current.start)?,
    };
    let end = match not_null("end", patch.end)? {
        Some(s) => time("end", &s)?,
        None => time("end", &current.end)?,
    };
    let status = match not_null("status", patch.status)? {
        Some(s) => validate::one_of("status", &s, STATUSES)?,
        None => current.status.clone(),
    };
    span(start, end)?;
    if !matches!(status.as_str(), "cancelled" | "no_show") {
        refuse_overlap(ctx, &current.practitioner_id, start, end, &id).await?;
    }
    ctx.db()?
        .execute_later(
            "UPDATE appointments SET start_at = ?2, end_at = ?3, status = ?4, updated_at = ?5 WHERE id = ?1",
            vec![id.clone().into(), start.into(), end.into(), status.into(), ctx.now.into()],
        )
        .await?;
    Reply::ok(load(ctx, &id).await?)
}
