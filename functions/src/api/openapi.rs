//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, built
//! from the code: one operation per entry of the route table (method, path,
//! who may call it, the permission it needs), the request and response
//! schemas derived from the handlers' own types by `utoipa`'s `ToSchema`,
//! and the error answers from the error type. [`operation`] matches every
//! [`RouteId`], so a new route does not compile until it is documented.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use crate::app::RegionInfo;
use crate::audit::EntryView;
use crate::error::Code;
use crate::routes::{Access, Route, RouteId, ROUTES};
use crate::web;

use super::auth::{
    ChangePassword, Code6, Login, LoginResult, PasswordOnly, SessionView, TotpEnrolment,
};
use super::clinic_data::{ClinicView, Confirm, Deletion};
use super::clinical::{NewCondition, NewNote, NewPrescription};
use super::clinics::{SignUp, SignedUp};
use super::patients::{Demographics, PatientPatch, PatientView};
use super::roles::{RoleView, Settings};
use super::schedule::{AppointmentPatch, AppointmentView, NewAppointment};
use super::support::{
    AccessRequestCreated, AccessRequestView, Approved, NewRequest, StaffLogin, StaffSession,
};
use super::users::{NewUser, Practitioner, UserPatch, UserView};

/// The document, built once per instance.
pub(crate) fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// Component schemas collected while the operations are described.
#[derive(Default)]
struct Schemas(BTreeMap<String, RefOr<Schema>>);

impl Schemas {
    /// A reference to `T`'s schema, which (with every schema it refers to)
    /// joins the components.
    fn of<T: ToSchema>(&mut self) -> Value {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        self.0.extend(nested);
        let name = T::name().into_owned();
        self.0.insert(name.clone(), T::schema());
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }
}

/// `Page<T>` of [`super::Page`].
fn page(items: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": items },
            "next_cursor": { "type": ["string", "null"], "description": "`?cursor=` of the next page; null on the last" },
        },
    })
}

/// `Items<T>` of [`super::Items`].
fn items(items: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items"],
        "properties": { "items": { "type": "array", "items": items } },
    })
}

/// A clinical entry as shown: the body it was written with, and the server's
/// fields.
fn clinical(body: Value) -> Value {
    json!({ "allOf": [body, {
        "type": "object",
        "required": ["id", "patient_id", "author_id", "created_at"],
        "properties": {
            "id": { "type": "string" },
            "patient_id": { "type": "string" },
            "author_id": { "type": "string", "description": "set by the server" },
            "created_at": { "type": "string", "description": "set by the server (RFC 3339)" },
        },
    }]})
}

/// How one operation answers.
struct Operation {
    summary: &'static str,
    query: &'static [&'static str],
    request: Option<Value>,
    status: u16,
    /// Media type and schema of the success body; `None`: no body.
    response: Option<(&'static str, Value)>,
}

fn op(summary: &'static str, status: u16, response: Option<Value>) -> Operation {
    Operation {
        summary,
        query: &[],
        request: None,
        status,
        response: response.map(|r| ("application/json", r)),
    }
}

impl Operation {
    fn body(mut self, request: Value) -> Self {
        self.request = Some(request);
        self
    }
    fn query(mut self, names: &'static [&'static str]) -> Self {
        self.query = names;
        self
    }
}

/// Every route's description.
fn operation(id: RouteId, s: &mut Schemas) -> Operation {
    use super::{audit_log, export, patients, schedule, PAGE_QUERY};
    use RouteId as R;
    match id {
        R::Health => op(
            "Liveness and the region this instance serves",
            200,
            Some(json!({
                "type": "object", "required": ["status", "region"],
                "properties": {
                    "status": { "const": "ok" },
                    "region": { "type": "string" },
                },
            })),
        ),
        R::HealthKeys => op(
            "The root key versions this instance holds (numbers, never keys), for an operator's root rotation",
            200,
            Some(json!({
                "type": "object", "required": ["region", "root_versions"],
                "properties": {
                    "region": { "type": "string" },
                    "root_versions": { "type": "array", "items": { "type": "integer", "minimum": 1 } },
                },
            })),
        ),
        R::Regions => op(
            "The regions a clinic may choose",
            200,
            Some(json!({ "type": "array", "items": s.of::<RegionInfo>() })),
        ),
        R::OpenApi => op(
            "This document",
            200,
            Some(json!({ "type": "object" })),
        ),
        R::SignUp => op(
            "Sign up a clinic and its owner; the clinic id starts with its region",
            201,
            Some(s.of::<SignedUp>()),
        )
        .body(s.of::<SignUp>()),
        R::Login => op(
            "Sign in with password; a session, or the demand for a TOTP code",
            200,
            Some(s.of::<LoginResult>()),
        )
        .body(s.of::<Login>()),
        R::Mfa => op(
            "The TOTP step of sign-in (MFA token as bearer or cookie)",
            200,
            Some(s.of::<LoginResult>()),
        )
        .body(s.of::<Code6>()),
        R::Session => op("The current session", 200, Some(s.of::<SessionView>())),
        R::Logout => op("End the session, for cookie and bearer alike", 204, None),
        R::TotpStart => op(
            "Begin TOTP enrolment",
            200,
            Some(s.of::<TotpEnrolment>()),
        )
        .body(s.of::<PasswordOnly>()),
        R::TotpConfirm => op("Confirm TOTP enrolment with a code", 204, None).body(s.of::<Code6>()),
        R::Password => op("Change one's password", 204, None).body(s.of::<ChangePassword>()),
        R::UsersList => op(
            "The clinic's staff",
            200,
            Some(page(s.of::<UserView>())),
        )
        .query(PAGE_QUERY),
        R::Practitioners => op(
            "Who can be booked: the clinic's active owners, doctors and nurses",
            200,
            Some(page(s.of::<Practitioner>())),
        ),
        R::UsersCreate => op("Add a staff member", 201, Some(s.of::<UserView>()))
            .body(s.of::<NewUser>()),
        R::UsersUpdate => op(
            "Change a staff member's role or deactivate them",
            200,
            Some(s.of::<UserView>()),
        )
        .body(s.of::<UserPatch>()),
        R::PatientsList => op(
            "List or search patients (name words and prefixes, phone, national id)",
            200,
            Some(page(s.of::<PatientView>())),
        )
        .query(patients::LIST_QUERY),
        R::PatientsCreate => op("Register a patient", 201, Some(s.of::<PatientView>()))
            .body(s.of::<Demographics>()),
        R::PatientsGet => op("One patient", 200, Some(s.of::<PatientView>())),
        R::PatientsUpdate => op(
            "Change a patient's demographics",
            200,
            Some(s.of::<PatientView>()),
        )
        .body(s.of::<PatientPatch>()),
        R::PatientsDelete => op(
            "Delete a patient: hidden now, purged after 30 days",
            202,
            Some(s.of::<Deletion>()),
        ),
        R::PatientsRestore => op(
            "Restore a deleted patient within the grace period",
            200,
            Some(s.of::<PatientView>()),
        ),
        R::PatientAudit => op(
            "A patient's audit timeline",
            200,
            Some(page(s.of::<EntryView>())),
        )
        .query(PAGE_QUERY),
        R::ConditionsList => op(
            "A patient's conditions",
            200,
            Some(page(clinical(s.of::<NewCondition>()))),
        )
        .query(PAGE_QUERY),
        R::ConditionsCreate => op(
            "Record a condition",
            201,
            Some(clinical(s.of::<NewCondition>())),
        )
        .body(s.of::<NewCondition>()),
        R::PrescriptionsList => op(
            "A patient's prescriptions",
            200,
            Some(page(clinical(s.of::<NewPrescription>()))),
        )
        .query(PAGE_QUERY),
        R::PrescriptionsCreate => op(
            "Prescribe",
            201,
            Some(clinical(s.of::<NewPrescription>())),
        )
        .body(s.of::<NewPrescription>()),
        R::NotesList => op(
            "A patient's notes",
            200,
            Some(page(clinical(s.of::<NewNote>()))),
        )
        .query(PAGE_QUERY),
        R::NotesCreate => op(
            "Write a note (author and time are the server's)",
            201,
            Some(clinical(s.of::<NewNote>())),
        )
        .body(s.of::<NewNote>()),
        R::AppointmentsList => op(
            "The schedule of a day or week, patient names decrypted",
            200,
            Some(items(s.of::<AppointmentView>())),
        )
        .query(schedule::LIST_QUERY),
        R::AppointmentsCreate => op(
            "Book an appointment; 409 if it overlaps the practitioner's time",
            201,
            Some(s.of::<AppointmentView>()),
        )
        .body(s.of::<NewAppointment>()),
        R::AppointmentsUpdate => op(
            "Move an appointment or change its status",
            200,
            Some(s.of::<AppointmentView>()),
        )
        .body(s.of::<AppointmentPatch>()),
        R::AuditList => op(
            "The clinic's audit trail, newest first",
            200,
            Some(page(s.of::<EntryView>())),
        )
        .query(audit_log::LIST_QUERY),
        R::AuditVerify => op(
            "Verify the audit chain end to end",
            200,
            Some(s.of::<audit_log::VerifyView>()),
        ),
        R::ClinicGet => op("The clinic's record", 200, Some(s.of::<ClinicView>())),
        R::Export => Operation {
            summary: "All clinic data, decrypted and streamed: a zip of one CSV per table, or one JSON document",
            query: export::QUERY,
            request: None,
            status: 200,
            response: Some((
                "application/zip",
                json!({ "type": "string", "contentMediaType": "application/zip" }),
            )),
        },
        R::ClinicDeletionStart => op(
            "Schedule the clinic's deletion (30 days' grace); password required",
            202,
            Some(s.of::<Deletion>()),
        )
        .body(s.of::<Confirm>()),
        R::ClinicDeletionCancel => op("Cancel the clinic's deletion within the grace", 204, None),
        R::RolesGet => op(
            "What each role may do here, with defaults and ceilings",
            200,
            Some(items(s.of::<RoleView>())),
        ),
        R::RolesUpdate => op(
            "Narrow or widen nurses' and receptionists' rights, within the ceilings",
            200,
            Some(items(s.of::<RoleView>())),
        )
        .body(s.of::<Settings>()),
        R::SupportLogin => op(
            "Platform staff sign-in: password and TOTP, always",
            200,
            Some(s.of::<StaffSession>()),
        )
        .body(s.of::<StaffLogin>()),
        R::SupportRequestCreate => op(
            "Ask a clinic's owner for access under a ticket",
            201,
            Some(s.of::<AccessRequestCreated>()),
        )
        .body(s.of::<NewRequest>()),
        R::SupportSessionStart => op(
            "Start the approved 30-minute, read-only support session",
            200,
            Some(s.of::<SessionView>()),
        ),
        R::AccessRequestsList => op(
            "Support's access requests to this clinic",
            200,
            Some(page(s.of::<AccessRequestView>())),
        ),
        R::AccessRequestApprove => op(
            "Approve a pending access request",
            200,
            Some(s.of::<Approved>()),
        ),
    }
}

fn parameter(name: &str, route: RouteId) -> Value {
    let description = match name {
        "limit" => "page size, 1 to 200 (default 50)",
        "cursor" => "`next_cursor` of the previous page",
        "q" => "search text",
        "from" | "to" if route == RouteId::AuditList => "RFC 3339 time bound",
        "from" | "to" => "RFC 3339 range of the listing (at most 31 days)",
        "practitioner" => "only this practitioner's appointments",
        "patient" => "only entries about this patient",
        "actor" => "only entries by this user",
        "action" => "only entries of this action",
        "format" => "`csv`: a zip of one CSV per table; `json`: one document",
        _ => "",
    };
    let required = name == "format";
    let schema = if name == "format" {
        json!({ "type": "string", "enum": ["csv", "json"] })
    } else if name == "limit" {
        json!({ "type": "integer", "minimum": 1, "maximum": 200 })
    } else {
        json!({ "type": "string" })
    };
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
}

/// The errors a route can answer, by status.
fn errors(route: &Route, op: &Operation) -> Vec<(u16, &'static str)> {
    let mut out = vec![(400, "invalid request: a field, parameter or header")];
    if op.request.is_some() {
        out.push((413, "the body is over 1 MiB"));
        out.push((415, "the body is not application/json"));
    }
    if matches!(route.id, RouteId::Login | RouteId::SupportLogin) {
        out.push((401, "wrong credentials"));
    } else if route.access != Access::Public || route.id == RouteId::Mfa {
        out.push((
            401,
            "no live session, or a forged, expired or revoked token",
        ));
    }
    if matches!(route.access, Access::Permission(_)) {
        out.push((
            403,
            "the role lacks the permission, or TOTP enrolment is still due",
        ));
        out.push((
            409,
            "a conflict: overlap, duplicate, wrong state, or a clinic scheduled for deletion",
        ));
    } else if matches!(route.access, Access::Session) {
        out.push((403, "cross-site request"));
    }
    if route.id == RouteId::TotpConfirm {
        out.push((409, "no enrolment under way: start one first"));
    }
    if route.path.contains("{id}") {
        out.push((404, "no such resource in this clinic"));
    }
    if matches!(route.access, Access::Session | Access::Permission(_))
        || matches!(route.id, RouteId::SignUp | RouteId::Login | RouteId::Mfa)
    {
        out.push((
            421,
            "the clinic lives in another region: ask that region's host",
        ));
    }
    if matches!(
        route.id,
        RouteId::Login
            | RouteId::Mfa
            | RouteId::SupportLogin
            | RouteId::TotpStart
            | RouteId::TotpConfirm
            | RouteId::Password
            | RouteId::ClinicDeletionStart
    ) {
        out.push((429, "too many attempts; see Retry-After"));
    }
    out.push((500, "internal error (details only in the server's log)"));
    out.push((503, "the region's database cannot be reached now"));
    out
}

fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Session | Access::Permission(_) => {
            json!([{ "session": [] }, { "sessionCookie": [] }])
        }
        Access::Staff => json!([{ "staff": [] }, { "staffCookie": [] }]),
    }
}

fn describe(route: &Route, op: &Operation) -> String {
    let who = match route.access {
        Access::Public => "Anyone.".to_owned(),
        Access::Session => "Any signed-in clinic user.".to_owned(),
        Access::Permission(p) => format!(
            "Needs the permission `{}` (see `GET /api/v1/clinic/roles`).",
            p.as_str()
        ),
        Access::Staff => "Signed-in platform staff.".to_owned(),
    };
    let audit = route
        .audit
        .map(|a| format!(" Audited as `{a}`."))
        .unwrap_or_default();
    format!("{}. {who}{audit}", op.summary)
}

fn build() -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    for route in ROUTES {
        let op = operation(route.id, &mut schemas);
        let mut parameters: Vec<Value> = op.query.iter().map(|q| parameter(q, route.id)).collect();
        if route.path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        let idempotent = crate::idempotency::applies(route);
        if idempotent {
            parameters.push(json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "a key of the client's choosing for this one write: sent again with the same request within 24 hours, the first answer comes back (marked `Idempotent-Replayed: true`) and nothing is written twice; with another request, 409",
                "schema": { "type": "string", "minLength": 1, "maxLength": crate::idempotency::MAX_LEN, "pattern": "^[!-~]+$" }
            }));
        }
        let mut responses = serde_json::Map::new();
        let mut success = match &op.response {
            Some((media, schema)) => {
                let mut content = json!({ *media: { "schema": schema } });
                if route.id == RouteId::Export {
                    content["application/json"] = json!({ "schema": { "type": "object" } });
                }
                json!({ "description": op.summary, "content": content })
            }
            None => json!({ "description": op.summary }),
        };
        if idempotent {
            success["headers"] = json!({ "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer of an earlier request with the same Idempotency-Key",
                "schema": { "type": "string", "enum": ["true"] }
            }});
        }
        responses.insert(op.status.to_string(), success);
        for (status, why) in errors(route, &op) {
            responses.insert(
                status.to_string(),
                json!({ "description": why, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
            );
        }
        let mut operation = json!({
            "operationId": format!("{:?}", route.id),
            "summary": op.summary,
            "description": describe(route, &op),
            "tags": [tag(route.path)],
            "parameters": parameters,
            "responses": responses,
            "security": security(route.access),
        });
        if let Some(body) = &op.request {
            operation["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        paths
            .entry(route.path)
            .or_default()
            .insert(route.method.as_str().to_ascii_lowercase(), operation);
    }
    let mut components: serde_json::Map<String, Value> = schemas
        .0
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    components.insert("Error".into(), error_schema());
    let closed = components.clone();
    for schema in components.values_mut() {
        open_all_of(schema, &closed);
    }
    let mut paths = serde_json::to_value(paths).unwrap_or(Value::Null);
    open_all_of(&mut paths, &closed);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Amanah API",
            "version": "1",
            "description": "Clinic records, region-pinned. Every error has the shape of the `Error` schema; every response carries `Cache-Control: no-store` and the security headers; a support session's responses carry `X-Impersonation`. Unsafe methods from another origin are refused.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "`token` of `GET /api/v1/auth/session`" },
                "sessionCookie": { "type": "apiKey", "in": "cookie", "name": web::SESSION_COOKIE },
                "staff": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "`token` of `POST /api/v1/support/login`" },
                "staffCookie": { "type": "apiKey", "in": "cookie", "name": super::support::STAFF_COOKIE },
            },
        },
    })
}

/// A request type is closed (`deny_unknown_fields` → `additionalProperties:
/// false`); a view that composes it with `allOf` (a flattened field, a
/// clinical entry) adds properties, which JSON Schema would then refuse. In
/// every `allOf`, closed members are replaced by open copies.
fn open_all_of(v: &mut Value, components: &serde_json::Map<String, Value>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(members)) = map.get_mut("allOf") {
                for m in members.iter_mut() {
                    let target = m
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        .and_then(|name| components.get(name));
                    if let Some(t) = target {
                        if t.get("additionalProperties") == Some(&Value::Bool(false)) {
                            *m = t.clone();
                        }
                    }
                    if let Some(obj) = m.as_object_mut() {
                        obj.remove("additionalProperties");
                    }
                }
            }
            for child in map.values_mut() {
                open_all_of(child, components);
            }
        }
        Value::Array(items) => {
            for child in items {
                open_all_of(child, components);
            }
        }
        _ => {}
    }
}

/// `/api/v1/patients/{id}/notes` → `patients`.
fn tag(path: &str) -> &str {
    let rest = path.strip_prefix("/api/v1/").unwrap_or("meta");
    match rest.split('/').next().unwrap_or("meta") {
        "openapi.json" | "regions" => "meta",
        t => t,
    }
}

/// `{"error":{"code","message","field"?}}` with every code of [`Code`].
fn error_schema() -> Value {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "required": ["error"],
        "additionalProperties": false,
        "properties": { "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": false,
            "properties": {
                "code": { "type": "string", "enum": codes },
                "message": { "type": "string" },
                "field": { "type": "string", "description": "the offending field, for invalid_request" },
            },
        }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
