//! A user's groups: from an attribute of the user entry (`memberOf`), from a search for the
//! groups naming the user, and — when asked for — the groups those groups belong to.

use ldap3::{Scope, SearchEntry};

use super::LdapResolver;
use super::filter;
use super::settings::{GroupSearch, Nesting};
use crate::users::error::ErrorKind;

/// Levels of nesting followed at most, and groups collected at most: a loop of groups or a
/// huge tree ends there.
const MAX_DEPTH: usize = 10;
const MAX_GROUPS: usize = 2_000;

impl LdapResolver {
    /// The DNs of the user's groups (memberUid groups: also DNs, of the group entries).
    pub(super) async fn groups_of(&self, entry: &SearchEntry) -> Result<Vec<String>, ErrorKind> {
        let g = &self.settings.groups;
        let mut out: Vec<String> = Vec::new();
        if let Some(attr) = &g.user_attribute {
            for (k, v) in &entry.attrs {
                if k.eq_ignore_ascii_case(attr) {
                    out.extend(v.iter().cloned());
                }
            }
        }
        let Some(search) = &g.search else {
            return Ok(out);
        };
        let member = if search.members_by_login() {
            let login_attr = self.settings.login_attributes.first();
            match login_attr.and_then(|a| {
                entry
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(a))
                    .and_then(|(_, v)| v.first())
            }) {
                Some(l) => l.clone(),
                None => return Ok(out),
            }
        } else {
            entry.dn.clone()
        };
        let in_chain = g.nested == Nesting::InChain && !search.members_by_login();
        add_new(&mut out, self.group_dns(search, &member, in_chain).await?);
        if g.nested == Nesting::Expand && !search.members_by_login() {
            self.expand(search, &mut out).await?;
        }
        Ok(out)
    }

    /// Groups naming `member`.
    async fn group_dns(
        &self,
        search: &GroupSearch,
        member: &str,
        in_chain: bool,
    ) -> Result<Vec<String>, ErrorKind> {
        let entries = self
            .search(
                &search.base_dn,
                Scope::Subtree,
                &filter::groups_of(search, member, in_chain),
                &["1.1".to_owned()],
                0,
            )
            .await?;
        Ok(entries.into_iter().map(|e| e.dn).collect())
    }

    /// Add the groups of the groups in `out`, level by level.
    async fn expand(&self, search: &GroupSearch, out: &mut Vec<String>) -> Result<(), ErrorKind> {
        let mut frontier = out.clone();
        for _ in 0..MAX_DEPTH {
            let mut next = Vec::new();
            for dn in &frontier {
                let found = self.group_dns(search, dn, false).await?;
                for g in found {
                    if !contains(out, &g) && !contains(&next, &g) {
                        next.push(g);
                    }
                }
            }
            if next.is_empty() || out.len() >= MAX_GROUPS {
                break;
            }
            out.extend(next.iter().cloned());
            frontier = next;
        }
        Ok(())
    }
}

/// DNs compare without regard to case.
fn contains(list: &[String], dn: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(dn))
}

fn add_new(out: &mut Vec<String>, found: Vec<String>) {
    for g in found {
        if !contains(out, &g) {
            out.push(g);
        }
    }
}
