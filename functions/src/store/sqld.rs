//! A region's clinic databases on libSQL servers, as its provider in
//! `regions.toml` runs them ([`Provider`]):
//!
//! - a self-run sqld (`sqld --enable-namespaces`): one namespace per
//!   clinic, created at sign-up through sqld's admin API, and the namespace
//!   `directory` for the region directory; the namespace travels in the
//!   `x-namespace-bin` header. The admin API must never be public: locally
//!   it listens on loopback, in production it sits behind an authenticated
//!   tunnel (`admin_token`).
//! - Turso ([`super::turso`]): a database per clinic, created through the
//!   Platform API, each at its own URL.
//!
//! Statements go over Hrana ([`super::hrana`]) through the host's
//! [`Transport`] either way. [`SqldHost`] is the whole [`Host`] of the wasm
//! hosts over these databases.

use crate::crypto::keys::RootKeyring;
use crate::host::{DbError, Host, NoCheckpoints};
use crate::ids::ClinicId;
use crate::jobs::checkpoints::CheckpointStore;

use super::hrana::{Endpoint, HranaConn, Transport};
use super::turso::{PlatformApi, TursoPlacement, NAME_PLACEHOLDER};

/// Who runs the region's databases, as `regions.toml` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// A self-run sqld with a namespace per database.
    Namespaces,
    /// Turso: a database per clinic, created through the Platform API.
    Turso(TursoPlacement),
}

/// Where a region's databases are and how to reach them.
#[derive(Clone)]
pub struct SqldSettings {
    /// Base URL of the server's HTTP (Hrana) listener; for Turso, every
    /// database's URL with `{name}` for its name
    /// (`https://{name}-<org>.turso.io`).
    pub url: String,
    /// The servers' bearer token (for Turso, a group token).
    pub auth_token: Option<String>,
    /// Base URL of the admin API (sqld's namespace creation, or Turso's
    /// Platform API). `None` for an operator's connection, which creates
    /// and drops no database: its directory must exist already.
    pub admin_url: Option<String>,
    pub admin_token: Option<String>,
    pub provider: Provider,
}

impl SqldSettings {
    /// Refuses settings whose URL does not fit the provider (`{name}` in
    /// it for Turso and only for Turso), naming `url_setting`.
    pub fn check(&self, url_setting: &str) -> Result<(), String> {
        let templated = self.url.contains(NAME_PLACEHOLDER);
        match (&self.provider, templated) {
            (Provider::Namespaces, false) | (Provider::Turso(_), true) => Ok(()),
            (Provider::Namespaces, true) => Err(format!(
                "{url_setting} names {NAME_PLACEHOLDER}, but this region's provider in regions.toml is a self-run sqld (one URL, a namespace per database)"
            )),
            (Provider::Turso(_), false) => Err(format!(
                "{url_setting} must name each database's URL with {NAME_PLACEHOLDER} (https://{NAME_PLACEHOLDER}-<org>.turso.io): this region's provider in regions.toml is Turso"
            )),
        }
    }
}

/// Sends an admin call (sqld's admin API, Turso's Platform API). A call
/// that got no answer at all (a stale pooled connection after the server
/// restarted) is sent once more, and says so (`true`): the caller accepts
/// what a first call that did land makes the second answer.
pub(super) async fn send_admin_call<T: Transport>(
    transport: &T,
    method: &'static str,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Result<((u16, Vec<u8>), bool), DbError> {
    match transport
        .send(method, url, headers.clone(), body.clone())
        .await
    {
        Ok(answer) => Ok((answer, false)),
        Err(_) => transport
            .send(method, url, headers, body)
            .await
            .map(|answer| (answer, true))
            .map_err(DbError::Unavailable),
    }
}

/// The namespace of the region directory.
pub const DIRECTORY: &str = "directory";

/// A region's databases on one sqld.
pub struct SqldDatabases<T: Transport + Clone> {
    transport: T,
    settings: SqldSettings,
}

impl<T: Transport + Clone> SqldDatabases<T> {
    pub fn new(transport: T, settings: SqldSettings) -> Self {
        SqldDatabases {
            transport,
            settings,
        }
    }

    fn conn(&self, namespace: &str) -> HranaConn<T> {
        let (url, namespace) = match &self.settings.provider {
            Provider::Namespaces => (self.settings.url.clone(), Some(namespace.to_owned())),
            Provider::Turso(p) => (
                self.settings.url.replace(
                    NAME_PLACEHOLDER,
                    &super::turso::database_name(&p.region, namespace),
                ),
                None,
            ),
        };
        HranaConn::new(
            self.transport.clone(),
            Endpoint {
                url,
                namespace,
                auth_token: self.settings.auth_token.clone(),
            },
        )
    }

    /// The Platform API, for a Turso region with an admin URL.
    fn platform(&self) -> Option<Result<PlatformApi<'_, T>, DbError>> {
        let Provider::Turso(placement) = &self.settings.provider else {
            return None;
        };
        Some(match &self.settings.admin_url {
            Some(url) => Ok(PlatformApi {
                transport: &self.transport,
                url,
                token: self.settings.admin_token.as_deref(),
                placement,
            }),
            None => Err(DbError::Other(
                "this connection to Turso has no Platform API".into(),
            )),
        })
    }

    /// Calls the admin API; returns the status and body, and whether the
    /// call was sent twice (the first got no answer).
    async fn admin(
        &self,
        method: &'static str,
        path: &str,
    ) -> Result<(u16, Vec<u8>, bool), DbError> {
        let Some(admin) = &self.settings.admin_url else {
            return Err(DbError::Other(
                "this connection to sqld has no admin API".into(),
            ));
        };
        let url = format!("{}{path}", admin.trim_end_matches('/'));
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(t) = &self.settings.admin_token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let body = if method == "POST" {
            b"{}".to_vec()
        } else {
            Vec::new()
        };
        let ((status, body), resent) =
            send_admin_call(&self.transport, method, &url, headers, body).await?;
        if status >= 500 {
            return Err(DbError::Unavailable(format!(
                "sqld admin answered {status}"
            )));
        }
        Ok((status, body, resent))
    }

    /// Creates a namespace (a database, on Turso); one that exists already
    /// is fine when `existing_ok`.
    async fn create_namespace(&self, ns: &str, existing_ok: bool) -> Result<(), DbError> {
        if let Some(api) = self.platform() {
            return api?.create(ns, existing_ok).await;
        }
        let (status, body, resent) = self
            .admin("POST", &format!("/v1/namespaces/{ns}/create"))
            .await?;
        match status {
            200..=299 => Ok(()),
            // A resent creation finds what the first one made.
            _ if (existing_ok || resent)
                && String::from_utf8_lossy(&body).contains("already exists") =>
            {
                Ok(())
            }
            s => Err(DbError::Other(format!(
                "sqld admin answered {s} creating a namespace"
            ))),
        }
    }

    /// The region directory. Not created here: that is an admin call, which
    /// a host making an instance per request would pay on every request. A
    /// missing directory shows as [`DbError::NotFound`] on its first
    /// statement, and the application calls [`Self::create_directory`].
    pub fn directory(&self) -> HranaConn<T> {
        self.conn(DIRECTORY)
    }

    /// Creates the directory's namespace unless it exists. Without an admin
    /// API nothing is created: a missing directory shows as
    /// [`DbError::NotFound`] on its first statement.
    pub async fn create_directory(&self) -> Result<(), DbError> {
        if self.settings.admin_url.is_none() {
            return Ok(());
        }
        self.create_namespace(DIRECTORY, true).await
    }

    /// An existing clinic's database. (A missing namespace shows as
    /// [`DbError::NotFound`] on its first statement.)
    pub fn open_clinic(&self, clinic: &ClinicId) -> HranaConn<T> {
        self.conn(clinic.as_str())
    }

    /// Creates a clinic's namespace and opens it.
    pub async fn create_clinic(&self, clinic: &ClinicId) -> Result<HranaConn<T>, DbError> {
        self.create_namespace(clinic.as_str(), false).await?;
        Ok(self.conn(clinic.as_str()))
    }

    /// Deletes a clinic's namespace and its files; one already gone is fine.
    pub async fn drop_clinic(&self, clinic: &ClinicId) -> Result<(), DbError> {
        if let Some(api) = self.platform() {
            return api?.delete(clinic.as_str()).await;
        }
        let (status, _, _) = self
            .admin("DELETE", &format!("/v1/namespaces/{}", clinic.as_str()))
            .await?;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(DbError::Other(format!(
                "sqld admin answered {s} deleting a namespace"
            ))),
        }
    }
}

/// What a wasm platform gives besides its HTTP transport: the wall clock and
/// a CSPRNG.
#[derive(Clone, Copy)]
pub struct Platform {
    /// Seconds since the Unix epoch, UTC.
    pub now: fn() -> i64,
    /// Fills the buffer with cryptographically secure random bytes.
    pub fill_random: fn(&mut [u8]),
}

/// The [`Host`] of the wasm hosts (the Worker, the Spin component): a
/// region's databases on its sqld through the platform's [`Transport`], the
/// region's root keys, the platform's clock and randomness, and its
/// checkpoint store where it has one (`C`).
pub struct SqldHost<T: Transport + Clone, C: CheckpointStore = NoCheckpoints> {
    databases: SqldDatabases<T>,
    root: std::sync::Arc<RootKeyring>,
    platform: Platform,
    checkpoints: Option<C>,
}

impl<T: Transport + Clone> SqldHost<T> {
    pub fn new(
        transport: T,
        settings: SqldSettings,
        root: RootKeyring,
        platform: Platform,
    ) -> Self {
        SqldHost {
            databases: SqldDatabases::new(transport, settings),
            root: std::sync::Arc::new(root),
            platform,
            checkpoints: None,
        }
    }
}

impl<T: Transport + Clone, C: CheckpointStore> SqldHost<T, C> {
    /// The same host, keeping the region's checkpoints in `store`.
    pub fn with_checkpoints<S: CheckpointStore>(self, store: Option<S>) -> SqldHost<T, S> {
        SqldHost {
            databases: self.databases,
            root: self.root,
            platform: self.platform,
            checkpoints: store,
        }
    }
}

impl<T: Transport + Clone + 'static, C: CheckpointStore> Host for SqldHost<T, C> {
    type Conn = HranaConn<T>;
    type Checkpoints = C;

    fn checkpoints(&self) -> Option<&C> {
        self.checkpoints.as_ref()
    }

    async fn directory(&self) -> Result<Self::Conn, DbError> {
        Ok(self.databases.directory())
    }

    async fn create_directory(&self) -> Result<(), DbError> {
        self.databases.create_directory().await
    }

    async fn open_clinic(&self, clinic: &ClinicId) -> Result<Self::Conn, DbError> {
        Ok(self.databases.open_clinic(clinic))
    }

    async fn create_clinic(&self, clinic: &ClinicId) -> Result<Self::Conn, DbError> {
        self.databases.create_clinic(clinic).await
    }

    async fn drop_clinic(&self, clinic: &ClinicId) -> Result<(), DbError> {
        self.databases.drop_clinic(clinic).await
    }

    /// sqld refuses `PRAGMA wal_checkpoint` over Hrana and keeps past pages
    /// in its replication log (`wallog`): nothing this host can scrub.
    async fn scrub(&self, _clinic: Option<&ClinicId>) -> Result<bool, DbError> {
        Ok(false)
    }

    fn root_keys(&self) -> std::sync::Arc<RootKeyring> {
        self.root.clone()
    }

    fn now(&self) -> i64 {
        (self.platform.now)()
    }

    fn fill_random(&self, buf: &mut [u8]) {
        (self.platform.fill_random)(buf)
    }
}
