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
//! It is made on first need by whichever process needs it first
//! ([`crate::App::region_key`]). Two at once make one row: the second
//! insert is ignored and both read it back.

use crate::crypto::keys::{self, DataKey, KeyBytes};
use crate::crypto::keysets::PlatformKeys;

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
