//! Passwords: the policy (length, common-password list) and Argon2id hashing
//! with OWASP's parameters (19 MiB, 2 passes, 1 lane).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest password accepted (bounds hashing work per request).
pub const MAX_LEN: usize = 256;
/// Longest password text a sign-in compares at all (longer is refused
/// before any hashing).
pub const MAX_INPUT: usize = 1024;

/// The 2,000 most common passwords and every one of 12+ characters from the
/// zxcvbn 4.5.0 frequency list (Dropbox, MIT licence), lowercased.
const COMMON: &str = include_str!("common_passwords.txt");

fn common() -> &'static std::collections::HashSet<&'static str> {
    static SET: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty()).collect())
}

/// Why a new password is refused; the message is for the person choosing it.
pub fn policy_violation(password: &str) -> Option<&'static str> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Some("password must be at least 12 characters");
    }
    if chars > MAX_LEN {
        return Some("password must be at most 256 characters");
    }
    let lower = password.to_lowercase();
    // A common password, or one padded with digits and symbols ("password1234!").
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if common().contains(lower.as_str()) || (core.chars().count() >= 4 && common().contains(core)) {
        return Some("password is too common");
    }
    if is_run(&lower) {
        return Some("password is too common");
    }
    None
}

/// One character repeated, or a straight run up or down ("123456789012").
fn is_run(s: &str) -> bool {
    let b = s.as_bytes();
    let steps: Vec<i16> = b
        .windows(2)
        .map(|w| (w[1] as i16 - w[0] as i16).rem_euclid(10))
        .collect();
    let digits = b.iter().all(u8::is_ascii_digit);
    let same = b.windows(2).all(|w| w[0] == w[1]);
    same || (digits && (steps.iter().all(|&d| d == 1) || steps.iter().all(|&d| d == 9)))
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string with the given 16-byte salt.
pub fn hash(password: &str, salt: [u8; 16]) -> String {
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id hashing with valid parameters")
        .to_string()
}

/// Checks a password against a PHC string; false for a malformed hash.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => argon2().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as [`verify`] for an account that does not exist, so
/// unknown and known emails answer in similar time.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("amanah-dummy-password", [0x5a; 16]));
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(
            policy_violation("short"),
            Some("password must be at least 12 characters")
        );
        for common in [
            "qwerty123456",
            "Password1234",
            "password1234!",
            "123456789012",
            "aaaaaaaaaaaaaa",
            "1q2w3e4r5t6y",
        ] {
            assert_eq!(
                policy_violation(common),
                Some("password is too common"),
                "{common}"
            );
        }
        assert_eq!(policy_violation("correct horse battery"), None);
        assert!(policy_violation(&"x".repeat(300)).is_some());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery", [1; 16]);
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterz", &h));
        assert!(!verify("x", "not a hash"));
    }
}
