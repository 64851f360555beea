//! MS-CHAP (RFC 2433) and MS-CHAPv2 (RFC 2759) responses, the MPPE keys of RFC 3079, and the
//! Microsoft attributes that carry them (RFC 2548). Pure functions; no state, no I/O.

use des::Des;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::Md4;
use md5::Md5;
use sha1::{Digest, Sha1};

use crate::secret::ct_eq;

/// Vendor-Id of Microsoft's attributes.
pub const MICROSOFT: u32 = 311;
pub const MS_CHAP_RESPONSE: u8 = 1;
pub const MS_CHAP_ERROR: u8 = 2;
pub const MS_CHAP_MPPE_KEYS: u8 = 12;
pub const MS_CHAP_CHALLENGE: u8 = 11;
pub const MS_MPPE_SEND_KEY: u8 = 16;
pub const MS_MPPE_RECV_KEY: u8 = 17;
pub const MS_CHAP2_RESPONSE: u8 = 25;
pub const MS_CHAP2_SUCCESS: u8 = 26;
pub const MS_MPPE_ENCRYPTION_POLICY: u8 = 7;
pub const MS_MPPE_ENCRYPTION_TYPES: u8 = 8;

/// MD4 of the password as UTF-16LE (RFC 2759 §8.3 NtPasswordHash).
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let mut md4 = Md4::new();
    for unit in password.encode_utf16() {
        md4.update(unit.to_le_bytes());
    }
    md4.finalize().into()
}

/// MD4 of the NT hash (RFC 2759 §8.4 HashNtPasswordHash).
pub fn hash_nt_password_hash(hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(hash).into()
}

/// The 8-byte challenge of MS-CHAPv2 (RFC 2759 §8.2): SHA-1 of both challenges and the user
/// name (without any domain), first 8 bytes.
pub fn challenge_hash(peer: &[u8; 16], authenticator: &[u8; 16], user: &[u8]) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer)
        .chain_update(authenticator)
        .chain_update(user)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Three DES encryptions of the challenge under the zero-padded hash (RFC 2759 §8.5).
pub fn challenge_response(challenge: &[u8; 8], hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(hash);
    let mut out = [0u8; 24];
    for (i, part) in out.chunks_exact_mut(8).enumerate() {
        let mut key7 = [0u8; 7];
        key7.copy_from_slice(&z[i * 7..i * 7 + 7]);
        part.copy_from_slice(&des_encrypt(challenge, &key7));
    }
    out
}

/// DES with a 7-byte key spread over 8 (the parity bits are ignored by DES).
fn des_encrypt(block: &[u8; 8], key7: &[u8; 7]) -> [u8; 8] {
    let mut key = [0u8; 8];
    let bits = u64::from_be_bytes([
        0, key7[0], key7[1], key7[2], key7[3], key7[4], key7[5], key7[6],
    ]);
    for (i, k) in key.iter_mut().enumerate() {
        *k = (((bits >> (49 - 7 * i)) & 0x7f) as u8) << 1;
    }
    let cipher = Des::new(&key.into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// The NT-Response of MS-CHAPv2 (RFC 2759 §8.1 GenerateNTResponse).
pub fn v2_nt_response(
    authenticator: &[u8; 16],
    peer: &[u8; 16],
    user: &[u8],
    password: &str,
) -> [u8; 24] {
    let challenge = challenge_hash(peer, authenticator, user);
    challenge_response(&challenge, &nt_password_hash(password))
}

/// The authenticator response `S=<40 hex digits>` (RFC 2759 §8.7).
pub fn authenticator_response(
    password_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer: &[u8; 16],
    authenticator: &[u8; 16],
    user: &[u8],
) -> String {
    const MAGIC1: &[u8] = b"Magic server to client signing constant";
    const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
    let hash_hash = hash_nt_password_hash(password_hash);
    let digest = Sha1::new()
        .chain_update(hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    let challenge = challenge_hash(peer, authenticator, user);
    let digest = Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC2)
        .finalize();
    format!("S={}", data_encoding::HEXUPPER.encode(&digest))
}

/// The MPPE master send and receive keys of the server, 128 bits (RFC 3079 §3.3–3.4).
pub fn mppe_keys(password_hash: &[u8; 16], nt_response: &[u8; 24]) -> ([u8; 16], [u8; 16]) {
    const MAGIC2: &[u8] =
        b"On the client side, this is the send key; on the server side, it is the receive key.";
    const MAGIC3: &[u8] =
        b"On the client side, this is the receive key; on the server side, it is the send key.";
    let master = master_key(password_hash, nt_response);
    let start_key = |magic: &[u8]| -> [u8; 16] {
        let digest = Sha1::new()
            .chain_update(master)
            .chain_update([0u8; 40])
            .chain_update(magic)
            .chain_update([0xf2u8; 40])
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    };
    (start_key(MAGIC3), start_key(MAGIC2))
}

/// RFC 3079 §3.4 GetMasterKey.
fn master_key(password_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    const MAGIC1: &[u8] = b"This is the MPPE Master Key";
    let digest = Sha1::new()
        .chain_update(hash_nt_password_hash(password_hash))
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The MS-CHAP (v1) session keys before hiding (RFC 2548 §2.4.1): the LAN Manager key (zero:
/// otpgate never has an LM hash) and the NT key, which in practice is the hash of the NT hash
/// (as FreeRADIUS sends it), padded to 32 octets by the hiding.
pub fn v1_mppe_keys(password_hash: &[u8; 16]) -> [u8; 24] {
    let mut keys = [0u8; 24];
    keys[8..].copy_from_slice(&hash_nt_password_hash(password_hash));
    keys
}

/// An MS-MPPE-Send-Key or -Recv-Key value (RFC 2548 §2.4.2): a salt, then the key with its
/// length, padded and hidden like User-Password under the shared secret and the request
/// authenticator. `salt`: two random bytes; the high bit is set here.
pub fn hide_mppe_key(
    key: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
    salt: [u8; 2],
) -> Vec<u8> {
    let salt = [salt[0] | 0x80, salt[1]];
    let mut plain = Vec::with_capacity(key.len() + 16);
    plain.push(key.len() as u8);
    plain.extend_from_slice(key);
    plain.resize(plain.len().div_ceil(16) * 16, 0);
    let mut out = salt.to_vec();
    let mut previous: Vec<u8> = [request_authenticator.as_slice(), &salt].concat();
    for chunk in plain.chunks_exact(16) {
        let b = Md5::new()
            .chain_update(secret)
            .chain_update(&previous)
            .finalize();
        let c: Vec<u8> = chunk.iter().zip(b.iter()).map(|(p, b)| p ^ b).collect();
        out.extend_from_slice(&c);
        previous = c;
    }
    out
}

/// What the client sent: an MS-CHAPv2 response (RFC 2548 §2.3.2) with its challenge.
#[derive(Debug, Clone)]
pub struct V2Response {
    pub ident: u8,
    pub authenticator_challenge: [u8; 16],
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
    /// The user name as hashed into the challenge: after any `DOMAIN\`.
    pub user: Vec<u8>,
}

impl V2Response {
    /// From MS-CHAP-Challenge (16 bytes) and MS-CHAP2-Response (50 bytes).
    pub fn parse(challenge: &[u8], response: &[u8], user_name: &[u8]) -> Option<Self> {
        let authenticator_challenge: [u8; 16] = challenge.try_into().ok()?;
        if response.len() != 50 {
            return None;
        }
        let user = match user_name.iter().rposition(|&b| b == b'\\') {
            Some(i) => user_name.get(i + 1..)?.to_vec(),
            None => user_name.to_vec(),
        };
        Some(Self {
            ident: response[0],
            authenticator_challenge,
            peer_challenge: response.get(2..18)?.try_into().ok()?,
            nt_response: response.get(26..50)?.try_into().ok()?,
            user,
        })
    }

    pub fn verify(&self, password: &str) -> bool {
        let expected = v2_nt_response(
            &self.authenticator_challenge,
            &self.peer_challenge,
            &self.user,
            password,
        );
        ct_eq(&expected, &self.nt_response)
    }
}

/// What the client sent: an MS-CHAP (v1) response (RFC 2548 §2.1.3) with its challenge.
#[derive(Debug, Clone)]
pub struct V1Response {
    pub ident: u8,
    pub challenge: [u8; 8],
    pub nt_response: [u8; 24],
}

impl V1Response {
    /// From MS-CHAP-Challenge (8 bytes) and MS-CHAP-Response (50 bytes, the NT response
    /// in use).
    pub fn parse(challenge: &[u8], response: &[u8]) -> Option<Self> {
        if response.len() != 50 || response[1] & 1 == 0 {
            return None;
        }
        Some(Self {
            ident: response[0],
            challenge: challenge.try_into().ok()?,
            nt_response: response.get(26..50)?.try_into().ok()?,
        })
    }

    pub fn verify(&self, password: &str) -> bool {
        let expected = challenge_response(&self.challenge, &nt_password_hash(password));
        ct_eq(&expected, &self.nt_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let v = data_encoding::HEXUPPER
            .decode(s.replace(' ', "").as_bytes())
            .unwrap();
        v.try_into().unwrap()
    }

    // RFC 2759 §9.2 and RFC 3079 §3.5.3: the same user, password and challenges
    const AUTH_CHALLENGE: &str = "5B5D7C7D7B3F2F3E3C2C602132262628";
    const PEER_CHALLENGE: &str = "21402324255E262A28295F2B3A337C7E";
    const NT_RESPONSE: &str = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF";

    #[test]
    fn rfc_2759_vectors() {
        let (auth, peer) = (hex::<16>(AUTH_CHALLENGE), hex::<16>(PEER_CHALLENGE));
        assert_eq!(
            challenge_hash(&peer, &auth, b"User"),
            hex::<8>("D02E4386BCE91226")
        );
        let hash = nt_password_hash("clientPass");
        assert_eq!(hash, hex::<16>("44EBBA8D5312B8D611474411F56989AE"));
        assert_eq!(
            hash_nt_password_hash(&hash),
            hex::<16>("41C00C584BD2D91C4017A2A12FA59F3F")
        );
        let nt = v2_nt_response(&auth, &peer, b"User", "clientPass");
        assert_eq!(nt, hex::<24>(NT_RESPONSE));
        assert_eq!(
            authenticator_response(&hash, &nt, &peer, &auth, b"User"),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    #[test]
    fn rfc_3079_master_and_start_keys() {
        let hash = nt_password_hash("clientPass");
        let nt = hex::<24>(NT_RESPONSE);
        assert_eq!(
            master_key(&hash, &nt),
            hex::<16>("FDECE3717A8C838CB388E527AE3CDD31")
        );
        // §3.5.3 derives the server's send key (Magic3)
        let (send, recv) = mppe_keys(&hash, &nt);
        assert_eq!(send, hex::<16>("8B7CDC149B993A1BA118CB153F56DCCB"));
        assert_ne!(send, recv);
    }

    #[test]
    fn v2_responses_parse_and_verify_with_a_domain_prefix() {
        let (auth, peer) = (hex::<16>(AUTH_CHALLENGE), hex::<16>(PEER_CHALLENGE));
        let mut response = vec![7u8, 0];
        response.extend_from_slice(&peer);
        response.extend_from_slice(&[0u8; 8]);
        response.extend_from_slice(&hex::<24>(NT_RESPONSE));
        let r = V2Response::parse(&auth, &response, b"CORP\\User").unwrap();
        assert_eq!(r.ident, 7);
        assert!(r.verify("clientPass"));
        assert!(!r.verify("clientpass"));
        assert!(V2Response::parse(&auth, &response[..49], b"User").is_none());
        assert!(V2Response::parse(&auth[..8], &response, b"User").is_none());
    }

    #[test]
    fn v1_response_is_the_challenge_under_the_nt_hash() {
        let challenge = hex::<8>("102DB5DF085D3041");
        // RFC 2433 Appendix B.2: password "MyPw"
        let nt = challenge_response(&challenge, &nt_password_hash("MyPw"));
        assert_eq!(
            nt,
            hex::<24>("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61")
        );
        let mut response = vec![1u8, 1];
        response.extend_from_slice(&[0u8; 24]);
        response.extend_from_slice(&nt);
        let r = V1Response::parse(&challenge, &response).unwrap();
        assert!(r.verify("MyPw"));
        assert!(!r.verify("MyPW"));
    }

    #[test]
    fn mppe_keys_hide_and_unhide() {
        let (secret, ra) = (b"s3cret".as_slice(), [9u8; 16]);
        let key = [0x42u8; 16];
        let hidden = hide_mppe_key(&key, secret, &ra, [1, 2]);
        assert_eq!(hidden.len(), 2 + 32);
        assert_eq!(hidden[0], 0x81, "salt's high bit set");
        // undo by the RFC's description
        let mut previous: Vec<u8> = [ra.as_slice(), &hidden[..2]].concat();
        let mut plain = Vec::new();
        for c in hidden[2..].chunks(16) {
            let b = Md5::new()
                .chain_update(secret)
                .chain_update(&previous)
                .finalize();
            plain.extend(c.iter().zip(b.iter()).map(|(c, b)| c ^ b));
            previous = c.to_vec();
        }
        assert_eq!(plain[0], 16);
        assert_eq!(&plain[1..17], &key);
    }
}
