//! `throttle`: sign-in throttling counters, per account and per client
//! address, and the rules that lock them.
//!
//! Counters live in the region directory under an HMAC of what they count, so
//! the directory holds neither emails nor addresses. Unknown and known
//! accounts are throttled alike, so lockouts reveal nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::keys::KeyBytes;
use crate::error::{ApiError, ApiResult};
use crate::host::Conn;
use crate::records::table::{col, Kind, Table};
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "throttle",
    schema: &[(
        1,
        r#"
CREATE TABLE throttle (
    key BLOB PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    )],
    row_key: "key",
    columns: &[col("key", Kind::Secret)],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// How many failures a window allows, and how long the lock that follows lasts.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub max_failures: i64,
    pub window_secs: i64,
    /// Lock after `max_failures`; doubles with every further failure.
    pub base_lock_secs: i64,
    pub max_lock_secs: i64,
}

/// One account from one address (clinic + email + client address; the
/// account alone where the host knows no address): 5 failures, then 1
/// minute, doubling to 15. Someone else's wrong passwords, from elsewhere,
/// never lock a user out of their own address.
pub const PAIR: Rule = Rule {
    max_failures: 5,
    window_secs: 15 * 60,
    base_lock_secs: 60,
    max_lock_secs: 15 * 60,
};

/// One account across addresses: past 20 failures, each further failure
/// holds the account for 10 seconds, but only for addresses that failed on
/// it themselves (see `request::session`): guessing from many addresses is
/// slowed, and the user's own address is not shut out.
pub const ACCOUNT: Rule = Rule {
    max_failures: 20,
    window_secs: 15 * 60,
    base_lock_secs: 10,
    max_lock_secs: 10,
};

/// One account's TOTP step, across every sign-in: 5 wrong codes, then 5
/// minutes, doubling to a day. Only a right code clears it (a right
/// password does not), so signing in again buys no more guesses.
pub const MFA: Rule = Rule {
    max_failures: 5,
    window_secs: 24 * 60 * 60,
    base_lock_secs: 5 * 60,
    max_lock_secs: 24 * 60 * 60,
};

/// One client address across the region (spraying one password over many
/// accounts): 50 failures, then 15 minutes, except for accounts that signed
/// in from that address before (`records::known_addresses`), so that one
/// person behind a clinic's shared address cannot lock its staff out.
pub const ADDRESS: Rule = Rule {
    max_failures: 50,
    window_secs: 15 * 60,
    base_lock_secs: 15 * 60,
    max_lock_secs: 15 * 60,
};

impl Rule {
    /// How long to lock after the `failures`-th failure in a window.
    pub fn lock_secs(&self, failures: i64) -> Option<i64> {
        let over = failures - self.max_failures;
        if over < 0 {
            return None;
        }
        let factor = 1i64.checked_shl(over.min(20) as u32).unwrap_or(i64::MAX);
        Some(
            self.base_lock_secs
                .saturating_mul(factor)
                .min(self.max_lock_secs),
        )
    }
}

/// A counter's key: HMAC of its scope and parts under the region's throttle key.
pub fn key(secret: &KeyBytes, scope: &str, parts: &[&str]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
    mac.update(scope.as_bytes());
    for p in parts {
        mac.update(&[0]);
        mac.update(p.as_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

/// At most `events` in a fixed window of `window_secs` (events that
/// happen, not failures: sign-ups, access requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub events: i64,
    pub window_secs: i64,
}

/// One counter as stored.
#[derive(Debug, Clone)]
pub struct Counter {
    pub key: Vec<u8>,
    pub failures: i64,
    pub locked_until: i64,
}

/// The counters of `keys` that exist (one query for all).
pub async fn counters<C: Conn>(dir: &C, keys: &[Vec<u8>]) -> ApiResult<Vec<Counter>> {
    let marks: Vec<String> = (1..=keys.len()).map(|i| format!("?{i}")).collect();
    let rows = dir
        .query(
            &format!(
                "SELECT key, failures, locked_until FROM throttle WHERE key IN ({})",
                marks.join(", ")
            ),
            keys.iter().map(|k| k.clone().into()).collect(),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Counter {
                key: r.blob(0)?,
                failures: r.int(1)?,
                locked_until: r.int(2)?,
            })
        })
        .collect()
}

/// Refuses with 429 and `Retry-After` while `limit`'s window holds its
/// events already; otherwise counts one more. Refused attempts do not
/// count.
pub async fn take<C: Conn>(dir: &C, key: &[u8], limit: Limit, now: i64) -> ApiResult<()> {
    let rows = dir
        .query(
            "SELECT failures, window_start FROM throttle WHERE key = ?1",
            vec![key.to_vec().into()],
        )
        .await?;
    if let Some(r) = rows.first() {
        let (events, start) = (r.int(0)?, r.int(1)?);
        if now - start < limit.window_secs && events >= limit.events {
            return Err(ApiError::rate_limited(start + limit.window_secs - now));
        }
    }
    dir.execute(
        "INSERT INTO throttle (key, failures, window_start, locked_until) VALUES (?1, 1, ?2, 0) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN ?2 - window_start >= ?3 THEN 1 ELSE failures + 1 END, \
           window_start = CASE WHEN ?2 - window_start >= ?3 THEN ?2 ELSE window_start END",
        vec![key.to_vec().into(), now.into(), limit.window_secs.into()],
    )
    .await?;
    Ok(())
}

/// Refuses with 429 and `Retry-After` while any of the counters is locked
/// (one query for all). Returns the keys that have a counter at all, so that
/// a success clears only what exists.
pub async fn check<C: Conn>(dir: &C, keys: &[Vec<u8>], now: i64) -> ApiResult<Vec<Vec<u8>>> {
    let marks: Vec<String> = (1..=keys.len()).map(|i| format!("?{i}")).collect();
    let rows = dir
        .query(
            &format!(
                "SELECT key, locked_until FROM throttle WHERE key IN ({})",
                marks.join(", ")
            ),
            keys.iter().map(|k| k.clone().into()).collect(),
        )
        .await?;
    let mut counted = Vec::new();
    let mut wait = 0;
    for row in &rows {
        wait = wait.max(row.int(1)? - now);
        counted.push(row.blob(0)?);
    }
    if wait > 0 {
        return Err(ApiError::rate_limited(wait));
    }
    Ok(counted)
}

/// Counts a failure; locks the counter when the rule says so.
pub async fn fail<C: Conn>(dir: &C, key: &[u8], rule: Rule, now: i64) -> ApiResult<()> {
    let rows = dir
        .query(
            "INSERT INTO throttle (key, failures, window_start, locked_until) VALUES (?1, 1, ?2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN ?2 - window_start > ?3 AND locked_until <= ?2 THEN 1 ELSE failures + 1 END, \
               window_start = CASE WHEN ?2 - window_start > ?3 AND locked_until <= ?2 THEN ?2 ELSE window_start END \
             RETURNING failures",
            vec![key.to_vec().into(), now.into(), rule.window_secs.into()],
        )
        .await?;
    let failures = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(1);
    if let Some(lock) = rule.lock_secs(failures) {
        dir.execute(
            "UPDATE throttle SET locked_until = ?2 WHERE key = ?1",
            vec![key.to_vec().into(), (now + lock).into()],
        )
        .await?;
    }
    Ok(())
}

/// Forgets a counter (after a successful login).
pub async fn clear<C: Conn>(dir: &C, key: &[u8]) -> ApiResult<()> {
    dir.execute(
        "DELETE FROM throttle WHERE key = ?1",
        vec![key.to_vec().into()],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_grows_and_caps() {
        assert_eq!(PAIR.lock_secs(4), None);
        assert_eq!(PAIR.lock_secs(5), Some(60));
        assert_eq!(PAIR.lock_secs(6), Some(120));
        assert_eq!(PAIR.lock_secs(9), Some(900));
        assert_eq!(PAIR.lock_secs(1000), Some(900));
        assert_eq!(ACCOUNT.lock_secs(19), None);
        assert_eq!(ACCOUNT.lock_secs(20), Some(10));
        assert_eq!(ACCOUNT.lock_secs(500), Some(10));
        assert_eq!(ADDRESS.lock_secs(49), None);
        assert_eq!(ADDRESS.lock_secs(50), Some(900));
    }

    #[test]
    fn wrong_codes_lock_for_longer_each_time() {
        assert_eq!(MFA.lock_secs(4), None);
        assert_eq!(MFA.lock_secs(5), Some(300));
        assert_eq!(MFA.lock_secs(6), Some(600));
        assert_eq!(MFA.lock_secs(20), Some(86_400));
    }

    #[test]
    fn keys_separate_scopes() {
        let k = KeyBytes::new([1; 32]);
        assert_ne!(
            key(&k, "account", &["a", "b"]),
            key(&k, "account", &["ab", ""])
        );
        assert_ne!(key(&k, "account", &["x"]), key(&k, "address", &["x"]));
    }
}
