//! Clinic databases as namespaces of a libSQL server (`sqld
//! --enable-namespaces`): one namespace per clinic, created at sign-up through
//! sqld's admin API, and the namespace `directory` for the region directory.
//! Statements go over Hrana ([`super::hrana`]) through the host's
//! [`Transport`]; the namespace travels in the `x-namespace-bin` header.
//!
//! The admin API must never be public: locally it listens on loopback, in
//! production it sits behind an authenticated tunnel (`admin_token`).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::host::DbError;
use crate::ids::ClinicId;

use super::hrana::{Endpoint, HranaConn, Transport};

/// Where a region's sqld is and how to reach it.
#[derive(Clone)]
pub struct SqldSettings {
    /// Base URL of the server's HTTP (Hrana) listener.
    pub url: String,
    pub auth_token: Option<String>,
    /// Base URL of the admin API (namespace creation).
    pub admin_url: String,
    pub admin_token: Option<String>,
}

/// The namespace of the region directory.
pub const DIRECTORY: &str = "directory";

/// A region's databases on one sqld.
pub struct SqldDatabases<T: Transport + Clone> {
    transport: T,
    settings: SqldSettings,
    directory_created: AtomicBool,
}

impl<T: Transport + Clone> SqldDatabases<T> {
    pub fn new(transport: T, settings: SqldSettings) -> Self {
        SqldDatabases {
            transport,
            settings,
            directory_created: AtomicBool::new(false),
        }
    }

    fn conn(&self, namespace: &str) -> HranaConn<T> {
        HranaConn::new(
            self.transport.clone(),
            Endpoint {
                url: self.settings.url.clone(),
                namespace: Some(namespace.to_owned()),
                auth_token: self.settings.auth_token.clone(),
            },
        )
    }

    /// Calls the admin API; returns the status and body.
    async fn admin(&self, method: &'static str, path: &str) -> Result<(u16, Vec<u8>), DbError> {
        let url = format!("{}{path}", self.settings.admin_url.trim_end_matches('/'));
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(t) = &self.settings.admin_token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let body = if method == "POST" {
            b"{}".to_vec()
        } else {
            Vec::new()
        };
        let (status, body) = self
            .transport
            .send(method, &url, headers, body)
            .await
            .map_err(DbError::Unavailable)?;
        if status >= 500 {
            return Err(DbError::Unavailable(format!(
                "sqld admin answered {status}"
            )));
        }
        Ok((status, body))
    }

    /// Creates a namespace; one that exists already is fine when `existing_ok`.
    async fn create_namespace(&self, ns: &str, existing_ok: bool) -> Result<(), DbError> {
        let (status, body) = self
            .admin("POST", &format!("/v1/namespaces/{ns}/create"))
            .await?;
        match status {
            200..=299 => Ok(()),
            _ if existing_ok && String::from_utf8_lossy(&body).contains("already exists") => Ok(()),
            s => Err(DbError::Other(format!(
                "sqld admin answered {s} creating a namespace"
            ))),
        }
    }

    /// The region directory, created on first use.
    pub async fn directory(&self) -> Result<HranaConn<T>, DbError> {
        if !self.directory_created.load(Ordering::Acquire) {
            self.create_namespace(DIRECTORY, true).await?;
            self.directory_created.store(true, Ordering::Release);
        }
        Ok(self.conn(DIRECTORY))
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
        let (status, _) = self
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
