//! Field encryption: every personal or clinical value is stored as AES-256-GCM
//! ciphertext whose associated data binds clinic, table, column and row id, so
//! a ciphertext moved to another row, column or clinic fails to decrypt.
//!
//! Each ciphertext names the data key version that sealed it. A cipher holds
//! every version of a clinic's key: it seals under the newest and opens each
//! value under the version it names, so a clinic key rotation needs no
//! flag day (old values open until the sweep re-seals them).
//!
//! Lengths do not show: before sealing, a value is framed with its length
//! and padded with zeros to a bucket ([`padded_len`]: 16 bytes, then the
//! next power of two), so that `female` and `male`, or two names of
//! similar length, seal to ciphertexts of one size (format 2, whose AAD
//! names the format: a value cannot be passed off as the other format).
//! Values sealed before padding (format 1) still open; the key sweep
//! re-seals them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::keys::DataKey;
use super::{push_lp, CryptoError};

/// Unpadded values, sealed before lengths were hidden: still opened.
const FORMAT_UNPADDED: u8 = 1;
/// Values framed with their length and padded to a bucket.
const FORMAT_PADDED: u8 = 2;
const HEADER: usize = 1 + 4 + 12;
/// The smallest bucket: every short value (an enum, a date, a phone) seals
/// to one size.
const MIN_BUCKET: usize = 16;

/// The size a value of `len` bytes is padded to, its 4-byte length frame
/// included: 16, then the next power of two.
pub fn padded_len(len: usize) -> usize {
    (len + 4).max(MIN_BUCKET).next_power_of_two()
}

fn pad(plaintext: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(padded_len(plaintext.len()));
    framed.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
    framed.extend_from_slice(plaintext);
    framed.resize(padded_len(plaintext.len()), 0);
    framed
}

fn unpad(mut framed: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    let len = framed
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(CryptoError)? as usize;
    if len > framed.len() - 4 || framed[4 + len..].iter().any(|b| *b != 0) {
        return Err(CryptoError);
    }
    framed.truncate(4 + len);
    framed.drain(..4);
    Ok(framed)
}

/// Whether a ciphertext predates padding (the sweep re-seals those).
pub fn unpadded(sealed: &[u8]) -> bool {
    sealed.first() == Some(&FORMAT_UNPADDED)
}

/// An encrypted column: where a ciphertext belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub table: &'static str,
    pub column: &'static str,
}

impl Field {
    pub const fn new(table: &'static str, column: &'static str) -> Self {
        Field { table, column }
    }
}

/// Encrypts and decrypts one clinic's fields.
pub struct FieldCipher {
    clinic: String,
    /// The version that seals.
    version: u32,
    /// Every version held, the sealing one among them.
    ciphers: Vec<(u32, Aes256Gcm)>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldCipher({}, v{})", self.clinic, self.version)
    }
}

/// The key version a ciphertext names in its header (unauthenticated: it
/// only chooses which key to try, or shows the sweep what to re-seal).
pub fn sealed_version(sealed: &[u8]) -> Option<u32> {
    if sealed.len() < HEADER || !matches!(sealed[0], FORMAT_UNPADDED | FORMAT_PADDED) {
        return None;
    }
    Some(u32::from_be_bytes(sealed[1..5].try_into().ok()?))
}

fn aad(format: u8, clinic: &str, field: Field, row: &str, version: u32) -> Vec<u8> {
    let mut aad = match format {
        FORMAT_UNPADDED => b"amanah.field.v1".to_vec(),
        _ => b"amanah.field.v2".to_vec(),
    };
    push_lp(&mut aad, clinic.as_bytes());
    push_lp(&mut aad, field.table.as_bytes());
    push_lp(&mut aad, field.column.as_bytes());
    push_lp(&mut aad, row.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl FieldCipher {
    pub fn new(clinic: &str, dek: &DataKey) -> Self {
        Self::with_versions(clinic, dek, &[])
    }

    /// Seals under `current`, opens under it and each of `older`.
    pub fn with_versions(clinic: &str, current: &DataKey, older: &[DataKey]) -> Self {
        let ciphers = std::iter::once(current)
            .chain(older.iter().filter(|k| k.version != current.version))
            .map(|k| (k.version, Aes256Gcm::new(k.key.expose().into())))
            .collect();
        FieldCipher {
            clinic: clinic.to_owned(),
            version: current.version,
            ciphers,
        }
    }

    /// The version new values are sealed under.
    pub fn version(&self) -> u32 {
        self.version
    }

    fn cipher(&self, version: u32) -> Option<&Aes256Gcm> {
        self.ciphers
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, c)| c)
    }

    /// `[format][key version][nonce][ciphertext+tag]`, the plaintext framed
    /// and padded to its bucket.
    pub fn seal(&self, field: Field, row: &str, plaintext: &[u8], nonce: [u8; 12]) -> Vec<u8> {
        self.seal_as(FORMAT_PADDED, field, row, &pad(plaintext), nonce)
    }

    /// `msg` sealed as it is, framed with `format` (which the AAD binds).
    fn seal_as(&self, format: u8, field: Field, row: &str, msg: &[u8], nonce: [u8; 12]) -> Vec<u8> {
        let aad = aad(format, &self.clinic, field, row, self.version);
        let ct = self
            .cipher(self.version)
            .expect("the sealing version is held")
            .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad: &aad })
            .expect("AES-GCM encryption of a field cannot fail");
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.push(format);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, field: Field, row: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER + 16 {
            return Err(CryptoError);
        }
        let version = sealed_version(sealed).ok_or(CryptoError)?;
        let cipher = self.cipher(version).ok_or(CryptoError)?;
        let format = sealed[0];
        let aad = aad(format, &self.clinic, field, row, version);
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&sealed[5..HEADER]),
                Payload {
                    msg: &sealed[HEADER..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError)?;
        match format {
            FORMAT_UNPADDED => Ok(plaintext),
            _ => unpad(plaintext),
        }
    }

    /// A value sealed the old way, without padding (tests of the sweep's
    /// re-sealing, and of reading what older versions wrote).
    #[doc(hidden)]
    pub fn seal_unpadded(
        &self,
        field: Field,
        row: &str,
        plaintext: &[u8],
        nonce: [u8; 12],
    ) -> Vec<u8> {
        self.seal_as(FORMAT_UNPADDED, field, row, plaintext, nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::KeyBytes;

    const NAME: Field = Field::new("patients", "name");
    const PHONE: Field = Field::new("patients", "phone");

    fn dek(version: u32, key: u8) -> DataKey {
        DataKey {
            version,
            key: KeyBytes::new([key; 32]),
        }
    }

    fn cipher(clinic: &str, key: u8) -> FieldCipher {
        FieldCipher::new(clinic, &dek(1, key))
    }

    #[test]
    fn a_rotated_cipher_seals_under_the_new_version_and_opens_both() {
        let old = cipher("pk_a", 3);
        let ct1 = old.seal(NAME, "pat_1", b"Ayesha", [5; 12]);
        let rotated = FieldCipher::with_versions("pk_a", &dek(2, 4), &[dek(1, 3)]);
        assert_eq!(rotated.version(), 2);
        let ct2 = rotated.seal(NAME, "pat_1", b"Ayesha", [6; 12]);
        assert_eq!(sealed_version(&ct1), Some(1));
        assert_eq!(sealed_version(&ct2), Some(2));
        assert_eq!(rotated.open(NAME, "pat_1", &ct1).unwrap(), b"Ayesha");
        assert_eq!(rotated.open(NAME, "pat_1", &ct2).unwrap(), b"Ayesha");
        // The old cipher does not hold v2; v2's bytes relabelled v1 fail.
        assert_eq!(old.open(NAME, "pat_1", &ct2), Err(CryptoError));
        let mut relabelled = ct2.clone();
        relabelled[1..5].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(rotated.open(NAME, "pat_1", &relabelled), Err(CryptoError));
        // Without the old version, old values no longer open.
        let only_new = FieldCipher::new("pk_a", &dek(2, 4));
        assert_eq!(only_new.open(NAME, "pat_1", &ct1), Err(CryptoError));
    }

    #[test]
    fn lengths_do_not_show_and_old_values_still_open() {
        let c = cipher("pk_a", 3);
        let sizes: Vec<usize> = ["female", "male", "other", "unknown"]
            .iter()
            .map(|s| c.seal(PHONE, "pat_1", s.as_bytes(), [1; 12]).len())
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] == w[1]), "{sizes:?}");
        let a = c.seal(NAME, "pat_1", b"Ali Khan", [1; 12]).len();
        let b = c.seal(NAME, "pat_1", b"Muhammad Ali", [1; 12]).len();
        assert_eq!(a, b);
        assert_eq!(padded_len(0), 16);
        assert_eq!(padded_len(12), 16);
        assert_eq!(padded_len(13), 32);
        assert_eq!(padded_len(20_000), 32_768);
        for text in [&b""[..], b"x", &[0u8; 40], "نام".as_bytes()] {
            let sealed = c.seal(NAME, "pat_1", text, [2; 12]);
            assert!(!unpadded(&sealed));
            assert_eq!(c.open(NAME, "pat_1", &sealed).unwrap(), text);
        }
        let old = c.seal_unpadded(NAME, "pat_1", b"Ayesha", [3; 12]);
        assert!(unpadded(&old));
        assert_eq!(c.open(NAME, "pat_1", &old).unwrap(), b"Ayesha");
        // The format byte is authenticated: relabelled, neither opens.
        let mut relabelled = old.clone();
        relabelled[0] = FORMAT_PADDED;
        assert_eq!(c.open(NAME, "pat_1", &relabelled), Err(CryptoError));
        let mut relabelled = c.seal(NAME, "pat_1", b"Ayesha", [4; 12]);
        relabelled[0] = FORMAT_UNPADDED;
        assert_eq!(c.open(NAME, "pat_1", &relabelled), Err(CryptoError));
    }

    #[test]
    fn envelope_round_trip() {
        let c = cipher("pk_a", 3);
        let ct = c.seal(NAME, "pat_1", "Ayesha Siddiqui".as_bytes(), [5; 12]);
        assert!(!ct.windows(6).any(|w| w == b"Ayesha"));
        assert_eq!(
            c.open(NAME, "pat_1", &ct).unwrap(),
            "Ayesha Siddiqui".as_bytes()
        );
    }

    #[test]
    fn ciphertext_moved_elsewhere_fails() {
        let c = cipher("pk_a", 3);
        let ct = c.seal(NAME, "pat_1", b"Ayesha", [5; 12]);
        // another row, another column, another clinic (same key), another key
        assert_eq!(c.open(NAME, "pat_2", &ct), Err(CryptoError));
        assert_eq!(c.open(PHONE, "pat_1", &ct), Err(CryptoError));
        assert_eq!(cipher("pk_b", 3).open(NAME, "pat_1", &ct), Err(CryptoError));
        assert_eq!(cipher("pk_a", 4).open(NAME, "pat_1", &ct), Err(CryptoError));
        // tampering and truncation
        let mut t = ct.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(c.open(NAME, "pat_1", &t), Err(CryptoError));
        assert_eq!(c.open(NAME, "pat_1", &ct[..HEADER + 15]), Err(CryptoError));
        assert_eq!(c.open(NAME, "pat_1", &[]), Err(CryptoError));
    }
}
