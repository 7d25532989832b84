//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of skew either
//! way, and no code accepted twice (a code's step must be newer than the last
//! one used).

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

pub const STEP: i64 = 30;
pub const DIGITS: usize = 6;
pub const SECRET_LEN: usize = 20;

fn code_at(secret: &[u8], digits: usize, unix: i64) -> String {
    TOTP::new_unchecked(Algorithm::SHA1, digits, 1, STEP as u64, secret.to_vec())
        .generate(unix.max(0) as u64)
}

/// The step a Unix time falls in.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP)
}

/// The code for a Unix time.
pub fn code(secret: &[u8], unix: i64) -> String {
    code_at(secret, DIGITS, unix)
}

/// The step `code` belongs to, if it is valid at `now` (±1 step) and newer
/// than `last_used_step`.
pub fn verify(
    secret: &[u8],
    submitted: &str,
    now: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    if submitted.len() != DIGITS || !submitted.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_of(now);
    let mut found = None;
    // Check every candidate so timing does not reveal which one matched.
    for step in [current - 1, current, current + 1] {
        let expected = code_at(secret, DIGITS, step * STEP);
        let matches: bool = expected.as_bytes().ct_eq(submitted.as_bytes()).into();
        if matches && last_used_step.is_none_or(|last| step > last) {
            found = Some(step);
        }
    }
    found
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The secret in base32, as authenticator apps take it.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// `otpauth://` URI for an authenticator app.
pub fn otpauth_uri(secret: &[u8], account: &str) -> String {
    format!(
        "otpauth://totp/Amanah:{}?secret={}&issuer=Amanah&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent_encode(account),
        secret_base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows.
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(secret, 8, t), want, "T={t}");
        }
    }

    #[test]
    fn window_and_reuse() {
        let s = [3u8; SECRET_LEN];
        let now = 1_700_000_000;
        let c = code(&s, now);
        assert_eq!(verify(&s, &c, now, None), Some(step_of(now)));
        assert_eq!(verify(&s, &c, now + STEP, None), Some(step_of(now)));
        assert_eq!(verify(&s, &c, now + 3 * STEP, None), None);
        // used once: refused at the same step
        assert_eq!(verify(&s, &c, now, Some(step_of(now))), None);
        // the next step's code is still fine
        assert_eq!(
            verify(&s, &code(&s, now + STEP), now + STEP, Some(step_of(now))),
            Some(step_of(now) + 1)
        );
        assert_eq!(verify(&s, "12345", now, None), None);
        assert_eq!(verify(&s, "abcdef", now, None), None);
    }

    #[test]
    fn uri() {
        let u = otpauth_uri(&[0; 20], "a+b@x.pk");
        assert!(u.starts_with("otpauth://totp/Amanah:a%2Bb%40x.pk?secret=AAAA"));
    }
}
