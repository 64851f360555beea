//! What the LDAP proxy does with a client's bytes before any I/O: the codec's decode with the
//! proxy's size limit, then, for a simple bind, the DN mapping and the password split. Never
//! panics; a split password puts back together to what was sent.
#![no_main]

use bytes::BytesMut;
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::{LdapBindCred, LdapOp};
use libfuzzer_sys::fuzz_target;
use otpgate_codec::ldap_mapping::{PasswordMode, login_of, split};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = LdapCodec::new(Some(32 * 1024), None);
    let mut buf = BytesMut::from(data);
    let templates = vec![
        "uid={user},ou=people,dc=example,dc=org".to_owned(),
        "CN={user},OU=Staff,DC=corp".to_owned(),
    ];
    while let Ok(Some(msg)) = codec.decode(&mut buf) {
        if let LdapOp::BindRequest(b) = msg.op {
            let _ = login_of(&b.dn, &templates);
            if let LdapBindCred::Simple(pw) = b.cred {
                for mode in [PasswordMode::Pin, PasswordMode::PasswordOtp { otp_length: 6 }] {
                    if let Some(s) = split(&pw, mode) {
                        let whole = format!("{}{}", s.directory_password.unwrap_or(""), s.for_otpgate);
                        assert_eq!(whole, pw);
                    }
                }
            }
        }
    }
});
