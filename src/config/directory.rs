//! `[[resolver]]` and `[[realm]]`, validated into the [`Directory`]: every problem with its key.

use std::path::Path;
use std::time::Duration;

use super::outbound::{seconds, secret, unique};
use super::raw::{RawConfig, RawRealmResolver, RawResolver};
use super::validate::{Issues, resolve_path};
use crate::secret::Secret;
use crate::users::ldap::settings::{
    ActiveDirectory, GroupSearch, Groups, LdapSettings, Limits, Nesting, SearchScope, Timeouts,
};
use crate::users::ldap::tls;
use crate::users::sql::statements::is_identifier;
use crate::users::sql::{SqlDatabase, SqlLookup, SqlSettings};
use crate::users::{Directory, FileResolver, LdapResolver, Realm, Resolver, SqlResolver};

pub(super) fn directory(
    raw: &RawConfig,
    base: &Path,
    split_at_sign: bool,
    issues: &mut Issues,
) -> Directory {
    let mut resolvers = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, r) in raw.resolvers.iter().enumerate() {
        let key = format!("resolver[{i}]");
        let before = names.len();
        unique(
            &mut names,
            &r.name,
            format!("{key}.name"),
            "resolver",
            issues,
        );
        if names.len() == before {
            continue;
        }
        let built = match r.kind.as_str() {
            "file" => file(r, &key, base, issues),
            "ldap" => ldap(r, &key, base, issues)
                .map(|(s, tls)| Resolver::Ldap(Box::new(LdapResolver::new(&r.name, s, tls)))),
            "sql" => sql(r, &key, base, issues).and_then(|s| {
                SqlResolver::new(&r.name, s)
                    .map(|q| Resolver::Sql(Box::new(q)))
                    .map_err(|e| issues.push(format!("{key}.database"), e))
                    .ok()
            }),
            other => {
                issues.push(
                    format!("{key}.type"),
                    format!("unknown resolver type {other:?} (known: file, ldap, sql)"),
                );
                None
            }
        };
        resolvers.extend(built);
    }
    let realms = realms(raw, &names, issues);
    Directory::new(realms, resolvers, split_at_sign)
}

fn file(r: &RawResolver, key: &str, base: &Path, issues: &mut Issues) -> Option<Resolver> {
    let Some(p) = &r.path else {
        issues.push(format!("{key}.path"), "a file resolver needs a path");
        return None;
    };
    FileResolver::load(&r.name, &resolve_path(base, p))
        .map(Resolver::File)
        .map_err(|e| issues.push(format!("{key}.path"), e.to_string()))
        .ok()
}

fn cache(r: &RawResolver, key: &str, issues: &mut Issues) -> (Duration, usize) {
    let ttl = match r.cache_ttl {
        Some(0.0) => Duration::ZERO,
        other => seconds(other, 120.0, &format!("{key}.cache_ttl"), issues),
    };
    (ttl, r.cache_size.unwrap_or(10_000))
}

type Tls = Option<std::sync::Arc<rustls::ClientConfig>>;

fn ldap(
    r: &RawResolver,
    key: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<(LdapSettings, Tls)> {
    let n = issues.len();
    if r.servers.is_empty() {
        issues.push(
            format!("{key}.servers"),
            "an ldap resolver needs at least one server URL",
        );
    }
    for (j, url) in r.servers.iter().enumerate() {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://")) {
            issues.push(
                format!("{key}.servers[{j}]"),
                format!("{url:?} is not an ldap:// or ldaps:// URL"),
            );
        } else if r.start_tls == Some(true) && lower.starts_with("ldaps://") {
            issues.push(
                format!("{key}.servers[{j}]"),
                "start_tls is for ldap:// servers; an ldaps:// server speaks TLS from the start",
            );
        }
    }
    let base_dn = r.base_dn.clone().unwrap_or_default();
    if base_dn.trim().is_empty() {
        issues.push(format!("{key}.base_dn"), "an ldap resolver needs a base_dn");
    }
    let scope = match r.scope.as_deref().unwrap_or("sub") {
        "sub" | "subtree" => SearchScope::Sub,
        "one" | "onelevel" => SearchScope::One,
        "base" => SearchScope::Base,
        other => {
            issues.push(
                format!("{key}.scope"),
                format!("{other:?} is not a scope (sub, one, base)"),
            );
            SearchScope::Sub
        }
    };
    let ad = r.active_directory.unwrap_or(false);
    let login_attributes = r.login_attributes.clone().unwrap_or_else(|| {
        if ad {
            vec!["sAMAccountName".into(), "userPrincipalName".into()]
        } else {
            vec!["uid".into()]
        }
    });
    if login_attributes.is_empty() {
        issues.push(
            format!("{key}.login_attributes"),
            "name at least one attribute",
        );
    }
    let password = secret(
        &r.bind_password,
        &r.bind_password_file,
        &format!("{key}.bind_password"),
        base,
        issues,
    );
    if password.is_some() && r.bind_dn.is_none() {
        issues.push(format!("{key}.bind_dn"), "a bind password needs a bind_dn");
    }
    let nested = match &r.nested_groups {
        None | Some(toml::Value::Boolean(false)) => Nesting::Off,
        Some(toml::Value::Boolean(true)) => Nesting::Expand,
        Some(toml::Value::String(s)) if s == "expand" => Nesting::Expand,
        Some(toml::Value::String(s)) if s == "in_chain" => Nesting::InChain,
        Some(other) => {
            issues.push(
                format!("{key}.nested_groups"),
                format!("{other} is not false, true, \"expand\" or \"in_chain\""),
            );
            Nesting::Off
        }
    };
    let default_group_filter = if ad {
        "(objectClass=group)"
    } else {
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    };
    // a group search when asked for, and for nested groups of memberOf groups
    let search = (r.group_base_dn.is_some()
        || r.group_member_attribute.is_some()
        || r.group_filter.is_some()
        || nested != Nesting::Off)
        .then(|| GroupSearch {
            base_dn: r.group_base_dn.clone().unwrap_or_else(|| base_dn.clone()),
            filter: r
                .group_filter
                .clone()
                .unwrap_or_else(|| default_group_filter.to_owned()),
            member_attribute: r
                .group_member_attribute
                .clone()
                .unwrap_or_else(|| "member".into()),
        });
    if nested == Nesting::InChain && !ad {
        issues.push(
            format!("{key}.nested_groups"),
            "\"in_chain\" is an Active Directory matching rule; other servers take true (expand)",
        );
    }
    let user_attribute = r.groups_attribute.clone().or_else(|| {
        (ad && r.group_base_dn.is_none() && r.group_member_attribute.is_none())
            .then(|| "memberOf".into())
    });
    let ca_file = r.ca_file.as_ref().map(|f| resolve_path(base, f));
    let tls = match &ca_file {
        Some(path) => match tls::client_config(path) {
            Ok(c) => Some(c),
            Err(e) => {
                issues.push(format!("{key}.ca_file"), e);
                None
            }
        },
        None => None,
    };
    let (cache_ttl, cache_size) = cache(r, key, issues);
    let settings = LdapSettings {
        servers: r.servers.clone(),
        start_tls: r.start_tls.unwrap_or(false),
        ca_file,
        verify_certificate: r.verify_certificate.unwrap_or(true),
        bind_dn: r.bind_dn.clone(),
        bind_password: password.map(Secret::new),
        base_dn,
        scope,
        filter: r.filter.clone().unwrap_or_default(),
        login_attributes,
        attributes: r.attributes.clone(),
        groups: Groups {
            user_attribute,
            search,
            nested,
        },
        active_directory: ActiveDirectory {
            enabled: ad,
            allow_disabled: r.allow_disabled.unwrap_or(false),
        },
        limits: Limits {
            page_size: r.page_size.unwrap_or(500).max(1),
            size_limit: r.size_limit.unwrap_or(0).max(0),
            time_limit: r.time_limit.unwrap_or(0).max(0),
        },
        timeouts: Timeouts {
            connect: seconds(
                r.connect_timeout,
                1.0,
                &format!("{key}.connect_timeout"),
                issues,
            ),
            operation: seconds(r.timeout, 2.0, &format!("{key}.timeout"), issues),
            idle: seconds(
                r.idle_timeout,
                300.0,
                &format!("{key}.idle_timeout"),
                issues,
            ),
        },
        pool_size: r.pool_size.unwrap_or(2).clamp(1, 64) as usize,
        cache_ttl,
        cache_size,
    };
    (issues.len() == n).then_some((settings, tls))
}

fn sql(r: &RawResolver, key: &str, base: &Path, issues: &mut Issues) -> Option<SqlSettings> {
    let n = issues.len();
    let database = match r.database.as_deref() {
        None => {
            issues.push(
                format!("{key}.database"),
                "an sql resolver needs a database",
            );
            None
        }
        Some(d) => SqlDatabase::parse(d, base)
            .map_err(|e| issues.push(format!("{key}.database"), e))
            .ok(),
    };
    let lookup = match (&r.query, &r.table) {
        (Some(_), Some(_)) => {
            issues.push(format!("{key}.query"), "give a table or a query, not both");
            None
        }
        (Some(q), None) => {
            if q.matches('?').count() != 1 {
                issues.push(
                    format!("{key}.query"),
                    "the query takes exactly one parameter, `?`, the login",
                );
            }
            Some(SqlLookup::Query {
                user: q.clone(),
                list: r.list_query.clone(),
            })
        }
        (None, Some(table)) => {
            if !is_identifier(table) {
                issues.push(
                    format!("{key}.table"),
                    format!("{table:?} is not a table name"),
                );
            }
            let mut columns = r.attributes.clone();
            for (name, column) in &columns {
                if !is_identifier(column) {
                    issues.push(
                        format!("{key}.attributes.{name}"),
                        format!("{column:?} is not a column name"),
                    );
                }
            }
            columns
                .entry("username".into())
                .or_insert_with(|| "username".into());
            Some(SqlLookup::Table {
                table: table.clone(),
                columns,
                filter: r.where_.clone(),
            })
        }
        (None, None) => {
            issues.push(
                format!("{key}.table"),
                "an sql resolver needs a table or a query",
            );
            None
        }
    };
    let password = secret(
        &r.password,
        &r.password_file,
        &format!("{key}.password"),
        base,
        issues,
    );
    let (cache_ttl, cache_size) = cache(r, key, issues);
    let settings = SqlSettings {
        database: database?,
        password: password.map(Secret::new),
        lookup: lookup?,
        timeout: seconds(r.timeout, 2.0, &format!("{key}.timeout"), issues),
        pool_size: r.pool_size.unwrap_or(4).clamp(1, 64),
        cache_ttl,
        cache_size,
    };
    (issues.len() == n).then_some(settings)
}

fn realms(raw: &RawConfig, names: &[String], issues: &mut Issues) -> Vec<Realm> {
    let mut realms: Vec<Realm> = Vec::new();
    for (i, r) in raw.realms.iter().enumerate() {
        let key = format!("realm[{i}]");
        let name = r.name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains(['@', '\\', ',']) {
            issues.push(
                format!("{key}.name"),
                format!("{:?} is not a valid realm name", r.name),
            );
            continue;
        }
        if realms.iter().any(|x| x.name == name) {
            issues.push(
                format!("{key}.name"),
                format!("realm {name:?} is defined twice (realm names ignore case)"),
            );
            continue;
        }
        if r.resolvers.is_empty() {
            issues.push(
                format!("{key}.resolvers"),
                "a realm needs at least one resolver",
            );
        }
        // privacyIDEA's priority: lower first; names without one keep their order, after
        let mut ranked: Vec<(i64, usize, String)> = Vec::new();
        for (j, res) in r.resolvers.iter().enumerate() {
            let (res, priority) = match res {
                RawRealmResolver::Name(n) => (n, i64::MAX),
                RawRealmResolver::Ranked { name, priority } => (name, *priority),
            };
            if !names.contains(res) {
                issues.push(
                    format!("{key}.resolvers[{j}]"),
                    format!("realm {name:?} names unknown resolver {res:?}"),
                );
            }
            ranked.push((priority, j, res.clone()));
        }
        ranked.sort();
        for (j, alias) in r.aliases.iter().enumerate() {
            let clash = realms.iter().any(|x| {
                x.name.eq_ignore_ascii_case(alias)
                    || x.aliases.iter().any(|a| a.eq_ignore_ascii_case(alias))
            });
            if alias.trim().is_empty() || clash {
                issues.push(
                    format!("{key}.aliases[{j}]"),
                    format!("{alias:?} is empty or names another realm already"),
                );
            }
        }
        realms.push(Realm {
            name,
            resolvers: ranked.into_iter().map(|(_, _, n)| n).collect(),
            default: r.default,
            aliases: r.aliases.clone(),
        });
    }
    match realms.iter().filter(|r| r.default).count() {
        0 if realms.len() == 1 => {
            if let Some(only) = realms.first_mut() {
                only.default = true;
            }
        }
        0 if !realms.is_empty() => issues.push(
            "realm",
            "several realms but none is marked `default = true`",
        ),
        n if n > 1 => issues.push("realm", "more than one realm is marked `default = true`"),
        _ => {}
    }
    realms
}
