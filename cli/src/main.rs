//! `amanah`: the native host and operator commands.
//!
//! `amanah serve` runs every enabled region of Amanah in one process on
//! embedded libSQL files, one listener per region.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use amanah_functions::{App, Config, RegionInfo};
use amanah_region_config::{Region, Regions};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use amanah::native_host::NativeHost;
use amanah::{assets, root_key, server};

mod commands;

#[derive(Parser)]
#[command(
    name = "amanah",
    version,
    about = "Amanah clinic records: native host and operator commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every enabled region from embedded libSQL files.
    Serve(ServeArgs),
    /// Remove what has passed its 30-day grace period: deleted patients, and
    /// deleted clinics (their data key first, then their database).
    Purge(PurgeArgs),
    /// Platform staff (support, superadmin) of a region.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Region root keys and clinic data keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Backs up a region online: every clinic database and the directory,
    /// each sealed, with a manifest of checksums, audit heads and row counts.
    Backup(BackupArgs),
    /// Restores a backup into a fresh data dir, checking every file,
    /// audit chain and row count as it goes.
    Restore(RestoreArgs),
    /// Restore drill: backs up, restores into a wiped scratch dir, verifies,
    /// and reports the RPO and RTO measured.
    Drill(DrillArgs),
    /// Audit chain checkpoints, kept outside the clinic databases.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// Where a region's files and keys are, and how to report.
#[derive(clap::Args, Clone)]
struct Place {
    /// Data directory, as for `serve`.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// One JSON document on standard output instead of text (no progress bars).
    #[arg(long)]
    json: bool,
}

/// A sqld region instead of the files of `--data-dir`.
#[derive(clap::Args, Clone)]
struct Remote {
    /// The region's libSQL server (the Worker's and Spin's databases, e.g.
    /// `http://127.0.0.1:8090`) instead of the files of `--data-dir`; root
    /// keys still come from `--key-dir`. A bearer token, where the server
    /// wants one, comes from `AMANAH_DB_AUTH_TOKEN`. Needs one region.
    #[arg(long, value_name = "URL")]
    sqld: Option<String>,
}

impl Place {
    fn key_dir(&self) -> PathBuf {
        self.key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Root key versions and file, what each wraps, the region key and
    /// checkpoint public key, every clinic's data key version, the root
    /// version wrapping it and whether its sweep is done.
    Status(KeysStatusArgs),
    /// Adds a root key version and re-wraps every clinic data key and the
    /// region key under it, online. Run again after an interruption: it
    /// resumes. With `--sqld`, two runs with a redeploy between them: the
    /// first adds the version to the key file, the second (once every
    /// `--host-url` holds it) re-wraps.
    RotateRoot(RotateRootArgs),
    /// Removes an old root key version from the key file once it wraps
    /// nothing (with `--sqld`: redeploy the hosts afterwards).
    RetireRoot(RetireRootArgs),
    /// Gives a clinic a new data key version, then re-seals its fields and
    /// rebuilds its search index under it.
    RotateClinic(RotateClinicArgs),
}

#[derive(clap::Args)]
struct RotateRootArgs {
    #[arg(long)]
    region: String,
    /// Wrapped keys re-wrapped per transaction.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch: i64,
    /// With `--sqld`: a host of the region (its http:// URL; repeat for
    /// each). Re-wrapping starts only once every one says (`/healthz/keys`) it
    /// holds the new root version.
    #[arg(long = "host-url", value_name = "URL")]
    host_urls: Vec<String>,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(clap::Args)]
struct RetireRootArgs {
    #[arg(long)]
    region: String,
    /// The root key version to remove (never the newest).
    #[arg(long)]
    version: u32,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(clap::Args)]
struct RotateClinicArgs {
    /// The clinic id (its region is part of it).
    #[arg(long)]
    clinic: String,
    /// Only make the new version; `amanah serve` re-seals the rest in the
    /// background (new writes use the new version at once).
    #[arg(long)]
    no_sweep: bool,
    /// Rows re-sealed per transaction.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch: i64,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(clap::Args)]
struct KeysStatusArgs {
    /// Regions (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(clap::Args)]
struct BackupArgs {
    #[arg(long)]
    region: String,
    /// A new (or empty) directory for this backup.
    #[arg(long)]
    out: PathBuf,
    /// An earlier backup of the region: clinics whose audit chain has not
    /// moved since are carried over from it instead of copied again.
    #[arg(long)]
    since: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// A backup, or a directory of backups (then the newest, or with
    /// `--at` the newest taken at or before that time).
    #[arg(long)]
    from: PathBuf,
    /// RFC 3339 time, e.g. 2026-12-02T09:00:00Z.
    #[arg(long)]
    at: Option<String>,
    /// Only this clinic.
    #[arg(long)]
    clinic: Option<String>,
    /// The region to restore into; must be the backup's own.
    #[arg(long)]
    region: Option<String>,
    /// The fresh data dir to restore into.
    #[arg(long)]
    data_dir: PathBuf,
    /// The live data dir whose directory is the region's key store (clinic
    /// data keys are never in backups); default `data`.
    #[arg(long)]
    keys_from: Option<PathBuf>,
    /// Where region root keys live (default: `<keys-from>/keys`; required
    /// with `--sqld`).
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// With `--sqld`, the key store is the directory on the region's
    /// libSQL server; the restore still goes into `--data-dir`'s files.
    #[command(flatten)]
    remote: Remote,
    /// Then copy the restored, verified files into this fresh libSQL
    /// server (a sqld region's replacement): a namespace per clinic and the
    /// directory, checked there. Refused if it holds region data already.
    #[arg(long, value_name = "URL", requires = "into_admin")]
    into_sqld: Option<String>,
    /// The admin API of `--into-sqld`, which creates its namespaces (a
    /// bearer token, where it wants one, from `AMANAH_DB_ADMIN_TOKEN`).
    #[arg(long, value_name = "URL", requires = "into_sqld")]
    into_admin: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct DrillArgs {
    #[arg(long)]
    region: String,
    /// Scratch directory: its `backup/` and `restore/` are replaced.
    #[arg(long, default_value = "drill")]
    scratch: PathBuf,
    /// Where the result is written as JSON (default: `<scratch>/drill.json`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Restore only this clinic (with the directory); the backup is still
    /// the whole region's.
    #[arg(long)]
    clinic: Option<String>,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verifies every chain, then signs the head of each that passed.
    Checkpoint(AuditArgs),
    /// Checks chains from their first entry against their checkpoints:
    /// edits, truncation and rewrites are reported.
    Verify(AuditArgs),
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Regions (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Only this clinic (`verify` only).
    #[arg(long)]
    clinic: Option<String>,
    /// Where checkpoints are kept (default: `<data-dir>/checkpoints`).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    place: Place,
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Creates a staff account; its password is read from standard input
    /// (one line) and its TOTP secret is printed once.
    Add(StaffAddArgs),
}

#[derive(clap::Args)]
struct StaffAddArgs {
    /// The region whose directory holds the account.
    #[arg(long)]
    region: String,
    /// `support` or `superadmin`.
    #[arg(long)]
    role: String,
    #[arg(long)]
    email: String,
    /// Data directory, as for `serve`.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    key_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PurgeArgs {
    /// Data directory, as for `serve`.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Regions to purge (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// Follow the clinic clocks that tests moved. Tests only.
    #[arg(long)]
    insecure_test_hooks: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory: `<dir>/<region>/<clinic>.db` and `<dir>/<region>/directory.db`.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Address of the first region; each further region takes the next port
    /// (port 0: every region gets a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Regions to serve (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// Session idle timeout in seconds.
    #[arg(long, default_value_t = 900)]
    idle_timeout: i64,
    /// Enables `POST /__test/clock` for end-to-end tests. Loopback only.
    #[arg(long)]
    insecure_test_hooks: bool,
    /// Seconds between purge runs (see `amanah purge`).
    #[arg(long, default_value_t = 3600)]
    purge_interval: u64,
    /// The built front end (`frontend/dist`), served at `/` by every region.
    /// Without it only the API is served.
    #[arg(long)]
    assets: Option<PathBuf>,
}

fn main() -> ExitCode {
    install_panic_hook();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMANAH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("amanah: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Purge(args) => runtime.block_on(purge(args)),
        Command::Staff(StaffCommand::Add(args)) => runtime.block_on(staff_add(args)),
        Command::Keys(KeysCommand::Status(args)) => runtime.block_on(commands::keys_status(args)),
        Command::Keys(KeysCommand::RotateRoot(args)) => {
            runtime.block_on(commands::rotate_root(args))
        }
        Command::Keys(KeysCommand::RetireRoot(args)) => {
            runtime.block_on(commands::retire_root(args))
        }
        Command::Keys(KeysCommand::RotateClinic(args)) => {
            runtime.block_on(commands::rotate_clinic(args))
        }
        Command::Backup(args) => runtime.block_on(commands::backup(args)),
        Command::Restore(args) => runtime.block_on(commands::restore(args)),
        Command::Drill(args) => runtime.block_on(commands::drill(args)),
        Command::Audit(AuditCommand::Checkpoint(args)) => {
            runtime.block_on(commands::audit(args, true))
        }
        Command::Audit(AuditCommand::Verify(args)) => {
            runtime.block_on(commands::audit(args, false))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amanah: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Panics are logged with their location only: a payload could hold data.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("{{\"level\":\"ERROR\",\"fields\":{{\"message\":\"panic\",\"at\":\"{at}\"}}}}");
    }));
}

fn info(r: &Region, url: Option<String>) -> RegionInfo {
    amanah::ops::region_info(r, url)
}

/// The regions named on the command line, or every default one.
fn chosen_regions(names: &[String]) -> Result<Vec<Region>, String> {
    let all = Regions::builtin();
    if names.is_empty() {
        Ok(all.default_enabled())
    } else {
        all.select(names).map_err(|e| e.to_string())
    }
}

/// One region's host on the data directory, with its root key (created on
/// first use).
fn region_host(data_dir: &Path, key_dir: &Path, region: &Region) -> Result<NativeHost, String> {
    let (ring, created) = root_key::load_or_create(key_dir, &region.id)?;
    let key_path = root_key::path(key_dir, &region.id);
    if created {
        tracing::info!(region = region.id, path = %key_path.display(), "created region root key (0600)");
    } else {
        tracing::info!(region = region.id, path = %key_path.display(), versions = ?ring.versions(), "using region root keys");
    }
    let keys = root_key::KeyFile::follow(key_dir, &region.id)?;
    NativeHost::with_keys(&region.id, data_dir.to_path_buf(), keys)
        .map_err(|e| format!("cannot create the data directory for {}: {e}", region.id))
}

async fn purge(args: PurgeArgs) -> Result<(), String> {
    let key_dir = args
        .key_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys"));
    let mut failed = 0;
    for region in chosen_regions(&args.regions)? {
        let host = region_host(&args.data_dir, &key_dir, &region)?;
        let mut config = Config::new(info(&region, None), vec![info(&region, None)]);
        config.test_hooks = args.insecure_test_hooks;
        let app = App::new(host, config);
        let report = app
            .purge()
            .await
            .map_err(|e| format!("purge of {} failed: {}", region.id, e.log_text()))?;
        println!(
            "purged region={} clinics={} patients={} failed={} unscrubbed={}",
            region.id, report.clinics, report.patients, report.failed, report.unscrubbed
        );
        failed += report.failed;
    }
    if failed > 0 {
        return Err(format!(
            "{failed} clinic(s) could not be purged; see the log"
        ));
    }
    Ok(())
}

async fn staff_add(args: StaffAddArgs) -> Result<(), String> {
    let region = chosen_regions(std::slice::from_ref(&args.region))?
        .pop()
        .ok_or("no such region")?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let key_dir = args
        .key_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys"));
    let host = region_host(&args.data_dir, &key_dir, &region)?;
    let app = App::new(
        host,
        Config::new(info(&region, None), vec![info(&region, None)]),
    );
    let staff = app
        .add_staff(&args.role, &args.email, password)
        .await
        .map_err(|e| match e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.log_text(),
        })?;
    println!("id={}", staff.id);
    println!("totp_secret={}", staff.totp_secret);
    println!("otpauth_uri={}", staff.otpauth_uri);
    Ok(())
}

/// Runs the purge and the key sweep (the re-sealing after a clinic key
/// rotation, see `amanah_functions::rekey`) every `every` seconds for as
/// long as the server runs.
async fn purge_periodically(app: Arc<App<NativeHost>>, region: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match app.sweep_due().await {
            Ok(r) if r == Default::default() => {}
            Ok(r) => tracing::info!(
                region,
                swept = r.swept,
                resealed_rows = r.resealed_rows,
                failed = r.failed,
                "key sweep"
            ),
            Err(e) => tracing::error!(region, error = e.log_text(), "key sweep failed"),
        }
        match app.purge().await {
            Ok(r) if r == Default::default() => {}
            Ok(r) => tracing::info!(
                region,
                clinics = r.clinics,
                patients = r.patients,
                failed = r.failed,
                unscrubbed = r.unscrubbed,
                "purge"
            ),
            Err(e) => tracing::error!(region, error = e.log_text(), "purge failed"),
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let regions = chosen_regions(&args.regions)?;
    if args.insecure_test_hooks && !args.listen.ip().is_loopback() {
        return Err("--insecure-test-hooks is refused unless listening on loopback".into());
    }
    if cfg!(feature = "inject-forgot-clinic") {
        if !args.insecure_test_hooks {
            return Err(
                "this is a test build with an injected tenancy bug: it runs only with --insecure-test-hooks"
                    .into(),
            );
        }
        tracing::warn!("test build: the injected \"forgot the clinic\" bug is in this binary");
    }
    if !(1..=7 * 24 * 3600).contains(&args.purge_interval) {
        return Err("--purge-interval must be 1 second to 7 days".into());
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
        listeners.push((region.clone(), l, format!("http://{bound}")));
    }
    let infos: Vec<RegionInfo> = listeners
        .iter()
        .map(|(r, _, url)| info(r, Some(url.clone())))
        .collect();

    let mut ready = String::from("ready");
    let mut tasks = Vec::new();
    for (region, listener, url) in listeners {
        let host = region_host(&args.data_dir, &key_dir, &region)?;
        let mut config = Config::new(info(&region, Some(url.clone())), infos.clone());
        config.idle_timeout_secs = args.idle_timeout;
        config.test_hooks = args.insecure_test_hooks;
        if config.test_hooks {
            tracing::warn!(
                region = region.id,
                "test hooks enabled: POST /__test/clock moves clinic clocks"
            );
        }
        let app = Arc::new(App::new(host, config));
        tracing::info!(region = region.id, url, data = %args.data_dir.join(&region.id).display(), "serving region");
        ready.push_str(&format!(" {}={url}", region.id));
        tokio::spawn(purge_periodically(
            app.clone(),
            region.id.clone(),
            Duration::from_secs(args.purge_interval),
        ));
        tasks.push(tokio::spawn(server::serve(
            listener,
            app,
            assets.clone(),
            region.id.clone(),
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
