//! Route handlers, one module per resource: each parses and validates its
//! request, calls [`crate::records`] for what is stored, sets what the
//! audit entry is about, and replies. No SQL and no field constants live
//! here, and no handler module uses another: what two share is a record's
//! (or the request's) business. Which handler serves which route, and who
//! may call it, is [`crate::routes`]'.

pub(crate) mod audit_log;
pub(crate) mod auth;
pub(crate) mod clinic_data;
pub(crate) mod clinical;
pub(crate) mod clinics;
pub(crate) mod export;
pub(crate) mod fhir;
pub(crate) mod meta;
pub(crate) mod patients;
pub(crate) mod roles;
pub(crate) mod schedule;
pub(crate) mod support;
pub(crate) mod testing;
pub(crate) mod users;

use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ApiResult};
use crate::web;

/// `Option<Option<T>>` for PATCH bodies: absent → `None`, `null` →
/// `Some(None)`, a value → `Some(Some(v))`.
pub(crate) fn patch_field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A PATCH field that may be left out but not set to `null`.
pub(crate) fn not_null<T>(field: &str, value: Option<Option<T>>) -> ApiResult<Option<T>> {
    match value {
        Some(None) => Err(ApiError::invalid(field, "cannot be null")),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// A scheduled deletion (of a patient or the clinic): purged after this
/// time unless cancelled.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Deletion {
    pub purge_after: String,
}

impl Deletion {
    pub(crate) fn at(purge_after: i64) -> Self {
        Deletion {
            purge_after: crate::clock::rfc3339(purge_after),
        }
    }
}

/// The query of every paged list.
pub(crate) const PAGE_QUERY: &[&str] = &["limit", "cursor"];

/// A page of a list; `next_cursor` is the `?cursor=` of the next page.
#[derive(serde::Serialize)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A whole list (one that is never paged).
#[derive(serde::Serialize)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Page<T> {
    /// `rows` were fetched with `limit + 1` to learn whether more follow.
    pub fn new(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> i64) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(limit.max(0) as usize);
        let next_cursor = if more {
            items.last().map(|l| web::encode_cursor(cursor_of(l)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// Every request body type, parsed strictly from `data` and validated where
/// the handler validates (see `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_json_bodies(data: &[u8]) {
    use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
    use serde::de::DeserializeOwned;
    /// A fixed "now" (2026-11-23), so that date rules run alike every time.
    const NOW: i64 = 1_795_392_000;
    fn parse<T: DeserializeOwned>(headers: &HeaderMap, data: &[u8]) -> Option<T> {
        web::json_body::<T>(headers, data).ok()
    }
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let h = &headers;
    let _ = parse::<auth::Login>(h, data);
    let _ = parse::<auth::TotpStart>(h, data);
    let _ = parse::<auth::ChangePassword>(h, data);
    let _ = parse::<clinic_data::Confirm>(h, data);
    let _ = parse::<clinics::SignUp>(h, data);
    let _ = parse::<patients::PatientPatch>(h, data);
    let _ = parse::<roles::Settings>(h, data);
    let _ = parse::<schedule::NewAppointment>(h, data);
    let _ = parse::<schedule::AppointmentPatch>(h, data);
    let _ = parse::<support::StaffLogin>(h, data);
    let _ = parse::<support::NewRequest>(h, data);
    let _ = parse::<users::NewUser>(h, data);
    let _ = parse::<users::UserPatch>(h, data);
    let _ = parse::<users::Reset>(h, data);
    if let Some(d) = parse::<patients::Demographics>(h, data) {
        let _ = d.validated(NOW);
    }
    clinical::fuzz_entries(h, data, NOW);
}
