//! The Spin host locally and for deployment: building the component, the
//! check of its imports, the per-region runtime configs generated from
//! `regions.toml`, and the `wasmtime serve` per region that
//! `up --host spin` runs in front of sqld ([`crate::deploy`]).
//!
//! No `spin` CLI can be installed here, so locally the component runs under
//! `wasmtime serve`, with `functions/spin/vars` (a stand-in for Spin's
//! variables provider, reading `SPIN_VARIABLE_*` as Spin's environment
//! provider does) composed in by `wasm-tools compose`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use amanah_region_config::{DatabaseProvider, Region, Regions};

use crate::deploy::{log_file, random_hex, root_key, RegionProc, WasmHost};
use crate::tools::SpinTools;
use crate::{cargo, newer, root, run, target_dir};

/// The only imports the component may have besides `wasi:*`.
const SPIN_IMPORTS: [&str; 1] = ["fermyon:spin/variables@2.0.0"];

/// The public domain of the example deployment (as in `wrangler.toml`).
const DOMAIN: &str = "amanah.example";

/// What `spin-build` produces.
pub struct Built {
    /// The component `spin.toml` deploys.
    pub component: PathBuf,
    /// The component with the variables stand-in composed in, for
    /// `wasmtime serve`.
    pub local: PathBuf,
}

pub fn out_dir() -> PathBuf {
    target_dir().join("spin")
}

/// Builds the component and the variables stand-in (`wasm32-wasip2`,
/// profile `spin`), checks the component's imports, composes the local
/// variant and writes the runtime configs.
pub fn build(tools: &SpinTools) -> Result<Built, String> {
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "amanah-spin",
        "-p",
        "amanah-spin-vars",
        "--target",
        "wasm32-wasip2",
        "--profile",
        "spin",
    ]);
    run("build the Spin component (wasm32-wasip2, profile spin)", c)?;
    let built = target_dir().join("wasm32-wasip2").join("spin");
    let component = built.join("amanah_spin.wasm");
    check_imports(tools, &component)?;
    let out = out_dir();
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    // `wasm-tools compose` names a dependency after its file, in kebab case.
    let vars = out.join("spin-vars.wasm");
    let built_vars = built.join("amanah_spin_vars.wasm");
    if newer(&built_vars, &vars) {
        fs::copy(&built_vars, &vars).map_err(|e| e.to_string())?;
    }
    let local = out.join("amanah-local.wasm");
    if newer(&component, &local) || newer(&vars, &local) {
        // (Quietly: it prints to stdout, which `up` keeps for its ready
        // line, and warns that `wac` replaces it; its output is shown only
        // if it fails.)
        let out = Command::new(&tools.wasm_tools)
            .arg("compose")
            .arg(&component)
            .arg("-d")
            .arg(&vars)
            .arg("-o")
            .arg(&local)
            .output()
            .map_err(|e| format!("wasm-tools: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "wasm-tools compose failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!(
            "xtask: composed the variables stand-in into {}",
            local.display()
        );
    }
    write_runtime_configs(&out.join("runtime-config"))?;
    let raw = fs::metadata(&component).map_err(|e| e.to_string())?.len();
    eprintln!(
        "xtask: Spin component: {} KiB raw, {} KiB gzip",
        raw / 1024,
        crate::wasm::gzip_len(&component)? / 1024
    );
    Ok(Built { component, local })
}

/// Lists the component's imports (`wasm-tools component wit`) and refuses
/// anything but `wasi:*` and Spin variables: the component must run on any
/// Spin host, and under `wasmtime serve` for tests.
pub fn check_imports(tools: &SpinTools, component: &Path) -> Result<(), String> {
    let out = Command::new(&tools.wasm_tools)
        .args(["component", "wit"])
        .arg(component)
        .output()
        .map_err(|e| format!("wasm-tools: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wasm-tools component wit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let wit = String::from_utf8_lossy(&out.stdout);
    let imports = imports_of(&wit);
    let refused = refused_imports(&imports);
    if !refused.is_empty() {
        return Err(format!(
            "the Spin component imports what only some hosts give: {}",
            refused.join(", ")
        ));
    }
    eprintln!(
        "xtask: Spin component imports ({}): only wasi:* and {}",
        imports.len(),
        SPIN_IMPORTS.join(", ")
    );
    Ok(())
}

/// The `import …;` lines of a component's world, as names.
fn imports_of(wit: &str) -> Vec<String> {
    wit.lines()
        .filter_map(|l| l.trim().strip_prefix("import "))
        .map(|l| l.trim_end_matches(';').trim().to_owned())
        .collect()
}

fn refused_imports(imports: &[String]) -> Vec<String> {
    imports
        .iter()
        .filter(|i| !i.starts_with("wasi:") && !SPIN_IMPORTS.contains(&i.as_str()))
        .cloned()
        .collect()
}

/// Writes `<dir>/<region>.toml` for every region of `regions.toml`.
pub fn write_runtime_configs(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let regions = Regions::builtin();
    for region in regions.all() {
        let text = runtime_config(&regions, region);
        fs::write(dir.join(format!("{}.toml", region.id)), text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One region's Spin runtime config: its plain settings from a static
/// variables provider. Secrets are never written here; they come from the
/// region's own secret store (or `SPIN_VARIABLE_*` in the Spin process).
pub fn runtime_config(regions: &Regions, region: &Region) -> String {
    let mut urls: Vec<String> = regions
        .default_enabled()
        .iter()
        .map(|r| format!("{}=https://{}.{DOMAIN}", r.id, r.id))
        .collect();
    if region.optional {
        urls.push(format!("{}=https://{}.{DOMAIN}", region.id, region.id));
    }
    let database = match region.database.provider {
        DatabaseProvider::Turso => format!("Turso, location {}", region.database.location),
        DatabaseProvider::Sqld => format!("self-run sqld in {}", region.database.location),
    };
    // Turso: a database per clinic, each at its own hostname (docs/turso.md).
    let db = match region.database.provider {
        DatabaseProvider::Turso => format!(
            "db_url = \"https://{{name}}-amanah.turso.io\"\n\
             db_outbound = \"https://*.turso.io\"\n\
             db_admin_url = \"https://api.turso.tech\"\n\
             turso_org = \"amanah\"\n\
             turso_group = \"{id}\"\n",
            id = region.id
        ),
        DatabaseProvider::Sqld => format!(
            "db_url = \"https://db.{id}.{DOMAIN}\"\n\
             db_outbound = \"https://db.{id}.{DOMAIN}\"\n\
             db_admin_url = \"https://db-admin.{id}.{DOMAIN}\"\n",
            id = region.id
        ),
    };
    format!(
        "# Spin runtime config for region {id} ({name}): data in {location}.\n\
         # Generated from region-config/regions.toml by `cargo xtask spin-build`;\n\
         # do not edit. Deploy: spin up --runtime-config-file {id}.toml (see the\n\
         # README, \"Deploy with Spin\").\n\
         # Database: {database}.\n\
         #\n\
         # Secrets are not in this file: give root_key (v1:<64 hex>), db_auth_token,\n\
         # db_admin_token and maintain_token from the region's own secret store (a\n\
         # [[variables_provider]] of type \"vault\" or \"azure_key_vault\" in the\n\
         # region) or as SPIN_VARIABLE_* in the Spin process's environment.\n\
         \n\
         [[variables_provider]]\n\
         type = \"static\"\n\
         \n\
         [variables_provider.values]\n\
         region = \"{id}\"\n\
         region_urls = \"{urls}\"\n\
         {db}",
        id = region.id,
        name = region.name,
        location = region.location,
        urls = urls.join(","),
    )
}

/// The Spin component as a [`WasmHost`]: `wasmtime serve` of the composed
/// component, its variables in `SPIN_VARIABLE_*` of its environment.
pub struct Spin<'a> {
    pub tools: &'a SpinTools,
    pub local: Option<PathBuf>,
    /// The bearer token for `POST /internal/maintain`, made per deployment.
    pub maintain_token: String,
    /// Sign-ups and requests unthrottled (`up --unlimited`, the benchmarks).
    pub unlimited: bool,
}

impl<'a> Spin<'a> {
    pub fn new(tools: &'a SpinTools) -> Result<Self, String> {
        Ok(Spin {
            tools,
            local: None,
            maintain_token: random_hex()?,
            unlimited: false,
        })
    }
}

impl WasmHost for Spin<'_> {
    const NAME: &'static str = "spin";
    const DESCRIPTION: &'static str = "the Spin component (wasmtime serve)";

    fn build(&mut self) -> Result<(), String> {
        self.local = Some(build(self.tools)?.local);
        Ok(())
    }

    fn start(
        &mut self,
        data: &Path,
        r: &RegionProc,
        region_urls: &str,
        test_hooks: bool,
    ) -> Result<(Child, PathBuf), String> {
        let local = self.local.as_ref().ok_or("the component is not built")?;
        let mut vars: Vec<(&str, String)> = vec![
            ("REGION", r.id.to_owned()),
            ("REGION_URLS", region_urls.to_owned()),
            ("ROOT_KEY", root_key(data, r.id)?),
            ("MAINTAIN_TOKEN", self.maintain_token.clone()),
        ];
        vars.extend(r.db_settings().into_iter().map(|(n, v, _)| (n, v)));
        if test_hooks || self.unlimited {
            // As for the Worker's test deployment: a whole suite signs up
            // and calls from one address (and a benchmark measures the
            // host, not the limiter).
            vars.push(("SIGNUP_LIMITS", "1000000,1000000".into()));
            vars.push(("REQUEST_LIMITS", "1000000/1000000,1000000/1000000".into()));
        }
        if test_hooks {
            // Tests also stop sqld (SIGSTOP): give up on it sooner than the
            // production default of 10 s.
            vars.push(("TEST_HOOKS", "1".into()));
            vars.push(("DB_TIMEOUT_MS", "2000".into()));
        }
        let log = r.dir(data).join("spin.log");
        let mut c = Command::new(&self.tools.wasmtime);
        // -Scli: the environment (the variables stand-in reads it).
        c.args(["serve", "-Scli", "--addr"])
            .arg(format!("127.0.0.1:{}", r.port));
        for (name, value) in &vars {
            // `--env NAME` passes the value from this environment, so no
            // secret appears on a command line.
            let key = format!("SPIN_VARIABLE_{name}");
            c.arg("--env").arg(&key).env(&key, value);
        }
        c.arg(local)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?);
        let child = c
            .spawn()
            .map_err(|e| format!("cannot start wasmtime serve: {e}"))?;
        Ok((child, log))
    }

    fn deployment_extra(&self) -> String {
        // `wasmtime serve` gives no client address (Spin's runtime sets
        // `spin-client-addr`).
        format!(
            ",\"maintain_token\":\"{}\",\"client_address\":false",
            self.maintain_token
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_and_spin_variables_pass() {
        let wit = "package root:component;\n\nworld root {\n  import wasi:io/poll@0.2.6;\n  import fermyon:spin/variables@2.0.0;\n  import fermyon:spin/sqlite@2.0.0;\n  import spin:key-value/key-value@3.0.0;\n\n  export wasi:http/incoming-handler@0.2.0;\n}\n";
        let imports = imports_of(wit);
        assert_eq!(imports.len(), 4);
        assert_eq!(
            refused_imports(&imports),
            [
                "fermyon:spin/sqlite@2.0.0",
                "spin:key-value/key-value@3.0.0"
            ]
        );
    }

    #[test]
    fn every_region_gets_a_runtime_config_of_its_own() {
        let regions = Regions::builtin();
        for region in regions.all() {
            let text = runtime_config(&regions, region);
            let config: toml::Table = toml::from_str(&text).expect("valid TOML");
            let providers = config["variables_provider"].as_array().expect("providers");
            assert_eq!(providers.len(), 1);
            assert_eq!(providers[0]["type"].as_str(), Some("static"));
            let values = providers[0]["values"].as_table().expect("values");
            assert_eq!(values["region"].as_str(), Some(region.id.as_str()));
            // The database as the region's provider wants it, and only it
            // reachable.
            let db_url = values["db_url"].as_str().expect("db_url");
            let outbound = values["db_outbound"].as_str().expect("db_outbound");
            match region.database.provider {
                DatabaseProvider::Turso => {
                    assert!(db_url.starts_with("https://{name}-"), "{db_url}");
                    assert_eq!(outbound, "https://*.turso.io");
                    assert_eq!(values["turso_group"].as_str(), Some(region.id.as_str()));
                }
                DatabaseProvider::Sqld => {
                    assert!(db_url.starts_with(&format!("https://db.{}.", region.id)));
                    assert_eq!(outbound, db_url);
                }
            }
            let urls = values["region_urls"].as_str().expect("region_urls");
            for other in regions.default_enabled() {
                assert!(urls.contains(&format!("{}=https://", other.id)));
            }
            assert!(urls.contains(&format!("{}=https://", region.id)));
            for secret in [
                "root_key",
                "db_auth_token",
                "db_admin_token",
                "maintain_token",
            ] {
                assert!(!values.contains_key(secret), "{secret} is a secret");
            }
        }
    }
}
