//! The condition catalogue (spec §2.3): parsed when the configuration is loaded, evaluated
//! against a [`Context`].
//!
//! Each evaluation says whether the condition holds, fails (and why), or cannot be decided
//! because its object is unknown (no serial, no single token, no client address …). Under
//! privacyIDEA's "skip when unknown" rule (§2.1) an unknown condition counts as fulfilled; a
//! definition can switch that off with `skip_unknown = false`.

use std::net::IpAddr;

use chrono::TimeDelta;
use ipnet::IpNet;
use regex::Regex;
use serde_json::Value;

use super::compare::{Comparison, Kind, replace_now};
use super::context::Context;
use super::is_true;
use crate::message::nas::{self, NasMatch};
use crate::message::response::json_at;
use crate::store::StoreError;

/// The outcome of one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Holds,
    Fails(String),
    /// The object the condition reads is not known.
    Unknown(String),
}

/// `client_ip`: positive and excluded networks.
#[derive(Debug, Clone)]
pub struct ClientNets {
    include: Vec<IpNet>,
    exclude: Vec<IpNet>,
}

impl ClientNets {
    fn parse(text: &str) -> Result<Self, String> {
        let mut nets = Self {
            include: Vec::new(),
            exclude: Vec::new(),
        };
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (negated, addr) = match item.strip_prefix('-').or_else(|| item.strip_prefix('!')) {
                Some(rest) => (true, rest.trim()),
                None => (false, item),
            };
            let net = addr
                .parse::<IpNet>()
                .or_else(|_| addr.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{addr:?} is neither an IP address nor a network"))?;
            if negated {
                nets.exclude.push(net);
            } else {
                nets.include.push(net);
            }
        }
        Ok(nets)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.include.iter().any(|n| n.contains(&ip))
            && !self.exclude.iter().any(|n| n.contains(&ip))
    }
}

/// One configured condition.
#[derive(Debug, Clone)]
pub enum Condition {
    Realm(Vec<String>),
    Resolver(Vec<String>),
    UserInfo(Comparison),
    UserTokenNumber(Comparison),
    LoggedInUser(String),
    ResultValue(bool),
    ResultStatus(bool),
    ResultAuthentication(String),
    DetailMessage(Regex),
    DetailErrorMessage(Regex),
    ClientIp(ClientNets),
    Serial(Regex),
    TokenRealm(Vec<String>),
    TokenResolver(Vec<String>),
    TokenType(Vec<String>),
    TokenLocked(bool),
    TokenHasOwner(bool),
    TokenIsOrphaned(bool),
    TokenValidityPeriod(bool),
    OtpCounter(Comparison),
    CountAuth(Comparison),
    CountAuthSuccess(Comparison),
    CountAuthFail(Comparison),
    Failcounter(Comparison),
    LastAuth(TimeDelta),
    TokenInfo(Comparison),
    RolloutState(String),
    Counter(Comparison),
    ChallengeSession(Regex),
    ChallengeExpired(bool),
    /// `radius_client`, `nas_identifier`, `nas_ip_address`, `called_station_id`.
    Nas(NasMatch),
}

/// Every condition name otpgate knows.
pub const NAMES: &[&str] = &[
    "realm",
    "resolver",
    "user_info",
    "user_token_number",
    "logged_in_user",
    "result_value",
    "result_status",
    "result_authentication",
    "detail_message",
    "detail_error_message",
    "client_ip",
    "serial",
    "tokenrealm",
    "tokenresolver",
    "tokentype",
    "token_locked",
    "token_has_owner",
    "token_is_orphaned",
    "token_validity_period",
    "otp_counter",
    "count_auth",
    "count_auth_success",
    "count_auth_fail",
    "failcounter",
    "last_auth",
    "tokeninfo",
    "rollout_state",
    "counter",
    "challenge_session",
    "challenge_expired",
    "radius_client",
    "nas_identifier",
    "nas_ip_address",
    "called_station_id",
];

const CONTAINER_CONDITIONS: &[&str] = &[
    "user_container_number",
    "token_is_in_container",
    "container_state",
    "container_exact_state",
    "container_has_owner",
    "container_type",
    "container_has_token",
    "container_realm",
    "container_resolver",
    "container_info",
    "container_last_authentication",
    "container_last_synchronization",
];

/// Comma list, entries trimmed (errata 9).
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn regex(text: &str, anchor_start: bool) -> Result<Regex, String> {
    let pattern = if anchor_start {
        format!("^(?:{text})")
    } else {
        text.to_owned()
    };
    Regex::new(&pattern).map_err(|e| format!("bad regular expression {text:?}: {e}"))
}

fn comparison(text: &str, kind: Kind) -> Result<Comparison, String> {
    Comparison::parse(text, kind).map_err(|e| e.to_string())
}

/// A `{…}` placeholder other than `{now}` in a tokeninfo condition (a format error upstream).
fn check_tags(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let after = rest.get(i + 1..).unwrap_or("");
        let end = after.find('}').unwrap_or(after.len());
        let tag = after.get(..end).unwrap_or("");
        if tag != "now" {
            return Err(format!(
                "unknown tag {{{tag}}} (only {{now}} is supported in conditions)"
            ));
        }
        rest = after.get(end..).unwrap_or("");
    }
    Ok(())
}

impl Condition {
    /// Parse a condition; errors are configuration errors.
    pub fn parse(name: &str, value: &str) -> Result<Self, String> {
        let int = |v: &str| comparison(v, Kind::Integer);
        let flag = is_true(value);
        Ok(match name {
            "realm" => Self::Realm(list(value)),
            "resolver" => Self::Resolver(list(value)),
            "user_info" => Self::UserInfo(comparison(value, Kind::Generic)?),
            "user_token_number" => Self::UserTokenNumber(int(value)?),
            "logged_in_user" => match value.trim() {
                v @ ("admin" | "user") => Self::LoggedInUser(v.to_owned()),
                other => return Err(format!("{other:?}: use admin or user")),
            },
            "result_value" => Self::ResultValue(flag),
            "result_status" => Self::ResultStatus(flag),
            "result_authentication" => match value.trim() {
                v @ ("ACCEPT" | "REJECT" | "CHALLENGE" | "DECLINED") => {
                    Self::ResultAuthentication(v.to_owned())
                }
                other => {
                    return Err(format!(
                        "{other:?}: use ACCEPT, REJECT, CHALLENGE or DECLINED"
                    ));
                }
            },
            "detail_message" => Self::DetailMessage(regex(value, false)?),
            "detail_error_message" => Self::DetailErrorMessage(regex(value, false)?),
            "client_ip" => Self::ClientIp(ClientNets::parse(value)?),
            "serial" => Self::Serial(regex(value, true)?),
            "tokenrealm" => Self::TokenRealm(list(value)),
            "tokenresolver" => Self::TokenResolver(list(value)),
            "tokentype" => {
                Self::TokenType(list(value).iter().map(|t| t.to_ascii_lowercase()).collect())
            }
            "token_locked" => Self::TokenLocked(flag),
            "token_has_owner" => Self::TokenHasOwner(flag),
            "token_is_orphaned" => Self::TokenIsOrphaned(flag),
            "token_validity_period" => Self::TokenValidityPeriod(flag),
            "otp_counter" => Self::OtpCounter(int(value)?),
            "count_auth" => Self::CountAuth(int(value)?),
            "count_auth_success" => Self::CountAuthSuccess(int(value)?),
            "count_auth_fail" => Self::CountAuthFail(int(value)?),
            "failcounter" => Self::Failcounter(int(value)?),
            "last_auth" => match value.trim() {
                v if v.ends_with('w') => return Err(format!("{v:?}: use s, m, h, d or y")),
                v => Self::LastAuth(
                    crate::dates::parse_duration(v)
                        .ok_or_else(|| format!("{v:?} is not a duration like 180d"))?,
                ),
            },
            "tokeninfo" => {
                check_tags(value)?;
                Self::TokenInfo(comparison(value, Kind::Generic)?)
            }
            "rollout_state" => Self::RolloutState(value.trim().to_owned()),
            "counter" => Self::Counter(comparison(value, Kind::Generic)?),
            "challenge_session" => Self::ChallengeSession(regex(value, true)?),
            "challenge_expired" => Self::ChallengeExpired(flag),
            n if nas::KEYS.iter().any(|(k, _)| *k == n) => {
                // one `/regex/` (it may hold commas), else a comma list of exact values
                let v = value.trim();
                let values = if v.len() > 1 && v.starts_with('/') && v.ends_with('/') {
                    vec![v.to_owned()]
                } else {
                    list(v)
                };
                match NasMatch::parse(n, &values) {
                    Some(m) => Self::Nas(m?),
                    None => return Err(format!("unknown condition {n:?}")),
                }
            }
            n if CONTAINER_CONDITIONS.contains(&n) => {
                return Err(format!(
                    "{n}: token containers are not supported by otpgate"
                ));
            }
            other => return Err(format!("unknown condition {other:?}")),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Realm(_) => "realm",
            Self::Resolver(_) => "resolver",
            Self::UserInfo(_) => "user_info",
            Self::UserTokenNumber(_) => "user_token_number",
            Self::LoggedInUser(_) => "logged_in_user",
            Self::ResultValue(_) => "result_value",
            Self::ResultStatus(_) => "result_status",
            Self::ResultAuthentication(_) => "result_authentication",
            Self::DetailMessage(_) => "detail_message",
            Self::DetailErrorMessage(_) => "detail_error_message",
            Self::ClientIp(_) => "client_ip",
            Self::Serial(_) => "serial",
            Self::TokenRealm(_) => "tokenrealm",
            Self::TokenResolver(_) => "tokenresolver",
            Self::TokenType(_) => "tokentype",
            Self::TokenLocked(_) => "token_locked",
            Self::TokenHasOwner(_) => "token_has_owner",
            Self::TokenIsOrphaned(_) => "token_is_orphaned",
            Self::TokenValidityPeriod(_) => "token_validity_period",
            Self::OtpCounter(_) => "otp_counter",
            Self::CountAuth(_) => "count_auth",
            Self::CountAuthSuccess(_) => "count_auth_success",
            Self::CountAuthFail(_) => "count_auth_fail",
            Self::Failcounter(_) => "failcounter",
            Self::LastAuth(_) => "last_auth",
            Self::TokenInfo(_) => "tokeninfo",
            Self::RolloutState(_) => "rollout_state",
            Self::Counter(_) => "counter",
            Self::ChallengeSession(_) => "challenge_session",
            Self::ChallengeExpired(_) => "challenge_expired",
            Self::Nas(m) => m.key,
        }
    }

    /// Evaluate against the context. A store error is an evaluation failure (the caller
    /// isolates it like a handler failure).
    pub async fn check(&self, ctx: &mut Context<'_, '_>) -> Result<Check, StoreError> {
        use Check::{Fails, Holds, Unknown};
        let explain = ctx.explains();
        let yes = |b: bool, why: &dyn Fn() -> String| match (b, explain) {
            (true, _) => Holds,
            (false, true) => Fails(why()),
            (false, false) => Fails(String::new()),
        };
        Ok(match self {
            Self::Realm(allowed) => {
                let realm = ctx.user().await?.map_or("", |u| u.realm.as_str());
                yes(allowed.iter().any(|a| a == realm), &|| {
                    format!("user realm {realm:?} is not listed")
                })
            }
            Self::Resolver(allowed) => {
                let res = ctx.user().await?.map_or("", |u| u.resolver.as_str());
                yes(allowed.iter().any(|a| a == res), &|| {
                    format!("user resolver {res:?} is not listed")
                })
            }
            Self::UserInfo(c) => {
                let Some(user) = ctx.user().await?.cloned() else {
                    return Ok(Fails("no user".into()));
                };
                let Some(actual) = user.record.attribute(&c.left) else {
                    return Ok(Fails(format!("the user has no attribute {:?}", c.left)));
                };
                generic(c, &actual, ctx)
            }
            Self::UserTokenNumber(c) => match ctx.user_token_count().await? {
                None => Unknown("no user".into()),
                Some(n) => yes(c.holds_int(n), &|| format!("the user has {n} token(s)")),
            },
            Self::LoggedInUser(role) => {
                let actual = ctx.logged_in_role();
                yes(actual == role, &|| format!("logged-in role is {actual}"))
            }
            Self::ResultValue(want) => {
                let v = response_bool(ctx, "/result/value");
                yes(v == *want, &|| format!("result.value is {v}"))
            }
            Self::ResultStatus(want) => {
                let v = response_bool(ctx, "/result/status");
                yes(v == *want, &|| format!("result.status is {v}"))
            }
            Self::ResultAuthentication(want) => {
                let v = ctx
                    .response()
                    .and_then(|r| r.authentication())
                    .unwrap_or("")
                    .to_owned();
                yes(&v == want, &|| format!("result.authentication is {v:?}"))
            }
            Self::DetailMessage(re) => {
                let m = response_str(ctx, &["/detail/message"]);
                yes(re.is_match(&m), &|| {
                    format!("detail.message {m:?} does not match")
                })
            }
            Self::DetailErrorMessage(re) => {
                let m = response_str(ctx, &["/detail/error/message", "/result/error/message"]);
                yes(re.is_match(&m), &|| {
                    format!("error message {m:?} does not match")
                })
            }
            Self::ClientIp(nets) => match ctx.client() {
                None => Unknown("no client address".into()),
                Some(ip) => yes(nets.contains(ip), &|| format!("client {ip} is not listed")),
            },
            // documented: a request without the attribute does not fire (not "unknown")
            Self::Nas(m) => match m.value(ctx.request) {
                None => Fails(format!("the request has no {}", m.key)),
                Some(v) => yes(m.matches(ctx.request), &|| {
                    format!("{} {v:?} is not listed", m.key)
                }),
            },
            Self::Serial(re) => match ctx.serial().await? {
                None => Unknown("no serial".into()),
                Some(s) => yes(re.is_match(&s), &|| format!("serial {s:?} does not match")),
            },
            Self::TokenRealm(allowed) => {
                if ctx.token().await?.is_none() {
                    return Ok(Unknown("no single token".into()));
                }
                let realms = ctx.token_realms().await?;
                if realms.is_empty() {
                    Unknown("the token has no realm".into())
                } else {
                    yes(realms.iter().any(|r| allowed.contains(r)), &|| {
                        format!("token realms {realms:?} are not listed")
                    })
                }
            }
            Self::TokenResolver(allowed) => {
                if ctx.token().await?.is_none() {
                    return Ok(Unknown("no single token".into()));
                }
                let resolvers = ctx.token_resolvers().await?;
                if resolvers.is_empty() {
                    Unknown("the token has no resolver".into())
                } else {
                    yes(resolvers.iter().any(|r| allowed.contains(r)), &|| {
                        format!("token resolvers {resolvers:?} are not listed")
                    })
                }
            }
            Self::TokenType(types) => match ctx.token().await? {
                None => Unknown("no single token".into()),
                Some(t) => {
                    let kind = t.kind.as_str();
                    yes(types.iter().any(|x| x == kind), &|| {
                        format!("token type is {kind}")
                    })
                }
            },
            Self::TokenLocked(want) => match ctx.token().await? {
                Some(t) => {
                    let locked = t.is_locked();
                    yes(locked == *want, &|| format!("token locked is {locked}"))
                }
                None => match ctx.any_user_token_locked().await? {
                    None => Unknown("no token and no user".into()),
                    Some(locked) => yes(locked == *want, &|| {
                        format!("a token of the user is locked: {locked}")
                    }),
                },
            },
            Self::TokenHasOwner(want) => match ctx.token().await? {
                None => Unknown("no single token".into()),
                Some(t) => {
                    let has = t.owner.is_some();
                    yes(has == *want, &|| format!("token has owner is {has}"))
                }
            },
            Self::TokenIsOrphaned(want) => match ctx.token_orphaned().await? {
                None => Unknown("no single token".into()),
                Some(o) => yes(o == *want, &|| format!("token is orphaned is {o}")),
            },
            Self::TokenValidityPeriod(want) => {
                let now = ctx.now();
                match ctx.token().await? {
                    None => Unknown("no single token".into()),
                    Some(t) => {
                        let inside = t.within_validity(now);
                        yes(inside == *want, &|| {
                            format!("within validity period is {inside}")
                        })
                    }
                }
            }
            Self::OtpCounter(c) => token_int(ctx, c, |t| t.otp_counter, "OTP counter").await?,
            Self::CountAuth(c) => token_int(ctx, c, |t| t.count_auth, "count_auth").await?,
            Self::CountAuthSuccess(c) => {
                token_int(ctx, c, |t| t.count_auth_success, "count_auth_success").await?
            }
            Self::CountAuthFail(c) => {
                token_int(
                    ctx,
                    c,
                    |t| t.count_auth - t.count_auth_success,
                    "count_auth_fail",
                )
                .await?
            }
            Self::Failcounter(c) => token_int(ctx, c, |t| t.failcount, "failcounter").await?,
            Self::LastAuth(delta) => {
                let now = ctx.now();
                match ctx.token().await? {
                    None => Unknown("no single token".into()),
                    Some(t) => match t.last_auth.as_deref() {
                        None => Fails("the token has no last_auth".into()),
                        Some(v) => match crate::dates::parse(v) {
                            None => Holds,
                            Some(stamp) => yes(stamp.as_utc() + *delta < now, &|| {
                                format!("last_auth {v} is more recent")
                            }),
                        },
                    },
                }
            }
            Self::TokenInfo(c) => {
                let Some(t) = ctx.token().await? else {
                    return Ok(Unknown("no single token".into()));
                };
                let Some(actual) = t.tokeninfo(&c.left) else {
                    return Ok(Fails(format!("the token has no tokeninfo {:?}", c.left)));
                };
                generic(c, &actual, ctx)
            }
            Self::RolloutState(want) => match ctx.token().await? {
                None => Unknown("no single token".into()),
                Some(t) => {
                    let norm = |s: &str| {
                        if s == "enrolled" {
                            String::new()
                        } else {
                            s.to_owned()
                        }
                    };
                    let actual = t.rollout_state.clone();
                    yes(norm(&actual) == norm(want), &|| {
                        format!("rollout state is {actual:?}")
                    })
                }
            },
            Self::Counter(c) => {
                let value = ctx.counter(&c.left).await?;
                generic(c, &value.to_string(), ctx)
            }
            Self::ChallengeSession(re) => match ctx.challenge().await? {
                ChallengeLookup::None => Unknown("no challenge".into()),
                ChallengeLookup::Several(n) => Fails(format!("{n} challenges match")),
                ChallengeLookup::One { session, .. } => yes(re.is_match(&session), &|| {
                    format!("challenge session {session:?}")
                }),
            },
            Self::ChallengeExpired(want) => match ctx.challenge().await? {
                ChallengeLookup::None => Unknown("no challenge".into()),
                ChallengeLookup::Several(n) => Fails(format!("{n} challenges match")),
                ChallengeLookup::One { valid, .. } => yes(valid != *want, &|| {
                    format!("challenge expired is {}", !valid)
                }),
            },
        })
    }
}

/// What the challenge conditions see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeLookup {
    None,
    One { session: String, valid: bool },
    Several(usize),
}

fn generic(c: &Comparison, actual: &str, ctx: &mut Context<'_, '_>) -> Check {
    let now = ctx.now();
    let right = replace_now(&c.right, now);
    match c.holds(actual, &right, now) {
        Ok(true) => Check::Holds,
        Ok(false) => Check::Fails(format!("{} is {actual:?}", c.left)),
        Err(e) => {
            ctx.warn(format!(
                "comparison not possible, condition not fulfilled: {e}"
            ));
            Check::Fails(format!("cannot compare: {e}"))
        }
    }
}

async fn token_int(
    ctx: &mut Context<'_, '_>,
    c: &Comparison,
    read: fn(&crate::token::Token) -> i64,
    what: &str,
) -> Result<Check, StoreError> {
    Ok(match ctx.token().await? {
        None => Check::Unknown("no single token".into()),
        Some(t) => {
            let v = read(t);
            if c.holds_int(v) {
                Check::Holds
            } else {
                Check::Fails(format!("{what} is {v}"))
            }
        }
    })
}

fn response_bool(ctx: &Context<'_, '_>, pointer: &str) -> bool {
    ctx.response()
        .and_then(|r| json_at(&r.body, pointer))
        .is_some_and(|v| match v {
            Value::Bool(b) => *b,
            Value::String(s) => is_true(s),
            Value::Number(n) => n.as_i64() == Some(1),
            _ => false,
        })
}

fn response_str(ctx: &Context<'_, '_>, pointers: &[&str]) -> String {
    let Some(r) = ctx.response() else {
        return String::new();
    };
    pointers
        .iter()
        .find_map(|p| json_at(&r.body, p).and_then(Value::as_str))
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_configuration_errors() {
        for (name, value) in [
            ("serial", "("),
            ("detail_message", "[a"),
            ("client_ip", "10.0.0.0/33"),
            ("last_auth", "soon"),
            ("failcounter", "lots"),
            ("tokeninfo", "key == {user}"),
            ("logged_in_user", "root"),
            ("result_authentication", "accept"),
            ("container_state", "x"),
            ("blabla", "x"),
            ("called_station_id", "/(/"),
        ] {
            assert!(Condition::parse(name, value).is_err(), "{name}={value}");
        }
        for name in NAMES {
            let value = match *name {
                "user_info" | "tokeninfo" | "counter" => "k == 1",
                "user_token_number" | "otp_counter" | "count_auth" | "count_auth_success"
                | "count_auth_fail" | "failcounter" => ">1",
                "logged_in_user" => "admin",
                "result_authentication" => "ACCEPT",
                "last_auth" => "1d",
                "client_ip" => "10.0.0.0/8",
                _ => "True",
            };
            let c = Condition::parse(name, value).unwrap();
            assert_eq!(c.name(), *name);
        }
    }

    #[test]
    fn client_networks_with_exclusions() {
        let n = ClientNets::parse("10.0.0.0/8, -10.1.0.0/16, !10.2.0.1").unwrap();
        assert!(n.contains("10.3.0.1".parse().unwrap()));
        assert!(!n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(!n.contains("192.168.0.1".parse().unwrap()));
    }

    #[test]
    fn nas_conditions_take_a_list_or_one_pattern_with_commas() {
        let Condition::Nas(m) = Condition::parse("nas_identifier", "/sw-[0-9]{1,3}/").unwrap()
        else {
            panic!()
        };
        let mut r = crate::message::Request::user("alice", "");
        r.params.insert("NAS-Identifier".into(), "sw-101".into());
        assert!(m.matches(&r));
        let Condition::Nas(m) = Condition::parse("radius_client", "vpn, switches").unwrap() else {
            panic!()
        };
        r.params.insert("radius_client".into(), "switches".into());
        assert!(m.matches(&r));
    }

    #[test]
    fn lists_are_trimmed() {
        let Condition::Realm(r) = Condition::parse("realm", "realm1, realm2").unwrap() else {
            panic!()
        };
        assert_eq!(r, vec!["realm1", "realm2"]);
    }
}
