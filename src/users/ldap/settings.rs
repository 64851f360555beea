//! The validated settings of one `type = "ldap"` resolver (`[[resolver]]` in the TOML;
//! docs/directories.md has examples for OpenLDAP and Active Directory).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldap://` or `ldaps://` URLs, tried in order.
    pub servers: Vec<String>,
    /// StartTLS on `ldap://` servers.
    pub start_tls: bool,
    /// Trust anchors for the servers' certificates; none: the system's.
    pub ca_file: Option<PathBuf>,
    pub verify_certificate: bool,
    /// The service account for searches; none: anonymous.
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret<String>>,
    pub base_dn: String,
    pub scope: SearchScope,
    /// The filter every user entry matches, e.g. `(objectClass=person)`.
    pub filter: String,
    /// Attributes a login is compared with (any of them), e.g. `sAMAccountName` and
    /// `userPrincipalName`.
    pub login_attributes: Vec<String>,
    /// privacyIDEA attribute name (`username`, `givenname`, `email`, … or a free name) →
    /// LDAP attribute.
    pub attributes: BTreeMap<String, String>,
    pub groups: Groups,
    pub active_directory: ActiveDirectory,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Search connections kept open (each multiplexes many requests).
    pub pool_size: usize,
    pub cache_ttl: Duration,
    pub cache_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    Base,
    One,
    Sub,
}

/// Where a user's groups come from.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// An attribute of the user entry holding group DNs (`memberOf`).
    pub user_attribute: Option<String>,
    /// Or a search for group entries naming the user.
    pub search: Option<GroupSearch>,
    pub nested: Nesting,
}

#[derive(Debug, Clone)]
pub struct GroupSearch {
    pub base_dn: String,
    /// The filter every group entry matches, e.g. `(objectClass=groupOfNames)`.
    pub filter: String,
    /// `member` or `uniqueMember` (values are DNs) or `memberUid` (values are logins).
    pub member_attribute: String,
}

impl GroupSearch {
    /// `memberUid` names members by login, the others by DN.
    pub fn members_by_login(&self) -> bool {
        self.member_attribute.eq_ignore_ascii_case("memberUid")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Nesting {
    /// Direct groups only.
    #[default]
    Off,
    /// Groups of groups, asked level by level (works on every server).
    Expand,
    /// Groups of groups in one search with Active Directory's LDAP_MATCHING_RULE_IN_CHAIN.
    InChain,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ActiveDirectory {
    /// Read `userAccountControl` and refuse disabled accounts.
    pub enabled: bool,
    /// Let disabled accounts log in anyway.
    pub allow_disabled: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries one listing asks for per page (Active Directory answers at most 1,000 without
    /// paging).
    pub page_size: i32,
    /// Entries a listing returns at most.
    pub size_limit: i32,
    /// Seconds the server may spend on one search.
    pub time_limit: i32,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// One operation (a bind, a search).
    pub operation: Duration,
    /// A pooled connection unused this long is closed and opened anew (firewalls and Active
    /// Directory drop idle connections silently).
    pub idle: Duration,
}

impl LdapSettings {
    /// The LDAP attribute for a privacyIDEA name, with the usual defaults.
    pub fn attribute_for(&self, name: &str) -> Option<&str> {
        if let Some(a) = self.attributes.get(name) {
            return Some(a);
        }
        match name {
            "username" => self.login_attributes.first().map(String::as_str),
            "givenname" => Some("givenName"),
            "surname" => Some("sn"),
            "email" => Some("mail"),
            "mobile" => Some("mobile"),
            "phone" => Some("telephoneNumber"),
            _ => None,
        }
    }
}
