//! `wrangler.toml` is derived from `regions.toml`: one Worker environment per
//! region, serving that region, placed near that region's database, listing
//! every region's URL, with no secret in the file and no query string (a
//! search term) in Cloudflare's request logs.

use amanah_region_config::Regions;

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
