//! Packet decode, attribute and Vendor-Specific iteration on arbitrary bytes: never panics,
//! and whatever decodes accounts for every octet of its Length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_codec::radius::attr::{VENDOR_SPECIFIC, vendor_attributes};
use otpgate_codec::radius::packet::{MIN_LEN, Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        let mut total = MIN_LEN;
        for a in p.attributes() {
            total += a.value.len() + 2;
            if a.kind == VENDOR_SPECIFIC {
                if let Some((_, subs)) = vendor_attributes(a.value) {
                    subs.for_each(drop);
                }
            }
        }
        assert_eq!(total, p.len());
        let _ = (p.code(), p.identifier(), p.authenticator());
    }
});
