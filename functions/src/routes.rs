//! The route table: one row per endpoint. A row gives the route's id,
//! method and path, who may call it, the audit action it records, its
//! handler, what else the pipeline must know of it (flags), and its
//! documentation (summary, status and answer, body, query, errors). From
//! the rows come the [`RouteId`]s, [`ROUTES`] (the API) and [`INTERNAL`]
//! (an operator's trigger and the test hooks), [`find`], the dispatch to
//! handlers and the OpenAPI operation of each route: adding a route is one
//! row here and one handler.
//!
//! Who may call a route decides what its handler receives: a public or
//! internal route's handler an [`Open`](crate::request::Open) request, a
//! staff route's one acting as [`Staff`](crate::request::actor::Staff), and
//! a route under a session or a permission a
//! [`ClinicScope`](crate::request::ClinicScope) with its clinic and actor.

use http::Method;

use crate::api::{
    audit_log, auth, clinic_data, clinical, clinics, export, fhir, meta, patients, roles, schedule,
    support, testing, users,
};
use crate::error::ApiResult;
use crate::host::Host;
use crate::openapi::{Operation, Schemas};
use crate::rbac::Permission;
use crate::request::pipeline::Request;
use crate::request::{Open, Reply};

pub use crate::route::{Access, Flag, Route};

/// `Access` of a row.
macro_rules! access {
    (P $perm:ident) => {
        Access::Permission(Permission::$perm)
    };
    ($kind:ident) => {
        Access::$kind
    };
}

/// `audit` of a row: `-` for none.
macro_rules! audit {
    (-) => {
        None
    };
    ($action:literal) => {
        Some($action)
    };
}

/// The handler call of a row, with the view its access gives.
macro_rules! call {
    (Staff, $r:ident, $h:path) => {
        match $r.staff() {
            Ok(mut o) => $h(&mut o).await,
            Err(e) => Err(e),
        }
    };
    (Session, $r:ident, $h:path) => {
        match $r.scope() {
            Ok(mut s) => $h(&mut s).await,
            Err(e) => Err(e),
        }
    };
    (P, $r:ident, $h:path) => {
        call!(Session, $r, $h)
    };
    ($open:ident, $r:ident, $h:path) => {
        $h(&mut $r.open()).await
    };
}

/// The success answer of a row's documentation.
macro_rules! answer {
    ($s:ident; ()) => {
        None
    };
    ($s:ident; (export)) => {
        Some(crate::openapi::export_content())
    };
    ($s:ident; (fhir $kind:literal)) => {
        Some(crate::openapi::fhir($kind))
    };
    ($s:ident; (manifest)) => {
        Some(crate::openapi::bulk_manifest())
    };
    ($s:ident; (ndjson)) => {
        Some(crate::openapi::ndjson())
    };
    ($s:ident; (raw $f:path)) => {
        Some(crate::openapi::json($f()))
    };
    ($s:ident; (page clinical $t:ty)) => {
        Some(crate::openapi::json(crate::openapi::page(
            crate::openapi::clinical($s.of::<$t>()),
        )))
    };
    ($s:ident; (page $t:ty)) => {
        Some(crate::openapi::json(crate::openapi::page($s.of::<$t>())))
    };
    ($s:ident; (items $t:ty)) => {
        Some(crate::openapi::json(crate::openapi::items($s.of::<$t>())))
    };
    ($s:ident; (list $t:ty)) => {
        Some(crate::openapi::json(crate::openapi::list($s.of::<$t>())))
    };
    ($s:ident; (clinical $t:ty)) => {
        Some(crate::openapi::json(crate::openapi::clinical(
            $s.of::<$t>(),
        )))
    };
    ($s:ident; ($t:ty)) => {
        Some(crate::openapi::json($s.of::<$t>()))
    };
}

macro_rules! routes {
    (@body $s:ident) => {
        None
    };
    (@body $s:ident, $body:ty) => {
        Some($s.of::<$body>())
    };
    (@query) => {
        &[]
    };
    (@query $query:expr) => {
        $query
    };
    (@reads) => {
        None
    };
    (@reads $reads:path) => {
        Some($reads as crate::request::prefetch::Reads)
    };
    (
        $(
            $section:ident {
                $(
                    $id:ident : $method:ident $path:literal => $access:ident $( ( $perm:ident ) )?,
                    $audit:tt, $handler:path, [$($flag:ident),*],
                    $summary:literal => $status:literal $answer:tt
                    $(, body $body:ty)? $(, query $query:expr)? $(, reads $reads:path)? $(, errors [$($ecode:literal $ewhy:literal),*])?;
                )*
            }
        )*
    ) => {
        /// Which handler serves a route.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum RouteId {
            $($($id,)*)*
        }

        routes!(@tables $( $section { $( $id : $method $path => $access $( ( $perm ) )?, $audit, [$($flag),*]; )* } )*);

        impl RouteId {
            /// The route of this id.
            pub fn route(self) -> &'static Route {
                match self {
                    $($(RouteId::$id => routes!(@find $section $id),)*)*
                }
            }
        }

        /// Runs a route's handler with the view its access gives.
        pub(crate) async fn dispatch<H: Host>(id: RouteId, r: &mut Request<'_, H>) -> ApiResult<Reply> {
            match id {
                $($(RouteId::$id => call!($access, r, $handler),)*)*
            }
        }

        /// What a route declares it will read ([`crate::request::prefetch`]).
        pub(crate) fn reads(id: RouteId) -> Option<crate::request::prefetch::Reads> {
            match id {
                $($(RouteId::$id => routes!(@reads $($reads)?),)*)*
            }
        }

        /// A route's documentation.
        pub(crate) fn operation(id: RouteId, s: &mut Schemas) -> Operation {
            match id {
                $($(RouteId::$id => Operation {
                    summary: $summary,
                    status: $status,
                    response: answer!(s; $answer),
                    request: routes!(@body s $(, $body)?),
                    query: routes!(@query $($query)?),
                    errors: &[$($(($ecode, $ewhy)),*)?],
                },)*)*
            }
        }
    };
    (@tables api { $($api:tt)* } internal { $($internal:tt)* }) => {
        /// Every route of the API (the OpenAPI document's).
        pub static ROUTES: &[Route] = &routes!(@rows $($api)*);
        /// Their ids, in the same order.
        static ROUTE_IDS: &[RouteId] = &routes!(@ids $($api)*);
        /// An operator's trigger and the test hooks: not part of the API.
        pub static INTERNAL: &[Route] = &routes!(@rows $($internal)*);
        /// Their ids, in the same order.
        static INTERNAL_IDS: &[RouteId] = &routes!(@ids $($internal)*);
    };
    (@ids $( $id:ident : $method:ident $path:literal => $access:ident $( ( $perm:ident ) )?, $audit:tt, [$($flag:ident),*]; )*) => {
        [$(RouteId::$id,)*]
    };
    (@find api $id:ident) => {
        &ROUTES[ROUTE_IDS.iter().position(|i| *i == RouteId::$id).unwrap_or(0)]
    };
    (@find internal $id:ident) => {
        &INTERNAL[INTERNAL_IDS.iter().position(|i| *i == RouteId::$id).unwrap_or(0)]
    };
    (@rows $( $id:ident : $method:ident $path:literal => $access:ident $( ( $perm:ident ) )?, $audit:tt, [$($flag:ident),*]; )*) => {
        [$(Route {
            method: Method::$method,
            path: $path,
            access: access!($access $($perm)?),
            audit: audit!($audit),
            flags: &[$(Flag::$flag),*],
        },)*]
    };
}

#[rustfmt::skip]
routes! {
    api {
        Health: GET "/healthz" => Public, -, meta::health, [],
            "Liveness and the region this instance serves" => 200 (raw meta::health_schema);
        HealthKeys: GET "/healthz/keys" => Public, -, meta::health_keys, [],
            "The root key versions this instance holds (numbers, never keys), for an operator's root rotation" => 200 (raw meta::health_keys_schema);
        Regions: GET "/api/v1/regions" => Public, -, meta::regions, [],
            "The regions a clinic may choose" => 200 (list crate::app::RegionInfo);
        OpenApi: GET "/api/v1/openapi.json" => Public, -, openapi_json, [],
            "This document" => 200 (raw meta::object_schema);
        SignUp: POST "/api/v1/clinics" => Public, "clinic.create", clinics::sign_up, [Regional],
            "Sign up a clinic and its owner; the clinic id starts with its region" => 201 (clinics::SignedUp),
            body clinics::SignUp;
        Login: POST "/api/v1/auth/login" => Public, "auth.login", auth::login, [Credentials, Regional, Throttled],
            "Sign in with password; a session, or the demand for a TOTP code" => 200 (auth::LoginResult),
            body auth::Login;
        Mfa: POST "/api/v1/auth/mfa" => Public, "auth.mfa", auth::mfa, [Token, Regional, Throttled],
            "The TOTP step of sign-in (MFA token as bearer or cookie)" => 200 (auth::LoginResult),
            body auth::Code6;
        Session: GET "/api/v1/auth/session" => Session, -, auth::session, [],
            "The current session" => 200 (auth::SessionView),
            reads auth::reads_session;
        Logout: POST "/api/v1/auth/logout" => Session, "auth.logout", auth::logout, [],
            "End the session, for cookie and bearer alike" => 204 ();
        TotpStart: POST "/api/v1/auth/totp" => Session, "auth.totp.start", auth::totp_start, [OwnAccount, Throttled],
            "Begin TOTP enrolment (again: with a code from the device in use)" => 200 (auth::TotpEnrolment),
            body auth::TotpStart;
        TotpConfirm: POST "/api/v1/auth/totp/confirm" => Session, "auth.totp.confirm", auth::totp_confirm, [OwnAccount, Throttled],
            "Confirm TOTP enrolment with a code" => 204 (),
            body auth::Code6, errors [409 "no enrolment under way: start one first"];
        Password: POST "/api/v1/auth/password" => Session, "auth.password", auth::change_password, [OwnAccount, Throttled],
            "Change one's password" => 204 (),
            body auth::ChangePassword;
        UsersList: GET "/api/v1/users" => P(StaffManage), "user.list", users::list, [],
            "The clinic's staff" => 200 (page users::UserView),
            query crate::api::PAGE_QUERY;
        Practitioners: GET "/api/v1/practitioners" => P(ScheduleRead), "practitioner.list", users::practitioners, [],
            "Who can be booked: the clinic's active owners, doctors and nurses" => 200 (page users::Practitioner);
        UsersCreate: POST "/api/v1/users" => P(StaffManage), "user.create", users::create, [],
            "Add a staff member" => 201 (users::UserView),
            body users::NewUser;
        UsersUpdate: PATCH "/api/v1/users/{id}" => P(StaffManage), "user.update", users::update, [],
            "Change a staff member's role or deactivate them" => 200 (users::UserView),
            body users::UserPatch;
        UsersReset: POST "/api/v1/users/{id}/reset" => P(StaffManage), "user.reset", users::reset, [],
            "Reset a colleague's password (a temporary one, changed at the next sign-in) or TOTP (enrolled again); their sessions end" => 200 (users::ResetDone),
            body users::Reset;
        PatientsList: GET "/api/v1/patients" => P(PatientRead), "patient.list", patients::list, [],
            "List or search patients (name words and prefixes, phone, national id); prefer POST /api/v1/patients/search: text in a URL is kept by proxies, traces and history" => 200 (page patients::PatientView),
            query patients::LIST_QUERY, reads patients::reads_list;
        PatientsSearch: POST "/api/v1/patients/search" => P(PatientRead), "patient.list", patients::search, [Search],
            "Search patients with the text in the body, never in a URL (the answer of GET ?q=)" => 200 (page patients::PatientView),
            body patients::Search, reads patients::reads_search;
        PatientsCreate: POST "/api/v1/patients" => P(PatientWrite), "patient.create", patients::create, [Append],
            "Register a patient" => 201 (patients::PatientView),
            body patients::Demographics;
        PatientsGet: GET "/api/v1/patients/{id}" => P(PatientRead), "patient.read", patients::get, [],
            "One patient" => 200 (patients::PatientView),
            reads patients::reads_one;
        PatientsUpdate: PATCH "/api/v1/patients/{id}" => P(PatientWrite), "patient.update", patients::update, [],
            "Change a patient's demographics" => 200 (patients::PatientView),
            body patients::PatientPatch, reads patients::reads_one;
        PatientsDelete: DELETE "/api/v1/patients/{id}" => P(PatientDelete), "patient.delete", patients::delete, [],
            "Delete a patient: hidden now, purged after 30 days" => 202 (crate::api::Deletion);
        PatientsRestore: POST "/api/v1/patients/{id}/restore" => P(PatientDelete), "patient.restore", patients::restore, [],
            "Restore a deleted patient within the grace period" => 200 (patients::PatientView);
        PatientAudit: GET "/api/v1/patients/{id}/audit" => P(PatientAuditRead), "patient.audit.read", audit_log::patient_timeline, [],
            "A patient's audit timeline" => 200 (page crate::audit::EntryView),
            query crate::api::PAGE_QUERY;
        ConditionsList: GET "/api/v1/patients/{id}/conditions" => P(ClinicalRead), "condition.list", clinical::list_conditions, [],
            "A patient's conditions" => 200 (page clinical clinical::NewCondition),
            query crate::api::PAGE_QUERY;
        ConditionsCreate: POST "/api/v1/patients/{id}/conditions" => P(ClinicalWrite), "condition.create", clinical::create_condition, [],
            "Record a condition" => 201 (clinical clinical::NewCondition),
            body clinical::NewCondition;
        PrescriptionsList: GET "/api/v1/patients/{id}/prescriptions" => P(ClinicalRead), "prescription.list", clinical::list_prescriptions, [],
            "A patient's prescriptions" => 200 (page clinical clinical::NewPrescription),
            query crate::api::PAGE_QUERY;
        PrescriptionsCreate: POST "/api/v1/patients/{id}/prescriptions" => P(PrescriptionWrite), "prescription.create", clinical::create_prescription, [],
            "Prescribe" => 201 (clinical clinical::NewPrescription),
            body clinical::NewPrescription;
        NotesList: GET "/api/v1/patients/{id}/notes" => P(ClinicalRead), "note.list", clinical::list_notes, [],
            "A patient's notes" => 200 (page clinical clinical::NewNote),
            query crate::api::PAGE_QUERY;
        NotesCreate: POST "/api/v1/patients/{id}/notes" => P(ClinicalWrite), "note.create", clinical::create_note, [],
            "Write a note (author and time are the server's)" => 201 (clinical clinical::NewNote),
            body clinical::NewNote;
        AllergiesList: GET "/api/v1/patients/{id}/allergies" => P(ClinicalRead), "allergy.list", clinical::list_allergies, [],
            "A patient's allergies" => 200 (page clinical clinical::NewAllergy),
            query crate::api::PAGE_QUERY;
        AllergiesCreate: POST "/api/v1/patients/{id}/allergies" => P(ClinicalWrite), "allergy.create", clinical::create_allergy, [],
            "Record an allergy (a severity needs its reaction)" => 201 (clinical clinical::NewAllergy),
            body clinical::NewAllergy;
        VitalsList: GET "/api/v1/patients/{id}/vitals" => P(ClinicalRead), "vitals.list", clinical::list_vitals, [],
            "A patient's vital signs" => 200 (page clinical clinical::NewVitals),
            query crate::api::PAGE_QUERY;
        VitalsCreate: POST "/api/v1/patients/{id}/vitals" => P(ClinicalWrite), "vitals.create", clinical::create_vitals, [],
            "Record vital signs (at least one measurement, each range-checked)" => 201 (clinical clinical::NewVitals),
            body clinical::NewVitals;
        AppointmentsList: GET "/api/v1/appointments" => P(ScheduleRead), "appointment.list", schedule::list, [],
            "The schedule of a day or week, patient names decrypted" => 200 (items schedule::AppointmentView),
            query schedule::LIST_QUERY;
        AppointmentsCreate: POST "/api/v1/appointments" => P(ScheduleWrite), "appointment.create", schedule::create, [],
            "Book an appointment; 409 if it overlaps the practitioner's time" => 201 (schedule::AppointmentView),
            body schedule::NewAppointment;
        AppointmentsUpdate: PATCH "/api/v1/appointments/{id}" => P(ScheduleWrite), "appointment.update", schedule::update, [],
            "Move an appointment or change its status" => 200 (schedule::AppointmentView),
            body schedule::AppointmentPatch;
        AuditList: GET "/api/v1/audit" => P(AuditRead), "audit.list", audit_log::list, [Deleting],
            "The clinic's audit trail, newest first" => 200 (page crate::audit::EntryView),
            query audit_log::LIST_QUERY;
        AuditVerify: GET "/api/v1/audit/verify" => P(AuditRead), "audit.verify", audit_log::verify, [Deleting],
            "Verify the audit chain end to end" => 200 (audit_log::VerifyView);
        ClinicGet: GET "/api/v1/clinic" => P(ClinicManage), "clinic.read", clinic_data::get, [Deleting],
            "The clinic's record" => 200 (clinic_data::ClinicView);
        Export: GET "/api/v1/export" => P(ClinicManage), "clinic.export", export::export, [Deleting],
            "All clinic data, decrypted and streamed: a zip of one CSV per table, or one JSON document" => 200 (export),
            query export::QUERY;
        ClinicDeletionStart: POST "/api/v1/clinic/deletion" => P(ClinicManage), "clinic.delete", clinic_data::start, [Throttled, Directory],
            "Schedule the clinic's deletion (30 days' grace); password required" => 202 (crate::api::Deletion),
            body clinic_data::Confirm;
        ClinicDeletionCancel: DELETE "/api/v1/clinic/deletion" => P(ClinicManage), "clinic.delete.cancel", clinic_data::cancel, [Deleting, Directory],
            "Cancel the clinic's deletion within the grace" => 204 ();
        RolesGet: GET "/api/v1/clinic/roles" => P(ClinicManage), "clinic.roles.read", roles::get, [],
            "What each role may do here, with defaults and ceilings" => 200 (items roles::RoleView);
        RolesUpdate: PUT "/api/v1/clinic/roles" => P(ClinicManage), "clinic.roles.update", roles::update, [],
            "Narrow or widen nurses' and receptionists' rights, within the ceilings" => 200 (items roles::RoleView),
            body roles::Settings;
        SupportLogin: POST "/api/v1/support/login" => Public, "support.login", support::login, [Credentials, Throttled],
            "Platform staff sign-in: password and TOTP, always" => 200 (support::StaffSession),
            body support::StaffLogin;
        SupportRequestCreate: POST "/api/v1/support/access-requests" => Staff, "support.access.request", support::create_request, [],
            "Ask a clinic's owner for access under a ticket" => 201 (support::AccessRequestCreated),
            body support::NewRequest;
        SupportSessionStart: POST "/api/v1/support/access-requests/{id}/session" => Staff, "support.session.start", support::start_session, [],
            "Start the approved 30-minute, read-only support session" => 200 (auth::SessionView);
        AccessRequestsList: GET "/api/v1/access-requests" => P(ClinicManage), "access_request.list", support::list_requests, [],
            "Support's access requests to this clinic" => 200 (page support::AccessRequestView);
        AccessRequestApprove: POST "/api/v1/access-requests/{id}/approve" => P(ClinicManage), "access_request.approve", support::approve, [Directory],
            "Approve a pending access request" => 200 (support::Approved);
        FhirMetadata: GET "/fhir/r4/metadata" => Public, -, fhir_metadata, [],
            "FHIR: the CapabilityStatement" => 200 (fhir "CapabilityStatement");
        FhirPatientRead: GET "/fhir/r4/Patient/{id}" => P(PatientRead), "patient.read", fhir::patient_read, [],
            "FHIR: a Patient" => 200 (fhir "Patient");
        FhirPatientSearch: GET "/fhir/r4/Patient" => P(PatientRead), "patient.list", fhir::patient_search, [],
            "FHIR: search Patients (prefer POST _search: a name in a URL is logged by every proxy)" => 200 (fhir "Bundle"),
            query FHIR_PATIENT_QUERY;
        FhirPatientSearchPost: POST "/fhir/r4/Patient/_search" => P(PatientRead), "patient.list", fhir::patient_search, [Search],
            "FHIR: search Patients, the parameters in a form body" => 200 (fhir "Bundle"),
            errors [415 "a body that is not application/x-www-form-urlencoded"];
        FhirPractitionerRead: GET "/fhir/r4/Practitioner/{id}" => P(ScheduleRead), "practitioner.read", fhir::practitioner_read, [],
            "FHIR: a Practitioner (a clinic user who sees patients)" => 200 (fhir "Practitioner");
        FhirPractitionerSearch: GET "/fhir/r4/Practitioner" => P(ScheduleRead), "practitioner.list", fhir::practitioner_search, [],
            "FHIR: search Practitioners" => 200 (fhir "Bundle"),
            query &["name", "_count", "_page"];
        FhirConditionRead: GET "/fhir/r4/Condition/{id}" => P(ClinicalRead), "condition.read", fhir::condition_read, [],
            "FHIR: a Condition" => 200 (fhir "Condition");
        FhirConditionSearch: GET "/fhir/r4/Condition" => P(ClinicalRead), "condition.list", fhir::condition_search, [],
            "FHIR: search Conditions" => 200 (fhir "Bundle"),
            query FHIR_CLINICAL_QUERY;
        FhirAllergyRead: GET "/fhir/r4/AllergyIntolerance/{id}" => P(ClinicalRead), "allergy.read", fhir::allergy_read, [],
            "FHIR: an AllergyIntolerance" => 200 (fhir "AllergyIntolerance");
        FhirAllergySearch: GET "/fhir/r4/AllergyIntolerance" => P(ClinicalRead), "allergy.list", fhir::allergy_search, [],
            "FHIR: search AllergyIntolerances" => 200 (fhir "Bundle"),
            query FHIR_CLINICAL_QUERY;
        FhirObservationRead: GET "/fhir/r4/Observation/{id}" => P(ClinicalRead), "vitals.read", fhir::observation_read, [],
            "FHIR: an Observation (vital signs)" => 200 (fhir "Observation");
        FhirObservationSearch: GET "/fhir/r4/Observation" => P(ClinicalRead), "vitals.list", fhir::observation_search, [],
            "FHIR: search Observations (vital signs)" => 200 (fhir "Bundle"),
            query FHIR_CLINICAL_QUERY;
        FhirMedicationRead: GET "/fhir/r4/MedicationRequest/{id}" => P(ClinicalRead), "prescription.read", fhir::medication_read, [],
            "FHIR: a MedicationRequest" => 200 (fhir "MedicationRequest");
        FhirMedicationSearch: GET "/fhir/r4/MedicationRequest" => P(ClinicalRead), "prescription.list", fhir::medication_search, [],
            "FHIR: search MedicationRequests" => 200 (fhir "Bundle"),
            query FHIR_CLINICAL_QUERY;
        FhirAppointmentRead: GET "/fhir/r4/Appointment/{id}" => P(ScheduleRead), "appointment.read", fhir::appointment_read, [],
            "FHIR: an Appointment" => 200 (fhir "Appointment");
        FhirAppointmentSearch: GET "/fhir/r4/Appointment" => P(ScheduleRead), "appointment.list", fhir::appointment_search, [],
            "FHIR: search Appointments" => 200 (fhir "Bundle"),
            query &["patient", "practitioner", "date", "_count", "_page"];
        FhirEncounterRead: GET "/fhir/r4/Encounter/{id}" => P(ClinicalRead), "encounter.read", fhir::encounter_read, [],
            "FHIR: an Encounter (a visit: an appointment the patient arrived for)" => 200 (fhir "Encounter");
        FhirEncounterSearch: GET "/fhir/r4/Encounter" => P(ClinicalRead), "encounter.list", fhir::encounter_search, [],
            "FHIR: search Encounters" => 200 (fhir "Bundle"),
            query &["patient", "date", "_count", "_page"];
        FhirExport: GET "/fhir/r4/$export" => P(ClinicManage), "clinic.export", fhir::export_start, [Deleting],
            "FHIR Bulk Data: export the whole clinic (Prefer: respond-async); 202 with Content-Location once the files are written" => 202 (),
            query &["_type", "_outputFormat"];
        FhirExportStatus: GET "/fhir/r4/$export-status/{id}" => P(ClinicManage), "bulk_export.status", fhir::export_status, [Deleting],
            "FHIR Bulk Data: an export's status (202 while running), then its manifest; files live 1 hour" => 200 (manifest);
        FhirExportDelete: DELETE "/fhir/r4/$export-status/{id}" => P(ClinicManage), "bulk_export.delete", fhir::export_delete, [Deleting],
            "FHIR Bulk Data: remove an export and its files" => 202 ();
        FhirExportFile: GET "/fhir/r4/$export-file/{id}" => P(ClinicManage), "bulk_export.download", fhir::export_file, [Deleting],
            "FHIR Bulk Data: one file of an export (`<export>.<Type>`), NDJSON" => 200 (ndjson);
    }
    internal {
        Maintain: POST "/internal/maintain" => Internal, -, meta::maintain, [],
            "The region's scheduled work: purge, key sweep, audit checkpoints" => 200 (raw meta::object_schema);
        TestClock: POST "/__test/clock" => TestHook, -, testing::advance_clock, [],
            "Moves one clinic's clock forward (tests only)" => 200 (raw meta::object_schema);
        TestStaff: POST "/__test/staff" => TestHook, -, testing::add_staff, [],
            "Creates platform staff (tests only)" => 201 (raw meta::object_schema);
        TestCheckpoints: GET "/__test/checkpoints" => TestHook, -, testing::checkpoints, [],
            "The audit checkpoints the host's store keeps of a chain (tests only)" => 200 (raw meta::object_schema);
    }
}

/// The route for a request, with the values of its `{id}` segments; the
/// test hooks only when `test_hooks`.
pub fn find_in(
    method: &Method,
    path: &str,
    test_hooks: bool,
) -> Option<(RouteId, &'static Route, Vec<String>)> {
    let segs: Vec<&str> = path.split('/').collect();
    let all = ROUTE_IDS
        .iter()
        .zip(ROUTES)
        .chain(INTERNAL_IDS.iter().zip(INTERNAL));
    all.into_iter().find_map(|(id, route)| {
        if route.method != *method || (route.access == Access::TestHook && !test_hooks) {
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
        Some((*id, route, params))
    })
}

/// The API route for a request (test hooks aside).
pub fn find(method: &Method, path: &str) -> Option<(&'static Route, Vec<String>)> {
    find_in(method, path, false).map(|(_, route, params)| (route, params))
}

/// The OpenAPI document of [`ROUTES`], built once per instance.
pub(crate) fn document() -> &'static serde_json::Value {
    crate::openapi::document(|s| {
        ROUTE_IDS
            .iter()
            .zip(ROUTES)
            .map(|(id, route)| (format!("{id:?}"), route, operation(*id, s)))
            .collect()
    })
}

/// The search parameters of the FHIR Patient search, as documented.
const FHIR_PATIENT_QUERY: &[&str] = &["name", "identifier", "birthdate", "_count", "_page"];
/// The search parameters of a FHIR clinical type.
const FHIR_CLINICAL_QUERY: &[&str] = &["patient", "_count", "_page"];

/// `GET /fhir/r4/metadata`: the CapabilityStatement of the FHIR rows above.
async fn fhir_metadata<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    Reply::ok(crate::fhir::capability::statement(
        ROUTES,
        env!("CARGO_PKG_VERSION"),
        &crate::clock::rfc3339(p.now),
    ))
}

/// `GET /api/v1/openapi.json`.
async fn openapi_json<H: Host>(_p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    Reply::ok(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let (id, _, p) = find_in(&Method::GET, "/api/v1/patients/pat_x", false).unwrap();
        assert_eq!((id, p), (RouteId::PatientsGet, vec!["pat_x".to_owned()]));
        assert_eq!(
            find_in(&Method::GET, "/api/v1/patients", false).unwrap().0,
            RouteId::PatientsList
        );
        assert_eq!(RouteId::PatientsList.route().path, "/api/v1/patients");
        assert_eq!(RouteId::TestClock.route().path, "/__test/clock");
        assert!(find(&Method::PUT, "/api/v1/patients").is_none());
        assert!(find(&Method::GET, "/api/v1/patients/").is_none());
        assert!(find(&Method::GET, "/api/v1/patients/a/b").is_none());
        assert!(find(&Method::POST, "/api/v1/auth/totp")
            .unwrap()
            .0
            .mfa_exempt());
        assert!(!find(&Method::GET, "/api/v1/users").unwrap().0.mfa_exempt());
        assert!(find(&Method::POST, "/__test/clock").is_none());
        assert_eq!(
            find_in(&Method::POST, "/__test/clock", true).unwrap().0,
            RouteId::TestClock
        );
        assert_eq!(
            find(&Method::POST, "/internal/maintain").unwrap().0.access,
            Access::Internal
        );
    }

    #[test]
    fn every_route_is_unique_and_clinic_routes_are_audited() {
        let all: Vec<&Route> = ROUTES.iter().chain(INTERNAL).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
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
        assert!(ROUTES
            .iter()
            .all(|r| !matches!(r.access, Access::Internal | Access::TestHook)));
        assert!(INTERNAL
            .iter()
            .all(|r| matches!(r.access, Access::Internal | Access::TestHook)));
    }

    #[test]
    fn every_route_is_documented_with_its_schemas() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {}", route.method, route.path);
            assert!(op["responses"]["500"].is_object());
        }
        // Every reference resolves.
        let text = doc.to_string();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
        let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(doc["paths"].as_object().unwrap().len(), paths.len());
    }
}
