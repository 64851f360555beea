//! HS256 JSON Web Tokens (RFC 7519) for the API accounts: what `/auth` hands out and privacyIDEA's
//! clients send back in the `Authorization` header. Sans-IO; the key comes from the key file
//! (`MasterKey::api_signing_key`), so every node with the same key file accepts them.

use data_encoding::BASE64URL_NOPAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::secret::ct_eq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Claims {
    /// The API account.
    pub username: String,
    /// Always `admin`: API accounts act as privacyIDEA's admins do for these endpoints.
    pub role: String,
    /// What the account may do (`triggerchallenge`, …).
    pub rights: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum JwtError {
    #[error("the authorization token is malformed")]
    Malformed,
    #[error("the authorization token is not signed with HS256")]
    Algorithm,
    #[error("the authorization token's signature is wrong")]
    Signature,
    #[error("the authorization token has expired")]
    Expired,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn mac(key: &[u8], signed: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
    m.update(signed);
    m.finalize().into_bytes().into()
}

/// `header.claims.signature`.
pub(super) fn sign(claims: &Claims, key: &[u8]) -> String {
    let body = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(&body)
    );
    let signature = mac(key, signed.as_bytes());
    format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// The claims of a token signed with `key` and not expired at `now` (Unix seconds).
pub(super) fn verify(token: &str, key: &[u8], now: i64) -> Result<Claims, JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |p: &str| {
        BASE64URL_NOPAD
            .decode(p.as_bytes())
            .map_err(|_| JwtError::Malformed)
    };
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let expected = mac(
        key,
        token
            .trim()
            .rsplit_once('.')
            .map_or("", |(s, _)| s)
            .as_bytes(),
    );
    if !ct_eq(&expected, &decode(signature)?) {
        return Err(JwtError::Signature);
    }
    let claims: Claims = serde_json::from_slice(&decode(body)?).map_err(|_| JwtError::Malformed)?;
    if now >= claims.exp {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            username: "keycloak".into(),
            role: "admin".into(),
            rights: vec!["triggerchallenge".into()],
            iat: 100,
            exp,
        }
    }

    #[test]
    fn round_trip_expiry_other_key_and_tampering() {
        let key = [7u8; 32];
        let t = sign(&claims(200), &key);
        assert_eq!(verify(&t, &key, 150), Ok(claims(200)));
        assert_eq!(verify(&t, &key, 200), Err(JwtError::Expired));
        assert_eq!(verify(&t, &[8u8; 32], 150), Err(JwtError::Signature));
        // another account's name in the same signature
        let (h, rest) = t.split_once('.').unwrap();
        let sig = rest.rsplit_once('.').unwrap().1;
        let mut forged = claims(200);
        forged.username = "root".into();
        let body = BASE64URL_NOPAD.encode(&serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            verify(&format!("{h}.{body}.{sig}"), &key, 150),
            Err(JwtError::Signature)
        );
        // alg none and garbage
        let none = format!("{}.{body}.", BASE64URL_NOPAD.encode(br#"{"alg":"none"}"#));
        assert_eq!(verify(&none, &key, 150), Err(JwtError::Algorithm));
        assert_eq!(verify("a.b", &key, 150), Err(JwtError::Malformed));
        assert_eq!(verify("###.###.###", &key, 150), Err(JwtError::Malformed));
    }
}
