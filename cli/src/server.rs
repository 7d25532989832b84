//! HTTP/1.1 over TCP for the native host: turns hyper requests into
//! `http::Request<Bytes>` for [`App::handle`] and back. No business rule
//! here; what it decides is the connection's:
//!
//! - the client's address: the peer's, or where the peer is a proxy the
//!   deployment trusts (`--trusted-proxy`), the nearest untrusted address of
//!   its `X-Forwarded-For`;
//! - slow clients: headers within 10 seconds, the body within 10 seconds
//!   plus one second per 16 KiB announced or received (a body that stops
//!   arriving ends the connection), and at most [`Limits::per_address`]
//!   connections open from one address (trusted proxies aside);
//! - the security headers on every answer, hyper's own refusals of a
//!   malformed request included ([`SecureHeaders`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use amanah_functions::body::Body;
use amanah_functions::error::ApiError;
use amanah_functions::{web, App, ClientIp, RequestLog};
use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::assets::Assets;
use crate::native_host::NativeHost;

/// What one listener allows a client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Connections open at once from one address (not counting trusted
    /// proxies, which carry many clients).
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            trusted_proxies: Vec::new(),
            per_address: 64,
        }
    }
}

impl Limits {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy; then the rightmost address of `X-Forwarded-For` that is not
    /// one (the nearest hop nobody trusted could have written).
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        hops.into_iter()
            .rev()
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
    }
}

/// Connections open per address.
#[derive(Default)]
struct Open(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address until dropped.
struct Counted {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Counted> {
        let mut open = self.0.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.0.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

/// Serves one region's app (and the front end's files, when given) on a
/// bound listener until the process ends; over TLS when `tls` is given
/// (HTTP/2 or HTTP/1.1, as ALPN agreed), else plain HTTP/1.1.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App<NativeHost>>,
    assets: Option<Arc<Assets>>,
    region: String,
    limits: Arc<Limits>,
    tls: Option<TlsAcceptor>,
) {
    let open = Arc::new(Open::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(region, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let counted = if limits.trusted(peer.ip()) {
            None
        } else {
            match open.admit(peer.ip(), limits.per_address) {
                Some(c) => Some(c),
                None => {
                    tracing::warn!(region, "too many connections from one address: refused");
                    drop(stream);
                    continue;
                }
            }
        };
        let app = app.clone();
        let assets = assets.clone();
        let region = region.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _counted = counted;
            let service = service_fn(move |mut req: hyper::Request<Incoming>| {
                let app = app.clone();
                let assets = assets.clone();
                let region = region.clone();
                let limits = limits.clone();
                async move {
                    // HTTP/2 names the host in `:authority`, not `Host`:
                    // the application reads `Host` (same-origin checks).
                    if !req.headers().contains_key(http::header::HOST) {
                        if let Some(v) = req
                            .uri()
                            .authority()
                            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
                        {
                            req.headers_mut().insert(http::header::HOST, v);
                        }
                    }
                    let resp = match &assets {
                        Some(a) if !web::is_app_path(req.uri().path()) => {
                            a.respond(req.method(), req.uri().path()).await
                        }
                        _ => {
                            let client = limits.client(peer.ip(), req.headers());
                            handle(&app, &region, client, req).await
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let Some(tls) = tls else {
                return http1_conn(stream, service).await;
            };
            // The handshake, like a request's head, within 10 seconds.
            let stream = match tokio::time::timeout(HEAD_TIME, tls.accept(stream)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                let conn = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(H2_STREAMS)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = conn.await;
            } else {
                http1_conn(stream, service).await;
            }
        });
    }
}

/// Time for a request's head (and a TLS handshake).
const HEAD_TIME: Duration = Duration::from_secs(10);
/// Requests at once on one HTTP/2 connection.
const H2_STREAMS: u32 = 32;

/// One HTTP/1.1 connection, its answers with the security headers even
/// where hyper answers by itself.
async fn http1_conn<S, Svc>(io: S, service: Svc)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::HttpService<Incoming, ResBody = Body, Error = Infallible>,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIME)
        .writev(false)
        .serve_connection(TokioIo::new(SecureHeaders::new(io)), service);
    let _ = conn.await;
}

async fn handle(
    app: &App<NativeHost>,
    region: &str,
    client: IpAddr,
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
            parts.extensions.insert(ClientIp(client));
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
/// Time a body may take regardless of its size.
const BODY_GRACE: Duration = Duration::from_secs(10);
/// The slowest a body may arrive beyond the grace: one second per this
/// many bytes (16 KiB/s: a 1 MiB body has 74 seconds in all).
const MIN_RATE: u64 = 16 * 1024;

/// How long a body of `bytes` may have taken so far.
fn allowance(bytes: usize) -> Duration {
    BODY_GRACE + Duration::from_secs(bytes as u64 / MIN_RATE)
}

fn too_slow() -> ApiError {
    ApiError::bad_request("the request body arrived too slowly")
}

/// Reads a body of at most [`web::MAX_BODY`] bytes, within its time (see
/// [`allowance`]: the announced length's, or what has arrived so far). A
/// larger one is drained (bounded) before the 413, unless the client
/// announced more than we would ever drain.
async fn read_body(mut body: Incoming, headers: &http::HeaderMap) -> Result<Bytes, ApiError> {
    let started = Instant::now();
    let declared = web::declared_length(headers);
    if declared.is_none_or(|n| n <= web::MAX_BODY) {
        let mut buf = Vec::new();
        let mut too_large = false;
        loop {
            let budget = allowance(declared.unwrap_or(0).max(buf.len()));
            let left = budget.saturating_sub(started.elapsed());
            let frame = match tokio::time::timeout(left, body.frame()).await {
                Err(_) => return Err(too_slow()),
                Ok(None) => break,
                Ok(Some(frame)) => frame,
            };
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

/// A connection whose every answer carries the security headers: hyper
/// answers a malformed request itself (400, 414, 431, 505) without asking
/// the application, and those answers get the headers added on their way
/// out. Every head the application writes has them already
/// (`x-content-type-options` among them), and passes unchanged.
pub struct SecureHeaders<S> {
    inner: S,
    /// Bytes accepted from hyper but not yet written to the socket.
    pending: Vec<u8>,
}

/// What hyper's own refusals lack.
const ADDED: &[u8] = b"strict-transport-security: max-age=63072000; includeSubDomains; preload\r\n\
x-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\n\
content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n\
x-frame-options: DENY\r\ncache-control: no-store\r\n";

impl<S> SecureHeaders<S> {
    pub fn new(inner: S) -> Self {
        SecureHeaders {
            inner,
            pending: Vec::new(),
        }
    }

    /// `buf` with the security headers added, if it is a response head
    /// without them.
    fn secured(buf: &[u8]) -> Option<Vec<u8>> {
        if !buf.starts_with(b"HTTP/1.") {
            return None;
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = &buf[..end];
        let lower = head.to_ascii_lowercase();
        if lower.windows(23).any(|w| w == b"x-content-type-options:") {
            return None;
        }
        let mut out = Vec::with_capacity(buf.len() + ADDED.len());
        out.extend_from_slice(&buf[..end + 2]);
        out.extend_from_slice(ADDED);
        out.extend_from_slice(&buf[end + 2..]);
        Some(out)
    }
}

impl<S: AsyncWrite + Unpin> SecureHeaders<S> {
    /// Writes what is pending; ready once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SecureHeaders<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SecureHeaders<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match Self::secured(buf) {
            Some(out) => {
                self.pending = out;
                // Taken whole; written by this call and the next ones.
                let _ = self.poll_pending(cx);
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_answers_get_the_headers_and_ours_pass_unchanged() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = SecureHeaders::<()>::secured(bare).expect("secured");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("\r\nx-content-type-options: nosniff\r\n"));
        assert!(text.ends_with("cache-control: no-store\r\n\r\n"));
        let ours = b"HTTP/1.1 200 OK\r\nX-Content-Type-Options: nosniff\r\n\r\n{}";
        assert!(SecureHeaders::<()>::secured(ours).is_none());
        assert!(SecureHeaders::<()>::secured(b"{\"body\":1}").is_none());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let limits = Limits {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..Limits::default()
        };
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("203.0.113.9, 198.51.100.7, 10.1.2.3"),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            limits.client(proxy, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(limits.client(stranger, &h), stranger);
        assert_eq!(limits.client(proxy, &http::HeaderMap::new()), proxy);
    }

    #[test]
    fn one_address_holds_a_bounded_number_of_connections() {
        let open = Arc::new(Open::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = open.admit(ip, 2).unwrap();
        let _second = open.admit(ip, 2).unwrap();
        assert!(open.admit(ip, 2).is_none());
        drop(first);
        assert!(open.admit(ip, 2).is_some());
    }
}
