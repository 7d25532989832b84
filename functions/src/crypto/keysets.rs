//! The key sets fields are sealed and indexed with: a clinic's (every
//! version of its data key: the current one seals and makes new search
//! terms, every one held opens and is searched), and the platform's own
//! (derived from the region key, for staff and access requests).

use super::blind::BlindIndex;
use super::field::FieldCipher;
use super::keys::DataKey;
use crate::ids::ClinicId;

/// A clinic's keys for this request.
pub struct ClinicKeys {
    /// Seals under the current data key, opens under every version held.
    pub cipher: FieldCipher,
    /// Blind index of the current version: what writes store.
    pub blind: BlindIndex,
    /// Blind indexes of every version held, the current one first: what
    /// lookups ask for. After a rotation the sweep rebuilds every term under
    /// the current version, but a request that loaded the old keys just
    /// before the rotation may still write one old term after the sweep
    /// passed; asking under every version finds that patient too (a clinic
    /// holds a handful of versions, so a lookup costs a few more tokens).
    pub search: Vec<BlindIndex>,
}

impl ClinicKeys {
    /// The key set of `keys`; `None` when its current version is missing.
    pub fn new(clinic: &ClinicId, keys: &DataKeys) -> Option<Self> {
        let current = keys.current()?;
        let search = std::iter::once(current)
            .chain(
                keys.keys
                    .iter()
                    .rev()
                    .filter(|k| k.version != current.version),
            )
            .map(BlindIndex::new)
            .collect();
        Some(ClinicKeys {
            cipher: FieldCipher::with_versions(clinic.as_str(), current, &keys.keys),
            blind: BlindIndex::new(current),
            search,
        })
    }
}

/// A clinic's data keys, unwrapped: every version it holds, oldest first.
/// The current one seals; older ones still open what they sealed (audit
/// entries forever, other fields until the sweep re-seals them).
pub struct DataKeys {
    pub keys: Vec<DataKey>,
    /// The version that seals.
    pub current: u32,
}

impl DataKeys {
    /// The version that seals, if held.
    pub fn current(&self) -> Option<&DataKey> {
        self.get(self.current)
    }

    pub fn get(&self, version: u32) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.version == version)
    }
}

/// The platform's field cipher and blind index for one region.
pub struct PlatformKeys {
    pub cipher: FieldCipher,
    pub blind: BlindIndex,
}

impl PlatformKeys {
    pub fn new(key: &DataKey) -> Self {
        PlatformKeys {
            cipher: FieldCipher::new("platform", key),
            blind: BlindIndex::new(key),
        }
    }
}
