//! Checks on a request before any work: its purpose of use is readable
//! text, it comes from this origin, and an internal trigger carries the
//! deployment's token.

use http::header::{self, HeaderMap};

use crate::error::{ApiError, ApiResult, Code};
use crate::web;

/// An internal trigger (`/internal/...`) runs only for the bearer of the
/// deployment's token (at least 32 characters); anyone else finds nothing
/// there.
pub(crate) fn internal_token(h: &HeaderMap, expected: Option<&str>) -> ApiResult<()> {
    use subtle::ConstantTimeEq;
    let allowed = match (expected.filter(|t| t.len() >= 32), web::bearer(h)) {
        (Some(e), Some(g)) => bool::from(e.as_bytes().ct_eq(g.as_bytes())),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// `X-Access-Reason`: the purpose of use, up to 500 characters.
pub(crate) fn access_reason(h: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = h.get("x-access-reason") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Access-Reason must be visible ASCII text"))?
        .trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "X-Access-Reason must be at most 500 characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Another origin's request does nothing: whatever its method, a request
/// that a browser marks as coming from another origin (`Sec-Fetch-Site`
/// other than `same-origin`/`none`, or an `Origin` that is not this host) is
/// refused before any work. GETs too: a foreign page's `<img>` of an API URL
/// would otherwise run as the user (an export, a patient read) and write
/// that user's name into the audit trail. Clients that are not browsers send
/// neither header.
pub(crate) fn same_origin_only(h: &HeaderMap) -> ApiResult<()> {
    let refuse = || {
        Err(ApiError::new(
            Code::Forbidden,
            "cross-site requests are not allowed",
        ))
    };
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return refuse();
        }
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return refuse();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn cross_site_requests_are_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin_only(&h).is_ok());
        h.insert(header::HOST, HeaderValue::from_static("pk.amanah.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://pk.amanah.example"),
        );
        assert!(same_origin_only(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_origin_only(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin_only(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin_only(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin_only(&h).is_ok());
    }
}
