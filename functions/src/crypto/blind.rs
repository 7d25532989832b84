//! Blind indexes: exact-match and prefix search over encrypted fields.
//!
//! A search token is HMAC-SHA256 under a per-clinic key derived from the
//! clinic's data key, over a kind tag and a normalised term, truncated to 128
//! bits. Equal terms give equal tokens; nothing else about the term shows.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

use super::keys::{derive, DataKey, KeyBytes};

/// Shortest name prefix that can be searched.
pub const MIN_PREFIX: usize = 3;
/// Longest name prefix indexed; longer query words are cut to it.
pub const MAX_PREFIX: usize = 24;

/// What a token indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    NameWord,
    NamePrefix,
    Phone,
    NationalId,
    Email,
    /// A client's idempotency key, with its user
    /// ([`crate::request::idempotency`]).
    Idempotency,
    /// A user and an address they signed in from.
    KnownAddress,
}

impl TermKind {
    fn tag(self) -> &'static [u8] {
        match self {
            TermKind::NameWord => b"name-word",
            TermKind::NamePrefix => b"name-prefix",
            TermKind::Phone => b"phone",
            TermKind::NationalId => b"national-id",
            TermKind::Email => b"email",
            TermKind::Idempotency => b"idempotency-key",
            TermKind::KnownAddress => b"known-address",
        }
    }
}

/// One clinic's blind-index key.
pub struct BlindIndex {
    key: KeyBytes,
}

impl BlindIndex {
    pub fn new(dek: &DataKey) -> Self {
        BlindIndex {
            key: derive(&dek.key, b"blind-index"),
        }
    }

    pub fn token(&self, kind: TermKind, term: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose())
            .expect("HMAC takes any key length");
        mac.update(kind.tag());
        mac.update(&[0]);
        mac.update(term.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

/// Lowercased words of a name in NFKC (letters and digits; everything else
/// separates): full-width and presentation forms find their plain letters.
pub fn name_words(name: &str) -> Vec<String> {
    let name: String = name.nfkc().collect();
    let mut words: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Digits only (after NFKC, so full-width digits count): how phone numbers
/// are compared.
pub fn phone_digits(phone: &str) -> String {
    phone.nfkc().filter(char::is_ascii_digit).collect()
}

/// A national id in NFKC without spaces and dashes, lowercased.
pub fn national_id_norm(id: &str) -> String {
    id.nfkc()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every token a stored name is found by: each whole word, and each prefix of
/// 3 or more letters of each word.
pub fn name_tokens(ix: &BlindIndex, name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for w in name_words(name) {
        out.push(ix.token(TermKind::NameWord, &w));
        let chars: Vec<char> = w.chars().collect();
        for n in MIN_PREFIX..=chars.len().min(MAX_PREFIX) {
            out.push(ix.token(TermKind::NamePrefix, &chars[..n].iter().collect::<String>()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The token one query word must match: a prefix token for 3+ letters (which
/// also covers the whole word), else the whole-word token.
pub fn query_word_token(ix: &BlindIndex, word: &str) -> Vec<u8> {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() >= MIN_PREFIX {
        let cut: String = chars[..chars.len().min(MAX_PREFIX)].iter().collect();
        ix.token(TermKind::NamePrefix, &cut)
    } else {
        ix.token(TermKind::NameWord, word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(k: u8) -> BlindIndex {
        BlindIndex::new(&DataKey {
            version: 1,
            key: KeyBytes::new([k; 32]),
        })
    }

    #[test]
    fn name_search_by_word_and_prefix() {
        let i = ix(1);
        let stored = name_tokens(&i, "Muhammad Ali Khan Li");
        for q in ["muh", "MUHAMMAD", "Ali", "li", "kha", "khan"] {
            let words = name_words(q);
            assert!(stored.contains(&query_word_token(&i, &words[0])), "{q}");
        }
        for q in ["mu", "al", "alim", "hammad", "kh"] {
            let words = name_words(q);
            assert!(!stored.contains(&query_word_token(&i, &words[0])), "{q}");
        }
        // tokens are per clinic
        assert_ne!(
            i.token(TermKind::Phone, "123"),
            ix(2).token(TermKind::Phone, "123")
        );
        // and per kind
        assert_ne!(
            i.token(TermKind::Phone, "123"),
            i.token(TermKind::NationalId, "123")
        );
    }

    #[test]
    fn normalisation() {
        assert_eq!(phone_digits("+92 300-123 4567"), "923001234567");
        assert_eq!(national_id_norm("35202-1234567-1"), "3520212345671");
        assert_eq!(national_id_norm("784 1990 AB"), "7841990ab");
        assert_eq!(name_words("  Ayesha-Bibi  ayesha "), ["ayesha", "bibi"]);
    }
}
