//! What the audit trail records of a request: [`AuditDraft`] is filled in
//! as the request runs (what it is about, who tried when nobody is signed
//! in), and [`entry`] turns it into the entry appended in the request's own
//! transaction, with the outcome its result earns ([`outcome`]).
//!
//! A [`Resource`] names what a request touched, one variant per kind of
//! thing: ids only, never names.

use std::fmt;

use crate::clock;
use crate::error::{ApiResult, Code};
use crate::records::audit::{Entry, Outcome};

use super::actor::Actor;
use super::render::Reply;

/// What a request touched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resource<'a> {
    Clinic(&'a str),
    /// `clinic/<id>/export.<format>`
    Export(&'a str, &'a str),
    /// The clinic's role settings.
    Roles,
    User(&'a str),
    Users,
    Practitioners,
    Patient(&'a str),
    Patients,
    /// A patient's audit timeline.
    PatientAudit(&'a str),
    /// One kind of a patient's clinical record: (patient, table).
    PatientRecords(&'a str, &'a str),
    /// One clinical entry: (noun, id).
    ClinicalEntry(&'a str, &'a str),
    Appointment(&'a str),
    Appointments,
    Audit,
    AccessRequest(&'a str),
    AccessRequests,
    /// Every entry of one clinical table, across patients (a FHIR search
    /// without a patient).
    ClinicalEntries(&'a str),
    /// A FHIR bulk export of the clinic, by id.
    BulkExport(&'a str),
    /// A data key version the platform made.
    Key(u32),
    /// A table re-sealed under a data key version.
    TableKey(&'a str, u32),
}

impl Resource<'_> {
    /// The patient the resource is about, when it names one by itself.
    fn patient(&self) -> Option<&str> {
        match self {
            Resource::Patient(p) | Resource::PatientAudit(p) | Resource::PatientRecords(p, _) => {
                Some(p)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Clinic(c) => write!(f, "clinic/{c}"),
            Resource::Export(c, format) => write!(f, "clinic/{c}/export.{format}"),
            Resource::Roles => f.write_str("clinic/roles"),
            Resource::User(u) => write!(f, "user/{u}"),
            Resource::Users => f.write_str("users"),
            Resource::Practitioners => f.write_str("practitioners"),
            Resource::Patient(p) => write!(f, "patient/{p}"),
            Resource::Patients => f.write_str("patients"),
            Resource::PatientAudit(p) => write!(f, "patient/{p}/audit"),
            Resource::PatientRecords(p, table) => write!(f, "patient/{p}/{table}"),
            Resource::ClinicalEntry(noun, id) => write!(f, "{noun}/{id}"),
            Resource::Appointment(a) => write!(f, "appointment/{a}"),
            Resource::Appointments => f.write_str("appointments"),
            Resource::Audit => f.write_str("audit"),
            Resource::AccessRequest(r) => write!(f, "access_request/{r}"),
            Resource::AccessRequests => f.write_str("access_requests"),
            Resource::ClinicalEntries(table) => write!(f, "{table}"),
            Resource::BulkExport(id) => write!(f, "bulk_export/{id}"),
            Resource::Key(v) => write!(f, "key/v{v}"),
            Resource::TableKey(t, v) => write!(f, "{t}/key/v{v}"),
        }
    }
}

/// What the audit entry of this request says, filled in as the request runs.
#[derive(Default)]
pub(crate) struct AuditDraft {
    /// Who tried, when nobody is signed in (a sign-in attempt: the account
    /// found, or `unknown`), with the role to record.
    pub subject: Option<(String, Option<&'static str>)>,
    pub on_behalf_of: Option<String>,
    /// Also record the request in the platform audit stream.
    pub platform: bool,
    pub resource: Option<String>,
    pub patient_id: Option<String>,
}

impl AuditDraft {
    /// What the request is about; a resource of one patient names them too.
    pub fn about(&mut self, r: Resource<'_>) {
        if let Some(p) = r.patient() {
            self.patient_id = Some(p.to_owned());
        }
        self.resource = Some(r.to_string());
    }

    /// The patient the request concerns.
    pub fn patient(&mut self, id: &str) {
        self.patient_id = Some(id.to_owned());
    }

    /// Who tried, when nobody is signed in.
    pub fn tried_by(&mut self, id: &str, role: Option<&'static str>) {
        self.subject = Some((id.to_owned(), role));
    }
}

/// What the audit trail records of a result; `None`: nothing (bad input).
pub(crate) fn outcome(result: &ApiResult<Reply>, replayed: bool, someone: bool) -> Option<Outcome> {
    match result {
        Ok(_) if replayed => Some(Outcome::Replayed),
        Ok(_) => Some(Outcome::Success),
        Err(e) => match e.code {
            Code::Forbidden | Code::MfaEnrollmentRequired => Some(Outcome::Denied),
            Code::NotFound => Some(Outcome::NotFound),
            // Refused credentials and codes of a known account are audited;
            // plain bad input writes nothing.
            Code::Unauthenticated | Code::RateLimited if someone => Some(Outcome::Failure),
            _ => None,
        },
    }
}

/// What an entry needs besides the draft.
pub(crate) struct Facts<'a> {
    pub action: &'a str,
    pub outcome: Outcome,
    pub now: i64,
    pub reason: Option<&'a str>,
    pub ip: Option<std::net::IpAddr>,
}

/// The entry of a request, or `None` when nobody is known to have acted.
pub(crate) fn entry(facts: Facts<'_>, actor: Option<&Actor>, draft: &AuditDraft) -> Option<Entry> {
    let (who, role, on_behalf_of) = match (actor, &draft.subject) {
        (Some(Actor::Support(s)), _) => {
            (s.staff_id.clone(), Some("support"), Some(s.on_behalf_of()))
        }
        (Some(a), _) => (
            a.id().to_owned(),
            Some(a.audit_role()),
            draft.on_behalf_of.clone(),
        ),
        (None, Some((who, role))) => (who.clone(), *role, draft.on_behalf_of.clone()),
        (None, None) => return None,
    };
    Some(Entry {
        at: clock::rfc3339(facts.now),
        actor: who,
        role: role.map(str::to_owned),
        on_behalf_of,
        action: facts.action.to_owned(),
        resource: draft.resource.clone(),
        patient_id: draft.patient_id.clone(),
        reason: facts.reason.map(str::to_owned),
        ip: facts.ip.map(|i| i.to_string()),
        outcome: facts.outcome,
    })
}

/// An entry the platform writes on its own (a job).
pub(crate) fn system_entry(
    now: i64,
    action: &str,
    resource: Resource<'_>,
    reason: Option<&str>,
) -> Entry {
    let mut draft = AuditDraft::default();
    draft.about(resource);
    Entry {
        at: clock::rfc3339(now),
        actor: SYSTEM_ACTOR.to_owned(),
        role: None,
        on_behalf_of: None,
        action: action.to_owned(),
        resource: draft.resource,
        patient_id: draft.patient_id,
        reason: reason.map(str::to_owned),
        ip: None,
        outcome: Outcome::Success,
    }
}

/// The actor of entries the platform writes on its own.
pub const SYSTEM_ACTOR: &str = "system";
