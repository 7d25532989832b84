//! Session tokens: HS256 JWTs under a per-region key, with the checks of
//! RFC 8725: one algorithm (the key type admits no other, `none` included),
//! explicit `typ` per kind of token, `iss`, `aud`, `exp` and `nbf`.
//!
//! The key is derived from the region's root key; `kid` names the root key
//! version it came from (`v2`). Tokens are signed under the newest version
//! and checked under the version they name while the region still holds it,
//! so sessions survive a root key rotation and end when the old version is
//! retired.
//!
//! A token only names a server-side session; whether that session is still
//! live is decided by [`crate::session`].

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken};
use serde::{Deserialize, Serialize};

use crate::crypto::keys::RootKeyring;

/// Longest token text we parse.
const MAX_TOKEN_LEN: usize = 2048;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: i64 = 5;

/// The kinds of token; none is accepted where another is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A clinic user's session.
    Session,
    /// Proof of a correct password, awaiting the TOTP code.
    MfaChallenge,
    /// A platform staff member's console session (no clinic).
    Staff,
    /// A support session inside one clinic, under an approved ticket.
    Support,
}

impl TokenKind {
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Session => "amanah-session+jwt",
            TokenKind::MfaChallenge => "amanah-mfa+jwt",
            TokenKind::Staff => "amanah-staff+jwt",
            TokenKind::Support => "amanah-support+jwt",
        }
    }
    fn audience(self, region: &str) -> String {
        let what = match self {
            TokenKind::Session => "session",
            TokenKind::MfaChallenge => "mfa",
            TokenKind::Staff => "staff",
            TokenKind::Support => "support",
        };
        format!("amanah:{region}:{what}")
    }
}

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// User id.
    pub user: String,
    /// Clinic id.
    pub clinic: String,
    /// Server-side session id.
    pub session: String,
}

#[derive(Serialize, Deserialize)]
struct Custom {
    iss: String,
    aud: String,
    sub: String,
    cid: String,
    sid: String,
}

/// Why a token was refused (never shown to clients beyond `unauthenticated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature or algorithm")]
    Signature,
    #[error("wrong token type")]
    Type,
    #[error("wrong issuer or audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
}

/// The region's token keys, one per root key version held.
pub struct TokenKeys {
    /// `(kid, key)`; the last one signs.
    keys: Vec<(String, Hs256Key)>,
    issuer: String,
    region: String,
}

fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

impl TokenKeys {
    pub fn new(ring: &RootKeyring) -> Self {
        TokenKeys {
            keys: ring
                .iter()
                .map(|root| {
                    (
                        format!("v{}", root.version),
                        Hs256Key::new(root.derive("jwt-hs256").expose()),
                    )
                })
                .collect(),
            issuer: format!("amanah:{}", ring.region()),
            region: ring.region().to_owned(),
        }
    }

    fn signing(&self) -> &(String, Hs256Key) {
        // A keyring is never empty, so neither is this.
        self.keys.last().expect("a token key per root version")
    }

    pub fn issue(&self, kind: TokenKind, subject: &Subject, now: i64, ttl_secs: i64) -> String {
        let opts = TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || at(now));
        let claims = Claims::new(Custom {
            iss: self.issuer.clone(),
            aud: kind.audience(&self.region),
            sub: subject.user.clone(),
            cid: subject.clinic.clone(),
            sid: subject.session.clone(),
        })
        .set_duration_and_issuance(&opts, Duration::seconds(ttl_secs))
        .set_not_before(at(now));
        let (kid, key) = self.signing();
        let header = Header::empty()
            .with_token_type(kind.typ())
            .with_key_id(kid.clone());
        Hs256
            .token(&header, &claims, key)
            .expect("serialising our own claims cannot fail")
    }

    pub fn verify(&self, kind: TokenKind, token: &str, now: i64) -> Result<Subject, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
        if untrusted.algorithm() != "HS256" {
            return Err(TokenError::Signature);
        }
        let kid = untrusted.header().key_id.as_deref();
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| Some(k.as_str()) == kid)
            .ok_or(TokenError::Signature)?;
        let token = Hs256
            .validator::<Custom>(key)
            .validate(&untrusted)
            .map_err(|_| TokenError::Signature)?;
        if token.header().token_type.as_deref() != Some(kind.typ()) {
            return Err(TokenError::Type);
        }
        let opts = TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || at(now));
        let claims = token.claims();
        claims
            .validate_expiration(&opts)
            .map_err(|_| TokenError::Expired)?;
        claims
            .validate_maturity(&opts)
            .map_err(|_| TokenError::NotYetValid)?;
        let c = &claims.custom;
        if c.iss != self.issuer || c.aud != kind.audience(&self.region) {
            return Err(TokenError::Audience);
        }
        Ok(Subject {
            user: c.sub.clone(),
            clinic: c.cid.clone(),
            session: c.sid.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{KeyBytes, RootKey};
    use data_encoding::BASE64URL_NOPAD as B64;

    const NOW: i64 = 1_800_000_000;

    fn ring(region: &str, k: u8) -> RootKeyring {
        RootKeyring::single(RootKey::new(region, 1, KeyBytes::new([k; 32])))
    }
    fn keys(region: &str, k: u8) -> TokenKeys {
        TokenKeys::new(&ring(region, k))
    }
    fn subject() -> Subject {
        Subject {
            user: "usr_a".into(),
            clinic: "pk_a".into(),
            session: "ses_a".into(),
        }
    }
    fn forge(header: &str, payload: &str, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(header.as_bytes()),
            B64.encode(payload.as_bytes()),
            B64.encode(sig)
        )
    }
    fn payload(typ_aud: &str) -> String {
        format!(
            r#"{{"iss":"amanah:pk","aud":"{typ_aud}","sub":"usr_a","cid":"pk_a","sid":"ses_a","exp":{},"nbf":{},"iat":{}}}"#,
            NOW + 60,
            NOW,
            NOW
        )
    }

    #[test]
    fn valid_token_round_trips() {
        let k = keys("pk", 1);
        let t = k.issue(TokenKind::Session, &subject(), NOW, 600);
        assert_eq!(k.verify(TokenKind::Session, &t, NOW + 1), Ok(subject()));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let k = keys("pk", 1);
        let p = payload("amanah:pk:session");
        let none = forge(r#"{"alg":"none","typ":"amanah-session+jwt"}"#, &p, b"");
        assert!(k.verify(TokenKind::Session, &none, NOW).is_err());
        let none2 = format!("{}.", &none[..none.len() - 1]);
        assert!(k.verify(TokenKind::Session, &none2, NOW).is_err());
        // HS512 / RS256 headers with an HS256-valid signature over the same bytes
        for alg in ["HS512", "RS256", "hs256", "ES256"] {
            let good = k.issue(TokenKind::Session, &subject(), NOW, 600);
            let mut parts = good.split('.');
            let (_h, body, sig) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let h =
                B64.encode(format!(r#"{{"alg":"{alg}","typ":"amanah-session+jwt"}}"#).as_bytes());
            let t = format!("{h}.{body}.{sig}");
            assert_eq!(
                k.verify(TokenKind::Session, &t, NOW),
                Err(TokenError::Signature),
                "{alg}"
            );
        }
    }

    #[test]
    fn wrong_key_region_type_audience_and_times_are_refused() {
        let k = keys("pk", 1);
        let t = k.issue(TokenKind::Session, &subject(), NOW, 600);
        assert_eq!(
            keys("pk", 2).verify(TokenKind::Session, &t, NOW),
            Err(TokenError::Signature)
        );
        assert_eq!(
            keys("ae", 1).verify(TokenKind::Session, &t, NOW),
            Err(TokenError::Signature)
        );
        // An MFA challenge cannot stand in for a session, nor the reverse.
        let mfa = k.issue(TokenKind::MfaChallenge, &subject(), NOW, 300);
        assert_eq!(
            k.verify(TokenKind::Session, &mfa, NOW),
            Err(TokenError::Type)
        );
        assert_eq!(
            k.verify(TokenKind::MfaChallenge, &t, NOW),
            Err(TokenError::Type)
        );
        // expired, not yet valid
        assert_eq!(
            k.verify(TokenKind::Session, &t, NOW + 601 + LEEWAY_SECS),
            Err(TokenError::Expired)
        );
        assert_eq!(
            k.verify(TokenKind::Session, &t, NOW - 60),
            Err(TokenError::NotYetValid)
        );
        // garbage
        for junk in ["", "a.b", "a.b.c", &"x".repeat(5000)] {
            assert!(k.verify(TokenKind::Session, junk, NOW).is_err());
        }
    }

    #[test]
    fn tokens_name_their_root_version_and_outlive_a_rotation_until_it_retires() {
        let one = ring("pk", 1);
        let old = TokenKeys::new(&one).issue(TokenKind::Session, &subject(), NOW, 600);
        let two = one.with_next(KeyBytes::new([2; 32]));
        let rotated = TokenKeys::new(&two);
        assert_eq!(rotated.verify(TokenKind::Session, &old, NOW), Ok(subject()));
        let new = rotated.issue(TokenKind::Session, &subject(), NOW, 600);
        let header: serde_json::Value = serde_json::from_slice(
            &B64.decode(new.split('.').next().unwrap().as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], "v2");
        // The old ring does not know v2; once v1 is retired its tokens end.
        assert!(TokenKeys::new(&one)
            .verify(TokenKind::Session, &new, NOW)
            .is_err());
        let retired = TokenKeys::new(&two.without(1).unwrap());
        assert_eq!(
            retired.verify(TokenKind::Session, &old, NOW),
            Err(TokenError::Signature)
        );
        assert_eq!(retired.verify(TokenKind::Session, &new, NOW), Ok(subject()));
        // A v2 token relabelled v1 is checked under v1's key, and fails.
        let body = new.split_once('.').unwrap().1;
        let relabelled = format!(
            "{}.{body}",
            B64.encode(br#"{"alg":"HS256","typ":"amanah-session+jwt","kid":"v1"}"#)
        );
        assert_eq!(
            rotated.verify(TokenKind::Session, &relabelled, NOW),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn signed_with_right_key_but_wrong_aud_or_iss_is_refused() {
        // Sign arbitrary claims with the real key to isolate the claim checks.
        let k = keys("pk", 1);
        let sign = |payload: &str| {
            use hmac::{Hmac, Mac};
            let h = B64.encode(br#"{"alg":"HS256","typ":"amanah-session+jwt","kid":"v1"}"#);
            let p = B64.encode(payload.as_bytes());
            let key = RootKey::new("pk", 1, KeyBytes::new([1; 32])).derive("jwt-hs256");
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.expose()).unwrap();
            mac.update(format!("{h}.{p}").as_bytes());
            format!("{h}.{p}.{}", B64.encode(&mac.finalize().into_bytes()))
        };
        assert!(k
            .verify(
                TokenKind::Session,
                &sign(&payload("amanah:pk:session")),
                NOW
            )
            .is_ok());
        assert_eq!(
            k.verify(
                TokenKind::Session,
                &sign(&payload("amanah:ae:session")),
                NOW
            ),
            Err(TokenError::Audience)
        );
        assert_eq!(
            k.verify(
                TokenKind::Session,
                &sign(&payload("amanah:pk:session").replace("amanah:pk\"", "evil\"")),
                NOW
            ),
            Err(TokenError::Audience)
        );
        // no exp at all
        let no_exp = format!(
            r#"{{"iss":"amanah:pk","aud":"amanah:pk:session","sub":"u","cid":"c","sid":"s","nbf":{NOW}}}"#
        );
        assert_eq!(
            k.verify(TokenKind::Session, &sign(&no_exp), NOW),
            Err(TokenError::Expired)
        );
    }
}
