//! The host under load: a native `amanah serve` this driver starts (and
//! times to its first answer), or a wasm deployment `cargo xtask` started
//! (its `deployment.json`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::Result;
use crate::procs;

pub struct Host {
    /// Region id → base URL.
    pub urls: Vec<(String, String)>,
    /// The processes whose CPU and memory count as the host's.
    pub pids: Vec<u32>,
    /// Launch to the first `200` on `/healthz`, where measured.
    pub cold_start_ms: Option<f64>,
    child: Option<Child>,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `GET /healthz` answers 200.
pub fn healthy(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200")
}

impl Host {
    /// `amanah serve` (release build, no test hooks, default logging) on a
    /// fresh data dir; cold start is process launch to the first 200 of
    /// every region.
    pub fn native(bin: &Path, data: &Path) -> Result<Host> {
        // A benchmark measures the host, not its limiter: one address
        // signs up and calls as fast as it can.
        Self::native_with(
            bin,
            data,
            &[
                "--signup-limits",
                "1000000,1000000",
                "--request-limits",
                "1000000/1000000,1000000/1000000",
            ],
        )
    }

    /// [`Host::native`] with more `amanah serve` flags.
    pub fn native_with(bin: &Path, data: &Path, flags: &[&str]) -> Result<Host> {
        // The server's own log (each request's route, status and time) for
        // profiling: `AMANAH_BENCH_SERVER_LOG=FILE`; discarded otherwise.
        let log = match std::env::var_os("AMANAH_BENCH_SERVER_LOG") {
            Some(f) => {
                Stdio::from(std::fs::File::create(&f).map_err(|e| format!("server log: {e}"))?)
            }
            None => Stdio::null(),
        };
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if !line.starts_with("ready ") {
            let _ = child.kill();
            return Err(format!("amanah serve did not start: {line:?}"));
        }
        let urls: Vec<(String, String)> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(r, u)| (r.to_owned(), u.to_owned()))
            .collect();
        for (_, url) in &urls {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !healthy(url) {
                if Instant::now() > deadline {
                    return Err(format!("{url} never answered /healthz"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let cold = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Host {
            urls,
            pids: vec![child.id()],
            cold_start_ms: Some(cold),
            child: Some(child),
        })
    }

    /// A deployment `cargo xtask` started: its regions' URLs, every process
    /// of its process group, and the cold start it recorded.
    pub fn deployment(file: &Path) -> Result<Host> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut urls = Vec::new();
        let mut cold: Option<f64> = None;
        if let Some(regions) = v["regions"].as_object() {
            for (id, r) in regions {
                let url = r["url"].as_str().ok_or("a region without url")?;
                urls.push((id.clone(), url.to_owned()));
                // Both regions boot at once; the faster is the figure.
                if let Some(ms) = r["cold_start_ms"].as_f64() {
                    cold = Some(cold.map_or(ms, |c: f64| c.min(ms)));
                }
            }
        }
        let group = v["process_group"]
            .as_u64()
            .ok_or("deployment.json has no process_group")? as u32;
        let pids: Vec<u32> = procs::group_members(group)
            .into_iter()
            .filter(|p| *p != std::process::id())
            .collect();
        if pids.is_empty() {
            return Err(format!("no process in group {group}"));
        }
        Ok(Host {
            urls,
            pids,
            cold_start_ms: cold,
            child: None,
        })
    }

    pub fn url(&self, region: &str) -> Result<&str> {
        self.urls
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, u)| u.as_str())
            .ok_or_else(|| format!("no region {region}"))
    }
}
