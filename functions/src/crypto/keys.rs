//! The key hierarchy: a region root key (KEK) wraps each clinic's random
//! 256-bit data key (DEK); purpose keys are derived with HKDF-SHA256.
//!
//! A wrapped key is bound (as AES-GCM associated data) to its region, clinic
//! and version, so a wrapped key copied to another clinic does not unwrap.

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
    fn derived_keys_differ_by_purpose_and_region() {
        let a = root().derive("jwt");
        let b = root().derive("throttle");
        let c = RootKey::new("ae", 1, KeyBytes::new([7; 32])).derive("jwt");
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
        assert_eq!(format!("{a:?}"), "KeyBytes(<redacted>)");
    }
}
