//! privacyIDEA records a token's owner as (resolver, user id); otpgate as a login. The logins are
//! read from the users' own store the way privacyIDEA's resolver would: an SQL resolver's table
//! (its `Map` names the id and login columns), a passwd resolver's file, an LDAP resolver's
//! directory (the entry at the DN, or the one whose `UIDTYPE` attribute holds the id) through
//! otpgate's resolver of the same name.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::crypto::EncKey;
use super::source::{PiResolver, PiToken};
use super::tokens::OwnerLogins;
use crate::secret::Secret;
use crate::users::sql::statements::is_identifier;
use crate::users::sql::{SqlDatabase, TextDb};
use crate::users::{Directory, Resolver};

/// The login of every token owner, or why it cannot be found.
pub async fn look_up(
    tokens: &[PiToken],
    resolvers: &[PiResolver],
    key: &EncKey,
    directory: &Directory,
) -> OwnerLogins {
    let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in tokens.iter().filter_map(|t| t.owner.as_ref()) {
        wanted.entry(&o.resolver).or_default().push(&o.user_id);
    }
    let mut out = OwnerLogins::new();
    for (name, ids) in wanted {
        let Some(r) = resolvers.iter().find(|r| r.name == name) else {
            for id in ids {
                let why = format!("resolver {name} is not in the database");
                out.insert((name.to_owned(), id.to_owned()), Err(why));
            }
            continue;
        };
        if r.rtype.eq_ignore_ascii_case("ldapresolver") {
            for id in ids {
                let login = ldap_login(r, id, directory).await;
                out.insert((name.to_owned(), id.to_owned()), login);
            }
            continue;
        }
        let found = logins_of(r, key).await;
        for id in ids {
            let login = match &found {
                Ok(map) => map
                    .get(id)
                    .cloned()
                    .ok_or_else(|| format!("user id {id} is not in resolver {name}")),
                Err(e) => Err(e.clone()),
            };
            out.insert((name.to_owned(), id.to_owned()), login);
        }
    }
    out
}

/// One LDAP owner, asked of otpgate's resolver of that name (the imported one, or the
/// configuration's own).
async fn ldap_login(r: &PiResolver, id: &str, directory: &Directory) -> Result<String, String> {
    let Some(Resolver::Ldap(ldap)) = directory.resolver(&r.name) else {
        return Err(format!(
            "resolver {} is not an LDAP resolver in the configuration",
            r.name
        ));
    };
    let uid_type = r.config.get("UIDTYPE").map_or("DN", |v| v.0.trim());
    let found = if uid_type.is_empty() || uid_type.eq_ignore_ascii_case("DN") {
        ldap.login_of_dn(id).await
    } else {
        ldap.login_of_attribute(uid_type, id).await
    };
    match found {
        Ok(Some(login)) => Ok(login),
        Ok(None) => Err(format!("user {id} is not in resolver {}", r.name)),
        Err(e) => Err(e.to_string()),
    }
}

/// user id → login, for every user of the resolver.
async fn logins_of(r: &PiResolver, key: &EncKey) -> Result<HashMap<String, String>, String> {
    match r.rtype.to_ascii_lowercase().as_str() {
        "sqlresolver" => sql(r, key).await,
        "passwdresolver" => {
            let file = r
                .config
                .get("fileName")
                .map_or("/etc/passwd", |v| v.0.as_str());
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("resolver {}: {file}: {e}", r.name))?;
            Ok(passwd(&text))
        }
        other => Err(format!(
            "resolver {} is a {other}; otpgate looks owners up in SQL, passwd and LDAP \
             resolvers",
            r.name
        )),
    }
}

fn passwd(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && !f[0].is_empty()).then(|| (f[2].to_owned(), f[0].to_owned()))
        })
        .collect()
}

/// The SQL resolver's settings as an address otpgate opens.
pub fn sql_database(
    r: &PiResolver,
    key: &EncKey,
) -> Result<(SqlDatabase, Option<Secret<String>>), String> {
    let get = |k: &str| r.config.get(k).map_or("", |v| v.0.as_str()).trim();
    let driver = get("Driver").to_ascii_lowercase();
    let password = match r.config.get("Password") {
        Some((v, _)) if !v.is_empty() => Some(
            key.config_password(v)
                .map_err(|e| format!("resolver {}: its password: {e}", r.name))?,
        ),
        _ => None,
    };
    let host = match get("Port") {
        "" => get("Server").to_owned(),
        port => format!("{}:{port}", get("Server")),
    };
    let user = get("User");
    let db = get("Database");
    let database = if driver.starts_with("sqlite") {
        SqlDatabase::Sqlite(db.into())
    } else if driver.starts_with("postgres") {
        SqlDatabase::Postgres(format!("postgres://{user}@{host}/{db}"))
    } else if driver.starts_with("mysql") || driver.starts_with("mariadb") {
        SqlDatabase::MySql(format!("mysql://{user}@{host}/{db}"))
    } else {
        return Err(format!(
            "resolver {}: driver {driver:?} is not supported",
            r.name
        ));
    };
    Ok((database, password))
}

/// The SQL resolver's column mapping (`Map`: privacyIDEA name → column).
pub fn sql_map(r: &PiResolver) -> Result<BTreeMap<String, String>, String> {
    let map = r.config.get("Map").map_or("{}", |v| v.0.as_str());
    serde_json::from_str(map).map_err(|e| format!("resolver {}: its Map: {e}", r.name))
}

async fn sql(r: &PiResolver, key: &EncKey) -> Result<HashMap<String, String>, String> {
    let (database, password) = sql_database(r, key)?;
    let map = sql_map(r)?;
    let table = r.config.get("Table").map_or("", |v| v.0.as_str());
    let (Some(id), Some(login)) = (map.get("userid"), map.get("username")) else {
        return Err(format!(
            "resolver {}: its Map names no userid or username",
            r.name
        ));
    };
    for name in [table, id, login] {
        if !is_identifier(name) {
            return Err(format!("resolver {}: {name:?} is not an SQL name", r.name));
        }
    }
    let timeout = Duration::from_secs(30);
    let db = TextDb::open(&database, password.as_ref(), 1, timeout)
        .map_err(|e| format!("resolver {}: {e}", r.name))?;
    let sql = format!(
        "SELECT {} AS id, {} AS login FROM {}",
        db.quote(id),
        db.quote(login),
        db.quote(table)
    );
    let rows = tokio::time::timeout(timeout, db.rows(sql, None))
        .await
        .map_err(|_| format!("resolver {}: no answer within {timeout:?}", r.name))?
        .map_err(|e| format!("resolver {}: {e}", r.name))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let get = |k: &str| {
                row.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            Some((get("id")?, get("login")?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_files_map_uids() {
        let m = passwd(
            "# users\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:$6$h:1001:1001::/:\nbad\n",
        );
        assert_eq!(m.get("1000").map(String::as_str), Some("alice"));
        assert_eq!(m.get("1001").map(String::as_str), Some("bob"));
        assert_eq!(m.len(), 2);
    }
}
