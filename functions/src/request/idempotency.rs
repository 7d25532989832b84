//! Idempotency keys: a client that sends `Idempotency-Key` with a write to a
//! clinic's data may, when it got no answer (a timeout, a dropped connection,
//! a 503), send the same request again with the same key and get the first
//! request's answer back, marked `Idempotent-Replayed: true`, instead of the
//! write happening twice. A clinic's network dropping a 201 must not make a
//! second record of the same patient.
//!
//! Why this is sound: the record is written in the write's own transaction,
//! and every clinic request holds its database's write lock from its first
//! statement (`BEGIN IMMEDIATE`), so two requests under one key are
//! serialised. The later one finds the earlier one's record, or the earlier
//! one never committed. A database that took a write but lost the answer
//! (sqld committed after the host gave up) is exactly the case this covers.
//!
//! What is stored ([`crate::records::idempotency`]): the answer, sealed
//! under the clinic's data key (it holds patient data and the sweep re-seals
//! it like any field), with a digest of the request, so a key sent again
//! with another request is refused (409). The row id is a blind-index term
//! of user and key: keys belong to one user and the file shows nothing of
//! them. Records last [`TTL_SECS`]. A replay is audited with outcome
//! `replayed`, naming the first request's resource.
//!
//! Keys apply to writes under a permission (the clinic's data: every route
//! with [`Access::Permission`] and a method other than GET); elsewhere the
//! header is ignored. Sign-in, TOTP and password routes answer with secrets
//! and are never stored.

use data_encoding::HEXLOWER;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use crate::records::{idempotency, Vault};
use crate::route::{Access, Flag, Route};

use super::ctx::Ctx;
use super::render::{Payload, Reply};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header of a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
pub const MAX_LEN: usize = 128;
/// How long a key's answer is kept.
pub const TTL_SECS: i64 = idempotency::KEPT_SECS;

/// A client's key, checked: 1 to [`MAX_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The request's key, if it sent one (once).
    pub fn from_headers(h: &HeaderMap) -> ApiResult<Option<Key>> {
        let mut values = h.get_all(HEADER).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        let bad = || {
            ApiError::bad_request(
                "Idempotency-Key must be given once, as 1 to 128 visible ASCII characters",
            )
        };
        if values.next().is_some() {
            return Err(bad());
        }
        let s = v.to_str().map_err(|_| bad())?;
        if s.is_empty() || s.len() > MAX_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        Ok(Some(Key(s.to_owned())))
    }

    /// The term the answer is kept under: the key, of this user.
    fn term(&self, user: &str) -> String {
        format!("{user}\u{0}{}", self.0)
    }
}

/// Whether a route's requests may carry a key.
pub fn applies(route: &Route) -> bool {
    route.method != http::Method::GET
        && matches!(route.access, Access::Permission(_))
        && !route.has(Flag::Search)
}

/// One stored answer, as sealed.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// SHA-256 of the request (method, route, path parameters, query, body).
    request: String,
    status: u16,
    body: Option<serde_json::Value>,
    /// The first request's audit resource and patient.
    resource: Option<String>,
    patient_id: Option<String>,
}

fn request_digest<H: Host>(cx: &Ctx<'_, H>) -> String {
    let mut h = Sha256::new();
    for part in [
        cx.method.as_str().as_bytes(),
        cx.route.path.as_bytes(),
        cx.params.join("/").as_bytes(),
        cx.query.as_deref().unwrap_or("").as_bytes(),
        &cx.body,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    HEXLOWER.encode(&h.finalize())
}

/// The stored answer to this request's key by `user`, if the key was used
/// within [`TTL_SECS`]; a key used for another request is 409. Sets the
/// audit draft to the first request's resource.
pub(crate) async fn replay<H: Host>(
    cx: &mut Ctx<'_, H>,
    db: &H::Conn,
    v: &Vault<'_>,
    user: &str,
    key: &Key,
) -> ApiResult<Option<Reply>> {
    let Some(text) = idempotency::find(db, v, &key.term(user), cx.now - TTL_SECS).await? else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("stored answer: {e}")))?;
    if stored.request != request_digest(cx) {
        return Err(ApiError::conflict(
            "this Idempotency-Key was already used for a different request",
        ));
    }
    let status = http::StatusCode::from_u16(stored.status)
        .map_err(|_| ApiError::internal("stored answer: bad status"))?;
    cx.audit.resource = stored.resource;
    cx.audit.patient_id = stored.patient_id;
    Ok(Some(Reply {
        status,
        body: match stored.body {
            Some(v) => Payload::Json(v),
            None => Payload::Empty,
        },
        headers: Vec::new(),
    }))
}

/// Keeps `reply` under the key, in the request's transaction (queued
/// before its commit), and drops the clinic's expired keys.
pub(crate) async fn remember<H: Host>(
    cx: &Ctx<'_, H>,
    db: &H::Conn,
    v: &Vault<'_>,
    user: &str,
    key: &Key,
    reply: &Reply,
) -> ApiResult<()> {
    let body = match &reply.body {
        Payload::Json(v) => Some(v.clone()),
        Payload::Empty => None,
        // Streams and exports are answers to reads; nothing to keep.
        Payload::Export(_)
        | Payload::Stream(..)
        | Payload::BulkExport(_)
        | Payload::FhirFile { .. }
        | Payload::NdjsonStream(_) => return Ok(()),
    };
    let stored = Stored {
        request: request_digest(cx),
        status: reply.status.as_u16(),
        body,
        resource: cx.audit.resource.clone(),
        patient_id: cx.audit.patient_id.clone(),
    };
    let json = serde_json::to_string(&stored)
        .map_err(|e| ApiError::internal(format!("serialise: {e}")))?;
    idempotency::keep(
        db,
        v,
        &key.term(user),
        &json,
        cx.audit.patient_id.as_deref(),
        cx.now,
        cx.now - TTL_SECS,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_visible_ascii_given_once() {
        assert_eq!(Key::from_headers(&headers(&[])).unwrap(), None);
        assert_eq!(
            Key::from_headers(&headers(&[b"7f3c-01:retry_A"])).unwrap(),
            Some(Key("7f3c-01:retry_A".into()))
        );
        let long = vec![b'a'; MAX_LEN];
        assert!(Key::from_headers(&headers(&[&long])).unwrap().is_some());
        let too_long = vec![b'a'; MAX_LEN + 1];
        for bad in [
            &b""[..],
            b"two words",
            b"caf\xc3\xa9",
            b"tab\tkey",
            &too_long,
        ] {
            let e = Key::from_headers(&headers(&[bad])).unwrap_err();
            assert_eq!(e.code, crate::error::Code::InvalidRequest);
        }
        assert!(Key::from_headers(&headers(&[b"a", b"b"])).is_err());
    }
}
