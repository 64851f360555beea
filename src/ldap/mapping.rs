//! Sans-IO pieces of a bind: which login a bind DN names, and how its password splits.
//! Free of everything but std, so the fuzz crate compiles this file as it is.

/// How a bind's password is read (`[ldap_proxy] password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMode {
    /// The whole password is otpgate's: PIN+OTP, or the directory password under
    /// `otppin = "userstore"`.
    Pin,
    /// The directory password followed by an OTP of this many characters.
    PasswordOtp { otp_length: usize },
}

/// The login a DN names under one of the templates (`uid={user},ou=people,dc=example,dc=org`):
/// attribute names and the fixed parts compare without regard to case and to spaces after
/// commas; the login's own escapes (RFC 4514 `\,` `\2c`) are undone.
pub fn login_of(dn: &str, templates: &[String]) -> Option<String> {
    let dn = normalize(dn);
    templates.iter().find_map(|t| {
        let t = normalize(t);
        let (prefix, suffix) = t.split_once("{user}")?;
        if dn.len() < prefix.len() + suffix.len() {
            return None;
        }
        let (head, rest) = dn.split_at(prefix.len());
        let (value, tail) = rest.split_at(rest.len() - suffix.len());
        (head.eq_ignore_ascii_case(prefix)
            && tail.eq_ignore_ascii_case(suffix)
            && !value.is_empty())
        .then(|| unescape(value))
        .flatten()
    })
}

/// Spaces after the commas between RDNs dropped (`uid=a, ou=b` is `uid=a,ou=b`).
fn normalize(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut after_comma = false;
    let mut escaped = false;
    for c in dn.trim().chars() {
        if after_comma && c == ' ' {
            continue;
        }
        after_comma = c == ',' && !escaped;
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out
}

/// RFC 4514 escapes undone; an unescaped `,`, `+` or `=` means the value spans RDNs: no login.
fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
            }
            b',' | b'+' | b'=' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What a bind's password holds: for otpgate's check, and for the upstream bind.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    /// Goes to the auth pipeline.
    pub for_otpgate: &'a str,
    /// The directory password for the upstream bind (`password+otp` mode).
    pub directory_password: Option<&'a str>,
}

/// Split a bind password by the mode; `None` when it is too short to hold an OTP.
pub fn split(password: &str, mode: PasswordMode) -> Option<Split<'_>> {
    match mode {
        PasswordMode::Pin => Some(Split {
            for_otpgate: password,
            directory_password: None,
        }),
        PasswordMode::PasswordOtp { otp_length } => {
            let at = password.len().checked_sub(otp_length)?;
            if at == 0 || !password.is_char_boundary(at) {
                return None;
            }
            let (pw, otp) = password.split_at(at);
            Some(Split {
                for_otpgate: otp,
                directory_password: Some(pw),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_to_logins() {
        let t = vec![
            "uid={user},ou=people,dc=example,dc=org".to_owned(),
            "CN={user},OU=Staff,DC=corp,DC=example".to_owned(),
        ];
        let rows: &[(&str, Option<&str>)] = &[
            ("uid=alice,ou=people,dc=example,dc=org", Some("alice")),
            ("UID=alice, ou=People, dc=example, dc=org", Some("alice")),
            (
                "cn=Smith\\, John,ou=staff,dc=corp,dc=example",
                Some("Smith, John"),
            ),
            ("cn=a\\2cb,ou=staff,dc=corp,dc=example", Some("a,b")),
            ("uid=alice,ou=other,dc=example,dc=org", None),
            ("uid=,ou=people,dc=example,dc=org", None),
            ("uid=a,uid=b,ou=people,dc=example,dc=org", None),
            ("uid=a+cn=b,ou=people,dc=example,dc=org", None),
            ("", None),
        ];
        for (dn, want) in rows {
            assert_eq!(login_of(dn, &t).as_deref(), *want, "{dn}");
        }
    }

    #[test]
    fn passwords_split_by_mode() {
        let po = PasswordMode::PasswordOtp { otp_length: 6 };
        assert_eq!(
            split("secret755224", po),
            Some(Split {
                for_otpgate: "755224",
                directory_password: Some("secret")
            })
        );
        assert_eq!(split("755224", po), None, "no password before the OTP");
        assert_eq!(split("12345", po), None);
        assert_eq!(
            split("pässwörd755224", po).unwrap().directory_password,
            Some("pässwörd")
        );
        assert_eq!(
            split("pin755224", PasswordMode::Pin),
            Some(Split {
                for_otpgate: "pin755224",
                directory_password: None
            })
        );
    }
}
