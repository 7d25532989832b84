//! A small client of Amanah's HTTP API for seeding and timing: every call
//! returns the status and the JSON body, and every unexpected status is an
//! error that says which call failed (never a body with personal data: the
//! seeded data is synthetic, but the habit holds).

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};

pub type Result<T> = std::result::Result<T, String>;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Api {
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            agent,
        }
    }

    /// The same client against another base URL (a restarted host).
    pub fn rebased(&self, base: &str) -> Self {
        let mut a = self.clone();
        a.base = base.trim_end_matches('/').to_owned();
        a
    }

    pub fn with_token(&self, token: &str) -> Self {
        let mut a = self.clone();
        a.token = Some(token.to_owned());
        a
    }

    /// Any call; `Ok((status, json body or null))`, `Err` on transport error.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let (status, raw) = self.call_raw(method, path, body)?;
        Ok((status, serde_json::from_slice(&raw).unwrap_or(Value::Null)))
    }

    /// Any call, body as bytes (a download).
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>)> {
        self.request(method, path, &[], body, "")
            .map(|(status, _, raw)| (status, raw))
    }

    /// A GET with extra headers; the status, one answer header's value
    /// (`want_header`) and the body.
    pub fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        want_header: &str,
    ) -> Result<(u16, Option<String>, Vec<u8>)> {
        self.request("GET", path, headers, None, want_header)
    }

    /// Any call: status, the answer's `want_header`, body bytes.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
        want_header: &str,
    ) -> Result<(u16, Option<String>, Vec<u8>)> {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let result = match body {
            Some(v) => self.agent.run(
                b.header("content-type", "application/json")
                    .body(v.to_string().into_bytes())
                    .map_err(|e| e.to_string())?,
            ),
            None => self.agent.run(b.body(()).map_err(|e| e.to_string())?),
        };
        let mut resp = result.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get(want_header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut raw = Vec::new();
        resp.body_mut()
            .with_config()
            .limit(4 << 30)
            .reader()
            .read_to_end(&mut raw)
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        Ok((status, header, raw))
    }

    /// A call that must answer `want`; a 503 (the API's "try again") is
    /// asked again a few times, as a client should.
    pub fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        want: u16,
    ) -> Result<Value> {
        let mut tries = 0;
        loop {
            let (status, v) = self.call(method, path, body)?;
            tries += 1;
            if status == want {
                return Ok(v);
            }
            if status == 503 && tries < 5 {
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
            return Err(format!(
                "{method} {path} answered {status}, not {want}: {}",
                v.get("error")
                    .map_or("", |e| e["code"].as_str().unwrap_or(""))
            ));
        }
    }

    pub fn post(&self, path: &str, body: Value, want: u16) -> Result<Value> {
        self.expect("POST", path, Some(&body), want)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.expect("GET", path, None, 200)
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn str_of(v: &Value, path: &[&str]) -> Result<String> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {} in the answer", path.join(".")))
}

/// A logged-in user: their API client and id.
pub struct User {
    pub api: Api,
    pub id: String,
}

/// Password login, then TOTP enrolment (the session stays valid after it):
/// what every seeded user does once.
pub fn login_and_enrol(base: &str, clinic: &str, email: &str, password: &str) -> Result<User> {
    let anon = Api::new(base);
    let v = anon.post(
        "/api/v1/auth/login",
        json!({"clinic": clinic, "email": email, "password": password}),
        200,
    )?;
    let api = anon.with_token(&str_of(&v, &["session", "token"])?);
    let id = str_of(&v, &["session", "user", "id"])?;
    let t = api.post("/api/v1/auth/totp", json!({"password": password}), 200)?;
    let secret = str_of(&t, &["secret"])?;
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .map_err(|_| "the TOTP secret is not base32")?;
    let code = amanah_functions::crypto::totp::code(&bytes, unix_now());
    api.post("/api/v1/auth/totp/confirm", json!({"code": code}), 204)?;
    Ok(User { api, id })
}
