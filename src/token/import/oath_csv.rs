//! OATH CSV seed files: one token per line (`#` comments and blank lines are skipped).
//!
//! ```text
//! serial, key (hex), type (hotp|totp), digits, counter (hotp) or time step (totp), user, realm, hashlib
//! OATH0001, 3132333435363738393031323334353637383930, hotp, 6, 0, alice, corp
//! TOTP0001, 3132333435363738393031323334353637383930, totp, 6, 30
//! ```
//!
//! Only serial and key are required; the rest default to hotp, 6 digits, counter 0 / 30 s.

use super::{ImportError, ImportedToken};
use crate::token::{HashLib, TokenType};

fn csv_err(line: usize, message: impl Into<String>) -> ImportError {
    ImportError::Csv {
        line,
        message: message.into(),
    }
}

pub fn parse_oath_csv(text: &str) -> Result<Vec<ImportedToken>, ImportError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let col = |n: usize| cols.get(n).copied().filter(|c| !c.is_empty());
        let serial = col(0).ok_or_else(|| csv_err(line, "no serial"))?;
        let key_hex = col(1).ok_or_else(|| csv_err(line, "no key"))?;
        let key = crate::token::enroll::parse_hex_key(key_hex)
            .map_err(|e| csv_err(line, e.to_string()))?;
        let kind = match col(2).map(str::to_ascii_lowercase).as_deref() {
            None | Some("hotp") => TokenType::Hotp,
            Some("totp") => TokenType::Totp,
            Some(other) => return Err(csv_err(line, format!("type {other:?}: hotp or totp"))),
        };
        let otplen = match col(3) {
            None => 6,
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| (6..=10).contains(d))
                .ok_or_else(|| csv_err(line, format!("digits {d:?}: 6 to 10")))?,
        };
        let fifth =
            match col(4) {
                None => None,
                Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                    csv_err(line, format!("{v:?} is not a counter or time step"))
                })?),
            };
        let (counter, time_step) = match kind {
            TokenType::Totp => (0, Some(fifth.filter(|s| *s > 0).unwrap_or(30))),
            _ => (fifth.unwrap_or(0), None),
        };
        let hashlib = match col(7) {
            None => HashLib::Sha1,
            Some(h) => HashLib::parse(h).ok_or_else(|| csv_err(line, format!("hashlib {h:?}")))?,
        };
        out.push(ImportedToken {
            serial: serial.to_owned(),
            kind,
            key,
            otplen,
            counter,
            time_step,
            time_shift: 0,
            hashlib,
            user: col(5).map(str::to_owned),
            realm: col(6).map(str::to_owned),
            description: "imported".into(),
            validity_start: None,
            validity_end: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oath_csv() {
        let t = parse_oath_csv(
            "# serial, key, type, digits, counter/step, user, realm\n\
             OATH1, 3132333435363738393031323334353637383930\n\
             TOTP1, 3132333435363738393031323334353637383930, totp, 8, 60, alice, corp\n\
             \n\
             H2, 3132, HOTP, 6, 17, , , sha256\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].kind, t[0].otplen, t[0].counter),
            (TokenType::Hotp, 6, 0)
        );
        assert_eq!(
            (t[1].kind, t[1].otplen, t[1].time_step),
            (TokenType::Totp, 8, Some(60))
        );
        assert_eq!(t[1].user.as_deref(), Some("alice"));
        assert_eq!(
            (t[2].counter, t[2].hashlib, t[2].user.clone()),
            (17, HashLib::Sha256, None)
        );
        for (bad, line) in [
            ("X1\n", 1),
            ("# c\nX1, zz\n", 2),
            ("X1, 3132, yubikey\n", 1),
            ("X1, 3132, hotp, 4\n", 1),
        ] {
            assert!(
                matches!(parse_oath_csv(bad), Err(ImportError::Csv { line: l, .. }) if l == line),
                "{bad:?}"
            );
        }
    }
}
