//! `regions.toml`: the only list of Amanah's data-residency regions, and the
//! one place that loads and validates it.
//!
//! A region is where every byte of a clinic's data lives. Its short id (`pk`,
//! `ae`, …) prefixes every clinic id, so any component can tell a clinic's
//! region from its id alone, without opening a database.

use std::collections::HashSet;

use serde::Deserialize;

/// The text of the repository's `regions.toml`, compiled in.
pub const REGIONS_TOML: &str = include_str!("../regions.toml");

/// Who runs a region's libSQL in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseProvider {
    /// Turso's managed libSQL, in one of its published locations.
    Turso,
    /// A self-run `sqld` in a cloud region of the operator's choice.
    Sqld,
}

/// Where a region's libSQL lives in production.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabasePlacement {
    pub provider: DatabaseProvider,
    /// Turso location (one of [`TURSO_LOCATIONS`], `aws-ap-southeast-1`)
    /// or, for a self-run sqld, the cloud region (`aws:me-central-1`).
    pub location: String,
}

/// Turso's locations for new groups, as its Platform API names them
/// (`GET /v1/locations`). Turso's older locations (`sin`, `fra`, …) are
/// closed to new users; its current ones are AWS regions named
/// `aws-<region>`. A `regions.toml` naming any other is refused, and the
/// host checks at every database it creates that the group it creates it
/// in is placed here (`functions/src/store/turso.rs`); the operator checks
/// this list against `GET /v1/locations` before deploying (docs/turso.md).
pub const TURSO_LOCATIONS: [&str; 8] = [
    "aws-ap-northeast-1",
    "aws-ap-south-1",
    "aws-ap-southeast-1",
    "aws-eu-central-1",
    "aws-eu-west-1",
    "aws-us-east-1",
    "aws-us-east-2",
    "aws-us-west-2",
];

/// Edge (Workers) settings for a region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgePlacement {
    /// Smart Placement hint: the cloud region next to the region's database.
    pub placement_region: String,
}

/// How the region's people are identified, for interchange (FHIR, HL7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The identifier system (a URI) of the region's national id, where one
    /// is settled on; a national id is then sent with this system.
    #[serde(default)]
    pub national_id_system: Option<String>,
    /// What the national id is called there (`CNIC`, `Emirates ID`).
    #[serde(default)]
    pub national_id_name: Option<String>,
}

/// How long a region's law keeps clinical records: a deleted record is kept
/// (archived, encrypted) until this long after its last clinical activity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Whole calendar years, 1 to 100 (always beyond the 30-day grace).
    pub years: u32,
    /// The law that sets the period, as the README and `/api/v1/regions`
    /// name it.
    pub law: String,
}

/// One data-residency region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Short lowercase id; prefixes every clinic id of the region.
    pub id: String,
    /// The jurisdiction clinics choose (shown at sign-up).
    pub name: String,
    /// Where the data physically lives (shown at sign-up).
    pub location: String,
    /// Optional regions are served only when an operator enables them.
    #[serde(default)]
    pub optional: bool,
    pub database: DatabasePlacement,
    pub edge: EdgePlacement,
    #[serde(default)]
    pub identity: Identity,
    /// None: a deleted record is purged when the grace period ends.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// Every region, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    regions: Vec<Region>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    region: Vec<Region>,
}

/// Why a regions file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionConfigError {
    #[error("regions.toml is not valid TOML for a region list: {0}")]
    Parse(String),
    #[error("regions.toml lists no region")]
    Empty,
    #[error("region id {0:?} must be 2 to 8 lowercase ASCII letters")]
    BadId(String),
    #[error("region id {0:?} appears twice")]
    Duplicate(String),
    #[error("region {0:?} needs a non-empty {1}")]
    Missing(String, &'static str),
    #[error("no region is enabled by default (every region is optional)")]
    NoDefault,
    #[error("unknown region {0:?}")]
    Unknown(String),
    #[error("regions.toml: region {0:?}: database.location {1:?} is not one of Turso's locations ({locations})", locations = TURSO_LOCATIONS.join(", "))]
    TursoLocation(String, String),
    #[error("regions.toml: region {0:?}: retention.years must be 1 to 100 (a period below the 30-day grace period, or none, is refused)")]
    Retention(String),
}

impl Regions {
    /// The regions compiled into this build.
    pub fn builtin() -> Self {
        // The compiled-in file is checked by this crate's tests, so a failure
        // here is a build defect, never bad input.
        Self::parse(REGIONS_TOML).expect("the compiled-in regions.toml is valid")
    }

    /// Parses and validates a regions file.
    pub fn parse(text: &str) -> Result<Self, RegionConfigError> {
        let file: File =
            toml::from_str(text).map_err(|e| RegionConfigError::Parse(e.message().to_owned()))?;
        if file.region.is_empty() {
            return Err(RegionConfigError::Empty);
        }
        let mut seen = HashSet::new();
        for r in &file.region {
            let id_ok =
                (2..=8).contains(&r.id.len()) && r.id.bytes().all(|b| b.is_ascii_lowercase());
            if !id_ok {
                return Err(RegionConfigError::BadId(r.id.clone()));
            }
            if !seen.insert(r.id.clone()) {
                return Err(RegionConfigError::Duplicate(r.id.clone()));
            }
            for (value, what) in [
                (&r.name, "name"),
                (&r.location, "location"),
                (&r.database.location, "database.location"),
                (&r.edge.placement_region, "edge.placement_region"),
            ] {
                if value.trim().is_empty() {
                    return Err(RegionConfigError::Missing(r.id.clone(), what));
                }
            }
            if r.database.provider == DatabaseProvider::Turso
                && !TURSO_LOCATIONS.contains(&r.database.location.as_str())
            {
                return Err(RegionConfigError::TursoLocation(
                    r.id.clone(),
                    r.database.location.clone(),
                ));
            }
            if let Some(t) = &r.retention {
                if !(1..=100).contains(&t.years) {
                    return Err(RegionConfigError::Retention(r.id.clone()));
                }
                if t.law.trim().is_empty() {
                    return Err(RegionConfigError::Missing(r.id.clone(), "retention.law"));
                }
            }
        }
        if file.region.iter().all(|r| r.optional) {
            return Err(RegionConfigError::NoDefault);
        }
        Ok(Self {
            regions: file.region,
        })
    }

    /// Every region, in file order.
    pub fn all(&self) -> &[Region] {
        &self.regions
    }

    /// The regions served when an operator names none: every non-optional one.
    pub fn default_enabled(&self) -> Vec<Region> {
        self.regions
            .iter()
            .filter(|r| !r.optional)
            .cloned()
            .collect()
    }

    /// Looks a region up by id.
    pub fn get(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Resolves a list of ids (an operator's `--regions pk,eu`).
    pub fn select(&self, ids: &[String]) -> Result<Vec<Region>, RegionConfigError> {
        ids.iter()
            .map(|id| {
                self.get(id)
                    .cloned()
                    .ok_or_else(|| RegionConfigError::Unknown(id.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_regions_pin_pakistan_to_singapore_and_uae_in_uae() {
        let r = Regions::builtin();
        let pk = r.get("pk").unwrap();
        assert_eq!(
            (pk.name.as_str(), pk.location.as_str()),
            ("Pakistan", "Singapore")
        );
        assert_eq!(pk.database.provider, DatabaseProvider::Turso);
        assert_eq!(pk.database.location, "aws-ap-southeast-1");
        let ae = r.get("ae").unwrap();
        assert_eq!(ae.location, "UAE");
        // Turso has no UAE location: ae must be a self-run sqld.
        assert_eq!(ae.database.provider, DatabaseProvider::Sqld);
        let eu = r.get("eu").unwrap();
        assert_eq!(eu.location, "Frankfurt");
        assert_eq!(eu.database.location, "aws-eu-central-1");
        assert!(eu.optional);
        let ids: Vec<_> = r.default_enabled().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["pk", "ae"]);
        // The UAE keeps health records 25 years; Pakistan and the EU set
        // nothing beyond the grace period.
        assert_eq!(ae.retention.as_ref().map(|t| t.years), Some(25));
        assert!(pk.retention.is_none() && eu.retention.is_none());
    }

    const ONE: &str = r#"
[[region]]
id = "pk"
name = "Pakistan"
location = "Singapore"
[region.database]
provider = "turso"
location = "aws-ap-southeast-1"
[region.edge]
placement_region = "aws:ap-southeast-1"
"#;

    #[test]
    fn validation_refuses_bad_files() {
        assert!(Regions::parse(ONE).is_ok());
        assert_eq!(
            Regions::parse(&format!("{ONE}{ONE}")),
            Err(RegionConfigError::Duplicate("pk".into()))
        );
        assert_eq!(
            Regions::parse(&ONE.replace("\"pk\"", "\"PK\"")),
            Err(RegionConfigError::BadId("PK".into()))
        );
        assert_eq!(
            Regions::parse(&ONE.replace("\"Singapore\"", "\" \"")),
            Err(RegionConfigError::Missing("pk".into(), "location"))
        );
        assert!(matches!(
            Regions::parse(&ONE.replace("turso", "dynamo")),
            Err(RegionConfigError::Parse(_))
        ));
        assert!(matches!(
            Regions::parse(&ONE.replace("[region.edge]", "colour = 1\n[region.edge]")),
            Err(RegionConfigError::Parse(_))
        ));
        assert_eq!(
            Regions::parse(&ONE.replace("[region.database]", "optional = true\n[region.database]")),
            Err(RegionConfigError::NoDefault)
        );
        assert_eq!(Regions::parse("region = []"), Err(RegionConfigError::Empty));
        // Turso's closed location names, and places it has none, are refused.
        for closed in ["sin", "aws:ap-southeast-1", "aws-me-central-1"] {
            assert_eq!(
                Regions::parse(&ONE.replace(
                    "aws-ap-southeast-1\"\n[region.edge]",
                    &format!("{closed}\"\n[region.edge]")
                )),
                Err(RegionConfigError::TursoLocation("pk".into(), closed.into()))
            );
        }
        // A self-run sqld names its cloud region freely.
        assert!(Regions::parse(&ONE.replace("turso", "sqld").replace(
            "aws-ap-southeast-1\"\n[region.edge]",
            "aws:ap-southeast-1\"\n[region.edge]"
        ))
        .is_ok());
        let kept = |years: &str, law: &str| {
            Regions::parse(&format!(
                "{ONE}[region.retention]\nyears = {years}\nlaw = \"{law}\"\n"
            ))
        };
        assert!(kept("25", "A law").is_ok());
        assert_eq!(
            kept("0", "A law"),
            Err(RegionConfigError::Retention("pk".into()))
        );
        assert_eq!(
            kept("101", "A law"),
            Err(RegionConfigError::Retention("pk".into()))
        );
        assert_eq!(
            kept("5", " "),
            Err(RegionConfigError::Missing("pk".into(), "retention.law"))
        );
        assert!(matches!(
            kept("-1", "A law"),
            Err(RegionConfigError::Parse(_))
        ));
        let r = Regions::builtin();
        assert_eq!(
            r.select(&["xx".into()]),
            Err(RegionConfigError::Unknown("xx".into()))
        );
    }
}
