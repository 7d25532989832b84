//! The Worker host locally: building the wasm bundle, the offline
//! `wrangler deploy --dry-run` of every region, and `up --host worker`
//! (a real `sqld` and a `wrangler dev` on workerd per region).

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{self, Tools};
use crate::{cargo, root, run, target_dir, wait_healthy};

/// Regions a local deployment serves, in port order.
pub const REGIONS: [&str; 2] = ["pk", "ae"];
/// Every Worker environment of wrangler.toml.
pub const ENVS: [&str; 3] = ["pk", "ae", "eu"];

fn build_dir() -> PathBuf {
    root().join("edge").join("build")
}

fn newer(a: &Path, than: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(a), m(than)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

/// Builds `edge/build/` (cargo → wasm-bindgen → wasm-opt) and makes sure the
/// front-end assets directory exists. Returns the optimised wasm's path.
pub fn build(tools: &Tools) -> Result<PathBuf, String> {
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "amanah-edge",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "edge",
    ]);
    run("build the Worker (wasm32, profile edge)", c)?;
    let input = target_dir()
        .join("wasm32-unknown-unknown")
        .join("edge")
        .join("amanah_edge.wasm");
    let out = build_dir();
    let wasm = out.join("amanah_edge_bg.wasm");
    if newer(&input, &wasm) {
        let _ = fs::remove_dir_all(&out);
        let mut c = Command::new(&tools.wasm_bindgen);
        c.args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(&out)
            .arg(&input);
        run("wasm-bindgen --target web", c)?;
        let mut c = Command::new(tools.node_bin.join("node"));
        c.arg(&tools.wasm_opt)
            .arg(&wasm)
            .arg("-o")
            .arg(&wasm)
            .args([
                "-O2",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
            ]);
        run("wasm-opt -O2", c)?;
    }
    let assets = root().join("frontend").join("dist");
    if !assets.join("index.html").exists() {
        fs::create_dir_all(&assets).map_err(|e| e.to_string())?;
        fs::write(
            assets.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Amanah</title>\n\
             <p>The Amanah API is at <code>/api/v1/</code>. The browser app is not \
             built into this directory yet.</p>\n",
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(wasm)
}

fn gzip_len(path: &Path) -> Result<u64, String> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out.stdout.len() as u64)
}

/// `wrangler deploy --dry-run --env E` for every region, offline; reports the
/// bundle's size.
pub fn dry_run(tools: &Tools) -> Result<(), String> {
    for env in ENVS {
        let out = target_dir().join("wrangler-dry-run").join(env);
        let _ = fs::remove_dir_all(&out);
        let mut c = tools.wrangler();
        c.args(["deploy", "--dry-run", "--env", env, "--outdir"])
            .arg(&out);
        run(&format!("wrangler deploy --dry-run --env {env}"), c)?;
        let mut total = (0u64, 0u64);
        for entry in fs::read_dir(&out).map_err(|e| e.to_string())? {
            let p = entry.map_err(|e| e.to_string())?.path();
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".wasm") || name.ends_with(".js") {
                total.0 += fs::metadata(&p).map_err(|e| e.to_string())?.len();
                total.1 += gzip_len(&p)?;
            }
        }
        eprintln!(
            "xtask: Worker bundle for {env}: {} KiB raw, {} KiB gzip (wasm + JS)",
            total.0 / 1024,
            total.1 / 1024
        );
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The region's root key file (`v1:<hex>`, 0600), created on first run; the
/// same format as the native host's, so one data dir's keys serve either.
fn root_key(data: &Path, region: &str) -> Result<String, String> {
    let dir = data.join("keys");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    let file = dir.join(format!("{region}.root.key"));
    if !file.exists() {
        let mut key = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map_err(|e| format!("no randomness: {e}"))?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        writeln!(f, "v1:{hex}").map_err(|e| e.to_string())?;
    }
    fs::read_to_string(&file)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let _ = fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

fn log_file(path: &Path) -> Result<fs::File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One region of a local Worker deployment.
struct RegionProc {
    id: &'static str,
    port: u16,
    sqld_http: u16,
    sqld_admin: u16,
    sqld_args: Vec<String>,
    sqld: Child,
    wrangler: Option<Child>,
}

fn json_str(s: &str) -> String {
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

/// Starts sqld and `wrangler dev` per region and prints the ready line; runs
/// until a `wrangler dev` exits or the process is interrupted.
pub fn up(data: &Path, port: u16, test_hooks: bool) -> Result<(), String> {
    let tools = tools::ensure()?;
    build(&tools)?;
    fs::create_dir_all(data).map_err(|e| e.to_string())?;
    let data = data
        .canonicalize()
        .map_err(|e| format!("{}: {e}", data.display()))?;
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
        let sqld = Command::new(&tools.sqld)
            .args(&sqld_args)
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("sqld.log"))?)
            .spawn()
            .map_err(|e| format!("cannot start sqld: {e}"))?;
        regions.push(RegionProc {
            id,
            port,
            sqld_http,
            sqld_admin,
            sqld_args,
            sqld,
            wrangler: None,
        });
    }
    let result = start_workers(&tools, &data, &mut regions, test_hooks);
    if let Err(e) = result {
        stop(&mut regions);
        return Err(e);
    }
    let outcome = watch(&mut regions);
    stop(&mut regions);
    outcome
}

fn start_workers(
    tools: &Tools,
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
        .map(|r| format!("{}=http://127.0.0.1:{}", r.id, r.port))
        .collect();
    let region_urls = region_urls.join(",");
    for r in regions.iter_mut() {
        let dir = data.join(r.id);
        let env_file = dir.join("worker.env");
        write_private(&env_file, &format!("ROOT_KEY={}\n", root_key(data, r.id)?))?;
        let mut c = tools.wrangler();
        c.args(["dev", "--env", r.id, "--ip", "127.0.0.1", "--port"])
            .arg(r.port.to_string())
            .arg("--inspector-port")
            .arg(free_port()?.to_string())
            .arg("--env-file")
            .arg(&env_file)
            .arg("--persist-to")
            .arg(dir.join("wrangler-state"))
            .args(["--show-interactive-dev-session=false", "--var"])
            .arg(format!("DB_URL:http://127.0.0.1:{}", r.sqld_http))
            .arg("--var")
            .arg(format!("DB_ADMIN_URL:http://127.0.0.1:{}", r.sqld_admin))
            .arg("--var")
            .arg(format!("REGION_URLS:{region_urls}"));
        if test_hooks {
            // Tests also stop sqld (SIGSTOP): give up on it sooner than the
            // production default of 10 s.
            c.args(["--var", "TEST_HOOKS:1", "--var", "DB_TIMEOUT_MS:2000"]);
            // `GET /__scheduled` fires the cron trigger (the purge).
            c.arg("--test-scheduled");
        }
        let log = dir.join("wrangler.log");
        c.stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?);
        r.wrangler = Some(
            c.spawn()
                .map_err(|e| format!("cannot start wrangler: {e}"))?,
        );
    }
    for r in regions.iter() {
        wait_healthy(
            &format!("http://127.0.0.1:{}", r.port),
            Duration::from_secs(90),
        )
        .map_err(|e| {
            format!(
                "{e}; see {}",
                data.join(r.id).join("wrangler.log").display()
            )
        })?;
    }
    // What the end-to-end harness needs to drive and inspect this deployment.
    let mut json = String::from("{\"host\":\"worker\",\"data_dir\":");
    json.push_str(&json_str(&data.to_string_lossy()));
    if let Some(group) = own_process_group() {
        json.push_str(&format!(",\"process_group\":{group}"));
    }
    json.push_str(",\"regions\":{");
    for (i, r) in regions.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let dir = data.join(r.id);
        let args: Vec<String> = r.sqld_args.iter().map(|a| json_str(a)).collect();
        json.push_str(&format!(
            "{}:{{\"url\":{},\"sqld_url\":{},\"sqld_admin_url\":{},\"sqld_bin\":{},\"sqld_args\":[{}],\"sqld_dir\":{},\"logs\":[{},{}]}}",
            json_str(r.id),
            json_str(&format!("http://127.0.0.1:{}", r.port)),
            json_str(&format!("http://127.0.0.1:{}", r.sqld_http)),
            json_str(&format!("http://127.0.0.1:{}", r.sqld_admin)),
            json_str(&tools.sqld.to_string_lossy()),
            args.join(","),
            json_str(&dir.join("sqld").to_string_lossy()),
            json_str(&dir.join("wrangler.log").to_string_lossy()),
            json_str(&dir.join("sqld.log").to_string_lossy()),
        ));
    }
    json.push_str("}}\n");
    fs::write(data.join("deployment.json"), json).map_err(|e| e.to_string())?;
    let ready: Vec<String> = regions
        .iter()
        .map(|r| format!("{}=http://127.0.0.1:{}", r.id, r.port))
        .collect();
    println!("ready {}", ready.join(" "));
    let _ = std::io::stdout().flush();
    eprintln!(
        "xtask: Amanah is up on workerd (wrangler dev) with sqld per region; data in {}; Ctrl-C stops it",
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

/// Waits until a `wrangler dev` exits (sqld may be stopped and restarted by
/// tests on purpose).
fn watch(regions: &mut [RegionProc]) -> Result<(), String> {
    loop {
        for r in regions.iter_mut() {
            if let Some(w) = r.wrangler.as_mut() {
                if let Ok(Some(status)) = w.try_wait() {
                    return Err(format!("wrangler dev for {} exited: {status}", r.id));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn stop(regions: &mut [RegionProc]) {
    for r in regions.iter_mut() {
        if let Some(mut w) = r.wrangler.take() {
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
        let _ = r.sqld.kill();
        let _ = r.sqld.wait();
    }
}

fn wait_port(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listens on 127.0.0.1:{port}"))
}

/// `up --host worker` as a child for the test run: returns it with its data
/// dir's deployment file once it printed its ready line.
pub fn spawn_for_tests(data: &Path) -> Result<(Child, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args([
            "up",
            "--host",
            "worker",
            "--port",
            "0",
            "--test-hooks",
            "--data-dir",
        ])
        .arg(data)
        // Its own process group, so the whole tree can be stopped at once.
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the Worker deployment: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if !line.starts_with("ready ") {
        let _ = child.kill();
        return Err(format!("the Worker deployment did not start: {line:?}"));
    }
    Ok((child, data.join("deployment.json")))
}

/// Stops a deployment started by [`spawn_for_tests`] and everything it
/// started (its process group).
pub fn stop_tree(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}
