//! What can go wrong when a resolver is asked: the directory or database could not answer.
//! "The user does not exist" is not an error (`Ok(None)`): it may let a `passOnNoUser` policy
//! accept, which a directory that is down must never do.

use std::fmt;

/// A resolver could not answer. The message names the server or database and what failed,
/// never a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("resolver {resolver:?}: {kind}")]
pub struct DirectoryError {
    pub resolver: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// No server could be reached, or the connection broke.
    Unreachable(String),
    /// A server took longer than the configured timeout.
    Timeout(String),
    /// The server answered with an error (a bad filter, no permission, a limit).
    Refused(String),
    /// A login matched more than one entry: refusing is safer than picking one.
    Ambiguous { login: String, count: usize },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(m) => write!(f, "directory unreachable: {m}"),
            Self::Timeout(m) => write!(f, "directory timed out: {m}"),
            Self::Refused(m) => write!(f, "directory refused the request: {m}"),
            Self::Ambiguous { login, count } => {
                write!(f, "login {login:?} matches {count} entries; refused")
            }
        }
    }
}

impl ErrorKind {
    /// What failed, without server names or details: for answers that leave the host.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "directory unreachable",
            Self::Timeout(_) => "directory timed out",
            Self::Refused(_) => "directory refused the request",
            Self::Ambiguous { .. } => "login matches several entries",
        }
    }
}

impl DirectoryError {
    pub fn new(resolver: &str, kind: ErrorKind) -> Self {
        Self {
            resolver: resolver.to_owned(),
            kind,
        }
    }
}
