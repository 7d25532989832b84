//! Local deployments of the wasm hosts (the Worker on workerd, the Spin
//! component under `wasmtime serve`): a real `sqld` per region with
//! namespaces, the host per region in front of it, and the
//! `deployment.json` the end-to-end harness reads.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amanah_region_config::DatabaseProvider;

use crate::wait_healthy;

/// Regions a local deployment serves, in port order.
pub const REGIONS: [&str; 2] = ["pk", "ae"];

pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// 32 random bytes from the kernel, as 64 hex digits (keys, tokens).
pub fn random_hex() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The region's root key file (`v1:<hex>`, one version a line, 0600),
/// created on first run; the same format as the native host's, so one data
/// dir's keys serve either.
pub fn root_key(data: &Path, region: &str) -> Result<String, String> {
    let dir = data.join("keys");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    let file = dir.join(format!("{region}.root.key"));
    if !file.exists() {
        let hex = random_hex()?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        writeln!(f, "v1:{hex}").map_err(|e| e.to_string())?;
    }
    // Every version the file holds (after a rotation, more than one), as
    // the secret takes them: comma-separated.
    fs::read_to_string(&file)
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(","))
        .map_err(|e| format!("{}: {e}", file.display()))
}

pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let _ = fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

pub fn log_file(path: &Path) -> Result<fs::File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One region of a local deployment: its sqld, and the host serving it.
pub struct RegionProc {
    pub id: &'static str,
    pub port: u16,
    pub sqld_http: u16,
    pub sqld_admin: u16,
    sqld_args: Vec<String>,
    sqld: Child,
    /// Where `regions.toml` puts the region on Turso: the local stand-in
    /// for Turso in front of the sqld.
    pub turso: Option<TursoStandin>,
    /// The host's process (`wrangler dev` or `wasmtime serve`).
    pub server: Option<Child>,
}

/// The local stand-in for Turso of one region (`xtask/turso-standin.py`):
/// its Platform API and each database's URL, backed by the region's sqld.
pub struct TursoStandin {
    pub port: u16,
    /// The organisation's slug (`TURSO_ORG`); the group is the region's id.
    pub org: String,
    /// The Platform API token (`DB_ADMIN_TOKEN`), made per deployment.
    pub api_token: String,
    /// The group's database token (`DB_AUTH_TOKEN`), minted at start as an
    /// operator would.
    pub db_token: String,
    child: Child,
}

/// The stand-in's script.
fn standin_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("turso-standin.py")
}

impl TursoStandin {
    /// Starts the stand-in before the region's sqld answers (it only
    /// forwards to it), waits for it, and makes the region's group and its
    /// token through its Platform API, as docs/turso.md has an operator do.
    fn start(
        dir: &Path,
        region: &str,
        location: &str,
        sqld_http: u16,
        sqld_admin: u16,
    ) -> Result<Self, String> {
        let port = free_port()?;
        let org = "amanah-local".to_owned();
        let api_token = random_hex()?;
        let child = Command::new("python3")
            .arg(standin_script())
            .args(["serve", "--port", &port.to_string()])
            .args(["--sqld-url", &format!("http://127.0.0.1:{sqld_http}")])
            .args([
                "--sqld-admin-url",
                &format!("http://127.0.0.1:{sqld_admin}"),
            ])
            .args(["--org", &org, "--state"])
            .arg(dir.join("turso-standin.json"))
            .env("TURSO_STANDIN_API_TOKEN", &api_token)
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("turso-standin.log"))?)
            .spawn()
            .map_err(|e| format!("cannot start the Turso stand-in (python3): {e}"))?;
        wait_port(port)?;
        let out = Command::new("python3")
            .arg(standin_script())
            .args(["setup", "--api", &format!("http://127.0.0.1:{port}")])
            .args(["--org", &org, "--group", region, "--location", location])
            .env("TURSO_STANDIN_API_TOKEN", &api_token)
            .output()
            .map_err(|e| format!("cannot run the Turso stand-in's setup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the Turso stand-in's setup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let db_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(TursoStandin {
            port,
            org,
            api_token,
            db_token,
            child,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl RegionProc {
    pub fn dir(&self, data: &Path) -> PathBuf {
        data.join(self.id)
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn sqld_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sqld_http)
    }
    pub fn sqld_admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sqld_admin)
    }

    /// The database settings of the region's host, as its provider in
    /// `regions.toml` wants them: `(name, value, secret)`.
    pub fn db_settings(&self) -> Vec<(&'static str, String, bool)> {
        match &self.turso {
            None => vec![
                ("DB_URL", self.sqld_url(), false),
                ("DB_ADMIN_URL", self.sqld_admin_url(), false),
            ],
            Some(t) => vec![
                ("DB_URL", format!("{}/{{name}}", t.url()), false),
                ("DB_ADMIN_URL", t.url(), false),
                ("TURSO_ORG", t.org.clone(), false),
                ("DB_AUTH_TOKEN", t.db_token.clone(), true),
                ("DB_ADMIN_TOKEN", t.api_token.clone(), true),
            ],
        }
    }
}

/// A wasm host that serves each region of a local deployment from its sqld.
pub trait WasmHost {
    /// `worker` or `spin`, as `deployment.json` names it.
    const NAME: &'static str;
    /// What the ready message calls it.
    const DESCRIPTION: &'static str;
    /// Builds what the host runs (before any process starts).
    fn build(&mut self) -> Result<(), String>;
    /// Starts the host's process for one region; `region_urls` is
    /// `pk=http://…,ae=http://…`. Returns it and its log file.
    fn start(
        &mut self,
        data: &Path,
        region: &RegionProc,
        region_urls: &str,
        test_hooks: bool,
    ) -> Result<(Child, PathBuf), String>;
    /// Extra members of `deployment.json` (`,"key":value…`), for tests.
    fn deployment_extra(&self) -> String {
        String::new()
    }
}

pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Starts sqld and the host per region and prints the ready line; runs
/// until a host process exits or the process is interrupted.
pub fn up<H: WasmHost>(
    host: &mut H,
    sqld_bin: &Path,
    data: &Path,
    port: u16,
    test_hooks: bool,
) -> Result<(), String> {
    host.build()?;
    fs::create_dir_all(data).map_err(|e| e.to_string())?;
    let data = data
        .canonicalize()
        .map_err(|e| format!("{}: {e}", data.display()))?;
    let regions_toml = amanah_region_config::Regions::builtin();
    let mut regions = Vec::new();
    for (i, id) in REGIONS.into_iter().enumerate() {
        let port = if port == 0 {
            free_port()?
        } else {
            port + i as u16
        };
        let (sqld_http, sqld_admin) = (free_port()?, free_port()?);
        let dir = data.join(id);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let sqld_args: Vec<String> = vec![
            "--db-path".into(),
            dir.join("sqld").to_string_lossy().into_owned(),
            "--http-listen-addr".into(),
            format!("127.0.0.1:{sqld_http}"),
            "--admin-listen-addr".into(),
            format!("127.0.0.1:{sqld_admin}"),
            "--enable-namespaces".into(),
            "--no-welcome".into(),
        ];
        let sqld = Command::new(sqld_bin)
            .args(&sqld_args)
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("sqld.log"))?)
            .spawn()
            .map_err(|e| format!("cannot start sqld: {e}"))?;
        let placement = &regions_toml
            .get(id)
            .ok_or_else(|| format!("region {id} is not in regions.toml"))?
            .database;
        let turso = match placement.provider {
            DatabaseProvider::Turso => Some(TursoStandin::start(
                &dir,
                id,
                &placement.location,
                sqld_http,
                sqld_admin,
            )),
            DatabaseProvider::Sqld => None,
        };
        let turso = match turso.transpose() {
            Ok(t) => t,
            Err(e) => {
                let mut sqld = sqld;
                let _ = sqld.kill();
                stop(&mut regions);
                return Err(e);
            }
        };
        regions.push(RegionProc {
            id,
            port,
            sqld_http,
            sqld_admin,
            sqld_args,
            sqld,
            turso,
            server: None,
        });
    }
    let result = start_servers(host, sqld_bin, &data, &mut regions, test_hooks);
    if let Err(e) = result {
        stop(&mut regions);
        return Err(e);
    }
    let outcome = watch(host, &data, &mut regions, test_hooks);
    stop(&mut regions);
    outcome
}

/// Where a redeploy is asked for (its text: a nonce of the asker's, and
/// ` kill` when the hosts are to be killed as a crash would, SIGKILL to
/// each host and every process under it, instead of stopped), and where the
/// deployment answers (`<nonce> ok` or `<nonce> error: …`).
pub const REDEPLOY_REQUEST: &str = "redeploy.request";
pub const REDEPLOY_DONE: &str = "redeploy.done";

/// `cargo xtask redeploy`: asks the deployment running on `data` to start
/// its hosts again, as a production redeploy would (the secrets read again:
/// `ROOT_KEY` from the key file), and waits for the answer.
pub fn redeploy(data: &Path) -> Result<(), String> {
    let nonce = random_hex()?;
    let done = data.join(REDEPLOY_DONE);
    let _ = fs::remove_file(&done);
    write_private(&data.join(REDEPLOY_REQUEST), &nonce)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(answer) = fs::read_to_string(&done) {
            if let Some(rest) = answer.trim().strip_prefix(&nonce) {
                return match rest.trim() {
                    "ok" => Ok(()),
                    other => Err(format!("redeploy failed: {other}")),
                };
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "no deployment answered a redeploy under {} (is `cargo xtask up` running on it?)",
        data.display()
    ))
}

/// Stops each region's host (`kill`: kills it and everything under it at
/// once, as a crash would) and starts it again, one region after another.
fn restart_servers<H: WasmHost>(
    host: &mut H,
    data: &Path,
    regions: &mut [RegionProc],
    test_hooks: bool,
    kill: bool,
) -> Result<(), String> {
    let region_urls: Vec<String> = regions
        .iter()
        .map(|r| format!("{}={}", r.id, r.url()))
        .collect();
    let region_urls = region_urls.join(",");
    for r in regions.iter_mut() {
        match r.server.take() {
            Some(w) if kill => kill_tree(w),
            Some(w) => stop_server(w),
            None => {}
        }
        wait_port_free(r.port)?;
        let (child, log) = host.start(data, r, &region_urls, test_hooks)?;
        r.server = Some(child);
        wait_healthy(&r.url(), Duration::from_secs(90))
            .map_err(|e| format!("{e}; see {}", log.display()))?;
    }
    Ok(())
}

fn wait_port_free(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("port {port} is still taken after its host stopped"))
}

fn start_servers<H: WasmHost>(
    host: &mut H,
    sqld_bin: &Path,
    data: &Path,
    regions: &mut [RegionProc],
    test_hooks: bool,
) -> Result<(), String> {
    for r in regions.iter() {
        wait_port(r.sqld_http)?;
        wait_port(r.sqld_admin)?;
    }
    let region_urls: Vec<String> = regions
        .iter()
        .map(|r| format!("{}={}", r.id, r.url()))
        .collect();
    let region_urls = region_urls.join(",");
    let mut logs = Vec::new();
    let mut launched = Vec::new();
    for r in regions.iter_mut() {
        launched.push(Instant::now());
        let (child, log) = host.start(data, r, &region_urls, test_hooks)?;
        r.server = Some(child);
        logs.push(log);
    }
    // Cold start: a region's launch to its first 200 (the benchmarks
    // report it; regions start one after another, so the later ones
    // started while the first was still booting).
    let mut cold_ms = Vec::new();
    for ((r, log), at) in regions.iter().zip(&logs).zip(&launched) {
        wait_healthy(&r.url(), Duration::from_secs(90))
            .map_err(|e| format!("{e}; see {}", log.display()))?;
        cold_ms.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    // What the end-to-end harness needs to drive and inspect this deployment.
    let mut json = format!("{{\"host\":{},\"data_dir\":", json_str(H::NAME));
    json.push_str(&json_str(&data.to_string_lossy()));
    if let Some(group) = own_process_group() {
        json.push_str(&format!(",\"process_group\":{group}"));
    }
    json.push_str(&host.deployment_extra());
    json.push_str(",\"regions\":{");
    for (i, ((r, log), cold)) in regions.iter().zip(&logs).zip(&cold_ms).enumerate() {
        if i > 0 {
            json.push(',');
        }
        let dir = r.dir(data);
        let args: Vec<String> = r.sqld_args.iter().map(|a| json_str(a)).collect();
        // A Turso region: where its databases are (for `--sqld`), the
        // token they want, and its stand-in's log (the logs scanned).
        let turso = r.turso.as_ref().map_or(String::new(), |t| {
            format!(
                "\"turso\":{{\"db_url\":{},\"db_token\":{},\"log\":{}}},",
                json_str(&format!("{}/{{name}}", t.url())),
                json_str(&t.db_token),
                json_str(&dir.join("turso-standin.log").to_string_lossy()),
            )
        });
        json.push_str(&format!(
            "{}:{{{turso}\"url\":{},\"cold_start_ms\":{cold:.0},\"sqld_url\":{},\"sqld_admin_url\":{},\"sqld_bin\":{},\"sqld_args\":[{}],\"sqld_dir\":{},\"logs\":[{},{}]}}",
            json_str(r.id),
            json_str(&r.url()),
            json_str(&r.sqld_url()),
            json_str(&r.sqld_admin_url()),
            json_str(&sqld_bin.to_string_lossy()),
            args.join(","),
            json_str(&dir.join("sqld").to_string_lossy()),
            json_str(&log.to_string_lossy()),
            json_str(&dir.join("sqld.log").to_string_lossy()),
        ));
    }
    json.push_str("}}\n");
    write_private(&data.join("deployment.json"), &json)?;
    let ready: Vec<String> = regions
        .iter()
        .map(|r| format!("{}={}", r.id, r.url()))
        .collect();
    println!("ready {}", ready.join(" "));
    let _ = std::io::stdout().flush();
    eprintln!(
        "xtask: Amanah is up on {} with sqld per region; data in {}; Ctrl-C stops it",
        H::DESCRIPTION,
        data.display()
    );
    Ok(())
}

/// This process's group (field 5 of /proc/self/stat), so that a server a
/// test restarts joins the deployment's group and stops with it.
fn own_process_group() -> Option<u32> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// Waits until a host process exits (sqld may be stopped and restarted by
/// tests on purpose); redeploys when asked (see [`redeploy`]).
fn watch<H: WasmHost>(
    host: &mut H,
    data: &Path,
    regions: &mut [RegionProc],
    test_hooks: bool,
) -> Result<(), String> {
    let request = data.join(REDEPLOY_REQUEST);
    loop {
        if let Ok(text) = fs::read_to_string(&request) {
            let _ = fs::remove_file(&request);
            let (nonce, kill) = match text.trim().strip_suffix(" kill") {
                Some(nonce) => (nonce.to_owned(), true),
                None => (text.trim().to_owned(), false),
            };
            eprintln!(
                "xtask: {} the {} hosts",
                if kill {
                    "killing and restarting"
                } else {
                    "redeploying"
                },
                H::NAME
            );
            let result = restart_servers(host, data, regions, test_hooks, kill);
            let answer = match &result {
                Ok(()) => format!("{} ok\n", nonce.trim()),
                Err(e) => format!("{} error: {e}\n", nonce.trim()),
            };
            write_private(&data.join(REDEPLOY_DONE), &answer)?;
            result?;
            eprintln!("xtask: redeployed");
        }
        for r in regions.iter_mut() {
            if let Some(w) = r.server.as_mut() {
                if let Ok(Some(status)) = w.try_wait() {
                    return Err(format!(
                        "the {} host for {} exited: {status}",
                        H::NAME,
                        r.id
                    ));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// SIGKILL to a host and every process under it at once (workerd under
/// wrangler), as a crash would: nothing is drained or closed.
fn kill_tree(mut w: Child) {
    let mut tree = vec![w.id()];
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children_of(tree[i]));
        i += 1;
    }
    let pids: Vec<String> = tree.iter().map(u32::to_string).collect();
    let _ = Command::new("kill").arg("-KILL").args(&pids).status();
    let _ = w.wait();
}

/// The processes whose parent is `pid` (field 4 of /proc/PID/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let after_name = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

/// SIGTERM, 5 s to exit, then SIGKILL.
fn stop_server(mut w: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = w.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = w.kill();
    let _ = w.wait();
}

fn stop(regions: &mut [RegionProc]) {
    for r in regions.iter_mut() {
        if let Some(w) = r.server.take() {
            stop_server(w);
        }
        if let Some(mut t) = r.turso.take() {
            let _ = t.child.kill();
            let _ = t.child.wait();
        }
        let _ = r.sqld.kill();
        let _ = r.sqld.wait();
    }
}

pub fn wait_port(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listens on 127.0.0.1:{port}"))
}

/// `up --host <host> <flags>` as a child (the test run: `--test-hooks`; the
/// benchmarks: `--unlimited`): returns it with its data dir's deployment file
/// once it printed its ready line.
pub fn spawn(host: &str, data: &Path, flags: &[&str]) -> Result<(Child, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["up", "--host", host, "--port", "0"]).args(flags);
    let mut child = cmd
        .arg("--data-dir")
        .arg(data)
        // Its own process group, so the whole tree can be stopped at once.
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the {host} deployment: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if !line.starts_with("ready ") {
        let _ = child.kill();
        return Err(format!("the {host} deployment did not start: {line:?}"));
    }
    Ok((child, data.join("deployment.json")))
}

/// Stops a deployment started by [`spawn`] and everything it
/// started (its process group).
pub fn stop_tree(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}
