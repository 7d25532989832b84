//! TLS for the native host (`amanah serve --tls-cert PEM --tls-key PEM`).
//! What it decides:
//!
//! - TLS 1.3 only (rustls built without its `tls12` feature, and the
//!   protocol list says so again), with the aws-lc-rs provider's default
//!   suites and the hybrid post-quantum key exchange X25519MLKEM768
//!   preferred: a record kept 25 years is worth recording today to decrypt
//!   later (ring, the other provider, has no post-quantum exchange);
//! - ALPN offers `h2`, then `http/1.1` (the server speaks what was agreed);
//! - the certificate chain and key are read at start, refusing to start with
//!   a message that names the file and the flag, and read again on SIGHUP:
//!   a renewed certificate needs no restart, and a bad new pair is logged and
//!   the running pair kept (the host never ends up without a certificate);
//! - without a certificate the host serves plain HTTP on loopback only (a
//!   proxy on the same machine may terminate TLS); see [`plain_allowed`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The ALPN names offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Whether plain HTTP may be served on `addr`: on loopback only.
pub fn plain_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A certificate and key read from two files, and read again on demand.
#[derive(Debug)]
pub struct Reloadable {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloadable {
    /// Reads the files again; on failure the running pair stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = load(&self.cert, &self.key, &self.provider)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| "the certificate lock is poisoned".to_owned())?;
        *current = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The acceptor of every listener, and the pair it serves.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub pair: Arc<Reloadable>,
}

impl Tls {
    /// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private key:
    /// PKCS#8, PKCS#1 or SEC1) and checks that they belong together.
    pub fn new(cert: &Path, key: &Path) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let pair = Arc::new(Reloadable {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(load(cert, key, &provider)?)),
            provider: provider.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("TLS 1.3 is not available: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(pair.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            pair,
        })
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let named = |flag: &str, path: &Path, why: String| format!("{flag} {}: {why}", path.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| named("--tls-cert", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| named("--tls-cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(named(
            "--tls-cert",
            cert,
            "no PEM certificate in the file".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| named("--tls-key", key, format!("no PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        named(
            "--tls-key",
            key,
            format!("not the key of the certificate in --tls-cert, or unusable: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(plain_allowed(&"127.0.0.1:8080".parse().unwrap()));
        assert!(plain_allowed(&"[::1]:8080".parse().unwrap()));
        assert!(!plain_allowed(&"0.0.0.0:8080".parse().unwrap()));
        assert!(!plain_allowed(&"10.1.2.3:443".parse().unwrap()));
    }

    #[test]
    fn files_that_are_not_a_pair_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let e = Tls::new(&cert, &key).err().unwrap();
        assert!(e.starts_with("--tls-cert ") && e.contains("c.pem"), "{e}");
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = Tls::new(&cert, &key).err().unwrap();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
