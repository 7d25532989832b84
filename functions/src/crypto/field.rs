//! Field encryption: every personal or clinical value is stored as AES-256-GCM
//! ciphertext whose associated data binds clinic, table, column and row id, so
//! a ciphertext moved to another row, column or clinic fails to decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::keys::DataKey;
use super::{push_lp, CryptoError};

const FIELD_FORMAT: u8 = 1;
const HEADER: usize = 1 + 4 + 12;

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
    version: u32,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldCipher({}, v{})", self.clinic, self.version)
    }
}

fn aad(clinic: &str, field: Field, row: &str, version: u32) -> Vec<u8> {
    let mut aad = b"amanah.field.v1".to_vec();
    push_lp(&mut aad, clinic.as_bytes());
    push_lp(&mut aad, field.table.as_bytes());
    push_lp(&mut aad, field.column.as_bytes());
    push_lp(&mut aad, row.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl FieldCipher {
    pub fn new(clinic: &str, dek: &DataKey) -> Self {
        FieldCipher {
            clinic: clinic.to_owned(),
            version: dek.version,
            cipher: Aes256Gcm::new(dek.key.expose().into()),
        }
    }

    /// `[format][key version][nonce][ciphertext+tag]`.
    pub fn seal(&self, field: Field, row: &str, plaintext: &[u8], nonce: [u8; 12]) -> Vec<u8> {
        let aad = aad(&self.clinic, field, row, self.version);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a field cannot fail");
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.push(FIELD_FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, field: Field, row: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER + 16 || sealed[0] != FIELD_FORMAT {
            return Err(CryptoError);
        }
        let version = u32::from_be_bytes(sealed[1..5].try_into().map_err(|_| CryptoError)?);
        if version != self.version {
            return Err(CryptoError);
        }
        let aad = aad(&self.clinic, field, row, version);
        self.cipher
            .decrypt(
                Nonce::from_slice(&sealed[5..HEADER]),
                Payload {
                    msg: &sealed[HEADER..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::KeyBytes;

    const NAME: Field = Field::new("patients", "name");
    const PHONE: Field = Field::new("patients", "phone");

    fn cipher(clinic: &str, key: u8) -> FieldCipher {
        FieldCipher::new(
            clinic,
            &DataKey {
                version: 1,
                key: KeyBytes::new([key; 32]),
            },
        )
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
