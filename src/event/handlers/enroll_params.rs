//! The Token handler's `enroll` option `additional_params`: privacyIDEA's `/token/init`
//! parameters as a JSON object (`{"hashlib": "sha256", "type": "totp", "genkey": 0,
//! "otpkey": "31323334"}`), each checked when the configuration is loaded, so a typo is a
//! configuration error and not a token enrolled with defaults.

use crate::secret::Secret;
use crate::token::{HashLib, TokenType};

/// The `/token/init` parameters otpgate's enrolment knows.
pub const KNOWN: &[&str] = &[
    "type",
    "serial",
    "otpkey",
    "genkey",
    "otplen",
    "hashlib",
    "timeStep",
    "pin",
    "encryptpin",
    "description",
    "email",
    "phone",
    "dynamic_email",
    "dynamic_phone",
];

/// `additional_params`, checked.
#[derive(Debug, Clone, Default)]
pub struct EnrollParams {
    /// `type`: privacyIDEA lets it replace the action's `tokentype`.
    pub kind: Option<TokenType>,
    pub serial: Option<String>,
    /// `otpkey` (hex), when `genkey` is not 1.
    pub key: Option<Secret<Vec<u8>>>,
    pub otplen: Option<i64>,
    pub hashlib: Option<HashLib>,
    pub time_step: Option<i64>,
    pub pin: Option<Secret<String>>,
    pub encrypt_pin: bool,
    pub description: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub dynamic_email: bool,
    pub dynamic_phone: bool,
}

impl EnrollParams {
    /// Parse and check; JSON with single quotes (as privacyIDEA's UI often stores it) is read
    /// too.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Self::default();
        if text.trim().is_empty() {
            return Ok(p);
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
            .map_err(|e| format!("additional_params is not a JSON object: {e}"))?;
        let obj = value
            .as_object()
            .ok_or("additional_params must be a JSON object")?;
        let mut genkey = None;
        let mut otpkey = None;
        for (k, v) in obj {
            let text = match v {
                serde_json::Value::String(s) => s.trim().to_owned(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            let bad = |why: &str| format!("additional_params {k:?} = {text:?}: {why}");
            let flag = || match text.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(bad("use 0 or 1")),
            };
            let int = |range: std::ops::RangeInclusive<i64>| {
                text.parse::<i64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| bad(&format!("use a number from {range:?}")))
            };
            match k.as_str() {
                "type" => {
                    p.kind = Some(TokenType::parse(&text).ok_or_else(|| {
                        bad("otpgate enrolls hotp, totp, spass, email and sms tokens")
                    })?)
                }
                "serial" => p.serial = Some(text).filter(|s| !s.is_empty()),
                "otpkey" => otpkey = Some(text),
                "genkey" => genkey = Some(flag()?),
                "otplen" => {
                    let n = int(6..=8)?;
                    if n == 7 {
                        return Err(bad("use 6 or 8"));
                    }
                    p.otplen = Some(n);
                }
                "hashlib" => {
                    p.hashlib = Some(
                        HashLib::parse(&text.to_ascii_lowercase())
                            .ok_or_else(|| bad("use sha1, sha256 or sha512"))?,
                    )
                }
                "timeStep" => {
                    let n = int(30..=60)?;
                    if n != 30 && n != 60 {
                        return Err(bad("use 30 or 60"));
                    }
                    p.time_step = Some(n);
                }
                "pin" => p.pin = Some(Secret::new(text)),
                "encryptpin" => p.encrypt_pin = flag()?,
                "description" => p.description = Some(text),
                "email" => p.email = Some(text),
                "phone" => p.phone = Some(text),
                "dynamic_email" => p.dynamic_email = flag()?,
                "dynamic_phone" => p.dynamic_phone = flag()?,
                _ => {
                    return Err(format!(
                        "additional_params: unknown key {k:?} (known: {})",
                        KNOWN.join(", ")
                    ));
                }
            }
        }
        match (genkey, otpkey.filter(|k| !k.is_empty())) {
            (Some(true), Some(_)) => {
                return Err("additional_params: genkey 1 and an otpkey exclude each other".into());
            }
            (_, Some(hex)) => {
                p.key = Some(
                    crate::token::enroll::parse_hex_key(&hex)
                        .map_err(|e| format!("additional_params \"otpkey\": {e}"))?,
                );
            }
            (Some(false), None) if p.kind.is_none_or(TokenType::has_key) => {
                return Err("additional_params: genkey 0 needs an otpkey".into());
            }
            _ => {}
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documentations_example_loads() {
        let p = EnrollParams::parse(
            r#"{"hashlib": "sha256", "type": "totp", "genkey": 0, "otpkey": "31323334"}"#,
        )
        .unwrap();
        assert_eq!(p.kind, Some(TokenType::Totp));
        assert_eq!(p.hashlib, Some(HashLib::Sha256));
        assert_eq!(p.key.unwrap().expose(), b"1234");
    }

    #[test]
    fn single_quotes_and_numbers_as_text() {
        let p =
            EnrollParams::parse("{'otplen': '8', 'timeStep': 60, 'description': 'VPN'}").unwrap();
        assert_eq!((p.otplen, p.time_step), (Some(8), Some(60)));
        assert_eq!(p.description.as_deref(), Some("VPN"));
    }

    #[test]
    fn wrong_values_are_configuration_errors() {
        for (text, want) in [
            (r#"{"hashlib": "md5"}"#, "use sha1, sha256 or sha512"),
            (r#"{"otplen": "x"}"#, "use a number"),
            (r#"{"otplen": 7}"#, "use 6 or 8"),
            (r#"{"timeStep": 45}"#, "use 30 or 60"),
            (r#"{"genkey": 0}"#, "genkey 0 needs an otpkey"),
            (r#"{"genkey": 1, "otpkey": "3132"}"#, "exclude each other"),
            (r#"{"otpkey": "xyz"}"#, "otpkey"),
            (r#"{"type": "webauthn"}"#, "otpgate enrolls"),
            (r#"{"colour": "red"}"#, "unknown key \"colour\""),
            ("[1]", "must be a JSON object"),
        ] {
            let err = EnrollParams::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
