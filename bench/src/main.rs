//! `amanah-bench`: the driver behind `cargo xtask bench` (which builds
//! everything, starts the wasm deployments and calls this in turn).
//!
//! - `amanah-bench load --native BIN|--deployment FILE --name HOST --out DIR`
//!   seeds 3 clinics per region through the API, times logins, and drives
//!   the mixed workload with `wrk` at each client count; writes
//!   `DIR/load-HOST.json` and `DIR/cold-HOST.json`.
//! - `amanah-bench cold --deployment FILE --name HOST --what TEXT --out DIR`
//!   records a deployment's measured cold start.
//! - `amanah-bench scale --native BIN --out DIR` runs the export of a
//!   10,000-patient, 100,000-appointment clinic and the 1,000,000-entry
//!   audit verification; writes `DIR/scale.json`.
//! - `amanah-bench clinics --native BIN --clinics N --out DIR` signs up N
//!   clinics on a fresh native host and records its memory, open files and
//!   threads after, and once idle; writes `DIR/clinics.json`.
//! - `amanah-bench report --out DIR --size LABEL=PATH[+PATH]… --md FILE
//!   --json FILE --commit C` writes the results file and BENCHMARKS.md's
//!   table.

#[cfg(not(target_family = "wasm"))]
mod api;
#[cfg(not(target_family = "wasm"))]
mod clinics;
#[cfg(not(target_family = "wasm"))]
mod hosts;
#[cfg(not(target_family = "wasm"))]
mod load;
#[cfg(not(target_family = "wasm"))]
mod procs;
#[cfg(not(target_family = "wasm"))]
mod report;
#[cfg(not(target_family = "wasm"))]
mod scale;
#[cfg(not(target_family = "wasm"))]
mod seed;

#[cfg(not(target_family = "wasm"))]
fn main() -> std::process::ExitCode {
    match driver::main(std::env::args().skip(1).collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amanah-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(target_family = "wasm")]
fn main() {}

#[cfg(not(target_family = "wasm"))]
mod driver {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use serde_json::json;

    use crate::api::{Api, Result};
    use crate::hosts::Host;
    use crate::{clinics, load, procs, report, scale, seed};

    fn flag(args: &[String], name: &str) -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    }

    fn required(args: &[String], name: &str) -> Result<String> {
        flag(args, name).ok_or_else(|| format!("{name} is required"))
    }

    fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
        std::fs::write(
            path,
            serde_json::to_string_pretty(v).map_err(|e| e.to_string())? + "\n",
        )
        .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn main(args: Vec<String>) -> Result<()> {
        let Some(cmd) = args.first().cloned() else {
            return Err("usage: amanah-bench load|cold|scale|clinics|report …".into());
        };
        let out = PathBuf::from(required(&args, "--out")?);
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        match cmd.as_str() {
            "load" => load_cmd(&args, &out),
            "cold" => {
                let host = Host::deployment(Path::new(&required(&args, "--deployment")?))?;
                let name = required(&args, "--name")?;
                write_json(
                    &out.join(format!("cold-{name}.json")),
                    &json!({"host": name, "cold_start_ms": host.cold_start_ms,
                            "what": flag(&args, "--what").unwrap_or_default()}),
                )
            }
            "scale" => {
                let bin = PathBuf::from(required(&args, "--native")?);
                let work = tempfile::tempdir().map_err(|e| e.to_string())?;
                let patients = flag(&args, "--patients")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10_000);
                let appointments = flag(&args, "--appointments")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(100_000);
                let entries = flag(&args, "--audit-entries")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1_000_000);
                let mut v = scale::export(&bin, work.path(), patients, appointments)?;
                v["audit"] = scale::audit_verify(work.path(), entries)?;
                write_json(&out.join("scale.json"), &v)
            }
            "clinics" => {
                let bin = PathBuf::from(required(&args, "--native")?);
                let work = tempfile::tempdir().map_err(|e| e.to_string())?;
                let n = flag(&args, "--clinics")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10_000);
                write_json(
                    &out.join("clinics.json"),
                    &clinics::idle_cost(&bin, work.path(), n)?,
                )
            }
            "report" => report::write(&report::Inputs {
                dir: out.clone(),
                sizes: args
                    .iter()
                    .zip(args.iter().skip(1))
                    .filter(|(k, _)| *k == "--size")
                    .map(|(_, v)| v.clone())
                    .collect(),
                md: PathBuf::from(required(&args, "--md")?),
                json_out: PathBuf::from(required(&args, "--json")?),
                commit: flag(&args, "--commit").unwrap_or_default(),
                date: flag(&args, "--date").unwrap_or_default(),
            }),
            other => Err(format!("no command {other}")),
        }
    }

    fn load_cmd(args: &[String], out: &Path) -> Result<()> {
        let name = required(args, "--name")?;
        let wrk = PathBuf::from(flag(args, "--wrk").unwrap_or_else(|| "wrk".into()));
        let seconds: u32 = flag(args, "--seconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(15);
        let clinics: usize = flag(args, "--clinics")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let clients: Vec<u32> = flag(args, "--clients")
            .unwrap_or_else(|| "1,8,32,128".into())
            .split(',')
            .map(|c| c.parse().map_err(|_| format!("bad client count {c}")))
            .collect::<Result<_>>()?;
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (host, what) = match (flag(args, "--native"), flag(args, "--deployment")) {
            (Some(bin), _) => (
                Host::native(Path::new(&bin), &work.path().join("data"))?,
                "`amanah serve` (release), both regions in one process".to_owned(),
            ),
            (None, Some(file)) => (
                Host::deployment(Path::new(&file))?,
                flag(args, "--what").unwrap_or_default(),
            ),
            _ => return Err("--native BIN or --deployment FILE".into()),
        };
        let processes: Vec<String> = host.pids.iter().map(|p| procs::name(*p)).collect();
        write_json(
            &out.join(format!("cold-{name}.json")),
            &json!({"host": name, "cold_start_ms": host.cold_start_ms, "what": what}),
        )?;
        let started = Instant::now();
        let seeded = seed::all(&host.urls, clinics, seed::CLINIC)?;
        let seed_seconds = started.elapsed().as_secs_f64();
        let writes: usize = seeded.iter().map(|s| s.writes).sum();
        eprintln!(
            "amanah-bench: {name}: seeded {} clinics ({writes} writes) in {seed_seconds:.0} s",
            seeded.len()
        );

        // Login: the password step (Argon2id) of a seeded doctor, 10 times.
        let c = &seeded[0];
        let anon = Api::new(host.url(&c.region)?);
        let mut ms: Vec<f64> = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            anon.post(
                "/api/v1/auth/login",
                json!({"clinic": c.clinic, "email": c.doctor_email, "password": seed::PASSWORD}),
                200,
            )?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let login =
            json!({"samples": ms.len(), "median_ms": ms[ms.len() / 2], "max_ms": ms[ms.len() - 1]});

        // `ae`: a self-run sqld in every deployment, so that the figures are
        // the hosts' and sqld's (on the Worker and Spin, `pk` goes through
        // the local stand-in for Turso, a Python proxy, docs/turso.md).
        let region = "ae";
        let mine: Vec<&seed::Seeded> = seeded.iter().filter(|s| s.region == region).collect();
        let script = work.path().join("mixed.lua");
        std::fs::write(&script, load::script(&mine)).map_err(|e| e.to_string())?;
        let levels = load::levels(
            &wrk,
            &script,
            host.url(region)?,
            &clients,
            seconds,
            &host.pids,
        )?;
        write_json(
            &out.join(format!("load-{name}.json")),
            &json!({
                "host": name, "clinics": seeded.len(), "regions": host.urls.len(),
                "seed_writes": writes, "seed_seconds": seed_seconds, "seconds": seconds,
                "processes": format!("Host processes measured: {}.", processes.join(", ")),
                "login": login,
                "levels": levels.iter().map(load::Level::json).collect::<Vec<_>>(),
            }),
        )
    }
}
