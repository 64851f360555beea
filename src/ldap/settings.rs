//! `[ldap_proxy]`: where the bind proxy listens, its upstream directory, how a bind DN becomes
//! a user, and how the password is split.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::issues::Issues;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdapProxy {
    /// Addresses to listen on for LDAP (StartTLS offered when a certificate is set), e.g.
    /// `["0.0.0.0:389"]`.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Addresses to listen on for LDAPS (TLS from the start), e.g. `["0.0.0.0:636"]`.
    #[serde(default)]
    pub listen_tls: Vec<String>,
    /// PEM files of the proxy's certificate chain and its key (read again on SIGHUP).
    pub tls_certificate: Option<String>,
    pub tls_key: Option<String>,
    /// Refuse binds that are not protected by TLS (LDAPS or StartTLS) (default: true when a
    /// certificate is set).
    pub require_tls: Option<bool>,
    /// The directory behind the proxy: `ldap://host:port` URLs, tried in order.
    pub upstream: Vec<String>,
    /// Templates mapping a bind DN to a login: `uid={user},ou=people,dc=example,dc=org`.
    pub user_dn: Vec<String>,
    /// The realm of mapped users (default: the default realm).
    pub realm: Option<String>,
    /// `pin` (default): the whole password is checked by otpgate (PIN+OTP, or the directory
    /// password with `otppin = "userstore"`); `password+otp`: the directory password followed
    /// by the OTP, the first checked by the upstream bind, the second by otpgate.
    pub password: Option<String>,
    /// `password+otp`: the OTP's length (default 6).
    pub otp_length: Option<usize>,
    /// Bind DNs that pass through without an OTP (the applications' own search accounts).
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// `pin` mode: the account the upstream connection binds as after an accepted bind.
    pub upstream_bind_dn: Option<String>,
    pub upstream_bind_password: Option<String>,
    pub upstream_bind_password_file: Option<String>,
    /// Bytes one LDAP message may have (default 32768).
    pub max_message_bytes: Option<usize>,
    /// Seconds a client connection may stay silent (default 300).
    pub idle_timeout: Option<f64>,
    /// Seconds to reach and bind the upstream directory (default 2).
    pub upstream_timeout: Option<f64>,
    /// Connections one source address may hold open (default 64).
    pub connections_per_source: Option<usize>,
    /// Seconds the same DN and password from the same client are accepted again without a new
    /// OTP (default 0: off), and how many such binds are kept (default 10,000).
    pub bind_cache_seconds: Option<f64>,
    pub bind_cache_size: Option<usize>,
}

pub use super::mapping::PasswordMode;

#[derive(Debug, Clone)]
pub struct LdapProxySettings {
    pub listen: Vec<SocketAddr>,
    pub listen_tls: Vec<SocketAddr>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub require_tls: bool,
    /// `host:port` of each upstream server, in order.
    pub upstream: Vec<String>,
    pub user_dn: Vec<String>,
    pub realm: Option<String>,
    pub password: PasswordMode,
    pub service_accounts: Vec<String>,
    pub upstream_bind: Option<(String, Secret<String>)>,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub upstream_timeout: Duration,
    pub connections_per_source: usize,
    pub bind_cache: Duration,
    pub bind_cache_size: usize,
}

fn seconds(v: Option<f64>, default: f64, key: &str, issues: &mut Issues) -> Duration {
    let s = v.unwrap_or(default);
    if !(s > 0.0 && s <= 3600.0) {
        issues.push(
            key,
            format!("{s} is not a number of seconds between 0 and 3600"),
        );
        return Duration::from_secs_f64(default);
    }
    Duration::from_secs_f64(s)
}

/// Validate `[ldap_proxy]`.
pub fn build(raw: &RawLdapProxy, base: &Path, issues: &mut Issues) -> Option<LdapProxySettings> {
    let n = issues.len();
    let addrs = |list: &[String], key: &str, issues: &mut Issues| {
        let mut out = Vec::new();
        for (i, a) in list.iter().enumerate() {
            match a.parse::<SocketAddr>() {
                Ok(sa) => out.push(sa),
                Err(_) => issues.push(
                    format!("ldap_proxy.{key}[{i}]"),
                    format!("{a:?} is not an address:port"),
                ),
            }
        }
        out
    };
    let listen = addrs(&raw.listen, "listen", issues);
    let listen_tls = addrs(&raw.listen_tls, "listen_tls", issues);
    if listen.is_empty() && listen_tls.is_empty() {
        issues.push(
            "ldap_proxy.listen",
            "name at least one address to listen on",
        );
    }
    let tls = match (&raw.tls_certificate, &raw.tls_key) {
        (Some(cert), Some(key)) => match server_config(&base.join(cert), &base.join(key)) {
            Ok(c) => Some(c),
            Err(e) => {
                issues.push("ldap_proxy.tls_certificate", e);
                None
            }
        },
        (None, None) => None,
        _ => {
            issues.push(
                "ldap_proxy.tls_key",
                "give both tls_certificate and tls_key",
            );
            None
        }
    };
    if !listen_tls.is_empty() && tls.is_none() {
        issues.push(
            "ldap_proxy.listen_tls",
            "LDAPS needs tls_certificate and tls_key",
        );
    }
    let require_tls = raw.require_tls.unwrap_or(tls.is_some());
    if require_tls && tls.is_none() {
        issues.push(
            "ldap_proxy.require_tls",
            "requiring TLS needs tls_certificate and tls_key",
        );
    }
    let mut upstream = Vec::new();
    for (i, u) in raw.upstream.iter().enumerate() {
        match u.strip_prefix("ldap://") {
            Some(rest) => {
                let host = rest.trim_end_matches('/');
                upstream.push(if host.contains(':') && !host.ends_with(']') {
                    host.to_owned()
                } else {
                    format!("{host}:389")
                });
            }
            None => issues.push(
                format!("ldap_proxy.upstream[{i}]"),
                format!("{u:?}: the proxy speaks to its upstream by ldap:// (TLS upstream is not supported yet)"),
            ),
        }
    }
    if upstream.is_empty() && raw.upstream.is_empty() {
        issues.push(
            "ldap_proxy.upstream",
            "name at least one upstream directory",
        );
    }
    if raw.user_dn.is_empty() {
        issues.push(
            "ldap_proxy.user_dn",
            "name at least one DN template with {user}",
        );
    }
    for (i, t) in raw.user_dn.iter().enumerate() {
        if t.matches("{user}").count() != 1 {
            issues.push(
                format!("ldap_proxy.user_dn[{i}]"),
                format!("{t:?} must hold {{user}} once"),
            );
        }
    }
    let password = match raw.password.as_deref().unwrap_or("pin") {
        "pin" => PasswordMode::Pin,
        "password+otp" => PasswordMode::PasswordOtp {
            otp_length: raw.otp_length.unwrap_or(6).clamp(4, 12),
        },
        other => {
            issues.push(
                "ldap_proxy.password",
                format!("{other:?} is not pin or password+otp"),
            );
            PasswordMode::Pin
        }
    };
    let bind_password = match (
        &raw.upstream_bind_password,
        &raw.upstream_bind_password_file,
    ) {
        (Some(p), None) => Some(p.clone()),
        (None, Some(f)) => {
            let path = base.join(f);
            match std::fs::read_to_string(&path) {
                Ok(t) => Some(t.lines().next().unwrap_or("").to_owned()),
                Err(e) => {
                    issues.push(
                        "ldap_proxy.upstream_bind_password_file",
                        format!("{}: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            issues.push(
                "ldap_proxy.upstream_bind_password",
                "give the value or a file, not both",
            );
            None
        }
        (None, None) => None,
    };
    let upstream_bind = match (&raw.upstream_bind_dn, bind_password) {
        (Some(dn), Some(pw)) => Some((dn.clone(), Secret::new(pw))),
        (Some(_), None) => {
            issues.push(
                "ldap_proxy.upstream_bind_password",
                "the upstream bind DN needs a password",
            );
            None
        }
        _ => None,
    };
    if password == PasswordMode::Pin && upstream_bind.is_none() {
        issues.push(
            "ldap_proxy.upstream_bind_dn",
            "in pin mode the proxy binds upstream as this account after an accepted bind",
        );
    }
    let settings = LdapProxySettings {
        listen,
        listen_tls,
        tls,
        require_tls,
        upstream,
        user_dn: raw.user_dn.clone(),
        realm: raw.realm.clone(),
        password,
        service_accounts: raw.service_accounts.clone(),
        upstream_bind,
        max_message_bytes: raw
            .max_message_bytes
            .unwrap_or(32 * 1024)
            .clamp(1024, 16 << 20),
        idle_timeout: seconds(raw.idle_timeout, 300.0, "ldap_proxy.idle_timeout", issues),
        upstream_timeout: seconds(
            raw.upstream_timeout,
            2.0,
            "ldap_proxy.upstream_timeout",
            issues,
        ),
        connections_per_source: raw.connections_per_source.unwrap_or(64).max(1),
        bind_cache: match raw.bind_cache_seconds {
            None | Some(0.0) => Duration::ZERO,
            v => seconds(v, 0.0, "ldap_proxy.bind_cache_seconds", issues),
        },
        bind_cache_size: raw.bind_cache_size.unwrap_or(10_000),
    };
    (issues.len() == n).then_some(settings)
}

/// A TLS server configuration from PEM files.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map(Arc::new)
        .map_err(|e| format!("{}: {e}", cert.display()))
}
