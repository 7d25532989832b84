//! The Worker's configuration, from its environment: vars in `wrangler.toml`
//! (per region environment) and secrets set with `wrangler secret put`.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `REGION` | var | the region this deployment serves (`pk`, `ae`, `eu`) |
//! | `REGION_URLS` | var | `pk=https://pk.…,ae=https://ae.…`: every region's base URL |
//! | `DB_URL` | var | the region's libSQL server (`http://127.0.0.1:9010` locally) |
//! | `DB_ADMIN_URL` | var | sqld's admin API, loopback or an authenticated tunnel |
//! | `IDLE_TIMEOUT_SECS` | var | optional, default 900 |
//! | `DB_TIMEOUT_MS` | var | optional, default 10000: a database call with no answer by then is 503 |
//! | `TEST_HOOKS` | var | `1` enables `/__test/clock`; refused unless every URL is loopback |
//! | `ROOT_KEY` | secret | `v1:<64 hex>`, the region's key-encryption key |
//! | `DB_AUTH_TOKEN` | secret | optional bearer token for the libSQL server |
//! | `DB_ADMIN_TOKEN` | secret | optional bearer token for the admin API |

use amanah_functions::crypto::keys::RootKey;
use amanah_functions::{App, Config, RegionInfo};
use amanah_region_config::Regions;
use worker::Env;

use amanah_functions::store::sqld::SqldSettings;

use crate::db::EdgeHost;

fn var(env: &Env, name: &str) -> Result<String, String> {
    env.var(name)
        .map(|v| v.to_string())
        .map_err(|_| format!("the var {name} is not set"))
}

fn optional(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .ok()
        .or_else(|| env.secret(name).map(|v| v.to_string()).ok())
        .filter(|v| !v.is_empty())
}

fn is_loopback(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "127.0.0.1" || host == "localhost" || host.ends_with(".localhost")
}

/// Builds the application from the environment.
pub fn app(env: &Env) -> Result<App<EdgeHost>, String> {
    let regions = Regions::builtin();
    let region_id = var(env, "REGION")?;
    let region = regions
        .get(&region_id)
        .ok_or_else(|| format!("REGION {region_id} is not in regions.toml"))?;
    let mut infos = Vec::new();
    for pair in var(env, "REGION_URLS")?.split(',') {
        let (id, url) = pair
            .trim()
            .split_once('=')
            .ok_or("REGION_URLS must be id=url,…")?;
        let r = regions
            .get(id)
            .ok_or_else(|| format!("REGION_URLS names {id}, which is not in regions.toml"))?;
        infos.push(RegionInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            location: r.location.clone(),
            url: Some(url.trim_end_matches('/').to_owned()),
        });
    }
    let own = infos
        .iter()
        .find(|i| i.id == region.id)
        .cloned()
        .ok_or("REGION_URLS must include this deployment's own region")?;
    let root_text = env
        .secret("ROOT_KEY")
        .map(|s| s.to_string())
        .map_err(|_| "the secret ROOT_KEY is not set".to_owned())?;
    let root = RootKey::parse(&region.id, &root_text).map_err(|e| format!("ROOT_KEY: {e}"))?;
    let db = SqldSettings {
        url: var(env, "DB_URL")?,
        auth_token: optional(env, "DB_AUTH_TOKEN"),
        admin_url: var(env, "DB_ADMIN_URL")?,
        admin_token: optional(env, "DB_ADMIN_TOKEN"),
    };
    let mut config = Config::new(own, infos);
    if let Some(secs) = optional(env, "IDLE_TIMEOUT_SECS") {
        config.idle_timeout_secs = secs
            .parse()
            .ok()
            .filter(|s| (60..=86_400).contains(s))
            .ok_or("IDLE_TIMEOUT_SECS must be 60 to 86400")?;
    }
    if optional(env, "TEST_HOOKS").as_deref() == Some("1") {
        let all_local = is_loopback(&db.url)
            && is_loopback(&db.admin_url)
            && config
                .regions
                .iter()
                .all(|r| r.url.as_deref().is_some_and(is_loopback));
        if !all_local {
            return Err("TEST_HOOKS is refused unless every URL is loopback".into());
        }
        config.test_hooks = true;
    }
    let timeout_ms: u64 = match optional(env, "DB_TIMEOUT_MS") {
        None => 10_000,
        Some(ms) => ms
            .parse()
            .ok()
            .filter(|ms| (100..=60_000).contains(ms))
            .ok_or("DB_TIMEOUT_MS must be 100 to 60000")?,
    };
    let timeout = std::time::Duration::from_millis(timeout_ms);
    Ok(App::new(EdgeHost::new(db, timeout, root), config))
}
