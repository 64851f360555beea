//! `otpgate import privacyidea`: a privacyIDEA database and its encKey in, otpgate's tokens and
//! a TOML file of realms, resolvers, policies and event definitions out.
//!
//! [`prepare`] reads everything ([`source`]), looks the owners up ([`owners`]), maps the tokens
//! ([`tokens`]) and the configuration ([`config_out`]), and checks the configuration the way
//! `otpgate check-config` would, merged with the current one ([`settle`]). Only a [`Plan`] in
//! which everything is valid is stored (`Authenticator::import_privacyidea`).

pub mod config_out;
pub mod crypto;
pub mod owners;
pub mod source;
pub mod tokens;

use std::path::Path;

pub use crate::token::import::{PIN_RESET_REQUIRED, PinPlan, PlannedToken};
pub use config_out::Sections;

/// What did not come over, or came over changed: one line each.
#[derive(Debug, Default)]
pub struct Notes {
    lines: Vec<String>,
}

impl Notes {
    /// `what` is left out.
    pub fn skip(&mut self, what: impl std::fmt::Display, why: impl std::fmt::Display) {
        self.lines.push(format!("not imported: {what}: {why}"));
    }

    /// `what` is imported, changed.
    pub fn change(&mut self, what: &str, how: impl std::fmt::Display) {
        self.lines.push(format!("changed: {what}: {how}"));
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

/// Everything an import will write.
#[derive(Debug)]
pub struct Plan {
    pub tokens: Vec<PlannedToken>,
    pub sections: Sections,
    pub notes: Notes,
    /// Tokens privacyIDEA has (the import's denominator).
    pub source_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("the encKey: {0}")]
    Key(String),
    #[error("the configuration with the imported sections is not valid:\n{0}")]
    Invalid(String),
}

/// Read privacyIDEA's database and work out everything the import would write.
/// `config` is the current configuration file (its text merged with the imported sections
/// must validate).
pub async fn prepare(
    database: &str,
    enckey: &[u8],
    config: &Path,
    config_text: &str,
) -> Result<Plan, ImportError> {
    let key = crypto::EncKey::from_bytes(enckey).map_err(|e| ImportError::Key(e.to_string()))?;
    let data = source::Source::open(database)?.read().await?;
    let seeds: Vec<(&str, &str)> = data
        .tokens
        .iter()
        .map(|t| (t.row.text("key_enc"), t.row.text("key_iv")))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    if !seeds.is_empty() && seeds.iter().all(|(k, iv)| key.token_seed(k, iv).is_err()) {
        return Err(ImportError::Key(format!(
            "it opens none of the {} token seeds: is it this privacyIDEA's encKey?",
            seeds.len()
        )));
    }
    let mut notes = Notes::default();
    let sections = config_out::sections(&data, &key, &mut notes);
    let (sections, merged) = settle(config, config_text, sections, &mut notes)?;
    let logins = owners::look_up(&data.tokens, &data.resolvers, &key, &merged.directory).await;
    let tokens = tokens::plan(&data.tokens, &key, &logins, &mut notes);
    Ok(Plan {
        source_tokens: data.tokens.len(),
        tokens,
        sections,
        notes,
    })
}

/// Leave out what is in the configuration already (by name), then what otpgate's validation
/// refuses — one policy action at a time, else the whole entry — until the configuration with
/// the rest validates; the sections and the configuration they make with the current one.
/// Problems in the current configuration itself are errors.
pub fn settle(
    path: &Path,
    current: &str,
    mut sections: Sections,
    notes: &mut Notes,
) -> Result<(Sections, crate::config::Config), ImportError> {
    let invalid = |e: crate::config::ConfigError| ImportError::Invalid(e.to_string());
    let raw = crate::config::parse(path, current).map_err(invalid)?;
    let existing: [(&str, Vec<String>); 4] = [
        (
            "resolver",
            raw.resolvers.iter().map(|r| r.name.clone()).collect(),
        ),
        (
            "realm",
            raw.realms
                .iter()
                .map(|r| r.name.to_ascii_lowercase())
                .collect(),
        ),
        (
            "policy",
            raw.policy.iter().map(|p| p.name.clone()).collect(),
        ),
        ("event", raw.events.iter().map(|e| e.name.clone()).collect()),
    ];
    for (kind, names) in &existing {
        sections.list_mut(kind).retain(|t| {
            let name = t.get("name").and_then(|v| v.as_str()).unwrap_or_default();
            let keep = !names.iter().any(|n| n == name);
            if !keep {
                notes.skip(
                    format!("{kind} {name}"),
                    "the configuration has one of this name already; kept as it is",
                );
            }
            keep
        });
    }
    if let Some(default) = raw.realms.iter().find(|r| r.default) {
        for realm in &mut sections.realm {
            if realm.remove("default").is_some() {
                let name = realm.get("name").and_then(|v| v.as_str()).unwrap_or("");
                notes.change(
                    &format!("realm {name}"),
                    format!(
                        "not the default realm: the configuration's is {}",
                        default.name
                    ),
                );
            }
        }
    }
    // each round removes at least one entry or action, so this ends
    loop {
        let merged = format!("{current}\n{}", sections.to_toml());
        let raw = crate::config::parse(path, &merged).map_err(invalid)?;
        let issues = match crate::config::validate::validate(path, raw) {
            Ok(config) => return Ok((sections, config)),
            Err(crate::config::ConfigError::Invalid { issues, .. }) => issues,
            Err(e) => return Err(invalid(e)),
        };
        let mut removed = false;
        let mut foreign = Vec::new();
        // entries to drop, per kind; actions to drop per policy
        let mut drop: Vec<(&str, usize, String)> = Vec::new();
        let mut drop_actions: Vec<(usize, String, String)> = Vec::new();
        for issue in &issues {
            let Some((kind, index, rest)) = locate(&issue.key) else {
                foreign.push(issue.to_string());
                continue;
            };
            let Some(own) = index.checked_sub(existing_count(&existing, kind)) else {
                foreign.push(issue.to_string());
                continue;
            };
            if own >= sections.list(kind).len() {
                foreign.push(issue.to_string());
                continue;
            }
            match rest.strip_prefix(".actions.") {
                Some(action) if kind == "policy" => {
                    drop_actions.push((own, action.to_owned(), issue.message.clone()))
                }
                _ => drop.push((kind, own, issue.message.clone())),
            }
        }
        if !foreign.is_empty() {
            return Err(ImportError::Invalid(foreign.join("\n")));
        }
        for (own, action, why) in drop_actions {
            let policy = &mut sections.policy[own];
            let name = policy
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            if let Some(toml::Value::Table(actions)) = policy.get_mut("actions")
                && actions.remove(&action).is_some()
            {
                notes.change(
                    &format!("policy {name}"),
                    format!("action {action} left out: {why}"),
                );
                removed = true;
                if actions.is_empty() {
                    drop.push((
                        "policy",
                        own,
                        "none of its actions is one otpgate has".into(),
                    ));
                }
            }
        }
        drop.sort_by(|a, b| (a.0, b.1).cmp(&(b.0, a.1)));
        drop.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        for (kind, own, why) in drop {
            let list = sections.list_mut(kind);
            if own < list.len() {
                let entry = list.remove(own);
                let name = entry.get("name").and_then(|v| v.as_str()).unwrap_or("");
                notes.skip(format!("{kind} {name}"), why);
                removed = true;
            }
        }
        if !removed {
            let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
            return Err(ImportError::Invalid(text.join("\n")));
        }
    }
}

fn existing_count(existing: &[(&str, Vec<String>); 4], kind: &str) -> usize {
    existing
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, names)| names.len())
}

/// `policy[3].actions.otppin` → ("policy", 3, ".actions.otppin").
fn locate(key: &str) -> Option<(&'static str, usize, &str)> {
    let (head, tail) = key.split_once('[')?;
    let kind = Sections::KINDS.into_iter().find(|k| *k == head)?;
    let (index, rest) = tail.split_once(']')?;
    Some((kind, index.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_keys_are_located() {
        assert_eq!(
            locate("policy[3].actions.otppin"),
            Some(("policy", 3, ".actions.otppin"))
        );
        assert_eq!(locate("event[0]"), Some(("event", 0, "")));
        assert_eq!(locate("radius.client[0]"), None);
    }
}
