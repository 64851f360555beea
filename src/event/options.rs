//! Option maps of handler definitions: typed reads, and unknown keys as configuration errors
//! (privacyIDEA ignores them silently; we do not).

use std::collections::BTreeMap;

/// The options of one definition while its action parses them.
#[derive(Debug)]
pub struct Options {
    values: BTreeMap<String, String>,
    used: Vec<String>,
}

impl Options {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self {
            values,
            used: Vec::new(),
        }
    }

    /// A text option (marks it as known).
    pub fn text(&mut self, key: &str) -> Option<String> {
        self.used.push(key.to_owned());
        self.values.get(key).cloned()
    }

    /// A required, non-empty text option.
    pub fn required(&mut self, key: &str) -> Result<String, String> {
        match self.text(key) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(format!("option {key:?} is required")),
        }
    }

    /// A boolean option (privacyIDEA's true forms).
    pub fn flag(&mut self, key: &str) -> bool {
        self.text(key).is_some_and(|v| super::is_true(&v))
    }

    /// An integer option; a value that is not an integer is an error.
    pub fn int(&mut self, key: &str) -> Result<Option<i64>, String> {
        match self.text(key) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("option {key:?}: {v:?} is not an integer")),
        }
    }

    /// Mark keys as known without reading them.
    pub fn allow(&mut self, keys: &[&str]) {
        self.used.extend(keys.iter().map(|k| (*k).to_owned()));
    }

    /// Unknown keys left over.
    pub fn finish(self) -> Result<(), String> {
        let unknown: Vec<&String> = self
            .values
            .keys()
            .filter(|k| !self.used.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unknown option(s) {}",
                unknown
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// A TOML value as privacyIDEA's string form (booleans `True`/`False`, tables as JSON).
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Boolean(true) => "True".into(),
        toml::Value::Boolean(false) => "False".into(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
