//! `/api/v1/appointments`: the schedule ([`records::appointments`]). One
//! practitioner cannot be booked twice for overlapping times (cancelled and
//! no-show bookings do not count): 409.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::kind;
use crate::records::appointments::{self, NewBooking, MAX_LENGTH, MAX_LISTED, STATUSES};
use crate::records::{patients, users};
use crate::request::{ClinicScope, Reply, Resource};
use crate::validate;

use super::{not_null, patch_field, Items};

pub(crate) use crate::records::appointments::AppointmentView;

/// `GET /api/v1/appointments`: the range and one practitioner.
pub(crate) const LIST_QUERY: &[&str] = &["from", "to", "practitioner"];
/// The longest listed range.
const MAX_RANGE: i64 = 31 * clock::DAY;

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
async fn refuse_overlap<H: Host>(
    s: &ClinicScope<'_, '_, H>,
    practitioner: &str,
    start: i64,
    end: i64,
    except: &str,
) -> ApiResult<()> {
    if appointments::overlaps(s.db, practitioner, start, end, except).await? {
        Err(ApiError::conflict(
            "the practitioner already has an appointment at that time",
        ))
    } else {
        Ok(())
    }
}

/// `GET /api/v1/appointments?from=&to=&practitioner=`.
pub(crate) async fn list<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let q = s.query(LIST_QUERY)?;
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
    s.audit.about(Resource::Appointments);
    let items = appointments::between(s.db, &s.vault, from, to, q.get("practitioner")).await?;
    if items.len() > MAX_LISTED {
        return Err(ApiError::invalid(
            "to",
            "more appointments than one answer holds: ask for a shorter range",
        ));
    }
    Reply::ok(Items { items })
}

/// `POST /api/v1/appointments`: book.
pub(crate) async fn create<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let a: NewAppointment = s.json()?;
    let (start, end) = (time("start", &a.start)?, time("end", &a.end)?);
    span(start, end)?;
    let reason = a
        .reason
        .as_deref()
        .map(|r| validate::text("reason", r, 500))
        .transpose()?;
    let checks =
        s.db.query_many(vec![
            patients::live_check(&a.patient_id),
            users::practitioner_check(&a.practitioner_id),
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
    refuse_overlap(s, &a.practitioner_id, start, end, "").await?;
    let id = s.new_id(kind::APPOINTMENT);
    let booking = NewBooking {
        id: &id,
        patient_id: &a.patient_id,
        practitioner_id: &a.practitioner_id,
        start,
        end,
        reason: reason.as_deref(),
        created_by: s.actor.id(),
    };
    appointments::insert(s.db, &s.vault, &booking, s.now).await?;
    s.audit.about(Resource::Appointment(&id));
    s.audit.patient(&a.patient_id);
    Reply::created(appointments::load(s.db, &s.vault, &id).await?)
}

/// `PATCH /api/v1/appointments/{id}`: move it or change its status.
pub(crate) async fn update<H: Host>(s: &mut ClinicScope<'_, '_, H>) -> ApiResult<Reply> {
    let id = s.path_id(kind::APPOINTMENT)?;
    s.audit.about(Resource::Appointment(&id));
    let current = appointments::booking(s.db, &id).await?;
    s.audit.patient(&current.patient_id);
    let patch: AppointmentPatch = s.json()?;
    let start = match not_null("start", patch.start)? {
        Some(t) => time("start", &t)?,
        None => current.start,
    };
    let end = match not_null("end", patch.end)? {
        Some(t) => time("end", &t)?,
        None => current.end,
    };
    let status = match not_null("status", patch.status)? {
        Some(t) => validate::one_of("status", &t, STATUSES)?,
        None => current.status,
    };
    span(start, end)?;
    if !appointments::releases_time(&status) {
        refuse_overlap(s, &current.practitioner_id, start, end, &id).await?;
    }
    appointments::update(s.db, &id, start, end, &status, s.now).await?;
    Reply::ok(appointments::load(s.db, &s.vault, &id).await?)
}
