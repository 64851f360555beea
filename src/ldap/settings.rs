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
    /// The directory behind the proxy: `ldap://` or `ldaps://` URLs, tried in order.
    pub upstream: Vec<String>,
    /// PEM CA certificates the upstream's certificate must chain to (`ldaps://`, StartTLS).
    pub upstream_ca_file: Option<String>,
    /// Ask `ldap://` upstream servers for StartTLS before binding.
    pub upstream_starttls: Option<bool>,
    /// Templates mapping a bind DN to a login: `uid={user},ou=people,dc=example,dc=org`.
    #[serde(default)]
    pub user_dn: Vec<String>,
    /// Look a bind DN no template matches up in the realm's LDAP resolvers.
    pub user_dn_search: Option<bool>,
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
    /// The upstream servers, in order.
    pub upstream: Vec<UpstreamServer>,
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    pub user_dn: Vec<String>,
    pub user_dn_search: bool,
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

/// How the proxy speaks to one upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    Ldaps,
    StartTls,
}

/// One upstream server from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// `host:port` to connect to.
    pub addr: String,
    /// The name its certificate must carry.
    pub host: String,
    pub security: Security,
}

impl UpstreamServer {
    /// `ldap://host[:port]` or `ldaps://host[:port]`; `starttls` upgrades `ldap://`.
    pub fn parse(url: &str, starttls: bool) -> Result<Self, String> {
        let (rest, port, security) = if let Some(r) = url.strip_prefix("ldaps://") {
            (r, 636, Security::Ldaps)
        } else if let Some(r) = url.strip_prefix("ldap://") {
            let security = if starttls {
                Security::StartTls
            } else {
                Security::Plain
            };
            (r, 389, security)
        } else {
            return Err("not an ldap:// or ldaps:// URL".into());
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err("give scheme, host and port only".into());
        }
        // `host:port` or `[v6]:port` carry a port; `host`, `[v6]` and a bare v6 do not
        let with_port = hostport
            .rsplit_once(':')
            .filter(|(h, _)| !h.contains(':') || h.ends_with(']'));
        let (host, addr) = match with_port {
            Some((h, p)) => {
                p.parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port"))?;
                (h, hostport.to_owned())
            }
            None if hostport.contains(':') && !hostport.starts_with('[') => {
                return Err("write an IPv6 address in brackets".into());
            }
            None => (hostport, format!("{hostport}:{port}")),
        };
        Ok(Self {
            addr,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            security,
        })
    }
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
        (Some(cert), Some(key)) => {
            match crate::crypto::tls::server_config(&base.join(cert), &base.join(key)) {
                Ok(c) => Some(c),
                Err(e) => {
                    issues.push("ldap_proxy.tls_certificate", e);
                    None
                }
            }
        }
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
    let starttls = raw.upstream_starttls.unwrap_or(false);
    let mut upstream = Vec::new();
    for (i, u) in raw.upstream.iter().enumerate() {
        match UpstreamServer::parse(u, starttls) {
            Ok(server) => upstream.push(server),
            Err(e) => issues.push(format!("ldap_proxy.upstream[{i}]"), format!("{u:?}: {e}")),
        }
    }
    if raw.upstream.is_empty() {
        issues.push(
            "ldap_proxy.upstream",
            "name at least one upstream directory",
        );
    }
    let upstream_tls = match &raw.upstream_ca_file {
        Some(f) => match crate::users::ldap::tls::client_config(&base.join(f)) {
            Ok(c) => Some(c),
            Err(e) => {
                issues.push("ldap_proxy.upstream_ca_file", e);
                None
            }
        },
        None => {
            if upstream.iter().any(|u| u.security != Security::Plain) {
                issues.push(
                    "ldap_proxy.upstream_ca_file",
                    "TLS to the upstream directory needs the CA that signed its certificate",
                );
            }
            None
        }
    };
    let user_dn_search = raw.user_dn_search.unwrap_or(false);
    if user_dn_search && raw.realm.is_none() {
        issues.push(
            "ldap_proxy.user_dn_search",
            "searching for bind DNs needs the realm whose LDAP resolvers to ask",
        );
    }
    if raw.user_dn.is_empty() && !user_dn_search {
        issues.push(
            "ldap_proxy.user_dn",
            "name at least one DN template with {user}, or set user_dn_search",
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
        upstream_tls,
        user_dn: raw.user_dn.clone(),
        user_dn_search,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_give_address_certificate_name_and_security() {
        let cases = [
            (
                "ldap://dir.example",
                false,
                "dir.example:389",
                "dir.example",
                Security::Plain,
            ),
            (
                "ldap://dir.example:1389/",
                true,
                "dir.example:1389",
                "dir.example",
                Security::StartTls,
            ),
            (
                "ldaps://dir.example",
                false,
                "dir.example:636",
                "dir.example",
                Security::Ldaps,
            ),
            (
                "ldaps://[::1]:1636",
                false,
                "[::1]:1636",
                "::1",
                Security::Ldaps,
            ),
            ("ldap://[::1]", false, "[::1]:389", "::1", Security::Plain),
            (
                "ldaps://127.0.0.1",
                true,
                "127.0.0.1:636",
                "127.0.0.1",
                Security::Ldaps,
            ),
        ];
        for (url, starttls, addr, host, security) in cases {
            let u = UpstreamServer::parse(url, starttls).unwrap();
            assert_eq!(
                (u.addr.as_str(), u.host.as_str(), u.security),
                (addr, host, security),
                "{url}"
            );
        }
        for bad in [
            "http://x",
            "ldap://",
            "ldap://x:port",
            "ldap://::1",
            "ldap://x/dc=a",
        ] {
            assert!(UpstreamServer::parse(bad, false).is_err(), "{bad}");
        }
    }
}
