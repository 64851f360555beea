//! Conditions on the NAS a request came through: the RADIUS client's name, NAS-Identifier,
//! NAS-IP-Address and Called-Station-Id, as the RADIUS front-end copies them into the request's
//! parameters. Policies and event conditions use the same matching, so one otpgate can treat
//! the VPN and the switches differently.

use regex::Regex;

use super::Request;

/// The request parameters a NAS condition can look at: (configuration key, parameter).
pub const KEYS: &[(&str, &str)] = &[
    ("radius_client", "radius_client"),
    ("nas_identifier", "NAS-Identifier"),
    ("nas_ip_address", "NAS-IP-Address"),
    ("called_station_id", "Called-Station-Id"),
];

/// Values one parameter must have: any of the exact values, or a `/regular expression/` that
/// matches the whole value.
#[derive(Debug, Clone)]
pub struct NasMatch {
    /// The configuration key (`nas_identifier`, …).
    pub key: &'static str,
    param: &'static str,
    exact: Vec<String>,
    patterns: Vec<Regex>,
}

impl NasMatch {
    /// From a configuration key and its values; `None` for a key that is no NAS condition.
    pub fn parse(key: &str, values: &[String]) -> Option<Result<Self, String>> {
        let &(key, param) = KEYS.iter().find(|(k, _)| *k == key)?;
        let mut m = Self {
            key,
            param,
            exact: Vec::new(),
            patterns: Vec::new(),
        };
        for v in values.iter().map(|v| v.trim()) {
            match v.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                Some(pattern) => match Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(re) => m.patterns.push(re),
                    Err(e) => return Some(Err(format!("bad regular expression {v:?}: {e}"))),
                },
                None => m.exact.push(v.to_owned()),
            }
        }
        Some(Ok(m))
    }

    /// The request's value, when it has one.
    pub fn value<'r>(&self, request: &'r Request) -> Option<&'r str> {
        request.params.get(self.param).map(String::as_str)
    }

    /// Whether the request's value is one of the wanted ones; a request without the
    /// parameter (another front-end, a NAS that does not send it) does not match.
    pub fn matches(&self, request: &Request) -> bool {
        self.value(request).is_some_and(|v| {
            self.exact.iter().any(|e| e == v) || self.patterns.iter().any(|p| p.is_match(v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(params: &[(&str, &str)]) -> Request {
        let mut r = Request::user("alice", "x");
        for (k, v) in params {
            r.params.insert((*k).into(), (*v).into());
        }
        r
    }

    #[test]
    fn exact_values_lists_and_whole_value_patterns() {
        let m = NasMatch::parse("nas_identifier", &["vpn-1".into(), "/sw-[0-9]+/".into()])
            .unwrap()
            .unwrap();
        assert!(m.matches(&request(&[("NAS-Identifier", "vpn-1")])));
        assert!(m.matches(&request(&[("NAS-Identifier", "sw-12")])));
        assert!(
            !m.matches(&request(&[("NAS-Identifier", "sw-12a")])),
            "whole value"
        );
        assert!(!m.matches(&request(&[("NAS-Identifier", "vpn-2")])));
        assert!(!m.matches(&request(&[])), "no NAS-Identifier");
        assert!(NasMatch::parse("realm", &[]).is_none());
        assert!(
            NasMatch::parse("called_station_id", &["/(/".into()])
                .unwrap()
                .is_err()
        );
    }
}
