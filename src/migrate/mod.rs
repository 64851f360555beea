//! Moving a site over from another system: `otpgate import privacyidea` ([`privacyidea`]).

pub mod privacyidea;
