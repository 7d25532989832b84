//! The region key: a random 256-bit key of the region, kept in the region's
//! directory only wrapped by the root key, exactly as a clinic's data key is.
//! The keys of the region's own records derive from it: the platform's field
//! cipher and blind index (staff, access requests, the platform audit
//! stream), the audit checkpoint signing key, and the keys backups of the
//! directory are sealed and authenticated with.
//!
//! Wrapped rather than derived from the root key, it survives a root key
//! rotation: the rotation re-wraps it like any clinic key, and the old root
//! version can then be retired without touching what the region key
//! protects (ciphertexts inside the hash-chained platform audit stream could
//! never be re-encrypted; checkpoints and backups already written stay
//! checkable). Session tokens and throttling counters are short-lived and
//! stay derived from the root keys (see [`crate::token`]).
//!
//! It is made on first need by whichever process needs it first. Two at
//! once make one row: the second insert is ignored and both read it back.

use crate::app::App;
use crate::crypto::keys::{self, DataKey, KeyBytes, RootKeyring, REGION_KEY_OWNER};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::platform::PlatformKeys;
use crate::records::directory::region_keys;

/// The region key, unwrapped, and what derives from it.
pub struct RegionKey {
    region: String,
    version: u32,
    key: KeyBytes,
    /// The platform's field cipher and blind index.
    pub platform: PlatformKeys,
}

impl std::fmt::Debug for RegionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegionKey({}, v{})", self.region, self.version)
    }
}

impl RegionKey {
    pub fn new(region: &str, version: u32, key: KeyBytes) -> Self {
        let platform_key = DataKey {
            version: 1,
            key: keys::derive(&key, format!("region:{region}:platform-fields").as_bytes()),
        };
        RegionKey {
            region: region.to_owned(),
            version,
            platform: PlatformKeys::new(&platform_key),
            key,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// A key for one purpose of the region's own records.
    pub fn derive(&self, purpose: &str) -> KeyBytes {
        keys::derive(
            &self.key,
            format!("region:{}:{purpose}", self.region).as_bytes(),
        )
    }
}

impl<H: Host> App<H> {
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
