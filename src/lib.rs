//! otpgate: a two-factor authentication daemon.
//!
//! # Layout
//!
//! ```text
//! NAS ──UDP──▶ radius::server ─┐   front-ends decode, check the peer, build an auth::Request
//! admin ─CLI─▶ cli            ─┘
//!                  │
//!                  ▼
//!   auth (pipeline → check → challenge) ── token (OTP math) ── users (realms, resolvers)
//!                  │                                             │
//!                  └──────────── store (sqlx: SQLite / PostgreSQL) ◀──┘
//! ```
//!
//! The core — `auth`, `token`, `users`, `store`, `crypto`, `dates`, `clock`, `secret` — never
//! imports a front-end (`radius`, `cli`, `http`), never sees bytes or protocol vocabulary, and
//! reads time only through [`clock::Clock`]. A test in this file enforces the import rule.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod dates;
pub mod event;
pub mod http;
pub mod log_limit;
pub mod notify;
pub mod radius;
pub mod remote;
pub mod secret;
pub mod store;
pub mod token;
pub mod users;

#[cfg(test)]
mod boundary {
    //! The core must not depend on the front-ends.
    use std::path::Path;

    const CORE: &[&str] = &[
        "auth", "token", "users", "store", "crypto", "event", "notify",
    ];
    const FORBIDDEN: &[&str] = &[
        "crate::radius",
        "crate::ldap",
        "crate::http",
        "crate::cli",
        "crate::daemon",
        "crate::remote",
        "tokio::net",
        "ldap3_proto",
    ];

    fn scan(dir: &Path, hits: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                scan(&p, hits);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for f in FORBIDDEN {
                    if text.contains(f) {
                        hits.push(format!("{} uses {f}", p.display()));
                    }
                }
            }
        }
    }

    #[test]
    fn core_never_imports_front_ends() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut hits = Vec::new();
        for m in CORE {
            scan(&src.join(m), &mut hits);
        }
        for f in ["clock.rs", "secret.rs", "dates.rs"] {
            let text = std::fs::read_to_string(src.join(f)).unwrap_or_default();
            for x in FORBIDDEN {
                if text.contains(x) {
                    hits.push(format!("{f} uses {x}"));
                }
            }
        }
        assert!(hits.is_empty(), "boundary violations: {hits:#?}");
    }
}
