//! How fast one user, and one address, may call the API: a token bucket
//! each (a rate per second and a burst), refused with 429 and
//! `Retry-After` when empty. The buckets live in the instance's memory: the
//! native host's one process counts every request; a Worker isolate counts
//! its own; a Spin instance lives for one request, so on Spin the
//! platform's limits (its ingress) are what holds.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{ApiError, ApiResult};

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Requests a second, sustained.
    pub per_second: f64,
    /// Requests at once, on top.
    pub burst: f64,
}

/// The limits of an instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLimits {
    /// One signed-in user (clinic user, support, staff).
    pub per_user: Bucket,
    /// One client address, signed in or not.
    pub per_address: Bucket,
}

impl Default for RequestLimits {
    /// A clinic's busiest desk makes a few requests a second; a clinic
    /// behind one address, a few dozen.
    fn default() -> Self {
        RequestLimits {
            per_user: Bucket {
                per_second: 20.0,
                burst: 200.0,
            },
            per_address: Bucket {
                per_second: 50.0,
                burst: 500.0,
            },
        }
    }
}

impl std::str::FromStr for RequestLimits {
    type Err = String;

    /// `USER_RATE/BURST,ADDRESS_RATE/BURST`, e.g. `20/200,50/500`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            "must be USER_RATE/BURST,ADDRESS_RATE/BURST (requests a second / at once, each 1 to 1000000)".to_owned()
        };
        let bucket = |t: &str| -> Result<Bucket, String> {
            let (r, b) = t.trim().split_once('/').ok_or_else(bad)?;
            let n = |x: &str| {
                x.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| (1.0..=1_000_000.0).contains(n))
                    .ok_or_else(bad)
            };
            Ok(Bucket {
                per_second: n(r)?,
                burst: n(b)?,
            })
        };
        let (u, a) = s.split_once(',').ok_or_else(bad)?;
        Ok(RequestLimits {
            per_user: bucket(u)?,
            per_address: bucket(a)?,
        })
    }
}

/// Buckets kept at most; beyond, the full ones (which say nothing) are
/// forgotten, then all.
const MAX_BUCKETS: usize = 50_000;

/// Every bucket of an instance.
#[derive(Default)]
pub(crate) struct Buckets(Mutex<HashMap<String, (f64, f64)>>);

impl Buckets {
    /// Takes one request from `key`'s bucket at `now` (seconds, fractions
    /// allowed); 429 when it is empty.
    pub(crate) fn take(&self, key: String, bucket: Bucket, now: f64) -> ApiResult<()> {
        let Ok(mut map) = self.0.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_BUCKETS && !map.contains_key(&key) {
            map.retain(|_, (tokens, last)| {
                (*tokens + (now - *last).max(0.0) * bucket.per_second) < bucket.burst
            });
            if map.len() >= MAX_BUCKETS {
                map.clear();
            }
        }
        let (tokens, last) = map.entry(key).or_insert((bucket.burst, now));
        *tokens = (*tokens + (now - *last).max(0.0) * bucket.per_second).min(bucket.burst);
        *last = now;
        if *tokens < 1.0 {
            let wait = ((1.0 - *tokens) / bucket.per_second).ceil() as i64;
            return Err(ApiError::rate_limited(wait.max(1)));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills() {
        let b = Buckets::default();
        let bucket = Bucket {
            per_second: 2.0,
            burst: 5.0,
        };
        for _ in 0..5 {
            b.take("a".into(), bucket, 100.0).unwrap();
        }
        let e = b.take("a".into(), bucket, 100.0).unwrap_err();
        assert_eq!(e.retry_after, Some(1));
        // Another key has its own bucket; time refills.
        b.take("b".into(), bucket, 100.0).unwrap();
        b.take("a".into(), bucket, 101.0).unwrap();
        b.take("a".into(), bucket, 101.0).unwrap();
        assert!(b.take("a".into(), bucket, 101.0).is_err());
        assert_eq!(
            "20/200,50/500".parse::<RequestLimits>().unwrap(),
            RequestLimits::default()
        );
        assert!("20,50".parse::<RequestLimits>().is_err());
        assert!("0/1,1/1".parse::<RequestLimits>().is_err());
    }
}
