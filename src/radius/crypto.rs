//! Shared-secret cryptography of RADIUS, sans-IO and constant-time where it compares:
//! User-Password hiding (RFC 2865 §5.2), Request/Response Authenticators, and
//! Message-Authenticator (HMAC-MD5, RFC 3579 §3.2 / RFC 2869 §5.14).
//!
//! Verification hands out proof values ([`Authentic`]) that only this module can construct, so
//! code that needs a checked packet cannot be handed an unchecked one.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

use super::attr::MESSAGE_AUTHENTICATOR;
use super::packet::{Code, Packet};
use crate::secret::ct_eq;

type HmacMd5 = Hmac<Md5>;

/// Why a packet failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("Message-Authenticator missing")]
    MissingMessageAuthenticator,
    #[error("Message-Authenticator is not 16 octets")]
    MalformedMessageAuthenticator,
    #[error("more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
    #[error("Message-Authenticator does not match (wrong shared secret?)")]
    BadMessageAuthenticator,
    #[error("Request Authenticator does not match (wrong shared secret?)")]
    BadRequestAuthenticator,
    #[error("Response Authenticator does not match")]
    BadResponseAuthenticator,
    #[error("Proxy-State without Message-Authenticator (BlastRADIUS protection)")]
    ProxyStateWithoutMessageAuthenticator,
}

/// Proof that a request's shared-secret checks passed. Carries whether a valid
/// Message-Authenticator was present (for `require_message_authenticator = auto`).
// The private field keeps construction inside this module; `#[non_exhaustive]` would only
// guard the crate boundary.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authentic {
    pub has_message_authenticator: bool,
    _private: (),
}

fn hmac(secret: &[u8]) -> HmacMd5 {
    // HMAC takes keys of any length; the fallback keeps this total without a panic path.
    <HmacMd5 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacMd5 as KeyInit>::new(&Default::default()))
}

/// HMAC-MD5 over `bytes` with the 16 value octets at `ma_value_at` taken as zero and, if
/// given, the authenticator field replaced by `authenticator`.
fn message_authenticator_over(
    bytes: &[u8],
    ma_value_at: usize,
    authenticator: Option<&[u8; 16]>,
    secret: &[u8],
) -> [u8; 16] {
    let mut mac = hmac(secret);
    let header = bytes.get(..4).unwrap_or(&[]);
    mac.update(header);
    match authenticator {
        Some(a) => mac.update(a),
        None => mac.update(bytes.get(4..20).unwrap_or(&[])),
    }
    mac.update(bytes.get(20..ma_value_at).unwrap_or(&[]));
    mac.update(&[0u8; 16]);
    mac.update(bytes.get(ma_value_at + 16..).unwrap_or(&[]));
    mac.finalize().into_bytes().into()
}

/// The authenticator a reply's Message-Authenticator is computed with: the request's, except
/// for the answer to an Accounting-Request, which uses zeros like the request (as FreeRADIUS
/// and pyrad do). A Status-Server's Accounting-Response uses the request's (RFC 5997 §3).
fn reply_ma_vector(request_code: Code, request_authenticator: &[u8; 16]) -> [u8; 16] {
    if request_code == Code::AccountingRequest {
        [0; 16]
    } else {
        *request_authenticator
    }
}

/// The request a reply of this code answers when nothing else is known: Accounting-Response
/// to Accounting-Request, everything else to Access-Request.
fn usual_request(reply_code: Code) -> Code {
    if reply_code == Code::AccountingResponse {
        Code::AccountingRequest
    } else {
        Code::AccessRequest
    }
}

/// Locate the single Message-Authenticator's value offset.
fn find_message_authenticator(p: &Packet<'_>) -> Result<Option<usize>, VerifyError> {
    let mut found = None;
    for a in p.attributes().filter(|a| a.kind == MESSAGE_AUTHENTICATOR) {
        if found.is_some() {
            return Err(VerifyError::DuplicateMessageAuthenticator);
        }
        if a.value.len() != 16 {
            return Err(VerifyError::MalformedMessageAuthenticator);
        }
        found = Some(a.offset + 2);
    }
    Ok(found)
}

/// Verify a request from a NAS.
///
/// - Access-Request / Status-Server: Message-Authenticator checked when present; required when
///   `require_ma` (always for Status-Server, RFC 5997); with `limit_proxy_state`, Proxy-State
///   without it is refused.
/// - Accounting-Request: the Request Authenticator is checked (RFC 2866 §3), and a
///   Message-Authenticator when present.
pub fn verify_request(
    p: &Packet<'_>,
    secret: &[u8],
    require_ma: bool,
    limit_proxy_state: bool,
) -> Result<Authentic, VerifyError> {
    let bytes = p.bytes();
    let ma_at = find_message_authenticator(p)?;
    match p.code() {
        Code::AccountingRequest => {
            let mut h = Md5::new();
            h.update(bytes.get(..4).unwrap_or(&[]));
            h.update([0u8; 16]);
            h.update(bytes.get(20..).unwrap_or(&[]));
            h.update(secret);
            let expected: [u8; 16] = h.finalize().into();
            if !ct_eq(&expected, p.authenticator()) {
                return Err(VerifyError::BadRequestAuthenticator);
            }
            if let Some(at) = ma_at {
                let expected = message_authenticator_over(bytes, at, Some(&[0; 16]), secret);
                if !ct_eq(&expected, bytes.get(at..at + 16).unwrap_or(&[])) {
                    return Err(VerifyError::BadMessageAuthenticator);
                }
            }
            Ok(Authentic {
                has_message_authenticator: ma_at.is_some(),
                _private: (),
            })
        }
        code => {
            let Some(at) = ma_at else {
                if require_ma || code == Code::StatusServer {
                    return Err(VerifyError::MissingMessageAuthenticator);
                }
                if limit_proxy_state && p.attr(super::attr::PROXY_STATE).is_some() {
                    return Err(VerifyError::ProxyStateWithoutMessageAuthenticator);
                }
                return Ok(Authentic {
                    has_message_authenticator: false,
                    _private: (),
                });
            };
            let expected = message_authenticator_over(bytes, at, None, secret);
            if !ct_eq(&expected, bytes.get(at..at + 16).unwrap_or(&[])) {
                return Err(VerifyError::BadMessageAuthenticator);
            }
            Ok(Authentic {
                has_message_authenticator: true,
                _private: (),
            })
        }
    }
}

/// Finish a reply in place: fill its Message-Authenticator (if it has one) using the request
/// authenticator, then write the Response Authenticator.
pub fn sign_response(reply: &mut [u8], request_authenticator: &[u8; 16], secret: &[u8]) {
    let Ok(p) = Packet::decode(reply) else {
        return;
    };
    let request_code = usual_request(p.code());
    sign_response_to(reply, request_code, request_authenticator, secret);
}

/// [`sign_response`] for a reply to a request of `request_code`.
pub fn sign_response_to(
    reply: &mut [u8],
    request_code: Code,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) {
    let Ok(p) = Packet::decode(reply) else {
        return;
    };
    let ma_at = find_message_authenticator(&p).ok().flatten();
    if let Some(at) = ma_at {
        let vector = reply_ma_vector(request_code, request_authenticator);
        let ma = message_authenticator_over(reply, at, Some(&vector), secret);
        if let Some(slot) = reply.get_mut(at..at + 16) {
            slot.copy_from_slice(&ma);
        }
    }
    let mut h = Md5::new();
    h.update(reply.get(..4).unwrap_or(&[]));
    h.update(request_authenticator);
    h.update(reply.get(20..).unwrap_or(&[]));
    h.update(secret);
    let auth: [u8; 16] = h.finalize().into();
    if let Some(slot) = reply.get_mut(4..20) {
        slot.copy_from_slice(&auth);
    }
}

/// Finish a request in place (our own client): fill the Message-Authenticator if present.
/// Access-Request and Status-Server keep their random Request Authenticator; an
/// Accounting-Request gets its MD5 one.
pub fn sign_request(request: &mut [u8], secret: &[u8]) {
    let Ok(p) = Packet::decode(request) else {
        return;
    };
    let code = p.code();
    let ma_at = find_message_authenticator(&p).ok().flatten();
    if code == Code::AccountingRequest {
        if let Some(slot) = request.get_mut(4..20) {
            slot.fill(0);
        }
        if let Some(at) = ma_at {
            let ma = message_authenticator_over(request, at, Some(&[0; 16]), secret);
            if let Some(slot) = request.get_mut(at..at + 16) {
                slot.copy_from_slice(&ma);
            }
        }
        let mut h = Md5::new();
        h.update(&*request);
        h.update(secret);
        let auth: [u8; 16] = h.finalize().into();
        if let Some(slot) = request.get_mut(4..20) {
            slot.copy_from_slice(&auth);
        }
        return;
    }
    if let Some(at) = ma_at {
        let ma = message_authenticator_over(request, at, None, secret);
        if let Some(slot) = request.get_mut(at..at + 16) {
            slot.copy_from_slice(&ma);
        }
    }
}

/// Check a reply received by our own client against the request it answers.
pub fn verify_response(
    reply: &Packet<'_>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_ma: bool,
) -> Result<Authentic, VerifyError> {
    let bytes = reply.bytes();
    let mut h = Md5::new();
    h.update(bytes.get(..4).unwrap_or(&[]));
    h.update(request_authenticator);
    h.update(bytes.get(20..).unwrap_or(&[]));
    h.update(secret);
    let expected: [u8; 16] = h.finalize().into();
    if !ct_eq(&expected, reply.authenticator()) {
        return Err(VerifyError::BadResponseAuthenticator);
    }
    let ma_at = find_message_authenticator(reply)?;
    match ma_at {
        Some(at) => {
            let vector = reply_ma_vector(usual_request(reply.code()), request_authenticator);
            let expected = message_authenticator_over(bytes, at, Some(&vector), secret);
            if !ct_eq(&expected, bytes.get(at..at + 16).unwrap_or(&[])) {
                return Err(VerifyError::BadMessageAuthenticator);
            }
        }
        None if require_ma => return Err(VerifyError::MissingMessageAuthenticator),
        None => {}
    }
    Ok(Authentic {
        has_message_authenticator: ma_at.is_some(),
        _private: (),
    })
}

/// Why a User-Password could not be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("User-Password of {0} octets is not a multiple of 16 within 16..=128")]
    BadLength(usize),
    #[error("password longer than 128 octets")]
    TooLong,
}

fn keystream_block(secret: &[u8], prev: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(secret);
    h.update(prev);
    h.finalize().into()
}

/// Recover a hidden User-Password. Trailing NUL padding is removed.
pub fn unhide_password(
    hidden: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<crate::secret::Secret<Vec<u8>>, PasswordError> {
    if hidden.is_empty() || hidden.len() > 128 || !hidden.len().is_multiple_of(16) {
        return Err(PasswordError::BadLength(hidden.len()));
    }
    let mut out = vec![0u8; hidden.len()];
    let mut prev: &[u8] = request_authenticator;
    for (chunk, plain) in hidden.chunks(16).zip(out.chunks_mut(16)) {
        let b = keystream_block(secret, prev);
        for ((p, c), k) in plain.iter_mut().zip(chunk).zip(b) {
            *p = c ^ k;
        }
        prev = chunk;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(crate::secret::Secret::new(out))
}

/// Hide a password for an Access-Request (our own client).
pub fn hide_password(
    password: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Vec<u8>, PasswordError> {
    if password.len() > 128 {
        return Err(PasswordError::TooLong);
    }
    let padded_len = password.len().div_ceil(16).max(1) * 16;
    let mut out = vec![0u8; padded_len];
    out[..password.len()].copy_from_slice(password);
    let mut prev = *request_authenticator;
    for chunk in out.chunks_mut(16) {
        let b = keystream_block(secret, &prev);
        for (c, k) in chunk.iter_mut().zip(b) {
            *c ^= k;
        }
        prev.copy_from_slice(chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attr;
    use crate::radius::packet::Builder;

    const SECRET: &[u8] = b"testing123";

    fn request(with_ma: bool) -> Vec<u8> {
        let ra = [9u8; 16];
        let mut b = Builder::new(Code::AccessRequest, 3, &ra);
        if with_ma {
            b.attr(MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        }
        b.attr(attr::USER_NAME, b"alice").unwrap();
        let hidden = hide_password(b"pin755224", &ra, SECRET).unwrap();
        b.attr(attr::USER_PASSWORD, &hidden).unwrap();
        let mut bytes = b.finish();
        sign_request(&mut bytes, SECRET);
        bytes
    }

    #[test]
    fn password_round_trip_for_every_length() {
        let ra = [7u8; 16];
        for len in 0..=128 {
            let pw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let hidden = hide_password(&pw, &ra, SECRET).unwrap();
            assert_eq!(hidden.len() % 16, 0);
            let back = unhide_password(&hidden, &ra, SECRET).unwrap();
            assert_eq!(back.expose(), &pw);
        }
        assert!(hide_password(&[b'x'; 129], &ra, SECRET).is_err());
        assert!(unhide_password(&[0; 15], &ra, SECRET).is_err());
        assert!(unhide_password(&[0; 144], &ra, SECRET).is_err());
    }

    #[test]
    fn message_authenticator_verifies_and_detects_tampering() {
        let bytes = request(true);
        let p = Packet::decode(&bytes).unwrap();
        assert!(
            verify_request(&p, SECRET, true, true)
                .unwrap()
                .has_message_authenticator
        );
        assert_eq!(
            verify_request(&p, b"wrong", true, true),
            Err(VerifyError::BadMessageAuthenticator)
        );
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let p = Packet::decode(&tampered).unwrap();
        assert_eq!(
            verify_request(&p, SECRET, true, true),
            Err(VerifyError::BadMessageAuthenticator)
        );
    }

    #[test]
    fn missing_message_authenticator_depends_on_policy() {
        let bytes = request(false);
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(
            verify_request(&p, SECRET, true, true),
            Err(VerifyError::MissingMessageAuthenticator)
        );
        assert!(
            !verify_request(&p, SECRET, false, true)
                .unwrap()
                .has_message_authenticator
        );
    }

    #[test]
    fn proxy_state_without_ma_is_refused_when_limited() {
        let mut b = Builder::new(Code::AccessRequest, 1, &[1; 16]);
        b.attr(attr::USER_NAME, b"x").unwrap();
        b.attr(attr::PROXY_STATE, b"abc").unwrap();
        let bytes = b.finish();
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(
            verify_request(&p, SECRET, false, true),
            Err(VerifyError::ProxyStateWithoutMessageAuthenticator)
        );
        assert!(verify_request(&p, SECRET, false, false).is_ok());
    }

    #[test]
    fn reply_signature_round_trip() {
        let ra = [5u8; 16];
        let mut b = Builder::new(Code::AccessAccept, 3, &[0; 16]);
        b.attr(MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        b.attr(attr::REPLY_MESSAGE, b"hi").unwrap();
        let mut reply = b.finish();
        sign_response(&mut reply, &ra, SECRET);
        let p = Packet::decode(&reply).unwrap();
        assert!(verify_response(&p, &ra, SECRET, true).is_ok());
        assert_eq!(
            verify_response(&p, &[6; 16], SECRET, true),
            Err(VerifyError::BadResponseAuthenticator)
        );
    }

    #[test]
    fn accounting_request_authenticator() {
        let mut b = Builder::new(Code::AccountingRequest, 2, &[0; 16]);
        b.attr(attr::ACCT_STATUS_TYPE, &1u32.to_be_bytes()).unwrap();
        let mut bytes = b.finish();
        sign_request(&mut bytes, SECRET);
        let p = Packet::decode(&bytes).unwrap();
        assert!(verify_request(&p, SECRET, false, false).is_ok());
        assert_eq!(
            verify_request(&p, b"nope", false, false),
            Err(VerifyError::BadRequestAuthenticator)
        );
    }

    #[test]
    fn duplicate_message_authenticators_are_refused() {
        let mut b = Builder::new(Code::AccessRequest, 1, &[1; 16]);
        b.attr(MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        b.attr(MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
        let bytes = b.finish();
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(
            verify_request(&p, SECRET, true, true),
            Err(VerifyError::DuplicateMessageAuthenticator)
        );
    }
}
