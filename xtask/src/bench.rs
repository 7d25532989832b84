//! `cargo xtask bench`: builds everything in release, runs the criterion
//! micro-benchmarks natively and under wasmtime, the mixed load against the
//! native host, the Worker host (workerd + sqld) and the Spin host
//! (wasmtime + sqld), the Spin host's cold start, the scale runs, the cost of idle clinics, and writes `BENCHMARKS.md`'s table and
//! `bench/results/latest.json` (through `amanah-bench`, `bench/src/`).
//!
//! `--quick` runs everything small (a smoke run of the machinery, not
//! figures to publish): 1 clinic per region, 3 s per level, a scale clinic
//! of 1,000 patients, 200 idle clinics, and writes to `target/bench/quick/` only.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, deploy, frontend, root, run, spin, target_dir, tools, worker};

/// Criterion's timing per benchmark (after a warm-up), both builds.
const CRITERION_ARGS: [&str; 5] = ["--noplot", "--warm-up-time", "1", "--measurement-time", "3"];

pub fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let started = std::time::Instant::now();
    crate::ensure_targets()?;
    let tools = tools::ensure()?;
    let spin_tools = tools::ensure_spin()?;
    let wrk = tools::ensure_wrk()?;
    frontend::build(&tools)?;
    worker::build(&tools)?;
    let spin_built = spin::build(&spin_tools)?;
    let mut c = cargo();
    c.args(["build", "--release", "-p", "amanah", "-p", "amanah-bench"]);
    run("build amanah and amanah-bench (release)", c)?;
    let release = target_dir().join("release");
    let amanah = release.join("amanah");
    let driver = release.join("amanah-bench");

    let out = if quick {
        target_dir().join("bench").join("quick")
    } else {
        target_dir().join("bench").join("latest")
    };
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    // Micro-benchmarks, natively.
    let mut c = cargo();
    c.args(["bench", "-p", "amanah-bench", "--bench", "micro", "--"])
        .args(CRITERION_ARGS)
        .env("CRITERION_HOME", out.join("criterion-native"));
    if quick {
        c.arg("field");
    }
    run("criterion micro-benchmarks (native)", c)?;
    // The same file for wasm32-wasip2, under wasmtime.
    let wasm = build_wasm_bench()?;
    let home = out.join("criterion-wasm");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let mut c = Command::new(&spin_tools.wasmtime);
    c.arg("run")
        .arg("--dir")
        .arg(format!("{}::/criterion", home.display()))
        .args(["--env", "CRITERION_HOME=/criterion"])
        .arg(&wasm)
        .arg("--bench")
        .args(CRITERION_ARGS);
    if quick {
        c.arg("field");
    }
    run(
        "criterion micro-benchmarks (wasm32-wasip2 under wasmtime)",
        c,
    )?;

    let load_args: Vec<&str> = if quick {
        vec!["--clinics", "1", "--seconds", "3", "--clients", "1,8"]
    } else {
        vec![]
    };
    // The mixed load: native, then the Worker.
    let mut c = Command::new(&driver);
    c.args(["load", "--name", "native", "--native"])
        .arg(&amanah)
        .arg("--out")
        .arg(&out)
        .arg("--wrk")
        .arg(&wrk)
        .args(&load_args);
    run("mixed load against the native host", c)?;
    let data = out.join("worker-data");
    let (child, deployment) = deploy::spawn("worker", &data, &["--unlimited"])?;
    let mut c = Command::new(&driver);
    c.args(["load", "--name", "worker", "--deployment"])
        .arg(&deployment)
        .arg("--out")
        .arg(&out)
        .arg("--wrk")
        .arg(&wrk)
        .args(["--what", "`wrangler dev` (workerd) and sqld per region"])
        .args(&load_args);
    let result = run("mixed load against the Worker host (workerd + sqld)", c);
    deploy::stop_tree(child);
    result?;
    // The mixed load against the Spin component, then its cold start.
    let data = out.join("spin-data");
    let (child, deployment) = deploy::spawn("spin", &data, &["--unlimited"])?;
    let mut c = Command::new(&driver);
    c.args(["load", "--name", "spin", "--deployment"])
        .arg(&deployment)
        .arg("--out")
        .arg(&out)
        .arg("--wrk")
        .arg(&wrk)
        .args([
            "--what",
            "`wasmtime serve` of the component and sqld per region",
        ])
        .args(&load_args);
    if let Err(e) = run("mixed load against the Spin host (wasmtime + sqld)", c) {
        deploy::stop_tree(child);
        return Err(e);
    }
    let mut c = Command::new(&driver);
    c.args(["cold", "--name", "spin", "--deployment"])
        .arg(&deployment)
        .arg("--out")
        .arg(&out)
        .args([
            "--what",
            "`wasmtime serve` of the component and sqld per region",
        ]);
    let result = run("Spin host cold start", c);
    deploy::stop_tree(child);
    result?;

    // Scale.
    let mut c = Command::new(&driver);
    c.args(["scale", "--native"])
        .arg(&amanah)
        .arg("--out")
        .arg(&out);
    if quick {
        c.args([
            "--patients",
            "1000",
            "--appointments",
            "5000",
            "--audit-entries",
            "20000",
        ]);
    }
    run("scale: export and audit verification", c)?;

    // What idle clinics cost the native host.
    let mut c = Command::new(&driver);
    c.args(["clinics", "--native"])
        .arg(&amanah)
        .arg("--out")
        .arg(&out)
        .args(["--clinics", if quick { "200" } else { "10000" }]);
    run("idle clinics: memory and open files after many sign-ups", c)?;

    // The results file and the table.
    let (md, json) = if quick {
        let md = out.join("BENCHMARKS.md");
        std::fs::copy(root().join("BENCHMARKS.md"), &md).map_err(|e| e.to_string())?;
        (md, out.join("latest.json"))
    } else {
        (
            root().join("BENCHMARKS.md"),
            root().join("bench").join("results").join("latest.json"),
        )
    };
    let edge = worker::build_dir();
    let dist = frontend::dist();
    let files = |paths: &[PathBuf]| -> String {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("+")
    };
    let mut c = Command::new(&driver);
    c.args(["report", "--out"])
        .arg(&out)
        .arg("--md")
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .args(["--commit", &git_commit(), "--date", &utc_now()])
        .arg("--size")
        .arg(format!(
            "Worker bundle (wasm + JS)={}",
            files(&[
                edge.join("amanah_edge_bg.wasm"),
                edge.join("amanah_edge.js"),
                root().join("edge").join("shim.mjs"),
            ])
        ))
        .arg("--size")
        .arg(format!("Spin component={}", spin_built.component.display()))
        .arg("--size")
        .arg(format!(
            "Front end (wasm + JS)={}",
            files(&[dist.join("amanah_bg.wasm"), dist.join("amanah.js")])
        ));
    run("write the results", c)?;
    eprintln!(
        "xtask: benchmarks done in {:.0?}; results in {} and {}",
        started.elapsed(),
        md.display(),
        json.display()
    );
    Ok(())
}

/// Builds the micro-benchmarks for wasm32-wasip2; returns the `.wasm`.
fn build_wasm_bench() -> Result<PathBuf, String> {
    let mut c = cargo();
    c.args([
        "bench",
        "-p",
        "amanah-bench",
        "--bench",
        "micro",
        "--target",
        "wasm32-wasip2",
        "--no-run",
        "--message-format",
        "json",
    ]);
    eprintln!("xtask: build the micro-benchmarks for wasm32-wasip2");
    let out = c
        .output()
        .map_err(|e| format!("cargo bench --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the wasm micro-benchmarks failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The compiler-artifact line of the bench target names its executable.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":[\"bench\"]") && l.contains("\"executable\":\""))
        .find_map(|l| {
            let rest = &l[l.find("\"executable\":\"")? + 14..];
            Some(PathBuf::from(&rest[..rest.find('"')?]))
        })
        .filter(|p| Path::new(p).exists())
        .ok_or_else(|| "cargo named no wasm executable for the micro-benchmarks".to_owned())
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
