//! The key hierarchy: a region root key (KEK) wraps each clinic's random
//! 256-bit data key (DEK); purpose keys are derived with HKDF-SHA256.
//!
//! A wrapped key is bound (as AES-GCM associated data) to its region, clinic
//! and version, so a wrapped key copied to another clinic does not unwrap.
//!
//! A region holds its root key versions as a [`RootKeyring`]: the newest
//! wraps, every version still held unwraps what it wrapped (each wrapped key
//! names its root version), so the root key can be rotated online: add a
//! version, re-wrap every row, then retire the old one.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{push_lp, CryptoError};

const WRAP_FORMAT: u8 = 1;

/// 256 bits of key material, wiped on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyBytes([u8; 32]);

impl KeyBytes {
    pub fn new(bytes: [u8; 32]) -> Self {
        KeyBytes(bytes)
    }
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes(<redacted>)")
    }
}

/// HKDF-SHA256 of `ikm` for one purpose (`info`).
pub fn derive(ikm: &KeyBytes, info: &[u8]) -> KeyBytes {
    let hk = Hkdf::<Sha256>::new(Some(b"amanah.v1"), ikm.expose());
    let mut out = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    hk.expand(info, &mut out).expect("32-byte HKDF output");
    KeyBytes(out)
}

/// A region's root key (KEK) with its version.
#[derive(Debug, Clone)]
pub struct RootKey {
    pub region: String,
    pub version: u32,
    key: KeyBytes,
}

/// A clinic data key, unwrapped.
#[derive(Debug, Clone)]
pub struct DataKey {
    pub version: u32,
    pub key: KeyBytes,
}

fn wrap_aad(region: &str, clinic: &str, dek_version: u32) -> Vec<u8> {
    let mut aad = b"amanah.dek.v1".to_vec();
    push_lp(&mut aad, region.as_bytes());
    push_lp(&mut aad, clinic.as_bytes());
    aad.extend_from_slice(&dek_version.to_be_bytes());
    aad
}

impl RootKey {
    pub fn new(region: &str, version: u32, key: KeyBytes) -> Self {
        RootKey {
            region: region.to_owned(),
            version,
            key,
        }
    }

    /// Reads a key in its text form, `v<version>:<64 hex digits>` (the key
    /// file of the native host, the `ROOT_KEY` secret of the Worker).
    pub fn parse(region: &str, text: &str) -> Result<RootKey, &'static str> {
        let (version, hex) = text
            .trim()
            .split_once(':')
            .ok_or("not a root key (expected v<version>:<hex>)")?;
        let version: u32 = version
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .ok_or("root key has no version")?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("root key is not 256 bits of hex")?;
        Ok(RootKey::new(region, version, KeyBytes(bytes)))
    }

    /// The text form [`RootKey::parse`] reads.
    pub fn encode(version: u32, key: &[u8; 32]) -> String {
        format!("v{version}:{}", data_encoding::HEXLOWER.encode(key))
    }

    /// A key for one purpose of the whole region (token signing, throttling).
    pub fn derive(&self, purpose: &str) -> KeyBytes {
        derive(
            &self.key,
            format!("region:{}:{purpose}", self.region).as_bytes(),
        )
    }

    /// Wraps a clinic data key: `[format][root version][nonce][ciphertext+tag]`.
    pub fn wrap(&self, clinic: &str, dek: &DataKey, nonce: [u8; 12]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(self.key.expose().into());
        let aad = wrap_aad(&self.region, clinic, dek.version);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: dek.key.expose(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let mut out = Vec::with_capacity(1 + 4 + 12 + ct.len());
        out.push(WRAP_FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// The text form of this key, for the key file (secret: never logged).
    pub fn to_text(&self) -> String {
        Self::encode(self.version, self.key.expose())
    }

    /// Unwraps a clinic data key wrapped by [`RootKey::wrap`].
    pub fn unwrap(
        &self,
        clinic: &str,
        dek_version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        if wrapped.len() != 1 + 4 + 12 + 32 + 16 || wrapped[0] != WRAP_FORMAT {
            return Err(CryptoError);
        }
        let root_version = u32::from_be_bytes(wrapped[1..5].try_into().map_err(|_| CryptoError)?);
        if root_version != self.version {
            return Err(CryptoError);
        }
        let cipher = Aes256Gcm::new(self.key.expose().into());
        let aad = wrap_aad(&self.region, clinic, dek_version);
        let mut pt = cipher
            .decrypt(
                Nonce::from_slice(&wrapped[5..17]),
                Payload {
                    msg: &wrapped[17..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&pt);
        pt.zeroize();
        Ok(DataKey {
            version: dek_version,
            key: KeyBytes(key),
        })
    }
}

/// The root key version a wrapped key names in its header (unauthenticated:
/// it only chooses which key to try).
pub fn wrapped_root_version(wrapped: &[u8]) -> Option<u32> {
    if wrapped.len() < 5 || wrapped[0] != WRAP_FORMAT {
        return None;
    }
    Some(u32::from_be_bytes(wrapped[1..5].try_into().ok()?))
}

/// Whose key the region key is, in its wrapping's associated data: not a
/// clinic id (those are `<region>_…`), so it cannot stand in for a clinic's.
pub const REGION_KEY_OWNER: &str = "@region";

/// Every root key version a region holds, oldest first; never empty. The
/// newest wraps; each held version unwraps what it wrapped.
#[derive(Debug, Clone)]
pub struct RootKeyring {
    keys: Vec<RootKey>,
}

impl RootKeyring {
    /// One version.
    pub fn single(key: RootKey) -> Self {
        RootKeyring { keys: vec![key] }
    }

    /// Several versions of one region, each version once.
    pub fn new(mut keys: Vec<RootKey>) -> Result<Self, &'static str> {
        keys.sort_by_key(|k| k.version);
        let first = keys.first().ok_or("no root key")?;
        if keys.iter().any(|k| k.region != first.region) {
            return Err("root keys of different regions");
        }
        if keys.windows(2).any(|w| w[0].version == w[1].version) {
            return Err("a root key version appears twice");
        }
        if keys.iter().any(|k| k.version == 0) {
            return Err("root key versions start at 1");
        }
        Ok(RootKeyring { keys })
    }

    /// Reads the text form: one or more `v<version>:<64 hex digits>`,
    /// separated by newlines, spaces or commas (the key file; the `ROOT_KEY`
    /// secret of the wasm hosts).
    pub fn parse(region: &str, text: &str) -> Result<Self, &'static str> {
        let keys = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| RootKey::parse(region, t))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The text form [`RootKeyring::parse`] reads, one version a line.
    pub fn to_text(&self) -> String {
        self.keys.iter().map(|k| k.to_text() + "\n").collect()
    }

    pub fn region(&self) -> &str {
        &self.current().region
    }

    /// The newest version: the one that wraps.
    pub fn current(&self) -> &RootKey {
        // `new` and `single` never make an empty ring.
        self.keys.last().expect("a keyring is never empty")
    }

    pub fn get(&self, version: u32) -> Option<&RootKey> {
        self.keys.iter().find(|k| k.version == version)
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.version).collect()
    }

    /// Every held version, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &RootKey> {
        self.keys.iter()
    }

    /// Wraps under the newest version.
    pub fn wrap(&self, clinic: &str, dek: &DataKey, nonce: [u8; 12]) -> Vec<u8> {
        self.current().wrap(clinic, dek, nonce)
    }

    /// Unwraps with the version the wrapped key names; a version not held
    /// (retired, or newer than this ring) fails like a bad ciphertext.
    pub fn unwrap(
        &self,
        clinic: &str,
        dek_version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        let version = wrapped_root_version(wrapped).ok_or(CryptoError)?;
        self.get(version)
            .ok_or(CryptoError)?
            .unwrap(clinic, dek_version, wrapped)
    }

    /// This ring with `key` added as the next version.
    pub fn with_next(&self, key: KeyBytes) -> Self {
        let current = self.current();
        let mut keys = self.keys.clone();
        keys.push(RootKey::new(&current.region, current.version + 1, key));
        RootKeyring { keys }
    }

    /// This ring without `version`; the newest cannot be removed.
    pub fn without(&self, version: u32) -> Result<Self, &'static str> {
        if version == self.current().version {
            return Err("the newest root key version wraps; it cannot be retired");
        }
        if self.get(version).is_none() {
            return Err("no such root key version");
        }
        let keys = self
            .keys
            .iter()
            .filter(|k| k.version != version)
            .cloned()
            .collect();
        Ok(RootKeyring { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> RootKey {
        RootKey::new("pk", 1, KeyBytes::new([7; 32]))
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let dek = DataKey {
            version: 1,
            key: KeyBytes::new([9; 32]),
        };
        let w = root().wrap("pk_a", &dek, [1; 12]);
        assert_eq!(root().unwrap("pk_a", 1, &w).unwrap().key.expose(), &[9; 32]);
        // Bound to clinic, version, region and root key.
        assert!(root().unwrap("pk_b", 1, &w).is_err());
        assert!(root().unwrap("pk_a", 2, &w).is_err());
        assert!(RootKey::new("ae", 1, KeyBytes::new([7; 32]))
            .unwrap("pk_a", 1, &w)
            .is_err());
        assert!(RootKey::new("pk", 1, KeyBytes::new([8; 32]))
            .unwrap("pk_a", 1, &w)
            .is_err());
        let mut t = w.clone();
        t[20] ^= 1;
        assert!(root().unwrap("pk_a", 1, &t).is_err());
        assert!(root().unwrap("pk_a", 1, &w[..w.len() - 1]).is_err());
    }

    #[test]
    fn a_keyring_wraps_with_the_newest_and_unwraps_with_the_named_version() {
        let dek = DataKey {
            version: 3,
            key: KeyBytes::new([9; 32]),
        };
        let one = RootKeyring::single(root());
        let old = one.wrap("pk_a", &dek, [1; 12]);
        let two = one.with_next(KeyBytes::new([8; 32]));
        assert_eq!(two.versions(), [1, 2]);
        assert_eq!(two.current().version, 2);
        let new = two.wrap("pk_a", &dek, [2; 12]);
        assert_eq!(wrapped_root_version(&old), Some(1));
        assert_eq!(wrapped_root_version(&new), Some(2));
        assert_eq!(two.unwrap("pk_a", 3, &old).unwrap().key.expose(), &[9; 32]);
        assert_eq!(two.unwrap("pk_a", 3, &new).unwrap().key.expose(), &[9; 32]);
        // The old ring does not know v2; the retired ring no longer opens v1.
        assert!(one.unwrap("pk_a", 3, &new).is_err());
        let retired = two.without(1).unwrap();
        assert!(retired.unwrap("pk_a", 3, &old).is_err());
        assert!(retired.unwrap("pk_a", 3, &new).is_ok());
        assert!(two.without(2).is_err(), "the newest stays");
        assert!(two.without(7).is_err());
        // A header naming v1 over v2's ciphertext does not open.
        let mut forged = new.clone();
        forged[1..5].copy_from_slice(&1u32.to_be_bytes());
        assert!(two.unwrap("pk_a", 3, &forged).is_err());
    }

    #[test]
    fn keyring_text_round_trip_and_refusals() {
        let ring = RootKeyring::single(root()).with_next(KeyBytes::new([8; 32]));
        let text = ring.to_text();
        assert_eq!(text.lines().count(), 2);
        let back = RootKeyring::parse("pk", &text).unwrap();
        assert_eq!(back.versions(), [1, 2]);
        assert_eq!(
            back.current().derive("x").expose(),
            ring.current().derive("x").expose()
        );
        let commas = text.trim().replace('\n', ",");
        assert_eq!(
            RootKeyring::parse("pk", &commas).unwrap().versions(),
            [1, 2]
        );
        let v1 = RootKey::encode(1, &[7; 32]);
        assert!(RootKeyring::parse("pk", &format!("{v1},{v1}")).is_err());
        assert!(RootKeyring::parse("pk", "").is_err());
        assert!(RootKeyring::parse("pk", &format!("{v1},v2:00")).is_err());
        assert!(RootKeyring::parse("pk", "v0:".to_owned().as_str()).is_err());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_region() {
        let a = root().derive("jwt");
        let b = root().derive("throttle");
        let c = RootKey::new("ae", 1, KeyBytes::new([7; 32])).derive("jwt");
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
        assert_eq!(format!("{a:?}"), "KeyBytes(<redacted>)");
    }
}
