//! HTTP plumbing shared by every route: strict JSON bodies, query strings,
//! cookies, and the headers every response carries.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult, Code};

/// Largest request body accepted (API.md: bodies over 1 MiB get 413).
pub const MAX_BODY: usize = 1024 * 1024;
/// Bytes a host reads and throws away after a body proves too large, so the
/// client can finish sending and read the 413 (a bounded "lingering close").
pub const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

pub const SESSION_COOKIE: &str = "__Host-amanah_session";
pub const MFA_COOKIE: &str = "__Host-amanah_mfa";

const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Whether a path is the application's (the API, the FHIR face,
/// `/healthz[/keys]`, test hooks, internal triggers) rather than a file of
/// the front end. Every host routes by this one rule.
pub fn is_app_path(path: &str) -> bool {
    path.starts_with("/api/")
        || path == crate::fhir::BASE
        || path.starts_with("/fhir/r4/")
        || path.starts_with("/__test/")
        || path.starts_with("/internal/")
        || path == "/healthz"
        || path == "/healthz/keys"
}

/// Adds the headers every response carries; `no-store` on every API answer.
pub fn secure_headers(h: &mut HeaderMap, api: bool) {
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains; preload"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// A JSON answer with every API header, for what a host answers itself
/// outside the application (its scheduler's trigger, a test hook).
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<crate::body::Body> {
    let mut r = Response::new(crate::body::Body::full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    secure_headers(r.headers_mut(), true);
    r
}

/// An error as a complete response (for hosts that refuse a request before
/// handing it over, such as an oversized body).
pub fn error_response(e: &ApiError) -> Response<crate::body::Body> {
    let mut r = json_response(e.code.status(), &e.body());
    if let Some(s) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// The 413 answer for a body over [`MAX_BODY`].
pub fn too_large() -> ApiError {
    ApiError::new(Code::PayloadTooLarge, "request body is larger than 1 MiB")
}

/// The length a request announces (`Content-Length`), if any.
pub fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads a request body of at most [`MAX_BODY`] bytes from a host's chunk
/// stream (the wasm hosts'). A larger body is drained, up to
/// [`DRAIN_LIMIT`], before the 413, so the client can finish sending and
/// read it, unless it announced more than would ever be drained.
pub async fn read_limited<S, C, E>(mut body: S, declared: Option<usize>) -> ApiResult<bytes::Bytes>
where
    S: futures_util::Stream<Item = Result<C, E>> + Unpin,
    C: AsRef<[u8]>,
{
    use futures_util::StreamExt;
    if declared.is_none_or(|n| n <= MAX_BODY) {
        let mut buf = bytes::BytesMut::new();
        loop {
            match body.next().await {
                None => return Ok(buf.freeze()),
                Some(Err(_)) => {
                    return Err(ApiError::bad_request("the request body could not be read"))
                }
                Some(Ok(chunk)) if buf.len() + chunk.as_ref().len() > MAX_BODY => break,
                Some(Ok(chunk)) => buf.extend_from_slice(chunk.as_ref()),
            }
        }
    }
    if declared.is_none_or(|n| n <= MAX_BODY + DRAIN_LIMIT) {
        let mut drained = 0;
        while let Some(Ok(chunk)) = body.next().await {
            drained += chunk.as_ref().len();
            if drained > DRAIN_LIMIT {
                break;
            }
        }
    }
    Err(too_large())
}

/// Parses a JSON body strictly: JSON content type, no unknown fields, and an
/// error naming the field at fault. Error messages never echo input values.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de)
        .map(|Object(v)| v)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.to_string();
            if inner.is_syntax() || inner.is_eof() {
                return ApiError::bad_request("the body is not valid JSON");
            }
            if let Some(name) = backticked(&msg, "unknown field `") {
                // The path already ends at the unknown key.
                let field = if path.ends_with(&name) {
                    path
                } else {
                    join_path(&path, &name)
                };
                return ApiError::invalid(&field, "unknown field");
            }
            if let Some(name) = backticked(&msg, "missing field `") {
                let field = join_path(&path, &name);
                return ApiError::invalid(&field, "this field is required");
            }
            if path == "." || path.is_empty() {
                return ApiError::bad_request(
                    "the body must be a JSON object of the documented shape",
                );
            }
            ApiError::invalid(&path, "this field has the wrong type or value")
        })
}

/// A JSON object deserialized as `T`, and only an object. serde's derived
/// `Deserialize` also takes a struct from an array, positionally
/// (`[null, null]` for `{"nurse": null, "receptionist": null}`); a request
/// body (and any object inside one) must name its fields. Errors keep their
/// path.
pub struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Only<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Only(std::marker::PhantomData))
    }
}

impl<T> std::ops::Deref for Object<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn backticked(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.split_once(prefix)?.1;
    let name = rest.split('`').next()?;
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    Some(clean)
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Query parameters, refusing unknown names and repeats.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request("unknown query parameter"));
            }
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(ApiError::invalid(k, "repeated query parameter"));
            }
        }
        Ok(Query(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `?limit=`: see [`limit`].
    pub fn limit(&self) -> ApiResult<i64> {
        match self.get("limit") {
            None => limit(None),
            Some(s) => limit(Some(s.parse::<i64>().unwrap_or(0))),
        }
    }

    /// `?cursor=`: an opaque position from a previous page.
    pub fn cursor(&self) -> ApiResult<Option<i64>> {
        self.get("cursor").map(decode_cursor).transpose()
    }
}

/// A page's size, from a query or a body: default 50, from 1 to 200.
pub fn limit(given: Option<i64>) -> ApiResult<i64> {
    match given {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            "limit must be a whole number from 1 to 200",
        )),
    }
}

/// An opaque list position.
pub fn encode_cursor(seq: i64) -> String {
    data_encoding::BASE64URL_NOPAD.encode(format!("c1:{seq}").as_bytes())
}

/// The position of a cursor this API gave out.
pub fn decode_cursor(s: &str) -> ApiResult<i64> {
    let bad = || ApiError::invalid("cursor", "cursor is not one this API gave out");
    let raw = data_encoding::BASE64URL_NOPAD
        .decode(s.as_bytes())
        .map_err(|_| bad())?;
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    text.strip_prefix("c1:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}

/// The value of a cookie, if the request carries it once.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a host-only, Secure, HttpOnly, SameSite=Strict cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` that removes a cookie.
pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", 0)
}

/// A bearer token from `Authorization`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        owner: Owner,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Owner {
        email: String,
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h
    }

    #[test]
    fn strict_json() {
        let h = json_headers();
        assert!(json_body::<Body>(&h, br#"{"name":"a","owner":{"email":"e"}}"#).is_ok());
        let e = json_body::<Body>(&h, br#"{"name":"a","owner":{"email":"e","x":1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("owner.x"));
        let e = json_body::<Body>(&h, br#"{"owner":{"email":"e"}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        let e = json_body::<Body>(&h, br#"{"name":"Secret Name Value","owner":{"email":5}}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("owner.email"));
        assert!(!e.message.contains("Secret"));
        assert_eq!(
            json_body::<Body>(&h, b"{").unwrap_err().code,
            Code::InvalidRequest
        );
        assert_eq!(
            json_body::<Body>(&HeaderMap::new(), b"{}")
                .unwrap_err()
                .code,
            Code::UnsupportedMediaType
        );
        assert_eq!(
            json_body::<Body>(&h, &vec![b' '; MAX_BODY + 1])
                .unwrap_err()
                .code,
            Code::PayloadTooLarge
        );
    }

    #[test]
    fn queries_and_cursors() {
        let q = Query::parse(Some("q=ali+khan&limit=10"), &["q", "limit", "cursor"]).unwrap();
        assert_eq!(q.get("q"), Some("ali khan"));
        assert_eq!(q.limit().unwrap(), 10);
        assert!(Query::parse(Some("x=1"), &["q"]).is_err());
        assert!(Query::parse(Some("q=1&q=2"), &["q"]).is_err());
        let q = Query::parse(Some("limit=201"), &["limit"]).unwrap();
        assert!(q.limit().is_err());
        let q = Query::parse(Some(&format!("cursor={}", encode_cursor(42))), &["cursor"]).unwrap();
        assert_eq!(q.cursor().unwrap(), Some(42));
        let q = Query::parse(Some("cursor=zzz"), &["cursor"]).unwrap();
        assert!(q.cursor().is_err());
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-amanah_session=tok; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        let c = set_cookie(SESSION_COOKIE, "t", 900);
        for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(part));
        }
        assert!(!c.contains("Domain"));
    }
}
