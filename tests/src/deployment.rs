//! A deployment under test: which host serves it ([`HostKind`]), how its
//! databases are kept ([`Layout`]), and its lifecycle: a fresh native
//! `amanah serve` per test, or the Worker or Spin deployment `cargo xtask
//! up` describes; restarts, kills, redeploys, and the region's scheduled
//! work run as production runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::client::Client;
use crate::fixtures::fresh_key;

/// A running deployment with one base URL per region.
pub struct Deployment {
    pub pk: String,
    pub ae: String,
    pub data_dir: Option<PathBuf>,
    /// The server's log files.
    pub logs: Vec<PathBuf>,
    /// How clinic databases are kept.
    pub layout: Layout,
    /// Which host serves it.
    pub host: HostKind,
    /// The process group of an external deployment's processes, where known.
    pub process_group: Option<u32>,
    /// The bearer token of the Spin host's `POST /internal/maintain`.
    maintain_token: Option<String>,
    /// Whether the host tells the application the client's address. Spin
    /// does (`spin-client-addr`); `wasmtime serve`, which runs the Spin
    /// component here, does not.
    pub knows_client_address: bool,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// Which host serves a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// `amanah serve` on libSQL files.
    Native,
    /// The Worker under `wrangler dev`, a sqld per region.
    Worker,
    /// The Spin component under `wasmtime serve`, a sqld per region.
    Spin,
    /// A deployment started elsewhere, known by its URLs only.
    External,
}

impl HostKind {
    /// As `deployment.json` and screenshots name it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Native => "native",
            HostKind::Worker => "worker",
            HostKind::Spin => "spin",
            HostKind::External => "external",
        }
    }

    fn parse(s: &str) -> Option<HostKind> {
        [
            HostKind::Native,
            HostKind::Worker,
            HostKind::Spin,
            HostKind::External,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for HostKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a deployment keeps clinic databases.
#[derive(Clone, Debug)]
pub enum Layout {
    /// `<data>/<region>/<clinic>.db` (the native host).
    Files,
    /// A namespace per clinic on a `sqld` per region (the Worker host).
    Sqld(Vec<SqldRegion>),
}

impl SqldRegion {
    /// HTTP requests the server has answered so far (its Prometheus
    /// counter): each is one round trip from the host.
    pub fn answered_requests(&self) -> u64 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let text = agent
            .get(&format!("{}/metrics", self.admin_url))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .expect("sqld metrics");
        text.lines()
            .filter(|l| l.starts_with("libsql_server_user_http_response{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The running server's process id, found by its command line (the
    /// recorded pid goes stale once a test restarts the server).
    pub fn running_pid(&self) -> Option<u32> {
        let addr = self
            .args
            .iter()
            .skip_while(|a| *a != "--http-listen-addr")
            .nth(1)?
            .clone();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            let is_sqld = args.first().is_some_and(|a| a.ends_with(b"sqld"));
            (is_sqld && args.contains(&addr.as_bytes())).then_some(pid)
        })
    }
}

/// One region's libSQL server in a [`Layout::Sqld`] deployment.
#[derive(Clone, Debug)]
pub struct SqldRegion {
    pub region: String,
    pub url: String,
    pub admin_url: String,
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub args: Vec<String>,
    /// A Turso region (regions.toml): its databases are the stand-in's,
    /// each a namespace of this sqld under its Turso name.
    pub turso: Option<TursoRegion>,
}

/// What the stand-in for Turso of a region gives an operator.
#[derive(Clone, Debug)]
pub struct TursoRegion {
    /// Every database's URL, `{name}` for its name.
    pub db_url: String,
    /// The group's database token.
    pub db_token: String,
}

impl SqldRegion {
    /// The sqld namespace of `name` (`directory` or a clinic id): itself,
    /// or on a Turso region its Turso database's name.
    pub fn namespace(&self, name: &str) -> String {
        match &self.turso {
            Some(_) => amanah_functions::store::turso::database_name(&self.region, name),
            None => name.to_owned(),
        }
    }

    /// What an operator's `--sqld` names: the server, or on a Turso region
    /// every database's URL.
    pub fn operator_url(&self) -> String {
        self.turso
            .as_ref()
            .map_or_else(|| self.url.clone(), |t| t.db_url.clone())
    }

    /// The environment an operator's command needs for `--sqld` (the
    /// database token of a Turso region).
    pub fn operator_env(&self) -> Vec<(&'static str, String)> {
        self.turso
            .as_ref()
            .map(|t| vec![("AMANAH_DB_AUTH_TOKEN", t.db_token.clone())])
            .unwrap_or_default()
    }
}

/// Another, empty libSQL server (the deployment's `sqld` binary, its own
/// temporary data dir and ports), stopped when dropped: the replacement
/// server a restore goes into.
pub struct FreshSqld {
    pub url: String,
    pub admin_url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A loopback port free at the moment of asking.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl FreshSqld {
    pub fn start(bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (http, admin) = (free_port(), free_port());
        let child = Command::new(bin)
            .arg("--db-path")
            .arg(dir.path().join("sqld"))
            .args(["--http-listen-addr", &format!("127.0.0.1:{http}")])
            .args(["--admin-listen-addr", &format!("127.0.0.1:{admin}")])
            .args(["--enable-namespaces", "--no-welcome"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sqld");
        let server = FreshSqld {
            url: format!("http://127.0.0.1:{http}"),
            admin_url: format!("http://127.0.0.1:{admin}"),
            child,
            _dir: dir,
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok()
            {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the fresh sqld did not listen within 15 s");
    }
}

impl Drop for FreshSqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // A failing test shows the server's last errors (no personal data
        // is logged) before its temporary directory goes.
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let errors: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("ERROR") || l.contains("\"status\":5"))
                    .collect();
                eprintln!(
                    "--- {} (last errors)\n{}",
                    log.display(),
                    errors[errors.len().saturating_sub(10)..].join("\n")
                );
            }
        }
        self.kill();
    }
}

/// The built front end (`frontend/dist`, from `cargo xtask test` or `up`),
/// if there is one: native deployments serve it.
pub fn frontend_dist() -> Option<PathBuf> {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .join("frontend")
        .join("dist");
    dist.join("amanah_bg.wasm").exists().then_some(dist)
}

/// How many times `what` appears in the log file at `path` (0 while it
/// cannot be read).
pub fn log_count(path: &Path, what: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(what)
        .count()
}

/// Waits, at most 5 seconds, for `done`: for what a process does on its own
/// time (a signal handled, a log line written), not to move a clock.
/// Panics with `what` if it never happens.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never happened: {what}");
}

/// The `amanah` binary this workspace built.
pub fn amanah_bin() -> PathBuf {
    if let Ok(p) = std::env::var("AMANAH_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("debug").join("amanah")
}

impl Deployment {
    /// The deployment under test: external if `AMANAH_PK_URL` is set, else a
    /// fresh native one.
    pub fn start() -> Self {
        match (
            std::env::var("AMANAH_PK_URL"),
            std::env::var("AMANAH_AE_URL"),
        ) {
            (Ok(pk), Ok(ae)) => Deployment {
                pk,
                ae,
                data_dir: std::env::var("AMANAH_DATA_DIR").ok().map(PathBuf::from),
                logs: Vec::new(),
                layout: Layout::Files,
                host: HostKind::External,
                process_group: None,
                maintain_token: None,
                knows_client_address: true,
                child: None,
                _tmp: None,
            },
            _ => match std::env::var("AMANAH_DEPLOYMENT") {
                Ok(file) => Self::from_file(Path::new(&file)),
                Err(_) => Self::start_native(&[]),
            },
        }
    }

    /// A deployment described by `cargo xtask up`'s `deployment.json`.
    pub fn from_file(file: &Path) -> Self {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let v: Value = serde_json::from_str(&text).expect("deployment.json");
        let region = |id: &str| v["regions"][id].clone();
        let text_of = |v: &Value| v.as_str().expect("string in deployment.json").to_owned();
        let mut logs = Vec::new();
        let mut servers = Vec::new();
        for id in ["pk", "ae"] {
            let r = region(id);
            logs.extend(
                r["logs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| PathBuf::from(text_of(l))),
            );
            if let Some(log) = r["turso"]["log"].as_str() {
                logs.push(PathBuf::from(log));
            }
            servers.push(SqldRegion {
                turso: r["turso"]["db_url"].as_str().map(|db_url| TursoRegion {
                    db_url: db_url.to_owned(),
                    db_token: text_of(&r["turso"]["db_token"]),
                }),
                region: id.to_owned(),
                url: text_of(&r["sqld_url"]),
                admin_url: text_of(&r["sqld_admin_url"]),
                dir: PathBuf::from(text_of(&r["sqld_dir"])),
                bin: PathBuf::from(text_of(&r["sqld_bin"])),
                args: r["sqld_args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text_of)
                    .collect(),
            });
        }
        Deployment {
            pk: text_of(&region("pk")["url"]),
            ae: text_of(&region("ae")["url"]),
            data_dir: Some(PathBuf::from(text_of(&v["data_dir"]))),
            logs,
            layout: Layout::Sqld(servers),
            host: v["host"]
                .as_str()
                .and_then(HostKind::parse)
                .unwrap_or(HostKind::Worker),
            process_group: v["process_group"].as_u64().map(|g| g as u32),
            maintain_token: v["maintain_token"].as_str().map(str::to_owned),
            knows_client_address: v["client_address"].as_bool().unwrap_or(true),
            child: None,
            _tmp: None,
        }
    }

    /// A region's newest root key, read from the deployment's key file (native,
    /// Worker and Spin deployments of this repository keep it at
    /// `<data>/keys/<region>.root.key`); `None` for an external deployment.
    pub fn root_key(&self, region: &str) -> Option<amanah_functions::crypto::keys::RootKey> {
        if self.host == HostKind::External {
            return None;
        }
        let file = self
            .data_dir
            .as_ref()?
            .join("keys")
            .join(format!("{region}.root.key"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        Some(
            amanah_functions::crypto::keys::RootKeyring::parse(region, &text)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                .current()
                .clone(),
        )
    }

    /// The bearer token of `POST /internal/maintain`, on a deployment
    /// whose scheduler calls it (Spin).
    pub fn maintain_token(&self) -> Option<&str> {
        self.maintain_token.as_deref()
    }

    /// Restarts the hosts of a Worker or Spin deployment that `cargo xtask
    /// up` runs, their secrets read again (`ROOT_KEY` from the key file), as
    /// a production redeploy does; returns once every region answers again.
    /// The same file protocol as `cargo xtask redeploy`.
    pub fn redeploy(&self) {
        self.restart_hosts(false);
    }

    /// Kills the hosts of a Worker or Spin deployment that `cargo xtask up`
    /// runs, as a crash would (SIGKILL to each host and everything under
    /// it, whatever it was doing), and starts them again; returns once
    /// every region answers again.
    pub fn kill_hosts(&self) {
        self.restart_hosts(true);
    }

    fn restart_hosts(&self, kill: bool) {
        let data = self
            .data_dir
            .as_ref()
            .expect("a deployment with a data dir");
        assert!(
            matches!(self.layout, Layout::Sqld(_)),
            "only a Worker or Spin deployment is redeployed"
        );
        let nonce = fresh_key();
        let done = data.join("redeploy.done");
        let _ = std::fs::remove_file(&done);
        let request = if kill {
            format!("{nonce} kill")
        } else {
            nonce.clone()
        };
        std::fs::write(data.join("redeploy.request"), request).expect("ask for a redeploy");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            if let Ok(answer) = std::fs::read_to_string(&done) {
                if let Some(rest) = answer.trim().strip_prefix(&nonce) {
                    assert_eq!(rest.trim(), "ok", "redeploy: {answer}");
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no answer to the redeploy"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// The root key versions a region's host says it holds (`/healthz/keys`).
    pub fn host_root_versions(&self, region: &str) -> Vec<u64> {
        let r = self.client(region).get("/healthz/keys");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["root_versions"]
            .as_array()
            .expect("root_versions")
            .iter()
            .map(|v| v.as_u64().expect("a version"))
            .collect()
    }

    /// The libSQL server of a region, in a [`Layout::Sqld`] deployment.
    pub fn sqld(&self, region: &str) -> Option<&SqldRegion> {
        match &self.layout {
            Layout::Sqld(servers) => servers.iter().find(|s| s.region == region),
            Layout::Files => None,
        }
    }

    /// Runs the purge of a region as production does: `amanah purge` on the
    /// native host's files, the cron trigger on the Worker, the scheduler's
    /// authenticated `POST /internal/maintain` on the Spin component.
    pub fn run_purge(&self, region: &str) -> String {
        match &self.layout {
            Layout::Files => {
                let data = self.data_dir.as_ref().expect("native data dir");
                let out = Command::new(amanah_bin())
                    .args([
                        "maintain",
                        "--insecure-test-hooks",
                        "--regions",
                        region,
                        "--data-dir",
                    ])
                    .arg(data)
                    .output()
                    .expect("run amanah maintain");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "amanah maintain: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                text
            }
            Layout::Sqld(_) => {
                let client = Client::new(self.url(region));
                // The Worker by its cron trigger (which calls the region's
                // own URL with the token); Spin by the token.
                let r = match &self.maintain_token {
                    Some(token) if self.host != HostKind::Worker => {
                        client.with_bearer(token).post_empty("/internal/maintain")
                    }
                    _ => client.get("/__scheduled?cron=17+*+*+*+*"),
                };
                let text = String::from_utf8_lossy(&r.raw).into_owned();
                assert_eq!(r.status, 200, "purge: {text:?}");
                text
            }
        }
    }

    /// Whether the suite runs against a deployment started elsewhere (a
    /// Worker, Spin, or any URL), not natively.
    pub fn external() -> bool {
        std::env::var("AMANAH_PK_URL").is_ok() || std::env::var("AMANAH_DEPLOYMENT").is_ok()
    }

    /// For a test that starts a native host with settings of its own: that
    /// host, or `None` (the test is skipped) when the suite runs against
    /// another host.
    pub fn native_only(extra: &[&str]) -> Option<Self> {
        if Self::external() {
            eprintln!("skipped: this test starts a native host with its own settings");
            return None;
        }
        Some(Self::start_native(extra))
    }

    /// A fresh `amanah serve` on a new temporary data dir.
    pub fn start_native(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut d = Self::start_native_in(&tmp.path().join("data"), extra);
        d._tmp = Some(tmp);
        d
    }

    /// `amanah serve` on a given data dir (to restart on the same data). Its
    /// log, at info level, goes to `<data>/../server.log`.
    pub fn start_native_in(data: &Path, extra: &[&str]) -> Self {
        Self::start_native_bin(&amanah_bin(), data, extra)
    }

    /// A given `amanah` binary (a test build) serving `data`.
    pub fn start_native_bin(bin: &Path, data: &Path, extra: &[&str]) -> Self {
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build -p amanah` (cargo xtask test does)",
            bin.display()
        );
        let log_path = data
            .parent()
            .expect("data dir has a parent")
            .join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-test-hooks",
            "--data-dir",
        ])
        .arg(data)
        .args(extra);
        // A test signs many clinics up and calls fast, from one address:
        // the limits are the suites' own business (a test that proves them
        // gives its own).
        for (flag, value) in [
            ("--signup-limits", "1000000,1000000"),
            ("--request-limits", "1000000/1000000,1000000/1000000"),
        ] {
            if !extra.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        if let Some(dist) = frontend_dist() {
            cmd.arg("--assets").arg(dist);
        }
        let mut child = cmd
            .env("AMANAH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn amanah serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read ready line");
        let url = |region: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{region}=")))
                .unwrap_or_else(|| panic!("no {region} in ready line {line:?}"))
                .to_owned()
        };
        assert!(
            line.starts_with("ready "),
            "unexpected first line {line:?}; see {}",
            log_path.display()
        );
        Deployment {
            pk: url("pk"),
            ae: url("ae"),
            data_dir: Some(data.to_path_buf()),
            logs: vec![log_path],
            layout: Layout::Files,
            host: HostKind::Native,
            process_group: None,
            maintain_token: None,
            knows_client_address: true,
            child: Some(child),
            _tmp: None,
        }
    }

    /// Stops a native server and starts a new one on the same data dir (a
    /// new process: nothing remembered but what is on disk).
    pub fn restart_native(&mut self) {
        let data = self.data_dir.clone().expect("native data dir");
        self.kill();
        let mut fresh = Self::start_native_in(&data, &[]);
        self.pk = std::mem::take(&mut fresh.pk);
        self.ae = std::mem::take(&mut fresh.ae);
        self.logs.append(&mut fresh.logs);
        self.child = fresh.child.take();
    }

    /// Stops a native server (as `kill -9` would).
    /// The process id of a native host this suite started.
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, region: &str) -> &str {
        match region {
            "pk" => &self.pk,
            "ae" => &self.ae,
            other => panic!("no region {other} in this deployment"),
        }
    }

    /// An anonymous client of a region.
    pub fn client(&self, region: &str) -> Client {
        Client::new(self.url(region))
    }
}
