//! The HTTP API's accounts and TLS: `[[api_account]]` (privacyIDEA's service accounts for
//! `/auth`) and `[http]`'s certificate, validated with every problem at its key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::issues::Issues;
use crate::secret::Secret;

/// What an API account may be allowed.
pub const RIGHTS: &[&str] = &["triggerchallenge"];

/// `[[api_account]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiAccount {
    /// The name it logs in with at `/auth`.
    pub name: String,
    /// Its password as an argon2 hash (`otpgate hash-password`).
    pub password_hash: String,
    /// What it may do: `triggerchallenge`.
    #[serde(default)]
    pub rights: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ApiAccount {
    pub name: String,
    pub password_hash: Secret<String>,
    pub rights: Vec<String>,
}

/// The API beyond `/validate/check`.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    pub accounts: Vec<ApiAccount>,
    /// How long a token from `/auth` is valid.
    pub token_lifetime: Duration,
    /// TLS for the listener (clients send passwords).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

pub fn build(
    accounts: &[RawApiAccount],
    tls: (Option<&str>, Option<&str>),
    token_lifetime: Option<f64>,
    base: &Path,
    issues: &mut Issues,
) -> ApiSettings {
    let mut out = ApiSettings {
        token_lifetime: Duration::from_secs(3600),
        ..Default::default()
    };
    for (i, a) in accounts.iter().enumerate() {
        let key = format!("api_account[{i}]");
        if out.accounts.iter().any(|x| x.name == a.name) {
            issues.push(
                format!("{key}.name"),
                format!("account {:?} is defined twice", a.name),
            );
        }
        if !a.password_hash.starts_with("$argon2") {
            issues.push(
                format!("{key}.password_hash"),
                "give an argon2 hash (otpgate hash-password), not the password",
            );
        }
        for r in &a.rights {
            if !RIGHTS.contains(&r.as_str()) {
                issues.push(
                    format!("{key}.rights"),
                    format!("{r:?} is not a right (known: {})", RIGHTS.join(", ")),
                );
            }
        }
        out.accounts.push(ApiAccount {
            name: a.name.clone(),
            password_hash: Secret::new(a.password_hash.clone()),
            rights: a.rights.clone(),
        });
    }
    match token_lifetime {
        None => {}
        Some(s) if s > 0.0 && s <= 86_400.0 => out.token_lifetime = Duration::from_secs_f64(s),
        Some(s) => issues.push(
            "http.token_lifetime",
            format!("{s} is not a number of seconds between 0 and 86400"),
        ),
    }
    out.tls = match tls {
        (Some(cert), Some(key)) => {
            match crate::crypto::tls::server_config(&base.join(cert), &base.join(key)) {
                Ok(c) => Some(c),
                Err(e) => {
                    issues.push("http.tls_certificate", e);
                    None
                }
            }
        }
        (None, None) => None,
        _ => {
            issues.push("http.tls_key", "give both tls_certificate and tls_key");
            None
        }
    };
    out
}
