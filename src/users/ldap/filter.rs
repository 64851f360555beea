//! Search filters, built from the configured filter and escaped values (RFC 4515): a login
//! like `*` or `admin)(|(uid=*` is compared as text and can never widen a search.

use ldap3::ldap_escape;

use super::settings::{GroupSearch, LdapSettings};

/// AD's LDAP_MATCHING_RULE_IN_CHAIN: a membership through any number of nested groups.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// A configured filter, with the parentheses RFC 4515 wants around it.
fn wrapped(filter: &str) -> String {
    let f = filter.trim();
    if f.is_empty() {
        "(objectClass=*)".to_owned()
    } else if f.starts_with('(') {
        f.to_owned()
    } else {
        format!("({f})")
    }
}

/// The entry of one login: the configured filter and any login attribute equal to it.
pub fn user(settings: &LdapSettings, login: &str) -> String {
    let value = ldap_escape(login);
    let any: String = settings
        .login_attributes
        .iter()
        .map(|a| format!("({a}={value})"))
        .collect();
    format!("(&{}(|{any}))", wrapped(&settings.filter))
}

/// Every user entry (for listings): the configured filter and a login attribute present.
pub fn all_users(settings: &LdapSettings) -> String {
    let first = settings
        .login_attributes
        .first()
        .map_or("uid", String::as_str);
    format!("(&{}({first}=*))", wrapped(&settings.filter))
}

/// The user entry whose `attribute` holds `value` (an id such as `entryUUID`). AD's
/// `objectGUID` is binary: its text form (as privacyIDEA writes it) is matched byte by byte.
pub fn by_attribute(settings: &LdapSettings, attribute: &str, value: &str) -> Option<String> {
    if !attribute
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
        || attribute.is_empty()
    {
        return None;
    }
    let value = if attribute.eq_ignore_ascii_case("objectGUID") {
        guid_bytes(value)?
            .iter()
            .map(|b| format!("\\{b:02x}"))
            .collect()
    } else {
        ldap_escape(value).into_owned()
    };
    Some(format!(
        "(&{}({attribute}={value}))",
        wrapped(&settings.filter)
    ))
}

/// A GUID's text form to AD's byte order (the first three groups little-endian).
fn guid_bytes(text: &str) -> Option<Vec<u8>> {
    let hex: String = text
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    let b = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?;
    if b.len() != 16 {
        return None;
    }
    let mut out = Vec::with_capacity(16);
    out.extend(b[0..4].iter().rev());
    out.extend(b[4..6].iter().rev());
    out.extend(b[6..8].iter().rev());
    out.extend_from_slice(&b[8..]);
    Some(out)
}

/// Whether `dn` is `base` or below it, comparing RDNs without case or spaces around `,`/`=`.
pub fn dn_is_under(dn: &str, base: &str) -> bool {
    // split at commas that no backslash escapes (`cn=Smith\, John`)
    let rdns = |d: &str| -> Vec<String> {
        let (mut out, mut cur, mut escaped) = (Vec::new(), String::new(), false);
        for c in d.chars() {
            match c {
                ',' if !escaped => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
            escaped = c == '\\' && !escaped;
        }
        out.push(cur);
        out.iter()
            .map(|r| {
                r.split('=')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join("=")
            })
            .collect()
    };
    let (dn, base) = (rdns(dn), rdns(base));
    base.iter().all(|r| !r.is_empty()) && dn.len() >= base.len() && dn.ends_with(&base)
}

/// The groups naming `member` (a DN, or a login for `memberUid`), directly or — `in_chain` —
/// through nested groups.
pub fn groups_of(search: &GroupSearch, member: &str, in_chain: bool) -> String {
    let rule = if in_chain {
        format!(":{IN_CHAIN}:")
    } else {
        String::new()
    };
    format!(
        "(&{}({}{rule}={}))",
        wrapped(&search.filter),
        search.member_attribute,
        ldap_escape(member)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dn_is_under_its_base_whatever_the_case_and_spaces() {
        let base = "ou=people,dc=example,dc=org";
        for (dn, under) in [
            ("uid=alice,ou=people,dc=example,dc=org", true),
            ("UID=alice, OU=People, DC=Example, DC=org", true),
            ("ou=people,dc=example,dc=org", true),
            ("cn=Smith\\, John,ou=people,dc=example,dc=org", true),
            ("uid=alice,ou=admins,dc=example,dc=org", false),
            ("uid=alice,ou=people,dc=example,dc=org,dc=evil", false),
            ("dc=org", false),
        ] {
            assert_eq!(dn_is_under(dn, base), under, "{dn}");
        }
    }

    use super::*;
    use crate::users::ldap::settings::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn ids_are_matched_escaped_and_guids_as_bytes() {
        let s = settings("objectClass=person", &["uid"]);
        assert_eq!(
            by_attribute(&s, "entryUUID", "5e3c*)").as_deref(),
            Some("(&(objectClass=person)(entryUUID=5e3c\\2a\\29))")
        );
        // privacyIDEA's str(UUID(bytes_le=…)) of the bytes 00 01 02 … 0f
        assert_eq!(
            by_attribute(&s, "objectGUID", "03020100-0504-0706-0809-0a0b0c0d0e0f").as_deref(),
            Some(
                "(&(objectClass=person)(objectGUID=\\00\\01\\02\\03\\04\\05\\06\\07\\08\\09\\0a\\0b\\0c\\0d\\0e\\0f))"
            )
        );
        assert_eq!(by_attribute(&s, "uid)(x", "a"), None);
        assert_eq!(by_attribute(&s, "objectGUID", "not-a-guid"), None);
    }

    fn settings(filter: &str, logins: &[&str]) -> LdapSettings {
        LdapSettings {
            servers: vec![],
            start_tls: false,
            ca_file: None,
            verify_certificate: true,
            bind_dn: None,
            bind_password: None,
            base_dn: "dc=example,dc=org".into(),
            scope: SearchScope::Sub,
            filter: filter.into(),
            login_attributes: logins.iter().map(|s| (*s).to_owned()).collect(),
            attributes: BTreeMap::new(),
            groups: Groups::default(),
            active_directory: ActiveDirectory::default(),
            limits: Limits {
                page_size: 500,
                size_limit: 0,
                time_limit: 0,
            },
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                operation: Duration::from_secs(1),
                idle: Duration::from_secs(1),
            },
            pool_size: 1,
            cache_ttl: Duration::ZERO,
            cache_size: 0,
        }
    }

    #[test]
    fn logins_are_escaped_into_the_filter() {
        let s = settings("objectClass=person", &["uid"]);
        // (login, filter): every special character of RFC 4515 becomes its \xx escape
        let rows = [
            ("alice", "(&(objectClass=person)(|(uid=alice)))"),
            ("*", "(&(objectClass=person)(|(uid=\\2a)))"),
            (
                ")(uid=*",
                "(&(objectClass=person)(|(uid=\\29\\28uid=\\2a)))",
            ),
            ("a\0b", "(&(objectClass=person)(|(uid=a\\00b)))"),
            (
                "admin)(|(uid=*",
                "(&(objectClass=person)(|(uid=admin\\29\\28|\\28uid=\\2a)))",
            ),
            (
                "back\\slash",
                "(&(objectClass=person)(|(uid=back\\5cslash)))",
            ),
        ];
        for (login, want) in rows {
            assert_eq!(user(&s, login), want, "login {login:?}");
        }
    }

    #[test]
    fn several_login_attributes_any_matches() {
        let s = settings(
            "(&(objectClass=user)(objectCategory=person))",
            &["sAMAccountName", "userPrincipalName"],
        );
        assert_eq!(
            user(&s, "bob@corp.example"),
            "(&(&(objectClass=user)(objectCategory=person))(|(sAMAccountName=bob@corp.example)(userPrincipalName=bob@corp.example)))"
        );
        assert_eq!(
            all_users(&s),
            "(&(&(objectClass=user)(objectCategory=person))(sAMAccountName=*))"
        );
        assert_eq!(
            all_users(&settings("", &["uid"])),
            "(&(objectClass=*)(uid=*))"
        );
    }

    #[test]
    fn group_filters() {
        let g = GroupSearch {
            base_dn: "ou=groups,dc=example,dc=org".into(),
            filter: "(objectClass=groupOfNames)".into(),
            member_attribute: "member".into(),
        };
        assert_eq!(
            groups_of(&g, "uid=a*,dc=x", false),
            "(&(objectClass=groupOfNames)(member=uid=a\\2a,dc=x))"
        );
        assert_eq!(
            groups_of(&g, "cn=u,dc=x", true),
            "(&(objectClass=groupOfNames)(member:1.2.840.113556.1.4.1941:=cn=u,dc=x))"
        );
    }
}
