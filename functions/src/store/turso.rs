//! A region whose databases Turso runs (`provider = "turso"` in
//! `regions.toml`): each clinic is its own Turso database, created and
//! deleted through Turso's Platform API and reached at its own URL; the
//! region directory is one more database.
//!
//! What this module decides:
//! - **Names.** A Turso database name is lowercase letters, digits and
//!   dashes; a clinic id (`pk_<base32>`) becomes `pk-<base32>` (29
//!   characters, under Turso's 32), the directory `<region>-directory`.
//!   The two cannot collide: a clinic's part after the dash is 26 base32
//!   characters.
//! - **Residency before every creation.** A database is created only after
//!   the Platform API says its group's primary location is the region's
//!   (`regions.toml`) and the group has no replica elsewhere: a group moved
//!   or replicated out of the region refuses sign-ups rather than put a
//!   clinic's data outside it.
//! - **Addressing.** Each database's URL is the deployment's `DB_URL` with
//!   `{name}` replaced (`https://{name}-<org>.turso.io` in production, as the
//!   Platform API's `Hostname` is `<name>-<org>.turso.io`); the group's
//!   database token (`DB_AUTH_TOKEN`, a group token) is its bearer.
//!
//! The Platform API cannot be reached from the machines this is tested on:
//! `xtask/turso-standin.py` speaks its documented endpoints locally and
//! backs each database with a namespace of a real sqld (docs/turso.md).

use serde_json::Value as Json;

use crate::host::DbError;

use super::hrana::Transport;

/// Where a Turso region's databases are created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TursoPlacement {
    /// The region's id (`pk`): names its directory database.
    pub region: String,
    /// The organisation's slug.
    pub organization: String,
    /// The group every database of the region is created in.
    pub group: String,
    /// The group's required location (`regions.toml`,
    /// `aws-ap-southeast-1`).
    pub location: String,
}

/// The placeholder of `DB_URL` that a database's name replaces.
pub const NAME_PLACEHOLDER: &str = "{name}";

/// The Turso database name of a namespace name of this crate (`directory`
/// or a clinic id).
pub fn database_name(region: &str, namespace: &str) -> String {
    if namespace == super::sqld::DIRECTORY {
        format!("{region}-directory")
    } else {
        namespace.replace('_', "-")
    }
}

/// A Platform API call's answer.
struct Answer {
    status: u16,
    body: Json,
}

/// The Platform API of one organisation.
pub struct PlatformApi<'a, T: Transport> {
    pub transport: &'a T,
    /// `https://api.turso.tech` (or the local stand-in).
    pub url: &'a str,
    pub token: Option<&'a str>,
    pub placement: &'a TursoPlacement,
}

impl<T: Transport> PlatformApi<'_, T> {
    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Json>,
    ) -> Result<(Answer, bool), DbError> {
        let url = format!(
            "{}/v1/organizations/{}{path}",
            self.url.trim_end_matches('/'),
            self.placement.organization
        );
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(t) = self.token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let ((status, answer), resent) =
            super::sqld::send_admin_call(self.transport, method, &url, headers, bytes).await?;
        if status >= 500 || status == 429 {
            return Err(DbError::Unavailable(format!(
                "Turso's Platform API answered {status}"
            )));
        }
        if status == 401 || status == 403 {
            return Err(DbError::Other(format!(
                "Turso's Platform API refused the token ({status}): check DB_ADMIN_TOKEN"
            )));
        }
        let body = serde_json::from_slice(&answer).unwrap_or(Json::Null);
        Ok((Answer { status, body }, resent))
    }

    /// Refuses unless the group is placed only in the region's location.
    async fn check_group(&self) -> Result<(), DbError> {
        let (a, _) = self
            .call("GET", &format!("/groups/{}", self.placement.group), None)
            .await?;
        if a.status == 404 {
            return Err(DbError::Other(format!(
                "Turso group {:?} does not exist: create it in {} first (docs/turso.md)",
                self.placement.group, self.placement.location
            )));
        }
        let group = &a.body["group"];
        let primary = group["primary"].as_str().unwrap_or("");
        let locations: Vec<&str> = group["locations"]
            .as_array()
            .map(|l| l.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let want = self.placement.location.as_str();
        if a.status != 200 || primary != want || locations.iter().any(|l| *l != want) {
            return Err(DbError::Other(format!(
                "Turso group {:?} is not placed in {want} alone (primary {primary:?}, \
                 locations {locations:?}): no database is created outside the region",
                self.placement.group
            )));
        }
        Ok(())
    }

    /// Creates the database of `namespace` in the region's group; one that
    /// exists already is fine when `existing_ok` (or when the call was
    /// resent, and found what the first made).
    pub async fn create(&self, namespace: &str, existing_ok: bool) -> Result<(), DbError> {
        self.check_group().await?;
        let name = database_name(&self.placement.region, namespace);
        let (a, resent) = self
            .call(
                "POST",
                "/databases",
                Some(serde_json::json!({"name": name, "group": self.placement.group})),
            )
            .await?;
        match a.status {
            200..=299 if a.body["database"]["Name"].as_str() == Some(name.as_str()) => Ok(()),
            200..=299 => Err(DbError::Other(
                "Turso's Platform API answered a creation without the database's name".into(),
            )),
            409 if existing_ok || resent => Ok(()),
            s => Err(DbError::Other(format!(
                "Turso's Platform API answered {s} creating a database"
            ))),
        }
    }

    /// Deletes the database of `namespace`; one already gone is fine.
    pub async fn delete(&self, namespace: &str) -> Result<(), DbError> {
        let name = database_name(&self.placement.region, namespace);
        let (a, _) = self
            .call("DELETE", &format!("/databases/{name}"), None)
            .await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            s => Err(DbError::Other(format!(
                "Turso's Platform API answered {s} deleting a database"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn names_are_turso_names_and_never_collide() {
        let clinic = crate::ids::ClinicId::generate("pk", [7; 16]);
        let name = database_name("pk", clinic.as_str());
        assert!(name.len() <= 32, "{name}");
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_eq!(name, clinic.as_str().replace('_', "-"));
        assert_eq!(
            database_name("pk", super::super::sqld::DIRECTORY),
            "pk-directory"
        );
        assert_ne!(
            database_name("ae", "directory"),
            database_name("pk", "directory")
        );
    }

    /// Records the calls and answers each from a script (the shapes of
    /// Turso's documented answers).
    #[derive(Clone)]
    struct Scripted {
        calls: Arc<Mutex<Vec<(String, String, String)>>>,
        group: Json,
        create_status: u16,
    }

    impl Transport for Scripted {
        async fn send(
            &self,
            method: &'static str,
            url: &str,
            headers: Vec<(&'static str, String)>,
            body: Vec<u8>,
        ) -> Result<(u16, Vec<u8>), String> {
            let auth = headers
                .iter()
                .find(|(h, _)| *h == "authorization")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            self.calls.lock().unwrap().push((
                format!("{method} {url}"),
                String::from_utf8_lossy(&body).into_owned(),
                auth,
            ));
            let answer = if url.contains("/groups/") {
                (200, serde_json::json!({"group": self.group}))
            } else {
                let name = serde_json::from_slice::<Json>(&body)
                    .ok()
                    .and_then(|b| b["name"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (
                    self.create_status,
                    serde_json::json!({"database": {"DbId": "x", "Hostname": format!("{name}-org.turso.io"), "Name": name}}),
                )
            };
            Ok((answer.0, answer.1.to_string().into_bytes()))
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    fn placement() -> TursoPlacement {
        TursoPlacement {
            region: "pk".into(),
            organization: "amanah".into(),
            group: "pk".into(),
            location: "aws-ap-southeast-1".into(),
        }
    }

    #[test]
    fn a_database_is_created_only_in_a_group_placed_in_the_region() {
        let p = placement();
        let t = Scripted {
            calls: Default::default(),
            group: serde_json::json!({"name": "pk", "primary": "aws-ap-southeast-1", "locations": ["aws-ap-southeast-1"]}),
            create_status: 200,
        };
        let api = PlatformApi {
            transport: &t,
            url: "https://api.turso.tech/",
            token: Some("tok"),
            placement: &p,
        };
        let clinic = crate::ids::ClinicId::generate("pk", [1; 16]);
        run(api.create(clinic.as_str(), false)).unwrap();
        let calls = t.calls.lock().unwrap().clone();
        assert_eq!(
            calls[0].0,
            "GET https://api.turso.tech/v1/organizations/amanah/groups/pk"
        );
        assert_eq!(
            calls[1].0,
            "POST https://api.turso.tech/v1/organizations/amanah/databases"
        );
        let body: Json = serde_json::from_str(&calls[1].1).unwrap();
        assert_eq!(body["group"], "pk");
        assert_eq!(body["name"], database_name("pk", clinic.as_str()));
        assert!(calls.iter().all(|c| c.2 == "Bearer tok"));

        // A replica outside the region, or another primary: nothing created.
        for group in [
            serde_json::json!({"primary": "aws-ap-southeast-1", "locations": ["aws-ap-southeast-1", "aws-us-east-1"]}),
            serde_json::json!({"primary": "aws-ap-south-1", "locations": ["aws-ap-south-1"]}),
            serde_json::json!({}),
        ] {
            let t = Scripted {
                calls: Default::default(),
                group,
                create_status: 200,
            };
            let api = PlatformApi {
                transport: &t,
                url: "https://api.turso.tech",
                token: Some("tok"),
                placement: &p,
            };
            let e = run(api.create(clinic.as_str(), false)).unwrap_err();
            assert!(
                format!("{e:?}").contains("not placed in aws-ap-southeast-1"),
                "{e:?}"
            );
            assert_eq!(t.calls.lock().unwrap().len(), 1, "only the group was read");
        }
    }

    #[test]
    fn an_existing_database_is_refused_unless_asked_for() {
        let p = placement();
        let t = Scripted {
            calls: Default::default(),
            group: serde_json::json!({"primary": "aws-ap-southeast-1", "locations": ["aws-ap-southeast-1"]}),
            create_status: 409,
        };
        let api = PlatformApi {
            transport: &t,
            url: "https://api.turso.tech",
            token: None,
            placement: &p,
        };
        assert!(run(api.create("pk_x", false)).is_err());
        assert!(run(api.create(super::super::sqld::DIRECTORY, true)).is_ok());
    }
}
