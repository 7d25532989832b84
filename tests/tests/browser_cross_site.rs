//! Cross-site attacks from a real browser: headless Chromium holds a clinic
//! owner's session cookie, exactly as the server set it, and then visits an
//! attacker's page on another origin. The page tries a credentialed read, a
//! JSON write, a no-cors write, a forged logout, an HTML form post and an
//! image request for the export. Nothing is read and nothing changes: the
//! cookie is `SameSite=Strict`, the server refuses requests whose
//! `Sec-Fetch-Site`/`Origin` are not its own, and no CORS header lets a
//! foreign page read an answer. The attacker is tried from a cross-site
//! origin (`localhost`) and from a same-site one (`127.0.0.1`, another port),
//! where the browser does send the cookie and the server's own check is what
//! stops it.

use std::io::{Read, Write};
use std::net::TcpListener;

use amanah_e2e::browser::Browser;
use amanah_e2e::{totp_code, Client, Deployment, PASSWORD};
use amanah_functions::web::SESSION_COOKIE;
use serde_json::json;

/// Serves one page to every request, on a port of its own, until the test
/// ends. Returns the port.
fn attacker_site(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("attacker port");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

/// The attacker's page: every attempt, then `done` in `#out`.
fn attack_page(app: &str) -> String {
    r#"<!doctype html><meta charset="utf-8"><title>Win a prize</title>
<pre id="out">running</pre>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" action="@APP@/api/v1/patients" enctype="text/plain" target="sink">
<input name='{"name":"Form Csrf Person","dob":"1990-01-01","x":"' value='"}'>
</form>
<img src="@APP@/api/v1/export?format=csv" alt="">
<script>
const APP = "@APP@";
const out = [];
async function attempt(name, f) {
  try { out.push(name + ": answered " + await f()); }
  catch (e) { out.push(name + ": blocked"); }
  document.getElementById("out").textContent = out.join("\n");
}
(async () => {
  await attempt("credentialed read", async () => {
    const r = await fetch(APP + "/api/v1/auth/session", {credentials: "include"});
    return r.status + " " + (await r.text());
  });
  await attempt("json write", async () => {
    const r = await fetch(APP + "/api/v1/patients", {method: "POST", credentials: "include",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({name: "Fetch Csrf Person", dob: "1990-01-01"})});
    return r.status + " " + (await r.text());
  });
  await attempt("no-cors write", async () => {
    const r = await fetch(APP + "/api/v1/patients", {method: "POST", mode: "no-cors",
      credentials: "include", headers: {"content-type": "text/plain"},
      body: JSON.stringify({name: "Nocors Csrf Person", dob: "1990-01-01"})});
    return "opaque " + r.type;
  });
  await attempt("logout", async () => {
    const r = await fetch(APP + "/api/v1/auth/logout", {method: "POST", mode: "no-cors",
      credentials: "include"});
    return "opaque " + r.type;
  });
  const sink = document.getElementById("sink");
  await new Promise((resolve) => {
    sink.addEventListener("load", resolve, {once: true});
    document.getElementById("form").submit();
  });
  out.push("form post: sent");
  out.push("done");
  document.getElementById("out").textContent = out.join("\n");
})();
</script>"#
        .replace("@APP@", app)
}

#[test]
fn another_origin_in_a_real_browser_reads_nothing_and_changes_nothing() {
    let d = Deployment::start();
    let (clinic, owner, secret) = d.ready_clinic("pk", "Browser Clinic", "owner@browser.pk");
    let app = d.url("pk").trim_end_matches('/').to_owned();
    assert!(
        app.starts_with("http://127.0.0.1:"),
        "this test needs the app on 127.0.0.1, not {app}"
    );

    // A fresh login; its session cookie goes into the browser as set.
    clinic.advance(31);
    let c = Client::new(&app);
    let r = c.post(
        "/api/v1/auth/login",
        json!({"clinic": clinic.id, "email": "owner@browser.pk", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .with_bearer(r.body["mfa_token"].as_str().expect("mfa token"))
        .post(
            "/api/v1/auth/mfa",
            json!({"code": totp_code(&secret, clinic.now())}),
        );
    assert_eq!(r.status, 200, "{}", r.body);
    let set_cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("session Set-Cookie");
    assert!(set_cookie.contains("SameSite=Strict") && set_cookie.contains("HttpOnly"));

    let browser = Browser::start(1280, 800);
    browser.goto(&format!("{app}/healthz"));
    browser.add_set_cookie(&set_cookie);
    // The cookie works from the app's own origin: the browser is logged in.
    browser.goto(&format!("{app}/api/v1/auth/session"));
    let text = browser.body_text();
    assert!(text.contains("owner@browser.pk"), "not logged in: {text}");

    let page = attack_page(&app);
    for attacker in [
        format!("http://localhost:{}", attacker_site(page.clone())),
        format!("http://127.0.0.1:{}", attacker_site(page)),
    ] {
        browser.goto(&format!("{attacker}/"));
        let report = browser.wait_text("out", "done");
        eprintln!("from {attacker}:\n{report}");
        for line in report.lines() {
            assert!(
                line.ends_with(": blocked")
                    || line.contains(": answered opaque")
                    || line.ends_with(": sent")
                    || line == "done",
                "from {attacker}, the page read an answer: {line}"
            );
        }
        assert!(!report.contains("owner@browser.pk"));
    }

    // Nothing changed: no patient, no export, the session is alive.
    let r = owner.get("/api/v1/patients");
    assert_eq!(
        r.body["items"],
        json!([]),
        "a forged write landed: {}",
        r.body
    );
    let r = owner.get("/api/v1/audit?action=clinic.export");
    assert_eq!(r.body["items"], json!([]), "an export ran: {}", r.body);
    let r = owner.get("/api/v1/audit?action=auth.logout");
    assert_eq!(r.body["items"], json!([]), "{}", r.body);
    browser.goto(&format!("{app}/api/v1/auth/session"));
    let text = browser.body_text();
    assert!(
        text.contains("owner@browser.pk"),
        "the forged logout ended the session: {text}"
    );
}
