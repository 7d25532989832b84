//! The command line, one definition per command and argument: clap derives
//! parsing, `--help` and the usage errors from these types.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amanah",
    version,
    about = "Amanah clinic records: native host and operator commands"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Serve every enabled region from embedded libSQL files.
    Serve(ServeArgs),
    /// The region's scheduled work, once (what `serve` runs every
    /// `--maintain-interval`): remove what has passed its 30-day grace period
    /// (deleted patients; deleted clinics, their data key first, then their
    /// database), finish any unfinished key sweep, and with
    /// `--checkpoint-dir` check and checkpoint every audit chain.
    #[command(alias = "purge")]
    Maintain(MaintainArgs),
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
pub(crate) struct Place {
    /// Data directory, as for `serve`.
    #[arg(long, default_value = "data")]
    pub(crate) data_dir: PathBuf,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    pub(crate) key_dir: Option<PathBuf>,
    /// One JSON document on standard output instead of text (no progress bars).
    #[arg(long)]
    pub(crate) json: bool,
}

/// A sqld region instead of the files of `--data-dir`.
#[derive(clap::Args, Clone)]
pub(crate) struct Remote {
    /// The region's libSQL server (the Worker's and Spin's databases, e.g.
    /// `http://127.0.0.1:8090`) instead of the files of `--data-dir`; root
    /// keys still come from `--key-dir`. For a Turso region, every
    /// database's URL with `{name}` for its name (a self-run sqld that
    /// replaced it takes its plain URL). A bearer token, where the server
    /// wants one, comes from `AMANAH_DB_AUTH_TOKEN`. Needs one region.
    #[arg(long, value_name = "URL")]
    pub(crate) sqld: Option<String>,
}

impl Place {
    pub(crate) fn key_dir(&self) -> PathBuf {
        self.key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
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
pub(crate) struct RotateRootArgs {
    #[arg(long)]
    pub(crate) region: String,
    /// Wrapped keys re-wrapped per transaction.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub(crate) batch: i64,
    /// With `--sqld`: a host of the region (its http:// URL; repeat for
    /// each). Re-wrapping starts only once every one says (`/healthz/keys`) it
    /// holds the new root version.
    #[arg(long = "host-url", value_name = "URL")]
    pub(crate) host_urls: Vec<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(clap::Args)]
pub(crate) struct RetireRootArgs {
    #[arg(long)]
    pub(crate) region: String,
    /// The root key version to remove (never the newest).
    #[arg(long)]
    pub(crate) version: u32,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(clap::Args)]
pub(crate) struct RotateClinicArgs {
    /// The clinic id (its region is part of it).
    #[arg(long)]
    pub(crate) clinic: String,
    /// Only make the new version; `amanah serve` re-seals the rest in the
    /// background (new writes use the new version at once).
    #[arg(long)]
    pub(crate) no_sweep: bool,
    /// Rows re-sealed per transaction.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub(crate) batch: i64,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(clap::Args)]
pub(crate) struct KeysStatusArgs {
    /// Regions (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    pub(crate) regions: Vec<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    #[arg(long)]
    pub(crate) region: String,
    /// A new (or empty) directory for this backup.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// An earlier backup of the region: clinics whose audit chain has not
    /// moved since are carried over from it instead of copied again.
    #[arg(long)]
    pub(crate) since: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(clap::Args)]
pub(crate) struct RestoreArgs {
    /// A backup, or a directory of backups (then the newest, or with
    /// `--at` the newest taken at or before that time).
    #[arg(long)]
    pub(crate) from: PathBuf,
    /// RFC 3339 time, e.g. 2026-12-02T09:00:00Z.
    #[arg(long)]
    pub(crate) at: Option<String>,
    /// Only this clinic.
    #[arg(long)]
    pub(crate) clinic: Option<String>,
    /// The region to restore into; must be the backup's own.
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// The fresh data dir to restore into.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// The live data dir whose directory is the region's key store (clinic
    /// data keys are never in backups); default `data`.
    #[arg(long)]
    pub(crate) keys_from: Option<PathBuf>,
    /// Where region root keys live (default: `<keys-from>/keys`; required
    /// with `--sqld`).
    #[arg(long)]
    pub(crate) key_dir: Option<PathBuf>,
    /// With `--sqld`, the key store is the directory on the region's
    /// libSQL server; the restore still goes into `--data-dir`'s files.
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// Then copy the restored, verified files into this fresh libSQL
    /// server (a sqld region's replacement): a namespace per clinic and the
    /// directory, checked there. Refused if it holds region data already.
    #[arg(long, value_name = "URL", requires = "into_admin")]
    pub(crate) into_sqld: Option<String>,
    /// The admin API of `--into-sqld`, which creates its namespaces (a
    /// bearer token, where it wants one, from `AMANAH_DB_ADMIN_TOKEN`).
    #[arg(long, value_name = "URL", requires = "into_sqld")]
    pub(crate) into_admin: Option<String>,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(clap::Args)]
pub(crate) struct DrillArgs {
    #[arg(long)]
    pub(crate) region: String,
    /// Scratch directory: its `backup/` and `restore/` are replaced.
    #[arg(long, default_value = "drill")]
    pub(crate) scratch: PathBuf,
    /// Where the result is written as JSON (default: `<scratch>/drill.json`).
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// Restore only this clinic (with the directory); the backup is still
    /// the whole region's.
    #[arg(long)]
    pub(crate) clinic: Option<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Verifies every chain, then signs the head of each that passed.
    Checkpoint(AuditArgs),
    /// Checks chains from their first entry against their checkpoints:
    /// edits, truncation and rewrites are reported.
    Verify(AuditArgs),
}

#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    /// Regions (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    pub(crate) regions: Vec<String>,
    /// Only this clinic (`verify` only).
    #[arg(long)]
    pub(crate) clinic: Option<String>,
    /// Where checkpoints are kept (default: `<data-dir>/checkpoints`).
    #[arg(long)]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) place: Place,
}

#[derive(Subcommand)]
pub(crate) enum StaffCommand {
    /// Creates a staff account; its password is read from standard input
    /// (one line) and its TOTP secret is printed once.
    Add(StaffAddArgs),
}

#[derive(clap::Args)]
pub(crate) struct StaffAddArgs {
    /// The region whose directory holds the account.
    #[arg(long)]
    pub(crate) region: String,
    /// `support` or `superadmin`.
    #[arg(long)]
    pub(crate) role: String,
    #[arg(long)]
    pub(crate) email: String,
    /// Data directory, as for `serve`.
    #[arg(long, default_value = "data")]
    pub(crate) data_dir: PathBuf,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    pub(crate) key_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct MaintainArgs {
    /// Data directory, as for `serve`.
    #[arg(long, default_value = "data")]
    pub(crate) data_dir: PathBuf,
    /// Regions to maintain (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    pub(crate) regions: Vec<String>,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    pub(crate) key_dir: Option<PathBuf>,
    /// Check every audit chain against its checkpoints under this directory
    /// and sign the heads that pass (as `amanah audit checkpoint`).
    #[arg(long, value_name = "DIR")]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    /// Follow the clinic clocks that tests moved. Tests only.
    #[arg(long)]
    pub(crate) insecure_test_hooks: bool,
}

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Data directory: `<dir>/<region>/<clinic>.db` and `<dir>/<region>/directory.db`.
    #[arg(long, default_value = "data")]
    pub(crate) data_dir: PathBuf,
    /// Address of the first region; each further region takes the next port
    /// (port 0: every region gets a free port). Without `--tls-cert` only a
    /// loopback address is accepted.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// The certificate chain (PEM, leaf first): serve HTTPS, TLS 1.3 only,
    /// HTTP/2 or HTTP/1.1. Read again, with the key, on SIGHUP.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Regions to serve (default: every non-optional region of regions.toml).
    #[arg(long, value_delimiter = ',')]
    pub(crate) regions: Vec<String>,
    /// Where region root keys live (default: `<data-dir>/keys`).
    #[arg(long)]
    pub(crate) key_dir: Option<PathBuf>,
    /// Session idle timeout in seconds.
    #[arg(long, default_value_t = 900)]
    pub(crate) idle_timeout: i64,
    /// Enables the `/__test/…` routes for end-to-end tests. Loopback only.
    #[arg(long)]
    pub(crate) insecure_test_hooks: bool,
    /// Seconds between runs of the scheduled work (see `amanah maintain`).
    #[arg(long, default_value_t = 3600, alias = "purge-interval")]
    pub(crate) maintain_interval: u64,
    /// Where the scheduled work keeps audit checkpoints (as `amanah audit
    /// checkpoint --checkpoint-dir`); without it, no checkpoint is signed.
    #[arg(long, value_name = "DIR")]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    /// A proxy (or network of them) in front of this host whose
    /// `X-Forwarded-For` names the client; repeatable. Without one the
    /// client is the TCP peer, whatever the headers say.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections one address may hold open at once (trusted proxies
    /// aside).
    #[arg(long, default_value_t = 64)]
    pub(crate) max_connections_per_address: usize,
    /// Sign-ups an hour: from one address, and in each region
    /// (`ADDRESS,REGION`).
    #[arg(long, value_name = "ADDRESS,REGION", default_value = "10,200")]
    pub(crate) signup_limits: amanah_functions::SignupLimits,
    /// Requests a second and at once, per signed-in user and per address
    /// (`USER_RATE/BURST,ADDRESS_RATE/BURST`).
    #[arg(long, value_name = "LIMITS", default_value = "20/200,50/500")]
    pub(crate) request_limits: amanah_functions::RequestLimits,
    /// The built front end (`frontend/dist`), served at `/` by every region.
    /// Without it only the API is served.
    #[arg(long)]
    pub(crate) assets: Option<PathBuf>,
}
