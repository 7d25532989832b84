//! The route table: every endpoint with its method, path template, who may
//! call it and the audit action it records. Dispatch, permission checks and
//! the tests that walk every route all read this one list.

use http::Method;

use crate::rbac::Permission;

/// Which handler serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Health,
    HealthKeys,
    Regions,
    OpenApi,
    SignUp,
    Login,
    Mfa,
    Session,
    Logout,
    TotpStart,
    TotpConfirm,
    Password,
    UsersList,
    Practitioners,
    UsersCreate,
    UsersUpdate,
    PatientsList,
    PatientsCreate,
    PatientsGet,
    PatientsUpdate,
    PatientsDelete,
    PatientsRestore,
    PatientAudit,
    ConditionsList,
    ConditionsCreate,
    PrescriptionsList,
    PrescriptionsCreate,
    NotesList,
    NotesCreate,
    AppointmentsList,
    AppointmentsCreate,
    AppointmentsUpdate,
    AuditList,
    AuditVerify,
    ClinicGet,
    Export,
    ClinicDeletionStart,
    ClinicDeletionCancel,
    RolesGet,
    RolesUpdate,
    SupportLogin,
    SupportRequestCreate,
    SupportSessionStart,
    AccessRequestsList,
    AccessRequestApprove,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler does its own checks (sign-up, login).
    Public,
    /// Any signed-in clinic user.
    Session,
    /// A signed-in clinic user whose role holds the permission.
    Permission(Permission),
    /// Signed-in platform staff (support console).
    Staff,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// Template; `{id}` matches one path segment.
    pub path: &'static str,
    pub id: RouteId,
    pub access: Access,
    /// Audit action recorded for the request (success and refusals alike).
    pub audit: Option<&'static str>,
}

impl Route {
    /// Routes under `/api/v1/auth/` stay reachable before TOTP enrolment.
    pub fn mfa_exempt(&self) -> bool {
        self.path.starts_with("/api/v1/auth/")
    }

    /// Routes a clinic scheduled for deletion still answers: signing in, its
    /// own state, cancelling, taking its data out and its audit trail.
    /// Everything else is 409 until the deletion is cancelled.
    pub fn open_while_deleting(&self) -> bool {
        use RouteId as R;
        self.mfa_exempt()
            || matches!(
                self.id,
                R::ClinicGet | R::ClinicDeletionCancel | R::Export | R::AuditList | R::AuditVerify
            )
    }
}

const fn r(
    method: Method,
    path: &'static str,
    id: RouteId,
    access: Access,
    audit: Option<&'static str>,
) -> Route {
    Route {
        method,
        path,
        id,
        access,
        audit,
    }
}

use Access::{Permission as P, Public, Session, Staff};
use RouteId as R;

/// Every route.
pub const ROUTES: &[Route] = &[
    r(Method::GET, "/healthz", R::Health, Public, None),
    r(Method::GET, "/healthz/keys", R::HealthKeys, Public, None),
    r(Method::GET, "/api/v1/regions", R::Regions, Public, None),
    r(
        Method::GET,
        "/api/v1/openapi.json",
        R::OpenApi,
        Public,
        None,
    ),
    r(
        Method::POST,
        "/api/v1/clinics",
        R::SignUp,
        Public,
        Some("clinic.create"),
    ),
    r(
        Method::POST,
        "/api/v1/auth/login",
        R::Login,
        Public,
        Some("auth.login"),
    ),
    r(
        Method::POST,
        "/api/v1/auth/mfa",
        R::Mfa,
        Public,
        Some("auth.mfa"),
    ),
    r(
        Method::GET,
        "/api/v1/auth/session",
        R::Session,
        Session,
        None,
    ),
    r(
        Method::POST,
        "/api/v1/auth/logout",
        R::Logout,
        Session,
        Some("auth.logout"),
    ),
    r(
        Method::POST,
        "/api/v1/auth/totp",
        R::TotpStart,
        Session,
        Some("auth.totp.start"),
    ),
    r(
        Method::POST,
        "/api/v1/auth/totp/confirm",
        R::TotpConfirm,
        Session,
        Some("auth.totp.confirm"),
    ),
    r(
        Method::POST,
        "/api/v1/auth/password",
        R::Password,
        Session,
        Some("auth.password"),
    ),
    r(
        Method::GET,
        "/api/v1/users",
        R::UsersList,
        P(Permission::StaffManage),
        Some("user.list"),
    ),
    r(
        Method::GET,
        "/api/v1/practitioners",
        R::Practitioners,
        P(Permission::ScheduleRead),
        Some("practitioner.list"),
    ),
    r(
        Method::POST,
        "/api/v1/users",
        R::UsersCreate,
        P(Permission::StaffManage),
        Some("user.create"),
    ),
    r(
        Method::PATCH,
        "/api/v1/users/{id}",
        R::UsersUpdate,
        P(Permission::StaffManage),
        Some("user.update"),
    ),
    r(
        Method::GET,
        "/api/v1/patients",
        R::PatientsList,
        P(Permission::PatientRead),
        Some("patient.list"),
    ),
    r(
        Method::POST,
        "/api/v1/patients",
        R::PatientsCreate,
        P(Permission::PatientWrite),
        Some("patient.create"),
    ),
    r(
        Method::GET,
        "/api/v1/patients/{id}",
        R::PatientsGet,
        P(Permission::PatientRead),
        Some("patient.read"),
    ),
    r(
        Method::PATCH,
        "/api/v1/patients/{id}",
        R::PatientsUpdate,
        P(Permission::PatientWrite),
        Some("patient.update"),
    ),
    r(
        Method::DELETE,
        "/api/v1/patients/{id}",
        R::PatientsDelete,
        P(Permission::PatientDelete),
        Some("patient.delete"),
    ),
    r(
        Method::POST,
        "/api/v1/patients/{id}/restore",
        R::PatientsRestore,
        P(Permission::PatientDelete),
        Some("patient.restore"),
    ),
    r(
        Method::GET,
        "/api/v1/patients/{id}/audit",
        R::PatientAudit,
        P(Permission::PatientAuditRead),
        Some("patient.audit.read"),
    ),
    r(
        Method::GET,
        "/api/v1/patients/{id}/conditions",
        R::ConditionsList,
        P(Permission::ClinicalRead),
        Some("condition.list"),
    ),
    r(
        Method::POST,
        "/api/v1/patients/{id}/conditions",
        R::ConditionsCreate,
        P(Permission::ClinicalWrite),
        Some("condition.create"),
    ),
    r(
        Method::GET,
        "/api/v1/patients/{id}/prescriptions",
        R::PrescriptionsList,
        P(Permission::ClinicalRead),
        Some("prescription.list"),
    ),
    r(
        Method::POST,
        "/api/v1/patients/{id}/prescriptions",
        R::PrescriptionsCreate,
        P(Permission::PrescriptionWrite),
        Some("prescription.create"),
    ),
    r(
        Method::GET,
        "/api/v1/patients/{id}/notes",
        R::NotesList,
        P(Permission::ClinicalRead),
        Some("note.list"),
    ),
    r(
        Method::POST,
        "/api/v1/patients/{id}/notes",
        R::NotesCreate,
        P(Permission::ClinicalWrite),
        Some("note.create"),
    ),
    r(
        Method::GET,
        "/api/v1/appointments",
        R::AppointmentsList,
        P(Permission::ScheduleRead),
        Some("appointment.list"),
    ),
    r(
        Method::POST,
        "/api/v1/appointments",
        R::AppointmentsCreate,
        P(Permission::ScheduleWrite),
        Some("appointment.create"),
    ),
    r(
        Method::PATCH,
        "/api/v1/appointments/{id}",
        R::AppointmentsUpdate,
        P(Permission::ScheduleWrite),
        Some("appointment.update"),
    ),
    r(
        Method::GET,
        "/api/v1/audit",
        R::AuditList,
        P(Permission::AuditRead),
        Some("audit.list"),
    ),
    r(
        Method::GET,
        "/api/v1/audit/verify",
        R::AuditVerify,
        P(Permission::AuditRead),
        Some("audit.verify"),
    ),
    r(
        Method::GET,
        "/api/v1/clinic",
        R::ClinicGet,
        P(Permission::ClinicManage),
        Some("clinic.read"),
    ),
    r(
        Method::GET,
        "/api/v1/export",
        R::Export,
        P(Permission::ClinicManage),
        Some("clinic.export"),
    ),
    r(
        Method::POST,
        "/api/v1/clinic/deletion",
        R::ClinicDeletionStart,
        P(Permission::ClinicManage),
        Some("clinic.delete"),
    ),
    r(
        Method::DELETE,
        "/api/v1/clinic/deletion",
        R::ClinicDeletionCancel,
        P(Permission::ClinicManage),
        Some("clinic.delete.cancel"),
    ),
    r(
        Method::GET,
        "/api/v1/clinic/roles",
        R::RolesGet,
        P(Permission::ClinicManage),
        Some("clinic.roles.read"),
    ),
    r(
        Method::PUT,
        "/api/v1/clinic/roles",
        R::RolesUpdate,
        P(Permission::ClinicManage),
        Some("clinic.roles.update"),
    ),
    r(
        Method::POST,
        "/api/v1/support/login",
        R::SupportLogin,
        Public,
        Some("support.login"),
    ),
    r(
        Method::POST,
        "/api/v1/support/access-requests",
        R::SupportRequestCreate,
        Staff,
        Some("support.access.request"),
    ),
    r(
        Method::POST,
        "/api/v1/support/access-requests/{id}/session",
        R::SupportSessionStart,
        Staff,
        Some("support.session.start"),
    ),
    r(
        Method::GET,
        "/api/v1/access-requests",
        R::AccessRequestsList,
        P(Permission::ClinicManage),
        Some("access_request.list"),
    ),
    r(
        Method::POST,
        "/api/v1/access-requests/{id}/approve",
        R::AccessRequestApprove,
        P(Permission::ClinicManage),
        Some("access_request.approve"),
    ),
];

/// The route for a request, with the values of its `{id}` segments.
pub fn find(method: &Method, path: &str) -> Option<(&'static Route, Vec<String>)> {
    let segs: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find_map(|route| {
        if route.method != *method {
            return None;
        }
        let tpl: Vec<&str> = route.path.split('/').collect();
        if tpl.len() != segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (t, s) in tpl.iter().zip(&segs) {
            if *t == "{id}" {
                if s.is_empty() {
                    return None;
                }
                params.push((*s).to_owned());
            } else if t != s {
                return None;
            }
        }
        Some((route, params))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let (r, p) = find(&Method::GET, "/api/v1/patients/pat_x").unwrap();
        assert_eq!((r.id, p), (RouteId::PatientsGet, vec!["pat_x".to_owned()]));
        assert_eq!(
            find(&Method::GET, "/api/v1/patients").unwrap().0.id,
            RouteId::PatientsList
        );
        assert!(find(&Method::PUT, "/api/v1/patients").is_none());
        assert!(find(&Method::GET, "/api/v1/patients/").is_none());
        assert!(find(&Method::GET, "/api/v1/patients/a/b").is_none());
        assert!(find(&Method::POST, "/api/v1/auth/totp")
            .unwrap()
            .0
            .mfa_exempt());
        assert!(!find(&Method::GET, "/api/v1/users").unwrap().0.mfa_exempt());
    }

    #[test]
    fn every_route_is_unique_and_clinic_routes_are_audited() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
            if matches!(a.access, Access::Permission(_)) {
                assert!(a.audit.is_some(), "{} {} must be audited", a.method, a.path);
            }
        }
    }
}
