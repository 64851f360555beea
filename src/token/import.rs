//! Token seed files, parsed: OATH CSV and PSKC (RFC 6030, plain or encrypted with a pre-shared
//! key). How admins load hardware-token seeds, and how the benchmark loads 100,000 tokens.
//!
//! Pure: text in, tokens out. Storing them (one transaction) is `auth::manage::import`.
//!
//! OATH CSV, one token per line (`#` comments and blank lines are skipped):
//!
//! ```text
//! serial, key (hex), type (hotp|totp), digits, counter (hotp) or time step (totp), user, realm, hashlib
//! OATH0001, 3132333435363738393031323334353637383930, hotp, 6, 0, alice, corp
//! TOTP0001, 3132333435363738393031323334353637383930, totp, 6, 30
//! ```
//!
//! Only serial and key are required; the rest default to hotp, 6 digits, counter 0 / 30 s.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use super::{HashLib, TokenType};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("PSKC: {0}")]
    Pskc(String),
    #[error("PSKC key {id}: {message}")]
    PskcKey { id: String, message: String },
}

/// One token from a seed file.
#[derive(Debug, Clone)]
pub struct ImportedToken {
    pub serial: String,
    pub kind: TokenType,
    pub key: Secret<Vec<u8>>,
    pub otplen: i64,
    pub counter: i64,
    pub time_step: Option<i64>,
    pub hashlib: HashLib,
    pub user: Option<String>,
    pub realm: Option<String>,
    pub description: String,
}

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
        let key =
            super::enroll::parse_hex_key(key_hex).map_err(|e| csv_err(line, e.to_string()))?;
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
            hashlib,
            user: col(5).map(str::to_owned),
            realm: col(6).map(str::to_owned),
            description: "imported".into(),
        });
    }
    Ok(out)
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn path<'a, 'i>(node: roxmltree::Node<'a, 'i>, names: &[&str]) -> Option<roxmltree::Node<'a, 'i>> {
    names.iter().try_fold(node, |n, name| child(n, name))
}

fn text_of(node: Option<roxmltree::Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(|t| t.split_whitespace().collect::<String>())
}

fn b64(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(s.as_bytes()).ok()
}

/// AES-128-CBC with the IV in front (xmlenc aes128-cbc), PKCS#7 padding.
fn aes128_cbc_open(psk: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    let (iv, ct) = data.split_at_checked(16)?;
    cbc::Decryptor::<aes::Aes128>::new_from_slices(psk, iv)
        .ok()?
        .decrypt_padded_vec::<Pkcs7>(ct)
        .ok()
}

/// A `PlainValue` or `EncryptedValue` (decrypted with the PSK; its `ValueMAC` checked with the
/// container's MAC key when there is one).
fn secret_value(
    data: roxmltree::Node<'_, '_>,
    psk: Option<&[u8]>,
    mac_key: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(plain) = text_of(child(data, "PlainValue")) {
        return b64(&plain)
            .map(Some)
            .ok_or_else(|| "PlainValue is not base64".into());
    }
    let Some(enc) = child(data, "EncryptedValue") else {
        return Ok(None);
    };
    let Some(psk) = psk else {
        return Err("the secret is encrypted: give the pre-shared key (--psk)".into());
    };
    let cipher = text_of(path(enc, &["CipherData", "CipherValue"]))
        .and_then(|v| b64(&v))
        .ok_or("EncryptedValue has no base64 CipherValue")?;
    if let (Some(mac_key), Some(want)) = (
        mac_key,
        text_of(child(data, "ValueMAC")).and_then(|v| b64(&v)),
    ) {
        let mut mac =
            <Hmac<Sha1> as KeyInit>::new_from_slice(mac_key).map_err(|e| e.to_string())?;
        mac.update(&cipher);
        if mac.verify_slice(&want).is_err() {
            return Err("ValueMAC does not match (wrong pre-shared key or a damaged file)".into());
        }
    }
    aes128_cbc_open(psk, &cipher)
        .map(Some)
        .ok_or_else(|| "cannot decrypt the secret (wrong pre-shared key?)".into())
}

pub fn parse_pskc(text: &str, psk: Option<&[u8]>) -> Result<Vec<ImportedToken>, ImportError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| ImportError::Pskc(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "KeyContainer" {
        return Err(ImportError::Pskc(
            "the root element is not KeyContainer".into(),
        ));
    }
    let mac_key = match path(root, &["MACMethod", "MACKey"]) {
        Some(k) => match (
            psk,
            text_of(path(k, &["CipherData", "CipherValue"])).and_then(|v| b64(&v)),
        ) {
            (Some(psk), Some(c)) => Some(aes128_cbc_open(psk, &c).ok_or_else(|| {
                ImportError::Pskc("cannot decrypt the MAC key (wrong pre-shared key?)".into())
            })?),
            _ => None,
        },
        None => None,
    };
    let mut out = Vec::new();
    for package in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "KeyPackage")
    {
        let Some(key) = child(package, "Key") else {
            continue;
        };
        let id = key.attribute("Id").unwrap_or("").to_owned();
        let err = |message: String| ImportError::PskcKey {
            id: id.clone(),
            message,
        };
        let serial = text_of(path(package, &["DeviceInfo", "SerialNo"]))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| id.clone());
        if serial.is_empty() {
            return Err(err("neither a SerialNo nor a Key Id".into()));
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
            return Err(err(format!(
                "algorithm {algorithm:?} is neither hotp nor totp"
            )));
        };
        let otplen = path(key, &["AlgorithmParameters", "ResponseFormat"])
            .and_then(|f| f.attribute("Length"))
            .and_then(|l| l.parse::<i64>().ok())
            .unwrap_or(6);
        if !(6..=10).contains(&otplen) {
            return Err(err(format!("ResponseFormat Length {otplen}: 6 to 10")));
        }
        let data = child(key, "Data").ok_or_else(|| err("no Data".into()))?;
        let secret = child(data, "Secret")
            .map(|s| secret_value(s, psk, mac_key.as_deref()))
            .transpose()
            .map_err(err)?
            .flatten()
            .ok_or_else(|| err("no Secret".into()))?;
        let int = |name: &str| -> Result<Option<i64>, ImportError> {
            let Some(n) = child(data, name) else {
                return Ok(None);
            };
            // counters are decimal text, or 8 big-endian bytes when encrypted
            if let Some(t) = text_of(child(n, "PlainValue")) {
                return Ok(t.parse::<i64>().ok());
            }
            let bytes = secret_value(n, psk, mac_key.as_deref()).map_err(err)?;
            Ok(bytes.map(|b| {
                let mut buf = [0u8; 8];
                let take = b.len().min(8);
                if let (Some(dst), Some(src)) = (buf.get_mut(8 - take..), b.get(b.len() - take..)) {
                    dst.copy_from_slice(src);
                }
                i64::from_be_bytes(buf)
            }))
        };
        let counter = int("Counter")?.unwrap_or(0);
        let time_step = match kind {
            TokenType::Totp => Some(int("TimeInterval")?.filter(|s| *s > 0).unwrap_or(30)),
            _ => None,
        };
        out.push(ImportedToken {
            serial,
            kind,
            key: Secret::new(secret),
            otplen,
            counter,
            time_step,
            hashlib: HashLib::Sha1,
            user: None,
            realm: None,
            description: text_of(path(package, &["DeviceInfo", "Manufacturer"]))
                .unwrap_or_else(|| "imported".into()),
        });
    }
    if out.is_empty() {
        return Err(ImportError::Pskc("no KeyPackage with a Key".into()));
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
        let t = parse_pskc(xml, None).unwrap();
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
        let t = parse_pskc(xml, Some(&psk)).unwrap();
        assert_eq!(t[0].key.expose(), b"12345678901234567890");
        assert_eq!(t[0].serial, "987654321");
        assert!(parse_pskc(xml, None).is_err(), "encrypted without a key");
        let wrong = [0u8; 16];
        assert!(
            parse_pskc(xml, Some(&wrong)).is_err(),
            "a wrong key is noticed"
        );
    }
}
