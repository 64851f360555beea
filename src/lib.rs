//! otpgate: a two-factor authentication daemon.
//!
//! # Layout
//!
//! ```text
//! NAS ──UDP──▶ radius::server ─┐   front-ends: decode, check the peer, build a message::Request,
//! app ──TCP──▶ ldap::server   ─┤   map the message::Response back to the wire
//! admin ─CLI─▶ cli            ─┤
//! ops ──HTTP─▶ http           ─┘
//!                  │
//!                  ▼
//!   auth   the authentication path: pipeline → policy steps → check → challenge
//!    │  └─ event    the engine; handlers reach the rest only through event::Actions
//!    ├──── users    realms and resolvers            token   OTP math, enrollment, import
//!    └──── store    one interface: store::sqlite (rusqlite) or store::postgres (sqlx)
//!   admin  the admin use-cases (enroll, assign, … with their events), for cli and http
//! ```
//!
//! - `message`: what front-ends and the core exchange (request, response, decision trace);
//! - `crypto` (sealed keys, PIN hashes), `notify` (SMTP, SMS), `clock` (the only clock
//!   read), `secret` (redacted values), `dates`, `issues` (configuration problems);
//! - `config` (the TOML file, checked) and `daemon` (start, reload, stop) build the core from a
//!   configuration; `remote` forwards to other servers; `bench` is the load generator;
//!   `migrate` reads another system's database (`otpgate import privacyidea`).
//!
//! The core — `admin`, `auth`, `event`, `message`, `token`, `users`, `store`, `crypto`,
//! `notify`, `clock`, `secret`, `dates`, `issues` — never names a front-end (`radius`, `cli`,
//! `http`), the configuration (`config`), `daemon`, `remote`, `bench` or `migrate`, never sees bytes or
//! protocol vocabulary, and reads time only through [`clock::Clock`]. A test in this file
//! reads the core's code for paths that break the rule.

pub mod admin;
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
pub mod issues;
pub mod ldap;
pub mod log_limit;
pub mod message;
pub mod migrate;
pub mod notify;
pub mod radius;
pub mod remote;
pub mod secret;
pub mod store;
pub mod token;
pub mod users;

#[cfg(test)]
mod boundary {
    //! The core must not depend on the front-ends, the configuration or the daemon.
    use std::path::Path;

    const CORE_DIRS: &[&str] = &[
        "admin", "auth", "message", "token", "users", "store", "crypto", "event", "notify",
    ];
    const CORE_FILES: &[&str] = &["clock.rs", "secret.rs", "dates.rs", "issues.rs"];
    /// Modules of this crate the core never names.
    const OUTSIDE: &[&str] = &[
        "radius", "ldap", "http", "cli", "daemon", "remote", "config", "bench", "migrate",
    ];
    /// Paths of other crates the core never names.
    const FOREIGN: &[&[&str]] = &[&["tokio", "net"], &["ldap3_proto"]];

    /// The source without comments, string and character literals: what is left is code.
    fn code_of(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '/' if chars.peek() == Some(&'/') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            out.push('\n');
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut last = ' ';
                    for c in chars.by_ref() {
                        if last == '*' && c == '/' {
                            break;
                        }
                        last = c;
                    }
                    out.push(' ');
                }
                'r' if matches!(chars.peek(), Some('#' | '"')) => {
                    let mut hashes = 0;
                    while chars.peek() == Some(&'#') {
                        chars.next();
                        hashes += 1;
                    }
                    if chars.next_if_eq(&'"').is_none() {
                        out.push('r');
                        continue;
                    }
                    let closing: String = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    let mut seen = String::new();
                    for c in chars.by_ref() {
                        seen.push(c);
                        if seen.ends_with(&closing) {
                            break;
                        }
                    }
                    out.push_str("\"\"");
                }
                '"' => {
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                    out.push_str("\"\"");
                }
                // a character literal ('x', '\n'), not a lifetime ('a)
                '\'' => {
                    let rest: String = chars.clone().take(3).collect();
                    if rest.starts_with('\\') {
                        // the backslash and what it escapes, then up to the closing quote
                        chars.next();
                        chars.next();
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                        }
                    } else if rest.chars().nth(1) == Some('\'') {
                        chars.next();
                        chars.next();
                    } else {
                        out.push('\'');
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    /// Every path in `code` as its segments: `crate::a::b`, and each branch of
    /// `crate::{a, b::{c, d}}`.
    fn paths(code: &str) -> Vec<Vec<String>> {
        let tokens = tokens(code);
        let mut out = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let starts = tokens[i]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && (i < 2 || tokens[i - 1] != "::");
            if starts {
                i = path_at(&tokens, i, Vec::new(), &mut out);
            } else {
                i += 1;
            }
        }
        out
    }

    /// The path that starts at `tokens[at]` (after `prefix`); where it ends.
    fn path_at(
        tokens: &[String],
        mut at: usize,
        prefix: Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) -> usize {
        let mut path = prefix;
        while let Some(t) = tokens.get(at) {
            if t == "{" {
                at += 1;
                loop {
                    at = path_at(tokens, at, path.clone(), out);
                    match tokens.get(at).map(String::as_str) {
                        Some(",") => at += 1,
                        Some("}") => return at + 1,
                        _ => return at,
                    }
                    if tokens.get(at).map(String::as_str) == Some("}") {
                        return at + 1;
                    }
                }
            }
            if !t
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                break;
            }
            path.push(t.clone());
            at += 1;
            if tokens.get(at).map(String::as_str) != Some("::") {
                break;
            }
            at += 1;
        }
        out.push(path);
        at
    }

    /// Identifiers, `::` and single punctuation characters.
    fn tokens(code: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut chars = code.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() || c == '_' {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                    word.push(n);
                    chars.next();
                }
                out.push(word);
            } else if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                out.push("::".into());
            } else if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
        out
    }

    /// What in `text` names something the core must not.
    fn violations(text: &str) -> Vec<String> {
        paths(&code_of(text))
            .into_iter()
            .filter(|p| {
                let crate_module = p.first().is_some_and(|s| s == "crate")
                    && p.get(1).is_some_and(|m| OUTSIDE.contains(&m.as_str()));
                let foreign = FOREIGN
                    .iter()
                    .any(|f| p.len() >= f.len() && p.iter().zip(f.iter()).all(|(a, b)| a == b));
                crate_module || foreign
            })
            .map(|p| p.join("::"))
            .collect()
    }

    fn scan(path: &Path, hits: &mut Vec<String>) {
        if path.is_dir() {
            let Ok(entries) = std::fs::read_dir(path) else {
                return;
            };
            for e in entries.flatten() {
                scan(&e.path(), hits);
            }
        } else if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            for v in violations(&text) {
                hits.push(format!("{} uses {v}", path.display()));
            }
        }
    }

    #[test]
    fn core_never_imports_front_ends_config_or_daemon() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut hits = Vec::new();
        for m in CORE_DIRS.iter().chain(CORE_FILES) {
            scan(&src.join(m), &mut hits);
        }
        assert!(hits.is_empty(), "boundary violations: {hits:#?}");
    }

    /// Paths are found in `use` groups and in code, not in comments or strings.
    #[test]
    fn paths_are_read_from_code() {
        let text = r#"
            use crate::{auth::Request, config::{raw::RawConfig, Config}};
            use tokio::net::UdpSocket;
            // crate::radius in a comment
            /* crate::http in a block */
            const S: &str = "crate::cli in a string";
            const R: &str = r"crate::daemon";
            fn f<'a>(c: char) -> bool { c == '"' || c == '\'' && crate::bench::run() }
        "#;
        assert_eq!(
            violations(text),
            vec![
                "crate::config::raw::RawConfig",
                "crate::config::Config",
                "tokio::net::UdpSocket",
                "crate::bench::run",
            ]
        );
    }
}
