//! `[radius.radsec]`: RADIUS over TLS (RFC 6614) — where it listens, its certificate, the CA
//! that signs the NAS certificates, and per-client pins.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::config::validate::{Issues, resolve_path};

/// `[radius.radsec]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRadsec {
    /// Addresses to listen on (default `["0.0.0.0:2083", "[::]:2083"]`).
    pub listen: Option<Vec<String>>,
    /// PEM certificate chain of the server; read again on reload.
    pub certificate: String,
    /// PEM private key of the server.
    pub key: String,
    /// PEM CA certificates that sign the NAS (client) certificates.
    pub ca_file: String,
    /// Seconds a connection may stay silent before it is closed (default 120); NAS keep it
    /// open with Status-Server.
    pub idle_timeout: Option<f64>,
}

/// `[radius.radsec]`, validated.
#[derive(Debug, Clone)]
pub struct RadsecSettings {
    pub listen: Vec<SocketAddr>,
    pub tls: Arc<rustls::ServerConfig>,
    pub idle_timeout: Duration,
}

/// What a client's certificate must be, beyond being signed by the CA.
#[derive(Debug, Clone, Default)]
pub struct TlsPins {
    pub fingerprints: Vec<[u8; 32]>,
    pub common_names: Vec<String>,
}

impl TlsPins {
    pub fn parse(
        fingerprints: &[String],
        names: &[String],
        key: &str,
        issues: &mut Issues,
    ) -> Self {
        let mut out = Self {
            fingerprints: Vec::new(),
            common_names: names.to_vec(),
        };
        for f in fingerprints {
            let hex: String = f
                .trim()
                .trim_start_matches("sha256:")
                .chars()
                .filter(|c| *c != ':')
                .collect();
            match data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                Some(fp) => out.fingerprints.push(fp),
                None => issues.push(
                    format!("{key}.tls_fingerprint"),
                    format!("{f:?} is not a SHA-256 fingerprint (64 hex digits)"),
                ),
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty() && self.common_names.is_empty()
    }
}

pub fn build(raw: &RawRadsec, base: &Path, issues: &mut Issues) -> Option<RadsecSettings> {
    let n = issues.len();
    let list = raw
        .listen
        .clone()
        .unwrap_or_else(|| vec!["0.0.0.0:2083".into(), "[::]:2083".into()]);
    let mut listen = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match a.parse::<SocketAddr>() {
            Ok(sa) => listen.push(sa),
            Err(_) => issues.push(
                format!("radius.radsec.listen[{i}]"),
                format!("{a:?} is not an address:port"),
            ),
        }
    }
    let idle_timeout = match raw.idle_timeout {
        None => Duration::from_secs(120),
        Some(s) if s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
        Some(s) => {
            issues.push(
                "radius.radsec.idle_timeout",
                format!("{s} is not a number of seconds between 0 and 86400"),
            );
            Duration::from_secs(120)
        }
    };
    let tls = server_config(
        &resolve_path(base, &raw.certificate),
        &resolve_path(base, &raw.key),
        &resolve_path(base, &raw.ca_file),
    );
    let tls = match tls {
        Ok(t) => Some(t),
        Err(e) => {
            issues.push("radius.radsec.certificate", e);
            None
        }
    };
    (issues.len() == n)
        .then_some(())
        .and(tls)
        .map(|tls| RadsecSettings {
            listen,
            tls,
            idle_timeout,
        })
}

/// TLS 1.2 and 1.3, the server's chain and key, client certificates required and checked
/// against the CA file (validity dates included).
fn server_config(cert: &Path, key: &Path, ca: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let c = c.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CA certificate in it", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("{}: {e}", ca.display()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map(Arc::new)
        .map_err(|e| format!("{}: {e}", cert.display()))
}
