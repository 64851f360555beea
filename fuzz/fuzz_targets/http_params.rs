//! The HTTP API's parameter parser on arbitrary query strings, User-Agents and bodies (form
//! and JSON): never panics, and decides the same way twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_codec::http_params::parse;

fuzz_target!(|data: &[u8]| {
    // first byte: flags; then query, user agent and body separated by 0xff bytes
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0xff);
    let query = parts.next().map(String::from_utf8_lossy);
    let agent = parts.next().map(String::from_utf8_lossy).unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let json = flags & 1 == 1;
    let query = query.as_deref().filter(|_| flags & 2 == 2);
    let first = parse(query, &agent, json, body);
    assert_eq!(first, parse(query, &agent, json, body));
});
