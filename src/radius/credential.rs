//! Which credential an Access-Request carries (PAP, CHAP, MS-CHAP, MS-CHAPv2, or one otpgate
//! does not take), the proofs the core checks the challenge-response ones with, and what the
//! reply carries for each. Pure: no sockets.

use std::sync::{Arc, OnceLock};

use md5::{Digest, Md5};

use super::attr::{self, vendor_attributes};
use super::crypto::{self, Authentic};
use super::mschap::{self, MICROSOFT, V1Response, V2Response};
use super::packet::{Builder, EncodeError, Packet};
use super::settings::ClientDef;
use crate::message::Proof;
use crate::secret::{Secret, ct_eq};

/// What the request authenticates with.
#[derive(Debug)]
pub enum Credential {
    /// PAP: the password itself.
    Password(Secret<String>),
    Chap(Arc<ChapProof>),
    MsChap(Arc<MsChapProof>),
    MsChapV2(Arc<MsChapV2Proof>),
    /// Refused before any token is looked at: the name of what was sent.
    Unsupported(&'static str),
}

impl Credential {
    /// Read the credential of a verified Access-Request. EAP wins over anything else in the
    /// packet: a request that carries EAP expects EAP, not a password check on the side.
    pub fn of(p: &Packet<'_>, _proof: &Authentic, client: &ClientDef) -> Self {
        if p.attr(attr::EAP_MESSAGE).is_some() {
            return Self::Unsupported("EAP");
        }
        if let Some(hidden) = p.attr(attr::USER_PASSWORD) {
            return match crypto::unhide_password(hidden, p.authenticator(), client.secret.expose())
            {
                Ok(bytes) => Self::Password(Secret::new(
                    String::from_utf8_lossy(bytes.expose()).into_owned(),
                )),
                Err(_) => Self::Unsupported("a malformed User-Password"),
            };
        }
        if let Some(chap) = p.attr(attr::CHAP_PASSWORD) {
            let challenge = p.attr(attr::CHAP_CHALLENGE).unwrap_or(p.authenticator());
            return match ChapProof::parse(chap, challenge) {
                Some(proof) => Self::Chap(Arc::new(proof)),
                None => Self::Unsupported("a malformed CHAP-Password"),
            };
        }
        let ms = |kind: u8| microsoft(p, kind);
        let user = p.attr(attr::USER_NAME).unwrap_or_default();
        match (
            ms(mschap::MS_CHAP_CHALLENGE),
            ms(mschap::MS_CHAP2_RESPONSE),
            ms(mschap::MS_CHAP_RESPONSE),
        ) {
            (Some(c), Some(r), _) => match V2Response::parse(c, r, user) {
                Some(response) => Self::MsChapV2(Arc::new(MsChapV2Proof {
                    response,
                    matched: OnceLock::new(),
                })),
                None => Self::Unsupported("a malformed MS-CHAP2-Response"),
            },
            (Some(c), None, Some(r)) => match V1Response::parse(c, r) {
                Some(response) => Self::MsChap(Arc::new(MsChapProof {
                    response,
                    matched: OnceLock::new(),
                })),
                None => Self::Unsupported("an MS-CHAP-Response without NT response"),
            },
            _ => Self::Unsupported("no credential (no User-Password, CHAP or MS-CHAP)"),
        }
    }

    /// The request's password and proof as the core takes them.
    pub fn request_parts(&self) -> (Secret<String>, Option<Arc<dyn Proof>>) {
        match self {
            Self::Password(p) => (p.clone(), None),
            Self::Chap(p) => (Secret::default(), Some(p.clone())),
            Self::MsChap(p) => (Secret::default(), Some(p.clone())),
            Self::MsChapV2(p) => (Secret::default(), Some(p.clone())),
            Self::Unsupported(_) => (Secret::default(), None),
        }
    }

    /// Attributes an Access-Accept carries for this method: MS-CHAPv2's success message and
    /// the MPPE keys (RFC 2548, RFC 3079).
    pub fn accept_attributes(
        &self,
        request: &Packet<'_>,
        client: &ClientDef,
        b: &mut Builder,
    ) -> Result<(), EncodeError> {
        let proof = match self {
            Self::MsChapV2(proof) => proof,
            Self::MsChap(proof) => {
                if let Some(hash) = proof.matched.get() {
                    let keys = mschap::v1_mppe_keys(hash);
                    let hidden = crypto::hide_password(
                        &keys,
                        request.authenticator(),
                        client.secret.expose(),
                    )
                    .unwrap_or_default();
                    b.vsa(MICROSOFT, mschap::MS_CHAP_MPPE_KEYS, &hidden)?;
                    encryption_allowed(b)?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(hash) = proof.matched.get() else {
            return Ok(());
        };
        let r = &proof.response;
        let success = mschap::authenticator_response(
            hash,
            &r.nt_response,
            &r.peer_challenge,
            &r.authenticator_challenge,
            &r.user,
        );
        let mut value = vec![r.ident];
        value.extend_from_slice(success.as_bytes());
        b.vsa(MICROSOFT, mschap::MS_CHAP2_SUCCESS, &value)?;
        let (send, recv) = mschap::mppe_keys(hash, &r.nt_response);
        let secret = client.secret.expose();
        for (kind, key) in [
            (mschap::MS_MPPE_SEND_KEY, send),
            (mschap::MS_MPPE_RECV_KEY, recv),
        ] {
            let mut salt = [0u8; 2];
            // a failed random source leaves the salt zero: still a valid attribute
            let _ = getrandom::fill(&mut salt);
            let hidden = mschap::hide_mppe_key(&key, secret, request.authenticator(), salt);
            b.vsa(MICROSOFT, kind, &hidden)?;
        }
        encryption_allowed(b)
    }

    /// Attributes an Access-Reject carries for this method: MS-CHAP-Error (error 691,
    /// authentication failure, no retry).
    pub fn reject_attributes(&self, b: &mut Builder) -> Result<(), EncodeError> {
        let (ident, text) = match self {
            Self::MsChapV2(p) => (
                p.response.ident,
                format!(
                    "E=691 R=0 C={} V=3 M=Authentication failed",
                    data_encoding::HEXUPPER.encode(&p.response.authenticator_challenge)
                ),
            ),
            Self::MsChap(p) => (p.response.ident, "E=691 R=0".to_owned()),
            _ => return Ok(()),
        };
        let mut value = vec![ident];
        value.extend_from_slice(text.as_bytes());
        b.vsa(MICROSOFT, mschap::MS_CHAP_ERROR, &value)?;
        Ok(())
    }
}

/// MPPE encryption allowed, with 40- and 128-bit keys: what FreeRADIUS sends beside the keys.
fn encryption_allowed(b: &mut Builder) -> Result<(), EncodeError> {
    b.vsa(
        MICROSOFT,
        mschap::MS_MPPE_ENCRYPTION_POLICY,
        &1u32.to_be_bytes(),
    )?;
    b.vsa(
        MICROSOFT,
        mschap::MS_MPPE_ENCRYPTION_TYPES,
        &6u32.to_be_bytes(),
    )?;
    Ok(())
}

/// The value of the first Microsoft Vendor-Specific sub-attribute `kind`.
fn microsoft<'a>(p: &Packet<'a>, kind: u8) -> Option<&'a [u8]> {
    p.attributes()
        .filter(|a| a.kind == attr::VENDOR_SPECIFIC)
        .filter_map(|a| vendor_attributes(a.value))
        .filter(|(vendor, _)| *vendor == MICROSOFT)
        .flat_map(|(_, subs)| subs)
        .find(|s| s.kind == kind)
        .map(|s| s.value)
}

/// CHAP (RFC 1994): MD5 of the identifier, the password and the challenge.
#[derive(Debug)]
pub struct ChapProof {
    ident: u8,
    challenge: Vec<u8>,
    response: [u8; 16],
}

impl ChapProof {
    fn parse(chap_password: &[u8], challenge: &[u8]) -> Option<Self> {
        let (&ident, response) = chap_password.split_first()?;
        Some(Self {
            ident,
            challenge: challenge.to_vec(),
            response: response.try_into().ok()?,
        })
    }
}

impl Proof for ChapProof {
    fn method(&self) -> &'static str {
        "chap"
    }

    fn verify(&self, password: &str) -> bool {
        let digest = Md5::new()
            .chain_update([self.ident])
            .chain_update(password.as_bytes())
            .chain_update(&self.challenge)
            .finalize();
        ct_eq(&digest, &self.response)
    }
}

/// MS-CHAP (RFC 2433). Remembers the NT hash of the password that verified, for the keys.
#[derive(Debug)]
pub struct MsChapProof {
    response: V1Response,
    matched: OnceLock<[u8; 16]>,
}

impl Proof for MsChapProof {
    fn method(&self) -> &'static str {
        "mschap"
    }

    fn verify(&self, password: &str) -> bool {
        let ok = self.response.verify(password);
        if ok {
            let _ = self.matched.set(mschap::nt_password_hash(password));
        }
        ok
    }
}

/// MS-CHAPv2 (RFC 2759). Remembers the NT hash of the password that verified: the success
/// message and the MPPE keys are made from it.
#[derive(Debug)]
pub struct MsChapV2Proof {
    response: V2Response,
    matched: OnceLock<[u8; 16]>,
}

impl Proof for MsChapV2Proof {
    fn method(&self) -> &'static str {
        "mschapv2"
    }

    fn verify(&self, password: &str) -> bool {
        let ok = self.response.verify(password);
        if ok {
            let _ = self.matched.set(mschap::nt_password_hash(password));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chap_is_md5_of_ident_password_and_challenge() {
        let challenge = [7u8; 16];
        let digest: [u8; 16] = Md5::new()
            .chain_update([42u8])
            .chain_update(b"1234755224")
            .chain_update(challenge)
            .finalize()
            .into();
        let mut attr = vec![42u8];
        attr.extend_from_slice(&digest);
        let proof = ChapProof::parse(&attr, &challenge).unwrap();
        assert!(proof.verify("1234755224"));
        assert!(!proof.verify("1234755225"));
        assert!(ChapProof::parse(&attr[..16], &challenge).is_none());
    }
}
