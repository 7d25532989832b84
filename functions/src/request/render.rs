//! A handler's answer ([`Reply`]) and how every answer is rendered: the
//! body, the cookies, the security headers, and what the host may log
//! ([`RequestLog`]: the route's template and the error's code, never a
//! value of the request).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::export;
use crate::web;

/// What the host may log about a handled request: no personal data.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Route template (`/api/v1/patients/{id}`), never the raw path.
    pub route: &'static str,
    pub error_code: Option<&'static str>,
    /// Internal detail of a 5xx, without personal data.
    pub detail: Option<String>,
}

/// A handler's answer.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Payload,
    /// Headers of this answer (`Content-Location`, `Expires`, …).
    pub headers: Vec<(&'static str, String)>,
}

/// What a reply carries.
pub(crate) enum Payload {
    Empty,
    Json(serde_json::Value),
    /// An export, streamed after the request's transaction commits.
    Export(export::Plan),
    /// The export under way.
    Stream(export::Plan, Body),
    /// A FHIR bulk export to write after the request's transaction
    /// commits; then a 202 with its status URL.
    BulkExport(crate::fhir::bulk::Job),
    /// A FHIR bulk export's file, streamed after the request's transaction
    /// commits.
    FhirFile {
        export: String,
        kind: &'static str,
    },
    /// That file under way.
    NdjsonStream(Body),
}

impl Reply {
    pub fn ok(body: impl Serialize) -> ApiResult<Reply> {
        Self::with(StatusCode::OK, body)
    }
    pub fn created(body: impl Serialize) -> ApiResult<Reply> {
        Self::with(StatusCode::CREATED, body)
    }
    pub fn with(status: StatusCode, body: impl Serialize) -> ApiResult<Reply> {
        let body = serde_json::to_value(body)
            .map_err(|e| ApiError::internal(format!("serialise: {e}")))?;
        Ok(Reply {
            status,
            body: Payload::Json(body),
            headers: Vec::new(),
        })
    }
    pub fn no_content() -> ApiResult<Reply> {
        Ok(Reply {
            status: StatusCode::NO_CONTENT,
            body: Payload::Empty,
            headers: Vec::new(),
        })
    }
    pub fn export(plan: export::Plan) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Payload::Export(plan),
            headers: Vec::new(),
        }
    }
}

pub(crate) fn render(
    result: ApiResult<Reply>,
    cookies: Vec<String>,
    api: bool,
    route: &'static str,
) -> Response<Body> {
    let fhir = route.starts_with(crate::fhir::BASE);
    let json_type = if fhir {
        crate::fhir::CONTENT_TYPE
    } else {
        "application/json"
    };
    let (mut resp, log) = match result {
        Ok(reply) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = reply.status;
            let h = r.headers_mut();
            for (name, value) in &reply.headers {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(*name, v);
                }
            }
            match reply.body {
                Payload::Empty => {}
                Payload::Json(v) => {
                    if !h.contains_key(header::CONTENT_TYPE) {
                        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(json_type));
                    }
                    *r.body_mut() = Body::full(v.to_string());
                }
                Payload::NdjsonStream(chunks) => {
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(crate::fhir::NDJSON),
                    );
                    *r.body_mut() = chunks;
                }
                Payload::Stream(plan, chunks) => {
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(plan.format.content_type()),
                    );
                    if let Ok(v) = HeaderValue::from_str(&format!(
                        "attachment; filename=\"{}\"",
                        plan.file_name()
                    )) {
                        h.insert(header::CONTENT_DISPOSITION, v);
                    }
                    *r.body_mut() = chunks;
                }
                // Turned into a stream, or written, after the commit;
                // never rendered.
                Payload::Export(_) | Payload::BulkExport(_) | Payload::FhirFile { .. } => {
                    return render(
                        Err(ApiError::internal("export not started")),
                        cookies,
                        api,
                        route,
                    )
                }
            }
            (
                r,
                RequestLog {
                    route,
                    error_code: None,
                    detail: None,
                },
            )
        }
        Err(e) if fhir => (
            fhir_error(&e),
            RequestLog {
                route,
                error_code: Some(e.code.as_str()),
                detail: e.detail.clone(),
            },
        ),
        Err(e) => (
            web::error_response(&e),
            RequestLog {
                route,
                error_code: Some(e.code.as_str()),
                detail: e.detail.clone(),
            },
        ),
    };
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    web::secure_headers(resp.headers_mut(), api);
    resp.extensions_mut().insert(log);
    resp
}

/// An error on the FHIR face: an `OperationOutcome` with the API's status
/// (and its `Retry-After`).
fn fhir_error(e: &ApiError) -> Response<Body> {
    let mut r = web::error_response(e);
    *r.body_mut() = Body::full(crate::fhir::outcome(e).to_string());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::fhir::CONTENT_TYPE),
    );
    r
}
