//! Authentication and authorization policies (`[[policy]]`, spec §4.2, §4.9).
//!
//! A policy matches a request by realm, resolver, user and client network (an empty list
//! matches everything). For each action the matching policy with the lowest `priority` number
//! wins (privacyIDEA: 1 is the highest priority); equal priorities are decided by file order.
//! Everything is validated when the configuration is loaded.

use std::net::IpAddr;

use chrono::TimeDelta;
use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

use super::pin::OtpPin;
use crate::issues::Issues;
use crate::message::Request;
use crate::message::nas::NasMatch;
use crate::token::TokenType;

/// `[[policy]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: String,
    /// `authentication` or `authorization`.
    pub scope: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// Lower wins (default 1).
    #[serde(default = "one")]
    pub priority: i64,
    #[serde(default)]
    pub realm: Vec<String>,
    #[serde(default)]
    pub resolver: Vec<String>,
    /// Logins.
    #[serde(default)]
    pub user: Vec<String>,
    /// Client addresses or networks.
    #[serde(default)]
    pub client: Vec<String>,
    /// RADIUS client names (`[[radius.client]] name`): exact, or `/regex/`.
    #[serde(default)]
    pub radius_client: Vec<String>,
    /// NAS-Identifier values: exact, or `/regex/`.
    #[serde(default)]
    pub nas_identifier: Vec<String>,
    /// NAS-IP-Address values: exact, or `/regex/`.
    #[serde(default)]
    pub nas_ip_address: Vec<String>,
    /// Called-Station-Id values: exact, or `/regex/`.
    #[serde(default)]
    pub called_station_id: Vec<String>,
    /// Action name → value (privacyIDEA names).
    pub actions: std::collections::BTreeMap<String, toml::Value>,
}

fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Authentication,
    Authorization,
}

/// `passthru`: check the password elsewhere when the user has no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passthru {
    UserStore,
    /// A `[[remote]]` of type radius.
    Radius(String),
}

/// `mangle`: `field/search/replace/`.
#[derive(Debug, Clone)]
pub struct Mangle {
    pub field: String,
    pub search: Regex,
    pub replace: String,
}

/// `auth_max_fail` / `auth_max_success`: `N/<int>[s|m|h]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: i64,
    pub window: TimeDelta,
}

/// One action's value.
#[derive(Debug, Clone)]
pub enum Action {
    OtpPin(OtpPin),
    PassOnNoUser,
    PassOnNoToken,
    Passthru(Passthru),
    ChallengeResponse(Vec<TokenType>),
    ChallengeText(String),
    ForceChallengeResponse,
    IncreaseFailcounterOnChallenge,
    ResetAllUserTokens,
    DisabledTokenTypes(Vec<TokenType>),
    SetRealm(String),
    Mangle(Vec<Mangle>),
    HideSpecificErrorMessage,
    AddUserInResponse,
    AddResolverInResponse,
    AuthMaxFail(Rate),
    AuthMaxSuccess(Rate),
    LastAuth(TimeDelta),
    TokenType(Vec<TokenType>),
    Serial(Regex),
    TokenInfo { key: String, regex: Regex },
}

/// Action names by scope.
const AUTHN: &[&str] = &[
    "otppin",
    "passOnNoUser",
    "passOnNoToken",
    "passthru",
    "challenge_response",
    "challenge_text",
    "force_challenge_response",
    "increase_failcounter_on_challenge",
    "reset_all_user_tokens",
    "disabled_token_types",
    "set_realm",
    "mangle",
    "hide_specific_error_message",
];
const AUTHZ: &[&str] = &[
    "add_user_in_response",
    "add_resolver_in_response",
    "auth_max_fail",
    "auth_max_success",
    "last_auth",
    "tokentype",
    "serial",
    "tokeninfo",
];

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub scope: Scope,
    pub priority: i64,
    index: usize,
    realms: Vec<String>,
    resolvers: Vec<String>,
    users: Vec<String>,
    clients: Vec<IpNet>,
    /// The NAS the request must come through (all of them must match).
    nas: Vec<NasMatch>,
    /// (action name, value)
    pub actions: Vec<(String, Action)>,
}

/// Who a request is about, for matching.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub realm: &'a str,
    pub resolver: &'a str,
    pub user: &'a str,
    pub client: Option<IpAddr>,
    /// The request, for the NAS conditions; `None` matches no policy that has them.
    pub request: Option<&'a Request>,
}

impl Policy {
    fn matches(&self, s: &Subject<'_>) -> bool {
        (self.realms.is_empty() || self.realms.iter().any(|r| r.eq_ignore_ascii_case(s.realm)))
            && (self.resolvers.is_empty() || self.resolvers.iter().any(|r| r == s.resolver))
            && (self.users.is_empty() || self.users.iter().any(|u| u == s.user))
            && (self.clients.is_empty()
                || s.client
                    .is_some_and(|ip| self.clients.iter().any(|n| n.contains(&ip))))
            && self
                .nas
                .iter()
                .all(|m| s.request.is_some_and(|r| m.matches(r)))
    }
}

/// All policies of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    list: Vec<Policy>,
}

/// The actions in force for one request, each with the name of the policy that set it.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    /// Names of the policies that matched (audit, trace, `otpgate validate`).
    pub matched: Vec<String>,
    actions: Vec<(String, Action, String)>,
}

impl Effective {
    fn get(&self, name: &str) -> Option<(&Action, &str)> {
        self.actions
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, a, p)| (a, p.as_str()))
    }

    /// The policy name of a flag action that is set.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.get(name).map(|(_, p)| p)
    }

    pub fn otppin(&self) -> OtpPin {
        match self.get("otppin") {
            Some((Action::OtpPin(p), _)) => *p,
            _ => OtpPin::TokenPin,
        }
    }

    pub fn passthru(&self) -> Option<(&Passthru, &str)> {
        match self.get("passthru") {
            Some((Action::Passthru(p), name)) => Some((p, name)),
            _ => None,
        }
    }

    pub fn challenge_types(&self) -> Vec<TokenType> {
        match self.get("challenge_response") {
            Some((Action::ChallengeResponse(t), _)) => t.clone(),
            _ => Vec::new(),
        }
    }

    pub fn challenge_text(&self) -> Option<String> {
        match self.get("challenge_text") {
            Some((Action::ChallengeText(t), _)) => Some(t.clone()),
            _ => None,
        }
    }

    pub fn disabled_token_types(&self) -> Vec<TokenType> {
        match self.get("disabled_token_types") {
            Some((Action::DisabledTokenTypes(t), _)) => t.clone(),
            _ => Vec::new(),
        }
    }

    pub fn set_realm(&self) -> Option<&str> {
        match self.get("set_realm") {
            Some((Action::SetRealm(r), _)) => Some(r),
            _ => None,
        }
    }

    pub fn mangle(&self) -> &[Mangle] {
        match self.get("mangle") {
            Some((Action::Mangle(m), _)) => m,
            _ => &[],
        }
    }

    pub fn rate(&self, name: &str) -> Option<(Rate, &str)> {
        match self.get(name) {
            Some((Action::AuthMaxFail(r) | Action::AuthMaxSuccess(r), p)) => Some((*r, p)),
            _ => None,
        }
    }

    pub fn last_auth(&self) -> Option<TimeDelta> {
        match self.get("last_auth") {
            Some((Action::LastAuth(d), _)) => Some(*d),
            _ => None,
        }
    }

    pub fn allowed_types(&self) -> Option<&[TokenType]> {
        match self.get("tokentype") {
            Some((Action::TokenType(t), _)) => Some(t),
            _ => None,
        }
    }

    pub fn serial_regex(&self) -> Option<&Regex> {
        match self.get("serial") {
            Some((Action::Serial(r), _)) => Some(r),
            _ => None,
        }
    }

    pub fn tokeninfo(&self) -> Option<(&str, &Regex)> {
        match self.get("tokeninfo") {
            Some((Action::TokenInfo { key, regex }, _)) => Some((key, regex)),
            _ => None,
        }
    }
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a policy limits logins by counting a user's earlier ones (`auth_max_fail`,
    /// `auth_max_success`): only then does the audit table need its per-user index.
    pub fn counts_logins(&self) -> bool {
        self.list.iter().any(|p| {
            p.actions
                .iter()
                .any(|(_, a)| matches!(a, Action::AuthMaxFail(_) | Action::AuthMaxSuccess(_)))
        })
    }

    /// The actions of the matching policies, the lowest priority number first.
    pub fn effective(&self, s: &Subject<'_>) -> Effective {
        let mut out = Effective::default();
        if self.list.is_empty() {
            return out;
        }
        for p in self.list.iter().filter(|p| p.matches(s)) {
            out.matched.push(p.name.clone());
            for (name, action) in &p.actions {
                if out.get(name).is_none() {
                    out.actions
                        .push((name.clone(), action.clone(), p.name.clone()));
                }
            }
        }
        out
    }

    pub fn build(raw: &[RawPolicy], remotes: &[(String, String)], issues: &mut Issues) -> Self {
        let mut list: Vec<Policy> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = format!("policy[{i}]");
            if list.iter().any(|p| p.name == r.name) {
                issues.push(
                    format!("{key}.name"),
                    format!("policy {:?} is defined twice", r.name),
                );
            }
            let scope = match r.scope.as_str() {
                "authentication" => Scope::Authentication,
                "authorization" => Scope::Authorization,
                other => {
                    issues.push(
                        format!("{key}.scope"),
                        format!("{other:?}: use authentication or authorization"),
                    );
                    continue;
                }
            };
            let mut clients = Vec::new();
            for c in &r.client {
                match c
                    .parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                {
                    Ok(n) => clients.push(n),
                    Err(_) => issues.push(
                        format!("{key}.client"),
                        format!("{c:?} is neither an IP address nor a network"),
                    ),
                }
            }
            let mut nas = Vec::new();
            for (k, values) in [
                ("radius_client", &r.radius_client),
                ("nas_identifier", &r.nas_identifier),
                ("nas_ip_address", &r.nas_ip_address),
                ("called_station_id", &r.called_station_id),
            ] {
                if values.is_empty() {
                    continue;
                }
                match NasMatch::parse(k, values) {
                    Some(Ok(m)) => nas.push(m),
                    Some(Err(e)) => issues.push(format!("{key}.{k}"), e),
                    None => {}
                }
            }
            let mut actions = Vec::new();
            for (name, value) in &r.actions {
                let allowed = match scope {
                    Scope::Authentication => AUTHN,
                    Scope::Authorization => AUTHZ,
                };
                if !allowed.contains(&name.as_str()) {
                    let other = if AUTHN.contains(&name.as_str()) || AUTHZ.contains(&name.as_str())
                    {
                        " (it belongs to the other scope)"
                    } else {
                        ""
                    };
                    issues.push(
                        format!("{key}.actions.{name}"),
                        format!(
                            "policy {:?}: unknown {} action {name:?}{other}",
                            r.name, r.scope
                        ),
                    );
                    continue;
                }
                match parse_action(name, value, remotes) {
                    Ok(Some(a)) => actions.push((name.clone(), a)),
                    Ok(None) => {}
                    Err(e) => issues.push(
                        format!("{key}.actions.{name}"),
                        format!("policy {:?}: {e}", r.name),
                    ),
                }
            }
            if !r.active {
                continue;
            }
            list.push(Policy {
                name: r.name.clone(),
                scope,
                priority: r.priority,
                index: i,
                realms: r.realm.iter().map(|x| x.to_ascii_lowercase()).collect(),
                resolvers: r.resolver.clone(),
                users: r.user.clone(),
                clients,
                nas,
                actions,
            });
        }
        list.sort_by_key(|p| (p.priority, p.index));
        Self { list }
    }
}

fn text(v: &toml::Value) -> String {
    crate::event::options::value_text(v)
}

fn types(v: &toml::Value) -> Result<Vec<TokenType>, String> {
    let list: Vec<String> = match v {
        toml::Value::Array(a) => a.iter().map(text).collect(),
        other => text(other)
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    list.iter()
        .map(|t| TokenType::parse(t).ok_or_else(|| format!("{t:?} is not a token type")))
        .collect()
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    let (n, w) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: use N/<time> like 2/20s"))?;
    let count = n
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{s:?}: N is not a number"))?;
    let window = crate::dates::parse_duration(w.trim())
        .filter(|_| w.trim().ends_with(['s', 'm', 'h']))
        .ok_or_else(|| format!("{s:?}: the time is <int>s, <int>m or <int>h"))?;
    Ok(Rate { count, window })
}

/// `user/search/replace/` → a mangle rule; Python `\1` groups become `${1}`.
fn parse_mangle(s: &str) -> Result<Mangle, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let [field, search, replace, ..] = parts.as_slice() else {
        return Err(format!("{s:?}: use field/search/replace/"));
    };
    if !matches!(*field, "user" | "pass" | "realm") {
        return Err(format!("{s:?}: the field is user, pass or realm"));
    }
    let search = Regex::new(search).map_err(|e| format!("{s:?}: {e}"))?;
    let mut replace_rs = String::new();
    let mut chars = replace.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(char::is_ascii_digit) {
            let d = chars.next().unwrap_or('0');
            replace_rs.push_str(&format!("${{{d}}}"));
        } else if c == '$' {
            replace_rs.push_str("$$");
        } else {
            replace_rs.push(c);
        }
    }
    Ok(Mangle {
        field: (*field).to_owned(),
        search,
        replace: replace_rs,
    })
}

fn parse_action(
    name: &str,
    v: &toml::Value,
    remotes: &[(String, String)],
) -> Result<Option<Action>, String> {
    let flag = || crate::event::is_true(&text(v));
    Ok(Some(match name {
        "otppin" => {
            Action::OtpPin(OtpPin::parse(&text(v)).ok_or("use tokenpin, userstore or none")?)
        }
        "passOnNoUser" if flag() => Action::PassOnNoUser,
        "passOnNoToken" if flag() => Action::PassOnNoToken,
        "force_challenge_response" if flag() => Action::ForceChallengeResponse,
        "increase_failcounter_on_challenge" if flag() => Action::IncreaseFailcounterOnChallenge,
        "reset_all_user_tokens" if flag() => Action::ResetAllUserTokens,
        "hide_specific_error_message" if flag() => Action::HideSpecificErrorMessage,
        "add_user_in_response" if flag() => Action::AddUserInResponse,
        "add_resolver_in_response" if flag() => Action::AddResolverInResponse,
        "add_user_in_response" | "add_resolver_in_response" => return Ok(None),
        "passOnNoUser"
        | "passOnNoToken"
        | "force_challenge_response"
        | "increase_failcounter_on_challenge"
        | "reset_all_user_tokens"
        | "hide_specific_error_message" => return Ok(None),
        "passthru" => {
            let t = text(v);
            if matches!(v, toml::Value::Boolean(false)) {
                return Ok(None);
            }
            if matches!(v, toml::Value::Boolean(true)) || t.is_empty() || t == "userstore" {
                Action::Passthru(Passthru::UserStore)
            } else if remotes.iter().any(|(n, k)| *n == t && k == "radius") {
                Action::Passthru(Passthru::Radius(t))
            } else {
                return Err(format!(
                    "{t:?}: use userstore or the name of a [[remote]] of type radius"
                ));
            }
        }
        "challenge_response" => Action::ChallengeResponse(types(v)?),
        "challenge_text" => Action::ChallengeText(text(v).replace("\\,", ",")),
        "disabled_token_types" => Action::DisabledTokenTypes(types(v)?),
        "set_realm" => Action::SetRealm(text(v).trim().to_ascii_lowercase()),
        "mangle" => {
            let rules: Vec<String> = match v {
                toml::Value::Array(a) => a.iter().map(text).collect(),
                other => vec![text(other)],
            };
            Action::Mangle(
                rules
                    .iter()
                    .map(|r| parse_mangle(r))
                    .collect::<Result<_, _>>()?,
            )
        }
        "auth_max_fail" => Action::AuthMaxFail(parse_rate(&text(v))?),
        "auth_max_success" => Action::AuthMaxSuccess(parse_rate(&text(v))?),
        "last_auth" => {
            let t = text(v);
            Action::LastAuth(
                crate::dates::parse_duration(&t)
                    .filter(|_| !t.ends_with('w'))
                    .ok_or_else(|| format!("{t:?}: use a duration like 12h, 123d, 2y"))?,
            )
        }
        "tokentype" => Action::TokenType(types(v)?),
        "serial" => {
            Action::Serial(Regex::new(&format!("^(?:{})", text(v))).map_err(|e| e.to_string())?)
        }
        "tokeninfo" => {
            let t = text(v);
            let parts: Vec<&str> = t.split('/').collect();
            let [key, regex, ..] = parts.as_slice() else {
                return Err(format!("{t:?}: use key/regex/"));
            };
            Action::TokenInfo {
                key: (*key).to_owned(),
                regex: Regex::new(regex).map_err(|e| e.to_string())?,
            }
        }
        other => return Err(format!("unknown action {other:?}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> Vec<RawPolicy> {
        #[derive(Deserialize)]
        struct F {
            policy: Vec<RawPolicy>,
        }
        toml::from_str::<F>(toml_text).unwrap().policy
    }

    /// Only an active auth_max_* policy asks for the audit table's per-user index.
    #[test]
    fn counts_logins_only_with_an_active_auth_max_policy() {
        let build = |text: &str| {
            let mut issues = Issues::default();
            let p = Policies::build(&raw(text), &[], &mut issues);
            assert!(issues.is_empty(), "{issues:?}");
            p
        };
        let other = "[[policy]]\nname = \"a\"\nscope = \"authorization\"\nactions = { last_auth = \"1d\" }\n";
        assert!(!build(other).counts_logins());
        for action in ["auth_max_fail", "auth_max_success"] {
            let limit = format!(
                "{other}[[policy]]\nname = \"b\"\nscope = \"authorization\"\nactions = {{ {action} = \"3/1m\" }}\n"
            );
            assert!(build(&limit).counts_logins(), "{action}");
            let inactive = limit.replace("name = \"b\"", "name = \"b\"\nactive = false");
            assert!(!build(&inactive).counts_logins(), "{action} inactive");
        }
    }

    #[test]
    fn priority_and_matching() {
        let mut issues = Issues::default();
        let p = Policies::build(
            &raw(
                "[[policy]]\nname = \"a\"\nscope = \"authentication\"\npriority = 2\nactions = { otppin = \"none\" }\n\
                 [[policy]]\nname = \"b\"\nscope = \"authentication\"\npriority = 1\nrealm = [\"corp\"]\nactions = { otppin = \"userstore\", challenge_response = \"hotp totp\" }\n\
                 [[policy]]\nname = \"c\"\nscope = \"authentication\"\nclient = [\"10.0.0.0/8\"]\nactions = { passOnNoUser = true }\n",
            ),
            &[],
            &mut issues,
        );
        assert!(issues.is_empty());
        let e = p.effective(&Subject {
            realm: "corp",
            ..Default::default()
        });
        assert_eq!(e.otppin(), OtpPin::UserStore);
        assert_eq!(e.challenge_types(), vec![TokenType::Hotp, TokenType::Totp]);
        assert_eq!(e.flag("passOnNoUser"), None);
        let e = p.effective(&Subject {
            realm: "other",
            client: Some("10.1.2.3".parse().unwrap()),
            ..Default::default()
        });
        assert_eq!(e.otppin(), OtpPin::None);
        assert_eq!(e.flag("passOnNoUser"), Some("c"));
        assert_eq!(e.matched, vec!["c", "a"]);
    }

    #[test]
    fn bad_policies_are_configuration_errors() {
        for (actions, scope) in [
            ("otppin = \"maybe\"", "authentication"),
            ("auth_max_fail = \"2/20x\"", "authorization"),
            ("tokentype = \"yubikey\"", "authorization"),
            ("mangle = \"nick/a/b/\"", "authentication"),
            ("passthru = \"nowhere\"", "authentication"),
            ("otppin = \"none\"", "authorization"),
            ("frobnicate = 1", "authentication"),
        ] {
            let mut issues = Issues::default();
            Policies::build(
                &raw(&format!(
                    "[[policy]]\nname = \"x\"\nscope = \"{scope}\"\nactions = {{ {actions} }}\n"
                )),
                &[],
                &mut issues,
            );
            assert!(!issues.is_empty(), "{actions}");
        }
    }

    #[test]
    fn mangle_and_rates() {
        let m = parse_mangle("user/(.*)@example\\.com/\\1/").unwrap();
        assert_eq!(
            m.search.replace("alice@example.com", m.replace.as_str()),
            "alice"
        );
        assert_eq!(
            parse_rate("2/20s").unwrap(),
            Rate {
                count: 2,
                window: TimeDelta::seconds(20)
            }
        );
    }
}
