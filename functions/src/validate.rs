//! Input rules for people's data. Each returns the normalised value or a 400
//! naming the field; messages never repeat the value.

use unicode_normalization::UnicodeNormalization;

use crate::clock;
use crate::error::{ApiError, ApiResult};

/// The one form of a text: NFKC (full-width letters and digits, ligatures
/// and presentation forms as their plain letters), trimmed.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect::<String>().trim().to_owned()
}

/// Characters that reorder or hide text (bidirectional overrides and
/// isolates, zero-width characters): refused in names, where they would
/// make one name display as another.
fn hides_text(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A person's or clinic's name, in NFKC: 1–200 characters after trimming,
/// no control characters, no bidirectional override or zero-width
/// character.
pub fn name(field: &str, s: &str) -> ApiResult<String> {
    let t = nfkc(s);
    if t.is_empty() || t.chars().count() > 200 {
        return Err(ApiError::invalid(field, "must be 1 to 200 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    if t.chars().any(hides_text) {
        return Err(ApiError::invalid(
            field,
            "must not contain direction overrides or invisible characters",
        ));
    }
    Ok(t)
}

/// Free text up to `max` characters (addresses).
pub fn text(field: &str, s: &str, max: usize) -> ApiResult<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_owned())
}

/// How an email is compared and looked up: NFKC, trimmed, lowercased (so
/// that `ｎurse@…` is `nurse@…`).
pub fn email_key(s: &str) -> String {
    nfkc(s).to_lowercase()
}

/// An email address, as [`email_key`] gives it: one `@`, a dotted domain,
/// at most 254 chars.
pub fn email(field: &str, s: &str) -> ApiResult<String> {
    let t = email_key(s);
    let ok = t.len() <= 254
        && t.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        })
        && t.matches('@').count() == 1
        && !t.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ApiError::invalid(field, "must be an email address"));
    }
    Ok(t)
}

/// A phone number: digits with optional `+`, spaces, dashes, dots and
/// parentheses; 5 to 20 digits.
pub fn phone(field: &str, s: &str) -> ApiResult<String> {
    let t = s.trim();
    let allowed = t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'));
    let digits = t.chars().filter(char::is_ascii_digit).count();
    if !allowed || !(5..=20).contains(&digits) || t.len() > 32 {
        return Err(ApiError::invalid(
            field,
            "must be a phone number of 5 to 20 digits",
        ));
    }
    Ok(t.to_owned())
}

/// A national id: letters, digits, spaces and dashes; 4 to 32 characters.
pub fn national_id(field: &str, s: &str) -> ApiResult<String> {
    let t = s.trim();
    let ok = (4..=32).contains(&t.chars().count())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        && t.chars().any(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::invalid(
            field,
            "must be 4 to 32 letters, digits, spaces or dashes",
        ));
    }
    Ok(t.to_owned())
}

/// A date of birth: `YYYY-MM-DD`, not before 1900, not after today.
pub fn dob(field: &str, s: &str, now: i64) -> ApiResult<String> {
    let d = clock::parse_date(s)
        .ok_or_else(|| ApiError::invalid(field, "must be a date YYYY-MM-DD"))?;
    let today = clock::date_of(now).ok_or_else(|| ApiError::internal("clock out of range"))?;
    if d.year() < 1900 || d > today {
        return Err(ApiError::invalid(
            field,
            "must be a date between 1900-01-01 and today",
        ));
    }
    Ok(s.to_owned())
}

/// One of a fixed set of words.
pub fn one_of(field: &str, s: &str, allowed: &[&str]) -> ApiResult<String> {
    if allowed.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be one of: {}", allowed.join(", ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(email("e", " A@B.pk ").unwrap(), "a@b.pk");
        for bad in [
            "a", "a@b", "@b.pk", "a@@b.pk", "a b@c.pk", "a@.pk", "a@b..pk",
        ] {
            assert!(email("e", bad).is_err(), "{bad}");
        }
        assert!(phone("p", "+92 300-1234567").is_ok());
        assert!(phone("p", "12ab").is_err());
        assert!(national_id("n", "35202-1234567-1").is_ok());
        assert!(national_id("n", "<script>").is_err());
        let now = 1_800_000_000; // 2027-01-15
        assert!(dob("d", "1990-05-01", now).is_ok());
        assert!(dob("d", "2099-01-01", now).is_err());
        assert!(dob("d", "1899-12-31", now).is_err());
        assert!(name("n", "  ").is_err());
        assert!(name("n", "a\u{0}b").is_err());
        let e = one_of("sex", "x", &["female", "male"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sex"));
    }
}
