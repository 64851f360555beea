//! The serde mirror of the TOML file. Every struct denies unknown keys; the `///` comments are
//! the reference documentation of each key, and docs/configuration.md is extracted from them:
//! change both together.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::definition::RawEvent;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This node's name in audit rows and cluster-wide event counters (default: host name).
    pub node: Option<String>,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub secrets: RawSecrets,
    /// argon2id cost of PIN hashes.
    #[serde(default)]
    pub pin: RawPin,
    /// privacyIDEA system settings, under their privacyIDEA names.
    #[serde(default)]
    pub system: RawSystem,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub enrollment: RawEnrollment,
    /// The RADIUS front-end (absent: no RADIUS listener).
    pub radius: Option<crate::radius::settings::RawRadius>,
    pub ldap_proxy: Option<crate::ldap::RawLdapProxy>,
    /// The HTTP listener for `/metrics`, `/healthz` and optionally `/validate/check` (absent: none).
    pub http: Option<RawHttp>,
    /// Email tokens: where and how the OTP is sent.
    #[serde(default)]
    pub email_token: RawEmailToken,
    /// SMS tokens: where and how the OTP is sent.
    #[serde(default)]
    pub sms_token: RawSmsToken,
    /// Settings of the event handler modules.
    #[serde(default)]
    pub handlers: RawHandlers,
    /// Event handler definitions (privacyIDEA's event handlers).
    #[serde(default, rename = "event")]
    pub events: Vec<RawEvent>,
    /// SMTP servers for email tokens and notifications.
    #[serde(default)]
    pub smtp: Vec<RawSmtp>,
    /// HTTP SMS gateways for SMS tokens and notifications.
    #[serde(default)]
    pub sms_gateway: Vec<RawSmsGateway>,
    /// Other authentication servers: privacyIDEA or otpgate over HTTP(S), or RADIUS servers
    /// (Federation handler, passthru policy).
    #[serde(default)]
    pub remote: Vec<RawRemote>,
    /// Authentication and authorization policies.
    #[serde(default)]
    pub policy: Vec<crate::auth::policy::RawPolicy>,
    /// Service accounts of the HTTP API (`/auth`, then `/validate/triggerchallenge`).
    #[serde(default)]
    pub api_account: Vec<crate::http::settings::RawApiAccount>,
    /// User resolvers.
    #[serde(default, rename = "resolver")]
    pub resolvers: Vec<RawResolver>,
    /// Realms: named, ordered lists of resolvers; exactly one may be the default.
    #[serde(default, rename = "realm")]
    pub realms: Vec<RawRealm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// `sqlite:PATH` (relative to this file) or `postgres://user:password@host:port/db`.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Pool size (default 8).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Seconds to wait for a connection before a request fails (default 5).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// PostgreSQL: seconds a group commit may take before logins stop waiting for it
    /// (default 5; a synchronous standby that is gone makes commits wait for ever).
    #[serde(default = "default_commit_timeout")]
    pub commit_timeout: u64,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: default_db_url(),
            max_connections: default_max_connections(),
            connect_timeout: default_connect_timeout(),
            commit_timeout: default_commit_timeout(),
        }
    }
}

fn default_db_url() -> String {
    "sqlite:/var/lib/otpgate/otpgate.db".into()
}
fn default_max_connections() -> u32 {
    8
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_commit_timeout() -> u64 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// The 32-byte master key sealing token secrets (created by `otpgate init`, mode 0600).
    #[serde(default = "default_key_file")]
    pub key_file: String,
}

impl Default for RawSecrets {
    fn default() -> Self {
        Self {
            key_file: default_key_file(),
        }
    }
}

fn default_key_file() -> String {
    "/etc/otpgate/secret.key".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPin {
    /// argon2id memory in KiB (default 19456 = 19 MiB, OWASP).
    pub argon2_memory_kib: Option<u32>,
    /// argon2id passes (default 2).
    pub argon2_iterations: Option<u32>,
    /// argon2id lanes (default 1).
    pub argon2_parallelism: Option<u32>,
    /// Concurrent hash computations (default: number of CPUs).
    pub max_concurrent: Option<usize>,
}

/// privacyIDEA system config. Keys keep their privacyIDEA spelling.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    /// PIN before OTP (default true).
    #[serde(rename = "PrependPin")]
    pub prepend_pin: Option<bool>,
    /// A wrong PIN increases the failcount (default true).
    #[serde(rename = "IncFailCountOnFalsePin")]
    pub inc_fail_count_on_false_pin: Option<bool>,
    /// Minutes after which a locked token is cleared automatically (0 = never).
    pub failcounter_clear_timeout: Option<i64>,
    /// Do not count authentications in `count_auth` / `count_auth_success`.
    pub no_auth_counter: Option<bool>,
    /// Split `user@realm` (default true).
    #[serde(rename = "splitAtSign")]
    pub split_at_sign: Option<bool>,
    /// Resync an OATH token from two consecutive OTPs at login (default false).
    #[serde(rename = "AutoResync")]
    pub auto_resync: Option<bool>,
    /// Seconds within which the second OTP must follow (default 300).
    #[serde(rename = "AutoResyncTimeout")]
    pub auto_resync_timeout: Option<i64>,
    /// Look-ahead for resync (default 1000).
    #[serde(rename = "DefaultSyncWindow")]
    pub sync_window: Option<u64>,
    /// maxfail of new tokens (default 10).
    #[serde(rename = "DefaultMaxFailCount")]
    pub default_maxfail: Option<i64>,
    /// HOTP look-ahead of new tokens (default 10).
    #[serde(rename = "DefaultCountWindow")]
    pub default_count_window: Option<i64>,
    /// OTP length of new tokens (default 6).
    #[serde(rename = "DefaultOtpLen")]
    pub default_otplen: Option<i64>,
    /// Seconds a challenge stays valid (default 120).
    #[serde(rename = "DefaultChallengeValidityTime")]
    pub challenge_validity: Option<i64>,
    /// Re-run failcounter auto-clear after a PIN-matching failure (default false).
    #[serde(rename = "ResetFailcounterOnPIN")]
    pub reset_failcounter_on_pin: Option<bool>,
    #[serde(default)]
    pub totp: RawTotp,
    #[serde(default)]
    pub hotp: RawHotp,
}

/// `totp.*` system settings.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTotp {
    /// Seconds per step (default 30).
    #[serde(rename = "timeStep")]
    pub time_step: Option<i64>,
    /// Seconds either side of now that are searched (default 180).
    #[serde(rename = "timeWindow")]
    pub time_window: Option<i64>,
    /// HMAC hash of new TOTP tokens (default sha1).
    pub hashlib: Option<String>,
}

/// `hotp.*` system settings.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHotp {
    /// HMAC hash of new HOTP tokens (default sha1).
    pub hashlib: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Rows that may wait for the batch writer (default 8192).
    pub queue_size: Option<usize>,
    /// A request's own row is in the database before its answer leaves (default true), so a
    /// crash never loses the row of an answer a client saw. `false` queues it with the rows
    /// of handler runs: fewer commits per login, and a crash may lose the rows of the last
    /// few milliseconds' answers (docs/performance.md says what each costs).
    pub before_answer: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEnrollment {
    /// Issuer shown by authenticator apps (default "otpgate").
    pub issuer: Option<String>,
}

/// `[http]`: the operations endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Address to listen on, e.g. `127.0.0.1:9812`. Serves `/metrics` (Prometheus) and
    /// `/healthz`; keep it on a management network.
    pub listen: String,
    /// Also serve a privacyIDEA-compatible `/validate/check` (default false): lets another
    /// otpgate or privacyIDEA forward to this one (Federation handler).
    #[serde(default)]
    pub validate_check: bool,
    /// Peers whose `client` parameter is taken as the client address (proxies, another
    /// otpgate forwarding with `forward_client_ip`), as addresses or CIDRs.
    #[serde(default)]
    pub client_override_from: Vec<String>,
    /// PEM certificate chain and key: the listener speaks HTTPS (clients send passwords).
    pub tls_certificate: Option<String>,
    pub tls_key: Option<String>,
    /// Seconds a token from `/auth` stays valid (default 3600).
    pub token_lifetime: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    pub name: String,
    /// `file`, `ldap` or `sql`.
    #[serde(rename = "type")]
    pub kind: String,
    /// file: the users file, relative to this file.
    pub path: Option<String>,

    /// ldap: `ldap://` or `ldaps://` URLs, tried in order.
    #[serde(default)]
    pub servers: Vec<String>,
    pub start_tls: Option<bool>,
    /// ldap: PEM file of the CA(s) that signed the servers' certificates.
    pub ca_file: Option<String>,
    pub verify_certificate: Option<bool>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub bind_password_file: Option<String>,
    pub base_dn: Option<String>,
    /// ldap: `sub` (default), `one` or `base`.
    pub scope: Option<String>,
    /// ldap: the filter every user entry matches.
    pub filter: Option<String>,
    pub login_attributes: Option<Vec<String>>,
    /// ldap: privacyIDEA name → LDAP attribute; sql: privacyIDEA name → column.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// ldap: the user entry's attribute naming its groups (`memberOf`).
    pub groups_attribute: Option<String>,
    pub group_base_dn: Option<String>,
    pub group_filter: Option<String>,
    pub group_member_attribute: Option<String>,
    /// ldap: `false` (default), `true`/`"expand"` or `"in_chain"` (Active Directory).
    pub nested_groups: Option<toml::Value>,
    pub active_directory: Option<bool>,
    pub allow_disabled: Option<bool>,
    pub page_size: Option<i32>,
    pub size_limit: Option<i32>,
    pub time_limit: Option<i32>,
    pub connect_timeout: Option<f64>,
    /// ldap, sql: seconds one operation may take.
    pub timeout: Option<f64>,
    pub idle_timeout: Option<f64>,
    pub pool_size: Option<u32>,
    /// Seconds a found user is kept (0: not cached).
    pub cache_ttl: Option<f64>,
    pub cache_size: Option<usize>,

    /// sql: `postgres://…`, `mysql://…`/`mariadb://…`, or `sqlite:` and a path.
    pub database: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub table: Option<String>,
    /// sql: a condition every user row meets.
    #[serde(rename = "where")]
    pub where_: Option<String>,
    /// sql: a SELECT with one `?`, the login; its column names are privacyIDEA names.
    pub query: Option<String>,
    pub list_query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealm {
    pub name: String,
    /// Resolvers: names in priority order, or `{ name, priority }` (lower first).
    pub resolvers: Vec<RawRealmResolver>,
    /// The realm for logins without one (exactly one realm may say true).
    #[serde(default)]
    pub default: bool,
    /// Other names of the realm in logins: `CORP` for `CORP\alice`, `corp.example` for
    /// `alice@corp.example`.
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRealmResolver {
    Name(String),
    Ranked { name: String, priority: i64 },
}

/// `[email_token]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEmailToken {
    /// The `[[smtp]]` server for tokens without `smtp_identifier` (default: the first).
    pub smtp: Option<String>,
    /// Default "Your OTP".
    pub subject: Option<String>,
    /// Default "{otp}"; tags `{otp}`, `{serial}`, `{user}`.
    pub body: Option<String>,
    /// Seconds the emailed OTP stays valid (privacyIDEA `email.validtime`, default 120).
    pub validity: Option<i64>,
}

/// `[sms_token]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSmsToken {
    /// The `[[sms_gateway]]` for tokens without `sms_identifier` (default: the first).
    pub gateway: Option<String>,
    /// Default "{otp}"; tags `{otp}`, `{serial}`, `{user}`.
    pub text: Option<String>,
    /// Seconds the OTP stays valid (privacyIDEA `sms.validtime`, default 120).
    pub validity: Option<i64>,
}

/// `[handlers]`: where the handler modules read and write.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHandlers {
    /// Scripts the `Script` handler may run (privacyIDEA's `PI_SCRIPT_HANDLER_DIRECTORY`;
    /// default /etc/otpgate/scripts).
    pub script_directory: Option<String>,
    /// Seconds a script run with `background = wait` may take before it is killed (default 30).
    pub script_timeout: Option<u64>,
    /// Where `savefile` writes (default /var/lib/otpgate/notifications).
    pub spool_directory: Option<String>,
    /// The `{url}` tag: this installation's public base URL.
    pub base_url: Option<String>,
    /// Seconds a webhook may take (default 2).
    pub webhook_timeout: Option<f64>,
}

/// `[[smtp]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// The identifier handlers and email tokens use (`emailconfig`, `smtp_identifier`).
    pub name: String,
    pub host: String,
    /// Default: 25 (none), 587 (starttls), 465 (tls).
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A file holding the password (first line), relative to this file.
    pub password_file: Option<String>,
    /// The From address.
    pub sender: String,
    /// Seconds a whole send may take, from connecting to the server's last answer (default
    /// 2): a login whose mail cannot go out is answered within it.
    pub timeout: Option<f64>,
}

/// `[[sms_gateway]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmsGateway {
    pub name: String,
    /// The gateway URL; may use `{phone}`, `{otp}`, `{message}`.
    pub url: String,
    /// `POST` (default) or `GET`.
    pub method: Option<String>,
    /// `form` (default) or `json`.
    pub body: Option<String>,
    /// Parameters with `{phone}`, `{otp}`, `{message}` tags.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Status codes meaning success (default: any 2xx).
    #[serde(default)]
    pub success_status: Vec<u16>,
    /// A regular expression the answer body must match.
    pub success_regex: Option<String>,
    /// Seconds a whole request to the gateway may take (default 2).
    pub timeout: Option<f64>,
}

/// `[[remote]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    pub name: String,
    /// `privacyidea` (also another otpgate's `/validate/check`) or `radius`.
    #[serde(rename = "type")]
    pub kind: String,
    /// privacyidea: the base URL, e.g. `https://pi.example.com`.
    pub url: Option<String>,
    /// radius: `host:port`.
    pub address: Option<String>,
    /// radius: the shared secret (or `secret_file`).
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    /// Seconds per try (default 1; a RADIUS remote is tried `retries` times).
    pub timeout: Option<f64>,
    /// radius: tries (default 2).
    pub retries: Option<u32>,
    /// privacyidea over https: verify the certificate (default true).
    pub tls_verify: Option<bool>,
}
