//! `amanah serve`: every region of the deployment on its own listener, each
//! with its scheduled work ([`amanah_functions::jobs::maintain`]) every
//! `--maintain-interval`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use amanah_functions::{App, Config, RegionInfo};
use tokio::net::TcpListener;

use amanah::native_host::NativeHost;
use amanah::{assets, server, tls};

use crate::args::ServeArgs;
use crate::commands::{chosen_regions, info, region_host};

/// Runs the region's scheduled work every `every` for as long as the
/// server runs; logs what each run did (counts and ids, never personal
/// data).
async fn maintain_periodically(app: Arc<App<NativeHost>>, region: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match amanah_functions::jobs::maintain(&app).await {
            Ok(r) if r.ok() => tracing::info!(region, report = %r.to_json(), "maintain"),
            Ok(r) => tracing::error!(region, report = %r.to_json(), "maintain found problems"),
            Err(e) => tracing::error!(region, error = e.log_text(), "maintain failed"),
        }
    }
}

/// Raises the soft limit on open files to the hard one (as Go's runtime
/// does): open clinics and connections each hold some, and the usual soft
/// limit of 1,024 is a default, not a decision. Returns the limit now.
fn raise_file_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    l.rlim_cur
}

pub(crate) async fn serve(args: ServeArgs) -> Result<(), String> {
    let regions = chosen_regions(&args.regions)?;
    let files = raise_file_limit();
    tracing::info!(open_files = files, "file limit");
    if args.insecure_test_hooks && !args.listen.ip().is_loopback() {
        return Err("--insecure-test-hooks is refused unless listening on loopback".into());
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::Tls::new(cert, key)?),
        _ if !tls::plain_allowed(&args.listen) => {
            return Err(format!(
            "plain HTTP is served on loopback only, and --listen {} is not: give --tls-cert and \
                 --tls-key, or listen on 127.0.0.1 behind a TLS proxy on this machine",
            args.listen
        ))
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    if cfg!(feature = "inject-forgot-clinic") {
        if !args.insecure_test_hooks {
            return Err(
                "this is a test build with an injected tenancy bug: it runs only with --insecure-test-hooks"
                    .into(),
            );
        }
        tracing::warn!("test build: the injected \"forgot the clinic\" bug is in this binary");
    }
    if !(1..=7 * 24 * 3600).contains(&args.maintain_interval) {
        return Err("--maintain-interval must be 1 second to 7 days".into());
    }
    if !(60..=24 * 3600).contains(&args.idle_timeout) {
        return Err("--idle-timeout must be 60 to 86400 seconds".into());
    }
    let key_dir = args
        .key_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys"));

    let assets = match &args.assets {
        Some(dir) => Some(Arc::new(assets::Assets::new(dir)?)),
        None => None,
    };
    let mut listeners = Vec::new();
    for (i, region) in regions.iter().enumerate() {
        let mut addr = args.listen;
        if addr.port() != 0 {
            addr.set_port(addr.port() + i as u16);
        }
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for region {}: {e}", region.id))?;
        let bound = l.local_addr().map_err(|e| e.to_string())?;
        listeners.push((region.clone(), l, format!("{scheme}://{bound}")));
    }
    let infos: Vec<RegionInfo> = listeners
        .iter()
        .map(|(r, _, url)| info(r, Some(url.clone())))
        .collect();

    if args.max_connections_per_address == 0 {
        return Err("--max-connections-per-address must be at least 1".into());
    }
    let limits = Arc::new(server::Limits {
        trusted_proxies: args.trusted_proxies.clone(),
        per_address: args.max_connections_per_address,
    });
    if let Some(tls) = &tls {
        tokio::spawn(reload_on_hangup(tls.pair.clone()));
    }
    let acceptor = tls.map(|t| t.acceptor);
    let mut ready = String::from("ready");
    let mut tasks = Vec::new();
    // Every region's host shares one set of open databases (one cap on
    // open clinics, one checkpointer).
    let databases = amanah::native_host::Databases::new();
    for (region, listener, url) in listeners {
        let host = region_host(&args.data_dir, &key_dir, &region)?
            .with_checkpoint_dir(args.checkpoint_dir.clone())
            .with_databases(databases.clone());
        let mut config = Config::new(info(&region, Some(url.clone())), infos.clone());
        config.idle_timeout_secs = args.idle_timeout;
        config.test_hooks = args.insecure_test_hooks;
        config.signups = args.signup_limits;
        config.requests = args.request_limits;
        if config.test_hooks {
            tracing::warn!(
                region = region.id,
                "test hooks enabled: /__test/… routes answer (clinic clocks, staff)"
            );
        }
        let app = Arc::new(App::new(host, config));
        tracing::info!(region = region.id, url, data = %args.data_dir.join(&region.id).display(), "serving region");
        ready.push_str(&format!(" {}={url}", region.id));
        tokio::spawn(maintain_periodically(
            app.clone(),
            region.id.clone(),
            Duration::from_secs(args.maintain_interval),
        ));
        tasks.push(tokio::spawn(server::serve(
            listener,
            app,
            assets.clone(),
            region.id.clone(),
            limits.clone(),
            acceptor.clone(),
        )));
    }
    println!("{ready}");
    let _ = std::io::stdout().flush();

    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
        _ = futures::future::join_all(tasks) => {}
    }
    Ok(())
}

/// Reads the certificate and key again on every SIGHUP (a renewal); a pair
/// that does not load is logged and the running one kept.
async fn reload_on_hangup(pair: Arc<tls::Reloadable>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP: the certificate is read at start only");
        return;
    };
    while hangups.recv().await.is_some() {
        match pair.reload() {
            Ok(()) => tracing::info!("SIGHUP: certificate and key read again"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the new certificate was refused; the running one stays")
            }
        }
    }
}
