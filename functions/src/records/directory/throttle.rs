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
use crate::host::{Conn, Row};
use crate::records::table::{col, Kind, Table};
use crate::store::RowExt;
use crate::store::Statement;

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
    /// Lock after `max_failures`; doubles with every further failure in
    /// the window, up to `max_lock_secs` ([`fail_statements`] has it).
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

/// The query of the counters of `keys` that exist (one query for all), to
/// ride in a batch with others; [`counters_from_rows`] reads it.
pub fn counters_query(keys: &[Vec<u8>]) -> Statement {
    let marks: Vec<String> = (1..=keys.len()).map(|i| format!("?{i}")).collect();
    (
        format!(
            "SELECT key, failures, locked_until FROM throttle WHERE key IN ({})",
            marks.join(", ")
        ),
        keys.iter().map(|k| k.clone().into()).collect(),
    )
}

/// The counters in the rows of [`counters_query`].
pub fn counters_from_rows(rows: &[Row]) -> ApiResult<Vec<Counter>> {
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
    let [(count, p1), (lock, p2)] = fail_statements(key, rule, now);
    dir.execute_later(&count, p1).await?;
    dir.execute(&lock, p2).await?;
    Ok(())
}

/// The statements of [`fail`], in order, to send with others (a request's
/// directory writes go with its end: [`crate::request::ctx::Ctx::directory_later`]).
/// The lock is [`Rule::lock_secs`] in SQL, so that a counter is read and
/// written in one place, the database.
pub fn fail_statements(key: &[u8], rule: Rule, now: i64) -> [Statement; 2] {
    [
        (
            "INSERT INTO throttle (key, failures, window_start, locked_until) VALUES (?1, 1, ?2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN ?2 - window_start > ?3 AND locked_until <= ?2 THEN 1 ELSE failures + 1 END, \
               window_start = CASE WHEN ?2 - window_start > ?3 AND locked_until <= ?2 THEN ?2 ELSE window_start END"
                .to_owned(),
            vec![key.to_vec().into(), now.into(), rule.window_secs.into()],
        ),
        (
            "UPDATE throttle SET locked_until = ?2 + min(?3 * (1 << min(failures - ?4, 20)), ?5) \
             WHERE key = ?1 AND failures >= ?4"
                .to_owned(),
            vec![
                key.to_vec().into(),
                now.into(),
                rule.base_lock_secs.into(),
                rule.max_failures.into(),
                rule.max_lock_secs.into(),
            ],
        ),
    ]
}

/// Forgets a counter (after a successful login).
pub async fn clear<C: Conn>(dir: &C, key: &[u8]) -> ApiResult<()> {
    let (sql, params) = clear_statement(key);
    dir.execute(&sql, params).await?;
    Ok(())
}

/// The statement of [`clear`], to send with others.
pub fn clear_statement(key: &[u8]) -> Statement {
    (
        "DELETE FROM throttle WHERE key = ?1".to_owned(),
        vec![key.to_vec().into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
