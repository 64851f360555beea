//! The spec's baseline fixture (§5) for the core's unit tests, built from the core's own parts
//! (no configuration file, no daemon): realm `realm1` with resolver `resolver1` and users
//! alice (password `Secret1`), bob and carol; alice's HOTP token `HOTP1` with the RFC 4226
//! key and PIN `pin`; a clock pinned at [`t0`]. Policies come as `[[policy]]` TOML.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::policy::{Policies, RawPolicy};
use super::{AuthConfig, Authenticator, Parts, SystemSettings};
use crate::admin::manage::{EnrollSpec, TokenSetting};
use crate::clock::FixedClock;
use crate::crypto::{Argon2Settings, MasterKey, PinHasher};
use crate::event::{Definitions, HandlerSettings};
use crate::issues::Issues;
use crate::message::upstream::NoUpstreams;
use crate::message::{Origin, Request, Response};
use crate::secret::Secret;
use crate::store::audit::AuditSink;
use crate::store::{Database, Store, StoreSettings};
use crate::token::{Token, TokenType};
use crate::users::{Directory, FileResolver, Realm, Resolver, UserDetails, UserRecord};

const RFC4226_KEY: &str = "3132333435363738393031323334353637383930";

/// HOTP tokens answer a PIN alone with a challenge.
pub(crate) const CHALLENGE_HOTP: &str = r#"
    [[policy]]
    name = "cr"
    scope = "authentication"
    actions = { challenge_response = "hotp" }
"#;

/// 2026-03-10 12:00:05 UTC.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 5)
        .single()
        .unwrap_or_default()
}

pub(crate) struct Fixture {
    pub(crate) auth: Authenticator,
    pub(crate) clock: Arc<FixedClock>,
    _dir: tempfile::TempDir,
}

fn cheap() -> Argon2Settings {
    Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
    }
}

fn user(login: &str, password: Option<&str>, pins: &PinHasher) -> Arc<UserRecord> {
    let hash = password.map(|p| Secret::new(pins.hash_blocking(p).unwrap_or_default()));
    let details = UserDetails {
        email: format!("{login}@example.com"),
        ..Default::default()
    };
    Arc::new(UserRecord::new(login, hash, details))
}

impl Fixture {
    /// The baseline with these `[[policy]]` tables and `system` settings.
    pub(crate) async fn new(policies: &str, system: SystemSettings) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let pins = PinHasher::new(cheap());
        let users = [
            user("alice", Some("Secret1"), &pins),
            user("bob", None, &pins),
            user("carol", Some("Carol1"), &pins),
        ];
        let resolver =
            FileResolver::from_users("resolver1", users).unwrap_or_else(|e| panic!("{e}"));
        let directory = Directory::new(
            vec![Realm {
                aliases: vec![],
                name: "realm1".into(),
                resolvers: vec!["resolver1".into()],
                default: true,
            }],
            vec![Resolver::File(resolver)],
            true,
        );
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            policy: Vec<RawPolicy>,
        }
        let raw: Raw = toml::from_str(policies).unwrap_or_else(|e| panic!("policies: {e}"));
        let mut issues = Issues::default();
        let policies = Policies::build(&raw.policy, &[], &mut issues);
        assert!(issues.is_empty(), "{:?}", issues.into_vec());
        let store = Store::open(&StoreSettings {
            database: Database::Sqlite(dir.path().join("otpgate.db")),
            max_connections: 2,
            connect_timeout: std::time::Duration::from_secs(5),
            commit_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
        let key = MasterKey::create(&dir.path().join("secret.key"))
            .unwrap_or_else(|e| panic!("key: {e}"));
        let (audit, _writer) = AuditSink::start(store.clone(), 1024);
        let clock = Arc::new(FixedClock::new(t0()));
        let auth = Authenticator::new(Parts {
            store,
            key: Arc::new(key),
            pins,
            audit,
            clock: clock.clone(),
            node: "test".into(),
            config: AuthConfig {
                directory: Arc::new(directory),
                events: Arc::new(Definitions::from_list(Vec::new())),
                handlers: HandlerSettings::default(),
                notifier: Arc::new(crate::notify::Notifier::new(&[], &[])),
                policies: Arc::new(policies),
                system,
                delivery: Default::default(),
                issuer: "otpgate".into(),
                totp_hashlib: crate::token::HashLib::Sha1,
                audit_before_answer: true,
            },
            upstreams: Arc::new(NoUpstreams),
        });
        let f = Self {
            auth,
            clock,
            _dir: dir,
        };
        f.enroll_hotp("HOTP1", "alice", "pin").await;
        f
    }

    pub(crate) async fn baseline() -> Self {
        Self::new("", SystemSettings::default()).await
    }

    pub(crate) async fn enroll_hotp(&self, serial: &str, user: &str, pin: &str) {
        self.auth
            .enroll_token(
                EnrollSpec {
                    kind: Some(TokenType::Hotp),
                    serial: Some(serial.into()),
                    key: crate::token::enroll::parse_hex_key(RFC4226_KEY).ok(),
                    pin: Some(Secret::new(pin.into())),
                    user: Some(user.into()),
                    ..Default::default()
                },
                Origin::Cli,
            )
            .await
            .unwrap_or_else(|e| panic!("enroll: {e}"));
    }

    pub(crate) async fn set(&self, serial: &str, settings: &[TokenSetting]) {
        self.auth
            .token_set(serial, settings, Origin::Cli)
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
    }

    pub(crate) async fn check(&self, req: Request) -> Response {
        self.auth.validate_check(req).await.response
    }

    pub(crate) async fn token(&self, serial: &str) -> Token {
        self.auth
            .token(serial)
            .await
            .unwrap_or_else(|e| panic!("token: {e}"))
    }
}

/// What a row does to the baseline before its request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Before {
    /// A request for alice with this pass.
    Login(&'static str),
    Failcount(i64),
    Maxfail(i64),
    CountAuthMax(i64),
    ValidityEnd(&'static str),
    Disable,
    Revoke,
    /// Another HOTP token of alice's with the same key and this PIN.
    SecondToken(&'static str),
    /// The clock moves on by this many seconds.
    Wait(i64),
}

impl Fixture {
    pub(crate) async fn prepare(&self, steps: &[Before]) {
        for step in steps {
            match *step {
                Before::Login(pass) => {
                    self.check(Request::user("alice", pass)).await;
                }
                Before::Failcount(n) => self.set("HOTP1", &[TokenSetting::Failcount(n)]).await,
                Before::Maxfail(n) => self.set("HOTP1", &[TokenSetting::Maxfail(n)]).await,
                Before::CountAuthMax(n) => {
                    self.set("HOTP1", &[TokenSetting::CountAuthMax(n)]).await;
                }
                Before::ValidityEnd(at) => {
                    self.set("HOTP1", &[TokenSetting::ValidityEnd(at.into())])
                        .await;
                }
                Before::Disable => self
                    .auth
                    .token_enable("HOTP1", false, Origin::Cli)
                    .await
                    .unwrap_or_else(|e| panic!("disable: {e}")),
                Before::Revoke => self
                    .auth
                    .token_revoke("HOTP1", Origin::Cli)
                    .await
                    .unwrap_or_else(|e| panic!("revoke: {e}")),
                Before::SecondToken(pin) => self.enroll_hotp("HOTP2", "alice", pin).await,
                Before::Wait(s) => self.clock.advance(chrono::TimeDelta::seconds(s)),
            }
        }
    }
}

/// The decision and message of an answer, for a table's row.
pub(crate) fn answer(r: &Response) -> (String, String) {
    let decision = match r.authentication() {
        Some(a) => a.to_owned(),
        None => format!("error {}", r.status_code),
    };
    let message = r
        .message()
        .map(str::to_owned)
        .or_else(|| {
            r.body
                .pointer("/result/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (decision, message)
}
