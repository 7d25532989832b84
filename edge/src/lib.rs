//! The Cloudflare Workers host: a thin workers-rs adapter around
//! `amanah-functions`.
//!
//! It turns the Worker's request into an `http::Request`, hands it to
//! [`App::handle`], and gives the application its four capabilities: a
//! libSQL connection per clinic (Hrana over the Worker's `fetch`, see
//! [`db`]), the region root key (the `ROOT_KEY` secret), a clock and
//! randomness. One deployment serves one region; `wrangler.toml` has an
//! environment per region. Everything that is not `/api/…` is the front end,
//! served from the static assets binding with the same security headers.

mod db;
mod settings;

use std::sync::OnceLock;

use amanah_functions::error::ApiError;
use amanah_functions::web::{self, MAX_BODY};
use amanah_functions::{App, ClientIp};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::Full;
use worker::{event, Context, Env, HttpRequest};

use db::EdgeHost;

type Reply = http::Response<Full<Bytes>>;

/// One application per isolate, built from the environment on first use.
static APP: OnceLock<Result<App<EdgeHost>, String>> = OnceLock::new();

#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, _ctx: Context) -> worker::Result<Reply> {
    let path = req.uri().path();
    if !(path.starts_with("/api/") || path.starts_with("/__test/") || path == "/healthz") {
        return Ok(assets(req, &env).await);
    }
    let app = match APP.get_or_init(|| settings::app(&env)) {
        Ok(app) => app,
        Err(e) => {
            worker::console_error!("amanah: misconfigured: {e}");
            return Ok(unavailable());
        }
    };
    let (mut parts, body) = req.into_parts();
    let ip = parts
        .headers
        .get("cf-connecting-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(ip) = ip {
        parts.extensions.insert(ClientIp(ip));
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = match declared {
        Some(n) if n > MAX_BODY => None,
        _ => read_limited(body, MAX_BODY).await,
    };
    let resp = match body {
        Some(body) => app.handle(http::Request::from_parts(parts, body)).await,
        None => too_large(),
    };
    if let Some(log) = resp.extensions().get::<amanah_functions::RequestLog>() {
        if resp.status().is_server_error() {
            worker::console_error!(
                "{}",
                serde_json::json!({"route": log.route, "status": resp.status().as_u16(), "error": log.error_code, "detail": log.detail})
            );
        }
    }
    let (parts, body) = resp.into_parts();
    Ok(http::Response::from_parts(parts, Full::new(body)))
}

/// The body, or `None` when it is larger than `limit` or cannot be read.
async fn read_limited(mut body: worker::Body, limit: usize) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf.freeze())
}

fn too_large() -> http::Response<Bytes> {
    let mut r = web::error_response(&web::too_large());
    web::secure_headers(r.headers_mut(), true);
    r
}

fn unavailable() -> Reply {
    let e = ApiError::unavailable("configuration");
    let mut r = web::error_response(&e);
    web::secure_headers(r.headers_mut(), true);
    let (parts, body) = r.into_parts();
    http::Response::from_parts(parts, Full::new(body))
}

/// The front end, from the `ASSETS` binding, with the security headers.
async fn assets(req: HttpRequest, env: &Env) -> Reply {
    let fetched = async {
        let resp = env.assets("ASSETS").ok()?.fetch_request(req).await.ok()?;
        let (parts, body) = resp.into_parts();
        let body = read_limited(body, usize::MAX).await?;
        Some(http::Response::from_parts(parts, Full::new(body)))
    }
    .await;
    let mut r = fetched.unwrap_or_else(|| {
        let (parts, body) = web::error_response(&ApiError::not_found()).into_parts();
        http::Response::from_parts(parts, Full::new(body))
    });
    web::secure_headers(r.headers_mut(), false);
    r
}
