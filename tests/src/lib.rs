//! End-to-end harness: drives a running Amanah deployment over HTTP.
//!
//! By default each [`Deployment`] starts its own `amanah serve` on a fresh
//! temporary data directory with free ports and test hooks on. To run the same
//! suites against another host, start it and either set `AMANAH_DEPLOYMENT`
//! to the `deployment.json` that `cargo xtask up --host worker --test-hooks`
//! writes (URLs, sqld servers, data dir, logs), or set `AMANAH_PK_URL` and
//! `AMANAH_AE_URL` (and `AMANAH_DATA_DIR` where its files can be read; tests
//! that inspect files skip themselves otherwise). The host must accept
//! `POST /__test/clock`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use totp_rs::{Algorithm, TOTP};

pub use ureq::http::Method;

pub mod browser;

/// A good password for fixtures.
pub const PASSWORD: &str = "Saffron-Tea-Window-42";

/// A running deployment with one base URL per region.
pub struct Deployment {
    pub pk: String,
    pub ae: String,
    pub data_dir: Option<PathBuf>,
    /// The server's log files.
    pub logs: Vec<PathBuf>,
    /// How clinic databases are kept.
    pub layout: Layout,
    /// Which host serves it: `native`, `worker`, `spin`, or `external`.
    pub host: String,
    /// The process group of an external deployment's processes, where known.
    pub process_group: Option<u32>,
    /// The bearer token of the Spin host's `POST /internal/purge`.
    purge_token: Option<String>,
    /// Whether the host tells the application the client's address. Spin
    /// does (`spin-client-addr`); `wasmtime serve`, which runs the Spin
    /// component here, does not.
    pub knows_client_address: bool,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
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
                host: "external".into(),
                process_group: None,
                purge_token: None,
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
            servers.push(SqldRegion {
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
            host: v["host"].as_str().unwrap_or("worker").to_owned(),
            process_group: v["process_group"].as_u64().map(|g| g as u32),
            purge_token: v["purge_token"].as_str().map(str::to_owned),
            knows_client_address: v["client_address"].as_bool().unwrap_or(true),
            child: None,
            _tmp: None,
        }
    }

    /// The bearer token of the Spin host's `POST /internal/purge`, on a
    /// Spin deployment.
    /// A region's newest root key, read from the deployment's key file (native,
    /// Worker and Spin deployments of this repository keep it at
    /// `<data>/keys/<region>.root.key`); `None` for an external deployment.
    pub fn root_key(&self, region: &str) -> Option<amanah_functions::crypto::keys::RootKey> {
        if self.host == "external" {
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

    pub fn purge_token(&self) -> Option<&str> {
        self.purge_token.as_deref()
    }

    /// Restarts the hosts of a Worker or Spin deployment that `cargo xtask
    /// up` runs, their secrets read again (`ROOT_KEY` from the key file), as
    /// a production redeploy does; returns once every region answers again.
    /// The same file protocol as `cargo xtask redeploy`.
    pub fn redeploy(&self) {
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
        std::fs::write(data.join("redeploy.request"), &nonce).expect("ask for a redeploy");
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

    /// The file holding a clinic's database, where this deployment's files
    /// can be read.
    pub fn db_file(&self, clinic: &Clinic) -> Option<PathBuf> {
        match &self.layout {
            Layout::Files => self
                .data_dir
                .as_ref()
                .map(|d| d.join(&clinic.region).join(format!("{}.db", clinic.id))),
            Layout::Sqld(_) => self
                .sqld(&clinic.region)
                .map(|s| s.dir.join("dbs").join(&clinic.id).join("data")),
        }
    }

    /// Drops the audit table's append-only triggers and runs `sql` on a
    /// clinic's database, as someone with the database itself could (to cut
    /// the chain short, edit an entry, …).
    pub fn tamper_audit(&self, clinic: &Clinic, sql: &str) {
        self.clinic_sql(
            clinic,
            &[
                "DROP TRIGGER IF EXISTS audit_no_delete",
                "DROP TRIGGER IF EXISTS audit_no_update",
                sql,
            ],
        )
        .expect("this deployment's databases are reachable")
        .expect("tamper with the audit table");
    }

    /// Runs statements directly on a clinic's database, as someone with
    /// access to the database itself (not the API) could; `None` where this
    /// deployment's databases cannot be reached.
    pub fn clinic_sql(&self, clinic: &Clinic, statements: &[&str]) -> Option<Result<(), String>> {
        match &self.layout {
            Layout::Files => self.db_file(clinic).map(|f| sql_on_file(&f, statements)),
            Layout::Sqld(_) => self
                .sqld(&clinic.region)
                .map(|s| sql_on_sqld(&s.url, &clinic.id, statements)),
        }
    }

    /// The first column of the first row of a query on a region's directory
    /// or, with `clinic`, on a clinic's database (blobs as lowercase hex);
    /// `None` where this deployment's databases cannot be reached.
    pub fn scalar(
        &self,
        region: &str,
        clinic: Option<&Clinic>,
        sql: &str,
    ) -> Option<Result<Value, String>> {
        let ns = clinic.map_or("directory", |c| c.id.as_str());
        match &self.layout {
            Layout::Files => self
                .data_dir
                .as_ref()
                .map(|d| scalar_on_file(&d.join(region).join(format!("{ns}.db")), sql)),
            Layout::Sqld(_) => self.sqld(region).map(|s| scalar_on_sqld(&s.url, ns, sql)),
        }
    }

    /// Counts the values of a clinic's database sealed under data key
    /// `version` (the header's bytes 2..5), in every sealed column the key
    /// sweep covers, read from the database itself (its file, or its sqld
    /// namespace over Hrana) as someone with it would.
    pub fn sealed_under(&self, clinic: &Clinic, version: u32) -> i64 {
        let v = format!("X'{version:08x}'");
        let mut n = 0;
        for t in amanah_functions::store::schema::SEALED {
            for c in t.columns {
                let sql = format!(
                    "SELECT count(*) FROM {} WHERE substr({c}, 2, 4) = {v}",
                    t.table
                );
                n += self
                    .scalar(&clinic.region, Some(clinic), &sql)
                    .expect("a deployment whose databases can be read")
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .as_i64()
                    .unwrap_or_else(|| panic!("{sql}: not a number"));
            }
        }
        n
    }

    /// Every file of a region's directory database (database, WAL, and for
    /// sqld its replication log).
    pub fn directory_files(&self, region: &str) -> Vec<PathBuf> {
        match &self.layout {
            Layout::Files => self
                .data_dir
                .iter()
                .flat_map(|d| files_under(&d.join(region)))
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("directory.db"))
                })
                .collect(),
            Layout::Sqld(_) => self
                .sqld(region)
                .map(|s| files_under(&s.dir.join("dbs").join("directory")))
                .unwrap_or_default(),
        }
    }

    /// Every file of a clinic's database, where they can be read.
    pub fn clinic_files(&self, clinic: &Clinic) -> Vec<PathBuf> {
        let Some(main) = self.db_file(clinic) else {
            return Vec::new();
        };
        match &self.layout {
            Layout::Files => ["", "-wal", "-shm"]
                .iter()
                .map(|s| PathBuf::from(format!("{}{s}", main.display())))
                .filter(|p| p.exists())
                .collect(),
            Layout::Sqld(_) => main.parent().map(files_under).unwrap_or_default(),
        }
    }

    /// Creates platform staff as an operator does: `amanah staff add` on the
    /// native host's files, the test hook where the directory is a sqld
    /// namespace. Returns the id and the TOTP secret.
    pub fn add_platform_staff(&self, region: &str, role: &str, email: &str) -> (String, String) {
        match &self.layout {
            Layout::Files => {
                use std::io::Write;
                let data = self.data_dir.as_ref().expect("native data dir");
                let mut child = Command::new(amanah_bin())
                    .args([
                        "staff",
                        "add",
                        "--region",
                        region,
                        "--role",
                        role,
                        "--email",
                        email,
                        "--data-dir",
                    ])
                    .arg(data)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run amanah staff add");
                writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
                let out = child.wait_with_output().expect("staff add");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "staff add: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let field = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}=")))
                        .unwrap_or_else(|| panic!("no {k} in {text}"))
                        .to_owned()
                };
                (field("id"), field("totp_secret"))
            }
            Layout::Sqld(_) => {
                let r = self.client(region).post(
                    "/__test/staff",
                    json!({"role": role, "email": email, "password": PASSWORD}),
                );
                assert_eq!(r.status, 201, "staff: {}", r.body);
                (
                    r.body["id"].as_str().unwrap().to_owned(),
                    r.body["totp_secret"].as_str().unwrap().to_owned(),
                )
            }
        }
    }

    /// Runs the purge of a region as production does: `amanah purge` on the
    /// native host's files, the cron trigger on the Worker, the scheduler's
    /// authenticated `POST /internal/purge` on the Spin component.
    pub fn run_purge(&self, region: &str) -> String {
        match &self.layout {
            Layout::Files => {
                let data = self.data_dir.as_ref().expect("native data dir");
                let out = Command::new(amanah_bin())
                    .args([
                        "purge",
                        "--insecure-test-hooks",
                        "--regions",
                        region,
                        "--data-dir",
                    ])
                    .arg(data)
                    .output()
                    .expect("run amanah purge");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "amanah purge: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                text
            }
            Layout::Sqld(_) => {
                let client = Client::new(self.url(region));
                let r = match &self.purge_token {
                    Some(token) => client.with_bearer(token).post_empty("/internal/purge"),
                    None => client.get("/__scheduled?cron=17+*+*+*+*"),
                };
                let text = String::from_utf8_lossy(&r.raw).into_owned();
                assert_eq!(r.status, 200, "purge: {text:?}");
                text
            }
        }
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
            host: "native".into(),
            process_group: None,
            purge_token: None,
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

    /// A sign-up as a test's setup (see [`Client::post_setup`]).
    pub fn post_sign_up(&self, region: &str, body: Value) -> Resp {
        self.client(region).post_setup("/api/v1/clinics", body)
    }

    /// Signs a clinic up; returns its owner (not yet logged in).
    pub fn sign_up(&self, region: &str, clinic_name: &str, owner_email: &str) -> Clinic {
        let r = self.post_sign_up(
            region,
            json!({"name": clinic_name, "region": region,
                   "owner": {"name": "Dr Owner Person", "email": owner_email, "password": PASSWORD}}),
        );
        assert_eq!(r.status, 201, "sign-up: {}", r.body);
        Clinic {
            id: r.body["clinic"]["id"]
                .as_str()
                .expect("clinic id")
                .to_owned(),
            region: region.to_owned(),
            base: self.url(region).to_owned(),
            owner_id: r.body["owner"]["id"].as_str().expect("owner id").to_owned(),
            owner_email: owner_email.to_owned(),
        }
    }

    /// A clinic with an owner who has enrolled TOTP and is logged in.
    pub fn ready_clinic(&self, region: &str, name: &str, email: &str) -> (Clinic, Client, String) {
        let clinic = self.sign_up(region, name, email);
        let mut owner = clinic.login(email, PASSWORD);
        let secret = owner.enrol_totp(&clinic, PASSWORD);
        (clinic, owner, secret)
    }
}

/// A signed-up clinic.
#[derive(Clone, Debug)]
pub struct Clinic {
    pub id: String,
    pub region: String,
    pub base: String,
    pub owner_id: String,
    pub owner_email: String,
}

impl Clinic {
    /// Moves this clinic's clock forward on the server.
    pub fn advance(&self, seconds: i64) -> i64 {
        let r = Client::new(&self.base).post(
            "/__test/clock",
            json!({"clinic": self.id, "advance_seconds": seconds}),
        );
        assert_eq!(r.status, 200, "clock: {}", r.body);
        r.body["offset_seconds"].as_i64().expect("offset")
    }

    /// The clinic's current server time (Unix seconds).
    pub fn now(&self) -> i64 {
        unix_now() + self.advance(0)
    }

    /// The password step of login; asserts 200 and whether a code is asked for.
    fn password_step(&self, email: &str, password: &str, mfa_required: bool) -> (Client, Value) {
        let c = Client::new(&self.base);
        let r = c.post(
            "/api/v1/auth/login",
            json!({"clinic": self.id, "email": email, "password": password}),
        );
        assert_eq!(r.status, 200, "login: {}", r.body);
        assert_eq!(r.body["mfa_required"], mfa_required, "{}", r.body);
        (c, r.body)
    }

    /// Password login of a user without TOTP; panics unless it succeeds.
    pub fn login(&self, email: &str, password: &str) -> Client {
        let (c, body) = self.password_step(email, password, false);
        c.with_session(&body)
    }

    /// Full login with a TOTP code at the clinic's current time.
    pub fn login_with_totp(&self, email: &str, password: &str, secret: &str) -> Client {
        let (c, body) = self.password_step(email, password, true);
        let mfa = body["mfa_token"].as_str().expect("mfa token");
        let r = c.with_bearer(mfa).post(
            "/api/v1/auth/mfa",
            json!({"code": totp_code(secret, self.now())}),
        );
        assert_eq!(r.status, 200, "mfa: {}", r.body);
        c.with_session(&r.body)
    }

    /// Adds a staff member (as the given owner client); returns the user id.
    pub fn add_staff(&self, owner: &Client, role: &str, email: &str) -> String {
        let r = owner.post(
            "/api/v1/users",
            json!({"name": format!("Staff {role}"), "email": email, "role": role, "password": PASSWORD}),
        );
        assert_eq!(r.status, 201, "add staff: {}", r.body);
        r.body["id"].as_str().expect("user id").to_owned()
    }
}

/// A response, body parsed as JSON (`Value::Null` if empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Value,
    /// The body's bytes, as far as they came (see `complete`).
    pub raw: Vec<u8>,
    /// Whether the body ended properly (a broken download is not complete).
    pub complete: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The answer is an earlier request's, returned for its idempotency key.
    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
    /// Asserts the API error shape and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

/// An HTTP client of one region, with an optional bearer token.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Client {
            base: base.to_owned(),
            token: None,
            agent,
        }
    }

    /// The same client (its token) against another base URL, as after a
    /// server restart on new ports.
    pub fn rebased(&self, base: &str) -> Self {
        let mut c = self.clone();
        c.base = base.to_owned();
        c
    }

    pub fn with_bearer(&self, token: &str) -> Self {
        let mut c = self.clone();
        c.token = Some(token.to_owned());
        c
    }

    /// This client holding the session token of a login or MFA answer.
    pub fn with_session(&self, body: &Value) -> Self {
        self.with_bearer(body["session"]["token"].as_str().expect("session token"))
    }

    pub fn anonymous(&self) -> Self {
        let mut c = self.clone();
        c.token = None;
        c
    }

    /// Any request; `body` is sent as is with `headers`.
    pub fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let result = match body {
            Some(bytes) => self.agent.run(b.body(bytes).expect("request")),
            None => self.agent.run(b.body(()).expect("request")),
        };
        // A connection that breaks before the status line (as a download
        // that fails at once does) is status 0, its error in the body.
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                return Resp {
                    status: 0,
                    headers: Default::default(),
                    body: json!({ "transport_error": format!("{path}: {e}") }),
                    raw: Vec::new(),
                    complete: false,
                }
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut raw = Vec::new();
        let complete = std::io::Read::read_to_end(
            &mut resp.body_mut().with_config().limit(64 << 20).reader(),
            &mut raw,
        )
        .is_ok();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
            complete,
        }
    }

    pub fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        match body {
            Some(v) => self.raw(
                method,
                path,
                &[("content-type", "application/json")],
                Some(v.to_string().into_bytes()),
            ),
            None => self.raw(method, path, &[], None),
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None)
    }
    pub fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body))
    }
    pub fn post_empty(&self, path: &str) -> Resp {
        self.send(Method::POST, path, None)
    }
    pub fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None)
    }

    /// Starts and confirms TOTP enrolment; returns the base32 secret.
    pub fn enrol_totp(&mut self, clinic: &Clinic, password: &str) -> String {
        let r = self.post("/api/v1/auth/totp", json!({"password": password}));
        assert_eq!(r.status, 200, "totp start: {}", r.body);
        let secret = r.body["secret"].as_str().expect("secret").to_owned();
        assert!(r.body["otpauth_uri"]
            .as_str()
            .expect("uri")
            .starts_with("otpauth://totp/"));
        let r = self.post(
            "/api/v1/auth/totp/confirm",
            json!({"code": totp_code(&secret, clinic.now())}),
        );
        assert_eq!(r.status, 204, "totp confirm: {}", r.body);
        secret
    }

    /// A request that sets a test up, asked again (up to three times) while
    /// it answers 503, as the API tells clients to. A wasm host's call that
    /// meets a connection to sqld broken by a restart answers 503 once
    /// (SECURITY.md, "Found, not fixed yet"), and so does one that waited
    /// past sqld's busy timeout for the write lock ("database is locked")
    /// beside many writers; a persistent 503 still fails the test, and a
    /// 503 writes nothing (not even its audit entry), so counts stay exact.
    pub fn send_setup(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut tries = 0;
        loop {
            let r = self.send(method.clone(), path, body.clone());
            tries += 1;
            if r.status != 503 || tries == 4 {
                return r;
            }
            eprintln!("{path} answered 503 ({}); asking again", r.body);
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// [`Self::send_setup`] of a POST.
    pub fn post_setup(&self, path: &str, body: Value) -> Resp {
        self.send_setup(Method::POST, path, Some(body))
    }

    /// A POST with `Idempotency-Key: key`.
    pub fn post_with_key(&self, path: &str, key: &str, body: &Value) -> Resp {
        self.raw(
            Method::POST,
            path,
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            Some(body.to_string().into_bytes()),
        )
    }

    /// A write as a careful client makes it: under a fresh idempotency key,
    /// asked again with the same key when the answer is a 503 or never
    /// came (a 503 of a lost answer may hide a committed write; the key
    /// makes the retry return that write instead of doing it twice).
    pub fn post_once(&self, path: &str, body: Value) -> Resp {
        let key = fresh_key();
        let mut tries = 0;
        loop {
            let r = self.post_with_key(path, &key, &body);
            tries += 1;
            if !matches!(r.status, 0 | 503) || tries == 4 {
                return r;
            }
            eprintln!("{path} answered {} ({}); asking again", r.status, r.body);
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Creates a patient ([`Self::post_once`]); returns its id.
    pub fn create_patient(&self, body: Value) -> String {
        let r = self.post_once("/api/v1/patients", body);
        assert_eq!(r.status, 201, "create patient: {}", r.body);
        r.body["id"].as_str().expect("patient id").to_owned()
    }

    /// Books an appointment; asserts 201 and returns its id.
    pub fn book_appointment(
        &self,
        patient: &str,
        practitioner: &str,
        start: &str,
        end: &str,
    ) -> String {
        let r = self.post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": practitioner, "start": start, "end": end}),
        );
        assert_eq!(r.status, 201, "book: {}", r.body);
        r.body["id"].as_str().expect("appointment id").to_owned()
    }

    /// The number of audit entries, as verification counts them.
    pub fn audit_entries(&self) -> i64 {
        let r = self.get("/api/v1/audit/verify");
        assert_eq!(r.status, 200, "verify: {}", r.body);
        assert_eq!(r.body["ok"], true, "{}", r.body);
        r.body["entries"].as_i64().expect("entries")
    }

    /// The id of every patient this client can list, page after page.
    pub fn patient_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut path = "/api/v1/patients?limit=200".to_owned();
        loop {
            let r = self.get(&path);
            assert_eq!(r.status, 200, "list patients: {}", r.body);
            for p in r.body["items"].as_array().expect("items") {
                out.push(p["id"].as_str().expect("id").to_owned());
            }
            match r.body["next_cursor"].as_str() {
                Some(cur) => path = format!("/api/v1/patients?limit=200&cursor={cur}"),
                None => return out,
            }
        }
    }

    /// How many patients a search for `q` finds.
    pub fn search_count(&self, q: &str) -> usize {
        let r = self.get(&format!("/api/v1/patients?q={q}"));
        assert_eq!(r.status, 200, "search: {}", r.body);
        r.body["items"].as_array().expect("items").len()
    }
}

/// Patients created one after another on another thread until stopped:
/// the load a backup is taken under. Names are `<name><i>`, phones
/// `<phone_prefix> <i>` (seven digits).
pub struct BackgroundWrites {
    acknowledged: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl BackgroundWrites {
    pub fn start(owner: &Client, name: &'static str, phone_prefix: &'static str) -> Self {
        use std::sync::atomic::Ordering;
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (owner, acknowledged, stop) = (owner.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let r = owner.post(
                        "/api/v1/patients",
                        json!({"name": format!("{name}{i}"), "dob": "1970-01-01", "phone": format!("{phone_prefix} {i:07}")}),
                    );
                    if r.status == 201 {
                        let id = r.body["id"].as_str().expect("id").to_owned();
                        acknowledged.lock().expect("writes").push(id);
                    }
                }
            })
        };
        BackgroundWrites {
            acknowledged,
            stop,
            thread,
        }
    }

    /// Waits until `n` creates were answered 201; returns every one so far.
    pub fn after(&self, n: usize) -> Vec<String> {
        loop {
            let done = self.acknowledged.lock().expect("writes").clone();
            if done.len() >= n {
                return done;
            }
            std::thread::yield_now();
        }
    }

    /// Stops the writer; every id it was answered 201 for.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the writer thread");
        let all = self.acknowledged.lock().expect("writes").clone();
        all
    }
}

/// What a copy restored from a backup taken under [`BackgroundWrites`]
/// must hold, as `nurse` of the restored copy sees it: every patient
/// acknowledged `before` the backup began, none that was never
/// acknowledged (`all`), and every `step`th one opens and is found by its
/// phone. Returns the restored patients' ids.
pub fn check_restored_writes(
    nurse: &Client,
    before: &[String],
    all: &[String],
    step: usize,
) -> Vec<String> {
    let got = nurse.patient_ids();
    for id in before {
        assert!(
            got.contains(id),
            "{id} acknowledged before the backup, missing"
        );
    }
    for id in &got {
        assert!(all.contains(id), "{id} restored but never acknowledged");
    }
    for (i, id) in got.iter().enumerate().step_by(step) {
        let p = nurse.get(&format!("/api/v1/patients/{id}"));
        assert_eq!(p.status, 200, "{}", p.body);
        let phone = p.body["phone"].as_str().expect("phone").replace(' ', "");
        let found = nurse.get(&format!("/api/v1/patients?q={phone}"));
        assert!(
            found.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|x| x["id"] == **id),
            "patient {i} not found by phone in the restored copy: {}",
            found.body
        );
    }
    got
}

/// An idempotency key no other request of this test run uses.
pub fn fresh_key() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("e2e-{}-{t:x}-{n}", std::process::id())
}

/// The item of a list answer (`{"items": [...]}`) whose `key` is `value`.
pub fn item_where<'a>(body: &'a Value, key: &str, value: &str) -> &'a Value {
    body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i[key] == value))
        .unwrap_or_else(|| panic!("no item with {key} = {value} in {body}"))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The RFC 6238 code of a base32 secret at a Unix time.
pub fn totp_code(secret_b32: &str, unix: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .expect("base32 secret");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret).generate(unix as u64)
}

/// Every file under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs `work` on a connection to a database file (waiting for the
/// server's locks), on a runtime of its own.
fn on_file<T, F, Fut>(path: &Path, work: F) -> Result<T, String>
where
    F: FnOnce(libsql::Connection) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let conn = db.connect().map_err(|e| e.to_string())?;
        conn.query("PRAGMA busy_timeout = 5000", ())
            .await
            .map_err(|e| e.to_string())?;
        work(conn).await
    })
}

/// Runs statements directly on a database file, as an attacker with the file would.
pub fn sql_on_file(path: &Path, statements: &[&str]) -> Result<(), String> {
    on_file(path, |conn| async move {
        for s in statements {
            conn.execute(s, ()).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

fn libsql_json(v: libsql::Value) -> Value {
    match v {
        libsql::Value::Null => Value::Null,
        libsql::Value::Integer(i) => json!(i),
        libsql::Value::Real(r) => json!(r),
        libsql::Value::Text(t) => json!(t),
        libsql::Value::Blob(b) => json!(data_encoding::HEXLOWER.encode(&b)),
    }
}

/// The first column of the first row of a query on a database file
/// (`Value::Null` for no row).
pub fn scalar_on_file(path: &Path, sql: &str) -> Result<Value, String> {
    on_file(path, |conn| async move {
        let mut rows = conn.query(sql, ()).await.map_err(|e| e.to_string())?;
        match rows.next().await.map_err(|e| e.to_string())? {
            Some(row) => Ok(libsql_json(row.get_value(0).map_err(|e| e.to_string())?)),
            None => Ok(Value::Null),
        }
    })
}

/// The first column of the first row of a query on a sqld namespace.
pub fn scalar_on_sqld(url: &str, namespace: &str, sql: &str) -> Result<Value, String> {
    let body = hrana(url, namespace, &[sql])?;
    let result = &body["results"][0];
    if result["type"] == "error" {
        return Err(result["error"]["message"]
            .as_str()
            .unwrap_or("error")
            .to_owned());
    }
    let cell = &result["response"]["result"]["rows"][0][0];
    Ok(match cell["type"].as_str() {
        None | Some("null") => Value::Null,
        Some("integer") => json!(cell["value"].as_str().and_then(|v| v.parse::<i64>().ok())),
        Some("blob") => {
            let b = data_encoding::BASE64
                .decode(cell["base64"].as_str().unwrap_or("").as_bytes())
                .or_else(|_| {
                    data_encoding::BASE64_NOPAD
                        .decode(cell["base64"].as_str().unwrap_or("").as_bytes())
                })
                .map_err(|e| e.to_string())?;
            json!(data_encoding::HEXLOWER.encode(&b))
        }
        _ => cell["value"].clone(),
    })
}

/// One Hrana pipeline of statements on a namespace, its stream closed at
/// the end; the parsed response.
fn hrana(url: &str, namespace: &str, statements: &[&str]) -> Result<Value, String> {
    let requests: Vec<Value> = statements
        .iter()
        .map(|s| json!({"type": "execute", "stmt": {"sql": s}}))
        .chain([json!({"type": "close"})])
        .collect();
    pipeline(url, namespace, requests)
}

/// `POST /v3/pipeline` of `requests` on a fresh stream of a namespace.
fn pipeline(url: &str, namespace: &str, requests: Vec<Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("{url}/v3/pipeline"))
        .header(
            "x-namespace-bin",
            data_encoding::BASE64_NOPAD.encode(namespace.as_bytes()),
        )
        .send_json(json!({"baton": null, "requests": requests}))
        .map_err(|e| e.to_string())?;
    resp.body_mut().read_json().map_err(|e| e.to_string())
}

/// Runs statements on a sqld namespace over Hrana, stopping at the first
/// failure.
pub fn sql_on_sqld(url: &str, namespace: &str, statements: &[&str]) -> Result<(), String> {
    let body = hrana(url, namespace, statements)?;
    for r in body["results"].as_array().into_iter().flatten() {
        if r["type"] == "error" {
            return Err(r["error"]["message"].as_str().unwrap_or("error").to_owned());
        }
    }
    if body["results"].is_null() {
        return Err(body.to_string());
    }
    Ok(())
}

/// Starts a write transaction on a sqld namespace and leaves its stream
/// open, as a client that died mid-transaction does: sqld holds the lock
/// until its transaction timeout (5 s) lets a waiting writer take it.
pub fn abandon_write_transaction(url: &str, namespace: &str) -> Result<(), String> {
    // No `close`: the stream, and its transaction, stay open.
    let body = pipeline(
        url,
        namespace,
        vec![
            json!({"type": "execute", "stmt": {"sql": "BEGIN IMMEDIATE"}}),
            json!({"type": "execute", "stmt": {"sql": "SELECT count(*) FROM patients"}}),
        ],
    )?;
    match body["results"].as_array() {
        Some(r) if r.iter().all(|x| x["type"] == "ok") => Ok(()),
        _ => Err(body.to_string()),
    }
}

/// Running operator commands (`amanah keys | backup | restore | audit …`)
/// on a native deployment's files, as an operator runs them.
pub mod operators {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde_json::Value;

    use super::{amanah_bin, Deployment};

    /// A fresh native deployment, its data dir and a work dir; `None` (the
    /// test is skipped) when the suite runs against another deployment.
    pub fn native() -> Option<(Deployment, PathBuf, tempfile::TempDir)> {
        if std::env::var("AMANAH_PK_URL").is_ok() || std::env::var("AMANAH_DEPLOYMENT").is_ok() {
            eprintln!("skipped: operator commands work on the native host's files");
            return None;
        }
        let d = Deployment::start_native(&[]);
        let data = d.data_dir.clone().expect("native data dir");
        Some((d, data, tempfile::tempdir().expect("temp dir")))
    }

    /// The chain named `name` in the reports of `amanah audit … --json`.
    pub fn chain<'a>(reports: &'a Value, name: &str) -> &'a Value {
        reports
            .as_array()
            .expect("reports")
            .iter()
            .flat_map(|r| r["chains"].as_array().expect("chains"))
            .find(|c| c["chain"] == name)
            .unwrap_or_else(|| panic!("no chain {name} in {reports}"))
    }

    /// What one `amanah` command did.
    pub struct Ran {
        pub ok: bool,
        pub json: Value,
        pub stderr: String,
    }

    /// Runs `amanah <args> <flag> <path>… --json` with `env` added.
    pub fn operator(args: &[&str], paths: &[(&str, &Path)], env: &[(&str, &str)]) -> Ran {
        let mut c = Command::new(amanah_bin());
        c.args(args);
        for (flag, path) in paths {
            c.arg(flag).arg(path);
        }
        c.envs(env.iter().copied());
        let out = c.arg("--json").output().expect("run amanah");
        Ran {
            ok: out.status.success(),
            json: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
