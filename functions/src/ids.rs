//! Opaque identifiers. Every id is a kind prefix and 128 random bits in
//! lowercase base32; a clinic id's prefix is its region, so the region of any
//! clinic is known from its id alone.

use std::fmt;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Base32 characters that carry 128 bits.
const BODY_LEN: usize = 26;

fn encode_body(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(BODY_LEN);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn body_ok(body: &str) -> bool {
    body.len() == BODY_LEN && body.bytes().all(|b| ALPHABET.contains(&b))
}

/// A new random id `<prefix>_<26 base32 chars>`.
pub fn new_id(prefix: &str, random: [u8; 16]) -> String {
    format!("{prefix}_{}", encode_body(&random))
}

/// Whether `s` is a well-formed id of the given kind prefix.
pub fn is_id(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(body_ok)
}

/// Kind prefixes of the ids this crate issues.
pub mod kind {
    pub const USER: &str = "usr";
    pub const PATIENT: &str = "pat";
    pub const SESSION: &str = "ses";
    pub const CONDITION: &str = "cnd";
    pub const PRESCRIPTION: &str = "rx";
    pub const NOTE: &str = "nte";
    pub const ALLERGY: &str = "alg";
    pub const VITALS: &str = "vit";
    pub const BULK_EXPORT: &str = "bex";
    pub const APPOINTMENT: &str = "apt";
    pub const STAFF: &str = "stf";
    pub const ACCESS_REQUEST: &str = "acr";
}

/// A well-formed clinic id: `<region>_<random>`. Holding one proves only its
/// shape, never that the clinic exists.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClinicId(String);

impl ClinicId {
    /// A new clinic id in `region`.
    pub fn generate(region: &str, random: [u8; 16]) -> Self {
        ClinicId(new_id(region, random))
    }

    /// Parses untrusted text; `None` unless it has a clinic id's exact shape.
    pub fn parse(s: &str) -> Option<Self> {
        let (region, body) = s.split_once('_')?;
        let region_ok =
            (2..=8).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_lowercase());
        (region_ok && body_ok(body)).then(|| ClinicId(s.to_owned()))
    }

    /// The region the clinic lives in.
    pub fn region(&self) -> &str {
        self.0.split_once('_').map_or("", |(r, _)| r)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClinicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for ClinicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClinicId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_look_alikes() {
        let c = ClinicId::generate("pk", [0xff; 16]);
        assert_eq!(c.as_str().len(), 3 + BODY_LEN);
        assert_eq!(c.region(), "pk");
        assert_eq!(ClinicId::parse(c.as_str()), Some(c.clone()));
        for bad in [
            "",
            "pk",
            "pk_",
            "PK_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "pk_aaaaaaaaaaaaaaaaaaaaaaaaa1",
            "pk_aaaaaaaaaaaaaaaaaaaaaaaaa",
            "../etc_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "pk_aaaaaaaaaaaaaaaaaaaaaaaaaa/../x",
        ] {
            assert_eq!(ClinicId::parse(bad), None, "{bad}");
        }
        let u = new_id(kind::USER, [1; 16]);
        assert!(is_id(kind::USER, &u));
        assert!(!is_id(kind::PATIENT, &u));
        assert_ne!(new_id("x", [0; 16]), new_id("x", [1; 16]));
    }
}
