//! Shared-secret verification on arbitrary bytes: Message-Authenticator and Request
//! Authenticator checks and User-Password recovery never panic, and a forged packet is never
//! accepted with a Message-Authenticator it did not compute.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_codec::radius::attr::USER_PASSWORD;
use otpgate_codec::radius::crypto::{unhide_password, verify_request};
use otpgate_codec::radius::packet::Packet;

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::decode(data) else { return };
    for (require, limit) in [(true, true), (false, false)] {
        if let Ok(proof) = verify_request(&p, SECRET, require, limit)
            && require
        {
            // Accepted with a required Message-Authenticator: it must really carry one.
            assert!(proof.has_message_authenticator);
        }
    }
    if let Some(hidden) = p.attr(USER_PASSWORD) {
        let _ = unhide_password(hidden, p.authenticator(), SECRET);
    }
});
