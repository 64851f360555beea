//! PSKC seed files (RFC 6030): the `KeyContainer`'s `KeyPackage`s as tokens.
//!
//! Values are plain (`PlainValue`) or encrypted (`EncryptedValue`) with a pre-shared key
//! (§6.1) or a key derived from a password with PBKDF2 (§6.2); a `ValueMAC` is checked with the
//! container's MAC key. The cryptography is `pskc_crypto`.
//!
//! Read from each key: the serial (`DeviceInfo/SerialNo`, else the key's `Id`), hotp or totp
//! from the `Algorithm` URI, the digits (`ResponseFormat Length`), the hash
//! (`AlgorithmParameters/Suite`: its text, such as `HMAC-SHA256`, or privacyIDEA's `hashalgo`
//! attribute), the counter, the time step, the TOTP's start time and drift (`Time`,
//! `TimeDrift` in time steps, both folded into the token's time shift), and the validity period
//! (`Policy/StartDate` and `ExpiryDate`, else `DeviceInfo`'s).

use roxmltree::Node;

use super::pskc_crypto::{Cipher, MacAlgorithm, Opener, Prf, PskcKeys};
use super::{ImportError, ImportedToken};
use crate::secret::Secret;
use crate::token::{HashLib, TokenType};

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn path<'a, 'i>(node: Node<'a, 'i>, names: &[&str]) -> Option<Node<'a, 'i>> {
    names.iter().try_fold(node, |n, name| child(n, name))
}

/// An element's text without white space (base64 is often wrapped).
fn text_of(node: Option<Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(|t| t.split_whitespace().collect::<String>())
}

/// An element's text, trimmed: names and dates keep their inner spaces.
fn trimmed_text(node: Option<Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text()).map(|t| t.trim().to_owned())
}

fn b64(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(s.as_bytes()).ok()
}

/// The `CipherValue` of an `EncryptedValue` or `MACKey`, and its cipher (AES-128-CBC when the
/// `EncryptionMethod` names none).
fn cipher_data(enc: Node<'_, '_>) -> Result<(Cipher, Vec<u8>), String> {
    let cipher = match child(enc, "EncryptionMethod").and_then(|m| m.attribute("Algorithm")) {
        Some(uri) => Cipher::from_uri(uri)?,
        None => Cipher::AesCbc(16),
    };
    let data = text_of(path(enc, &["CipherData", "CipherValue"]))
        .and_then(|v| b64(&v))
        .ok_or("no base64 CipherValue")?;
    Ok((cipher, data))
}

/// What opens and checks the container's encrypted values.
struct Unsealer {
    opener: Opener,
    mac: Option<(MacAlgorithm, Secret<Vec<u8>>)>,
}

impl Unsealer {
    fn of(root: Node<'_, '_>, keys: PskcKeys<'_>) -> Result<Self, String> {
        let opener = match path(root, &["EncryptionKey", "DerivedKey"]) {
            Some(derived) => derived_key(derived, keys)?,
            None => Opener::pre_shared(keys),
        };
        let mac = match child(root, "MACMethod") {
            Some(method) => {
                let algorithm = MacAlgorithm::from_uri(method.attribute("Algorithm"))?;
                match child(method, "MACKey") {
                    // without the key the values cannot be opened either; that error comes
                    // with the first encrypted value
                    Some(k) if !matches!(opener, Opener::Nothing { .. }) => {
                        let (cipher, data) = cipher_data(k).map_err(|e| format!("MACKey: {e}"))?;
                        let key = opener
                            .open(cipher, &data)
                            .map_err(|e| format!("MACKey: {e}"))?;
                        Some((algorithm, Secret::new(key)))
                    }
                    _ => None,
                }
            }
            None => None,
        };
        Ok(Self { opener, mac })
    }

    /// A `PlainValue` or `EncryptedValue` (its `ValueMAC` checked first, when the container
    /// has a MAC key and the value a MAC).
    fn value(&self, data: Node<'_, '_>) -> Result<Option<Vec<u8>>, String> {
        if let Some(plain) = text_of(child(data, "PlainValue")) {
            return b64(&plain)
                .map(Some)
                .ok_or_else(|| "PlainValue is not base64".into());
        }
        let Some(enc) = child(data, "EncryptedValue") else {
            return Ok(None);
        };
        let (cipher, sealed) = cipher_data(enc)?;
        // privacyIDEA's own exports carry a placeholder that is not base64: no MAC to check
        if let (Some((algorithm, key)), Some(want)) = (
            &self.mac,
            text_of(child(data, "ValueMAC")).and_then(|v| b64(&v)),
        ) && !algorithm.verifies(key.expose(), &sealed, &want)
        {
            return Err(format!(
                "ValueMAC does not match: {}",
                self.opener.wrong_key()
            ));
        }
        self.opener.open(cipher, &sealed).map(Some)
    }

    /// An integer of `Data`: decimal text, or big-endian bytes when encrypted.
    fn int(&self, data: Node<'_, '_>, name: &str) -> Result<Option<i64>, String> {
        let Some(n) = child(data, name) else {
            return Ok(None);
        };
        if let Some(t) = text_of(child(n, "PlainValue")) {
            return t
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{name} {t:?} is not an integer"));
        }
        let Some(bytes) = self.value(n)? else {
            return Ok(None);
        };
        if bytes.is_empty() || bytes.len() > 8 {
            return Err(format!("{name}: {} bytes, not an integer", bytes.len()));
        }
        // sign-extended, so a negative drift stays negative
        let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 8];
        if let Some(dst) = buf.get_mut(8 - bytes.len()..) {
            dst.copy_from_slice(&bytes);
        }
        Ok(Some(i64::from_be_bytes(buf)))
    }
}

/// RFC 6030 §6.2: `DerivedKey/KeyDerivationMethod` with PBKDF2's parameters.
fn derived_key(derived: Node<'_, '_>, keys: PskcKeys<'_>) -> Result<Opener, String> {
    let method = child(derived, "KeyDerivationMethod").ok_or("DerivedKey without a method")?;
    let uri = method.attribute("Algorithm").unwrap_or_default();
    if !uri.to_ascii_lowercase().ends_with("pbkdf2") {
        return Err(format!(
            "key derivation {uri:?} is not supported (PBKDF2 is)"
        ));
    }
    let params = child(method, "PBKDF2-params").ok_or("PBKDF2 without PBKDF2-params")?;
    let salt = text_of(path(params, &["Salt", "Specified"]))
        .and_then(|s| b64(&s))
        .ok_or("PBKDF2 without a base64 Salt/Specified")?;
    let iterations = text_of(child(params, "IterationCount"))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or("PBKDF2 without an IterationCount")?;
    let length = match text_of(child(params, "KeyLength")) {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| format!("PBKDF2 KeyLength {n:?}"))?,
        ),
        None => None,
    };
    // the PRF's URI as its Algorithm attribute (XML Encryption 1.1) or as its text
    let prf = child(params, "PRF");
    let prf_uri = prf
        .and_then(|p| p.attribute("Algorithm").map(str::to_owned))
        .or_else(|| text_of(prf));
    let prf = Prf::from_uri(prf_uri.as_deref())?;
    Opener::derived(keys, salt, iterations, prf, length)
}

/// The hash of `AlgorithmParameters/Suite`: `sha1` when there is none.
fn hashlib(params: Option<Node<'_, '_>>) -> Result<HashLib, String> {
    let Some(suite) = params.and_then(|p| child(p, "Suite")) else {
        return Ok(HashLib::Sha1);
    };
    let named = suite
        .attribute("hashalgo")
        .map(str::to_owned)
        .or_else(|| text_of(Some(suite)))
        .unwrap_or_default();
    if named.is_empty() {
        return Ok(HashLib::Sha1);
    }
    let plain: String = named
        .to_ascii_lowercase()
        .trim_start_matches("hmac")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    HashLib::parse(&plain).ok_or_else(|| {
        format!("Suite {named:?} names no hash otpgate knows (SHA1, SHA256, SHA512)")
    })
}

/// A validity bound in the format `token set --validity-start` writes.
fn validity(node: Option<Node<'_, '_>>, name: &str) -> Result<Option<String>, String> {
    let Some(text) = trimmed_text(node) else {
        return Ok(None);
    };
    let stamp =
        crate::dates::parse(&text).ok_or_else(|| format!("{name} {text:?} is not a date"))?;
    Ok(Some(crate::clock::format_short(stamp.as_local_utc())))
}

fn key_package(
    package: Node<'_, '_>,
    key: Node<'_, '_>,
    unsealer: &Unsealer,
) -> Result<ImportedToken, String> {
    let id = key.attribute("Id").unwrap_or("");
    let serial = trimmed_text(path(package, &["DeviceInfo", "SerialNo"]))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| id.to_owned());
    if serial.is_empty() {
        return Err("neither a SerialNo nor a Key Id".into());
    }
    let algorithm = key
        .attribute("Algorithm")
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = if algorithm.ends_with("hotp") {
        TokenType::Hotp
    } else if algorithm.ends_with("totp") {
        TokenType::Totp
    } else {
        return Err(format!("algorithm {algorithm:?} is neither hotp nor totp"));
    };
    let params = child(key, "AlgorithmParameters");
    let otplen = match params
        .and_then(|p| child(p, "ResponseFormat"))
        .and_then(|f| f.attribute("Length"))
    {
        None => 6,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (6..=10).contains(n))
            .ok_or_else(|| format!("ResponseFormat Length {l:?}: 6 to 10"))?,
    };
    let hashlib = hashlib(params)?;
    let data = child(key, "Data").ok_or("no Data")?;
    let secret = child(data, "Secret")
        .map(|s| unsealer.value(s))
        .transpose()?
        .flatten()
        .filter(|k| !k.is_empty())
        .ok_or("no Secret, or an empty one")?;
    let counter = unsealer.int(data, "Counter")?.unwrap_or(0);
    if counter < 0 {
        return Err(format!("Counter {counter} is negative"));
    }
    let (time_step, time_shift) = match kind {
        TokenType::Totp => {
            let step = unsealer
                .int(data, "TimeInterval")?
                .filter(|s| *s > 0)
                .unwrap_or(30);
            // the device counts (now - Time) / step + TimeDrift steps
            let start = unsealer.int(data, "Time")?.unwrap_or(0);
            let drift = unsealer.int(data, "TimeDrift")?.unwrap_or(0);
            let shift = drift
                .checked_mul(step)
                .and_then(|d| d.checked_sub(start))
                .ok_or("Time and TimeDrift out of range")?;
            (Some(step), shift)
        }
        _ => (None, 0),
    };
    let policy = child(key, "Policy");
    let bound = |name: &str| {
        let node = policy
            .and_then(|p| child(p, name))
            .or_else(|| path(package, &["DeviceInfo", name]));
        validity(node, name)
    };
    Ok(ImportedToken {
        serial,
        kind,
        key: Secret::new(secret),
        otplen,
        counter,
        time_step,
        time_shift,
        hashlib,
        user: None,
        realm: None,
        description: trimmed_text(path(package, &["DeviceInfo", "Manufacturer"]))
            .unwrap_or_else(|| "imported".into()),
        validity_start: bound("StartDate")?,
        validity_end: bound("ExpiryDate")?,
    })
}

pub fn parse_pskc(text: &str, keys: PskcKeys<'_>) -> Result<Vec<ImportedToken>, ImportError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| ImportError::Pskc(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "KeyContainer" {
        return Err(ImportError::Pskc(
            "the root element is not KeyContainer".into(),
        ));
    }
    let unsealer = Unsealer::of(root, keys).map_err(ImportError::Pskc)?;
    let mut out = Vec::new();
    for package in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "KeyPackage")
    {
        let Some(key) = child(package, "Key") else {
            continue;
        };
        let token =
            key_package(package, key, &unsealer).map_err(|message| ImportError::PskcKey {
                id: key.attribute("Id").unwrap_or("").to_owned(),
                message,
            })?;
        out.push(token);
    }
    if out.is_empty() {
        return Err(ImportError::Pskc("no KeyPackage with a Key".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk(key: &[u8]) -> PskcKeys<'_> {
        PskcKeys {
            psk: Some(key),
            password: None,
        }
    }

    fn password(p: &str) -> PskcKeys<'_> {
        PskcKeys {
            psk: None,
            password: Some(p),
        }
    }

    const SHA1_KEY: &[u8] = b"12345678901234567890";
    const SHA256_KEY: &[u8] = b"12345678901234567890123456789012";

    /// RFC 6030 §6.1 (plain) — the example figure's structure.
    #[test]
    fn pskc_plain() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Manufacturer</Manufacturer><SerialNo>987654321</SerialNo></DeviceInfo>
    <Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>
        <Counter><PlainValue>0</PlainValue></Counter>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>"#;
        let t = parse_pskc(xml, PskcKeys::default()).unwrap();
        assert_eq!(t[0].serial, "987654321");
        assert_eq!(t[0].otplen, 8);
        assert_eq!(t[0].key.expose(), b"12345678901234567890");
    }

    /// RFC 6030 Figure 6: AES-128-CBC with a pre-shared key and HMAC-SHA1 ValueMAC.
    #[test]
    fn pskc_pre_shared_key() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Version="1.0">
  <pskc:EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></pskc:EncryptionKey>
  <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <pskc:MACKey>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData>
        <xenc:CipherValue>ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX</xenc:CipherValue>
      </xenc:CipherData>
    </pskc:MACKey>
  </pskc:MACMethod>
  <pskc:KeyPackage>
    <pskc:DeviceInfo><pskc:Manufacturer>Manufacturer</pskc:Manufacturer><pskc:SerialNo>987654321</pskc:SerialNo></pskc:DeviceInfo>
    <pskc:CryptoModuleInfo><pskc:Id>CM_ID_001</pskc:Id></pskc:CryptoModuleInfo>
    <pskc:Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <pskc:Issuer>Issuer</pskc:Issuer>
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="8" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data>
        <pskc:Secret>
          <pskc:EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
              <xenc:CipherValue>AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv</xenc:CipherValue>
            </xenc:CipherData>
          </pskc:EncryptedValue>
          <pskc:ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=</pskc:ValueMAC>
        </pskc:Secret>
        <pskc:Counter><pskc:PlainValue>0</pskc:PlainValue></pskc:Counter>
      </pskc:Data>
    </pskc:Key>
  </pskc:KeyPackage>
</pskc:KeyContainer>"#;
        let psk = data_encoding::HEXLOWER
            .decode(b"12345678901234567890123456789012")
            .unwrap();
        let t = parse_pskc(xml, self::psk(&psk)).unwrap();
        assert_eq!(t[0].key.expose(), b"12345678901234567890");
        assert_eq!(t[0].serial, "987654321");
        assert!(
            parse_pskc(xml, PskcKeys::default()).is_err(),
            "encrypted without a key"
        );
        let wrong = [0u8; 16];
        assert!(
            parse_pskc(xml, self::psk(&wrong)).is_err(),
            "a wrong key is noticed"
        );
    }

    /// Files written by python-pskc, an independent implementation (tests/fixtures/pskc/make.py):
    /// PBKDF2 with HMAC-SHA256 into AES-256-CBC and HMAC-SHA256 MACs; a SHA-256 TOTP whose
    /// drift becomes its time shift.
    #[test]
    fn pbkdf2_aes256_cbc_from_python_pskc() {
        let xml = include_str!("../../../tests/fixtures/pskc/pbkdf2-aes256-cbc.pskcxml");
        let t = parse_pskc(xml, password("correct horse")).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].serial.as_str(), t[0].kind, t[0].counter, t[0].otplen),
            ("PW0001", TokenType::Hotp, 5, 6)
        );
        assert_eq!(t[0].key.expose(), SHA1_KEY);
        assert_eq!(
            (t[1].serial.as_str(), t[1].kind, t[1].otplen, t[1].hashlib),
            ("PW0002", TokenType::Totp, 8, HashLib::Sha256)
        );
        assert_eq!((t[1].time_step, t[1].time_shift), (Some(60), -120));
        assert_eq!(t[1].key.expose(), SHA256_KEY);

        let wrong = parse_pskc(xml, password("Correct horse")).unwrap_err();
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
        let none = parse_pskc(xml, PskcKeys::default()).unwrap_err();
        assert!(none.to_string().contains("--password"), "{none}");
        let with_psk = parse_pskc(xml, psk(&[0u8; 32])).unwrap_err();
        assert!(with_psk.to_string().contains("--password"), "{with_psk}");
    }

    /// RFC 6030 §6.2's defaults (PBKDF2 with HMAC-SHA1, AES-128-CBC, HMAC-SHA1), with the
    /// counter encrypted too.
    #[test]
    fn pbkdf2_aes128_cbc_from_python_pskc() {
        let xml = include_str!("../../../tests/fixtures/pskc/pbkdf2-aes128-cbc.pskcxml");
        let t = parse_pskc(xml, password("qwerty")).unwrap();
        assert_eq!((t[0].serial.as_str(), t[0].counter), ("PW0003", 42));
        assert_eq!(t[0].key.expose(), SHA1_KEY);
        assert!(parse_pskc(xml, password("qwertz")).is_err());
    }

    /// A pre-shared key for AES key wrap (no ValueMAC: the wrap checks itself), and a validity
    /// period.
    #[test]
    fn key_wrap_and_validity_from_python_pskc() {
        let xml = include_str!("../../../tests/fixtures/pskc/psk-kw-aes128.pskcxml");
        let kek: Vec<u8> = (0u8..16).collect();
        let t = parse_pskc(xml, psk(&kek)).unwrap();
        assert_eq!(t[0].serial, "KW0001");
        assert_eq!(t[0].key.expose(), SHA1_KEY);
        let bound = |s: &Option<String>| {
            crate::dates::parse(s.as_deref().unwrap())
                .unwrap()
                .as_local_utc()
                .to_rfc3339()
        };
        assert_eq!(bound(&t[0].validity_start), "2026-01-01T00:00:00+00:00");
        assert_eq!(bound(&t[0].validity_end), "2030-12-31T23:59:00+00:00");
        let mut other = kek.clone();
        other[0] ^= 1;
        let wrong = parse_pskc(xml, psk(&other)).unwrap_err();
        assert!(
            wrong.to_string().contains("wrong pre-shared key"),
            "{wrong}"
        );
    }

    /// Names keep their inner spaces; base64 may be wrapped over lines.
    #[test]
    fn names_are_trimmed_and_base64_unwrapped() {
        let xml = r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>
  <DeviceInfo><Manufacturer> Acme Token Works </Manufacturer><SerialNo> AB 12 </SerialNo></DeviceInfo>
  <Key Id="n1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
    <Data><Secret><PlainValue>MTIzNDU2Nzg5
      MDEyMzQ1Njc4OTA=</PlainValue></Secret></Data>
  </Key></KeyPackage></KeyContainer>"#;
        let t = parse_pskc(xml, PskcKeys::default()).unwrap();
        assert_eq!(t[0].description, "Acme Token Works");
        assert_eq!(t[0].serial, "AB 12");
        assert_eq!(t[0].key.expose(), SHA1_KEY);
    }

    /// A key that could never log in is refused with its reason, not imported.
    #[test]
    fn unusable_keys_are_refused() {
        let doc = |length: &str, secret: &str, counter: &str| {
            format!(
                r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>
  <Key Id="u1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
    <AlgorithmParameters><ResponseFormat Length="{length}"/></AlgorithmParameters>
    <Data><Secret><PlainValue>{secret}</PlainValue></Secret>
      <Counter><PlainValue>{counter}</PlainValue></Counter></Data>
  </Key></KeyPackage></KeyContainer>"#
            )
        };
        let key = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=";
        assert!(parse_pskc(&doc("8", key, "3"), PskcKeys::default()).is_ok());
        for (xml, want) in [
            (doc("six", key, "3"), "Length \"six\""),
            (doc("12", key, "3"), "Length \"12\""),
            (doc("6", "", "3"), "empty"),
            (doc("6", key, "-1"), "negative"),
            (doc("6", key, "x"), "not an integer"),
        ] {
            let err = parse_pskc(&xml, PskcKeys::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("PSKC key u1") && err.contains(want), "{err}");
        }
    }

    #[test]
    fn suites_name_the_hash() {
        let doc = |suite: &str| {
            format!(
                r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>
  <Key Id="s1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
    <AlgorithmParameters>{suite}<ResponseFormat Length="6"/></AlgorithmParameters>
    <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>
      <Time><PlainValue>60</PlainValue></Time><TimeDrift><PlainValue>1</PlainValue></TimeDrift></Data>
  </Key></KeyPackage></KeyContainer>"#
            )
        };
        for (suite, want) in [
            ("", HashLib::Sha1),
            ("<Suite>HMAC-SHA512</Suite>", HashLib::Sha512),
            ("<Suite>sha-256</Suite>", HashLib::Sha256),
            (r#"<Suite hashalgo="sha256"/>"#, HashLib::Sha256),
        ] {
            let t = parse_pskc(&doc(suite), PskcKeys::default()).unwrap();
            assert_eq!(t[0].hashlib, want, "{suite}");
            // 1 step of drift, started at 60 s
            assert_eq!(t[0].time_shift, 30 - 60);
        }
        let md5 = parse_pskc(&doc("<Suite>HMAC-MD5</Suite>"), PskcKeys::default()).unwrap_err();
        assert!(md5.to_string().contains("no hash"), "{md5}");
    }
}
