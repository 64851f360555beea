//! The `file` resolver: users from a TOML file, or — for large lists — a CSV file (by the
//! `.csv` extension).
//!
//! ```toml
//! [[user]]
//! username = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # optional; `otpgate hash-password`
//! givenname = "Alice"
//! surname = "Smith"
//! email = "alice@example.com"
//! mobile = "+4915100000001"
//! groups = ["vpn"]
//! attributes = { department = "IT" }
//! ```
//!
//! CSV, one user per line, `#` comments; groups separated by `;`, further columns `key=value`
//! attributes. A field with a comma is quoted, as every argon2 hash is (`m=…,t=…,p=…`):
//!
//! ```text
//! username,password,givenname,surname,email,mobile,phone,groups
//! alice,"$argon2id$v=19$m=19456,t=2,p=1$...",Alice,Smith,alice@example.com,+4915100000001,,vpn;admins,department=IT
//! ```

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{UserDetails, UserRecord};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: user {login:?} is listed twice")]
    Duplicate { path: PathBuf, login: String },
    #[error(
        "{path}: user {login:?}: the password is not a whole argon2 hash ($argon2id$v=…$m=…,t=…,p=…$salt$hash); use `otpgate hash-password`, and in a CSV file put it in double quotes"
    )]
    BadHash { path: PathBuf, login: String },
    #[error("{path}: a user has an empty username")]
    EmptyLogin { path: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    givenname: String,
    #[serde(default)]
    surname: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    mobile: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, OneOrMany>,
}

/// An attribute with one value or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(v) => vec![v],
            Self::Many(v) => v,
        }
    }
}

/// Users loaded from one file.
#[derive(Debug)]
pub struct FileResolver {
    name: String,
    users: HashSet<ByLogin>,
}

/// A user in the resolver's set, found by its login: the record's own login is the key, not a
/// second copy of it, and a table slot is one pointer.
#[derive(Debug)]
struct ByLogin(Arc<UserRecord>);

impl Borrow<str> for ByLogin {
    fn borrow(&self) -> &str {
        &self.0.login
    }
}

impl Hash for ByLogin {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // as `str` hashes, so that a lookup by `&str` finds it (`Borrow`'s contract)
        let login: &str = self.borrow();
        login.hash(state);
    }
}

impl PartialEq for ByLogin {
    fn eq(&self, other: &Self) -> bool {
        self.0.login == other.0.login
    }
}

impl Eq for ByLogin {}

/// A password is a whole argon2 PHC string: its parameters, a salt and a hash. (A hash cut
/// at its first comma, `$argon2id$v=19$m=19456`, is a valid PHC string without them, and no
/// password would ever match it.)
fn check_hash(path: &Path, login: &str, hash: &Option<String>) -> Result<(), UserFileError> {
    let whole = |h: &str| {
        argon2::PasswordHash::new(h).is_ok_and(|p| {
            p.algorithm.as_str().starts_with("argon2") && p.salt.is_some() && p.hash.is_some()
        })
    };
    if let Some(h) = hash
        && !whole(h)
    {
        return Err(UserFileError::BadHash {
            path: path.to_owned(),
            login: login.to_owned(),
        });
    }
    Ok(())
}

impl FileResolver {
    pub fn load(name: &str, path: &Path) -> Result<Self, UserFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| UserFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut users = Vec::new();
        let mut add = |record: UserRecord| -> Result<(), UserFileError> {
            if record.login.trim().is_empty() {
                return Err(UserFileError::EmptyLogin {
                    path: path.to_owned(),
                });
            }
            users.push(Arc::new(record));
            Ok(())
        };
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            let mut rows = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .comment(Some(b'#'))
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            for (i, row) in rows.records().enumerate() {
                let row = row.map_err(|e| UserFileError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                let line = row.position().map_or(i as u64 + 1, csv::Position::line);
                if row.iter().all(str::is_empty) || (i == 0 && row.get(0) == Some("username")) {
                    continue;
                }
                let mut cols = row.iter();
                let mut next = || cols.next().unwrap_or("").to_owned();
                let login = next();
                let password = Some(next()).filter(|p| !p.is_empty());
                check_hash(path, &login, &password)?;
                let mut details = UserDetails {
                    givenname: next(),
                    surname: next(),
                    email: next(),
                    mobile: next(),
                    phone: next(),
                    groups: next()
                        .split(';')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    ..Default::default()
                };
                for extra in cols {
                    let Some((k, v)) = extra.split_once('=') else {
                        return Err(UserFileError::Parse {
                            path: path.to_owned(),
                            message: format!("line {line}: {extra:?} is not key=value"),
                        });
                    };
                    details
                        .attributes
                        .entry(k.trim().to_owned())
                        .or_default()
                        .push(v.trim().to_owned());
                }
                add(UserRecord::new(&login, password.map(Secret::new), details))?;
            }
        } else {
            let raw: RawFile = toml::from_str(&text).map_err(|e| UserFileError::Parse {
                path: path.to_owned(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
            for u in raw.user {
                check_hash(path, &u.username, &u.password)?;
                let details = UserDetails {
                    givenname: u.givenname,
                    surname: u.surname,
                    email: u.email,
                    mobile: u.mobile,
                    phone: u.phone,
                    groups: u.groups,
                    attributes: u
                        .attributes
                        .into_iter()
                        .map(|(k, v)| (k, v.into_vec()))
                        .collect(),
                    ..Default::default()
                };
                add(UserRecord::new(
                    &u.username,
                    u.password.map(Secret::new),
                    details,
                ))?;
            }
        }
        Self::from_users(name, users).map_err(|login| UserFileError::Duplicate {
            path: path.to_owned(),
            login,
        })
    }

    /// The resolver of these users; `Err` names a login listed twice.
    pub fn from_users(
        name: &str,
        users: impl IntoIterator<Item = Arc<UserRecord>>,
    ) -> Result<Self, String> {
        let users = users.into_iter();
        let mut set = HashSet::with_capacity(users.size_hint().0);
        for user in users {
            if let Some(twice) = set.replace(ByLogin(user)) {
                return Err(twice.0.login.to_string());
            }
        }
        Ok(Self {
            name: name.to_owned(),
            users: set,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn get(&self, login: &str) -> Option<Arc<UserRecord>> {
        self.users.get(login).map(|u| Arc::clone(&u.0))
    }

    pub fn users(&self) -> Vec<Arc<UserRecord>> {
        let mut v: Vec<_> = self.users.iter().map(|u| Arc::clone(&u.0)).collect();
        v.sort_by(|a, b| a.login.cmp(&b.login));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_users_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.toml");
        std::fs::write(
            &p,
            "[[user]]\nusername = \"alice\"\ngivenname = \"Alice\"\nemail = \"a@x\"\nattributes = { dept = \"IT\" }\n",
        )
        .unwrap();
        let r = FileResolver::load("r", &p).unwrap();
        let a = r.get("alice").unwrap();
        assert_eq!(a.attribute("dept").as_deref(), Some("IT"));
        assert_eq!(a.attribute("email").as_deref(), Some("a@x"));

        std::fs::write(
            &p,
            "[[user]]\nusername = \"a\"\n[[user]]\nusername = \"a\"\n",
        )
        .unwrap();
        assert!(matches!(
            FileResolver::load("r", &p),
            Err(UserFileError::Duplicate { .. })
        ));
        std::fs::write(&p, "[[user]]\nusername = \"a\"\npassword = \"plain\"\n").unwrap();
        assert!(matches!(
            FileResolver::load("r", &p),
            Err(UserFileError::BadHash { .. })
        ));
        std::fs::write(&p, "[[user]]\nusername = \"a\"\nbogus = 1\n").unwrap();
        assert!(matches!(
            FileResolver::load("r", &p),
            Err(UserFileError::Parse { .. })
        ));

        let csv = dir.path().join("users.csv");
        std::fs::write(
            &csv,
            "username,password,givenname,surname,email,mobile,phone,groups\n\
             # a comment\n\
             bob,,Bob,Builder,bob@example.com,+49,,vpn;admins,dept=ops\n\
             user1\n",
        )
        .unwrap();
        let r = FileResolver::load("r", &csv).unwrap();
        let b = r.get("bob").unwrap();
        assert_eq!(b.givenname(), "Bob");
        assert_eq!(b.groups(), ["vpn", "admins"]);
        assert_eq!(b.attribute("dept").as_deref(), Some("ops"));
        assert_eq!(r.get("user1").unwrap().attribute("email"), None);
        std::fs::write(&csv, "a\na\n").unwrap();
        assert!(matches!(
            FileResolver::load("r", &csv),
            Err(UserFileError::Duplicate { .. })
        ));
    }

    /// An argon2 hash has commas: quoted, it is one field and logs in; cut at its first comma,
    /// it is refused when the file is loaded (check-config), not at every login.
    #[test]
    fn a_csv_file_holds_argon2_hashes_in_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("users.csv");
        let hasher = crate::crypto::PinHasher::new(crate::crypto::Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
        });
        let hash = hasher.hash_blocking("Secret1").unwrap();
        assert!(hash.contains(','), "{hash}");
        std::fs::write(&csv, format!("alice,\"{hash}\",Alice\n")).unwrap();
        let r = FileResolver::load("r", &csv).unwrap();
        let alice = r.get("alice").unwrap();
        assert_eq!(alice.givenname(), "Alice");
        let stored = alice.password_hash.as_ref().unwrap().expose().clone();
        assert!(crate::crypto::pin::verify_blocking("Secret1", &stored));
        std::fs::write(&csv, format!("alice,{hash},Alice\n")).unwrap();
        let refused = FileResolver::load("r", &csv).unwrap_err().to_string();
        assert!(refused.contains("double quotes"), "{refused}");
    }
}
