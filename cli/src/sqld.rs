//! Operator commands on a sqld region (the Worker's and Spin's databases):
//! the application over Hrana from this machine, with the region's root
//! keys from the operator's copy of the key file (the one `cargo xtask
//! deploy` turns into the hosts' `ROOT_KEY` secret).
//!
//! Plain HTTP only: sqld's listener is reached on loopback or through an
//! authenticated tunnel, as its admin API is. A bearer token for
//! `--auth-jwt-key-file` comes from `AMANAH_DB_AUTH_TOKEN`, never from an
//! argument (arguments show in `ps`).

use std::time::Duration;

use amanah_functions::store::hrana::Transport;
use amanah_functions::store::sqld::{Platform, Provider, SqldHost, SqldSettings};
use amanah_functions::store::turso::{TursoPlacement, NAME_PLACEHOLDER};
use amanah_functions::{App, Config};
use amanah_region_config::Region;

use crate::native_host::os_random;
use crate::ops::{now, region_info};
use crate::root_key;

/// Hrana requests sent with `ureq` on a blocking thread.
#[derive(Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    pub fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        UreqTransport { agent }
    }
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl Transport for UreqTransport {
    fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(u16, Vec<u8>), String>> + Send {
        let agent = self.agent.clone();
        let url = url.to_owned();
        async move {
            let call = move || -> Result<(u16, Vec<u8>), String> {
                let mut req = ureq::http::Request::builder().method(method).uri(&url);
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                let req = req.body(body).map_err(|e| e.to_string())?;
                let mut resp = agent.run(req).map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(256 * 1024 * 1024)
                    .read_to_vec()
                    .map_err(|e| e.to_string())?;
                Ok((status, bytes))
            };
            tokio::task::spawn_blocking(call)
                .await
                .map_err(|e| e.to_string())?
        }
    }
}

/// The application over region `region`'s sqld at `url`, with the root
/// keys of `key_dir` (never created here). The directory must exist.
pub async fn open(
    url: &str,
    key_dir: &std::path::Path,
    region: &Region,
) -> Result<App<SqldHost<UreqTransport>>, String> {
    let app = connect(http_url("--sqld", url)?, None, key_dir, region)?;
    app.clinic_records().await.map_err(|e| match e.code {
        amanah_functions::error::Code::Unavailable => format!(
            "the sqld of region {} at {url} does not answer: {}",
            region.id,
            e.log_text()
        ),
        _ => format!(
            "no directory of region {} on the sqld at {url}: {}",
            region.id,
            e.log_text()
        ),
    })?;
    Ok(app)
}

/// The application over a *fresh* libSQL server for region `region` (a
/// restore's destination): no directory is needed, and namespaces are
/// created through the admin API at `admin_url` (a bearer token, where it
/// wants one, from `AMANAH_DB_ADMIN_TOKEN`).
pub fn open_fresh(
    url: &str,
    admin_url: &str,
    key_dir: &std::path::Path,
    region: &Region,
) -> Result<App<SqldHost<UreqTransport>>, String> {
    let admin = http_url("--into-admin", admin_url)?;
    connect(http_url("--into-sqld", url)?, Some(admin), key_dir, region)
}

/// `url` if it is a plain-HTTP URL naming a server; else why not, naming
/// the option it came from.
fn http_url<'a>(flag: &str, url: &'a str) -> Result<&'a str, String> {
    match url.strip_prefix("http://") {
        Some(rest) if !rest.trim_end_matches('/').is_empty() => Ok(url),
        Some(_) => Err(format!("{flag}: the URL names no server")),
        None => Err(format!(
            "{flag} {url:?}: give the server's http:// URL (loopback, or a tunnel's local end)"
        )),
    }
}

/// The application over the server at `url` (checked by [`http_url`]),
/// root keys from `key_dir`; with `admin_url`, it may create namespaces.
fn connect(
    url: &str,
    admin_url: Option<&str>,
    key_dir: &std::path::Path,
    region: &Region,
) -> Result<App<SqldHost<UreqTransport>>, String> {
    let ring = root_key::load(key_dir, &region.id)?;
    // The URL says how databases are addressed: with `{name}`, each at its
    // own URL (a Turso region); without, namespaces of one server (a
    // self-run sqld, a Turso region's replacement after a disaster among
    // them). An operator creates no Turso database.
    let provider = if url.contains(NAME_PLACEHOLDER) && admin_url.is_none() {
        Provider::Turso(TursoPlacement {
            region: region.id.clone(),
            // Used only by the Platform API, which this connection has not.
            organization: String::new(),
            group: String::new(),
            location: region.database.location.clone(),
        })
    } else {
        Provider::Namespaces
    };
    let settings = SqldSettings {
        url: url.trim_end_matches('/').to_owned(),
        auth_token: std::env::var("AMANAH_DB_AUTH_TOKEN").ok(),
        admin_url: admin_url.map(|u| u.trim_end_matches('/').to_owned()),
        admin_token: admin_url.and_then(|_| std::env::var("AMANAH_DB_ADMIN_TOKEN").ok()),
        provider,
    };
    settings.check(if admin_url.is_some() {
        "--into-sqld"
    } else {
        "--sqld"
    })?;
    let platform = Platform {
        now,
        fill_random: os_random,
    };
    let host = SqldHost::new(UreqTransport::new(), settings, ring, platform);
    let info = region_info(region, None);
    Ok(App::new(host, Config::new(info.clone(), vec![info])))
}

/// The root key versions the host at `url` holds, as its `GET /healthz/keys`
/// says. Plain HTTP, as for `--sqld` (loopback or a tunnel's local end).
pub fn host_root_versions(url: &str) -> Result<Vec<u32>, String> {
    http_url("--host-url", url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let health = format!("{}/healthz/keys", url.trim_end_matches('/'));
    let mut resp = agent
        .get(&health)
        .call()
        .map_err(|e| format!("{health}: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("{health} answered {}", resp.status()));
    }
    let body: serde_json::Value = resp
        .body_mut()
        .read_json()
        .map_err(|e| format!("{health}: {e}"))?;
    body["root_versions"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
        })
        .ok_or_else(|| format!("{health} names no root_versions (a host older than this command?)"))
}
