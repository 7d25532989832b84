//! The front end's files for `amanah serve --assets DIR` (what `cargo xtask
//! up` builds into `frontend/dist`): a flat directory served read-only at
//! `/`, with the same security headers as the API. Only plain file names are
//! served (no subdirectories, no dot files, no `..`), so no request reaches
//! outside the directory.

use std::path::{Path, PathBuf};

use amanah_functions::body::Body;
use amanah_functions::error::ApiError;
use amanah_functions::web;
use http::{header, HeaderValue, Method, Response, StatusCode};

pub struct Assets {
    dir: PathBuf,
}

impl Assets {
    /// The directory must hold the app's `index.html`.
    pub fn new(dir: &Path) -> Result<Self, String> {
        if !dir.join("index.html").is_file() {
            return Err(format!(
                "{} holds no index.html: build the front end first (cargo xtask up does)",
                dir.display()
            ));
        }
        Ok(Assets {
            dir: dir.to_path_buf(),
        })
    }

    /// The file a request names, or the API's 404.
    pub async fn respond(&self, method: &Method, path: &str) -> Response<Body> {
        let mut resp = match self.file(method, path).await {
            Some(r) => r,
            None => web::error_response(&ApiError::not_found()),
        };
        web::secure_headers(resp.headers_mut(), false);
        resp
    }

    async fn file(&self, method: &Method, path: &str) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let name = match path {
            "/" => "index.html",
            p => p.strip_prefix('/')?,
        };
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain {
            return None;
        }
        let bytes = tokio::fs::read(self.dir.join(name)).await.ok()?;
        let mut resp = Response::new(if method == Method::HEAD {
            Body::empty()
        } else {
            Body::full(bytes)
        });
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(name)),
        );
        // Revalidated on every load: a new build is seen at once.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Some(resp)
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(d.path().join("app.wasm"), [0u8, 97, 115, 109]).unwrap();
        d
    }

    fn run(a: &Assets, method: Method, path: &str) -> Response<Body> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(a.respond(&method, path))
    }

    #[test]
    fn serves_plain_names_with_types_and_headers_and_nothing_else() {
        let d = dir();
        let a = Assets::new(d.path()).unwrap();
        let r = run(&a, Method::GET, "/");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(
            run(&a, Method::GET, "/app.wasm").headers()["content-type"],
            "application/wasm"
        );
        std::fs::write(d.path().join(".secret"), "x").unwrap();
        for bad in [
            "/../Cargo.toml",
            "/%2e%2e/x",
            "/.secret",
            "/sub/index.html",
            "/missing.js",
            "//etc/passwd",
        ] {
            assert_eq!(run(&a, Method::GET, bad).status(), 404, "{bad}");
        }
        assert_eq!(run(&a, Method::POST, "/").status(), 404);
    }

    #[test]
    fn a_directory_without_the_app_is_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(Assets::new(d.path()).is_err());
    }
}
