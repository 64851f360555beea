//! Request parameters as privacyIDEA reads them: the query string, then a form or JSON body.
//! Form and query values are percent-decoded once more unless the User-Agent is one of the
//! clients that do not encode twice (privacyIDEA's `check_unquote`): its FreeRADIUS plugin
//! encodes `jürgen` as `j%C3%BCrgen` before form-encoding it. A parameter given twice, bytes
//! that are not UTF-8 or a body that is not what its type says are refused. Sans-IO (std and
//! serde_json only): the fuzz crate compiles this file as it is.

use std::collections::BTreeMap;

/// Clients whose values privacyIDEA does not decode a second time (lower case).
const NO_UNQUOTE: &[&str] = &["privacyidea-cp", "privacyidea-ldap-proxy", "simplesamlphp"];

/// Parameters by name.
pub type Params = BTreeMap<String, String>;

/// Parse query and body; `json`: the body's Content-Type is `application/json`. The error is
/// the message of a parameter error (ERR905).
pub fn parse(
    query: Option<&str>,
    user_agent: &str,
    json: bool,
    body: &[u8],
) -> Result<Params, String> {
    let unquote = needs_unquote(user_agent);
    let mut map = Params::new();
    if let Some(q) = query {
        form(q.as_bytes(), unquote, &mut map)?;
    }
    if body.is_empty() {
        return Ok(map);
    }
    if json {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a JSON object: {e}"))?;
        for (k, v) in value {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            insert(&mut map, k, text)?;
        }
    } else {
        form(body, unquote, &mut map)?;
    }
    Ok(map)
}

/// privacyIDEA's rule: decode again unless the agent's name (the text before `/` or a space)
/// is one of [`NO_UNQUOTE`]; an agent it cannot read gets the extra decoding too.
fn needs_unquote(user_agent: &str) -> bool {
    let name: String = user_agent
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    !NO_UNQUOTE.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn insert(map: &mut Params, key: String, value: String) -> Result<(), String> {
    if map.contains_key(&key) {
        return Err(format!("the parameter {key:?} is given more than once"));
    }
    map.insert(key, value);
    Ok(())
}

/// `application/x-www-form-urlencoded` pairs, strictly UTF-8.
fn form(bytes: &[u8], unquote: bool, map: &mut Params) -> Result<(), String> {
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let text = |raw: &[u8]| -> Result<String, String> {
            let plus: Vec<u8> = raw
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect();
            String::from_utf8(percent_decode(&plus))
                .map_err(|_| "a parameter is not valid UTF-8".to_owned())
        };
        let key = text(k)?;
        let mut value = text(v)?;
        if unquote {
            // Python's unquote: %XX sequences, invalid UTF-8 replaced
            value = String::from_utf8_lossy(&percent_decode(value.as_bytes())).into_owned();
        }
        insert(map, key, value)?;
    }
    Ok(())
}

/// `%XX` → byte; anything else (a `%` without two hex digits too) stays as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_freeradius_plugins_double_encoding_is_undone() {
        // what the plugin sends: quote() first, then form encoding
        let body = b"user=j%25C3%25BCrgen&pass=pi%2520n%2525123456";
        let p = parse(None, "FreeRADIUS/3.2", false, body).unwrap();
        assert_eq!(p["user"], "jürgen");
        assert_eq!(p["pass"], "pi n%123456");
        let p = parse(None, "FreeRADIUS", false, b"user=corp%255Calice&pass=x").unwrap();
        assert_eq!(p["user"], "corp\\alice");
    }

    #[test]
    fn clients_that_encode_once_are_decoded_once() {
        let body = b"user=alice&pass=12%2534";
        for ua in [
            "privacyidea-cp/3.6 Windows/Laptop",
            "privacyIDEA-LDAP-Proxy",
            "simpleSAMLphp/2",
        ] {
            let p = parse(None, ua, false, body).unwrap();
            assert_eq!(p["pass"], "12%34", "{ua}");
        }
        // everybody else as privacyIDEA does: a second decoding
        let p = parse(None, "curl/8.0", false, body).unwrap();
        assert_eq!(p["pass"], "124");
        let p = parse(None, "", false, b"pass=50%25").unwrap();
        assert_eq!(p["pass"], "50%", "a lone % stays");
    }

    #[test]
    fn json_bodies_are_taken_as_they_are() {
        let p = parse(
            Some("realm=r"),
            "FreeRADIUS",
            true,
            br#"{"user":"j%C3%BCrgen","otponly":1}"#,
        )
        .unwrap();
        assert_eq!(p["user"], "j%C3%BCrgen");
        assert_eq!(p["otponly"], "1");
        assert_eq!(p["realm"], "r");
        assert!(parse(None, "", true, b"[1]").is_err());
    }

    #[test]
    fn duplicates_and_invalid_utf8_are_refused() {
        let h = "privacyidea-cp";
        assert!(parse(None, h, false, b"user=a&user=b").is_err());
        assert!(parse(Some("user=a"), h, false, b"user=b").is_err());
        assert!(parse(None, h, false, b"user=%ff%fe").is_err());
        assert!(parse(None, h, false, b"user=\xff").is_err());
        assert_eq!(parse(None, h, false, b"a+b=c+d").unwrap()["a b"], "c d");
    }
}
