//! A wasm host's configuration, read by name from its platform: the Worker's
//! vars and secrets, or the Spin component's variables. One parser for both
//! hosts, so the rules (required names, ranges, when test hooks are allowed)
//! live in one place; each host only says how a name is looked up.
//!
//! Every setting, its kind and meaning is one row of [`SETTINGS`]; the
//! deploy guides' tables are [`doc_table`] (a test keeps them equal).
//!
//! Spin spells the same names in lower case (`root_key`, …), as its
//! variables must be.

use std::time::Duration;

use amanah_region_config::{DatabaseProvider, Regions};

use crate::app::{Config, RegionInfo};
use crate::crypto::keys::RootKeyring;
use crate::store::sqld::{Provider, SqldSettings};
use crate::store::turso::TursoPlacement;

/// Whether a setting is a secret (the host must read it from its secret
/// store, never from a plain variable a manifest could carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Secret,
}

/// One setting: its name (the Worker's; Spin's in lower case), its kind and
/// what it means.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    pub meaning: &'static str,
}

/// Every setting [`read`] looks up.
pub const SETTINGS: [Setting; 15] = [
    Setting {
        name: "REGION",
        kind: Kind::Plain,
        meaning: "the region this deployment serves (`pk`, `ae`, `eu`)",
    },
    Setting {
        name: "REGION_URLS",
        kind: Kind::Plain,
        meaning: "`pk=https://…,ae=https://…`: every region's base URL, for `/api/v1/regions` (the Worker's cron trigger calls its own)",
    },
    Setting {
        name: "DB_URL",
        kind: Kind::Plain,
        meaning: "the region's libSQL server (`http://127.0.0.1:9010` locally); for a Turso region every database's URL, `{name}` standing for its name (`https://{name}-<org>.turso.io`)",
    },
    Setting {
        name: "DB_ADMIN_URL",
        kind: Kind::Plain,
        meaning: "sqld's admin API (loopback, or an authenticated tunnel); for a Turso region its Platform API (`https://api.turso.tech`)",
    },
    Setting {
        name: "TURSO_ORG",
        kind: Kind::Plain,
        meaning: "a Turso region only: the organisation's slug",
    },
    Setting {
        name: "TURSO_GROUP",
        kind: Kind::Plain,
        meaning: "a Turso region only, optional, default the region's id: the group every database is created in, placed in the region's location of regions.toml alone",
    },
    Setting {
        name: "IDLE_TIMEOUT_SECS",
        kind: Kind::Plain,
        meaning: "optional, default 900",
    },
    Setting {
        name: "DB_TIMEOUT_MS",
        kind: Kind::Plain,
        meaning: "optional, default 10000: a database call unanswered by then is 503 `unavailable`",
    },
    Setting {
        name: "TEST_HOOKS",
        kind: Kind::Plain,
        meaning: "`1` enables the `/__test/…` routes (clinic clocks, platform staff, the checkpoint store's contents); refused unless every URL is loopback",
    },
    Setting {
        name: "SIGNUP_LIMITS",
        kind: Kind::Plain,
        meaning: "optional, default `10,200`: sign-ups an hour from one address, and in the region",
    },
    Setting {
        name: "REQUEST_LIMITS",
        kind: Kind::Plain,
        meaning: "optional, default `20/200,50/500`: requests a second and at once, per user and per address (kept per isolate)",
    },
    Setting {
        name: "ROOT_KEY",
        kind: Kind::Secret,
        meaning: "`v1:<64 hex digits>`, the region's key-encryption key; several versions comma-separated (`v1:…,v2:…`, the newest wraps) during a root rotation",
    },
    Setting {
        name: "DB_AUTH_TOKEN",
        kind: Kind::Secret,
        meaning: "optional bearer token for the libSQL server (sqld `--auth-jwt-key-file`); for a Turso region the group's database token",
    },
    Setting {
        name: "DB_ADMIN_TOKEN",
        kind: Kind::Secret,
        meaning: "optional bearer token for the admin tunnel; for a Turso region a Platform API token",
    },
    Setting {
        name: "MAINTAIN_TOKEN",
        kind: Kind::Secret,
        meaning: "32+ characters: the bearer token of `POST /internal/maintain`, the region's scheduled work (the Worker's cron trigger calls it on the region's hostname; Spin's scheduler likewise); without it the route answers 404 and the Worker's trigger does nothing",
    },
];

/// The settings as the deploy guides' markdown table (the Worker's words:
/// `var` and `secret`).
pub fn doc_table() -> String {
    let mut t = String::from("| name | kind | meaning |\n|---|---|---|\n");
    for s in SETTINGS {
        let kind = match s.kind {
            Kind::Plain => "var",
            Kind::Secret => "secret",
        };
        t.push_str(&format!("| `{}` | {kind} | {} |\n", s.name, s.meaning));
    }
    t
}

/// Everything a wasm host needs to build its [`crate::App`].
pub struct Settings {
    pub config: Config,
    pub root: RootKeyring,
    pub db: SqldSettings,
    /// How long a database call may take before the request answers 503.
    pub db_timeout: Duration,
}

/// Reads the settings through `get(name, kind)`, which answers `None` for a
/// name that is unset (an empty value counts as unset).
pub fn read(get: impl Fn(&str, Kind) -> Option<String>) -> Result<Settings, String> {
    let optional = |name: &str, kind: Kind| get(name, kind).filter(|v| !v.is_empty());
    let required = |name: &str, kind: Kind| {
        optional(name, kind).ok_or_else(|| format!("the setting {name} is not set"))
    };
    let regions = Regions::builtin();
    let region_id = required("REGION", Kind::Plain)?;
    let region = regions
        .get(&region_id)
        .ok_or_else(|| format!("REGION {region_id} is not in regions.toml"))?;
    let mut infos = Vec::new();
    for pair in required("REGION_URLS", Kind::Plain)?.split(',') {
        let (id, url) = pair
            .trim()
            .split_once('=')
            .ok_or("REGION_URLS must be id=url,…")?;
        let r = regions
            .get(id)
            .ok_or_else(|| format!("REGION_URLS names {id}, which is not in regions.toml"))?;
        infos.push(RegionInfo::of(
            r,
            Some(url.trim_end_matches('/').to_owned()),
        ));
    }
    let own = infos
        .iter()
        .find(|i| i.id == region.id)
        .cloned()
        .ok_or("REGION_URLS must include this deployment's own region")?;
    let root_text = required("ROOT_KEY", Kind::Secret)?;
    let root = RootKeyring::parse(&region.id, &root_text).map_err(|e| format!("ROOT_KEY: {e}"))?;
    let provider = match region.database.provider {
        DatabaseProvider::Sqld => Provider::Namespaces,
        DatabaseProvider::Turso => Provider::Turso(TursoPlacement {
            region: region.id.clone(),
            organization: required("TURSO_ORG", Kind::Plain)?,
            group: optional("TURSO_GROUP", Kind::Plain).unwrap_or_else(|| region.id.clone()),
            location: region.database.location.clone(),
        }),
    };
    let db = SqldSettings {
        url: required("DB_URL", Kind::Plain)?,
        auth_token: optional("DB_AUTH_TOKEN", Kind::Secret),
        admin_url: Some(required("DB_ADMIN_URL", Kind::Plain)?),
        admin_token: optional("DB_ADMIN_TOKEN", Kind::Secret),
        provider,
    };
    db.check("DB_URL")?;
    let mut config = Config::new(own, infos);
    if let Some(secs) = optional("IDLE_TIMEOUT_SECS", Kind::Plain) {
        config.idle_timeout_secs = secs
            .parse()
            .ok()
            .filter(|s| (60..=86_400).contains(s))
            .ok_or("IDLE_TIMEOUT_SECS must be 60 to 86400")?;
    }
    match optional("TEST_HOOKS", Kind::Plain).as_deref() {
        None | Some("0") => {}
        Some("1") => {
            let all_local = is_loopback(&db.url)
                && db.admin_url.as_deref().is_some_and(is_loopback)
                && config
                    .regions
                    .iter()
                    .all(|r| r.url.as_deref().is_some_and(is_loopback));
            if !all_local {
                return Err("TEST_HOOKS is refused unless every URL is loopback".into());
            }
            config.test_hooks = true;
        }
        Some(_) => return Err("TEST_HOOKS must be 0 or 1".into()),
    }
    if let Some(limits) = optional("SIGNUP_LIMITS", Kind::Plain) {
        config.signups = limits.parse().map_err(|e| format!("SIGNUP_LIMITS {e}"))?;
    }
    if let Some(limits) = optional("REQUEST_LIMITS", Kind::Plain) {
        config.requests = limits.parse().map_err(|e| format!("REQUEST_LIMITS {e}"))?;
    }
    config.maintain_token = match optional("MAINTAIN_TOKEN", Kind::Secret) {
        Some(t) if t.len() < 32 => {
            return Err("MAINTAIN_TOKEN must be at least 32 characters".into())
        }
        t => t,
    };
    let timeout_ms: u64 = match optional("DB_TIMEOUT_MS", Kind::Plain) {
        None => 10_000,
        Some(ms) => ms
            .parse()
            .ok()
            .filter(|ms| (100..=60_000).contains(ms))
            .ok_or("DB_TIMEOUT_MS must be 100 to 60000")?,
    };
    Ok(Settings {
        config,
        root,
        db,
        db_timeout: Duration::from_millis(timeout_ms),
    })
}

/// Whether a URL's host is the loopback interface.
pub fn is_loopback(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "127.0.0.1" || host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn base() -> HashMap<&'static str, (&'static str, Kind)> {
        HashMap::from([
            ("REGION", ("pk", Kind::Plain)),
            (
                "REGION_URLS",
                ("pk=http://127.0.0.1:1,ae=http://127.0.0.1:2/", Kind::Plain),
            ),
            // pk is a Turso region (regions.toml).
            ("DB_URL", ("http://127.0.0.1:3/{name}", Kind::Plain)),
            ("DB_ADMIN_URL", ("http://127.0.0.1:4", Kind::Plain)),
            ("TURSO_ORG", ("amanah", Kind::Plain)),
            ("ROOT_KEY", (KEY, Kind::Secret)),
        ])
    }

    fn read_from(m: &HashMap<&'static str, (&'static str, Kind)>) -> Result<Settings, String> {
        read(|name, kind| {
            m.get(name)
                .filter(|(_, k)| *k == kind)
                .map(|(v, _)| (*v).to_owned())
        })
    }

    #[test]
    fn reads_a_complete_configuration() {
        let s = read_from(&base()).unwrap();
        assert_eq!(s.config.region.id, "pk");
        assert_eq!(
            s.config.regions[1].url.as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(s.db_timeout, Duration::from_secs(10));
        assert!(!s.config.test_hooks);
    }

    #[test]
    fn refuses_what_is_missing_or_out_of_range() {
        for (name, value, kind, why) in [
            ("REGION", "", Kind::Plain, "REGION is not set"),
            ("REGION", "xx", Kind::Plain, "not in regions.toml"),
            (
                "REGION_URLS",
                "ae=http://127.0.0.1:2",
                Kind::Plain,
                "own region",
            ),
            ("ROOT_KEY", KEY, Kind::Plain, "ROOT_KEY is not set"),
            ("ROOT_KEY", "v1:00", Kind::Secret, "ROOT_KEY:"),
            ("IDLE_TIMEOUT_SECS", "5", Kind::Plain, "60 to 86400"),
            ("DB_TIMEOUT_MS", "soon", Kind::Plain, "100 to 60000"),
            ("TEST_HOOKS", "yes", Kind::Plain, "0 or 1"),
            ("TURSO_ORG", "", Kind::Plain, "TURSO_ORG is not set"),
            (
                "DB_URL",
                "http://127.0.0.1:3",
                Kind::Plain,
                "DB_URL must name each database's URL with {name}",
            ),
        ] {
            let mut m = base();
            m.insert(name, (value, kind));
            let err = read_from(&m).err().unwrap_or_default();
            assert!(err.contains(why), "{name}={value}: {err}");
        }
    }

    #[test]
    fn the_provider_is_the_one_regions_toml_names() {
        let s = read_from(&base()).unwrap();
        assert_eq!(
            s.db.provider,
            Provider::Turso(TursoPlacement {
                region: "pk".into(),
                organization: "amanah".into(),
                group: "pk".into(),
                location: "aws-ap-southeast-1".into(),
            })
        );
        // ae is a self-run sqld: one URL, namespaces; a template is refused.
        let mut m = base();
        m.insert("REGION", ("ae", Kind::Plain));
        let err = read_from(&m).err().unwrap_or_default();
        assert!(err.contains("self-run sqld"), "{err}");
        m.insert("DB_URL", ("http://127.0.0.1:3", Kind::Plain));
        let s = read_from(&m).unwrap();
        assert_eq!(s.db.provider, Provider::Namespaces);
    }

    #[test]
    fn the_deploy_guide_shows_the_settings_as_they_are() {
        let guide = include_str!("../../docs/deploy-worker.md");
        assert!(
            guide.contains(&doc_table()),
            "docs/deploy-worker.md's settings table is not settings::doc_table(); paste:\n{}",
            doc_table()
        );
    }

    #[test]
    fn every_name_read_is_listed_with_its_kind() {
        let seen = std::cell::RefCell::new(Vec::new());
        let m = base();
        let _ = read(|name, kind| {
            seen.borrow_mut().push((name.to_owned(), kind));
            m.get(name).map(|(v, _)| (*v).to_owned())
        });
        for (name, kind) in seen.into_inner() {
            assert!(
                SETTINGS.iter().any(|s| s.name == name && s.kind == kind),
                "{name}"
            );
        }
    }

    #[test]
    fn test_hooks_only_when_everything_is_loopback() {
        let mut m = base();
        m.insert("TEST_HOOKS", ("1", Kind::Plain));
        assert!(read_from(&m).unwrap().config.test_hooks);
        m.insert("DB_URL", ("https://{name}-amanah.turso.io", Kind::Plain));
        assert!(read_from(&m).err().unwrap_or_default().contains("loopback"));
        m.insert("DB_URL", ("http://127.0.0.1:3/{name}", Kind::Plain));
        m.insert("DB_ADMIN_URL", ("https://api.turso.tech", Kind::Plain));
        assert!(read_from(&m).err().unwrap_or_default().contains("loopback"));
    }
}
