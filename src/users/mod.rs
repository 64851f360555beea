//! Realms and user resolvers: find a user, read attributes and groups, check a password.
//!
//! A realm is an ordered list of resolvers; the first resolver that knows a login owns the
//! user. Login splitting follows privacyIDEA (spec §1.4): `user@realm` only when the suffix is
//! an existing realm (or one of its aliases) and `splitAtSign` is on, `realm\user` always,
//! else the default realm.
//!
//! Resolvers: `file` (a TOML or CSV file), `ldap` (OpenLDAP, Active Directory) and `sql`
//! (SQLite, PostgreSQL, MariaDB/MySQL). A resolver that cannot answer is an error
//! ([`DirectoryError`]), never an unknown user.

pub mod cache;
pub mod error;
pub mod file;
pub mod hash;
pub mod ldap;
pub mod sql;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::crypto::PinHasher;
use crate::secret::Secret;
pub use error::{DirectoryError, ErrorKind};
pub use file::{FileResolver, UserFileError};
pub use ldap::LdapResolver;
pub use sql::SqlResolver;

/// One user as a resolver knows it. Compact: a directory may hold 100,000 of these, and most
/// have nothing but a login (the details are boxed and optional).
#[derive(Debug, Clone, Default)]
pub struct UserRecord {
    pub login: Box<str>,
    pub password_hash: Option<Secret<String>>,
    details: Option<Box<UserDetails>>,
}

/// The optional attributes of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDetails {
    pub givenname: String,
    pub surname: String,
    pub email: String,
    pub mobile: String,
    pub phone: String,
    /// Group names (file, SQL) or DNs (LDAP).
    pub groups: Vec<String>,
    /// Free attributes; a directory's multi-valued attributes keep every value.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The entry's DN (LDAP): what a password bind binds as.
    pub dn: String,
    /// The directory disabled the account (Active Directory's `userAccountControl`).
    pub disabled: bool,
}

impl UserRecord {
    pub fn new(login: &str, password_hash: Option<Secret<String>>, details: UserDetails) -> Self {
        Self {
            login: login.into(),
            password_hash,
            details: (details != UserDetails::default()).then(|| Box::new(details)),
        }
    }

    fn details(&self) -> Option<&UserDetails> {
        self.details.as_deref()
    }

    pub fn givenname(&self) -> &str {
        self.details().map_or("", |d| d.givenname.as_str())
    }

    pub fn surname(&self) -> &str {
        self.details().map_or("", |d| d.surname.as_str())
    }

    pub fn groups(&self) -> &[String] {
        self.details().map_or(&[], |d| d.groups.as_slice())
    }

    pub fn dn(&self) -> Option<&str> {
        self.details().map(|d| d.dn.as_str())
    }

    pub fn disabled(&self) -> bool {
        self.details().is_some_and(|d| d.disabled)
    }

    /// Is the user in `group`? A group is named by its whole DN or its CN (the value of the
    /// DN's first part), without regard to case.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups().iter().any(|g| group_matches(g, group))
    }

    /// The record with these attributes over the directory's (custom user attributes).
    pub fn with_attributes(&self, extra: BTreeMap<String, String>) -> Self {
        let mut details = self.details().cloned().unwrap_or_default();
        for (k, v) in extra {
            match k.as_str() {
                "givenname" => details.givenname = v,
                "surname" => details.surname = v,
                "email" => details.email = v,
                "mobile" => details.mobile = v,
                "phone" => details.phone = v,
                _ => {
                    details.attributes.insert(k, vec![v]);
                }
            }
        }
        Self {
            login: self.login.clone(),
            password_hash: self.password_hash.clone(),
            details: Some(Box::new(details)),
        }
    }

    /// The free attributes and their values.
    pub fn free_attributes(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.details().into_iter().flat_map(|d| d.attributes.iter())
    }

    /// Every value of a free attribute (several for a directory's multi-valued ones).
    pub fn attribute_values(&self, name: &str) -> &[String] {
        self.details()
            .and_then(|d| d.attributes.get(name))
            .map_or(&[], Vec::as_slice)
    }

    /// An attribute by privacyIDEA name (`username`, `givenname`, `surname`, `email`, `mobile`,
    /// `phone`, `groups`) or a free attribute.
    pub fn attribute(&self, name: &str) -> Option<String> {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        if matches!(name, "username" | "login") {
            return Some(self.login.to_string());
        }
        let d = self.details()?;
        match name {
            "givenname" => non_empty(&d.givenname),
            "surname" => non_empty(&d.surname),
            "email" => non_empty(&d.email),
            "mobile" => non_empty(&d.mobile),
            "phone" => non_empty(&d.phone),
            "groups" => (!d.groups.is_empty()).then(|| d.groups.join(",")),
            other => d
                .attributes
                .get(other)
                .filter(|v| !v.is_empty())
                .map(|v| v.join(",")),
        }
    }
}

/// `have` (a group name or DN) names `want` (a name, a CN or a DN).
pub fn group_matches(have: &str, want: &str) -> bool {
    have.eq_ignore_ascii_case(want) || short_name(have).eq_ignore_ascii_case(want)
}

/// A group's short name: the value of the first part of a DN (`cn=vpn,ou=groups,…` → `vpn`),
/// or the name itself.
pub fn short_name(group: &str) -> &str {
    match group.split_once('=') {
        Some((_, rest)) if group.contains(',') => rest.split(',').next().unwrap_or(rest).trim(),
        _ => group,
    }
}

/// A user found in a realm.
#[derive(Debug, Clone)]
pub struct ResolvedUser {
    pub login: String,
    pub realm: String,
    pub resolver: String,
    pub record: Arc<UserRecord>,
}

/// A user resolver. An enum rather than a trait object: every kind is known at build time.
#[derive(Debug)]
pub enum Resolver {
    File(FileResolver),
    Ldap(Box<LdapResolver>),
    Sql(Box<SqlResolver>),
}

impl Resolver {
    pub fn name(&self) -> &str {
        match self {
            Self::File(f) => f.name(),
            Self::Ldap(l) => l.name(),
            Self::Sql(q) => q.name(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Ldap(_) => "ldap",
            Self::Sql(_) => "sql",
        }
    }

    pub async fn get(&self, login: &str) -> Result<Option<Arc<UserRecord>>, DirectoryError> {
        match self {
            Self::File(f) => Ok(f.get(login)),
            Self::Ldap(l) => l.get(login).await,
            Self::Sql(q) => q.get(login).await,
        }
    }

    pub async fn users(&self) -> Result<Vec<Arc<UserRecord>>, DirectoryError> {
        match self {
            Self::File(f) => Ok(f.users()),
            Self::Ldap(l) => l.users().await,
            Self::Sql(q) => q.users().await,
        }
    }

    /// The login of the entry at `dn`: only an LDAP resolver has DNs.
    pub async fn login_of_dn(&self, dn: &str) -> Result<Option<String>, DirectoryError> {
        match self {
            Self::Ldap(l) => l.login_of_dn(dn).await,
            Self::File(_) | Self::Sql(_) => Ok(None),
        }
    }

    /// The user's password: a bind for LDAP, the stored hash for the others.
    async fn check_password(
        &self,
        record: &UserRecord,
        password: &str,
        hasher: &PinHasher,
    ) -> Result<bool, DirectoryError> {
        if password.is_empty() {
            return Ok(false);
        }
        match self {
            Self::Ldap(l) => l.check_password(record, password).await,
            Self::File(_) | Self::Sql(_) => {
                let Some(stored) = record.password_hash.as_ref() else {
                    return Ok(false);
                };
                Ok(check_hash(password, stored, hasher).await)
            }
        }
    }
}

/// A password against a stored hash: argon2 on the PIN hasher's bounded workers, the other
/// schemes on a blocking thread.
async fn check_hash(password: &str, stored: &Secret<String>, hasher: &PinHasher) -> bool {
    match hash::Scheme::of(stored.expose()) {
        Some(hash::Scheme::Argon2) => hasher
            .verify(password, stored.expose())
            .await
            .unwrap_or(false),
        Some(_) => {
            let (password, stored) = (Secret::new(password.to_owned()), stored.clone());
            tokio::task::spawn_blocking(move || {
                hash::verify_blocking(password.expose(), stored.expose())
            })
            .await
            .unwrap_or(false)
        }
        None => false,
    }
}

/// A realm: a name and its resolvers in priority order.
#[derive(Debug, Clone)]
pub struct Realm {
    pub name: String,
    pub resolvers: Vec<String>,
    pub default: bool,
    /// Further names logins may carry for this realm: a Windows domain (`CORP\\alice`), a
    /// UPN suffix (`alice@corp.example`).
    pub aliases: Vec<String>,
}

/// All realms and resolvers of one configuration.
#[derive(Debug, Default)]
pub struct Directory {
    realms: Vec<Realm>,
    resolvers: HashMap<String, Resolver>,
    split_at_sign: bool,
}

impl Directory {
    pub fn new(realms: Vec<Realm>, resolvers: Vec<Resolver>, split_at_sign: bool) -> Self {
        Self {
            realms,
            resolvers: resolvers
                .into_iter()
                .map(|r| (r.name().to_owned(), r))
                .collect(),
            split_at_sign,
        }
    }

    pub fn realms(&self) -> &[Realm] {
        &self.realms
    }

    pub fn default_realm(&self) -> Option<&str> {
        self.realms
            .iter()
            .find(|r| r.default)
            .map(|r| r.name.as_str())
    }

    /// Realm names are case-insensitive (privacyIDEA stores them lower-case).
    pub fn realm(&self, name: &str) -> Option<&Realm> {
        self.realms
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// A realm by its name or one of its aliases.
    fn realm_or_alias(&self, name: &str) -> Option<&Realm> {
        self.realm(name).or_else(|| {
            self.realms
                .iter()
                .find(|r| r.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
        })
    }

    pub fn resolver(&self, name: &str) -> Option<&Resolver> {
        self.resolvers.get(name)
    }

    /// Split a `user` parameter into (login, realm) and apply an explicit `realm` parameter and
    /// the default realm. The realm comes back lower-case; it may name no realm.
    pub fn split_user(&self, user: &str, realm_param: Option<&str>) -> (String, String) {
        self.split_user_or(user, realm_param, None)
    }

    /// [`Directory::split_user`] with a fallback realm tried before the default realm (a RADIUS
    /// client's configured realm).
    pub fn split_user_or(
        &self,
        user: &str,
        realm_param: Option<&str>,
        fallback: Option<&str>,
    ) -> (String, String) {
        let user = user.trim();
        let (mut login, mut realm) = (user.to_owned(), String::new());
        if let Some((name, suffix)) = user.rsplit_once('@') {
            if self.split_at_sign
                && let Some(r) = self.realm_or_alias(suffix)
            {
                login = name.to_owned();
                realm = r.name.clone();
            }
        } else if let Some((prefix, name)) = user.rsplit_once('\\') {
            login = name.to_owned();
            realm = self
                .realm_or_alias(prefix)
                .map_or_else(|| prefix.to_owned(), |r| r.name.clone());
        }
        if let Some(r) = realm_param.map(str::trim).filter(|r| !r.is_empty()) {
            realm = r.to_owned();
        }
        if realm.is_empty() && !login.is_empty() {
            realm = fallback
                .filter(|f| !f.is_empty())
                .or_else(|| self.default_realm())
                .unwrap_or_default()
                .to_owned();
        }
        (login, realm.to_ascii_lowercase())
    }

    /// Find a login in a realm: the realm's resolvers in order, the first that knows the
    /// login owns the user. A resolver that cannot answer ends the search with its error: a
    /// later resolver must not stand in for a directory that is down.
    pub async fn find(
        &self,
        login: &str,
        realm: &str,
    ) -> Result<Option<ResolvedUser>, DirectoryError> {
        let Some(realm) = self.realm(realm) else {
            return Ok(None);
        };
        for name in &realm.resolvers {
            let Some(resolver) = self.resolvers.get(name) else {
                continue;
            };
            if let Some(record) = resolver.get(login).await? {
                return Ok(Some(ResolvedUser {
                    login: record.login.to_string(),
                    realm: realm.name.clone(),
                    resolver: name.clone(),
                    record,
                }));
            }
        }
        Ok(None)
    }

    /// The login whose directory entry is `dn`, asking the realm's resolvers in order.
    pub async fn login_of_dn(
        &self,
        realm: &str,
        dn: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let Some(realm) = self.realm(realm) else {
            return Ok(None);
        };
        for name in &realm.resolvers {
            if let Some(resolver) = self.resolvers.get(name)
                && let Some(login) = resolver.login_of_dn(dn).await?
            {
                return Ok(Some(login));
            }
        }
        Ok(None)
    }

    /// [`Directory::find`] where a resolver's failure counts as "not known here", logged:
    /// for event conditions and notifications, which report on a request already decided.
    pub async fn find_or_log(&self, login: &str, realm: &str) -> Option<ResolvedUser> {
        match self.find(login, realm).await {
            Ok(found) => found,
            Err(e) => {
                // the same for every lookup while the directory is down: a line per 10 s
                static FAILED: crate::log_limit::Repeated =
                    crate::log_limit::Repeated::new(std::time::Duration::from_secs(10));
                if let Some(held_back) = FAILED.tick() {
                    tracing::warn!(target: "otpgate::users", error = %e, login, realm, held_back, "user lookup failed");
                }
                None
            }
        }
    }

    /// Every user of a realm (notification "To admin realm").
    pub async fn users_of_realm(&self, realm: &str) -> Result<Vec<ResolvedUser>, DirectoryError> {
        let Some(r) = self.realm(realm) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<ResolvedUser> = Vec::new();
        for name in &r.resolvers {
            let Some(resolver) = self.resolvers.get(name) else {
                continue;
            };
            for record in resolver.users().await? {
                if out.iter().all(|u| *u.login != *record.login) {
                    out.push(ResolvedUser {
                        login: record.login.to_string(),
                        realm: r.name.clone(),
                        resolver: name.clone(),
                        record,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Check a user-store password (`otppin=userstore`, `passthru`): a bind for LDAP users,
    /// the stored hash for the others. An empty password never matches and never reaches a
    /// directory.
    pub async fn check_password(
        &self,
        user: &ResolvedUser,
        password: &str,
        hasher: &PinHasher,
    ) -> Result<bool, DirectoryError> {
        let Some(resolver) = self.resolvers.get(&user.resolver) else {
            return Ok(false);
        };
        resolver
            .check_password(&user.record, password, hasher)
            .await
    }

    /// The resolvers, for the admin CLI.
    pub fn resolvers(&self) -> impl Iterator<Item = &Resolver> {
        self.resolvers.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(split: bool) -> Directory {
        let alice = Arc::new(UserRecord::new(
            "alice",
            None,
            UserDetails {
                givenname: "Alice".into(),
                ..Default::default()
            },
        ));
        Directory::new(
            vec![
                Realm {
                    name: "realm1".into(),
                    resolvers: vec!["r1".into()],
                    default: true,
                    aliases: vec!["CORP".into(), "corp.example".into()],
                },
                Realm {
                    name: "realm2".into(),
                    resolvers: vec!["r1".into()],
                    default: false,
                    aliases: vec![],
                },
            ],
            vec![Resolver::File(
                FileResolver::from_users("r1", [alice]).unwrap(),
            )],
            split,
        )
    }

    #[test]
    fn split_like_privacyidea() {
        let d = dir(true);
        assert_eq!(
            d.split_user("alice", None),
            ("alice".into(), "realm1".into())
        );
        assert_eq!(
            d.split_user("alice@realm2", None),
            ("alice".into(), "realm2".into())
        );
        assert_eq!(
            d.split_user("alice@REALM2", None),
            ("alice".into(), "realm2".into())
        );
        // unknown suffix: the whole string is the login
        assert_eq!(
            d.split_user("alice@example.com", None),
            ("alice@example.com".into(), "realm1".into())
        );
        assert_eq!(
            d.split_user("realm2\\alice", None),
            ("alice".into(), "realm2".into())
        );
        // an explicit realm parameter wins
        assert_eq!(
            d.split_user("alice@realm2", Some("realm1")),
            ("alice".into(), "realm1".into())
        );
        assert_eq!(
            d.split_user_or("alice", None, Some("realm2")),
            ("alice".into(), "realm2".into())
        );
        assert_eq!(
            d.split_user_or("alice@realm1", None, Some("realm2")),
            ("alice".into(), "realm1".into())
        );
        // aliases: a Windows domain and a UPN suffix name realm1
        assert_eq!(
            d.split_user("corp\\alice", None),
            ("alice".into(), "realm1".into())
        );
        assert_eq!(
            d.split_user("alice@Corp.Example", None),
            ("alice".into(), "realm1".into())
        );
        let off = dir(false);
        assert_eq!(
            off.split_user("alice@realm2", None),
            ("alice@realm2".into(), "realm1".into())
        );
    }

    #[tokio::test]
    async fn find_walks_the_realm_resolvers() {
        let d = dir(true);
        let u = d.find("alice", "realm2").await.unwrap().unwrap();
        assert_eq!((u.realm.as_str(), u.resolver.as_str()), ("realm2", "r1"));
        assert_eq!(u.record.attribute("givenname").as_deref(), Some("Alice"));
        assert_eq!(u.record.attribute("nonexistent"), None);
        assert!(d.find("bob", "realm1").await.unwrap().is_none());
        assert!(d.find("alice", "nope").await.unwrap().is_none());
    }

    #[test]
    fn groups_by_name_cn_or_dn() {
        let u = UserRecord::new(
            "alice",
            None,
            UserDetails {
                groups: vec![
                    "cn=VPN Users,ou=groups,dc=example,dc=org".into(),
                    "admins".into(),
                ],
                ..Default::default()
            },
        );
        assert!(u.in_group("vpn users"));
        assert!(u.in_group("CN=vpn users,ou=groups,dc=example,dc=org"));
        assert!(u.in_group("admins"));
        assert!(!u.in_group("groups"));
        assert!(!u.in_group("vpn"));
    }
}
