//! `cargo fuzz` of `functions/fuzz/` for a bounded time per target: request
//! parsing, JSON bodies, the ciphertext decoder and token parsing. It needs
//! a nightly toolchain (pinned by date) and cargo-fuzz (pinned), installed
//! when missing. A crash fails the run; libFuzzer leaves the input in
//! `functions/fuzz/artifacts/<target>/` to reproduce it with
//! `cargo +nightly fuzz run <target> <file>`.

use std::process::Command;

use crate::{root, run};

/// The nightly toolchain the targets are built with.
const NIGHTLY: &str = "nightly-2026-05-19";
const NIGHTLY_DATE: &str = "2026-05-19";
const CARGO_FUZZ: &str = "0.13.1";
pub const TARGETS: [&str; 4] = ["requests", "json_bodies", "ciphertext", "tokens"];

/// The toolchain to use: the machine's `nightly` when it is the pinned
/// date (no download), else the pinned one, installed if missing.
fn toolchain() -> Result<String, String> {
    for name in ["nightly", NIGHTLY] {
        let out = Command::new("rustup")
            .args(["run", name, "rustc", "--version"])
            .output();
        if let Ok(o) = out {
            if o.status.success() && String::from_utf8_lossy(&o.stdout).contains(NIGHTLY_DATE) {
                return Ok(name.to_owned());
            }
        }
    }
    let mut c = Command::new("rustup");
    c.args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]);
    run(&format!("install Rust {NIGHTLY} (for cargo fuzz)"), c)?;
    Ok(NIGHTLY.to_owned())
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if have.as_deref() == Some(&format!("cargo-fuzz {CARGO_FUZZ}")) {
        return Ok(());
    }
    let mut c = Command::new("cargo");
    c.args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ]);
    run(
        &format!("cargo install cargo-fuzz {CARGO_FUZZ} (once, ~1 min)"),
        c,
    )
}

/// Builds every target and runs each for `seconds`.
pub fn run_all(seconds: u32) -> Result<(), String> {
    let toolchain = toolchain()?;
    ensure_cargo_fuzz()?;
    let dir = root().join("functions").join("fuzz");
    let plus = format!("+{toolchain}");
    let mut c = Command::new("cargo");
    c.current_dir(&dir)
        .args([plus.as_str(), "fuzz", "build", "-O"]);
    run("cargo fuzz build (nightly, address sanitizer)", c)?;
    for target in TARGETS {
        let mut c = Command::new("cargo");
        c.current_dir(&dir).args([
            plus.as_str(),
            "fuzz",
            "run",
            "-O",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
            "-max_len=4096",
            "-print_final_stats=1",
        ]);
        run(&format!("fuzz {target} for {seconds} s"), c)?;
    }
    Ok(())
}
