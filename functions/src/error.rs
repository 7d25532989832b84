//! The one error type of the API, and its JSON shape:
//! `{"error":{"code","message","field"?}}`. Messages never carry personal data
//! or internal detail; `detail` is for the host's log only.

use std::borrow::Cow;

use http::StatusCode;
use serde_json::json;

use crate::crypto::CryptoError;
use crate::host::DbError;

/// The codes of API.md, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    Unauthenticated,
    MfaRequired,
    Forbidden,
    MfaEnrollmentRequired,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    WrongRegion,
    RateLimited,
    Internal,
    Unavailable,
    PasswordChangeRequired,
}

impl Code {
    pub const ALL: [Code; 14] = [
        Code::InvalidRequest,
        Code::Unauthenticated,
        Code::MfaRequired,
        Code::Forbidden,
        Code::MfaEnrollmentRequired,
        Code::NotFound,
        Code::Conflict,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::WrongRegion,
        Code::RateLimited,
        Code::Internal,
        Code::Unavailable,
        Code::PasswordChangeRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::Unauthenticated => "unauthenticated",
            Code::MfaRequired => "mfa_required",
            Code::Forbidden => "forbidden",
            Code::MfaEnrollmentRequired => "mfa_enrollment_required",
            Code::NotFound => "not_found",
            Code::Conflict => "conflict",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::WrongRegion => "wrong_region",
            Code::RateLimited => "rate_limited",
            Code::PasswordChangeRequired => "password_change_required",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::Unauthenticated | Code::MfaRequired => StatusCode::UNAUTHORIZED,
            Code::Forbidden | Code::MfaEnrollmentRequired | Code::PasswordChangeRequired => {
                StatusCode::FORBIDDEN
            }
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::WrongRegion => StatusCode::MISDIRECTED_REQUEST,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: Cow<'static, str>,
    pub field: Option<String>,
    pub retry_after: Option<i64>,
    /// For the host's log; never sent. Holds no personal data.
    pub detail: Option<String>,
    /// A database's schema was behind (see `store::schema_guard`): the
    /// request changed nothing and runs again once it is migrated.
    pub schema_behind: bool,
    /// Optimistic work found its data changed before it could commit
    /// ([`DbError::Conflict`]): nothing was written, and the request runs
    /// again.
    pub conflict: bool,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            detail: None,
            schema_behind: false,
            conflict: false,
        }
    }
    /// 400 for one input field.
    pub fn invalid(field: &str, message: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(Code::InvalidRequest, message);
        e.field = Some(field.to_owned());
        e
    }
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }
    pub fn unauthenticated() -> Self {
        Self::new(Code::Unauthenticated, "authentication required")
    }
    pub fn bad_credentials() -> Self {
        Self::new(Code::Unauthenticated, "wrong clinic, email or password")
    }
    pub fn forbidden() -> Self {
        Self::new(Code::Forbidden, "your role does not allow this")
    }
    pub fn not_found() -> Self {
        Self::new(Code::NotFound, "not found")
    }
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Conflict, message)
    }
    pub fn wrong_region() -> Self {
        Self::new(
            Code::WrongRegion,
            "this clinic lives in another region; use that region's address",
        )
    }
    pub fn rate_limited(retry_after: i64) -> Self {
        let mut e = Self::new(Code::RateLimited, "too many attempts; try again later");
        e.retry_after = Some(retry_after.max(1));
        e
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        let mut e = Self::new(Code::Internal, "internal error");
        e.detail = Some(detail.into());
        e
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(Code::Unavailable, "the service is temporarily unavailable");
        e.detail = Some(detail.into());
        e
    }

    /// One line for an operator's log: code, message and detail (which
    /// holds no personal data).
    pub fn log_text(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {} ({d})", self.code.as_str(), self.message),
            None => format!("{}: {}", self.code.as_str(), self.message),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        let mut err = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(f) = &self.field {
            err["field"] = json!(f);
        }
        json!({ "error": err })
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        let behind = e.schema_behind();
        let conflict = e == DbError::Conflict;
        let mut err = match e {
            // A conflict runs the request again; one that still reaches a
            // client (never, by design) is a busy service, not a fault.
            DbError::Unavailable(_) | DbError::Conflict => ApiError::unavailable(e.to_string()),
            DbError::Full(_) => {
                let mut full = ApiError::new(
                    Code::Unavailable,
                    "the clinic's storage is full: nothing was written; try again later",
                );
                full.detail = Some(e.to_string());
                full
            }
            other => ApiError::internal(other.to_string()),
        };
        err.schema_behind = behind;
        err.conflict = conflict;
        err
    }
}

impl From<CryptoError> for ApiError {
    fn from(_: CryptoError) -> Self {
        ApiError::internal("a stored ciphertext did not decrypt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_statuses() {
        let e = ApiError::invalid("dob", "must be a date");
        assert_eq!(
            e.body(),
            json!({"error":{"code":"invalid_request","message":"must be a date","field":"dob"}})
        );
        assert_eq!(Code::WrongRegion.status().as_u16(), 421);
        assert_eq!(Code::MfaEnrollmentRequired.status().as_u16(), 403);
        let i = ApiError::internal("secret detail");
        assert!(!i.body().to_string().contains("secret"));
    }
}
