//! In-process harness for pipeline tests: the spec's baseline fixture on a fresh SQLite file or
//! a fresh PostgreSQL database, with a pinned clock.
//!
//! Baseline (spec §5): realm `realm1` (default) with resolver `resolver1`; users alice (Alice
//! Smith, alice@example.com, +4915100000001, password `Secret1`), bob, carol (no tokens);
//! HOTP token `HOTP1` of alice with the RFC 4226 key, otplen 6, PIN `pin`.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use otpgate::admin::manage::{EnrollSpec, TokenSetting};
use otpgate::auth::{Authenticator, Origin, Request, Response};
use otpgate::clock::FixedClock;
use otpgate::daemon::{self, KeyMode, Opened};
use otpgate::secret::Secret;
use otpgate::token::{Token, TokenType};

pub const RFC4226_KEY_HEX: &str = "3132333435363738393031323334353637383930";
/// RFC 4226 Appendix D values for counters 0…13 (spec §4.7).
pub const RFC4226: [&str; 14] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489", "403154", "481090", "868912", "736127",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Harness {
    pub auth: Arc<Authenticator>,
    pub clock: Arc<FixedClock>,
    /// Holds the fixture files for the life of the test.
    pub _dir: tempfile::TempDir,
    opened: Option<Opened>,
}

/// A cheap argon2 hash of "Secret1" for the users file (m=64 KiB, t=1).
pub fn hash(password: &str) -> String {
    let hasher = otpgate::crypto::PinHasher::new(cheap_argon2());
    hasher.hash_blocking(password).expect("hash")
}

pub fn cheap_argon2() -> otpgate::crypto::Argon2Settings {
    otpgate::crypto::Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
    }
}

/// A store of the tests' own: a small pool and a patient connect.
pub fn store_settings(database: otpgate::store::Database) -> otpgate::store::StoreSettings {
    otpgate::store::StoreSettings {
        database,
        max_connections: 2,
        connect_timeout: std::time::Duration::from_secs(10),
        commit_timeout: std::time::Duration::from_secs(5),
    }
}

pub fn users_file() -> String {
    format!(
        "[[user]]\nusername = \"alice\"\npassword = \"{}\"\ngivenname = \"Alice\"\nsurname = \"Smith\"\n\
         email = \"alice@example.com\"\nmobile = \"+4915100000001\"\n\
         [[user]]\nusername = \"bob\"\ngivenname = \"Bob\"\nemail = \"bob@example.com\"\n\
         [[user]]\nusername = \"carol\"\npassword = \"{}\"\ngivenname = \"Carol\"\nemail = \"carol@example.com\"\nmobile = \"+4915100000003\"\n",
        hash("Secret1"),
        hash("Carol1"),
    )
}

/// The instant tests start at: 2026-03-10 12:00:05 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 5)
        .single()
        .expect("t0")
}

impl Harness {
    /// Baseline fixture with extra `[system]` lines.
    pub async fn new(backend: Backend, system: &str) -> Self {
        Self::with_config(backend, system, "").await
    }

    /// Baseline fixture with extra `[system]` lines and extra top-level TOML.
    pub async fn with_config(backend: Backend, system: &str, extra: &str) -> Self {
        Self::with_files(backend, system, extra, &[]).await
    }

    /// Like [`Harness::with_config`], with files written into the fixture directory first
    /// (relative path, content, executable).
    pub async fn with_files(
        backend: Backend,
        system: &str,
        extra: &str,
        files: &[(&str, &str, bool)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (rel, content, exec) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                &path,
                content.replace("{dir}", &dir.path().display().to_string()),
            )
            .unwrap();
            if *exec {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        let extra = extra.as_str();
        std::fs::write(dir.path().join("users.toml"), users_file()).expect("users");
        let url = match backend {
            Backend::Sqlite => "sqlite:otpgate.db".to_owned(),
            Backend::Postgres => crate::pg::fresh_database().await,
        };
        let text = format!(
            "node = \"test\"\n[database]\nurl = \"{url}\"\n[secrets]\nkey_file = \"secret.key\"\n\
             [pin]\nargon2_memory_kib = 64\nargon2_iterations = 1\n\
             [system]\n{system}\n\
             [[resolver]]\nname = \"resolver1\"\ntype = \"file\"\npath = \"users.toml\"\n\
             [[realm]]\nname = \"realm1\"\ndefault = true\nresolvers = [\"resolver1\"]\n\
             [[realm]]\nname = \"realm3\"\nresolvers = [\"resolver1\"]\n{extra}\n"
        );
        let path = dir.path().join("otpgate.toml");
        std::fs::write(&path, &text).expect("config");
        let config = otpgate::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let clock = Arc::new(FixedClock::new(t0()));
        let opened = daemon::open_with_clock(&config, KeyMode::CreateIfFresh, clock.clone())
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let h = Self {
            auth: opened.auth.clone(),
            clock,
            _dir: dir,
            opened: Some(opened),
        };
        h.enroll_hotp("HOTP1", "alice", "pin", RFC4226_KEY_HEX)
            .await;
        h
    }

    pub async fn enroll_hotp(&self, serial: &str, user: &str, pin: &str, key_hex: &str) {
        self.enroll(EnrollSpec {
            kind: Some(TokenType::Hotp),
            serial: Some(serial.into()),
            key: Some(otpgate::token::enroll::parse_hex_key(key_hex).expect("key")),
            pin: Some(Secret::new(pin.into())),
            user: Some(user.into()),
            ..Default::default()
        })
        .await;
    }

    pub async fn enroll(&self, spec: EnrollSpec) {
        self.auth
            .enroll(spec, Origin::Cli)
            .await
            .unwrap_or_else(|e| panic!("enroll: {e}"));
    }

    pub async fn set(&self, serial: &str, settings: &[TokenSetting]) {
        self.auth
            .token_set(serial, settings, Origin::Cli)
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
    }

    /// The fixture directory.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Audit rows of one event (newest first).
    pub async fn audit(&self, event: &str) -> Vec<otpgate::store::audit::AuditRow> {
        self.auth.audit().flush().await;
        self.auth
            .store()
            .list_audit(&otpgate::store::audit::AuditFilter {
                event: Some(event.into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    pub async fn check(&self, req: Request) -> Response {
        self.auth.validate_check(req).await.response
    }

    pub async fn user(&self, user: &str, pass: &str) -> Response {
        self.check(Request::user(user, pass)).await
    }

    pub async fn token(&self, serial: &str) -> Token {
        self.auth.token(serial).await.expect("token")
    }

    pub async fn close(mut self) {
        if let Some(o) = self.opened.take() {
            drop(self.auth);
            o.close().await;
        }
    }
}

/// Assert the decision and message of an answer.
#[track_caller]
pub fn assert_answer(r: &Response, authentication: &str, message: &str) {
    assert_eq!(
        r.authentication(),
        Some(authentication),
        "answer: {}",
        r.body
    );
    assert_eq!(r.message(), Some(message), "answer: {}", r.body);
}

/// Generate one `#[tokio::test]` per backend for an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await;
            }
        }
    )*};
}
