//! The HTTP API as the browser sees it: same-origin `fetch` with the session
//! cookie, JSON in and out, and the API's error shape turned into a message
//! for a person (with the field at fault, when there is one).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestCredentials, RequestInit, Response};

/// An answer that was not a success, as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// The input field at fault, for the message next to it.
    pub field: Option<String>,
}

impl ApiError {
    fn network() -> Self {
        ApiError {
            status: 0,
            code: "network".into(),
            message: "The server could not be reached. Check the connection and try again.".into(),
            field: None,
        }
    }

    fn unreadable() -> Self {
        ApiError {
            status: 0,
            code: "unreadable".into(),
            message: "The server's answer could not be read.".into(),
            field: None,
        }
    }

    fn from_body(status: u16, text: &str) -> Self {
        #[derive(Deserialize)]
        struct Shape {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
            message: String,
            field: Option<String>,
        }
        match serde_json::from_str::<Shape>(text) {
            Ok(s) => ApiError {
                status,
                code: s.error.code,
                message: sentence(&s.error.message),
                field: s.error.field,
            },
            Err(_) => ApiError {
                status,
                code: "http".into(),
                message: format!("The server answered {status}."),
                field: None,
            },
        }
    }

    /// The message, naming the field when there is one.
    pub fn text(&self) -> String {
        match &self.field {
            Some(f) => format!("{}: {}", field_label(f), self.message),
            None => self.message.clone(),
        }
    }

    /// Whether the session is gone (log in again).
    pub fn is_unauthenticated(&self) -> bool {
        self.status == 401
    }
}

/// "must be at least 12 characters" → "Must be at least 12 characters."
fn sentence(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(s.chars().skip(1))
        .collect();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn field_label(field: &str) -> String {
    field.replace('_', " ")
}

thread_local! {
    /// The purpose of use sent as `X-Access-Reason` on every request of a
    /// support session (the API refuses them without one): the approved
    /// ticket. `None` for clinic staff.
    static ACCESS_REASON: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Sets (or clears) the reason every request carries.
pub fn set_access_reason(reason: Option<String>) {
    ACCESS_REASON.with(|r| *r.borrow_mut() = reason);
}

/// Sends a request; the body of a success as text.
pub async fn send(method: &str, path: &str, body: Option<&Value>) -> Result<String, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    let headers = Headers::new().map_err(|_| ApiError::network())?;
    if let Some(b) = body {
        headers
            .set("content-type", "application/json")
            .map_err(|_| ApiError::network())?;
        init.set_body(&JsValue::from_str(&b.to_string()));
    }
    if let Some(reason) = ACCESS_REASON.with(|r| r.borrow().clone()) {
        headers
            .set("x-access-reason", &reason)
            .map_err(|_| ApiError::network())?;
    }
    init.set_headers(&headers);
    let req = Request::new_with_str_and_init(path, &init).map_err(|_| ApiError::network())?;
    let window = web_sys::window().ok_or_else(ApiError::network)?;
    let resp: Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|_| ApiError::network())?
        .dyn_into()
        .map_err(|_| ApiError::network())?;
    let status = resp.status();
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    if (200..300).contains(&status) {
        Ok(text)
    } else {
        Err(ApiError::from_body(status, &text))
    }
}

/// A request whose answer is JSON of type `T`.
pub async fn json<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<T, ApiError> {
    let text = send(method, path, body.as_ref()).await?;
    serde_json::from_str(if text.is_empty() { "null" } else { &text })
        .map_err(|_| ApiError::unreadable())
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    json("GET", path, None).await
}

pub async fn post<T: DeserializeOwned>(path: &str, body: Value) -> Result<T, ApiError> {
    json("POST", path, Some(body)).await
}

pub async fn patch<T: DeserializeOwned>(path: &str, body: Value) -> Result<T, ApiError> {
    json("PATCH", path, Some(body)).await
}

/// A request whose answer has no body worth reading (204, 202).
pub async fn call(method: &str, path: &str, body: Option<Value>) -> Result<(), ApiError> {
    send(method, path, body.as_ref()).await.map(|_| ())
}

/// Patients the text finds (every patient for blank text). The text goes in
/// the body of `POST /api/v1/patients/search`, never in a URL.
pub async fn search_patients(text: &str) -> Result<List<Patient>, ApiError> {
    post(
        "/api/v1/patients/search",
        serde_json::json!({ "q": text.trim() }),
    )
    .await
}

/// Percent-encodes a query value.
pub fn q(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

/// `{"items": [...], "next_cursor": ...}`
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct List<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Region {
    pub id: String,
    pub name: String,
    pub location: String,
    #[serde(default)]
    pub url: Option<String>,
    /// How long the region's law keeps a deleted record (none: 30 days).
    #[serde(default)]
    pub retention: Option<Retention>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Retention {
    pub years: u32,
    pub law: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Session {
    pub user: SessionUser,
    pub clinic: ClinicRef,
    pub expires_at: String,
    #[serde(default)]
    pub idle_expires_at: Option<String>,
    #[serde(default)]
    pub impersonation: Option<Impersonation>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct SessionUser {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub role: String,
    #[serde(default)]
    pub mfa_enabled: Option<bool>,
    /// An owner reset the password: it must be changed before anything else.
    #[serde(default)]
    pub password_change_required: Option<bool>,
}

impl Session {
    pub fn is(&self, role: &str) -> bool {
        self.user.role == role
    }
    /// Owners and doctors must enrol TOTP before anything else.
    pub fn must_enrol(&self) -> bool {
        self.impersonation.is_none()
            && matches!(self.user.role.as_str(), "owner" | "doctor")
            && self.user.mfa_enabled == Some(false)
    }
    /// A password an owner reset must be changed first.
    pub fn must_change_password(&self) -> bool {
        self.impersonation.is_none() && self.user.password_change_required == Some(true)
    }
    /// Roles that see clinical content (never a receptionist).
    pub fn clinical(&self) -> bool {
        matches!(self.user.role.as_str(), "owner" | "doctor" | "nurse")
            || self.impersonation.is_some()
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct ClinicRef {
    pub id: String,
    pub name: String,
    pub region: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Impersonation {
    #[serde(default)]
    pub support_user: Option<String>,
    pub ticket: String,
    pub expires_at: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct LoginResult {
    pub mfa_required: bool,
}

/// The answer to the second factor: only what the screen tells the user.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct MfaResult {
    #[serde(default)]
    pub session: Option<MfaSession>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct MfaSession {
    #[serde(default)]
    pub notice: Option<SignInNotice>,
}

/// Wrong codes entered for the account since its last sign-in.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct SignInNotice {
    pub failed_codes: i64,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct SignedUp {
    pub clinic: ClinicRef,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Patient {
    pub id: String,
    pub name: String,
    pub dob: String,
    #[serde(default)]
    pub sex: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub national_id: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Practitioner {
    pub id: String,
    pub name: String,
    pub role: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Appointment {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub practitioner_id: String,
    pub start: String,
    pub end: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub mfa_enabled: bool,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    pub action: String,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    pub outcome: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Verification {
    pub ok: bool,
    #[serde(default)]
    pub entries: Option<i64>,
    #[serde(default)]
    pub first_bad_seq: Option<i64>,
}
