//! HTTP/1.1 over TCP for the native host: turns hyper requests into
//! `http::Request<Bytes>` for [`App::handle`] and back. No business rule here.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amanah_functions::body::Body;
use amanah_functions::error::ApiError;
use amanah_functions::{web, App, ClientIp, RequestLog};
use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::assets::Assets;
use crate::native_host::NativeHost;

/// Serves one region's app (and the front end's files, when given) on a
/// bound listener until the process ends.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App<NativeHost>>,
    assets: Option<Arc<Assets>>,
    region: String,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(region, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let assets = assets.clone();
        let region = region.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let app = app.clone();
                let assets = assets.clone();
                let region = region.clone();
                async move {
                    let resp = match &assets {
                        Some(a) if !web::is_app_path(req.uri().path()) => {
                            a.respond(req.method(), req.uri().path()).await
                        }
                        _ => handle(&app, &region, peer, req).await,
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

async fn handle(
    app: &App<NativeHost>,
    region: &str,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let (mut parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers).await;
    let resp = match body {
        Err(e) => {
            // The body was not read: this connection cannot carry another request.
            let mut r = web::error_response(&e);
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            r
        }
        Ok(bytes) => {
            parts.extensions.insert(ClientIp(peer.ip()));
            let req = http::Request::from_parts(parts, bytes);
            match AssertUnwindSafe(app.handle(req)).catch_unwind().await {
                Ok(resp) => resp,
                Err(_) => {
                    tracing::error!(region, "handler panicked");
                    web::error_response(&ApiError::internal("panic"))
                }
            }
        }
    };
    let log = resp.extensions().get::<RequestLog>().cloned();
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let route = log.as_ref().map_or("-", |l| l.route);
    let code = log.as_ref().and_then(|l| l.error_code).unwrap_or("");
    match log.and_then(|l| l.detail) {
        Some(detail) if status >= 500 => {
            tracing::error!(region, %method, route, status, ms, code, detail, "request")
        }
        _ => tracing::info!(region, %method, route, status, ms, code, "request"),
    }
    let region = region.to_owned();
    resp.map(|body| {
        body.on_error(
            move |e| tracing::error!(region, route, detail = %e.detail, "response stream failed"),
        )
    })
}

const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads a body of at most [`web::MAX_BODY`] bytes. A larger one is drained
/// (bounded) before the 413, unless the client announced more than we would
/// ever drain.
async fn read_body(mut body: Incoming, headers: &http::HeaderMap) -> Result<Bytes, ApiError> {
    let declared = web::declared_length(headers);
    if declared.is_none_or(|n| n <= web::MAX_BODY) {
        let mut buf = Vec::new();
        let mut too_large = false;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
            if let Some(data) = frame.data_ref() {
                if buf.len() + data.len() > web::MAX_BODY {
                    too_large = true;
                    break;
                }
                buf.extend_from_slice(data);
            }
        }
        if !too_large {
            return Ok(Bytes::from(buf));
        }
    }
    if declared.is_none_or(|n| n <= web::MAX_BODY + web::DRAIN_LIMIT) {
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            let mut drained = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                drained += frame.data_ref().map_or(0, |d| d.len());
                if drained > web::DRAIN_LIMIT {
                    break;
                }
            }
        })
        .await;
    }
    Err(web::too_large())
}
