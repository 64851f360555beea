//! The `ldap` resolver: users from OpenLDAP, Active Directory or any LDAPv3 directory.
//!
//! Lookups run on pooled service-account connections and are cached for `cache_ttl`; a
//! password is checked by a bind as the user on a connection of its own, never from the cache.
//! A directory that does not answer is an error, not an unknown user.

mod conn;
pub mod filter;
mod groups;
pub mod settings;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Scope, SearchEntry, SearchOptions};

use super::cache::UserCache;
use super::error::{DirectoryError, ErrorKind};
use super::{UserDetails, UserRecord};
use conn::{Connector, Pool, kind_of};
pub use settings::LdapSettings;
use settings::SearchScope;

/// LDAP result code: the server stopped at the size limit.
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// `userAccountControl` bit of a disabled Active Directory account.
const ACCOUNTDISABLE: i64 = 0x2;

#[derive(Debug)]
pub struct LdapResolver {
    name: String,
    settings: LdapSettings,
    pool: Pool,
    cache: UserCache,
}

impl LdapResolver {
    /// `tls`: the client configuration built from `ca_file` (see [`tls::client_config`]).
    pub fn new(name: &str, settings: LdapSettings, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        let pool = Pool::new(&settings, Connector::new(&settings, tls));
        Self {
            name: name.to_owned(),
            cache: UserCache::new(settings.cache_ttl, settings.cache_size),
            settings,
            pool,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn error(&self, kind: ErrorKind) -> DirectoryError {
        DirectoryError::new(&self.name, kind)
    }

    fn scope(&self) -> Scope {
        match self.settings.scope {
            SearchScope::Base => Scope::Base,
            SearchScope::One => Scope::OneLevel,
            SearchScope::Sub => Scope::Subtree,
        }
    }

    /// The LDAP attributes a user lookup asks for.
    fn wanted_attributes(&self) -> Vec<String> {
        let s = &self.settings;
        let mut out: Vec<String> = s.login_attributes.clone();
        for name in [
            "username",
            "givenname",
            "surname",
            "email",
            "mobile",
            "phone",
        ] {
            out.extend(s.attribute_for(name).map(str::to_owned));
        }
        out.extend(s.attributes.values().cloned());
        out.extend(s.groups.user_attribute.clone());
        if s.active_directory.enabled {
            out.push("userAccountControl".into());
        }
        out.sort_by_key(|a| a.to_ascii_lowercase());
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    }

    /// One search on a pooled connection, retried once on a fresh connection when the pooled
    /// one turned out broken. `size_limit` 0: the server's own limit.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<Vec<SearchEntry>, ErrorKind> {
        let mut last = None;
        for _ in 0..2 {
            let mut lease = self.pool.lease().await?;
            let result = lease
                .ldap
                .with_timeout(self.pool.connector().operation_timeout())
                .with_search_options(
                    SearchOptions::new()
                        .sizelimit(size_limit)
                        .timelimit(self.settings.limits.time_limit),
                )
                .search(base, scope, filter, attrs)
                .await;
            match result {
                Ok(r) => {
                    let rc = r.1.rc;
                    let entries: Vec<SearchEntry> =
                        r.0.into_iter().map(SearchEntry::construct).collect();
                    return match rc {
                        0 | 10 => Ok(entries),
                        // a lookup asks for 2 to see an ambiguous login: the entries tell
                        SIZE_LIMIT_EXCEEDED if !entries.is_empty() => Ok(entries),
                        // no such object: the base DN does not exist, so neither does the user
                        32 => Ok(Vec::new()),
                        _ => Err(ErrorKind::Refused(format!(
                            "{}: search answered {} {}",
                            lease.server, rc, r.1.text
                        ))),
                    };
                }
                Err(e @ ldap3::LdapError::Timeout { .. }) => {
                    self.pool.discard(&lease).await;
                    return Err(kind_of(&lease.server, e));
                }
                Err(e) => {
                    self.pool.discard(&lease).await;
                    last = Some(kind_of(&lease.server, e));
                }
            }
        }
        Err(last.unwrap_or_else(|| ErrorKind::Unreachable("no connection".into())))
    }

    /// The user with this login, from the cache or the directory.
    pub async fn get(&self, login: &str) -> Result<Option<Arc<UserRecord>>, DirectoryError> {
        if login.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.cache.get(login) {
            return Ok(Some(hit));
        }
        let s = &self.settings;
        let entries = self
            .search(
                &s.base_dn,
                self.scope(),
                &filter::user(s, login),
                &self.wanted_attributes(),
                2,
            )
            .await
            .map_err(|k| self.error(k))?;
        let count = entries.len();
        let mut entries = entries.into_iter();
        let entry = match (entries.next(), count) {
            (None, _) => return Ok(None),
            (Some(e), 1) => e,
            (Some(_), count) => {
                return Err(self.error(ErrorKind::Ambiguous {
                    login: login.to_owned(),
                    count,
                }));
            }
        };
        let groups = self.groups_of(&entry).await.map_err(|k| self.error(k))?;
        let record = Arc::new(self.record(entry, groups));
        self.cache.put(login, record.clone());
        Ok(Some(record))
    }

    /// The login of the user entry at `dn` (the bind proxy maps a bind DN this way); `None`
    /// for a DN outside the base DN or that names no user entry.
    pub async fn login_of_dn(&self, dn: &str) -> Result<Option<String>, DirectoryError> {
        let s = &self.settings;
        if !filter::dn_is_under(dn, &s.base_dn) {
            return Ok(None);
        }
        let entries = self
            .search(
                dn,
                Scope::Base,
                &filter::all_users(s),
                &self.wanted_attributes(),
                1,
            )
            .await
            .map_err(|k| self.error(k))?;
        Ok(entries
            .into_iter()
            .next()
            .map(|e| self.record(e, Vec::new()).login.into_string())
            .filter(|l| !l.is_empty()))
    }

    /// The login of the one user entry whose `attribute` holds `value` (`import privacyidea`
    /// maps owners recorded by `entryUUID` or `objectGUID` this way).
    pub async fn login_of_attribute(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let s = &self.settings;
        let Some(filter) = filter::by_attribute(s, attribute, value) else {
            return Ok(None);
        };
        let entries = self
            .search(
                &s.base_dn,
                self.scope(),
                &filter,
                &self.wanted_attributes(),
                2,
            )
            .await
            .map_err(|k| self.error(k))?;
        if entries.len() > 1 {
            return Err(self.error(ErrorKind::Ambiguous {
                login: format!("{attribute}={value}"),
                count: entries.len(),
            }));
        }
        Ok(entries
            .into_iter()
            .next()
            .map(|e| self.record(e, Vec::new()).login.into_string())
            .filter(|l| !l.is_empty()))
    }

    /// Every user under the base DN, read in pages (no groups: a listing asks for them only
    /// when shown one by one).
    pub async fn users(&self) -> Result<Vec<Arc<UserRecord>>, DirectoryError> {
        self.list().await.map_err(|k| self.error(k))
    }

    async fn list(&self) -> Result<Vec<Arc<UserRecord>>, ErrorKind> {
        let s = &self.settings;
        let mut lease = self.pool.lease().await?;
        let adapters: Vec<Box<dyn Adapter<'_, _, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(s.limits.page_size)),
        ];
        let attrs = self.wanted_attributes();
        let mut stream = lease
            .ldap
            .with_timeout(self.pool.connector().operation_timeout())
            .with_search_options(SearchOptions::new().timelimit(s.limits.time_limit))
            .streaming_search_with(
                adapters,
                &s.base_dn,
                self.scope(),
                &filter::all_users(s),
                attrs,
            )
            .await
            .map_err(|e| kind_of(&lease.server, e))?;
        let mut out = Vec::new();
        while let Some(entry) = stream.next().await.map_err(|e| kind_of(&lease.server, e))? {
            out.push(Arc::new(
                self.record(SearchEntry::construct(entry), Vec::new()),
            ));
            if s.limits.size_limit > 0 && out.len() >= s.limits.size_limit as usize {
                break;
            }
        }
        let _ = stream.finish().await;
        Ok(out)
    }

    /// Check a password by binding as the user. An empty password is refused before any bind.
    pub async fn check_password(
        &self,
        record: &UserRecord,
        password: &str,
    ) -> Result<bool, DirectoryError> {
        let Some(dn) = record.dn().filter(|d| !d.is_empty()) else {
            return Ok(false);
        };
        if password.is_empty() {
            return Ok(false);
        }
        self.pool
            .connector()
            .check_bind(dn, password)
            .await
            .map_err(|k| self.error(k))
    }

    /// An entry as a user record: mapped attributes (first value for the named ones, every
    /// value for free attributes), groups, and whether Active Directory disabled it.
    fn record(&self, entry: SearchEntry, groups: Vec<String>) -> UserRecord {
        let s = &self.settings;
        let values = |ldap_attr: &str| -> Vec<String> {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(ldap_attr))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let first = |name: &str| -> String {
            s.attribute_for(name)
                .and_then(|a| values(a).into_iter().next())
                .unwrap_or_default()
        };
        let login = first("username");
        let mut attributes = BTreeMap::new();
        for (name, ldap_attr) in &s.attributes {
            if matches!(
                name.as_str(),
                "username" | "givenname" | "surname" | "email" | "mobile" | "phone"
            ) {
                continue;
            }
            let v = values(ldap_attr);
            if !v.is_empty() {
                attributes.insert(name.clone(), v);
            }
        }
        let disabled = s.active_directory.enabled
            && !s.active_directory.allow_disabled
            && values("userAccountControl")
                .first()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|uac| uac & ACCOUNTDISABLE != 0);
        UserRecord::new(
            if login.is_empty() { &entry.dn } else { &login },
            None,
            UserDetails {
                givenname: first("givenname"),
                surname: first("surname"),
                email: first("email"),
                mobile: first("mobile"),
                phone: first("phone"),
                groups,
                attributes,
                dn: entry.dn.clone(),
                disabled,
            },
        )
    }
}
