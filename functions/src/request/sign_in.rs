//! How sign-in steps are throttled, so that guessing is slow and nobody can
//! lock a user out of their own account on demand
//! ([`crate::records::directory::throttle`] has the rules):
//!
//! - a password is counted per account and address ([`throttle::PAIR`]):
//!   someone else's wrong passwords elsewhere never lock the user's own
//!   address; across addresses the account is only slowed, and only for
//!   addresses that failed on it ([`throttle::ACCOUNT`]); one address
//!   spraying many accounts is locked ([`throttle::ADDRESS`]), but not for
//!   users who signed in from it before ([`known_addresses`]);
//! - a TOTP code is counted per account across every sign-in
//!   ([`throttle::MFA`]): only a right code clears it, so signing in again
//!   buys no more guesses;
//! - a password re-checked before a sensitive change counts like a sign-in.
//!
//! Counters are HMACs of what they count: the directory holds neither
//! emails nor addresses, and unknown accounts are counted like known ones.

use crate::crypto::password;
use crate::error::{ApiError, ApiResult, Code};
use crate::host::{Host, Row};
use crate::ids::ClinicId;
use crate::records::directory::throttle::{self, Counter};
use crate::records::{known_addresses, users, Vault};
use crate::store::Statement;

use super::ctx::Ctx;
use super::scope::ClinicScope;

/// The counters one password attempt touches.
pub(crate) struct PasswordKeys {
    /// The account from this address (the account alone without one).
    pub pair: Vec<u8>,
    pub account: Vec<u8>,
    pub address: Option<Vec<u8>>,
}

/// What the counters said before the password was checked.
pub(crate) struct Counted {
    counters: Vec<Counter>,
    /// The address is locked for spraying: refused unless the account is
    /// known there (decided once the account is found).
    address_lock: Option<i64>,
}

impl PasswordKeys {
    pub(crate) fn new<H: Host>(cx: &Ctx<'_, H>, clinic: &ClinicId, email: &str) -> Self {
        let secret = cx.app.throttle_key();
        let ip = cx.ip.map(|ip| ip.to_string());
        PasswordKeys {
            pair: throttle::key(
                &secret,
                "pair",
                &[clinic.as_str(), email, ip.as_deref().unwrap_or("")],
            ),
            account: throttle::key(&secret, "account", &[clinic.as_str(), email]),
            address: ip
                .as_deref()
                .map(|ip| throttle::key(&secret, "address", &[ip])),
        }
    }

    fn all(&self) -> Vec<Vec<u8>> {
        let mut keys = vec![self.pair.clone(), self.account.clone()];
        keys.extend(self.address.clone());
        keys
    }

    /// Reads the counters; 429 while this account is locked from this
    /// address, or slowed and this address failed on it.
    pub(crate) async fn check<C: crate::host::Conn>(
        &self,
        dir: &C,
        now: i64,
    ) -> ApiResult<Counted> {
        let (sql, params) = self.counters_query();
        self.check_rows(&dir.query(&sql, params).await?, now)
    }

    /// The query of [`PasswordKeys::check`], to ride with the directory's
    /// key lookup.
    pub(crate) fn counters_query(&self) -> Statement {
        throttle::counters_query(&self.all())
    }

    /// [`PasswordKeys::check`] on the rows of its query.
    pub(crate) fn check_rows(&self, rows: &[Row], now: i64) -> ApiResult<Counted> {
        let counters = throttle::counters_from_rows(rows)?;
        let find = |k: &[u8]| counters.iter().find(|c| c.key == k);
        let locked = |c: Option<&Counter>| c.map(|c| c.locked_until - now).filter(|w| *w > 0);
        if let Some(wait) = locked(find(&self.pair)) {
            return Err(ApiError::rate_limited(wait));
        }
        let failed_here = find(&self.pair).is_some_and(|c| c.failures > 0);
        if let (Some(wait), true) = (locked(find(&self.account)), failed_here) {
            return Err(ApiError::rate_limited(wait));
        }
        let address_lock = self.address.as_deref().and_then(|a| locked(find(a)));
        Ok(Counted {
            counters,
            address_lock,
        })
    }

    /// 429 if the address is locked for spraying and the account has not
    /// signed in from it before.
    pub(crate) fn admit(&self, counted: &Counted, known_here: bool) -> ApiResult<()> {
        match counted.address_lock {
            Some(wait) if !known_here => Err(ApiError::rate_limited(wait)),
            _ => Ok(()),
        }
    }

    /// Counts a wrong password (with the request's end: `later` is its
    /// [`Ctx::directory_later`]).
    pub(crate) fn failed(&self, later: &mut Vec<Statement>, now: i64) {
        later.extend(throttle::fail_statements(&self.pair, throttle::PAIR, now));
        later.extend(throttle::fail_statements(
            &self.account,
            throttle::ACCOUNT,
            now,
        ));
        if let Some(a) = &self.address {
            later.extend(throttle::fail_statements(a, throttle::ADDRESS, now));
        }
    }

    /// A right password: this address's counter is forgotten (the
    /// account's and the address's run out on their own).
    pub(crate) fn succeeded(&self, later: &mut Vec<Statement>, counted: &Counted) {
        if counted.counters.iter().any(|c| c.key == self.pair) {
            later.push(throttle::clear_statement(&self.pair));
        }
    }
}

/// The statement finding whether the account of `email` signed in from the
/// request's address before (no row where the host knows no address).
pub(crate) fn known_here<H: Host>(
    cx: &Ctx<'_, H>,
    v: &Vault<'_>,
    email: &str,
) -> crate::store::Statement {
    let address = cx.ip.map(|ip| ip.to_string()).unwrap_or_default();
    known_addresses::check(v, email, &address, cx.now)
}

/// Notes that the account of `email` signed in from the request's address
/// (queued).
pub(crate) async fn remember_address<H: Host, A>(
    s: &ClinicScope<'_, '_, H, A>,
    email: &str,
) -> ApiResult<()> {
    match s.ip {
        Some(ip) => known_addresses::remember(s.db, &s.vault, email, &ip.to_string(), s.now).await,
        None => Ok(()),
    }
}

/// The throttling counter of one account's TOTP step (clinic and user):
/// only a right code clears it.
pub(crate) fn mfa_key<H: Host>(cx: &Ctx<'_, H>, clinic: &ClinicId, user: &str) -> Vec<u8> {
    throttle::key(&cx.app.throttle_key(), "mfa", &[clinic.as_str(), user])
}

/// Checks a TOTP code of the signed-in user's account against `secret`,
/// throttled like the TOTP step of sign-in (wrong codes counted in the
/// same counter, which only a right code clears). Returns the code's step.
pub(crate) async fn check_code<H: Host, A>(
    s: &mut ClinicScope<'_, '_, H, A>,
    user_id: &str,
    secret: &[u8],
    last_step: Option<i64>,
    code: &str,
    field: &str,
) -> ApiResult<i64> {
    let dir = s.app.directory().await?;
    let key = mfa_key(s, s.clinic, user_id);
    let counted = throttle::check(&dir, std::slice::from_ref(&key), s.now).await?;
    match crate::crypto::totp::verify(secret, code.trim(), s.now, last_step) {
        Some(step) => {
            if counted.contains(&key) {
                s.directory_later.push(throttle::clear_statement(&key));
            }
            Ok(step)
        }
        None => {
            s.keep_writes_on_error = true;
            users::count_totp_failure(s.db, user_id).await?;
            let now = s.now;
            s.directory_later
                .extend(throttle::fail_statements(&key, throttle::MFA, now));
            Err(ApiError::invalid(
                field,
                "wrong, expired or already used code",
            ))
        }
    }
}

/// Checks the signed-in user's password again (counted like a sign-in);
/// returns the user's email. `field` names the body's field at fault.
pub(crate) async fn recheck_password<H: Host, A>(
    s: &mut ClinicScope<'_, '_, H, A>,
    user_id: &str,
    password_text: &str,
    field: &str,
) -> ApiResult<String> {
    if password_text.len() > password::MAX_INPUT {
        return Err(ApiError::invalid(field, "too long"));
    }
    let (hash, email) = users::credentials(s.db, &s.vault, user_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let dir = s.app.directory().await?;
    let keys = PasswordKeys::new(s, s.clinic, &email);
    let counted = keys.check(&dir, s.now).await?;
    keys.admit(&counted, true)?;
    if !password::verify(password_text, &hash) {
        let now = s.now;
        keys.failed(&mut s.directory_later, now);
        return Err(ApiError::new(Code::Unauthenticated, "wrong password"));
    }
    Ok(email)
}
