//! The Spin component's [`Host`](amanah_functions::Host): clinic databases
//! as namespaces of the region's sqld ([`SqldHost`]) over Hrana through
//! outbound `wasi:http`
//! — the same Hrana client the Worker uses, with another transport — and
//! the wall clock and randomness of WASI.
//!
//! Outbound calls use the `wasi` crate's bindings directly rather than
//! spin-sdk's `send`, because only `wasi:http/outgoing-handler.handle` takes
//! request options: connect, first-byte and between-bytes timeouts, so a
//! hung database answers 503 instead of holding the request. A request's
//! answer is awaited through spin-sdk's executor (its pollable in the
//! executor's poll list), so that calls the core makes together — the
//! directory's key lookup beside the clinic's first batch — are in flight
//! together; bodies are small and read with blocking calls. A component
//! runs on one thread, so the futures the core awaits are `Send` trivially.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amanah_functions::crypto::keys::RootKeyring;
use amanah_functions::store::hrana::Transport;
use amanah_functions::store::sqld::{Platform, SqldHost, SqldSettings};
use spin_executor::CancelToken;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// Largest write `blocking-write-and-flush` takes at once.
const WRITE_CHUNK: usize = 4096;
/// Read size for response bodies.
const READ_CHUNK: u64 = 64 * 1024;

/// HTTP requests over outbound `wasi:http`, each phase bounded by `timeout`.
#[derive(Clone, Copy)]
pub struct WasiTransport {
    pub timeout: Duration,
}

impl Transport for WasiTransport {
    fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), String>> + Send {
        // The request goes out now; its answer is awaited through the
        // executor's poll list, so that requests sent together (the
        // directory's lookup and the clinic's first batch) are in flight
        // together.
        let started = start(self.timeout, method, url, headers, body);
        OneThread(async move {
            let pending = started?;
            answered(&pending).await;
            let result = finish(&pending);
            drop(pending);
            result
        })
    }
}

/// A future of this component's only thread (wasm32-wasip2 has one): the
/// `Send` the core's futures promise holds trivially.
struct OneThread<F>(F);

// SAFETY: a wasm32-wasip2 component runs on a single thread; nothing is
// ever sent to another.
unsafe impl<F> Send for OneThread<F> {}

impl<F: Future> Future for OneThread<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field, never moved out.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

/// Until the response's head has come (or the request failed): the
/// pollable is registered with spin-sdk's executor, and unregistered
/// before the response it belongs to is dropped.
async fn answered(pending: &FutureIncomingResponse) {
    let mut token: Option<CancelToken> = None;
    std::future::poll_fn(|cx| {
        if let Some(t) = token.take() {
            t.cancel();
        }
        let pollable = pending.subscribe();
        if pollable.ready() {
            return Poll::Ready(());
        }
        token = Some(spin_executor::push_waker_and_get_token(
            pollable,
            cx.waker().clone(),
        ));
        Poll::Pending
    })
    .await;
    if let Some(t) = token {
        t.cancel();
    }
}

/// Sends the request's head and body; the response is awaited apart.
/// Errors name the phase, never the payload.
fn start(
    timeout: Duration,
    method: &'static str,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Result<FutureIncomingResponse, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err("the database URL must be http or https".into()),
    };
    let authority = uri.authority().ok_or("the database URL has no host")?;
    let list: Vec<(String, Vec<u8>)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_bytes()))
        .collect();
    let fields = Fields::from_list(&list).map_err(|e| format!("request headers: {e:?}"))?;
    let req = OutgoingRequest::new(fields);
    let method = match method {
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "GET" => Method::Get,
        other => Method::Other(other.to_owned()),
    };
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|_| format!("cannot set the {what}"));
    set(req.set_method(&method), "method")?;
    set(req.set_scheme(Some(&scheme)), "scheme")?;
    set(req.set_authority(Some(authority.as_str())), "authority")?;
    set(
        req.set_path_with_query(uri.path_and_query().map(|p| p.as_str())),
        "path",
    )?;
    let options = RequestOptions::new();
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    set(options.set_connect_timeout(Some(nanos)), "connect timeout")?;
    set(
        options.set_first_byte_timeout(Some(nanos)),
        "first-byte timeout",
    )?;
    set(
        options.set_between_bytes_timeout(Some(nanos)),
        "between-bytes timeout",
    )?;
    let out_body = req.body().map_err(|_| "no request body".to_owned())?;
    let pending = outgoing_handler::handle(req, Some(options)).map_err(describe)?;
    {
        let stream = out_body
            .write()
            .map_err(|_| "request body not writable".to_owned())?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("sending the request: {}", stream_error(e)))?;
        }
    }
    OutgoingBody::finish(out_body, None).map_err(describe)?;
    Ok(pending)
}

/// The status and body of a response whose head has come.
fn finish(pending: &FutureIncomingResponse) -> Result<(u16, Vec<u8>), String> {
    let resp = match pending.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(describe(code)),
        _ => return Err("the response was lost".into()),
    };
    let status = resp.status();
    let incoming = resp
        .consume()
        .map_err(|_| "response body taken".to_owned())?;
    let mut bytes = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|_| "response body not readable".to_owned())?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("reading the response: {}", stream_error(e))),
            }
        }
    }
    drop(IncomingBody::finish(incoming));
    Ok((status, bytes))
}

fn describe(code: wasi::http::types::ErrorCode) -> String {
    use wasi::http::types::ErrorCode as E;
    match code {
        E::ConnectionTimeout | E::ConnectionReadTimeout | E::ConnectionWriteTimeout => {
            "no answer in time".into()
        }
        E::ConnectionRefused => "connection refused".into(),
        E::HttpRequestDenied => "outbound request denied by the runtime".into(),
        other => format!("{other:?}"),
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "closed".into(),
        StreamError::LastOperationFailed(err) => err.to_debug_string(),
    }
}

/// The Spin component's [`Host`](amanah_functions::Host): the region's
/// sqld through outbound `wasi:http`.
pub type SpinHost = SqldHost<WasiTransport>;

pub fn host(db: SqldSettings, timeout: Duration, root: RootKeyring) -> SpinHost {
    SqldHost::new(
        WasiTransport { timeout },
        db,
        root,
        Platform {
            now: || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
            },
            // wasi:random/random: the runtime's CSPRNG.
            fill_random: |buf| {
                let bytes = wasi::random::random::get_random_bytes(buf.len() as u64);
                buf.copy_from_slice(&bytes);
            },
        },
    )
}
