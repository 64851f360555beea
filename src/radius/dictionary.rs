//! FreeRADIUS-format dictionaries: attribute names ↔ (vendor, number, type), named values, and
//! text ↔ wire encoding of attribute values for reply attributes and `radtest` output.
//!
//! Supported: `ATTRIBUTE`, `VALUE`, `VENDOR`, `BEGIN-VENDOR`/`END-VENDOR`, `$INCLUDE` (relative
//! to the including file), the flags `has_tag` and `encrypt=N`, and the types string, octets,
//! ipaddr, ipv6addr, ipv6prefix, integer, short, byte, date, ifid (plus integer64, signed and
//! ether). Names are case-insensitive, as in FreeRADIUS.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Octets,
    IpAddr,
    Ipv6Addr,
    Ipv6Prefix,
    Integer,
    Integer64,
    Signed,
    Short,
    Byte,
    Date,
    Ifid,
    Ether,
}

impl AttrType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "string" | "text" => Self::String,
            "octets" | "abinary" => Self::Octets,
            "ipaddr" | "ipv4addr" => Self::IpAddr,
            "ipv6addr" => Self::Ipv6Addr,
            "ipv6prefix" => Self::Ipv6Prefix,
            "integer" | "uint32" => Self::Integer,
            "integer64" | "uint64" => Self::Integer64,
            "signed" | "int32" => Self::Signed,
            "short" | "uint16" => Self::Short,
            "byte" | "uint8" => Self::Byte,
            "date" => Self::Date,
            "ifid" => Self::Ifid,
            "ether" => Self::Ether,
            _ => return None,
        })
    }
}

/// One attribute definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDef {
    pub name: String,
    pub vendor: Option<u32>,
    pub code: u8,
    pub kind: AttrType,
    pub has_tag: bool,
    /// `encrypt=N` flag: 1 = User-Password style, 2 = Tunnel-Password style.
    pub encrypt: u8,
    values: Vec<(String, u64)>,
}

impl AttrDef {
    /// A named value (`VALUE Service-Type Framed-User 2`).
    pub fn value_named(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn value_name(&self, v: u64) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, x)| *x == v)
            .map(|(n, _)| n.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DictionaryError {
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Io { file: PathBuf, message: String },
}

/// All loaded definitions.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    attrs: Vec<AttrDef>,
    by_name: HashMap<String, usize>,
    by_code: HashMap<(Option<u32>, u8), usize>,
    vendors: HashMap<String, u32>,
}

/// Why a value does not fit an attribute.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{attribute}: {message}")]
pub struct ValueError {
    pub attribute: String,
    pub message: String,
}

impl Dictionary {
    /// Load a dictionary file and everything it includes.
    pub fn load(path: &Path) -> Result<Self, DictionaryError> {
        let mut d = Self::default();
        let mut loader = Loader {
            dict: &mut d,
            depth: 0,
            vendor: None,
        };
        loader.file(path)?;
        Ok(d)
    }

    /// Parse dictionary text (tests; `$INCLUDE` relative to `base`).
    pub fn parse(text: &str, base: &Path) -> Result<Self, DictionaryError> {
        let mut d = Self::default();
        let mut loader = Loader {
            dict: &mut d,
            depth: 0,
            vendor: None,
        };
        loader.text(text, &base.join("(inline)"))?;
        Ok(d)
    }

    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .and_then(|&i| self.attrs.get(i))
    }

    pub fn by_code(&self, vendor: Option<u32>, code: u8) -> Option<&AttrDef> {
        self.by_code
            .get(&(vendor, code))
            .and_then(|&i| self.attrs.get(i))
    }

    pub fn vendor(&self, name: &str) -> Option<u32> {
        self.vendors.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Encode a text value for `def` (optionally with a tag for `has_tag` attributes).
    pub fn encode(def: &AttrDef, text: &str, tag: Option<u8>) -> Result<Vec<u8>, ValueError> {
        let err = |message: String| ValueError {
            attribute: def.name.clone(),
            message,
        };
        let int = |max: u64| -> Result<u64, ValueError> {
            let v = match def.value_named(text) {
                Some(v) => v,
                None => text
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| err(format!("{text:?} is neither a number nor a VALUE name")))?,
            };
            if v > max {
                return Err(err(format!("{v} is out of range")));
            }
            Ok(v)
        };
        let mut out = match def.kind {
            AttrType::String => text.as_bytes().to_vec(),
            AttrType::Octets => match text.strip_prefix("0x") {
                Some(hex) => data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .map_err(|_| err(format!("{text:?} is not valid hex")))?,
                None => text.as_bytes().to_vec(),
            },
            AttrType::IpAddr => text
                .trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| err(format!("{text:?} is not an IPv4 address")))?
                .octets()
                .to_vec(),
            AttrType::Ipv6Addr => text
                .trim()
                .parse::<Ipv6Addr>()
                .map_err(|_| err(format!("{text:?} is not an IPv6 address")))?
                .octets()
                .to_vec(),
            AttrType::Ipv6Prefix => {
                let net: ipnet::Ipv6Net = text
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("{text:?} is not an IPv6 prefix")))?;
                let len = net.prefix_len();
                let bytes = usize::from(len).div_ceil(8);
                let mut v = vec![0, len];
                v.extend_from_slice(&net.network().octets()[..bytes]);
                v
            }
            AttrType::Integer => (int(u64::from(u32::MAX))? as u32).to_be_bytes().to_vec(),
            AttrType::Integer64 => int(u64::MAX)?.to_be_bytes().to_vec(),
            AttrType::Signed => text
                .trim()
                .parse::<i32>()
                .map_err(|_| err(format!("{text:?} is not a signed 32-bit number")))?
                .to_be_bytes()
                .to_vec(),
            AttrType::Short => (int(u64::from(u16::MAX))? as u16).to_be_bytes().to_vec(),
            AttrType::Byte => vec![int(u64::from(u8::MAX))? as u8],
            AttrType::Date => {
                let secs = match text.trim().parse::<u32>() {
                    Ok(v) => v,
                    Err(_) => crate::dates::parse(text)
                        .and_then(|s| u32::try_from(s.as_utc().timestamp()).ok())
                        .ok_or_else(|| err(format!("{text:?} is not a date")))?,
                };
                secs.to_be_bytes().to_vec()
            }
            AttrType::Ifid => {
                let hex: String = text.chars().filter(|c| *c != ':').collect();
                let v = data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .map_err(|_| err(format!("{text:?} is not an interface id")))?;
                if v.len() != 8 {
                    return Err(err(format!("{text:?} is not 8 octets")));
                }
                v
            }
            AttrType::Ether => {
                let hex: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
                let v = data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .map_err(|_| err(format!("{text:?} is not a MAC address")))?;
                if v.len() != 6 {
                    return Err(err(format!("{text:?} is not 6 octets")));
                }
                v
            }
        };
        if def.has_tag {
            let tag = tag.unwrap_or(0);
            if tag > 0x1f {
                return Err(err(format!("tag {tag} is above 31")));
            }
            match def.kind {
                // RFC 2868: tagged integers carry the tag in the first of their four octets
                AttrType::Integer => {
                    if let Some(first) = out.first_mut() {
                        *first = tag;
                    }
                }
                _ if tag > 0 => out.insert(0, tag),
                _ => {}
            }
        }
        let limit = if def.vendor.is_some() { 247 } else { 253 };
        if out.len() > limit {
            return Err(err(format!(
                "the value is {} octets; at most {limit} fit",
                out.len()
            )));
        }
        Ok(out)
    }

    /// Render a value for humans (`radtest`).
    pub fn format(def: &AttrDef, value: &[u8]) -> String {
        let int = |v: u64| {
            def.value_name(v)
                .map_or_else(|| v.to_string(), str::to_owned)
        };
        match (def.kind, value.len()) {
            (AttrType::String, _) => format!("{:?}", String::from_utf8_lossy(value)),
            (AttrType::IpAddr, 4) => {
                Ipv4Addr::new(value[0], value[1], value[2], value[3]).to_string()
            }
            (AttrType::Ipv6Addr, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(value);
                Ipv6Addr::from(b).to_string()
            }
            (AttrType::Integer | AttrType::Date, 4) => int(u64::from(u32::from_be_bytes([
                value[0], value[1], value[2], value[3],
            ]))),
            (AttrType::Short, 2) => int(u64::from(u16::from_be_bytes([value[0], value[1]]))),
            (AttrType::Byte, 1) => int(u64::from(value[0])),
            _ => format!("0x{}", data_encoding::HEXLOWER.encode(value)),
        }
    }
}

struct Loader<'a> {
    dict: &'a mut Dictionary,
    depth: usize,
    vendor: Option<u32>,
}

impl Loader<'_> {
    fn file(&mut self, path: &Path) -> Result<(), DictionaryError> {
        if self.depth > 16 {
            return Err(DictionaryError::Io {
                file: path.to_owned(),
                message: "$INCLUDE nested more than 16 deep (a cycle?)".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| DictionaryError::Io {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        self.depth += 1;
        let saved = self.vendor;
        let r = self.text(&text, path);
        self.vendor = saved;
        self.depth -= 1;
        r
    }

    fn text(&mut self, text: &str, path: &Path) -> Result<(), DictionaryError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let syntax = |message: String| DictionaryError::Syntax {
                file: path.to_owned(),
                line: i + 1,
                message,
            };
            match fields.first().copied().unwrap_or("") {
                "$INCLUDE" => {
                    let target = fields
                        .get(1)
                        .ok_or_else(|| syntax("$INCLUDE needs a file name".into()))?;
                    let base = path.parent().unwrap_or(Path::new("."));
                    self.file(&base.join(target))?;
                }
                "VENDOR" => {
                    let (Some(name), Some(id)) = (fields.get(1), fields.get(2)) else {
                        return Err(syntax("VENDOR needs a name and a number".into()));
                    };
                    let id: u32 = id
                        .parse()
                        .map_err(|_| syntax(format!("vendor number {id:?} is not a number")))?;
                    self.dict.vendors.insert(name.to_ascii_lowercase(), id);
                }
                "BEGIN-VENDOR" => {
                    let name = fields
                        .get(1)
                        .ok_or_else(|| syntax("BEGIN-VENDOR needs a vendor name".into()))?;
                    self.vendor = Some(
                        self.dict
                            .vendor(name)
                            .ok_or_else(|| syntax(format!("unknown vendor {name:?}")))?,
                    );
                }
                "END-VENDOR" => self.vendor = None,
                "ATTRIBUTE" => self.attribute(&fields).map_err(syntax)?,
                "VALUE" => self.value(&fields).map_err(syntax)?,
                other => return Err(syntax(format!("unknown keyword {other:?}"))),
            }
        }
        Ok(())
    }

    fn attribute(&mut self, f: &[&str]) -> Result<(), String> {
        let (Some(name), Some(code), Some(kind)) = (f.get(1), f.get(2), f.get(3)) else {
            return Err("ATTRIBUTE needs a name, a number and a type".into());
        };
        let code: u8 = code
            .parse()
            .map_err(|_| format!("attribute number {code:?} is not 0..=255"))?;
        let kind = AttrType::parse(kind).ok_or_else(|| format!("unknown type {kind:?}"))?;
        let mut vendor = self.vendor;
        let mut has_tag = false;
        let mut encrypt = 0;
        if let Some(extra) = f.get(4) {
            // Either flags (has_tag,encrypt=2) or a vendor name (old syntax).
            if extra.contains('=') || extra.contains("has_tag") || extra.contains(',') {
                for flag in extra.split(',') {
                    match flag.split_once('=') {
                        Some(("encrypt", n)) => {
                            encrypt = n.parse().map_err(|_| format!("bad flag {flag:?}"))?;
                        }
                        None if flag == "has_tag" => has_tag = true,
                        _ => {}
                    }
                }
            } else {
                vendor = Some(
                    self.dict
                        .vendor(extra)
                        .ok_or_else(|| format!("unknown vendor {extra:?}"))?,
                );
            }
        }
        let def = AttrDef {
            name: (*name).to_owned(),
            vendor,
            code,
            kind,
            has_tag,
            encrypt,
            values: Vec::new(),
        };
        let idx = self.dict.attrs.len();
        self.dict.attrs.push(def);
        self.dict.by_name.insert(name.to_ascii_lowercase(), idx);
        self.dict.by_code.insert((vendor, code), idx);
        Ok(())
    }

    fn value(&mut self, f: &[&str]) -> Result<(), String> {
        let (Some(attr), Some(name), Some(v)) = (f.get(1), f.get(2), f.get(3)) else {
            return Err("VALUE needs an attribute, a name and a number".into());
        };
        let v: u64 = if let Some(hex) = v.strip_prefix("0x") {
            u64::from_str_radix(hex, 16).map_err(|_| format!("bad value {v:?}"))?
        } else {
            v.parse().map_err(|_| format!("bad value {v:?}"))?
        };
        let idx = *self
            .dict
            .by_name
            .get(&attr.to_ascii_lowercase())
            .ok_or_else(|| format!("VALUE for unknown attribute {attr:?}"))?;
        if let Some(def) = self.dict.attrs.get_mut(idx) {
            def.values.push(((*name).to_owned(), v));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "
ATTRIBUTE  Service-Type  6  integer
VALUE      Service-Type  Framed-User  2
ATTRIBUTE  Filter-Id  11  string
ATTRIBUTE  Framed-IP-Address  8  ipaddr
ATTRIBUTE  Framed-IPv6-Prefix 97 ipv6prefix
ATTRIBUTE  Tunnel-Type  64  integer  has_tag
VALUE      Tunnel-Type  VLAN  13
ATTRIBUTE  Tunnel-Private-Group-Id  81  string  has_tag
VENDOR     Fortinet  12356
BEGIN-VENDOR Fortinet
ATTRIBUTE  Fortinet-Group-Name  1  string
END-VENDOR Fortinet
";

    fn dict() -> Dictionary {
        Dictionary::parse(SAMPLE, Path::new("/tmp")).unwrap()
    }

    #[test]
    fn names_codes_and_vendors() {
        let d = dict();
        let st = d.attr("service-type").unwrap();
        assert_eq!((st.code, st.vendor), (6, None));
        let fg = d.attr("Fortinet-Group-Name").unwrap();
        assert_eq!((fg.code, fg.vendor), (1, Some(12356)));
        assert_eq!(
            d.by_code(Some(12356), 1).unwrap().name,
            "Fortinet-Group-Name"
        );
    }

    #[test]
    fn values_encode_by_type() {
        let d = dict();
        let enc = |n: &str, v: &str| Dictionary::encode(d.attr(n).unwrap(), v, None);
        assert_eq!(
            enc("Service-Type", "Framed-User").unwrap(),
            vec![0, 0, 0, 2]
        );
        assert_eq!(enc("Service-Type", "7").unwrap(), vec![0, 0, 0, 7]);
        assert!(enc("Service-Type", "Bogus").is_err());
        assert_eq!(
            enc("Framed-IP-Address", "10.0.0.1").unwrap(),
            vec![10, 0, 0, 1]
        );
        assert!(enc("Framed-IP-Address", "x").is_err());
        assert_eq!(
            enc("Framed-IPv6-Prefix", "2001:db8::/32").unwrap(),
            vec![0, 32, 0x20, 0x01, 0x0d, 0xb8]
        );
        assert_eq!(
            Dictionary::encode(d.attr("Tunnel-Type").unwrap(), "VLAN", Some(1)).unwrap(),
            vec![1, 0, 0, 13]
        );
        assert_eq!(
            Dictionary::encode(d.attr("Tunnel-Private-Group-Id").unwrap(), "100", Some(1)).unwrap(),
            b"\x01100".to_vec()
        );
        assert_eq!(
            Dictionary::format(d.attr("Service-Type").unwrap(), &[0, 0, 0, 2]),
            "Framed-User"
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = Dictionary::parse("ATTRIBUTE X 300 string\n", Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains(":1:"), "{e}");
        let e = Dictionary::parse("\nATTRIBUTE X 3 nosuchtype\n", Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains(":2:"), "{e}");
        let e = Dictionary::parse("VALUE Nope A 1\n", Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains("unknown attribute"), "{e}");
    }

    #[test]
    fn shipped_dictionaries_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
        let d = Dictionary::load(&path).unwrap();
        for name in [
            "User-Name",
            "Acct-Status-Type",
            "Tunnel-Private-Group-Id",
            "Message-Authenticator",
            "Framed-IPv6-Prefix",
            "Error-Cause",
            "Cisco-AVPair",
            "MS-CHAP2-Success",
            "Fortinet-Group-Name",
            "PaloAlto-User-Group",
            "Juniper-Local-User-Name",
            "Aruba-User-Role",
            "CP-Gaia-User-Role",
            "SonicWall-User-Group",
            "Mikrotik-Group",
            "pfSense-Bandwidth-Max-Up",
        ] {
            assert!(d.attr(name).is_some(), "{name} missing");
        }
        assert!(d.vendor("WatchGuard").is_some());
    }
}
