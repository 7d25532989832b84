//! Amanah's FHIR R4 face (`/fhir/r4`): what FHIR's rules decide, apart
//! from the handlers (`api::fhir`) that read the records.
//!
//! - Ids: FHIR allows `[A-Za-z0-9\-\.]{1,64}`, Amanah's ids hold an
//!   underscore (`pat_…`); a FHIR id is the same id with a dash
//!   (`pat-…`), and only an id of the expected kind parses back.
//! - Errors are an `OperationOutcome` with the API's status and code
//!   ([`outcome`]); answers are `application/fhir+json`.
//! - Search ([`Search`]): each type declares its parameters; others are
//!   ignored as FHIR says, unless the client asks `Prefer:
//!   handling=strict` (then 400). Results are a `searchset` Bundle
//!   ([`searchset`]) paged on the API's cursor. A search by a person's
//!   name, identifier or birth date never goes back into a URL: the paging
//!   links carry the search sealed with the clinic's key (`_page=`), as
//!   `POST [type]/_search` carries it in the body.
//!
//! Resources are built as JSON by [`resources`] (typed serde models of all
//! of FHIR, e.g. `fhirbolt`, would add megabytes to the Worker's bundle for
//! eight resource types); every one the tests see is validated by
//! `fhir.resources` (R4B models), which is not ours.

pub(crate) mod bulk;
pub(crate) mod capability;
pub(crate) mod resources;

use std::borrow::Cow;

use data_encoding::BASE64URL_NOPAD;
use http::HeaderMap;
use serde_json::{json, Value as Json};

use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult, Code};
use crate::ids;
use crate::records::Vault;

/// Where the FHIR face lives.
pub const BASE: &str = "/fhir/r4";
/// The media type of every FHIR answer.
pub const CONTENT_TYPE: &str = "application/fhir+json";
/// The media type of a bulk export's files.
pub const NDJSON: &str = "application/fhir+ndjson";
/// The FHIR version served.
pub const VERSION: &str = "4.0.1";

/// An Amanah id as a FHIR id.
pub(crate) fn fhir_id(id: &str) -> String {
    id.replacen('_', "-", 1)
}

/// The Amanah id of a FHIR id of `kind` (`pat`, `usr`, …); not found for
/// anything else (a malformed id names nothing here).
pub(crate) fn api_id(kind: &str, fhir: &str) -> ApiResult<String> {
    let id = fhir.replacen('-', "_", 1);
    if ids::is_id(kind, &id) {
        Ok(id)
    } else {
        Err(ApiError::not_found())
    }
}

/// `{"reference": "Type/id"}`.
pub(crate) fn reference(kind: &str, id: &str) -> Json {
    json!({"reference": format!("{kind}/{}", fhir_id(id))})
}

/// The patient a `patient=` (or `subject=`) value names: `Patient/pat-…`
/// or `pat-…`.
pub(crate) fn patient_param(value: &str) -> ApiResult<String> {
    let id = value.strip_prefix("Patient/").unwrap_or(value);
    api_id(ids::kind::PATIENT, id)
        .map_err(|_| ApiError::invalid("patient", "not a patient of this clinic"))
}

/// The FHIR issue type of an API error code.
fn issue_code(code: Code) -> &'static str {
    match code {
        Code::InvalidRequest | Code::WrongRegion => "invalid",
        Code::Unauthenticated | Code::MfaRequired => "login",
        Code::Forbidden | Code::MfaEnrollmentRequired | Code::PasswordChangeRequired => "forbidden",
        Code::NotFound => "not-found",
        Code::Conflict => "conflict",
        Code::PayloadTooLarge => "too-costly",
        Code::UnsupportedMediaType => "not-supported",
        Code::RateLimited => "throttled",
        Code::Internal => "exception",
        Code::Unavailable => "transient",
    }
}

/// An error as FHIR tells it: an `OperationOutcome` carrying the API's
/// code (`diagnostics`), message and field.
pub fn outcome(e: &ApiError) -> Json {
    let mut issue = json!({
        "severity": "error",
        "code": issue_code(e.code),
        "details": {"text": e.message},
        "diagnostics": e.code.as_str(),
    });
    if let Some(f) = &e.field {
        issue["expression"] = json!([f]);
    }
    json!({"resourceType": "OperationOutcome", "issue": [issue]})
}

/// Whether the client asked for strict handling of search parameters.
fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// Search parameters that name a person: never put back into a URL.
const PERSONAL: &[&str] = &["name", "identifier", "birthdate", "family", "given"];

/// The sealed form of a search travels under this field's key.
const PAGE_FIELD: Field = Field::new("fhir", "page");

/// A search, as asked (query string, `POST _search` form, or a sealed
/// `_page` of an earlier answer).
pub(crate) struct Search {
    /// The parameters the type knows, in the order given.
    pub params: Vec<(String, String)>,
    /// Results per page (`_count`: default 50, at most 200).
    pub count: i64,
    /// Where the page starts (the API's cursor: a `seq`).
    pub after: i64,
}

impl Search {
    /// Reads a search from `raw` (a query string or a form body): the
    /// parameters of `known`; `_count`; `_page` (an earlier answer's sealed
    /// search). Anything else is ignored, or refused with `strict`.
    pub(crate) fn parse(
        raw: &str,
        known: &[&str],
        headers: &HeaderMap,
        vault: &Vault<'_>,
        clinic: &str,
    ) -> ApiResult<Search> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((_, page)) = pairs.iter().find(|(k, _)| k == "_page") {
            return Self::open(page, vault, clinic);
        }
        let strict = strict(headers);
        let mut s = Search {
            params: Vec::new(),
            count: 50,
            after: 0,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "_count" => {
                    s.count = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=200).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid("_count", "a whole number from 1 to 200")
                        })?
                }
                // Formats other than JSON are not served; JSON is the default.
                "_format" if v.contains("json") => {}
                k if known.contains(&k) => {
                    if v.is_empty() {
                        return Err(ApiError::invalid(k, "empty search value"));
                    }
                    if s.params.iter().any(|(k2, _)| k2 == k) {
                        return Err(ApiError::invalid(k, "repeated search parameter"));
                    }
                    s.params.push((k.to_owned(), v));
                }
                _ if strict => {
                    return Err(ApiError::invalid(
                        &k,
                        "unsupported search parameter (Prefer: handling=strict)",
                    ))
                }
                _ => {}
            }
        }
        Ok(s)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn personal(&self) -> bool {
        self.params
            .iter()
            .any(|(k, _)| PERSONAL.contains(&k.as_str()))
    }

    /// The query string of this search from `after`: its parameters as
    /// they are, or sealed when one names a person.
    fn query(&self, after: i64, vault: &Vault<'_>, clinic: &str) -> String {
        if self.personal() || after > 0 {
            let state = json!({"p": self.params, "c": self.count, "a": after});
            let sealed = vault.seal(PAGE_FIELD, clinic, &state.to_string());
            return format!("_page={}", BASE64URL_NOPAD.encode(&sealed));
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            q.append_pair(k, v);
        }
        q.append_pair("_count", &self.count.to_string());
        q.finish()
    }

    fn open(page: &str, vault: &Vault<'_>, clinic: &str) -> ApiResult<Search> {
        let bad = || ApiError::invalid("_page", "not a page of this server's answers");
        let sealed = BASE64URL_NOPAD.decode(page.as_bytes()).map_err(|_| bad())?;
        let text = vault.open(PAGE_FIELD, clinic, &sealed).map_err(|_| bad())?;
        let v: Json = serde_json::from_str(&text).map_err(|_| bad())?;
        Ok(Search {
            params: serde_json::from_value(v["p"].clone()).map_err(|_| bad())?,
            count: v["c"].as_i64().ok_or_else(bad)?,
            after: v["a"].as_i64().ok_or_else(bad)?,
        })
    }
}

/// The identifier system of a region's national id (`regions.toml`).
pub(crate) fn national_id_system(region: &str) -> Option<String> {
    static REGIONS: std::sync::OnceLock<amanah_region_config::Regions> = std::sync::OnceLock::new();
    REGIONS
        .get_or_init(amanah_region_config::Regions::builtin)
        .get(region)
        .and_then(|r| r.identity.national_id_system.clone())
}

/// Where the region's FHIR face is reachable from outside, when the
/// deployment says.
pub(crate) fn base_url(public: Option<&str>) -> Option<String> {
    public.map(|u| format!("{}{BASE}", u.trim_end_matches('/')))
}

/// A `searchset` Bundle of `resources` (each with its type and id), with
/// `self` and, when there are more, `next` links.
pub(crate) struct Page<'a> {
    pub kind: &'a str,
    pub resources: Vec<Json>,
    /// Where the next page starts, if there is one.
    pub next: Option<i64>,
}

pub(crate) fn searchset(
    page: Page<'_>,
    search: &Search,
    base: Option<&str>,
    vault: &Vault<'_>,
    clinic: &str,
) -> Json {
    let link = |after: i64| -> String {
        let q = search.query(after, vault, clinic);
        match base {
            Some(b) => format!("{b}/{}?{q}", page.kind),
            None => format!("{BASE}/{}?{q}", page.kind),
        }
    };
    let mut links = vec![json!({"relation": "self", "url": link(search.after)})];
    if let Some(n) = page.next {
        links.push(json!({"relation": "next", "url": link(n)}));
    }
    let entries: Vec<Json> = page
        .resources
        .into_iter()
        .map(|r| {
            let mut e = json!({"search": {"mode": "match"}});
            if let (Some(b), Some(t), Some(id)) =
                (base, r["resourceType"].as_str(), r["id"].as_str())
            {
                e["fullUrl"] = json!(format!("{b}/{t}/{id}"));
            }
            e["resource"] = r;
            e
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    })
}

/// A FHIR date search value (`1990-02-03`, `eq1990-02-03`, `ge…`, `lt…`)
/// as (prefix, unix seconds of that day's start (UTC), day length).
pub(crate) fn date_param(field: &str, value: &str) -> ApiResult<(Cow<'static, str>, i64)> {
    let (prefix, rest) = match value.get(..2) {
        Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le")) => (p.to_owned(), &value[2..]),
        _ => ("eq".to_owned(), value),
    };
    let day = crate::clock::parse_date(rest).ok_or_else(|| {
        ApiError::invalid(
            field,
            "a date YYYY-MM-DD, with eq, ge, gt, le, lt or ne before it",
        )
    })?;
    let start = crate::clock::unix_of_date(day);
    Ok((Cow::Owned(prefix), start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_only_of_their_kind() {
        let id = ids::new_id(ids::kind::PATIENT, [7; 16]);
        let f = fhir_id(&id);
        assert!(f.starts_with("pat-") && !f.contains('_'));
        assert_eq!(api_id(ids::kind::PATIENT, &f).unwrap(), id);
        assert!(api_id(ids::kind::USER, &f).is_err());
        assert!(api_id(ids::kind::PATIENT, "pat-../x").is_err());
        assert_eq!(patient_param(&format!("Patient/{f}")).unwrap(), id);
    }

    #[test]
    fn an_error_is_an_operation_outcome() {
        let o = outcome(&ApiError::invalid("name", "too long"));
        assert_eq!(o["resourceType"], "OperationOutcome");
        assert_eq!(o["issue"][0]["code"], "invalid");
        assert_eq!(o["issue"][0]["expression"][0], "name");
        assert_eq!(
            outcome(&ApiError::not_found())["issue"][0]["code"],
            "not-found"
        );
    }

    #[test]
    fn dates_take_prefixes() {
        assert_eq!(date_param("d", "1990-02-03").unwrap().0, "eq");
        assert_eq!(date_param("d", "ge1990-02-03").unwrap().0, "ge");
        assert!(date_param("d", "1990-13-03").is_err());
        assert!(date_param("d", "xx1990-02-03").is_err());
    }
}
