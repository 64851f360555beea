//! Attribute numbers the server itself reads or writes, and Vendor-Specific sub-attributes.
//! Everything else is named through [`super::dictionary`].

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const SERVICE_TYPE: u8 = 6;
pub const FRAMED_IP_ADDRESS: u8 = 8;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_SESSION_ID: u8 = 44;
pub const CHAP_CHALLENGE: u8 = 60;
pub const NAS_PORT_TYPE: u8 = 61;
pub const EAP_MESSAGE: u8 = 79;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const NAS_IPV6_ADDRESS: u8 = 95;

/// One sub-attribute of a Vendor-Specific attribute (RFC 2865 §5.26 recommended format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorAttr<'a> {
    pub vendor: u32,
    pub kind: u8,
    pub value: &'a [u8],
}

/// The sub-attributes of a Vendor-Specific value, borrowed, without allocating.
///
/// [`vendor_attributes`] checks the whole value first, so iterating cannot fail.
#[derive(Debug, Clone)]
pub struct VendorAttrs<'a> {
    vendor: u32,
    rest: &'a [u8],
}

impl<'a> Iterator for VendorAttrs<'a> {
    type Item = VendorAttr<'a>;

    fn next(&mut self) -> Option<VendorAttr<'a>> {
        let (&kind, tail) = self.rest.split_first()?;
        let len = usize::from(*tail.first()?);
        let (sub, next) = self.rest.split_at_checked(len)?;
        self.rest = next;
        Some(VendorAttr {
            vendor: self.vendor,
            kind,
            value: sub.get(2..)?,
        })
    }
}

/// Split a Vendor-Specific value into its vendor id and sub-attributes. `None` if it does not
/// follow the recommended vendor-type/vendor-length format (some vendors use their own).
pub fn vendor_attributes(value: &[u8]) -> Option<(u32, VendorAttrs<'_>)> {
    let (id, subs) = value.split_at_checked(4)?;
    let vendor = u32::from_be_bytes(id.try_into().ok()?);
    let mut rest = subs;
    while !rest.is_empty() {
        let len = usize::from(*rest.get(1)?);
        if len < 2 {
            return None;
        }
        rest = rest.get(len..)?;
    }
    Some((vendor, VendorAttrs { vendor, rest: subs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_sub_attributes() {
        let value = [
            0, 0, 0x30, 0x44, 1, 7, b'a', b'd', b'm', b'i', b'n', 2, 3, b'x',
        ];
        let (vendor, subs) = vendor_attributes(&value).unwrap();
        let subs: Vec<VendorAttr<'_>> = subs.collect();
        assert_eq!(vendor, 12356);
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].value, b"admin");
        assert_eq!(subs[1].kind, 2);
        assert!(vendor_attributes(&[0, 0, 0, 9, 1, 1]).is_none());
        assert!(vendor_attributes(&[0, 0, 0, 9, 1, 9, 0]).is_none());
        assert!(vendor_attributes(&[0, 0]).is_none());
    }
}
