//! Realms and user resolvers: find a user, read attributes and groups, check a password.
//!
//! A realm is an ordered list of resolvers; the first resolver that knows a login owns the
//! user. Login splitting follows privacyIDEA (spec §1.4): `user@realm` only when the suffix is
//! an existing realm and `splitAtSign` is on, `realm\user` always, else the default realm.

pub mod file;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::crypto::PinHasher;
use crate::secret::Secret;
pub use file::{FileResolver, UserFileError};

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
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
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
            other => d.attributes.get(other).cloned(),
        }
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
}

impl Resolver {
    pub fn name(&self) -> &str {
        match self {
            Self::File(f) => f.name(),
        }
    }

    pub fn get(&self, login: &str) -> Option<Arc<UserRecord>> {
        match self {
            Self::File(f) => f.get(login),
        }
    }

    pub fn users(&self) -> Vec<Arc<UserRecord>> {
        match self {
            Self::File(f) => f.users(),
        }
    }
}

/// A realm: a name and its resolvers in priority order.
#[derive(Debug, Clone)]
pub struct Realm {
    pub name: String,
    pub resolvers: Vec<String>,
    pub default: bool,
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
            if self.split_at_sign && self.realm(suffix).is_some() {
                login = name.to_owned();
                realm = suffix.to_owned();
            }
        } else if let Some((prefix, name)) = user.rsplit_once('\\') {
            login = name.to_owned();
            realm = prefix.to_owned();
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

    /// Find a login in a realm (first resolver in the realm's order wins).
    pub fn find(&self, login: &str, realm: &str) -> Option<ResolvedUser> {
        let realm = self.realm(realm)?;
        realm.resolvers.iter().find_map(|name| {
            let resolver = self.resolvers.get(name)?;
            resolver.get(login).map(|record| ResolvedUser {
                login: record.login.to_string(),
                realm: realm.name.clone(),
                resolver: name.clone(),
                record,
            })
        })
    }

    /// Every user of a realm (notification "To admin realm").
    pub fn users_of_realm(&self, realm: &str) -> Vec<ResolvedUser> {
        let Some(r) = self.realm(realm) else {
            return Vec::new();
        };
        let mut out: Vec<ResolvedUser> = Vec::new();
        for name in &r.resolvers {
            let Some(resolver) = self.resolvers.get(name) else {
                continue;
            };
            for record in resolver.users() {
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
        out
    }

    /// Check a user-store password (`otppin=userstore`, `passthru`). A user without a
    /// password hash never matches; an empty password never matches.
    pub async fn check_password(
        &self,
        user: &ResolvedUser,
        password: &str,
        hasher: &PinHasher,
    ) -> bool {
        let Some(hash) = user.record.password_hash.as_ref() else {
            return false;
        };
        if password.is_empty() {
            return false;
        }
        hasher
            .verify(password, hash.expose())
            .await
            .unwrap_or(false)
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
                },
                Realm {
                    name: "realm2".into(),
                    resolvers: vec!["r1".into()],
                    default: false,
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
        let off = dir(false);
        assert_eq!(
            off.split_user("alice@realm2", None),
            ("alice@realm2".into(), "realm1".into())
        );
    }

    #[test]
    fn find_walks_the_realm_resolvers() {
        let d = dir(true);
        let u = d.find("alice", "realm2").unwrap();
        assert_eq!((u.realm.as_str(), u.resolver.as_str()), ("realm2", "r1"));
        assert_eq!(u.record.attribute("givenname").as_deref(), Some("Alice"));
        assert_eq!(u.record.attribute("nonexistent"), None);
        assert!(d.find("bob", "realm1").is_none());
        assert!(d.find("alice", "nope").is_none());
    }
}
