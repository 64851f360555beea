//! The `[radius]` configuration, validated: listeners, NAS clients and reply-attribute rules.
//! Reply attributes are resolved through the dictionaries at load, so an unknown attribute or a
//! value of the wrong type is a configuration error, not a surprise at 9:00.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::dictionary::{AttrDef, Dictionary};
use crate::config::validate::{Issues, resolve_path};
use crate::secret::Secret;

/// `[radius]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRadius {
    /// Addresses to listen on (default `["0.0.0.0:1812", "[::]:1812"]`).
    pub listen: Option<Vec<String>>,
    /// Accounting addresses: Accounting-Requests and Status-Server (RFC 5997) answered with
    /// an Accounting-Response (default `["0.0.0.0:1813", "[::]:1813"]` when `listen` is not
    /// given either, else none).
    pub accounting_listen: Option<Vec<String>>,
    /// Directory holding the `dictionary` file (default /usr/share/otpgate/dictionaries).
    pub dictionaries: Option<String>,
    /// Requests processed at once (default 1024). While all are busy, further datagrams wait
    /// in the socket's receive buffer instead of being read.
    pub max_in_flight: Option<usize>,
    /// Bytes of kernel receive buffer per listening socket (default 4 MiB: about 10,000
    /// small Access-Requests): what a burst or a slow disk commit queues up in before the kernel
    /// drops datagrams. The kernel caps it at `net.core.rmem_max` unless otpgate has
    /// `CAP_NET_ADMIN`; the log says when it got less.
    pub receive_buffer: Option<usize>,
    /// Seconds a reply is kept for retransmits (default 30; at most 200,000 replies are kept,
    /// and at least the newest 100,000: the oldest leave first).
    pub duplicate_cache_seconds: Option<u64>,
    /// Reject without the detailed Reply-Message (default false).
    pub hide_reject_detail: Option<bool>,
    /// The Reply-Message of a reject when the detail is hidden (default "Access denied").
    pub reject_message: Option<String>,
    /// Record answered Access-Requests in the shared database, so a NAS that fails over to
    /// another node with the same request gets the same answer without a second OTP check
    /// (default: on with PostgreSQL, off with SQLite).
    pub shared_ledger: Option<bool>,
    /// What a NAS hears while the token store cannot be reached: `"reject"` (default, like
    /// privacyIDEA's RADIUS plugin) or `"no_reply"`, so that the NAS fails over to another
    /// RADIUS server (a node that still reaches the database).
    pub when_store_unavailable: Option<String>,
    #[serde(default, rename = "client")]
    pub clients: Vec<RawClient>,
    #[serde(default, rename = "reply")]
    pub replies: Vec<RawReply>,
    /// RADIUS over TLS (RFC 6614).
    pub radsec: Option<super::radsec::settings::RawRadsec>,
}

/// `[[radius.client]]`: one NAS or a network of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    /// An address or a CIDR network.
    pub address: String,
    pub secret: Option<String>,
    /// A file holding the secret (first line), relative to the configuration file.
    pub secret_file: Option<String>,
    /// Realm for User-Names without one.
    pub realm: Option<String>,
    /// `true` (default), `"auto"` (required once seen), or `false`.
    pub require_message_authenticator: Option<RequireMa>,
    /// Drop Access-Requests with Proxy-State but no Message-Authenticator (default true).
    pub limit_proxy_state: Option<bool>,
    /// Which address the request is about: `packet` (default), `Calling-Station-Id`,
    /// `NAS-IP-Address`.
    pub client_ip_from: Option<String>,
    /// Seconds this NAS waits for an answer before it sends the request again (default 3):
    /// `check-config` warns when a login may wait longer for a mail, an SMS, a webhook or a
    /// remote server.
    pub timeout: Option<f64>,
    /// The NAS speaks RadSec only (`[radius.radsec]`): no secret needed, UDP from it dropped.
    pub radsec: Option<bool>,
    /// RadSec: SHA-256 fingerprints (hex, colons allowed) its certificate must have one of.
    #[serde(default)]
    pub tls_fingerprint: Vec<String>,
    /// RadSec: common names its certificate's subject must have one of.
    #[serde(default)]
    pub tls_common_name: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RequireMa {
    Flag(bool),
    Word(String),
}

/// `[[radius.reply]]`: attributes added to an Access-Accept when the rule matches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReply {
    /// Only users of this realm.
    pub realm: Option<String>,
    /// Only users in this group; `"*"` repeats the attributes for every group of the user.
    pub group: Option<String>,
    /// Only users having this attribute (with `user_attribute_value`: this value).
    pub user_attribute: Option<String>,
    pub user_attribute_value: Option<String>,
    /// Attribute name (optionally `Name:tag`) → value or list of values. Values may use
    /// `{username}`, `{realm}`, `{group}` and `{<user attribute>}`.
    pub attributes: BTreeMap<String, toml::Value>,
}

/// Message-Authenticator policy of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaPolicy {
    Required,
    /// Required once the client has sent a valid one (FreeRADIUS 3.2.5+ behaviour).
    Auto,
    Off,
}

/// Where the client address of a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpFrom {
    Packet,
    CallingStationId,
    NasIpAddress,
}

/// One NAS entry.
#[derive(Debug, Clone)]
pub struct ClientDef {
    pub name: String,
    pub net: IpNet,
    pub secret: Secret<Vec<u8>>,
    pub realm: Option<String>,
    pub require_ma: MaPolicy,
    pub limit_proxy_state: bool,
    pub client_ip_from: ClientIpFrom,
    /// How long the NAS waits for an answer.
    pub timeout: Duration,
    /// Served over RadSec only.
    pub radsec_only: bool,
    /// What its RadSec certificate must be (empty: any the CA signed).
    pub tls_pins: super::radsec::settings::TlsPins,
}

/// A reply attribute value: fixed bytes, or a template encoded per request.
#[derive(Debug, Clone)]
pub enum ReplyValue {
    Fixed(Vec<u8>),
    Template(String),
}

#[derive(Debug, Clone)]
pub struct ReplyAttr {
    pub def: AttrDef,
    pub tag: Option<u8>,
    pub value: ReplyValue,
}

/// A reply rule.
#[derive(Debug, Clone)]
pub struct ReplyRule {
    pub realm: Option<String>,
    pub group: Option<String>,
    pub user_attribute: Option<(String, Option<String>)>,
    pub attributes: Vec<ReplyAttr>,
}

/// Linux charges a small datagram ~830 bytes of buffer (twice the size set counts): 4 MiB
/// held 10,082 65-byte datagrams here, two seconds at 5,000 logins/s, what queues up behind a
/// commit that a disk holds for that long.
pub const DEFAULT_RECEIVE_BUFFER: usize = 4 << 20;

/// `[radius]`, validated.
#[derive(Debug, Clone)]
pub struct RadiusSettings {
    pub listen: Vec<SocketAddr>,
    pub accounting_listen: Vec<SocketAddr>,
    pub dictionary: Arc<Dictionary>,
    pub max_in_flight: usize,
    pub receive_buffer: usize,
    pub dedup_ttl: Duration,
    pub hide_reject_detail: bool,
    pub reject_message: String,
    pub shared_ledger: Option<bool>,
    /// Stay silent instead of rejecting while the token store cannot be reached.
    pub no_reply_when_store_unavailable: bool,
    /// Most specific network first.
    pub clients: Vec<ClientDef>,
    pub replies: Vec<ReplyRule>,
    pub radsec: Option<super::radsec::settings::RadsecSettings>,
}

impl RadiusSettings {
    /// The client entry for a source address (longest prefix wins).
    pub fn client_for(&self, ip: IpAddr) -> Option<&ClientDef> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.clients.iter().find(|c| c.net.contains(&ip))
    }
}

/// Split `Name:tag`.
fn split_tag(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((n, t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => (n, Some(t)),
        _ => (name, None),
    }
}

/// Validate `[radius]`.
/// Socket addresses from `key`, or the defaults when it is not given.
fn addresses(
    given: Option<&[String]>,
    defaults: &[&str],
    key: &str,
    issues: &mut Issues,
) -> Vec<SocketAddr> {
    let owned: Vec<String>;
    let list: &[String] = match given {
        Some(l) => l,
        None => {
            owned = defaults.iter().map(|d| (*d).to_owned()).collect();
            &owned
        }
    };
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match a.parse::<SocketAddr>() {
            Ok(sa) => out.push(sa),
            Err(_) => issues.push(
                format!("{key}[{i}]"),
                format!("{a:?} is not an address:port (use [::1]:1812 for IPv6)"),
            ),
        }
    }
    out
}

pub fn build(
    raw: &RawRadius,
    base: &Path,
    directory: &crate::users::Directory,
    issues: &mut Issues,
) -> Option<RadiusSettings> {
    let listen = addresses(
        raw.listen.as_deref(),
        &["0.0.0.0:1812", "[::]:1812"],
        "radius.listen",
        issues,
    );
    let default_accounting: &[&str] = if raw.listen.is_none() {
        &["0.0.0.0:1813", "[::]:1813"]
    } else {
        &[]
    };
    let accounting_listen = addresses(
        raw.accounting_listen.as_deref(),
        default_accounting,
        "radius.accounting_listen",
        issues,
    );
    if let Some(both) = listen.iter().find(|a| accounting_listen.contains(a)) {
        issues.push(
            "radius.accounting_listen",
            format!("{both} is also in radius.listen"),
        );
    }
    let dict_dir = resolve_path(
        base,
        raw.dictionaries
            .as_deref()
            .unwrap_or("/usr/share/otpgate/dictionaries"),
    );
    let dictionary = match Dictionary::load(&dict_dir.join("dictionary")) {
        Ok(d) => d,
        Err(e) => {
            issues.push("radius.dictionaries", e.to_string());
            Dictionary::default()
        }
    };

    let no_reply_when_store_unavailable = match raw.when_store_unavailable.as_deref() {
        None | Some("reject") => false,
        Some("no_reply") => true,
        Some(other) => {
            issues.push(
                "radius.when_store_unavailable",
                format!("{other:?} is neither \"reject\" nor \"no_reply\""),
            );
            false
        }
    };

    let mut clients: Vec<ClientDef> = Vec::new();
    for (i, c) in raw.clients.iter().enumerate() {
        let key = format!("radius.client[{i}]");
        if clients.iter().any(|x| x.name == c.name) {
            issues.push(
                format!("{key}.name"),
                format!("client {:?} is defined twice", c.name),
            );
        }
        let net = match c.address.parse::<IpNet>() {
            Ok(n) => Some(n.trunc()),
            Err(_) => match c.address.parse::<IpAddr>() {
                Ok(ip) => Some(IpNet::from(ip)),
                Err(_) => {
                    issues.push(
                        format!("{key}.address"),
                        format!(
                            "{:?} is neither an IP address nor a CIDR network",
                            c.address
                        ),
                    );
                    None
                }
            },
        };
        let secret = match (&c.secret, &c.secret_file) {
            (Some(_), Some(_)) => {
                issues.push(
                    format!("{key}.secret"),
                    "give secret or secret_file, not both",
                );
                None
            }
            (Some(s), None) => Some(s.clone()),
            (None, Some(f)) => {
                let path = resolve_path(base, f);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some(text.lines().next().unwrap_or("").to_owned()),
                    Err(e) => {
                        issues.push(
                            format!("{key}.secret_file"),
                            format!("{}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            (None, None) if c.radsec == Some(true) => Some(super::radsec::SECRET.to_owned()),
            (None, None) => {
                issues.push(
                    format!("{key}.secret"),
                    "a client needs secret or secret_file (or radsec = true)",
                );
                None
            }
        };
        let tls_pins = super::radsec::settings::TlsPins::parse(
            &c.tls_fingerprint,
            &c.tls_common_name,
            &key,
            issues,
        );
        if secret.as_deref() == Some("") {
            issues.push(
                format!("{key}.secret"),
                "the shared secret must not be empty",
            );
        }
        let require_ma = match &c.require_message_authenticator {
            None | Some(RequireMa::Flag(true)) => MaPolicy::Required,
            Some(RequireMa::Flag(false)) => MaPolicy::Off,
            Some(RequireMa::Word(w)) if w.eq_ignore_ascii_case("auto") => MaPolicy::Auto,
            Some(RequireMa::Word(w)) => {
                issues.push(
                    format!("{key}.require_message_authenticator"),
                    format!("{w:?}: use true, false or \"auto\""),
                );
                MaPolicy::Required
            }
        };
        let client_ip_from = match c.client_ip_from.as_deref() {
            None | Some("packet") => ClientIpFrom::Packet,
            Some(s) if s.eq_ignore_ascii_case("Calling-Station-Id") => {
                ClientIpFrom::CallingStationId
            }
            Some(s) if s.eq_ignore_ascii_case("NAS-IP-Address") => ClientIpFrom::NasIpAddress,
            Some(other) => {
                issues.push(
                    format!("{key}.client_ip_from"),
                    format!("{other:?}: use packet, Calling-Station-Id or NAS-IP-Address"),
                );
                ClientIpFrom::Packet
            }
        };
        if let Some(realm) = &c.realm
            && directory.realm(realm).is_none()
        {
            issues.push(
                format!("{key}.realm"),
                format!("client {:?} names unknown realm {realm:?}", c.name),
            );
        }
        if let (Some(net), Some(secret)) = (net, secret) {
            clients.push(ClientDef {
                name: c.name.clone(),
                net,
                secret: Secret::new(secret.into_bytes()),
                realm: c.realm.as_ref().map(|r| r.to_ascii_lowercase()),
                require_ma,
                limit_proxy_state: c.limit_proxy_state.unwrap_or(true),
                client_ip_from,
                radsec_only: c.radsec == Some(true),
                tls_pins,
                timeout: match c.timeout {
                    Some(s) if s > 0.0 && s <= 600.0 => Duration::from_secs_f64(s),
                    None => Duration::from_secs(3),
                    Some(s) => {
                        issues.push(
                            format!("{key}.timeout"),
                            format!("{s} is not a number of seconds between 0 and 600"),
                        );
                        Duration::from_secs(3)
                    }
                },
            });
        }
    }
    clients.sort_by_key(|c| std::cmp::Reverse(c.net.prefix_len()));

    let mut replies = Vec::new();
    for (i, r) in raw.replies.iter().enumerate() {
        let key = format!("radius.reply[{i}]");
        if let Some(realm) = &r.realm
            && directory.realm(realm).is_none()
        {
            issues.push(format!("{key}.realm"), format!("unknown realm {realm:?}"));
        }
        let mut attributes = Vec::new();
        for (name, value) in &r.attributes {
            let (attr_name, tag) = split_tag(name);
            let Some(def) = dictionary.attr(attr_name) else {
                issues.push(
                    format!("{key}.attributes.{name}"),
                    format!("unknown attribute {attr_name:?} (not in the dictionaries)"),
                );
                continue;
            };
            let tag = match tag.map(str::parse::<u8>) {
                Some(Ok(t)) if def.has_tag && t <= 31 => Some(t),
                Some(_) => {
                    issues.push(
                        format!("{key}.attributes.{name}"),
                        format!("{attr_name} takes no tag, or the tag is above 31"),
                    );
                    None
                }
                None => None,
            };
            let texts: Vec<String> = match value {
                toml::Value::Array(items) => items.iter().map(value_text).collect(),
                other => vec![value_text(other)],
            };
            for text in texts {
                let value = if text.contains('{') {
                    ReplyValue::Template(text)
                } else {
                    match Dictionary::encode(def, &text, tag) {
                        Ok(bytes) => ReplyValue::Fixed(bytes),
                        Err(e) => {
                            issues.push(format!("{key}.attributes.{name}"), e.to_string());
                            continue;
                        }
                    }
                };
                attributes.push(ReplyAttr {
                    def: def.clone(),
                    tag,
                    value,
                });
            }
        }
        replies.push(ReplyRule {
            realm: r.realm.as_ref().map(|x| x.to_ascii_lowercase()),
            group: r.group.clone(),
            user_attribute: r
                .user_attribute
                .clone()
                .map(|a| (a, r.user_attribute_value.clone())),
            attributes,
        });
    }

    Some(RadiusSettings {
        listen,
        accounting_listen,
        dictionary: Arc::new(dictionary),
        max_in_flight: raw.max_in_flight.unwrap_or(1024).max(1),
        receive_buffer: raw.receive_buffer.unwrap_or(DEFAULT_RECEIVE_BUFFER),
        dedup_ttl: Duration::from_secs(raw.duplicate_cache_seconds.unwrap_or(30)),
        hide_reject_detail: raw.hide_reject_detail.unwrap_or(false),
        reject_message: raw
            .reject_message
            .clone()
            .unwrap_or_else(|| "Access denied".into()),
        shared_ledger: raw.shared_ledger,
        no_reply_when_store_unavailable,
        clients,
        replies,
        radsec: raw
            .radsec
            .as_ref()
            .and_then(|r| super::radsec::settings::build(r, base, issues)),
    })
}

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
