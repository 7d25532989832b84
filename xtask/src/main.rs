//! `cargo xtask …`: Amanah's build, run and test orchestration.
//!
//! - `cargo xtask up [--host native] [--data-dir DIR] [--port PORT] [--release]`
//!   builds and starts Amanah in the foreground and prints
//!   `ready pk=<url> ae=<url>` once every region answers.
//! - `cargo xtask up --host worker …` does the same on workerd: a real `sqld`
//!   and a `wrangler dev` per region (see [`deploy`], [`worker`]).
//! - `cargo xtask up --host spin …` does the same with the Spin component
//!   under `wasmtime serve` in front of each region's `sqld` (see [`spin`]).
//!   `--unlimited` lifts the sign-up and request limits (the benchmarks).
//! - `cargo xtask edge-build` builds the Worker bundle into `edge/build/`.
//! - `cargo xtask spin-build` builds the Spin component, checks its imports
//!   and writes each region's Spin runtime config into `target/spin/`.
//! - `cargo xtask bench [--quick]` runs the benchmarks and writes
//!   `BENCHMARKS.md`'s table (see [`bench`]).
//! - `cargo xtask test` installs what the checks need (pinned Rust targets,
//!   Node 22, wrangler, binaryen, sqld, wasm-bindgen-cli, wasmtime,
//!   wasm-tools, schemathesis), then runs formatting, clippy, the wasm builds, every test
//!   in the workspace against the native host, the offline `wrangler deploy
//!   --dry-run` of every region, the Spin component's import check, the
//!   `cargo fuzz` targets for a bounded time, and the end-to-end suite again
//!   against the Worker host and the Spin host.
//!
//! The standard library and the region table only, so it builds in seconds
//! on a fresh machine.

mod bench;
mod deploy;
mod frontend;
mod fuzz;
mod spin;
mod tools;
mod wasm;
mod worker;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long each `cargo fuzz` target runs in `cargo xtask test`.
const FUZZ_SECONDS: u32 = 20;

/// Targets `functions` must build for.
const WASM_TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip2"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("redeploy") => redeploy(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("frontend-build") => tools::ensure()
            .and_then(|t| frontend::build(&t))
            .map(|_| ()),
        Some("edge-build") => tools::ensure()
            .and_then(|t| frontend::build(&t).and_then(|_| worker::build(&t)))
            .map(|_| ()),
        Some("spin-build") => tools::ensure_spin().and_then(|t| spin::build(&t)).map(|b| {
            eprintln!(
                "xtask: Spin component {}; runtime configs in {}",
                b.component.display(),
                spin::out_dir().join("runtime-config").display()
            )
        }),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage:
  cargo xtask up [--host native|worker|spin] [--data-dir DIR] [--port PORT] [--release] [--unlimited]
  cargo xtask redeploy [--data-dir DIR]
  cargo xtask frontend-build
  cargo xtask edge-build
  cargo xtask spin-build
  cargo xtask test
  cargo xtask bench [--quick]";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Where cargo puts builds: `CARGO_TARGET_DIR` if set, else `<root>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Whether `a` was modified after `than` (or either is missing): a build
/// step whose output is older than its input runs again.
fn newer(a: &Path, than: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(a), m(than)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

fn run(step: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: {step}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot run: {e}"))?;
    if !status.success() {
        return Err(format!("{step}: failed ({status})"));
    }
    eprintln!("xtask: {step}: ok in {:.0?}", started.elapsed());
    Ok(())
}

fn flag_value(args: &[String], name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("{name} needs a value")),
    }
}

/// Adds the Rust targets the checks need, if missing.
pub(crate) fn ensure_targets() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    let installed = String::from_utf8_lossy(&out.stdout).to_string();
    let missing: Vec<&str> = WASM_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add"]).args(&missing);
    run(&format!("install Rust targets {}", missing.join(" ")), cmd)
}

fn test(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err(USAGE.to_owned());
    }
    let started = Instant::now();
    ensure_targets()?;
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", c)?;
    let mut c = cargo();
    // The front end is wasm-only: it is checked for wasm32 below.
    c.args([
        "clippy",
        "--workspace",
        "--exclude",
        "amanah-frontend",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy --all-targets", c)?;
    for target in WASM_TARGETS {
        let mut c = cargo();
        c.args([
            "check",
            "-p",
            "amanah-functions",
            "-p",
            "amanah-region-config",
            "--target",
            target,
        ]);
        run(&format!("functions builds for {target}"), c)?;
    }
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "amanah-edge",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy (Worker, wasm32)", c)?;
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "amanah-spin",
        "-p",
        "amanah-spin-vars",
        "--target",
        "wasm32-wasip2",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy (Spin, wasm32-wasip2)", c)?;
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "amanah-frontend",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy (front end, wasm32)", c)?;
    // The micro-benchmarks also run as wasm (`cargo xtask bench`).
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "amanah-bench",
        "--benches",
        "--target",
        "wasm32-wasip2",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy (micro-benchmarks, wasm32-wasip2)", c)?;
    // The test build with the injected tenancy bug, kept beside the real
    // binary under its own name; the real one is built after it.
    let injected = build_injected()?;
    std::env::set_var("AMANAH_INJECTED_BIN", &injected);
    let mut c = cargo();
    c.args(["build", "-p", "amanah"]);
    run("build amanah", c)?;
    tools::ensure_chromium()?;
    // The browser suites drive the built front end.
    let tools = tools::ensure()?;
    frontend::build(&tools)?;
    // The end-to-end test `schemathesis` runs it when this is set.
    std::env::set_var("AMANAH_SCHEMATHESIS", tools::ensure_schemathesis()?);
    // The end-to-end test `fhir` validates every resource with it.
    std::env::set_var("AMANAH_FHIR_VALIDATOR", tools::ensure_fhir_validator()?);
    let mut c = cargo();
    c.args(["test", "--workspace", "--exclude", "amanah-frontend"]);
    run(
        "cargo test --workspace (unit, and end-to-end on the native host)",
        c,
    )?;
    fuzz::run_all(FUZZ_SECONDS)?;

    worker::build(&tools)?;
    worker::dry_run(&tools)?;
    let spin_tools = tools::ensure_spin()?;
    spin::build(&spin_tools)?;
    test_on("worker")?;
    test_on("spin")?;
    eprintln!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Builds `amanah` with the injected "forgot the clinic" bug (feature
/// `inject-forgot-clinic`) and copies it to `target/debug/amanah-forgot-clinic`
/// for `tests/tests/forgot_clinic.rs`. The next plain build puts the real
/// binary back in `target/debug/amanah`.
fn build_injected() -> Result<PathBuf, String> {
    let feature = ["-p", "amanah", "--features", "inject-forgot-clinic"];
    let mut c = cargo();
    c.arg("clippy").args(feature).args(["--", "-D", "warnings"]);
    run("cargo clippy (the injected-bug test build)", c)?;
    let mut c = cargo();
    c.arg("build").args(feature);
    run("build amanah with the injected bug (test build)", c)?;
    let debug = target_dir().join("debug");
    let to = debug.join("amanah-forgot-clinic");
    std::fs::copy(debug.join("amanah"), &to)
        .map_err(|e| format!("copy the injected-bug build: {e}"))?;
    Ok(to)
}

/// The end-to-end suite again, against a deployment of a wasm host (`worker`:
/// workerd + sqld; `spin`: the component under wasmtime + sqld).
fn test_on(host: &str) -> Result<(), String> {
    let tmp = target_dir().join(format!("e2e-{host}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let started = Instant::now();
    let (child, deployment) = deploy::spawn(host, &tmp.join("data"), &["--test-hooks"])?;
    eprintln!("xtask: {host} deployment up in {:.0?}", started.elapsed());
    // The same package set as the native run, so that nothing is rebuilt
    // (with `-p amanah-e2e` alone, features resolve differently and the
    // bundled SQLite compiles again).
    let mut c = cargo();
    c.args([
        "test",
        "--workspace",
        "--exclude",
        "amanah-frontend",
        "--tests",
    ])
    .env("AMANAH_DEPLOYMENT", &deployment);
    let result = run(&format!("end-to-end suite against the {host} host"), c);
    deploy::stop_tree(child);
    result
}

/// Restarts the hosts of the Worker or Spin deployment running on
/// `--data-dir` (as `up` started it), their secrets read again.
fn redeploy(args: &[String]) -> Result<(), String> {
    let data_dir = flag_value(args, "--data-dir")?.unwrap_or_else(|| "data".into());
    let data = if Path::new(&data_dir).is_absolute() {
        PathBuf::from(&data_dir)
    } else {
        root().join(&data_dir)
    };
    deploy::redeploy(&data)?;
    eprintln!("xtask: the hosts on {} are redeployed", data.display());
    Ok(())
}

fn up(args: &[String]) -> Result<(), String> {
    let host = flag_value(args, "--host")?.unwrap_or_else(|| "native".into());
    let data_dir = flag_value(args, "--data-dir")?.unwrap_or_else(|| "data".into());
    let port: u16 = flag_value(args, "--port")?
        .unwrap_or_else(|| "8080".into())
        .parse()
        .map_err(|_| "--port must be a port number".to_owned())?;
    let release = args.iter().any(|a| a == "--release");
    // Every host builds wasm (the front end, the Worker, the component).
    ensure_targets()?;
    let data = if Path::new(&data_dir).is_absolute() {
        PathBuf::from(&data_dir)
    } else {
        root().join(&data_dir)
    };
    match host.as_str() {
        "native" => {}
        "worker" => {
            let test_hooks = args.iter().any(|a| a == "--test-hooks");
            let tools = tools::ensure()?;
            let mut host = worker::Worker {
                tools: &tools,
                unlimited: args.iter().any(|a| a == "--unlimited"),
                maintain_token: deploy::random_hex()?,
            };
            return deploy::up(&mut host, &tools.sqld, &data, port, test_hooks);
        }
        "spin" => {
            let test_hooks = args.iter().any(|a| a == "--test-hooks");
            let sqld = tools::sqld()?;
            let spin_tools = tools::ensure_spin()?;
            let mut host = spin::Spin::new(&spin_tools)?;
            host.unlimited = args.iter().any(|a| a == "--unlimited");
            return deploy::up(&mut host, &sqld, &data, port, test_hooks);
        }
        other => {
            return Err(format!(
                "--host {other} is not a host; `native`, `worker` and `spin` are"
            ))
        }
    }
    let tools = tools::ensure()?;
    let assets = frontend::build(&tools)?;
    let mut c = cargo();
    c.args(["build", "-p", "amanah"]);
    if release {
        c.arg("--release");
    }
    run("build amanah", c)?;
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("amanah");
    eprintln!("xtask: starting amanah serve (data in {})", data.display());
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .arg("--assets")
        .arg(&assets)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim().to_owned();
    if !line.starts_with("ready ") {
        let _ = child.kill();
        return Err(format!("amanah serve did not start (said {line:?})"));
    }
    for url in line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('=').map(|(_, u)| u))
    {
        wait_healthy(url, Duration::from_secs(10))?;
    }
    println!("{line}");
    let _ = std::io::stdout().flush();
    eprintln!("xtask: Amanah is up; Ctrl-C stops it");
    // Keep relaying anything further the server prints.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        print!("{rest}");
    });
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("amanah serve exited: {status}"))
    }
}

/// Polls `GET /healthz` until it answers 200.
fn wait_healthy(url: &str, within: Duration) -> Result<(), String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut resp = String::new();
                let _ = s.read_to_string(&mut resp);
                if resp.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{url} did not answer /healthz"))
}
