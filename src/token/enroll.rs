//! Enrollment helpers: keys, serials, the `otpauth://` URI and its terminal QR code.

use std::fmt::Write;

use std::collections::BTreeMap;

use super::{HashLib, Owner, TokenType};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrollError {
    #[error("the key is not valid hex: {0}")]
    BadHex(String),
    #[error("the key is not valid base32: {0}")]
    BadBase32(String),
    #[error("the key is empty")]
    EmptyKey,
    #[error("the key is {0} bytes long; at most 128 bytes are allowed")]
    KeyTooLong(usize),
    #[error("the operating system's random source failed")]
    Random,
    #[error("the QR code could not be rendered: {0}")]
    Qr(String),
}

/// What to enroll.
#[derive(Debug, Default)]
pub struct EnrollSpec {
    pub kind: Option<TokenType>,
    pub serial: Option<String>,
    /// A given key; `None` generates `key_len` random bytes.
    pub key: Option<Secret<Vec<u8>>>,
    pub key_len: Option<usize>,
    pub otplen: Option<i64>,
    pub hashlib: Option<HashLib>,
    pub time_step: Option<i64>,
    pub pin: Option<Secret<String>>,
    /// Store the PIN encrypted with the key file instead of hashed (privacyIDEA's
    /// `encryptpin`): what CHAP and MS-CHAP need.
    pub encrypt_pin: bool,
    /// `user` parameter and optional realm.
    pub user: Option<String>,
    pub realm: Option<String>,
    pub description: String,
    pub count_window: Option<i64>,
    pub maxfail: Option<i64>,
    pub info: BTreeMap<String, String>,
    /// Email tokens: the address (else the user's `email`, or dynamic).
    pub email: Option<String>,
    /// SMS tokens: the number (else the user's `mobile`, or dynamic).
    pub phone: Option<String>,
    pub dynamic_email: bool,
    pub dynamic_phone: bool,
}

/// The result of an enrollment. The key and URI are shown once.
#[derive(Debug)]
pub struct Enrolled {
    pub serial: String,
    pub kind: TokenType,
    pub owner: Option<Owner>,
    pub key: Option<Secret<Vec<u8>>>,
    pub uri: Option<Secret<String>>,
}

/// Length of generated keys (privacyIDEA and RFC 4226 recommend 20 bytes).
pub const DEFAULT_KEY_LEN: usize = 20;
const MAX_KEY_LEN: usize = 128;

pub fn generate_key(len: usize) -> Result<Secret<Vec<u8>>, EnrollError> {
    let mut key = vec![0u8; len.clamp(1, MAX_KEY_LEN)];
    getrandom::fill(&mut key).map_err(|_| EnrollError::Random)?;
    Ok(Secret::new(key))
}

fn check_len(key: Vec<u8>) -> Result<Secret<Vec<u8>>, EnrollError> {
    match key.len() {
        0 => Err(EnrollError::EmptyKey),
        n if n > MAX_KEY_LEN => Err(EnrollError::KeyTooLong(n)),
        _ => Ok(Secret::new(key)),
    }
}

/// A key given as hex (privacyIDEA's `otpkey`). Blanks are ignored.
pub fn parse_hex_key(text: &str) -> Result<Secret<Vec<u8>>, EnrollError> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(cleaned.as_bytes())
        .map_err(|e| EnrollError::BadHex(e.to_string()))?;
    check_len(bytes)
}

/// A key given as base32 (what authenticator apps show). Blanks, dashes and padding are
/// ignored; case does not matter.
pub fn parse_base32_key(text: &str) -> Result<Secret<Vec<u8>>, EnrollError> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
        .collect();
    let bytes = data_encoding::BASE32_NOPAD_NOCASE
        .decode(cleaned.as_bytes())
        .map_err(|e| EnrollError::BadBase32(e.to_string()))?;
    check_len(bytes)
}

/// A fresh serial: the type prefix and eight random hex digits, e.g. `OATH0A1B2C3D`.
pub fn generate_serial(kind: TokenType) -> Result<String, EnrollError> {
    let mut raw = [0u8; 4];
    getrandom::fill(&mut raw).map_err(|_| EnrollError::Random)?;
    Ok(format!(
        "{}{}",
        kind.serial_prefix(),
        data_encoding::HEXUPPER.encode(&raw)
    ))
}

/// What goes into an `otpauth://` URI.
#[derive(Debug)]
pub struct UriParams<'a> {
    pub kind: TokenType,
    pub key: &'a [u8],
    pub label: &'a str,
    pub issuer: &'a str,
    pub digits: usize,
    pub hashlib: HashLib,
    pub counter: u64,
    pub period: i64,
}

/// The Key URI Format understood by authenticator apps.
pub fn otpauth_uri(p: &UriParams<'_>) -> Secret<String> {
    let kind = if p.kind == TokenType::Totp {
        "totp"
    } else {
        "hotp"
    };
    let secret = Secret::new(data_encoding::BASE32_NOPAD.encode(p.key));
    let mut uri = format!(
        "otpauth://{kind}/{}:{}?secret={}&issuer={}&algorithm={}&digits={}",
        percent_encode(p.issuer),
        percent_encode(p.label),
        secret.expose(),
        percent_encode(p.issuer),
        p.hashlib.as_str().to_ascii_uppercase(),
        p.digits
    );
    if p.kind == TokenType::Totp {
        let _ = write!(uri, "&period={}", p.period);
    } else {
        let _ = write!(uri, "&counter={}", p.counter);
    }
    Secret::new(uri)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The URI as a QR code in Unicode half blocks, for a terminal.
pub fn qr_terminal(uri: &str) -> Result<String, EnrollError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| EnrollError::Qr(e.to_string()))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

/// The URI as a QR code in a PNG (grey levels, 4 pixels a module, a 4-module quiet zone), for
/// an enrolment mail's attachment.
pub fn qr_png(uri: &str) -> Result<Vec<u8>, EnrollError> {
    const SCALE: usize = 4;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| EnrollError::Qr(e.to_string()))?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % width + QUIET, i / width + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side32 = u32::try_from(side).map_err(|e| EnrollError::Qr(e.to_string()))?;
    let mut enc = png::Encoder::new(&mut out, side32, side32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .map_err(|e| EnrollError::Qr(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_become_pngs() {
        let png = qr_png("otpauth://hotp/T1?secret=GEZDGNBV&counter=0").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width % 4, 0);
    }

    #[test]
    fn hex_and_base32_keys() {
        let k = parse_hex_key("3132333435363738393031323334353637383930").unwrap();
        assert_eq!(k.expose(), b"12345678901234567890");
        let b = parse_base32_key("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        assert_eq!(b.expose(), b"12345678901234567890");
        assert!(matches!(parse_hex_key("zz"), Err(EnrollError::BadHex(_))));
        assert!(matches!(parse_hex_key(""), Err(EnrollError::EmptyKey)));
        assert!(matches!(
            parse_base32_key("1"),
            Err(EnrollError::BadBase32(_))
        ));
    }

    #[test]
    fn serials_carry_the_type_prefix() {
        let s = generate_serial(TokenType::Email).unwrap();
        assert!(s.starts_with("PIEM") && s.len() == 12, "{s}");
    }

    #[test]
    fn uri_has_the_key_uri_format() {
        let uri = otpauth_uri(&UriParams {
            kind: TokenType::Totp,
            key: b"12345678901234567890",
            label: "alice@corp",
            issuer: "otpgate",
            digits: 6,
            hashlib: HashLib::Sha256,
            counter: 0,
            period: 30,
        });
        assert_eq!(
            uri.expose(),
            "otpauth://totp/otpgate:alice@corp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=otpgate&algorithm=SHA256&digits=6&period=30"
        );
        let qr = qr_terminal(uri.expose()).unwrap();
        assert!(qr.lines().count() > 10);
    }
}
