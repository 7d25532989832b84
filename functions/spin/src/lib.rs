//! The Spin host: a thin spin-sdk adapter around `amanah-functions`.
//!
//! A Spin HTTP component (`wasi:http/incoming-handler@0.2.0`, spin-sdk 5.x)
//! that turns the incoming request into an `http::Request`, hands it to
//! [`App::handle`] and streams the answer back. It gives the application its
//! four capabilities: a libSQL connection per clinic (Hrana over outbound
//! `wasi:http`, see [`host`]), the region root keys, a clock and randomness.
//! Its configuration comes from Spin variables (the names of
//! [`amanah_functions::settings`] in lower case) and nothing else is
//! Spin-specific, so the component also runs under `wasmtime serve` with a
//! small variables component composed in.
//!
//! One deployment serves one region. The region's scheduled work (purge,
//! key sweep) runs when an operator's scheduler calls `POST
//! /internal/maintain` with the `maintain_token` variable as a bearer token;
//! without that variable the route does not exist (it is a row of the
//! application's route table like any other).

mod host;

use std::sync::OnceLock;

use amanah_functions::body::Body;
use amanah_functions::error::ApiError;
use amanah_functions::settings;
use amanah_functions::web;
use amanah_functions::{App, ClientIp, RequestLog};
use http_body_util::BodyExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

use host::SpinHost;

/// Largest write `blocking-write-and-flush` takes at once.
const WRITE_CHUNK: usize = 4096;

static APP: OnceLock<Result<App<SpinHost>, String>> = OnceLock::new();

/// A Spin variable; an unset one reads as `None`. Spin marks secrets in the
/// manifest (`secret = true`), so both kinds are read the same way here.
fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(&name.to_ascii_lowercase()).ok()
}

fn app() -> &'static Result<App<SpinHost>, String> {
    APP.get_or_init(|| {
        let s = settings::read(|name, _kind| variable(name))?;
        Ok(App::new(host::host(s.db, s.db_timeout, s.root), s.config))
    })
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let resp = answer(req).await;
    send(resp, out).await;
}

async fn answer(req: IncomingRequest) -> http::Response<Body> {
    let app = match app() {
        Ok(app) => app,
        Err(e) => {
            log(&serde_json::json!({"misconfigured": e}));
            return web::error_response(&ApiError::unavailable("configuration"));
        }
    };
    let parts = match request_parts(&req) {
        Some(p) => p,
        None => return web::error_response(&ApiError::bad_request("malformed request")),
    };
    let declared = web::declared_length(&parts.headers);
    let body = web::read_limited(req.into_body_stream(), declared).await;
    let body = match body {
        Ok(b) => b,
        Err(e) => return web::error_response(&e),
    };
    let resp = app.handle(http::Request::from_parts(parts, body)).await;
    if let Some(l) = resp.extensions().get::<RequestLog>() {
        if resp.status().is_server_error() {
            log(
                &serde_json::json!({"route": l.route, "status": resp.status().as_u16(), "error": l.error_code, "detail": l.detail}),
            );
        }
    }
    resp
}

/// The request line and headers as `http` types. The client address is the
/// one Spin puts in `spin-client-addr`.
fn request_parts(req: &IncomingRequest) -> Option<http::request::Parts> {
    let method = http::Method::from_bytes(req.method().to_string().as_bytes()).ok()?;
    let path = req.path_with_query().unwrap_or_else(|| "/".into());
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let (mut parts, ()) = builder.body(()).ok()?.into_parts();
    let ip = parts
        .headers
        .get("spin-client-addr")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    if let Some(ip) = ip {
        parts.extensions.insert(ClientIp(ip));
    }
    Some(parts)
}

/// Sends the answer, streaming its body. A body that fails mid-way is left
/// unfinished, so the runtime aborts the transfer and the client sees a
/// broken download, never a short one that looks whole.
async fn send(resp: http::Response<Body>, out: ResponseOutparam) {
    let (parts, mut body) = resp.into_parts();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let Ok(fields) = Fields::from_list(&headers) else {
        log(&serde_json::json!({"response_error": "headers refused by the runtime"}));
        return;
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(parts.status.as_u16()).is_err() {
        return;
    }
    let Ok(outgoing) = response.body() else {
        return;
    };
    out.set(response);
    let Ok(stream) = outgoing.write() else {
        return;
    };
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for chunk in data.chunks(WRITE_CHUNK) {
                    if stream.blocking_write_and_flush(chunk).is_err() {
                        // The client went away.
                        return;
                    }
                }
            }
            Err(e) => {
                log(&serde_json::json!({"response_stream_error": e.detail}));
                return;
            }
        }
    }
    drop(stream);
    if OutgoingBody::finish(outgoing, None).is_err() {
        log(&serde_json::json!({"response_error": "the body could not be finished"}));
    }
}

/// One JSON line on stderr (the runtime's log); never personal data. One
/// write, so that lines of concurrent instances do not interleave.
fn log(v: &serde_json::Value) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{v}\n").as_bytes());
}
