//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, built
//! from the code: one operation per row of the route table (method, path,
//! who may call it, the permission it needs, its flags, the summary, answer,
//! body and query the row gives), the request and response schemas derived
//! from the handlers' own types by `utoipa`'s `ToSchema`, and the error
//! answers from the error type. A row cannot be written without its
//! documentation.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use crate::error::Code;
use crate::route::{Access, Flag, Route};
use crate::web;

/// One operation of the document: its id, its route and how it answers.
pub(crate) type Entry = (String, &'static Route, Operation);

/// The document of the routes `entries` describes, built once per instance.
pub(crate) fn document(entries: impl FnOnce(&mut Schemas) -> Vec<Entry>) -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| build(entries))
}

/// Component schemas collected while the operations are described.
#[derive(Default)]
pub(crate) struct Schemas(BTreeMap<String, RefOr<Schema>>);

impl Schemas {
    /// A reference to `T`'s schema, which (with every schema it refers to)
    /// joins the components.
    pub(crate) fn of<T: ToSchema>(&mut self) -> Value {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        self.0.extend(nested);
        let name = T::name().into_owned();
        self.0.insert(name.clone(), T::schema());
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }
}

/// A success body's content: JSON of `schema`.
pub(crate) fn json(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// A FHIR resource of `kind` as the success body (`application/fhir+json`).
pub(crate) fn fhir(kind: &str) -> Value {
    json!({ crate::fhir::CONTENT_TYPE: { "schema": {
        "type": "object",
        "required": ["resourceType"],
        "properties": { "resourceType": { "const": kind } },
        "description": format!("A FHIR R4 {kind}"),
    }}})
}

/// A bulk export's manifest (`application/json`, as Bulk Data says).
pub(crate) fn bulk_manifest() -> Value {
    json!({ "application/json": { "schema": {
        "type": "object",
        "required": ["transactionTime", "request", "requiresAccessToken", "output", "error"],
        "properties": {
            "transactionTime": { "type": "string" },
            "request": { "type": "string" },
            "requiresAccessToken": { "type": "boolean" },
            "output": { "type": "array", "items": {
                "type": "object",
                "required": ["type", "url"],
                "properties": { "type": { "type": "string" }, "url": { "type": "string" }, "count": { "type": "integer" } },
            }},
            "error": { "type": "array" },
        },
    }}})
}

/// A bulk export's file.
pub(crate) fn ndjson() -> Value {
    json!({ crate::fhir::NDJSON: { "schema": { "type": "string" } } })
}

/// The export's content: a zip of CSVs, or one JSON document.
pub(crate) fn export_content() -> Value {
    json!({
        "application/zip": { "schema": { "type": "string", "contentMediaType": "application/zip" } },
        "application/json": { "schema": { "type": "object" } },
    })
}

/// A JSON array of `items`.
pub(crate) fn list(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// `Page<T>` of [`crate::api::Page`].
pub(crate) fn page(items: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": items },
            "next_cursor": { "type": ["string", "null"], "description": "`?cursor=` of the next page; null on the last" },
        },
    })
}

/// `Items<T>` of [`crate::api::Items`].
pub(crate) fn items(items: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items"],
        "properties": { "items": { "type": "array", "items": items } },
    })
}

/// A clinical entry as shown: the body it was written with, and the server's
/// fields.
pub(crate) fn clinical(body: Value) -> Value {
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

/// How one operation answers, as its row in the route table says.
pub(crate) struct Operation {
    pub summary: &'static str,
    pub status: u16,
    /// The success body's content (media type → schema); `None`: no body.
    pub response: Option<Value>,
    pub request: Option<Value>,
    pub query: &'static [&'static str],
    /// Refusals particular to the route.
    pub errors: &'static [(u16, &'static str)],
}

fn parameter(name: &str, route: &Route) -> Value {
    let description = match name {
        "limit" => "page size, 1 to 200 (default 50)",
        "cursor" => "`next_cursor` of the previous page",
        "q" => "search text",
        "from" | "to" if route.path == "/api/v1/audit" => "RFC 3339 time bound",
        "from" | "to" => "RFC 3339 range of the listing (at most 31 days)",
        "practitioner" => "only this practitioner's appointments",
        "patient" => "only entries about this patient",
        "actor" => "only entries by this user",
        "action" => "only entries of this action",
        "format" => "`csv`: a zip of one CSV per table; `json`: one document",
        "_count" => "results per page, 1 to 200 (default 50)",
        "_page" => "a page of an earlier answer (its `next` link): the search, sealed",
        "_type" => "the types to export, comma-separated (default: all)",
        "name" if route.path.starts_with(crate::fhir::BASE) => {
            "every word of the name, whole or a prefix"
        }
        "identifier" => "the national id (`[system|]value`)",
        "birthdate" | "date" => "a date `YYYY-MM-DD`, optionally after eq, ne, lt, le, gt or ge",
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
    if route.has(Flag::Credentials) {
        out.push((401, "wrong credentials"));
    } else if route.access != Access::Public || route.has(Flag::Token) {
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
    out.extend(op.errors.iter().copied());
    if route.path.contains("{id}") {
        out.push((404, "no such resource in this clinic"));
    }
    if matches!(route.access, Access::Session | Access::Permission(_)) || route.has(Flag::Regional)
    {
        out.push((
            421,
            "the clinic lives in another region: ask that region's host",
        ));
    }
    if route.has(Flag::Throttled) {
        out.push((429, "too many attempts; see Retry-After"));
    } else {
        out.push((
            429,
            "too many requests from this user or address; see Retry-After",
        ));
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
        Access::Internal | Access::TestHook => json!([]),
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
        Access::Internal => "The deployment's scheduler (internal token).".to_owned(),
        Access::TestHook => "Tests only.".to_owned(),
    };
    let audit = route
        .audit
        .map(|a| format!(" Audited as `{a}`."))
        .unwrap_or_default();
    format!("{}. {who}{audit}", op.summary)
}

fn build(entries: impl FnOnce(&mut Schemas) -> Vec<Entry>) -> Value {
    let mut schemas = Schemas::default();
    let entries = entries(&mut schemas);
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    for (id, route, op) in &entries {
        let route: &Route = route;
        let mut parameters: Vec<Value> = op.query.iter().map(|q| parameter(q, route)).collect();
        if route.path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        let idempotent = crate::request::idempotency::applies(route);
        if idempotent {
            parameters.push(json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "a key of the client's choosing for this one write: sent again with the same request within 24 hours, the first answer comes back (marked `Idempotent-Replayed: true`) and nothing is written twice; with another request, 409",
                "schema": { "type": "string", "minLength": 1, "maxLength": crate::request::idempotency::MAX_LEN, "pattern": "^[!-~]+$" }
            }));
        }
        let mut responses = serde_json::Map::new();
        let mut success = match &op.response {
            Some(content) => json!({ "description": op.summary, "content": content }),
            None => json!({ "description": op.summary }),
        };
        if idempotent {
            success["headers"] = json!({ "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer of an earlier request with the same Idempotency-Key",
                "schema": { "type": "string", "enum": ["true"] }
            }});
        }
        responses.insert(op.status.to_string(), success);
        // The FHIR face tells its errors as an `OperationOutcome`.
        let (error_type, error_ref) = if route.path.starts_with(crate::fhir::BASE) {
            (
                crate::fhir::CONTENT_TYPE,
                "#/components/schemas/OperationOutcome",
            )
        } else {
            ("application/json", "#/components/schemas/Error")
        };
        for (status, why) in errors(route, op) {
            responses.insert(
                status.to_string(),
                json!({ "description": why, "content": { error_type: { "schema": { "$ref": error_ref } } } }),
            );
        }
        let mut operation = json!({
            "operationId": id,
            "summary": op.summary,
            "description": describe(route, op),
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
    components.insert("OperationOutcome".into(), outcome_schema());
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
                "staffCookie": { "type": "apiKey", "in": "cookie", "name": crate::request::auth::STAFF_COOKIE },
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

/// `/api/v1/patients/{id}/notes` → `patients`; the FHIR face is `fhir`.
fn tag(path: &str) -> &str {
    if path.starts_with(crate::fhir::BASE) {
        return "fhir";
    }
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

/// A FHIR `OperationOutcome`, as the FHIR face's errors are told
/// ([`crate::fhir::outcome`]).
fn outcome_schema() -> Value {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": { "const": "OperationOutcome" },
            "issue": { "type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["severity", "code", "diagnostics"],
                "properties": {
                    "severity": { "const": "error" },
                    "code": { "type": "string" },
                    "details": { "type": "object" },
                    "diagnostics": { "type": "string", "enum": codes, "description": "the API's error code" },
                    "expression": { "type": "array", "items": { "type": "string" } },
                },
            }},
        },
    })
}
