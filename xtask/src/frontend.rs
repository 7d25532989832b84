//! The browser app: `frontend/` built for wasm32 (profile `frontend`), bound
//! with wasm-bindgen (`--target web`), shrunk with wasm-opt, and put with
//! its static files (`frontend/static/`) into `frontend/dist/`, which the
//! native host (`amanah serve --assets`) and the Worker (its assets binding)
//! serve at `/`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::tools::Tools;
use crate::{cargo, newer, root, run, target_dir};

/// Where the built app goes.
pub fn dist() -> PathBuf {
    root().join("frontend").join("dist")
}

/// Builds the app into [`dist`]; prints the sizes a browser downloads.
pub fn build(tools: &Tools) -> Result<PathBuf, String> {
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "amanah-frontend",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "frontend",
    ]);
    run("build the front end (wasm32, profile frontend)", c)?;
    let input = target_dir()
        .join("wasm32-unknown-unknown")
        .join("frontend")
        .join("amanah_frontend.wasm");
    let out = dist();
    let wasm = out.join("amanah_bg.wasm");
    if newer(&input, &wasm) {
        crate::wasm::bind_and_shrink(tools, &input, &out, "amanah", "-Oz")?;
    }
    let statics = root().join("frontend").join("static");
    for entry in fs::read_dir(&statics).map_err(|e| format!("{}: {e}", statics.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, out.join(name)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let size = |p: &Path| -> Result<String, String> {
        let raw = fs::metadata(p).map_err(|e| e.to_string())?.len();
        Ok(format!(
            "{} KiB raw, {} KiB gzip",
            raw / 1024,
            crate::wasm::gzip_len(p)? / 1024
        ))
    };
    eprintln!(
        "xtask: front end in {}: wasm {}; js {}",
        out.display(),
        size(&wasm)?,
        size(&out.join("amanah.js"))?
    );
    Ok(out)
}
