//! Clinic databases for the Worker: one libSQL database per clinic on the
//! region's libSQL server, spoken to over Hrana through the Worker's `fetch`.
//!
//! On a self-run `sqld` (locally, and the UAE region) each clinic is a
//! namespace chosen by the `x-namespace-bin` header and created at sign-up
//! through sqld's admin API; the region directory is the namespace
//! `directory`. The admin API must never be public: locally it listens on
//! loopback, in production it sits behind an authenticated tunnel
//! (`DB_ADMIN_URL`, `DB_ADMIN_TOKEN`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use amanah_functions::crypto::keys::RootKey;
use amanah_functions::host::{DbError, Host};
use amanah_functions::ids::ClinicId;
use amanah_functions::store::hrana::{Endpoint, HranaConn, Transport};
use worker::send::SendFuture;
use worker::{js_sys, Fetch, Headers, Method, Request, RequestInit};

/// HTTP POST through the Worker's `fetch`.
#[derive(Clone, Copy)]
pub struct FetchTransport;

impl Transport for FetchTransport {
    fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), String>> + Send {
        let url = url.to_owned();
        SendFuture::new(async move {
            let send = async {
                let h = Headers::new();
                for (k, v) in &headers {
                    h.set(k, v)?;
                }
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_headers(h)
                    .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
                let req = Request::new_with_init(&url, &init)?;
                let mut resp = Fetch::Request(req).send().await?;
                let status = resp.status_code();
                Ok::<_, worker::Error>((status, resp.bytes().await?))
            };
            send.await.map_err(|e| format!("fetch failed: {e}"))
        })
    }
}

/// Where the region's databases live.
pub struct DbSettings {
    /// Base URL of the region's libSQL server.
    pub url: String,
    pub auth_token: Option<String>,
    /// sqld admin API (namespace creation).
    pub admin_url: String,
    pub admin_token: Option<String>,
}

/// The Worker's [`Host`].
pub struct EdgeHost {
    db: DbSettings,
    root: RootKey,
    directory_created: AtomicBool,
}

const DIRECTORY: &str = "directory";

impl EdgeHost {
    pub fn new(db: DbSettings, root: RootKey) -> Self {
        EdgeHost {
            db,
            root,
            directory_created: AtomicBool::new(false),
        }
    }

    fn conn(&self, namespace: &str) -> HranaConn<FetchTransport> {
        HranaConn::new(
            FetchTransport,
            Endpoint {
                url: self.db.url.clone(),
                namespace: Some(namespace.to_owned()),
                auth_token: self.db.auth_token.clone(),
            },
        )
    }

    /// Creates a namespace; one that exists already is fine when `existing_ok`.
    async fn create_namespace(&self, ns: &str, existing_ok: bool) -> Result<(), DbError> {
        let url = format!(
            "{}/v1/namespaces/{ns}/create",
            self.db.admin_url.trim_end_matches('/')
        );
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(t) = &self.db.admin_token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let (status, body) = FetchTransport
            .post(&url, headers, b"{}".to_vec())
            .await
            .map_err(DbError::Unavailable)?;
        match status {
            200..=299 => Ok(()),
            s if s >= 500 => Err(DbError::Unavailable(format!("sqld admin answered {s}"))),
            _ if existing_ok && String::from_utf8_lossy(&body).contains("already exists") => Ok(()),
            s => Err(DbError::Other(format!(
                "sqld admin answered {s} creating a namespace"
            ))),
        }
    }
}

impl Host for EdgeHost {
    type Conn = HranaConn<FetchTransport>;

    async fn directory(&self) -> Result<Self::Conn, DbError> {
        if !self.directory_created.load(Ordering::Acquire) {
            self.create_namespace(DIRECTORY, true).await?;
            self.directory_created.store(true, Ordering::Release);
        }
        Ok(self.conn(DIRECTORY))
    }

    async fn open_clinic(&self, clinic: &ClinicId) -> Result<Self::Conn, DbError> {
        Ok(self.conn(clinic.as_str()))
    }

    async fn create_clinic(&self, clinic: &ClinicId) -> Result<Self::Conn, DbError> {
        self.create_namespace(clinic.as_str(), false).await?;
        Ok(self.conn(clinic.as_str()))
    }

    fn root_key(&self) -> &RootKey {
        &self.root
    }

    fn now(&self) -> i64 {
        (js_sys::Date::now() / 1000.0) as i64
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // The platform's CSPRNG (crypto.getRandomValues); without it nothing
        // secret can be made, so failing here is the only safe answer.
        getrandom02::getrandom(buf).expect("crypto.getRandomValues is available in workerd");
    }
}
