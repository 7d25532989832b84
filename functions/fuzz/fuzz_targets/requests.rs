//! Request parsing: the route table's matcher, query strings, cookies and
//! bearer tokens, on any method, path and header bytes: never a panic.
#![no_main]

use amanah_functions::{routes, web};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE};
use http::Method;

const QUERY: &[&str] = &[
    "limit",
    "cursor",
    "q",
    "from",
    "to",
    "practitioner",
    "format",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let method = &methods[first as usize % methods.len()];
    // path?query, then a cookie header and an authorization header, split at
    // NUL bytes.
    let mut parts = rest.split(|b| *b == 0);
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*target, None),
    };
    let _ = routes::find(method, path);
    if let Ok(q) = web::Query::parse(query, QUERY) {
        let _ = q.limit();
        let _ = q.cursor();
        let _ = q.get("q");
    }
    let mut headers = HeaderMap::new();
    for name in [COOKIE, AUTHORIZATION] {
        if let Ok(v) = HeaderValue::from_bytes(parts.next().unwrap_or_default()) {
            headers.insert(name, v);
        }
    }
    let _ = web::cookie(&headers, web::SESSION_COOKIE);
    let _ = web::bearer(&headers);
    let _ = web::declared_length(&headers);
});
