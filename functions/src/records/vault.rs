//! A clinic's keys at work: [`Vault`] seals and opens the clinic's fields
//! (fresh nonces from the host) and makes its blind-index terms. Records get
//! one from the request's scope or a job; nothing else handles a clinic's
//! ciphertext.

use crate::crypto::blind::{BlindIndex, TermKind};
use crate::crypto::field::{Field, FieldCipher};
use crate::crypto::keysets::ClinicKeys;
use crate::error::{ApiError, ApiResult};
use crate::host::{Host, Value};

/// Cryptographically secure randomness: the host's.
pub(crate) trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

impl<H: Host> Random for H {
    fn fill(&self, buf: &mut [u8]) {
        self.fill_random(buf)
    }
}

/// One clinic's keys and a source of nonces.
#[derive(Clone, Copy)]
pub(crate) struct Vault<'a> {
    keys: &'a ClinicKeys,
    random: &'a dyn Random,
}

impl<'a> Vault<'a> {
    pub fn new(keys: &'a ClinicKeys, random: &'a dyn Random) -> Self {
        Vault { keys, random }
    }

    pub fn cipher(&self) -> &'a FieldCipher {
        &self.keys.cipher
    }

    /// Random bytes (nonces, ids, secrets).
    pub fn random<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.random.fill(&mut b);
        b
    }

    /// Encrypts bytes for a row's field.
    pub fn seal_bytes(&self, field: Field, row: &str, plaintext: &[u8]) -> Vec<u8> {
        self.keys.cipher.seal(field, row, plaintext, self.random())
    }

    /// Encrypts a field value for a row.
    pub fn seal(&self, field: Field, row: &str, plaintext: &str) -> Vec<u8> {
        self.seal_bytes(field, row, plaintext.as_bytes())
    }

    /// Encrypts an optional field value (`NULL` stays `NULL`).
    pub fn seal_opt(&self, field: Field, row: &str, plaintext: Option<&str>) -> Value {
        match plaintext {
            Some(p) => Value::Blob(self.seal(field, row, p)),
            None => Value::Null,
        }
    }

    /// Decrypts a field value to bytes.
    pub fn open_bytes(&self, field: Field, row: &str, sealed: &[u8]) -> ApiResult<Vec<u8>> {
        Ok(self.keys.cipher.open(field, row, sealed)?)
    }

    /// Decrypts a field value.
    pub fn open(&self, field: Field, row: &str, sealed: &[u8]) -> ApiResult<String> {
        String::from_utf8(self.open_bytes(field, row, sealed)?)
            .map_err(|_| ApiError::internal("decrypted field is not UTF-8"))
    }

    pub fn open_opt(
        &self,
        field: Field,
        row: &str,
        sealed: Option<Vec<u8>>,
    ) -> ApiResult<Option<String>> {
        sealed.map(|c| self.open(field, row, &c)).transpose()
    }

    /// The blind index writes store terms under (the current key version).
    pub fn blind(&self) -> &'a BlindIndex {
        &self.keys.blind
    }

    /// A blind-index term, as a write stores it.
    pub fn term(&self, kind: TermKind, normalised: &str) -> Vec<u8> {
        self.keys.blind.token(kind, normalised)
    }

    /// The blind indexes a lookup asks under, the current version first.
    pub fn search(&self) -> &'a [BlindIndex] {
        &self.keys.search
    }

    /// Every term a lookup must try: one per key version whose terms may
    /// still be stored (after a rotation, until the sweep is done).
    pub fn lookup_terms(&self, kind: TermKind, normalised: &str) -> Vec<Vec<u8>> {
        self.keys
            .search
            .iter()
            .map(|ix| ix.token(kind, normalised))
            .collect()
    }
}
