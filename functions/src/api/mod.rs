//! Route handlers, one module per resource. Handlers run after the route's
//! access checks and inside the request's transaction (see [`crate::app`]).

mod audit_log;
mod auth;
mod clinic_data;
mod clinical;
mod clinics;
mod export;
mod meta;
pub(crate) mod openapi;
pub(crate) mod patients;
mod roles;
mod schedule;
pub(crate) mod support;
pub(crate) mod testing;
mod users;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::app::{Ctx, Reply};
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::routes::RouteId;
use crate::web;

pub(crate) async fn dispatch<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    use RouteId as R;
    match ctx.route.id {
        R::Health => meta::health(ctx),
        R::HealthKeys => meta::health_keys(ctx),
        R::Regions => meta::regions(ctx),
        R::OpenApi => meta::openapi(ctx),
        R::SignUp => clinics::sign_up(ctx).await,
        R::Login => auth::login(ctx).await,
        R::Mfa => auth::mfa(ctx).await,
        R::Session => auth::session(ctx).await,
        R::Logout => auth::logout(ctx).await,
        R::TotpStart => auth::totp_start(ctx).await,
        R::TotpConfirm => auth::totp_confirm(ctx).await,
        R::Password => auth::change_password(ctx).await,
        R::UsersList => users::list(ctx).await,
        R::Practitioners => users::practitioners(ctx).await,
        R::UsersCreate => users::create(ctx).await,
        R::UsersUpdate => users::update(ctx).await,
        R::PatientsList => patients::list(ctx).await,
        R::PatientsCreate => patients::create(ctx).await,
        R::PatientsGet => patients::get(ctx).await,
        R::PatientsUpdate => patients::update(ctx).await,
        R::PatientsDelete => patients::delete(ctx).await,
        R::PatientsRestore => patients::restore(ctx).await,
        R::PatientAudit => audit_log::patient_timeline(ctx).await,
        R::ConditionsList => clinical::conditions(ctx, false).await,
        R::ConditionsCreate => clinical::conditions(ctx, true).await,
        R::PrescriptionsList => clinical::prescriptions(ctx, false).await,
        R::PrescriptionsCreate => clinical::prescriptions(ctx, true).await,
        R::NotesList => clinical::notes(ctx, false).await,
        R::NotesCreate => clinical::notes(ctx, true).await,
        R::AppointmentsList => schedule::list(ctx).await,
        R::AppointmentsCreate => schedule::create(ctx).await,
        R::AppointmentsUpdate => schedule::update(ctx).await,
        R::AuditList => audit_log::list(ctx).await,
        R::AuditVerify => audit_log::verify(ctx).await,
        R::ClinicGet => clinic_data::get(ctx).await,
        R::Export => export::export(ctx).await,
        R::ClinicDeletionStart => clinic_data::start(ctx).await,
        R::ClinicDeletionCancel => clinic_data::cancel(ctx).await,
        R::RolesGet => roles::get(ctx).await,
        R::RolesUpdate => roles::update(ctx).await,
        R::SupportLogin => support::login(ctx).await,
        R::SupportRequestCreate => support::create_request(ctx).await,
        R::SupportSessionStart => support::start_session(ctx).await,
        R::AccessRequestsList => support::list_requests(ctx).await,
        R::AccessRequestApprove => support::approve(ctx).await,
    }
}

impl<H: Host> Ctx<'_, H> {
    /// The request body, parsed strictly.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        web::json_body(&self.headers, &self.body)
    }

    /// The query string, refusing parameters not in `allowed`.
    pub(crate) fn query(&self, allowed: &[&str]) -> ApiResult<web::Query> {
        web::Query::parse(self.query.as_deref(), allowed)
    }

    /// The `{id}` path segment, if it has the shape of an id of `kind`; any
    /// other text is simply not found.
    pub(crate) fn path_id(&self, kind: &str) -> ApiResult<String> {
        let id = self.params.first().ok_or_else(ApiError::not_found)?;
        if crate::ids::is_id(kind, id) {
            Ok(id.clone())
        } else {
            Err(ApiError::not_found())
        }
    }

    pub(crate) fn new_id(&self, kind: &str) -> String {
        crate::ids::new_id(kind, self.random())
    }
}

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
    /// A fixed "now" (2026-11-23), so that date rules run alike every time.
    const NOW: i64 = 1_795_392_000;
    fn parse<T: DeserializeOwned>(headers: &HeaderMap, data: &[u8]) -> Option<T> {
        web::json_body::<T>(headers, data).ok()
    }
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let h = &headers;
    let _ = parse::<auth::Login>(h, data);
    let _ = parse::<auth::PasswordOnly>(h, data);
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
    if let Some(d) = parse::<patients::Demographics>(h, data) {
        let _ = d.validated(NOW);
    }
    clinical::fuzz_entries(h, data, NOW);
}
