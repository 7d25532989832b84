//! Tenancy: which database a clinic's request touches, and with which keys.
//!
//! - The region directory, and each clinic's own database, opened through
//!   the host. A database's schema is checked on its first use in this
//!   instance without a round trip of its own (a [`store::schema_guard`]
//!   rides with the first statement); one found behind is migrated and the
//!   request runs again ([`crate::handle`]).
//! - A clinic's data keys: its state in the directory and every version of
//!   its data key, unwrapped by the region's root keys. A purged or unknown
//!   clinic is not found.
//! - The clinic's clock: the host's, plus the clinic's test offset when
//!   test hooks are on.
//! - The region key ([`crate::region_key`]): unwrapped once per instance,
//!   made on first need.

use std::sync::atomic::Ordering;

use crate::app::App;
use crate::crypto::keys::{DataKey, KeyBytes, RootKeyring, REGION_KEY_OWNER};
use crate::crypto::keysets::{ClinicKeys, DataKeys};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, DbError, Host, Row};
use crate::ids::ClinicId;
use crate::records::directory::{clinic_keys, region_keys, test_clock};
use crate::region_key::RegionKey;
use crate::store::{self, schema, Statement};

/// What the directory says of a clinic that can be opened.
pub(crate) struct ClinicState {
    /// Set while the clinic is scheduled for deletion.
    pub purge_after: Option<i64>,
}

/// A clinic whose current data key version is not among its keys.
pub(crate) fn missing_current() -> ApiError {
    ApiError::internal("the clinic's current data key is missing")
}

/// The clinic's keys opened from its data keys; the current version
/// missing is an internal error.
pub(crate) fn open_keys(clinic: &ClinicId, keys: &DataKeys) -> ApiResult<ClinicKeys> {
    ClinicKeys::new(clinic, keys).ok_or_else(missing_current)
}

impl<H: Host> App<H> {
    /// The region directory. The first use in this instance queues a
    /// [`store::schema_guard`] ahead of the first statement (no round trip of
    /// its own); a failing guard makes [`App::handle`] migrate and run the
    /// request again.
    pub(crate) async fn directory(&self) -> ApiResult<H::Conn> {
        let dir = self.host.directory().await?;
        if !self.schemas.directory_ready.load(Ordering::Acquire) {
            match dir
                .execute_later(&store::schema_guard(schema::directory()), vec![])
                .await
            {
                Ok(()) => {}
                // A host that runs queued statements at once (the native
                // one) answers here: migrate now.
                Err(e) if store::schema_behind(&e) => self.migrate_directory(&dir).await?,
                Err(e) => return Err(e.into()),
            }
            self.schemas.directory_ready.store(true, Ordering::Release);
        }
        Ok(dir)
    }

    /// Creates the directory if needed and brings its schema up to date.
    pub(crate) async fn migrate_directory(&self, dir: &H::Conn) -> ApiResult<()> {
        self.host.create_directory().await?;
        store::migrate(dir, schema::directory()).await?;
        self.schemas.directory_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The directory, its schema brought up to date at once (out of the
    /// request path: jobs and operator commands).
    pub(crate) async fn ops_directory(&self) -> ApiResult<H::Conn> {
        let dir = self.host.directory().await?;
        self.migrate_directory(&dir).await?;
        Ok(dir)
    }

    /// Opens (or creates) a clinic database. A new one is migrated at once;
    /// an existing one gets the schema guard, as the directory does, on its
    /// first use in this instance (`eager`: migrated at once instead).
    pub(crate) async fn clinic_conn(
        &self,
        clinic: &ClinicId,
        create: bool,
        eager: bool,
    ) -> ApiResult<H::Conn> {
        let conn = if create {
            self.host.create_clinic(clinic).await?
        } else {
            match self.host.open_clinic(clinic).await {
                Err(DbError::NotFound) => return Err(ApiError::not_found()),
                other => other?,
            }
        };
        let known = self
            .schemas
            .migrated
            .lock()
            .map(|m| m.contains(clinic.as_str()))
            .unwrap_or(false);
        if !known {
            if create || eager {
                store::migrate(&conn, schema::clinic()).await?;
            } else {
                match conn
                    .execute_later(&store::schema_guard(schema::clinic()), vec![])
                    .await
                {
                    Ok(()) => {}
                    Err(e) if store::schema_behind(&e) => {
                        store::migrate(&conn, schema::clinic()).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if let Ok(mut m) = self.schemas.migrated.lock() {
                m.insert(clinic.as_str().to_owned());
            }
        }
        Ok(conn)
    }

    /// After a schema guard failed: forgets what this instance believed and
    /// migrates the directory and the request's clinic.
    pub(crate) async fn recover_schema(&self, clinic: Option<&ClinicId>) -> ApiResult<()> {
        self.schemas.directory_ready.store(false, Ordering::Release);
        let dir = self.host.directory().await?;
        self.migrate_directory(&dir).await?;
        if let Some(clinic) = clinic {
            self.forget_clinic(clinic);
            self.clinic_conn(clinic, false, true).await?;
        }
        Ok(())
    }

    /// Forgets what this instance knows of a purged clinic's database.
    pub(crate) fn forget_clinic(&self, clinic: &ClinicId) {
        if let Ok(mut m) = self.schemas.migrated.lock() {
            m.remove(clinic.as_str());
        }
    }

    /// A clinic's state in the directory and its keys, unwrapped by the
    /// region's root key. A purged or unknown clinic is not found.
    pub(crate) async fn clinic_keys(
        &self,
        clinic: &ClinicId,
    ) -> ApiResult<(ClinicState, ClinicKeys)> {
        let (state, keys) = self.data_keys(clinic).await?;
        Ok((state, open_keys(clinic, &keys)?))
    }

    /// A clinic's state and every version of its data key, unwrapped by the
    /// region's root keys. A purged or unknown clinic is not found.
    pub(crate) async fn data_keys(&self, clinic: &ClinicId) -> ApiResult<(ClinicState, DataKeys)> {
        let (keys, _) = self.data_keys_with(clinic, Vec::new()).await?;
        keys
    }

    /// [`App::data_keys`] with other reads of the directory in the same
    /// round trip (`with`): the keys (or why not), and each one's rows.
    pub(crate) async fn data_keys_with(
        &self,
        clinic: &ClinicId,
        with: Vec<Statement>,
    ) -> ApiResult<(ApiResult<(ClinicState, DataKeys)>, Vec<Vec<Row>>)> {
        let dir = self.directory().await?;
        let n = with.len();
        let mut statements = vec![clinic_keys::held_query(clinic)];
        statements.extend(with);
        let mut rows = if n == 0 {
            let (sql, params) = statements.remove(0);
            vec![dir.query(&sql, params).await?]
        } else {
            dir.query_many(statements).await?
        };
        let held = rows.remove(0);
        rows.resize_with(n, Vec::new);
        Ok((self.unwrap_held(clinic, &held), rows))
    }

    /// The clinic's state and keys from the rows of
    /// [`clinic_keys::held_query`].
    fn unwrap_held(&self, clinic: &ClinicId, rows: &[Row]) -> ApiResult<(ClinicState, DataKeys)> {
        let held = clinic_keys::held_from_rows(rows)?.ok_or_else(ApiError::not_found)?;
        let purge_after = match held.status.as_str() {
            "active" => None,
            "deleting" => held.purge_after,
            _ => return Err(ApiError::not_found()),
        };
        let current = clinic_keys::version(held.current)?;
        let ring = self.host.root_keys();
        let mut keys = Vec::with_capacity(held.keys.len());
        for (version, wrapped) in &held.keys {
            let owned = crate::crypto::keys::wrapped_root_version(wrapped)
                .is_some_and(|v| ring.get(v).is_some());
            if !owned {
                return Err(ApiError::internal(
                    "clinic key wrapped by a root key version this host does not hold",
                ));
            }
            keys.push(ring.unwrap(clinic.as_str(), clinic_keys::version(*version)?, wrapped)?);
        }
        let keys = DataKeys { keys, current };
        keys.current().ok_or_else(missing_current)?;
        Ok((ClinicState { purge_after }, keys))
    }

    /// Seconds since the epoch as a clinic sees them: the host's clock, plus
    /// the clinic's test offset when test hooks are on.
    pub(crate) async fn clinic_now(&self, clinic: &ClinicId) -> ApiResult<i64> {
        let now = self.host.now();
        if !self.config.test_hooks {
            return Ok(now);
        }
        Ok(now + test_clock::offset(&self.directory().await?, clinic).await?)
    }

    /// The region key, made on first need; kept for the life of this
    /// instance (a root rotation re-wraps it, its value never changes).
    pub async fn region_key(&self) -> ApiResult<std::sync::Arc<RegionKey>> {
        if let Some(k) = self.region_key_cache() {
            return Ok(k);
        }
        let dir = self.directory().await?;
        let ring = self.host.root_keys();
        let key = match load(&dir, &ring).await? {
            Some(k) => k,
            None => {
                let dek = DataKey {
                    version: 1,
                    key: KeyBytes::new(self.random()),
                };
                let wrapped = ring.wrap(REGION_KEY_OWNER, &dek, self.random());
                region_keys::insert_first(&dir, ring.current().version, wrapped, self.host.now())
                    .await?;
                load(&dir, &ring)
                    .await?
                    .ok_or_else(|| ApiError::internal("the region key was not stored"))?
            }
        };
        Ok(self.cache_region_key(key))
    }
}

/// Reads and unwraps the region key, if the directory has one.
async fn load<C: Conn>(dir: &C, ring: &RootKeyring) -> ApiResult<Option<RegionKey>> {
    let Some((version, _, wrapped, _)) = region_keys::newest(dir).await? else {
        return Ok(None);
    };
    let version = u32::try_from(version)
        .map_err(|_| ApiError::internal("a region key version out of range"))?;
    let dek = ring
        .unwrap(REGION_KEY_OWNER, version, &wrapped)
        .map_err(|_| {
            ApiError::internal("the region key does not open under this region's root keys")
        })?;
    Ok(Some(RegionKey::new(ring.region(), version, dek.key)))
}
