//! TLS on the native host (`amanah serve --tls-cert --tls-key`), tested
//! with tools that are not ours: `openssl s_client` for the protocol
//! versions, ALPN and the certificate served, `curl` for HTTP/2 and
//! HTTP/1.1 requests over it. Certificates are made by `openssl req` per
//! test. Native only: the Worker's and Spin's TLS is the platform's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use amanah_e2e::{amanah_bin, log_count, wait_until, Deployment};

/// A self-signed certificate for 127.0.0.1 and its P-256 key, named `cn`.
fn certificate(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `openssl s_client` to `addr` with `args`: its whole output.
fn s_client(addr: &str, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `curl` against the host, trusting `ca`: status line, headers and body.
fn curl(ca: &Path, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn serve_fails(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out: Output = Command::new(amanah_bin())
        .args(["serve", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(args)
        .output()
        .expect("amanah serve");
    assert!(!out.status.success(), "serve {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn tls_1_3_only_h2_and_http1_hsts_and_a_renewed_certificate_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(tmp.path(), "first");
    let (served_cert, served_key) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
    std::fs::copy(&cert, &served_cert).unwrap();
    std::fs::copy(&key, &served_key).unwrap();
    let Some(d) = Deployment::native_only(&[
        "--tls-cert",
        served_cert.to_str().unwrap(),
        "--tls-key",
        served_key.to_str().unwrap(),
    ]) else {
        return;
    };
    let url = d.url("pk").to_owned();
    let addr = url
        .strip_prefix("https://")
        .expect("an https URL")
        .to_owned();

    // TLS 1.2 is refused; 1.3 is agreed, with h2 by ALPN.
    let old = s_client(&addr, &["-tls1_2"]);
    assert!(
        old.contains("alert protocol version")
            && !old.contains("Protocol  : TLSv1.2\n    Cipher    : ECDHE"),
        "{old}"
    );
    let new = s_client(&addr, &["-tls1_3", "-alpn", "h2,http/1.1"]);
    assert!(new.contains("New, TLSv1.3"), "{new}");
    assert!(new.contains("ALPN protocol: h2"), "{new}");
    assert!(new.contains("subject=CN = first"), "{new}");

    // HTTP/2 and HTTP/1.1, every answer with HSTS (preload).
    for version in ["--http2", "--http1.1"] {
        let r = curl(&cert, &[version, &format!("{url}/healthz")]);
        let want = if version == "--http2" {
            "HTTP/2 200"
        } else {
            "HTTP/1.1 200"
        };
        assert!(r.starts_with(want), "{version}: {r}");
        assert!(
            r.to_ascii_lowercase().contains(
                "strict-transport-security: max-age=63072000; includesubdomains; preload"
            ),
            "{r}"
        );
    }
    // Over HTTP/2 the host is named by `:authority`: a same-origin request
    // passes the origin check (and meets the body's 400), another site's is
    // refused (403).
    let login = |origin: &str| {
        curl(
            &cert,
            &[
                "--http2",
                "-H",
                "content-type: application/json",
                "-H",
                &format!("origin: {origin}"),
                "--data",
                r#"{"clinic":"nothere","email":"a@b.pk","password":"wrong wrong wrong"}"#,
                &format!("{url}/api/v1/auth/login"),
            ],
        )
    };
    let r = login(&url);
    assert!(
        r.starts_with("HTTP/2 400") && r.contains("not a clinic id"),
        "{r}"
    );
    let r = login("https://elsewhere.example");
    assert!(r.starts_with("HTTP/2 403"), "{r}");

    // A renewed certificate is served after SIGHUP, without a restart.
    let pid = d.child_pid().expect("the host's pid").to_string();
    let (cert2, key2) = certificate(tmp.path(), "renewed");
    std::fs::copy(&cert2, &served_cert).unwrap();
    std::fs::copy(&key2, &served_key).unwrap();
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success())
    };
    hup();
    let log = d.logs[0].clone();
    // The signal is handled on the host's own time: wait for its line.
    let logged = |what: &str| {
        wait_until(&format!("the host logs {what:?}"), || {
            log_count(&log, what) >= 1
        })
    };
    logged("certificate and key read again");
    let r = s_client(&addr, &["-tls1_3"]);
    assert!(r.contains("subject=CN = renewed"), "{r}");

    // A pair that does not belong together is refused and the running one
    // stays.
    std::fs::copy(&key, &served_key).unwrap();
    hup();
    logged("the new certificate was refused");
    let r = s_client(&addr, &["-tls1_3"]);
    assert!(r.contains("subject=CN = renewed"), "{r}");
    let r = curl(&cert2, &["--http1.1", &format!("{url}/healthz")]);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn plain_http_only_on_loopback_and_bad_certificate_files_are_named() {
    if Deployment::external() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = serve_fails(&["--listen", "0.0.0.0:0"]);
    assert!(e.contains("plain HTTP is served on loopback only"), "{e}");

    let (cert, key) = certificate(tmp.path(), "a");
    let (_, other_key) = certificate(tmp.path(), "b");
    let missing = tmp.path().join("missing.key");
    let garbage = tmp.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    for (c, k, flag, named) in [
        (s(&cert), s(&missing), "--tls-key", s(&missing)),
        (s(&garbage), s(&key), "--tls-cert", s(&garbage)),
        (s(&cert), s(&other_key), "--tls-key", s(&other_key)),
    ] {
        let e = serve_fails(&["--listen", "127.0.0.1:0", "--tls-cert", &c, "--tls-key", &k]);
        assert!(e.contains(&format!("{flag} {named}")), "{e}");
    }
    let e = serve_fails(&["--listen", "127.0.0.1:0", "--tls-cert", &s(&cert)]);
    assert!(e.contains("--tls-key"), "{e}");
}
