//! The Cloudflare Workers host: a thin workers-rs adapter around
//! `amanah-functions`.
//!
//! It turns the Worker's request into an `http::Request`, hands it to
//! [`App::handle`], and gives the application its four capabilities: a
//! libSQL connection per clinic (Hrana over the Worker's `fetch`, see
//! [`db`]), the region root keys (the `ROOT_KEY` secret), a clock and
//! randomness. One deployment serves one region; `wrangler.toml` has an
//! environment per region. Everything that is not `/api/…` is the front end,
//! served from the static assets binding with the same security headers.

mod checkpoints;
mod db;
mod settings;

use std::sync::OnceLock;

use amanah_functions::body::Body;
use amanah_functions::error::ApiError;
use amanah_functions::web;
use amanah_functions::{App, ClientIp};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use worker::{event, Context, Env, HttpRequest, ScheduleContext, ScheduledEvent};

use db::EdgeHost;

type Reply = http::Response<Body>;

/// One application per isolate, built from the environment on first use.
static APP: OnceLock<Result<App<EdgeHost>, String>> = OnceLock::new();

#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, _ctx: Context) -> worker::Result<Reply> {
    let path = req.uri().path();
    if !web::is_app_path(path) {
        return Ok(assets(req, &env).await);
    }
    let app = match APP.get_or_init(|| settings::app(&env)) {
        Ok(app) => app,
        Err(e) => {
            worker::console_error!("amanah: misconfigured: {e}");
            return Ok(web::error_response(&ApiError::unavailable("configuration")));
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
    let declared = web::declared_length(&parts.headers);
    let body = web::read_limited(body, declared).await;
    let resp = match body {
        Ok(body) => app.handle(http::Request::from_parts(parts, body)).await,
        Err(e) => web::error_response(&e),
    };
    if let Some(log) = resp.extensions().get::<amanah_functions::RequestLog>() {
        if resp.status().is_server_error() {
            worker::console_error!(
                "{}",
                serde_json::json!({"route": log.route, "status": resp.status().as_u16(), "error": log.error_code, "detail": log.detail})
            );
        }
    }
    Ok(resp.map(|body| {
        body.on_error(|e| {
            worker::console_error!("{}", serde_json::json!({"response_stream_error": e.detail}))
        })
    }))
}

/// The cron trigger does no work itself. Cron Triggers run wherever
/// Cloudflare starts them (Regional Services does not apply to them), and
/// the scheduled work decrypts and re-seals personal data. So the trigger
/// asks the region's own hostname (this Worker's Custom Domain, where
/// Regional Services keeps processing in the region) for
/// `POST /internal/maintain` under the `MAINTAIN_TOKEN` secret; the work
/// (purge, key sweep, audit checkpoints into `AUDIT_CHECKPOINTS`) runs in
/// that request. Its report holds no personal data and is logged; a failure
/// is tried again on the next trigger.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let app = match APP.get_or_init(|| settings::app(&env)) {
        Ok(app) => app,
        Err(e) => {
            worker::console_error!("amanah: misconfigured: {e}");
            return;
        }
    };
    let config = app.config();
    let (Some(base), Some(token)) = (&config.region.url, &config.maintain_token) else {
        worker::console_error!(
            "{}",
            serde_json::json!({"maintain_error": "MAINTAIN_TOKEN is not set: the scheduled work runs only through the region's own hostname"})
        );
        return;
    };
    match maintain_in_region(base, token).await {
        Ok((200, report)) => worker::console_log!("{report}"),
        Ok((status, report)) => worker::console_error!(
            "{}",
            serde_json::json!({"maintain_status": status, "report": report})
        ),
        Err(e) => {
            worker::console_error!("{}", serde_json::json!({"maintain_error": e.to_string()}))
        }
    }
}

/// `POST {base}/internal/maintain` with the token, through the same `fetch`
/// transport as the database's: the answer's status and text. The work may
/// take minutes (a key sweep); a cron event may run for 15.
async fn maintain_in_region(base: &str, token: &str) -> Result<(u16, String), String> {
    use amanah_functions::store::hrana::Transport;
    let fetch = db::FetchTransport {
        timeout: std::time::Duration::from_secs(14 * 60),
    };
    let (status, body) = fetch
        .send(
            "POST",
            &format!("{base}/internal/maintain"),
            vec![("authorization", format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A whole body (static assets), or `None` if it cannot be read.
async fn read_all(mut body: worker::Body) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.ok()?);
    }
    Some(buf.freeze())
}

/// The front end, from the `ASSETS` binding, with the security headers.
async fn assets(req: HttpRequest, env: &Env) -> Reply {
    let fetched = async {
        let resp = env.assets("ASSETS").ok()?.fetch_request(req).await.ok()?;
        let (parts, body) = resp.into_parts();
        Some(http::Response::from_parts(
            parts,
            Body::full(read_all(body).await?),
        ))
    }
    .await;
    let mut r = fetched.unwrap_or_else(|| web::error_response(&ApiError::not_found()));
    web::secure_headers(r.headers_mut(), false);
    r
}
