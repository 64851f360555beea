//! privacyIDEA's resolvers, realms, policies and event definitions as otpgate's TOML
//! (`[[resolver]]`, `[[realm]]`, `[[policy]]`, `[[event]]`). Pure. What has no otpgate
//! equivalent is left out with a note; what otpgate's own validation refuses is found later
//! ([`super::settle`]), so that this file needs no list of what otpgate supports.

use toml::{Table, Value};

use super::Notes;
use super::crypto::EncKey;
use super::owners::{sql_database, sql_map};
use super::source::{PiData, PiEvent, PiPolicy, PiResolver};
use crate::users::sql::SqlDatabase;

/// The generated sections, each entry a TOML table, in privacyIDEA's order.
#[derive(Debug, Default, Clone)]
pub struct Sections {
    pub resolver: Vec<Table>,
    pub realm: Vec<Table>,
    pub policy: Vec<Table>,
    pub event: Vec<Table>,
}

impl Sections {
    pub const KINDS: [&'static str; 4] = ["resolver", "realm", "policy", "event"];

    pub fn list(&self, kind: &str) -> &[Table] {
        match kind {
            "resolver" => &self.resolver,
            "realm" => &self.realm,
            "policy" => &self.policy,
            _ => &self.event,
        }
    }

    pub fn list_mut(&mut self, kind: &str) -> &mut Vec<Table> {
        match kind {
            "resolver" => &mut self.resolver,
            "realm" => &mut self.realm,
            "policy" => &mut self.policy,
            _ => &mut self.event,
        }
    }

    /// As TOML text, `[[resolver]]` first.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for kind in Self::KINDS {
            let list = self.list(kind);
            if list.is_empty() {
                continue;
            }
            let mut doc = Table::new();
            doc.insert(
                kind.into(),
                Value::Array(list.iter().cloned().map(Value::Table).collect()),
            );
            out.push_str(&toml::to_string(&doc).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

/// Every section that has an otpgate form.
pub fn sections(data: &PiData, key: &EncKey, notes: &mut Notes) -> Sections {
    let mut s = Sections::default();
    for r in &data.resolvers {
        match resolver(r, key) {
            Ok(t) => s.resolver.push(t),
            Err(why) => notes.skip(format!("resolver {}", r.name), why),
        }
    }
    for r in &data.realms {
        let mut t = Table::new();
        t.insert("name".into(), r.name.to_ascii_lowercase().into());
        let resolvers = r
            .resolvers
            .iter()
            .map(|(name, priority)| match priority {
                Some(p) => {
                    let mut e = Table::new();
                    e.insert("name".into(), name.clone().into());
                    e.insert("priority".into(), (*p).into());
                    Value::Table(e)
                }
                None => name.clone().into(),
            })
            .collect();
        t.insert("resolvers".into(), Value::Array(resolvers));
        if r.default {
            t.insert("default".into(), true.into());
        }
        s.realm.push(t);
    }
    for p in &data.policies {
        match policy(p, notes) {
            Ok(t) => s.policy.push(t),
            Err(why) => notes.skip(format!("policy {}", p.row.text("name")), why),
        }
    }
    for e in &data.events {
        match event(e, notes) {
            Ok(t) => s.event.push(t),
            Err(why) => notes.skip(format!("event {}", e.row.text("name")), why),
        }
    }
    s
}

fn resolver(r: &PiResolver, key: &EncKey) -> Result<Table, String> {
    let get = |k: &str| r.config.get(k).map_or("", |v| v.0.as_str()).trim();
    let mut t = Table::new();
    t.insert("name".into(), r.name.clone().into());
    match r.rtype.to_ascii_lowercase().as_str() {
        "sqlresolver" => {
            let (database, password) = sql_database(r, key)?;
            t.insert("type".into(), "sql".into());
            let url = match database {
                SqlDatabase::Sqlite(p) => format!("sqlite:{}", p.display()),
                SqlDatabase::Postgres(u) | SqlDatabase::MySql(u) => u,
            };
            t.insert("database".into(), url.into());
            if let Some(pw) = password {
                t.insert("password".into(), pw.expose().clone().into());
            }
            t.insert("table".into(), get("Table").into());
            let attributes: Table = sql_map(r)?
                .into_iter()
                .filter(|(name, _)| name != "userid")
                .map(|(name, column)| (name, Value::String(column)))
                .collect();
            t.insert("attributes".into(), Value::Table(attributes));
            if !get("Where").is_empty() {
                t.insert("where".into(), get("Where").into());
            }
        }
        "ldapresolver" => {
            t.insert("type".into(), "ldap".into());
            let list = |v: &str| -> Value {
                Value::Array(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            };
            t.insert("servers".into(), list(get("LDAPURI")));
            t.insert("base_dn".into(), get("LDAPBASE").into());
            if !get("BINDDN").is_empty() {
                t.insert("bind_dn".into(), get("BINDDN").into());
            }
            if let Some((v, _)) = r.config.get("BINDPW").filter(|v| !v.0.is_empty()) {
                let pw = key
                    .config_password(v)
                    .map_err(|e| format!("its bind password: {e}"))?;
                t.insert("bind_password".into(), pw.expose().clone().into());
            }
            if !get("LOGINNAMEATTRIBUTE").is_empty() {
                t.insert("login_attributes".into(), list(get("LOGINNAMEATTRIBUTE")));
            }
            if !get("LDAPSEARCHFILTER").is_empty() {
                t.insert("filter".into(), get("LDAPSEARCHFILTER").into());
            }
            let userinfo = get("USERINFO");
            if !userinfo.is_empty() {
                let map: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(userinfo)
                        .map_err(|e| format!("its USERINFO is not JSON: {e}"))?;
                t.insert(
                    "attributes".into(),
                    Value::Table(
                        map.into_iter()
                            .map(|(k, v)| (k, Value::String(v)))
                            .collect(),
                    ),
                );
            }
            if matches!(get("START_TLS").to_ascii_lowercase().as_str(), "1" | "true") {
                t.insert("start_tls".into(), true.into());
            }
            if !get("TLS_CA_FILE").is_empty() {
                t.insert("ca_file".into(), get("TLS_CA_FILE").into());
            }
        }
        "passwdresolver" => {
            return Err(format!(
                "a passwdresolver ({}); give otpgate a file resolver in its own format",
                get("fileName")
            ));
        }
        other => return Err(format!("type {other} has no otpgate resolver")),
    }
    Ok(t)
}

/// A comma-separated privacyIDEA list.
fn items(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn strings(v: Vec<String>) -> Value {
    Value::Array(v.into_iter().map(Value::String).collect())
}

fn policy(p: &PiPolicy, notes: &mut Notes) -> Result<Table, String> {
    let r = &p.row;
    let scope = r.text("scope");
    if scope != "authentication" && scope != "authorization" {
        return Err(format!(
            "scope {scope}: otpgate's policies are of scope authentication or authorization"
        ));
    }
    // a restriction otpgate cannot express would widen the policy: leave it out instead
    for field in ["time", "adminrealm", "adminuser", "pinode", "user_agents"] {
        if !r.text(field).trim().is_empty() {
            return Err(format!(
                "it is restricted by {field} ({}), which otpgate's policies do not have",
                r.text(field)
            ));
        }
    }
    if p.conditions.iter().any(|c| c.flag("active")) {
        return Err("it has extended conditions, which otpgate's policies do not have".into());
    }
    if r.flag("check_all_resolvers") {
        return Err("it uses check_all_resolvers, which otpgate does not have".into());
    }
    let (users, realms, resolvers, clients) = (
        items(r.text("user")),
        items(r.text("realm")),
        items(r.text("resolver")),
        items(r.text("client")),
    );
    for (field, list) in [("user", &users), ("client", &clients), ("realm", &realms)] {
        if let Some(neg) = list
            .iter()
            .find(|v| v.starts_with('!') || v.starts_with('-'))
        {
            return Err(format!(
                "its {field} list excludes {neg}, which otpgate cannot express"
            ));
        }
    }
    let mut t = Table::new();
    t.insert("name".into(), r.text("name").into());
    t.insert("scope".into(), scope.into());
    if !r.flag("active") {
        t.insert("active".into(), false.into());
    }
    t.insert("priority".into(), r.int("priority").unwrap_or(1).into());
    for (field, list) in [
        (
            "realm",
            realms.iter().map(|x| x.to_ascii_lowercase()).collect(),
        ),
        ("resolver", resolvers),
        ("user", users),
        ("client", clients),
    ] {
        if !list.is_empty() {
            t.insert(field.into(), strings(list));
        }
    }
    let mut actions = Table::new();
    for a in items(r.text("action")) {
        match a.split_once('=') {
            Some((k, v)) => actions.insert(k.trim().into(), v.trim().into()),
            None if a.starts_with('!') => {
                notes.change(
                    &format!("policy {}", r.text("name")),
                    format!("action {a}: a negated action is left out"),
                );
                None
            }
            None => actions.insert(a, true.into()),
        };
    }
    t.insert("actions".into(), Value::Table(actions));
    Ok(t)
}

fn event(e: &PiEvent, notes: &mut Notes) -> Result<Table, String> {
    let r = &e.row;
    let what = format!("event {}", r.text("name"));
    let listens = items(r.text("event"));
    let (known, unknown): (Vec<String>, Vec<String>) = listens
        .into_iter()
        .partition(|n| crate::event::KNOWN_EVENTS.contains(&n.as_str()));
    if known.is_empty() {
        return Err(format!(
            "it listens to {}, which otpgate does not raise",
            unknown.join(", ")
        ));
    }
    if !unknown.is_empty() {
        notes.change(
            &what,
            format!(
                "{} left out: otpgate does not raise them",
                unknown.join(", ")
            ),
        );
    }
    let mut conditions = Table::new();
    for (k, (v, comparator)) in &e.conditions {
        if !matches!(comparator.as_str(), "" | "equal" | "equals") {
            return Err(format!(
                "condition {k} compares with {comparator}, which otpgate does not have"
            ));
        }
        conditions.insert(k.clone(), v.clone().into());
    }
    let mut t = Table::new();
    let name = match r.text("name") {
        "" => format!("privacyidea-{}", r.text("id")),
        n => n.to_owned(),
    };
    t.insert("name".into(), name.into());
    if !r.flag("active") {
        t.insert("active".into(), false.into());
    }
    t.insert("ordering".into(), r.int("ordering").unwrap_or(0).into());
    t.insert(
        "position".into(),
        r.opt("position").unwrap_or("post").into(),
    );
    t.insert("event".into(), strings(known));
    t.insert("handler".into(), r.text("handlermodule").into());
    t.insert("action".into(), r.text("action").into());
    if r.flag("abort_on_error") {
        t.insert("abort_on_error".into(), true.into());
    }
    t.insert("conditions".into(), Value::Table(conditions));
    let options: Table = e
        .options
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    t.insert("options".into(), Value::Table(options));
    Ok(t)
}
