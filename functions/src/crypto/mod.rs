//! Cryptography, one rule per module: key hierarchy ([`keys`]), field
//! encryption ([`field`]), blind indexes ([`blind`]), passwords
//! ([`password`]) and TOTP ([`totp`]). Functions here are pure: callers pass
//! in the randomness they need, so every result is testable.

pub mod blind;
pub mod field;
pub mod keys;
pub mod keysets;
pub mod password;
pub mod totp;

/// Appends `part` with a length prefix, so that concatenations are unambiguous.
pub(crate) fn push_lp(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u32).to_be_bytes());
    out.extend_from_slice(part);
}

/// Why a ciphertext was refused. Deliberately uninformative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ciphertext rejected")]
pub struct CryptoError;
