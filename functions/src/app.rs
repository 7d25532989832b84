//! [`App`]: one instance of the application over a host, and what it keeps
//! between requests: its [`Config`], the keys derived from the host's root
//! keys (made again when they change), the region key once unwrapped, and
//! what it knows of its databases' schemas ([`crate::tenancy`]). How a
//! request runs is [`crate::handle`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clock;
use crate::crypto::field::FieldCipher;
use crate::crypto::keys::{KeyBytes, RootKeyring};
use crate::crypto::keysets::ClinicKeys;
use crate::error::ApiResult;
use crate::host::{Conn, Host};
use crate::ids::ClinicId;
use crate::records::audit::{self, Entry, Head};
use crate::region_key::RegionKey;
use crate::request::rate::{Buckets, RequestLimits};
use crate::token::TokenKeys;

/// A region as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RegionInfo {
    pub id: String,
    pub name: String,
    pub location: String,
    /// This deployment's base URL for the region, where the host knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long the region's law keeps a deleted clinical record (null:
    /// purged when the 30-day grace period ends).
    pub retention: Option<Retention>,
}

/// A region's retention period, as `regions.toml` gives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Retention {
    /// Whole years after the record's last clinical activity.
    pub years: u32,
    /// The law that sets it.
    pub law: String,
}

impl RegionInfo {
    /// What the API says of a region of `regions.toml`, served at `url`.
    pub fn of(r: &amanah_region_config::Region, url: Option<String>) -> Self {
        RegionInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            location: r.location.clone(),
            url,
            retention: r.retention.as_ref().map(|t| Retention {
                years: t.years,
                law: t.law.clone(),
            }),
        }
    }
}

/// How one function instance is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The region this instance serves.
    pub region: RegionInfo,
    /// Every region of the deployment (for `/api/v1/regions` and sign-up).
    pub regions: Vec<RegionInfo>,
    /// Session ends after this long without a request (15 minutes).
    pub idle_timeout_secs: i64,
    /// Session ends this long after login, whatever the activity (12 hours).
    pub absolute_timeout_secs: i64,
    /// Enables the `/__test/…` routes (per-clinic clock offsets, staff
    /// creation, the checkpoint store's contents). Tests only.
    pub test_hooks: bool,
    /// The bearer token of `POST /internal/maintain` (at least 32
    /// characters); without one the route answers 404.
    pub maintain_token: Option<String>,
    /// Sign-ups an hour: from one address, and in the whole region (each
    /// makes a database).
    pub signups: SignupLimits,
    /// How fast one user and one address may call the API.
    pub requests: RequestLimits,
}

/// How many clinics may sign up an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignupLimits {
    pub per_address: i64,
    pub per_region: i64,
}

impl Default for SignupLimits {
    fn default() -> Self {
        SignupLimits {
            per_address: 10,
            per_region: 200,
        }
    }
}

impl std::str::FromStr for SignupLimits {
    type Err = String;

    /// `ADDRESS,REGION`: sign-ups an hour, each 1 to 1,000,000.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            "must be two numbers of sign-ups an hour, 1 to 1000000: per address,per region"
                .to_owned()
        };
        let (a, r) = s.split_once(',').ok_or_else(bad)?;
        let n = |t: &str| {
            t.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
        };
        Ok(SignupLimits {
            per_address: n(a).ok_or_else(bad)?,
            per_region: n(r).ok_or_else(bad)?,
        })
    }
}

impl Config {
    pub fn new(region: RegionInfo, regions: Vec<RegionInfo>) -> Self {
        Config {
            region,
            regions,
            idle_timeout_secs: 15 * clock::MINUTE,
            absolute_timeout_secs: 12 * 60 * clock::MINUTE,
            test_hooks: false,
            maintain_token: None,
            signups: SignupLimits::default(),
            requests: RequestLimits::default(),
        }
    }
}

/// The client address, put on the request by the host.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// What the application derives from the host's root keys, made again
/// when they change (a rotation).
struct RootDerived {
    ring: Arc<RootKeyring>,
    tokens: Arc<TokenKeys>,
    /// Throttling counters are keyed under the newest root version: a
    /// rotation starts them afresh (they last minutes).
    throttle_key: Arc<KeyBytes>,
}

impl RootDerived {
    fn new(ring: Arc<RootKeyring>) -> Self {
        RootDerived {
            tokens: Arc::new(TokenKeys::new(&ring)),
            throttle_key: Arc::new(ring.current().derive("throttle")),
            ring,
        }
    }
}

/// What this instance knows of its databases' schemas.
#[derive(Default)]
pub(crate) struct SchemaState {
    /// Clinics whose schema this instance checked (or migrated).
    pub(crate) migrated: Mutex<HashSet<String>>,
    pub(crate) directory_ready: AtomicBool,
}

/// The application over a host.
pub struct App<H: Host> {
    pub(crate) host: H,
    pub(crate) config: Config,
    root_derived: Mutex<Arc<RootDerived>>,
    region_key: Mutex<Option<Arc<RegionKey>>>,
    pub(crate) schemas: SchemaState,
    /// The request rate buckets of this instance.
    pub(crate) buckets: Buckets,
    /// Clinics' keys as this instance last saw them, only to build the
    /// statements a route declares it reads ([`crate::request::prefetch`])
    /// before the directory's answer comes; never to open or seal data.
    key_hints: Mutex<HashMap<String, Arc<ClinicKeys>>>,
    #[cfg(feature = "inject-forgot-clinic")]
    pub(crate) injected: crate::injected::ForgotClinic,
}

impl<H: Host> App<H> {
    pub fn new(host: H, config: Config) -> Self {
        let derived = RootDerived::new(host.root_keys());
        App {
            root_derived: Mutex::new(Arc::new(derived)),
            region_key: Mutex::new(None),
            host,
            config,
            schemas: SchemaState::default(),
            buckets: Buckets::default(),
            key_hints: Mutex::new(HashMap::new()),
            #[cfg(feature = "inject-forgot-clinic")]
            injected: Default::default(),
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Token and throttling keys of the host's current root keys.
    fn root_derived(&self) -> Arc<RootDerived> {
        let ring = self.host.root_keys();
        let mut cached = match self.root_derived.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !Arc::ptr_eq(&cached.ring, &ring) {
            *cached = Arc::new(RootDerived::new(ring));
        }
        cached.clone()
    }

    pub(crate) fn tokens(&self) -> Arc<TokenKeys> {
        self.root_derived().tokens.clone()
    }

    pub(crate) fn throttle_key(&self) -> Arc<KeyBytes> {
        self.root_derived().throttle_key.clone()
    }

    pub(crate) fn region_key_cache(&self) -> Option<Arc<RegionKey>> {
        self.region_key.lock().ok().and_then(|k| k.clone())
    }

    pub(crate) fn cache_region_key(&self, key: RegionKey) -> Arc<RegionKey> {
        let key = Arc::new(key);
        if let Ok(mut k) = self.region_key.lock() {
            *k = Some(key.clone());
        }
        key
    }

    /// The keys this instance last saw for `clinic` ([`App::key_hints`]).
    pub(crate) fn key_hint(&self, clinic: &ClinicId) -> Option<Arc<ClinicKeys>> {
        self.key_hints
            .lock()
            .ok()
            .and_then(|h| h.get(clinic.as_str()).cloned())
    }

    /// Keeps the keys the directory just gave for `clinic` as its hint
    /// (`None`: it has none any more). A few hundred clinics at most: an
    /// instance serving more starts over.
    pub(crate) fn set_key_hint(&self, clinic: &ClinicId, keys: Option<Arc<ClinicKeys>>) {
        const MAX_HINTS: usize = 256;
        if let Ok(mut h) = self.key_hints.lock() {
            match keys {
                Some(k) => {
                    if h.len() >= MAX_HINTS && !h.contains_key(clinic.as_str()) {
                        h.clear();
                    }
                    h.insert(clinic.as_str().to_owned(), k);
                }
                None => {
                    h.remove(clinic.as_str());
                }
            }
        }
    }

    /// Random bytes from the host.
    pub(crate) fn random<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.host.fill_random(&mut b);
        b
    }

    /// Appends an audit entry to the chain in `conn` (a clinic's, or the
    /// directory's platform stream), with fresh nonces from the host.
    pub(crate) async fn append_audit<C: Conn>(
        &self,
        conn: &C,
        cipher: &FieldCipher,
        entry: &Entry,
        head: Option<Head>,
    ) -> ApiResult<i64> {
        audit::append(conn, cipher, || self.random(), entry, head).await
    }
}
