//! The `file` resolver: users from a TOML file.
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::UserRecord;
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
        "{path}: user {login:?}: the password must be an argon2 PHC string ($argon2id$…); use `otpgate hash-password`"
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
    attributes: std::collections::BTreeMap<String, String>,
}

/// Users loaded from one file.
#[derive(Debug)]
pub struct FileResolver {
    name: String,
    users: HashMap<String, Arc<UserRecord>>,
}

impl FileResolver {
    pub fn load(name: &str, path: &Path) -> Result<Self, UserFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| UserFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawFile = toml::from_str(&text).map_err(|e| UserFileError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let mut users = HashMap::new();
        for u in raw.user {
            if u.username.trim().is_empty() {
                return Err(UserFileError::EmptyLogin {
                    path: path.to_owned(),
                });
            }
            if let Some(h) = &u.password
                && (!h.starts_with("$argon2") || argon2::PasswordHash::new(h).is_err())
            {
                return Err(UserFileError::BadHash {
                    path: path.to_owned(),
                    login: u.username,
                });
            }
            let record = UserRecord {
                login: u.username.clone(),
                password_hash: u.password.map(Secret::new),
                givenname: u.givenname,
                surname: u.surname,
                email: u.email,
                mobile: u.mobile,
                phone: u.phone,
                groups: u.groups,
                attributes: u.attributes,
            };
            if users.insert(u.username.clone(), Arc::new(record)).is_some() {
                return Err(UserFileError::Duplicate {
                    path: path.to_owned(),
                    login: u.username,
                });
            }
        }
        Ok(Self::from_users(name, users))
    }

    pub fn from_users(name: &str, users: HashMap<String, Arc<UserRecord>>) -> Self {
        Self {
            name: name.to_owned(),
            users,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn get(&self, login: &str) -> Option<Arc<UserRecord>> {
        self.users.get(login).cloned()
    }

    pub fn users(&self) -> Vec<Arc<UserRecord>> {
        let mut v: Vec<_> = self.users.values().cloned().collect();
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
    }
}
