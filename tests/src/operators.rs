//! Running operator commands (`amanah keys | backup | restore | audit …`)
//! on a native deployment's files, as an operator runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::deployment::{amanah_bin, Deployment};

/// A fresh native deployment, its data dir and a work dir; `None` (the
/// test is skipped) when the suite runs against another deployment.
pub fn native() -> Option<(Deployment, PathBuf, tempfile::TempDir)> {
    if std::env::var("AMANAH_PK_URL").is_ok() || std::env::var("AMANAH_DEPLOYMENT").is_ok() {
        eprintln!("skipped: operator commands work on the native host's files");
        return None;
    }
    let d = Deployment::start_native(&[]);
    let data = d.data_dir.clone().expect("native data dir");
    Some((d, data, tempfile::tempdir().expect("temp dir")))
}

/// The chain named `name` in the reports of `amanah audit … --json`.
pub fn chain<'a>(reports: &'a Value, name: &str) -> &'a Value {
    reports
        .as_array()
        .expect("reports")
        .iter()
        .flat_map(|r| r["chains"].as_array().expect("chains"))
        .find(|c| c["chain"] == name)
        .unwrap_or_else(|| panic!("no chain {name} in {reports}"))
}

/// What one `amanah` command did.
pub struct Ran {
    pub ok: bool,
    pub json: Value,
    pub stderr: String,
}

/// Runs `amanah <args> <flag> <path>… --json` with `env` added.
pub fn operator(args: &[&str], paths: &[(&str, &Path)], env: &[(&str, &str)]) -> Ran {
    let mut c = Command::new(amanah_bin());
    c.args(args);
    for (flag, path) in paths {
        c.arg(flag).arg(path);
    }
    c.envs(env.iter().copied());
    // `--sqld` of a Turso region's databases (a URL with `{name}`): the
    // deployment's database token, as its operator would export it.
    if let Some(url) = args.iter().find(|a| a.contains("{name}")) {
        if let Some(token) = turso_token(url) {
            c.env("AMANAH_DB_AUTH_TOKEN", token);
        }
    }
    let out = c.arg("--json").output().expect("run amanah");
    Ran {
        ok: out.status.success(),
        json: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The database token of the deployment's Turso region whose databases are
/// at `url` (`AMANAH_DEPLOYMENT`'s file).
fn turso_token(url: &str) -> Option<String> {
    let file = std::env::var("AMANAH_DEPLOYMENT").ok()?;
    let d = crate::Deployment::from_file(std::path::Path::new(&file));
    ["pk", "ae"]
        .iter()
        .filter_map(|r| d.sqld(r)?.turso.clone())
        .find(|t| t.db_url == url)
        .map(|t| t.db_token)
}
