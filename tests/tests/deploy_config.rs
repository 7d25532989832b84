//! `wrangler.toml` is derived from `regions.toml`: one Worker environment per
//! region, serving that region, placed near that region's database, listing
//! every region's URL, with no secret in the file and no query string (a
//! search term) in Cloudflare's request logs.

use amanah_region_config::{DatabaseProvider, Regions};

#[test]
fn every_region_has_its_worker_environment_and_nothing_else() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wrangler.toml"))
        .expect("wrangler.toml");
    let config: toml::Table = toml::from_str(&text).expect("wrangler.toml parses");
    let envs = config["env"].as_table().expect("[env.*] sections");
    let regions = Regions::builtin();
    assert_eq!(
        envs.len(),
        regions.all().len(),
        "one environment per region of regions.toml"
    );
    for region in regions.all() {
        let env = envs
            .get(&region.id)
            .and_then(|e| e.as_table())
            .unwrap_or_else(|| panic!("no [env.{}] in wrangler.toml", region.id));
        let vars = env["vars"].as_table().expect("vars");
        assert_eq!(vars["REGION"].as_str(), Some(region.id.as_str()));
        assert_eq!(
            env["placement"]["region"].as_str(),
            Some(region.edge.placement_region.as_str()),
            "placement of {}",
            region.id
        );
        let urls = vars["REGION_URLS"].as_str().expect("REGION_URLS");
        for other in regions.default_enabled() {
            assert!(
                urls.contains(&format!("{}=https://", other.id)),
                "{} lists {}",
                region.id,
                other.id
            );
        }
        // The database settings fit the region's provider (the hosts refuse
        // to start otherwise).
        let db_url = vars["DB_URL"].as_str().expect("DB_URL");
        match region.database.provider {
            DatabaseProvider::Turso => {
                assert!(db_url.starts_with("https://{name}-"), "{db_url}");
                assert!(vars["TURSO_ORG"].as_str().is_some_and(|o| !o.is_empty()));
                assert_eq!(
                    vars["DB_ADMIN_URL"].as_str(),
                    Some("https://api.turso.tech")
                );
            }
            DatabaseProvider::Sqld => {
                assert!(!db_url.contains("{name}") && !vars.contains_key("TURSO_ORG"));
            }
        }
        for secret in ["ROOT_KEY", "DB_AUTH_TOKEN", "DB_ADMIN_TOKEN"] {
            assert!(
                !vars.contains_key(secret),
                "{secret} is a secret, not a var"
            );
        }
    }
    assert!(
        !text.contains("ROOT_KEY ="),
        "no key material in wrangler.toml"
    );
    assert_eq!(config["assets"]["binding"].as_str(), Some("ASSETS"));
    // Search terms travel in query strings: never into Cloudflare's logs.
    assert_eq!(
        config["observability"]["redact_query_string"].as_bool(),
        Some(true)
    );
    for (name, env) in envs {
        assert!(
            env.get("observability").is_none(),
            "[env.{name}.observability] would override the redaction"
        );
    }
}

/// `spin.toml` declares every setting the component reads as a variable
/// (secrets marked secret, with no value), passes each to the component, and
/// lets it reach nothing but the region's own database.
#[test]
fn the_spin_manifest_declares_every_setting_and_only_the_database_host() {
    use amanah_functions::settings::{Kind, SETTINGS};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml"))
        .expect("spin.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("spin.toml parses");
    assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2));
    let vars = manifest["variables"].as_table().expect("[variables]");
    let component = manifest["component"]["amanah"]
        .as_table()
        .expect("[component.amanah]");
    let passed = component["variables"]
        .as_table()
        .expect("component variables");
    let names: Vec<(String, Kind)> = SETTINGS
        .iter()
        .map(|s| (s.name.to_ascii_lowercase(), s.kind))
        .collect();
    // `db_outbound` is the manifest's own: what the component may reach.
    assert!(vars.contains_key("db_outbound") && !passed.contains_key("db_outbound"));
    assert_eq!(vars.len(), names.len() + 1, "no variable nobody reads");
    for (name, kind) in &names {
        let v = vars
            .get(name)
            .and_then(|v| v.as_table())
            .unwrap_or_else(|| panic!("no variable {name} in spin.toml"));
        if *kind == Kind::Secret {
            assert_eq!(
                v.get("secret").and_then(|s| s.as_bool()),
                Some(true),
                "{name}"
            );
            let default = v.get("default").and_then(|d| d.as_str()).unwrap_or("");
            assert!(default.is_empty(), "{name} has no value in the manifest");
        }
        assert_eq!(
            passed.get(name).and_then(|p| p.as_str()),
            Some(format!("{{{{ {name} }}}}").as_str()),
            "{name} is passed to the component"
        );
    }
    let hosts: Vec<&str> = component["allowed_outbound_hosts"]
        .as_array()
        .expect("allowed_outbound_hosts")
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert_eq!(hosts, ["{{ db_outbound }}", "{{ db_admin_url }}"]);
    assert_eq!(
        component["source"].as_str(),
        Some("target/wasm32-wasip2/spin/amanah_spin.wasm"),
        "what `cargo xtask spin-build` builds"
    );
    let routes: Vec<&str> = manifest["trigger"]["http"]
        .as_array()
        .expect("[[trigger.http]]")
        .iter()
        .filter_map(|t| t["route"].as_str())
        .collect();
    assert!(routes.contains(&"/api/..."));
}
