//! Audit checkpoints: a chain's head (sequence number and hash) at a moment,
//! signed with the region's checkpoint key and kept outside the clinic's
//! database, so that a chain cut short or rewritten from the start (which
//! still links up by itself) no longer matches what was seen before.
//!
//! The key is Ed25519, derived from the region key ([`crate::region_key`]),
//! so the operator command that writes checkpoints needs no other secret,
//! whoever holds only the public key (an auditor) can check them, and a
//! root key rotation leaves it (and every checkpoint written) as it was.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

use crate::crypto::push_lp;
use crate::region_key::RegionKey;

/// Where a chain stood, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub region: String,
    /// The clinic id, or `platform` for the region's platform audit stream.
    pub chain: String,
    /// The number of entries the chain had (the last sequence number).
    pub seq: i64,
    /// Hex SHA-256 of entry `seq` (zeros for an empty chain).
    pub head: String,
    /// When it was taken, RFC 3339 UTC.
    pub at: String,
    /// The region key version the signing key was derived from.
    pub key_version: u32,
    /// Hex Ed25519 public key that signed it.
    pub public_key: String,
    /// Hex Ed25519 signature over the fields above.
    pub signature: String,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("signed by another key than this region's (region key v{0})")]
    OtherKey(u32),
    #[error("the signature does not match its contents (altered or forged)")]
    BadSignature,
}

/// The region's checkpoint signing key.
fn signing_key(key: &RegionKey) -> SigningKey {
    SigningKey::from_bytes(key.derive("audit-checkpoint").expose())
}

/// Hex of the public key that checks this region's checkpoints.
pub fn public_key(key: &RegionKey) -> String {
    data_encoding::HEXLOWER.encode(signing_key(key).verifying_key().as_bytes())
}

fn message(region: &str, chain: &str, seq: i64, head: &str, at: &str, version: u32) -> Vec<u8> {
    let mut m = b"amanah.checkpoint.v1".to_vec();
    push_lp(&mut m, region.as_bytes());
    push_lp(&mut m, chain.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    push_lp(&mut m, head.as_bytes());
    push_lp(&mut m, at.as_bytes());
    m.extend_from_slice(&version.to_be_bytes());
    m
}

impl Checkpoint {
    /// Signs where `chain` of `region`'s region stands.
    pub fn sign(region: &RegionKey, chain: &str, seq: i64, head: &str, at: &str) -> Checkpoint {
        let key = signing_key(region);
        let sig = key.sign(&message(
            region.region(),
            chain,
            seq,
            head,
            at,
            region.version(),
        ));
        Checkpoint {
            region: region.region().to_owned(),
            chain: chain.to_owned(),
            seq,
            head: head.to_owned(),
            at: at.to_owned(),
            key_version: region.version(),
            public_key: data_encoding::HEXLOWER.encode(key.verifying_key().as_bytes()),
            signature: data_encoding::HEXLOWER.encode(&sig.to_bytes()),
        }
    }

    /// Checks that this region's key signed exactly these contents.
    pub fn check(&self, region: &RegionKey) -> Result<(), CheckpointError> {
        let expected = signing_key(region).verifying_key();
        if self.key_version != region.version()
            || self.region != region.region()
            || self.public_key != data_encoding::HEXLOWER.encode(expected.as_bytes())
        {
            return Err(CheckpointError::OtherKey(self.key_version));
        }
        let sig = data_encoding::HEXLOWER
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or(CheckpointError::BadSignature)?;
        expected
            .verify(
                &message(
                    &self.region,
                    &self.chain,
                    self.seq,
                    &self.head,
                    &self.at,
                    self.key_version,
                ),
                &sig,
            )
            .map_err(|_| CheckpointError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::KeyBytes;

    fn root(k: u8) -> RegionKey {
        RegionKey::new("pk", 1, KeyBytes::new([k; 32]))
    }

    #[test]
    fn signed_checkpoints_check_and_any_change_is_refused() {
        let c = Checkpoint::sign(&root(1), "pk_abc", 42, "ab", "2026-12-02T10:00:00Z");
        assert_eq!(c.check(&root(1)), Ok(()));
        assert_eq!(c.public_key, public_key(&root(1)));
        let mut t = c.clone();
        t.seq = 41;
        assert_eq!(t.check(&root(1)), Err(CheckpointError::BadSignature));
        let mut t = c.clone();
        t.head = "cd".into();
        assert_eq!(t.check(&root(1)), Err(CheckpointError::BadSignature));
        let mut t = c.clone();
        t.chain = "pk_other".into();
        assert_eq!(t.check(&root(1)), Err(CheckpointError::BadSignature));
        // Signed again by somebody else's key: not this region's.
        let forged = Checkpoint::sign(&root(2), "pk_abc", 41, "cd", &c.at);
        assert_eq!(forged.check(&root(1)), Err(CheckpointError::OtherKey(1)));
        let mut t = forged;
        t.public_key = c.public_key.clone();
        assert_eq!(t.check(&root(1)), Err(CheckpointError::BadSignature));
    }
}
