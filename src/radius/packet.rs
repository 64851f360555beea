//! RADIUS packets (RFC 2865 §3), sans-IO: decode borrowed bytes, encode into one buffer.
//!
//! Decoding checks every length before it is used and walks the attributes once, so a decoded
//! [`Packet`] is known to be well-formed; iterating its attributes afterwards cannot fail and
//! allocates nothing. Octets beyond the Length field are UDP padding and ignored (RFC 2865 §3);
//! attributes must fill the Length exactly.

/// Smallest and largest packets (RFC 2865 §3).
pub const MIN_LEN: usize = 20;
pub const MAX_LEN: usize = 4096;
/// Largest attribute value (255 − 2 header octets).
pub const MAX_VALUE_LEN: usize = 253;

/// Packet codes otpgate handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    StatusServer,
    Other(u8),
}

impl Code {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::AccessRequest,
            2 => Self::AccessAccept,
            3 => Self::AccessReject,
            4 => Self::AccountingRequest,
            5 => Self::AccountingResponse,
            11 => Self::AccessChallenge,
            12 => Self::StatusServer,
            other => Self::Other(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::AccessRequest => 1,
            Self::AccessAccept => 2,
            Self::AccessReject => 3,
            Self::AccountingRequest => 4,
            Self::AccountingResponse => 5,
            Self::AccessChallenge => 11,
            Self::StatusServer => 12,
            Self::Other(v) => v,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::AccessRequest => "Access-Request",
            Self::AccessAccept => "Access-Accept",
            Self::AccessReject => "Access-Reject",
            Self::AccountingRequest => "Accounting-Request",
            Self::AccountingResponse => "Accounting-Response",
            Self::AccessChallenge => "Access-Challenge",
            Self::StatusServer => "Status-Server",
            Self::Other(_) => "Unknown",
        }
    }
}

/// Why bytes are not a RADIUS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("datagram of {0} octets is shorter than a RADIUS header")]
    TooShort(usize),
    #[error("length field {length} is outside 20..=4096")]
    BadLength { length: usize },
    #[error("length field {length} exceeds the {received} octets received")]
    Truncated { length: usize, received: usize },
    #[error("attribute {kind} at offset {offset} has length {length}")]
    BadAttributeLength {
        kind: u8,
        offset: usize,
        length: usize,
    },
    #[error("attribute {kind} at offset {offset} runs past the end of the packet")]
    AttributeOverrun { kind: u8, offset: usize },
}

/// A well-formed packet borrowed from a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    raw: &'a [u8],
}

/// A packet [`Packet::decode`] accepted, with its own copy of the bytes: it goes to the task
/// that answers it without being decoded again.
#[derive(Debug, Clone)]
pub struct OwnedPacket {
    raw: Box<[u8]>,
}

impl OwnedPacket {
    pub fn packet(&self) -> Packet<'_> {
        Packet { raw: &self.raw }
    }
}

impl<'a> Packet<'a> {
    /// This packet with its own copy of the bytes.
    pub fn to_owned_packet(&self) -> OwnedPacket {
        OwnedPacket {
            raw: self.raw.into(),
        }
    }

    /// Check header and attribute framing. Nothing is copied.
    pub fn decode(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        let header = datagram
            .get(..MIN_LEN)
            .ok_or(DecodeError::TooShort(datagram.len()))?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if !(MIN_LEN..=MAX_LEN).contains(&length) {
            return Err(DecodeError::BadLength { length });
        }
        let raw = datagram.get(..length).ok_or(DecodeError::Truncated {
            length,
            received: datagram.len(),
        })?;
        let mut offset = MIN_LEN;
        while offset < length {
            let (Some(&kind), Some(&alen)) = (raw.get(offset), raw.get(offset + 1)) else {
                return Err(DecodeError::AttributeOverrun {
                    kind: raw.get(offset).copied().unwrap_or(0),
                    offset,
                });
            };
            let alen = usize::from(alen);
            if alen < 2 {
                return Err(DecodeError::BadAttributeLength {
                    kind,
                    offset,
                    length: alen,
                });
            }
            if offset + alen > length {
                return Err(DecodeError::AttributeOverrun { kind, offset });
            }
            offset += alen;
        }
        Ok(Self { raw })
    }

    pub fn code(&self) -> Code {
        Code::from_u8(self.raw[0])
    }

    pub fn identifier(&self) -> u8 {
        self.raw[1]
    }

    pub fn authenticator(&self) -> &'a [u8; 16] {
        // decode() guaranteed 20 header octets
        self.raw[4..20].try_into().unwrap_or(&[0; 16])
    }

    /// The packet's own bytes (without padding).
    pub fn bytes(&self) -> &'a [u8] {
        self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.len() <= MIN_LEN
    }

    /// Attributes in order, as (type, value).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: &self.raw[MIN_LEN..],
            offset: MIN_LEN,
        }
    }

    /// The first attribute of a type.
    pub fn attr(&self, kind: u8) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.kind == kind).map(|a| a.value)
    }

    /// How many attributes of a type the packet carries.
    pub fn count(&self, kind: u8) -> usize {
        self.attributes().filter(|a| a.kind == kind).count()
    }
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u8,
    pub value: &'a [u8],
    /// Offset of the attribute header in the packet.
    pub offset: usize,
}

/// Iterator over a decoded packet's attributes (framing already validated).
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let (&kind, tail) = self.rest.split_first()?;
        let (&len, _) = tail.split_first()?;
        let len = usize::from(len).max(2);
        let (attr, rest) = self.rest.split_at_checked(len)?;
        let item = Attr {
            kind,
            value: attr.get(2..).unwrap_or(&[]),
            offset: self.offset,
        };
        self.rest = rest;
        self.offset += len;
        Some(item)
    }
}

/// Why a reply could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("attribute {kind} value of {len} octets exceeds 253")]
    ValueTooLong { kind: u8, len: usize },
    #[error("the packet would exceed 4096 octets")]
    PacketTooLong,
}

/// Builds a packet in one buffer. The length field is fixed by [`Builder::finish`].
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    pub fn new(code: Code, identifier: u8, authenticator: &[u8; 16]) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.push(code.as_u8());
        buf.push(identifier);
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(authenticator);
        Self { buf }
    }

    pub fn attr(&mut self, kind: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(EncodeError::ValueTooLong {
                kind,
                len: value.len(),
            });
        }
        if self.buf.len() + 2 + value.len() > MAX_LEN {
            return Err(EncodeError::PacketTooLong);
        }
        self.buf.push(kind);
        self.buf.push((value.len() + 2) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// A Vendor-Specific attribute (26) carrying one sub-attribute.
    pub fn vsa(&mut self, vendor: u32, kind: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.len() > MAX_VALUE_LEN - 6 {
            return Err(EncodeError::ValueTooLong {
                kind,
                len: value.len(),
            });
        }
        let mut inner = [0u8; 255];
        inner[..4].copy_from_slice(&vendor.to_be_bytes());
        inner[4] = kind;
        inner[5] = (value.len() + 2) as u8;
        inner[6..6 + value.len()].copy_from_slice(value);
        self.attr(
            crate::radius::attr::VENDOR_SPECIFIC,
            &inner[..6 + value.len()],
        )
    }

    /// A long text split over as many attributes as it needs (e.g. Reply-Message).
    pub fn attr_split(&mut self, kind: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.is_empty() {
            return self.attr(kind, value);
        }
        for chunk in value.chunks(MAX_VALUE_LEN) {
            self.attr(kind, chunk)?;
        }
        Ok(self)
    }

    /// Bytes so far (length field not yet set).
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Set the length field and hand out the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() as u16).to_be_bytes();
        self.buf[2] = len[0];
        self.buf[3] = len[1];
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = Builder::new(Code::AccessRequest, 7, &[1; 16]);
        b.attr(1, b"alice")
            .unwrap()
            .attr(4, &[127, 0, 0, 1])
            .unwrap();
        b.finish()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.code(), Code::AccessRequest);
        assert_eq!(p.identifier(), 7);
        assert_eq!(p.attr(1), Some(&b"alice"[..]));
        assert_eq!(p.attributes().count(), 2);
    }

    #[test]
    fn padding_is_ignored_but_short_datagrams_are_not() {
        let mut bytes = sample();
        bytes.extend_from_slice(&[0; 10]);
        assert_eq!(Packet::decode(&bytes).unwrap().len(), bytes.len() - 10);
        let bytes = sample();
        assert!(matches!(
            Packet::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Packet::decode(&bytes[..5]),
            Err(DecodeError::TooShort(5))
        ));
    }

    #[test]
    fn bad_attribute_lengths_are_rejected() {
        for bad_len in [0u8, 1] {
            let mut bytes = sample();
            bytes[21] = bad_len;
            assert!(matches!(
                Packet::decode(&bytes),
                Err(DecodeError::BadAttributeLength { .. })
            ));
        }
        let mut bytes = sample();
        bytes[21] = 200;
        assert!(matches!(
            Packet::decode(&bytes),
            Err(DecodeError::AttributeOverrun { .. })
        ));
        let mut bytes = sample();
        bytes[2] = 0x20;
        bytes[3] = 0;
        assert!(matches!(
            Packet::decode(&bytes),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn builder_bounds_values_and_packets() {
        let mut b = Builder::new(Code::AccessAccept, 1, &[0; 16]);
        assert!(b.attr(18, &[b'x'; 253]).is_ok());
        assert!(matches!(
            b.attr(18, &[b'x'; 254]),
            Err(EncodeError::ValueTooLong { .. })
        ));
        let mut b = Builder::new(Code::AccessAccept, 1, &[0; 16]);
        for _ in 0..15 {
            b.attr(18, &[b'x'; 253]).unwrap();
        }
        assert!(matches!(
            b.attr(18, &[b'x'; 253]),
            Err(EncodeError::PacketTooLong)
        ));
        let bytes = b.finish();
        assert!(bytes.len() <= MAX_LEN);
        assert!(Packet::decode(&bytes).is_ok());
    }

    #[test]
    fn split_long_text() {
        let mut b = Builder::new(Code::AccessReject, 1, &[0; 16]);
        b.attr_split(18, &[b'y'; 600]).unwrap();
        let bytes = b.finish();
        let p = Packet::decode(&bytes).unwrap();
        let parts: Vec<usize> = p.attributes().map(|a| a.value.len()).collect();
        assert_eq!(parts, vec![253, 253, 94]);
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn attrs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        prop::collection::vec(
            (
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..=MAX_VALUE_LEN),
            ),
            0..15,
        )
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_same_attributes(
            code in any::<u8>(), id in any::<u8>(), auth in any::<[u8; 16]>(), list in attrs()
        ) {
            let mut b = Builder::new(Code::from_u8(code), id, &auth);
            let mut sent = Vec::new();
            for (k, v) in &list {
                if b.attr(*k, v).is_ok() {
                    sent.push((*k, v.clone()));
                }
            }
            let bytes = b.finish();
            let p = Packet::decode(&bytes).unwrap();
            prop_assert_eq!(p.code().as_u8(), code);
            prop_assert_eq!(p.identifier(), id);
            prop_assert_eq!(p.authenticator(), &auth);
            let got: Vec<(u8, Vec<u8>)> = p.attributes().map(|a| (a.kind, a.value.to_vec())).collect();
            prop_assert_eq!(got, sent);
        }

        #[test]
        fn decode_never_panics_and_bounds_hold(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(p) = Packet::decode(&bytes) {
                prop_assert!(p.len() >= MIN_LEN && p.len() <= bytes.len());
                let total: usize = p.attributes().map(|a| a.value.len() + 2).sum();
                prop_assert_eq!(total + MIN_LEN, p.len());
            }
        }
    }
}
