//! The results file: `bench/results/latest.json` (everything measured) and
//! the generated section of `BENCHMARKS.md` (between its `results:begin`
//! and `results:end` markers), with each goal met or missed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::api::Result;

pub const BEGIN: &str = "<!-- results:begin (written by `cargo xtask bench`) -->";
pub const END: &str = "<!-- results:end -->";

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

/// Criterion's median estimates (ns) under a `CRITERION_HOME`, by
/// `group/bench`.
fn criterion(dir: &Path) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return out;
    };
    for g in groups.flatten() {
        let Ok(benches) = std::fs::read_dir(g.path()) else {
            continue;
        };
        for b in benches.flatten() {
            if let Some(v) = read_json(&b.path().join("new").join("estimates.json")) {
                if let Some(ns) = v["median"]["point_estimate"].as_f64() {
                    out.push((
                        format!(
                            "{}/{}",
                            g.file_name().to_string_lossy(),
                            b.file_name().to_string_lossy()
                        ),
                        ns,
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(bytes);
    e.finish().map(|v| v.len()).unwrap_or(0)
}

/// `label=path[+path…]`: raw and gzip bytes of the files together (each
/// compressed on its own, as a server sends them).
fn size(spec: &str) -> Result<(String, u64, u64)> {
    let (label, paths) = spec
        .split_once('=')
        .ok_or("--size wants label=path[+path]")?;
    let (mut raw, mut gz) = (0u64, 0u64);
    for p in paths.split('+') {
        let bytes = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
        raw += bytes.len() as u64;
        gz += gzip_len(&bytes) as u64;
    }
    Ok((label.to_owned(), raw, gz))
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1048576.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpu": cpu, "cores": cores, "memory_gib": (mem_gib * 10.0).round() / 10.0, "kernel": kernel.trim()})
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// Milliseconds of CPU `process` spent per answered request at one load
/// level (its cores over the requests per second).
fn cpu_ms_per_request(level: &Value, process: &str) -> Option<f64> {
    let rps = f(&level["req_per_s"]);
    let cores: f64 = level["cpu_by_process"]
        .as_array()?
        .iter()
        .filter(|p| p["process"].as_str() == Some(process))
        .map(|p| f(&p["cores"]))
        .sum();
    (rps > 0.0 && cores > 0.0).then(|| cores * 1000.0 / rps)
}

pub struct Inputs {
    pub dir: PathBuf,
    pub sizes: Vec<String>,
    pub md: PathBuf,
    pub json_out: PathBuf,
    pub commit: String,
    pub date: String,
}

pub fn write(i: &Inputs) -> Result<()> {
    let loads: Vec<Value> = ["native", "worker", "spin"]
        .iter()
        .filter_map(|h| read_json(&i.dir.join(format!("load-{h}.json"))))
        .collect();
    let colds: Vec<Value> = ["native", "worker", "spin"]
        .iter()
        .filter_map(|h| read_json(&i.dir.join(format!("cold-{h}.json"))))
        .collect();
    let scale = read_json(&i.dir.join("scale.json")).unwrap_or(Value::Null);
    let idle = read_json(&i.dir.join("clinics.json")).unwrap_or(Value::Null);
    let native = criterion(&i.dir.join("criterion-native"));
    let wasm: std::collections::HashMap<String, f64> = criterion(&i.dir.join("criterion-wasm"))
        .into_iter()
        .collect();
    let sizes: Vec<(String, u64, u64)> = i.sizes.iter().map(|s| size(s)).collect::<Result<_>>()?;
    let machine = machine();

    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}\n");
    let _ = writeln!(
        md,
        "Latest run: {} · commit `{}` · `cargo xtask bench`  \nMachine: {} ({} cores, {} GiB), Linux {}\n",
        i.date, i.commit, machine["cpu"].as_str().unwrap_or(""), machine["cores"], machine["memory_gib"], machine["kernel"].as_str().unwrap_or("")
    );

    // Goals first.
    let level32 = |host: &str| {
        loads.iter().find(|l| l["host"] == host).and_then(|l| {
            l["levels"]
                .as_array()?
                .iter()
                .find(|x| x["clients"] == 32)
                .cloned()
        })
    };
    let _ = writeln!(md, "### Goals\n\n| goal | measured | |\n|---|---|---|");
    if let Some(l) = level32("native") {
        let (rps, p99) = (f(&l["req_per_s"]), f(&l["p99_ms"]));
        let _ = writeln!(md, "| native host ≥ 3,000 req/s mixed, p99 < 25 ms at 32 clients | {rps:.0} req/s, p99 {p99:.1} ms | {} |", mark(rps >= 3000.0 && p99 < 25.0));
    }
    if let Some(l) = level32("worker") {
        let (rps, p99) = (f(&l["req_per_s"]), f(&l["p99_ms"]));
        let _ = writeln!(md, "| Worker host ≥ 360 req/s mixed (10× the 36 of 2026-12-02), p99 < 150 ms at 32 clients | {rps:.0} req/s, p99 {p99:.1} ms | {} |", mark(rps >= 360.0 && p99 < 150.0));
        if let Some(ms) = cpu_ms_per_request(&l, "workerd") {
            let _ = writeln!(
                md,
                "| workerd CPU ≤ 2 ms per request at 32 clients (mixed, logins aside) | {ms:.1} ms | {} |",
                mark(ms <= 2.0)
            );
        }
    }
    if let Some((_, _, gz)) = sizes.iter().find(|s| s.0 == "Worker bundle (wasm + JS)") {
        let _ = writeln!(
            md,
            "| Worker bundle < 1 MiB gzip | {:.0} KiB gzip | {} |",
            *gz as f64 / 1024.0,
            mark(*gz < 1 << 20)
        );
    }
    if let Some(l) = loads.iter().find(|l| l["host"] == "native") {
        let ms = f(&l["login"]["median_ms"]);
        let _ = writeln!(
            md,
            "| login < 100 ms native (`POST /auth/login`, median of {}) | {ms:.0} ms | {} |",
            l["login"]["samples"],
            mark(ms < 100.0)
        );
    }
    for format in ["json", "csv"] {
        let e = &scale["export"][format];
        if e.is_object() {
            let (s, rss) = (f(&e["seconds"]), f(&e["host_peak_rss_mib"]));
            let _ = writeln!(
                md,
                "| export of {} patients / {} appointments ({format}) < 10 s and < 100 MiB RSS | {s:.1} s, {rss:.0} MiB peak | {} |",
                scale["patients"], scale["appointments"], mark(s < 10.0 && rss < 100.0)
            );
        }
    }
    let dr = &scale["drill"];
    if dr.is_object() {
        let _ = writeln!(
            md,
            "| restore drill RTO < 900 s of the {} / {} clinic | {:.1} s (RPO {:.0} s) | {} |",
            scale["patients"],
            scale["appointments"],
            f(&dr["rto_seconds"]),
            f(&dr["rpo_seconds"]),
            mark(dr["rto_met"] == true && dr["rpo_met"] == true)
        );
    }

    if idle.is_object() {
        let (rss, files) = (
            f(&idle["idle"]["rss_mib"]),
            f(&idle["after"]["open_files"]).max(f(&idle["idle"]["open_files"])),
        );
        let _ = writeln!(
            md,
            "| {} clinics each touched once: native host < 64 MiB RSS once idle, < 1,500 open files | {rss:.0} MiB idle, {files:.0} files at most | {} |",
            idle["clinics"],
            mark(rss < 64.0 && files < 1500.0)
        );
    }

    // The mixed workload.
    let _ = writeln!(
        md,
        "\n### Mixed workload (50% patient reads, 20% schedule, 15% search, 15% writes)\n"
    );
    let _ = writeln!(md, "| host | clients | req/s | p50 ms | p95 ms | p99 ms | non-2xx | host CPU (cores) | host peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in &loads {
        for x in l["levels"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.0} |",
                l["host"].as_str().unwrap_or(""),
                x["clients"],
                f(&x["req_per_s"]),
                f(&x["p50_ms"]),
                f(&x["p95_ms"]),
                f(&x["p99_ms"]),
                x["non_2xx"],
                f(&x["cpu_cores"]),
                f(&x["peak_rss_mib"])
            );
        }
    }
    for l in &loads {
        if let Some(x) = l["levels"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["clients"] == 32).or(v.last()))
        {
            let parts: Vec<String> = x["cpu_by_process"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| f(&p["cores"]) >= 0.01)
                .map(|p| {
                    format!(
                        "{} {:.2}",
                        p["process"].as_str().unwrap_or(""),
                        f(&p["cores"])
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "\n{} host CPU by process at {} clients (cores): {}.",
                l["host"].as_str().unwrap_or(""),
                x["clients"],
                parts.join(", ")
            );
            let per_request: Vec<String> = ["amanah", "workerd", "wasmtime", "sqld"]
                .iter()
                .filter_map(|p| Some(format!("{p} {:.2} ms", cpu_ms_per_request(x, p)?)))
                .collect();
            if !per_request.is_empty() {
                let _ = writeln!(md, "CPU per request: {}.", per_request.join(", "));
            }
        }
        let _ = writeln!(
            md,
            "\n{}: {} clinics in {} regions seeded through the API ({} writes in {:.0} s); load on region `ae`'s listener (a self-run sqld on every host; `pk`'s stand-in for Turso is not measured), {} s per level. {}",
            l["host"].as_str().unwrap_or(""), l["clinics"], l["regions"], l["seed_writes"], f(&l["seed_seconds"]), l["seconds"], l["processes"].as_str().unwrap_or("")
        );
    }

    // Micro-benchmarks.
    let _ = writeln!(md, "\n### Micro-benchmarks (criterion, median)\n\n| benchmark | native | wasm (wasmtime) | wasm / native |\n|---|---:|---:|---:|");
    let fmt = |ns: f64| {
        if ns >= 1e6 {
            format!("{:.2} ms", ns / 1e6)
        } else {
            format!("{:.2} µs", ns / 1e3)
        }
    };
    for (name, ns) in &native {
        match wasm.get(name) {
            Some(w) => {
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {:.2}× |",
                    fmt(*ns),
                    fmt(*w),
                    w / ns
                );
            }
            None => {
                let _ = writeln!(md, "| {name} | {} | (native only) | |", fmt(*ns));
            }
        }
    }

    // Sizes and cold starts.
    let _ = writeln!(
        md,
        "\n### Sizes\n\n| artifact | raw KiB | gzip KiB |\n|---|---:|---:|"
    );
    for (label, raw, gz) in &sizes {
        let _ = writeln!(
            md,
            "| {label} | {:.0} | {:.0} |",
            *raw as f64 / 1024.0,
            *gz as f64 / 1024.0
        );
    }
    let _ = writeln!(md, "\n### Cold start (launch to the first `200` on `/healthz`)\n\n| host | ms | what starts |\n|---|---:|---|");
    for c in &colds {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} |",
            c["host"].as_str().unwrap_or(""),
            f(&c["cold_start_ms"]),
            c["what"].as_str().unwrap_or("")
        );
    }

    // Scale.
    if scale.is_object() {
        let _ = writeln!(
            md,
            "\n### Scale\n\n| what | time | bytes | host peak RSS |\n|---|---:|---:|---:|"
        );
        for format in ["json", "csv"] {
            let e = &scale["export"][format];
            let _ = writeln!(
                md,
                "| export ({format}), {} patients, {} appointments | {:.2} s | {:.1} MiB | {:.0} MiB |",
                scale["patients"], scale["appointments"], f(&e["seconds"]), f(&e["bytes"]) / 1048576.0, f(&e["host_peak_rss_mib"])
            );
        }
        let e = &scale["export"]["fhir"];
        if e.is_object() {
            let _ = writeln!(
                md,
                "| FHIR `$export` of that clinic: every file written (kick-off {:.2} s) and fetched | {:.2} s | {:.1} MiB | {:.0} MiB |",
                f(&e["kickoff_seconds"]), f(&e["seconds"]), f(&e["bytes"]) / 1048576.0, f(&e["host_peak_rss_mib"])
            );
        }
        let a = &scale["api_verify"];
        let _ = writeln!(
            md,
            "| `GET /audit/verify` of that clinic ({} entries) | {:.2} s | | |",
            a["entries"],
            f(&a["seconds"])
        );
        let dr = &scale["drill"];
        if dr.is_object() {
            let _ = writeln!(
                md,
                "| `amanah backup` of that clinic's region (in the drill) | {:.1} s | {:.1} MiB | |",
                f(&dr["backup_seconds"]),
                f(&dr["backup_bytes"]) / 1048576.0
            );
            let _ = writeln!(
                md,
                "| `amanah drill`: restore + verification of {} rows, {} audit entries = **RTO** (goal 900 s) | {:.1} s {} | | |",
                dr["rows"],
                dr["audit_entries"],
                f(&dr["rto_seconds"]),
                mark(dr["rto_met"] == true)
            );
        }
        let k = &scale["rotation"];
        if k.is_object() {
            let _ = writeln!(
                md,
                "| `amanah keys rotate-clinic` of that clinic: {} rows re-sealed, {} search indexes rebuilt | {:.1} s | | |",
                k["resealed_rows"],
                k["rebuilt_terms"],
                f(&k["clinic_seconds"])
            );
            let _ = writeln!(
                md,
                "| `amanah keys rotate-root` of that region: {} keys re-wrapped | {:.2} s | | |",
                k["rewrapped"],
                f(&k["root_seconds"])
            );
        }
        let v = &scale["audit"];
        let _ = writeln!(
            md,
            "| `audit::verify` of {} entries (libSQL file) | {:.2} s | | |",
            v["entries"],
            f(&v["verify_seconds"])
        );
        let _ = writeln!(
            md,
            "| appending those entries (`audit::append`, 10,000 per transaction) | {:.1} s | | |",
            f(&v["append_seconds"])
        );
    }
    if idle.is_object() {
        let _ = writeln!(
            md,
            "\n### Idle clinics (native host, {} clinics signed up from {} clients in {:.0} s)\n\n| when | RSS MiB | open files | threads |\n|---|---:|---:|---:|",
            idle["clinics"], 8, f(&idle["signup_seconds"])
        );
        for (label, key) in [
            ("started, no clinic", "before"),
            ("right after the sign-ups", "after"),
            ("75 s later (idle clinics closed)", "idle"),
        ] {
            let r = &idle[key];
            let _ = writeln!(
                md,
                "| {label} | {:.0} | {} | {} |",
                f(&r["rss_mib"]),
                r["open_files"],
                r["threads"]
            );
        }
        let _ = writeln!(
            md,
            "| peak during the sign-ups | {:.0} | | |",
            f(&idle["peak_rss_mib"])
        );
    }
    let _ = writeln!(md, "\n{END}");

    let all = json!({
        "date": i.date, "commit": i.commit, "machine": machine, "load": loads, "cold_start": colds,
        "scale": scale,
        "idle_clinics": idle,
        "micro_ns": native.iter().map(|(k, v)| (k.clone(), json!({"native": v, "wasm": wasm.get(k)}))).collect::<serde_json::Map<_, _>>(),
        "sizes": sizes.iter().map(|(l, r, g)| json!({"artifact": l, "raw": r, "gzip": g})).collect::<Vec<_>>(),
    });
    if let Some(parent) = i.json_out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        &i.json_out,
        serde_json::to_string_pretty(&all).map_err(|e| e.to_string())? + "\n",
    )
    .map_err(|e| format!("{}: {e}", i.json_out.display()))?;

    let current = std::fs::read_to_string(&i.md).map_err(|e| format!("{}: {e}", i.md.display()))?;
    let (Some(b), Some(e)) = (current.find(BEGIN), current.find(END)) else {
        return Err(format!("{} lacks the results markers", i.md.display()));
    };
    let updated = format!(
        "{}{}{}",
        &current[..b],
        md.trim_end(),
        &current[e + END.len()..]
    );
    std::fs::write(&i.md, updated).map_err(|e| format!("{}: {e}", i.md.display()))?;
    print!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_section_between_the_markers() {
        let dir = tempfile::tempdir().expect("tmp");
        let md = dir.path().join("B.md");
        std::fs::write(
            &md,
            format!("# Title\nkept\n{BEGIN}\nold table\n{END}\ntail kept\n"),
        )
        .expect("write");
        let blob = dir.path().join("blob");
        std::fs::write(&blob, vec![b'a'; 10_000]).expect("blob");
        write(&Inputs {
            dir: dir.path().to_path_buf(),
            sizes: vec![format!("Worker bundle (wasm + JS)={}", blob.display())],
            md: md.clone(),
            json_out: dir.path().join("out").join("latest.json"),
            commit: "abc1234".into(),
            date: "today".into(),
        })
        .expect("report");
        let text = std::fs::read_to_string(&md).expect("read");
        assert!(
            text.starts_with("# Title\nkept\n") && text.ends_with("tail kept\n"),
            "{text}"
        );
        assert!(!text.contains("old table"));
        assert!(
            text.contains("| Worker bundle < 1 MiB gzip | 0 KiB gzip | met |"),
            "{text}"
        );
        assert!(
            text.contains("| Worker bundle (wasm + JS) | 10 | 0 |"),
            "{text}"
        );
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out").join("latest.json")).expect("json"),
        )
        .expect("valid json");
        assert_eq!(json["sizes"][0]["raw"], 10_000);
    }
}
