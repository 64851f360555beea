//! The configuration: one TOML file, read strictly.
//!
//! [`load`] reads the file, deserializes it into [`raw`] (unknown keys are errors, reported with
//! their key path and line), then [`validate`] turns it into the typed [`Config`], collecting
//! every problem with its key path so `otpgate check-config` can list them all at once.

mod directory;
mod outbound;
pub mod raw;
pub mod validate;
mod warnings;

pub use crate::issues::Issue;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::SystemSettings;
use crate::crypto::Argon2Settings;
use crate::store::StoreSettings;
use crate::users::Directory;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this came from.
    pub path: PathBuf,
    pub node: String,
    pub store: StoreSettings,
    pub key_file: PathBuf,
    pub argon2: Argon2Settings,
    pub system: SystemSettings,
    pub audit_queue: usize,
    pub audit_before_answer: bool,
    pub issuer: String,
    /// HMAC hash of new TOTP tokens (`system.totp.hashlib`).
    pub totp_hashlib: crate::token::HashLib,
    pub directory: Arc<Directory>,
    /// `[radius]`, when the file has one.
    pub radius: Option<crate::radius::settings::RadiusSettings>,
    pub ldap_proxy: Option<crate::ldap::LdapProxySettings>,
    /// `[http]` listen address, when the file has one.
    pub http_listen: Option<std::net::SocketAddr>,
    /// Serve `/validate/check` on the HTTP listener (`[http] validate_check`).
    pub http_validate: bool,
    /// Peers allowed to name the client address (`[http] client_override_from`).
    pub http_trusted: Vec<ipnet::IpNet>,
    /// `[[api_account]]`, `[http]` TLS and token lifetime.
    pub http_api: crate::http::settings::ApiSettings,
    pub handlers: crate::event::HandlerSettings,
    pub events: Arc<crate::event::Definitions>,
    pub smtp: Vec<crate::notify::SmtpServer>,
    pub sms: Vec<crate::notify::SmsGateway>,
    pub remotes: Vec<crate::remote::RemoteDef>,
    pub delivery: crate::auth::DeliverySettings,
    pub policies: Arc<crate::auth::policy::Policies>,
    /// What works but is worth a look (`config::warnings`): shown by `check-config`, logged at
    /// every start and reload.
    pub warnings: Vec<Issue>,
    /// Secrets other users of the host can read (`config::warnings`): `serve` refuses to
    /// start or reload with any, `check-config` lists them as problems.
    pub unsafe_files: Vec<Issue>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Syntax {
        file: PathBuf,
        key: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", render_issues(file, issues))]
    Invalid { file: PathBuf, issues: Vec<Issue> },
}

fn render_issues(file: &Path, issues: &[Issue]) -> String {
    let mut out = String::new();
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}: {}: {}",
            file.display(),
            issue.key,
            issue.message
        ));
    }
    out
}

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    let raw = parse(path, &text)?;
    validate::validate(path, raw)
}

/// Parse TOML text into the raw mirror, reporting the key path and position of an error.
pub fn parse(path: &Path, text: &str) -> Result<raw::RawConfig, ConfigError> {
    let syntax = |key: String, span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map_or((0, 0), |s| line_col(text, s.start));
        ConfigError::Syntax {
            file: path.to_owned(),
            key: if key.is_empty() || key == "." {
                "(top level)".into()
            } else {
                key
            },
            line,
            column,
            message,
        }
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| syntax(String::new(), e.span(), e.message().trim().to_owned()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        syntax(key, inner.span(), inner.message().trim().to_owned())
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_located() {
        let err = parse(
            Path::new("x.toml"),
            "[database]\nurl = \"sqlite:a.db\"\nmax_conections = 3\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.toml:3:1: database"), "{text}");
        assert!(text.contains("unknown field `max_conections`"), "{text}");
    }

    #[test]
    fn nested_paths_are_named() {
        let err = parse(
            Path::new("x.toml"),
            "[[realm]]\nname = \"a\"\nresolvers = [\"r\"]\n[[realm]]\nname = \"b\"\nresolver = [\"r\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("realm[1]"), "{err}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse(Path::new("x.toml"), "a = = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:1:"), "{err}");
    }
}
