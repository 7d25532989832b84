//! `amanah audit checkpoint` and `amanah audit verify` over a directory of
//! checkpoints, one append-only JSON-lines file per chain:
//! `<checkpoint dir>/<region>/<chain>.jsonl`. The rule (what is checked,
//! what is signed) is [`amanah_functions::jobs::checkpoints`]; the Worker
//! keeps the same checkpoints in its object store binding instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use amanah_functions::checkpoint::Checkpoint;
use amanah_functions::host::Host;
use amanah_functions::ids::ClinicId;
use amanah_functions::jobs::checkpoints::{self, CheckpointStore, Report, Step};
use amanah_functions::App;
use indicatif::ProgressBar;

use super::progress;

/// Checkpoints as files under a directory.
pub struct Directory(pub PathBuf);

impl Directory {
    fn file_of(&self, region: &str, chain: &str) -> PathBuf {
        self.0.join(region).join(format!("{chain}.jsonl"))
    }
}

impl CheckpointStore for Directory {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    async fn load(&self, region: &str, chain: &str) -> Result<Vec<String>, String> {
        let path = self.file_of(region, chain);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Appends one line and syncs it to disk.
    async fn append(&self, region: &str, c: &Checkpoint, text: &str) -> Result<(), String> {
        let path = self.file_of(region, &c.chain);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        f.write_all(format!("{text}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// `amanah audit verify`.
pub async fn verify<H: Host>(
    app: &App<H>,
    dir: &Path,
    only: Option<&ClinicId>,
    quiet: bool,
) -> Result<Report, String> {
    run(app, dir, only, false, quiet).await
}

/// `amanah audit checkpoint`: verifies, then signs the head of every chain
/// that passed.
pub async fn checkpoint<H: Host>(app: &App<H>, dir: &Path, quiet: bool) -> Result<Report, String> {
    run(app, dir, None, true, quiet).await
}

async fn run<H: Host>(
    app: &App<H>,
    dir: &Path,
    only: Option<&ClinicId>,
    sign: bool,
    quiet: bool,
) -> Result<Report, String> {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let on_step = |step: Step| {
        let Ok(mut bar) = bar.lock() else { return };
        match step {
            Step::Chains(n) => *bar = Some(progress(n as u64, "chains", quiet)),
            Step::Done => {
                if let Some(b) = bar.as_ref() {
                    b.inc(1)
                }
            }
        }
    };
    let store = Directory(dir.to_path_buf());
    let report = checkpoints::run(app, &store, only, sign, &on_step).await;
    if let Ok(Some(b)) = bar.lock().map(|mut b| b.take()) {
        b.finish_and_clear();
    }
    report
}
