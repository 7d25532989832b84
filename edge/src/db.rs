//! The Worker's [`Host`](amanah_functions::Host): clinic databases as
//! namespaces of the region's sqld ([`SqldHost`]) over Hrana through the
//! Worker's `fetch`, the root keys from the `ROOT_KEY` secret, `Date.now()`
//! and `crypto.getRandomValues`.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};

use amanah_functions::crypto::keys::RootKeyring;
use amanah_functions::store::hrana::Transport;
use amanah_functions::store::sqld::{Platform, SqldHost, SqldSettings};

use crate::checkpoints::R2Checkpoints;
use worker::send::SendFuture;
use worker::{js_sys, Delay, Fetch, Headers, Method, Request, RequestInit};

/// HTTP requests through the Worker's `fetch`, given up after `timeout` (a hung
/// database answers 503 instead of holding the request).
#[derive(Clone, Copy)]
pub struct FetchTransport {
    pub timeout: Duration,
}

impl Transport for FetchTransport {
    fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), String>> + Send {
        let url = url.to_owned();
        let this = *self;
        SendFuture::new(async move {
            let send = async {
                let h = Headers::new();
                for (k, v) in &headers {
                    h.set(k, v)?;
                }
                let mut init = RequestInit::new();
                // Hrana and sqld's admin API POST and DELETE; Turso's
                // Platform API also GETs (a group's placement).
                let method = match method {
                    "DELETE" => Method::Delete,
                    "GET" => Method::Get,
                    _ => Method::Post,
                };
                init.with_method(method).with_headers(h).with_body(
                    (!body.is_empty()).then(|| js_sys::Uint8Array::from(body.as_slice()).into()),
                );
                let req = Request::new_with_init(&url, &init)?;
                let mut resp = Fetch::Request(req).send().await?;
                let status = resp.status_code();
                Ok::<_, worker::Error>((status, resp.bytes().await?))
            };
            let timeout = Delay::from(this.timeout);
            match select(pin!(send), pin!(timeout)).await {
                Either::Left((sent, _)) => sent.map_err(|e| format!("fetch failed: {e}")),
                Either::Right(_) => {
                    Err(format!("no answer within {} ms", this.timeout.as_millis()))
                }
            }
        })
    }
}

/// The Worker's [`Host`]: the region's sqld through `fetch`, its audit
/// checkpoints in the `AUDIT_CHECKPOINTS` bucket.
pub type EdgeHost = SqldHost<FetchTransport, R2Checkpoints>;

pub fn host(db: SqldSettings, timeout: Duration, root: RootKeyring) -> SqldHost<FetchTransport> {
    SqldHost::new(
        FetchTransport { timeout },
        db,
        root,
        Platform {
            now: || (js_sys::Date::now() / 1000.0) as i64,
            // The platform's CSPRNG (crypto.getRandomValues); without it
            // nothing secret can be made, so failing here is the only safe
            // answer.
            fill_random: |buf| {
                getrandom02::getrandom(buf).expect("crypto.getRandomValues is available in workerd")
            },
        },
    )
}
