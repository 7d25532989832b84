//! What every wasm build of the workspace shares: wasm-bindgen and wasm-opt
//! over a built module (the front end's, the Worker's), and the gzip size
//! a download costs.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::run;
use crate::tools::Tools;

/// `wasm-bindgen --target web` of `input` into a fresh `out` (as
/// `<name>.js` and `<name>_bg.wasm`), then `wasm-opt` at `level` with the
/// features browsers and workerd share (not `--all-features`: that emits
/// encodings Chromium refuses).
pub fn bind_and_shrink(
    tools: &Tools,
    input: &Path,
    out: &Path,
    name: &str,
    level: &str,
) -> Result<(), String> {
    let _ = fs::remove_dir_all(out);
    let mut c = Command::new(&tools.wasm_bindgen);
    c.args([
        "--target",
        "web",
        "--no-typescript",
        "--out-name",
        name,
        "--out-dir",
    ])
    .arg(out)
    .arg(input);
    run(&format!("wasm-bindgen --target web ({name})"), c)?;
    let wasm = out.join(format!("{name}_bg.wasm"));
    let mut c = Command::new(tools.node_bin.join("node"));
    c.arg(&tools.wasm_opt)
        .arg(&wasm)
        .arg("-o")
        .arg(&wasm)
        .args([
            level,
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
        ]);
    run(&format!("wasm-opt {level} ({name})"), c)
}

/// The length of `path` compressed by `gzip -9` (what a download costs).
pub fn gzip_len(path: &Path) -> Result<u64, String> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out.stdout.len() as u64)
}
