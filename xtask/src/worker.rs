//! The Worker host locally: building the wasm bundle, the offline
//! `wrangler deploy --dry-run` of every region, and the `wrangler dev` (on
//! workerd) per region that `up --host worker` runs in front of sqld
//! ([`crate::deploy`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::deploy::{free_port, log_file, root_key, write_private, RegionProc, WasmHost};
use crate::tools::Tools;
use crate::{cargo, newer, root, run, target_dir};

/// The limits of a test deployment, as `--var`s (see `worker::Worker::start`).
pub const TEST_SIGNUP_LIMITS: &str = "SIGNUP_LIMITS:1000000,1000000";
pub const TEST_REQUEST_LIMITS: &str = "REQUEST_LIMITS:1000000/1000000,1000000/1000000";

/// Every Worker environment of wrangler.toml.
pub const ENVS: [&str; 3] = ["pk", "ae", "eu"];

pub fn build_dir() -> PathBuf {
    root().join("edge").join("build")
}

/// Builds `edge/build/` (cargo → wasm-bindgen → wasm-opt); the front end
/// (its assets) must be built already. Returns the optimised wasm's path.
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
        crate::wasm::bind_and_shrink(tools, &input, &out, "amanah_edge", "-O2")?;
    }
    if !crate::frontend::dist().join("index.html").exists() {
        return Err("the Worker serves the front end: build it first (frontend::build)".into());
    }
    Ok(wasm)
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
                total.1 += crate::wasm::gzip_len(&p)?;
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

/// The Worker as a [`WasmHost`]: `wrangler dev --env <region>` with loopback
/// URLs given by `--var` and `ROOT_KEY` from a 0600 env file.
pub struct Worker<'a> {
    pub tools: &'a Tools,
    /// Sign-ups and requests unthrottled (`up --unlimited`, the
    /// benchmarks: they measure the host, not the limiter).
    pub unlimited: bool,
    /// The `MAINTAIN_TOKEN` secret, made per deployment: the cron trigger
    /// calls the region's own URL with it (`POST /internal/maintain`).
    pub maintain_token: String,
}

impl WasmHost for Worker<'_> {
    const NAME: &'static str = "worker";
    const DESCRIPTION: &'static str = "workerd (wrangler dev)";

    fn build(&mut self) -> Result<(), String> {
        crate::frontend::build(self.tools)?;
        build(self.tools).map(|_| ())
    }

    fn start(
        &mut self,
        data: &Path,
        r: &RegionProc,
        region_urls: &str,
        test_hooks: bool,
    ) -> Result<(Child, PathBuf), String> {
        let dir = r.dir(data);
        let env_file = dir.join("worker.env");
        let mut secrets = format!(
            "ROOT_KEY={}\nMAINTAIN_TOKEN={}\n",
            root_key(data, r.id)?,
            self.maintain_token
        );
        for (name, value, _) in r.db_settings().into_iter().filter(|s| s.2) {
            secrets.push_str(&format!("{name}={value}\n"));
        }
        write_private(&env_file, &secrets)?;
        let mut c = self.tools.wrangler();
        c.args(["dev", "--env", r.id, "--ip", "127.0.0.1", "--port"])
            .arg(r.port.to_string())
            .arg("--inspector-port")
            .arg(free_port()?.to_string())
            .arg("--env-file")
            .arg(&env_file)
            .arg("--persist-to")
            .arg(dir.join("wrangler-state"))
            .args(["--show-interactive-dev-session=false", "--var"])
            .arg(format!("REGION_URLS:{region_urls}"));
        for (name, value, _) in r.db_settings().into_iter().filter(|s| !s.2) {
            c.arg("--var").arg(format!("{name}:{value}"));
        }
        if test_hooks {
            // Tests also stop sqld (SIGSTOP): give up on it sooner than the
            // production default of 10 s.
            c.args(["--var", "TEST_HOOKS:1", "--var", "DB_TIMEOUT_MS:2000"]);
            // Every suite signs clinics up and calls from one address, in
            // parallel: the limits that a suite of its own proves
            // (natively) would refuse the rest.
            c.args(["--var", TEST_SIGNUP_LIMITS, "--var", TEST_REQUEST_LIMITS]);
            // `GET /__scheduled` fires the cron trigger (the purge).
            c.arg("--test-scheduled");
        } else if self.unlimited {
            c.args(["--var", TEST_SIGNUP_LIMITS, "--var", TEST_REQUEST_LIMITS]);
        }
        let log = dir.join("wrangler.log");
        c.stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?);
        let child = c
            .spawn()
            .map_err(|e| format!("cannot start wrangler: {e}"))?;
        Ok((child, log))
    }

    fn deployment_extra(&self) -> String {
        format!(",\"maintain_token\":\"{}\"", self.maintain_token)
    }
}
