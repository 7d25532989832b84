//! A real browser for the suites: Debian's headless Chromium driven through
//! its ChromeDriver (WebDriver) with `fantoccini`. Nothing is downloaded:
//! `cargo xtask test` installs the `chromium` and `chromium-driver` packages.
//!
//! [`Browser`] is blocking, like the rest of the harness: each call runs on a
//! small tokio runtime of its own. Dropping it ends the session and the
//! driver.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{cookies::Cookie, wd::Capabilities, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::deployment::free_port;

/// Where Debian puts them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One headless Chromium session.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// ChromeDriver's own URL, for the one command sent around fantoccini.
    driver_url: String,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a phone-or-desktop
    /// window size.
    pub fn start(width: u32, height: u32) -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: apt-get install -y chromium chromium-driver (cargo xtask test does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match rt.block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url),
            ) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        Browser {
            rt,
            client: Some(client),
            driver,
            driver_url: url,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("browser session")
    }

    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Stores a cookie exactly as a `Set-Cookie` header gives it (name,
    /// value, path, `Secure`, `HttpOnly`, `SameSite`, `Max-Age`), host-only,
    /// for the origin of the current page. Sent as WebDriver's Add Cookie
    /// directly: fantoccini sends `"domain": null`, which ChromeDriver
    /// refuses.
    pub fn add_set_cookie(&self, set_cookie: &str) {
        let c = Cookie::parse(set_cookie.to_owned()).expect("a Set-Cookie header");
        let mut cookie = json!({
            "name": c.name(),
            "value": c.value(),
            "path": c.path().unwrap_or("/"),
            "secure": c.secure().unwrap_or(false),
            "httpOnly": c.http_only().unwrap_or(false),
        });
        if let Some(s) = c.same_site() {
            cookie["sameSite"] = json!(s.to_string());
        }
        if let Some(age) = c.max_age() {
            cookie["expiry"] = json!(crate::unix_now() + age.whole_seconds());
        }
        let session = self
            .rt
            .block_on(self.client().session_id())
            .ok()
            .flatten()
            .expect("session id");
        let r = crate::Client::new(&self.driver_url).post(
            &format!("/session/{session}/cookie"),
            json!({ "cookie": cookie }),
        );
        assert_eq!(r.status, 200, "add cookie: {}", r.body);
    }

    /// The names of the cookies the browser holds for the current page.
    pub fn cookie_names(&self) -> Vec<String> {
        self.rt
            .block_on(self.client().get_all_cookies())
            .expect("cookies")
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// Runs a script in the page; returns its value.
    pub fn execute(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// The text of the element with `id`, once it holds `until` (30 s).
    pub fn wait_text(&self, id: &str, until: &str) -> String {
        self.wait_text_css(&format!("#{id}"), until)
    }

    /// On a failed wait: the page as it was, in
    /// `target/screenshots/last-failure.png`.
    fn failure_shot(&self) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|root| {
                root.join("target")
                    .join("screenshots")
                    .join("last-failure.png")
            });
        if let (Some(path), Ok(png)) = (path, self.rt.block_on(self.client().screenshot())) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(&path, png);
            eprintln!("browser: the page at the failure is in {}", path.display());
        }
    }

    fn find(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(e) = self.rt.block_on(self.client().find(Locator::Css(css))) {
                return e;
            }
            if Instant::now() >= deadline {
                self.failure_shot();
                panic!("no element {css:?} in 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no element matches `css` (30 s).
    pub fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.has(css) {
            if Instant::now() >= deadline {
                self.failure_shot();
                panic!("{css:?} still there after 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for an element matching `css`.
    pub fn wait_for(&self, css: &str) {
        self.find(css);
    }

    /// Whether an element matching `css` is on the page now.
    pub fn has(&self, css: &str) -> bool {
        self.rt
            .block_on(self.client().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// Replaces the value of the input matching `css` by typing `text`.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(async {
            e.clear()
                .await
                .unwrap_or_else(|err| panic!("clear {css}: {err}"));
            e.send_keys(text)
                .await
                .unwrap_or_else(|err| panic!("type into {css}: {err}"));
        });
    }

    /// Chooses an option of the select matching `css` by its value.
    pub fn select(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt
            .block_on(e.select_by_value(value))
            .unwrap_or_else(|err| panic!("select {value} in {css}: {err}"));
    }

    /// Chooses the option of the select matching `css` whose text is `label`.
    pub fn select_label(&self, css: &str, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let e = self.find(css);
            if self.rt.block_on(e.select_by_label(label)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "no option {label:?} in {css}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sets an input's value as the page would see typing end (an `input`
    /// event): for date and time inputs, whose typing depends on the locale.
    pub fn set_value(&self, css: &str, value: &str) {
        self.find(css);
        let script = format!(
            "const e = document.querySelector({}); e.value = {}; e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}}));",
            json!(css),
            json!(value)
        );
        self.execute(&script);
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt
            .block_on(e.click())
            .unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    /// Clicks the button whose text is exactly `text` (30 s to appear).
    pub fn click_button(&self, text: &str) {
        let xpath = format!("//button[normalize-space(.)='{text}']");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.rt.block_on(self.client().find(Locator::XPath(&xpath)));
            if let Ok(e) = found {
                if self.rt.block_on(e.click()).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no button {text:?} to click in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text of the element matching `css` once it is there and holds
    /// `until` (30 s).
    pub fn wait_text_css(&self, css: &str, until: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.rt.block_on(async {
                match self.client().find(Locator::Css(css)).await {
                    Ok(e) => e.text().await.ok(),
                    Err(_) => None,
                }
            });
            if let Some(text) = text.as_ref().filter(|t| t.contains(until)) {
                return text.clone();
            }
            let text = text.unwrap_or_default();
            if Instant::now() >= deadline {
                self.failure_shot();
                panic!("{css} never held {until:?}; it holds {text:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the window (a phone, a desktop).
    pub fn resize(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.client().set_window_size(width, height))
            .expect("resize");
    }

    /// Runs an async script (its last argument is the callback); returns
    /// what it passes to the callback.
    pub fn execute_async(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute_async(script, vec![]))
            .unwrap_or_else(|e| panic!("async script: {e}"))
    }

    /// The page's text (its `body`).
    pub fn body_text(&self) -> String {
        self.rt.block_on(async {
            match self.client().find(Locator::Css("body")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        })
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self
            .rt
            .block_on(self.client().screenshot())
            .expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
