//! The RADIUS front-end, black-box: the running binary checked by independent clients
//! (radclient from freeradius-utils, pyrad), by the `radius` crate as a codec oracle, and by raw
//! UDP for the cases no well-behaved client produces.

use std::net::UdpSocket;
use std::time::Duration;

use otpgate::radius::attr;
use otpgate::radius::client::{AccessRequest, encode_access_request};
use otpgate::radius::crypto;
use otpgate::radius::packet::{Builder, Code, Packet};
use otpgate::secret::Secret;
use serde_json::json;

use crate::daemon::{Daemon, SECRET, Setup, udp_exchange};
use crate::harness::RFC4226;

const SHORT: Duration = Duration::from_millis(700);

fn alice_daemon(setup: &Setup) -> Daemon {
    let d = Daemon::start(setup);
    d.enroll_hotp("HOTP1", "alice", "pin");
    d
}

fn request_bytes(user: &str, password: &str, ma: bool, secret: &str) -> (Vec<u8>, [u8; 16]) {
    encode_access_request(
        &AccessRequest {
            user: user.into(),
            password: Secret::new(password.into()),
            message_authenticator: ma,
            ..Default::default()
        },
        42,
        secret.as_bytes(),
    )
    .unwrap()
}

fn verified(reply: &[u8], request_auth: &[u8; 16]) -> Code {
    let p = Packet::decode(reply).unwrap();
    crypto::verify_response(&p, request_auth, SECRET.as_bytes(), true)
        .expect("reply carries a valid Message-Authenticator and Response Authenticator");
    p.code()
}

#[test]
fn radclient_accept_then_reject_of_a_reused_otp() {
    let d = alice_daemon(&Setup::default());
    let attrs = |otp: &str| {
        vec![
            "User-Name = alice".to_owned(),
            format!("User-Password = pin{otp}"),
            "Message-Authenticator = 0x00".to_owned(),
        ]
    };
    let a = attrs(RFC4226[0]);
    let r = d.radclient("auth", &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    let r = d.radclient("auth", &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, "Access-Reject", "{}", r.raw);
    assert_eq!(
        r.attr("Reply-Message"),
        Some("wrong otp value. previous otp used again")
    );
    assert_eq!(d.token("HOTP1")["count"], 1);
    assert!(
        d.log()
            .contains("Access-Request user=alice client=loopback")
    );
    assert!(!d.log().contains("pin755224"), "a password reached the log");
    assert!(d.stop().success());
}

#[test]
fn pyrad_accept_carries_reply_attributes_and_a_valid_message_authenticator() {
    let d = alice_daemon(&Setup {
        extra: "[[radius.reply]]\nrealm = \"realm1\"\nattributes = { \"Class\" = \"staff\", \
                \"Session-Timeout\" = 3600, \"Fortinet-Group-Name\" = \"{username}-vpn\" }\n"
            .into(),
        ..Default::default()
    });
    let r = d.pyrad(json!({"user": "alice", "password": format!("pin{}", RFC4226[0])}));
    assert_eq!(r["code"], 2, "{r}");
    assert_eq!(r["attrs"]["Class"], json!(["staff"]));
    assert_eq!(r["attrs"]["Session-Timeout"], json!([3600]));
    assert_eq!(r["attrs"]["Fortinet-Group-Name"], json!(["alice-vpn"]));
    // wrong OTP: Access-Reject with the reason
    let r = d.pyrad(json!({"user": "alice", "password": "pin000000"}));
    assert_eq!(r["code"], 3, "{r}");
    assert_eq!(r["attrs"]["Reply-Message"], json!(["wrong otp value"]));
}

#[test]
fn hidden_reject_detail() {
    let d = alice_daemon(&Setup {
        radius: "hide_reject_detail = true\nreject_message = \"Denied\"".into(),
        ..Default::default()
    });
    let r = d.pyrad(json!({"user": "alice", "password": "wrong000000"}));
    assert_eq!(r["code"], 3, "{r}");
    assert_eq!(r["attrs"]["Reply-Message"], json!(["Denied"]));
}

#[test]
fn status_server_and_accounting() {
    let d = Daemon::start(&Setup::default());
    let r = d.radclient("status", &["Message-Authenticator = 0x00"]);
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    let r = d.pyrad(json!({"code": "status"}));
    assert_eq!(r["code"], 2, "{r}");
    let r = d.radclient(
        "acct",
        &[
            "User-Name = alice",
            "Acct-Status-Type = Start",
            "Acct-Session-Id = abc",
        ],
    );
    assert_eq!(r.code, "Accounting-Response", "{r:?}");
    let r = d.pyrad(json!({"code": "acct", "ma": false}));
    assert_eq!(r["code"], 5, "{r}");
    d.wait_for_log("Accounting-Request answered", Duration::from_secs(5));
}

#[test]
fn wrong_secret_gets_no_answer() {
    let d = alice_daemon(&Setup::default());
    let (bytes, _) = request_bytes("alice", "pin755224", true, "not-the-secret");
    assert_eq!(d.udp(&bytes, SHORT), None);
    let r = d.pyrad(json!({"user": "alice", "password": "pin755224", "secret": "nope"}));
    assert_eq!(r["timeout"], true, "{r}");
    assert_eq!(
        d.token("HOTP1")["count"],
        0,
        "an unauthenticated packet reached the core"
    );
    assert!(
        d.metric("otpgate_radius_dropped_total{client=\"loopback\",reason=\"bad_authenticator\"}")
            >= 2.0
    );
}

#[test]
fn message_authenticator_required_by_default() {
    let d = alice_daemon(&Setup::default());
    let r = d.radclient("auth", &["User-Name = alice", "User-Password = pin755224"]);
    assert_eq!(
        r.code, "",
        "answered without Message-Authenticator: {}",
        r.raw
    );
    assert_eq!(
        d.metric("otpgate_radius_missing_message_authenticator_total{client=\"loopback\"}"),
        1.0
    );
    let (bytes, auth) = request_bytes("alice", "pin755224", true, SECRET);
    let reply = d.udp(&bytes, Duration::from_secs(3)).expect("answer");
    assert_eq!(verified(&reply, &auth), Code::AccessAccept);
    // every reply has the Message-Authenticator as its first attribute (BlastRADIUS)
    let p = Packet::decode(&reply).unwrap();
    assert_eq!(
        p.attributes().next().map(|a| a.kind),
        Some(attr::MESSAGE_AUTHENTICATOR)
    );
}

#[test]
fn message_authenticator_off_answers_and_auto_learns() {
    let d = alice_daemon(&Setup {
        client: "require_message_authenticator = false".into(),
        ..Default::default()
    });
    let r = d.radclient("auth", &["User-Name = alice", "User-Password = pin755224"]);
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    drop(d);

    let d = alice_daemon(&Setup {
        client: "require_message_authenticator = \"auto\"".into(),
        ..Default::default()
    });
    let (bytes, auth) = request_bytes("alice", &format!("pin{}", RFC4226[0]), false, SECRET);
    let reply = d
        .udp(&bytes, Duration::from_secs(3))
        .expect("auto: answered before learning");
    assert_eq!(verified(&reply, &auth), Code::AccessAccept);
    let (bytes, auth) = request_bytes("alice", &format!("pin{}", RFC4226[1]), true, SECRET);
    let reply = d
        .udp(&bytes, Duration::from_secs(3))
        .expect("answer with MA");
    assert_eq!(verified(&reply, &auth), Code::AccessAccept);
    d.wait_for_log("it is required from this client", Duration::from_secs(2));
    let (bytes, _) = request_bytes("alice", &format!("pin{}", RFC4226[2]), false, SECRET);
    assert_eq!(
        d.udp(&bytes, SHORT),
        None,
        "auto: still answered after learning"
    );
    assert_eq!(d.token("HOTP1")["count"], 2);
}

#[test]
fn proxy_state_without_message_authenticator_is_dropped() {
    let d = alice_daemon(&Setup {
        client: "require_message_authenticator = false".into(),
        ..Default::default()
    });
    let r = d.pyrad(
        json!({"user": "alice", "password": "pin755224", "ma": false,
                           "proxy_state": ["x"]}),
    );
    assert_eq!(r["timeout"], true, "{r}");
    // with a Message-Authenticator both Proxy-States come back, in order
    let r = d.pyrad(json!({"user": "alice", "password": "pin755224",
                           "proxy_state": ["first", "second"]}));
    assert_eq!(r["code"], 2, "{r}");
    assert_eq!(r["attrs"]["Proxy-State"], json!(["first", "second"]));
}

#[test]
fn retransmit_gets_the_identical_reply_and_consumes_one_otp() {
    let d = alice_daemon(&Setup::default());
    let (bytes, auth) = request_bytes("alice", "pin755224", true, SECRET);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let first = udp_exchange(&s, d.radius, &bytes, Duration::from_secs(3)).unwrap();
    let second = udp_exchange(&s, d.radius, &bytes, Duration::from_secs(3)).unwrap();
    assert_eq!(
        first, second,
        "retransmit must get the byte-identical reply"
    );
    assert_eq!(verified(&first, &auth), Code::AccessAccept);
    // a bare Accept: the duplicate cache keeps its code and builds it again
    assert_eq!(first.len(), 38, "header and Message-Authenticator only");
    assert_eq!(d.token("HOTP1")["count"], 1, "the OTP was checked twice");
    assert_eq!(
        d.metric("otpgate_radius_duplicates_answered_total{client=\"loopback\"}"),
        1.0
    );
    // the same bytes from another port are another request: the OTP is used up
    let other = exchange_from_new_socket(&d, &bytes);
    assert_eq!(verified(&other.0, &auth), Code::AccessReject);
    // a reply with attributes of its own (the Reject's Reply-Message): the cache keeps them
    // and builds the rest again
    assert!(other.0.len() > 38);
    let again = udp_exchange(&other.1, d.radius, &bytes, Duration::from_secs(3)).unwrap();
    assert_eq!(
        other.0, again,
        "retransmit must get the byte-identical reply"
    );
}

/// A request from a socket of its own: the reply and the socket, for a retransmit.
fn exchange_from_new_socket(d: &Daemon, bytes: &[u8]) -> (Vec<u8>, UdpSocket) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let reply = udp_exchange(&s, d.radius, bytes, Duration::from_secs(3)).unwrap();
    (reply, s)
}

/// A burst beyond `max_in_flight` waits in the socket's receive buffer and is answered in
/// full: the server stops reading while every permit is taken instead of reading and
/// dropping (which left the NAS to retransmit seconds later).
#[test]
fn a_burst_beyond_max_in_flight_is_answered_not_dropped() {
    let d = alice_daemon(&Setup {
        radius: "max_in_flight = 2\n".into(),
        ..Setup::default()
    });
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let burst = 200u8;
    let mut sent = Vec::new();
    for id in 0..burst {
        let (bytes, auth) = encode_access_request(
            &AccessRequest {
                user: format!("nobody{id}"),
                password: Secret::new("pin000000".into()),
                message_authenticator: true,
                ..Default::default()
            },
            id,
            SECRET.as_bytes(),
        )
        .unwrap();
        s.send_to(&bytes, d.radius).unwrap();
        sent.push(auth);
    }
    let mut answered = vec![false; usize::from(burst)];
    let mut buf = [0u8; 4096];
    while answered.iter().any(|a| !a) {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            break;
        };
        let p = Packet::decode(&buf[..n]).unwrap();
        let id = usize::from(p.identifier());
        assert_eq!(verified(&buf[..n], &sent[id]), Code::AccessReject);
        answered[id] = true;
    }
    let missing = answered.iter().filter(|a| !**a).count();
    assert_eq!(missing, 0, "{missing} of {burst} requests got no answer");
    assert_eq!(
        d.metric("otpgate_radius_dropped_total{client=\"loopback\",reason=\"overload\"}"),
        0.0
    );
    assert!(d.stop().success());
}

#[test]
fn long_attributes_and_a_4096_octet_packet() {
    let d = alice_daemon(&Setup::default());
    let mut ra = [0u8; 16];
    getrandom::fill(&mut ra).unwrap();
    let mut b = Builder::new(Code::AccessRequest, 9, &ra);
    b.attr(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
    b.attr(attr::USER_NAME, b"alice").unwrap();
    let hidden = crypto::hide_password(b"pin755224", &ra, SECRET.as_bytes()).unwrap();
    b.attr(attr::USER_PASSWORD, &hidden).unwrap();
    b.attr(attr::NAS_IDENTIFIER, &[b'n'; 253]).unwrap();
    // fill up with an unknown vendor's attributes until exactly 4096 octets
    loop {
        let used = b.bytes_mut().len();
        let room = 4096 - used;
        if room == 0 {
            break;
        }
        let value_len = room.min(255) - 2;
        let mut v = vec![0, 0, 0x99, 0x99];
        v.resize(value_len.max(4), b'v');
        if room < 6 {
            b.attr(200, &vec![b'p'; room - 2]).unwrap();
        } else {
            b.attr(attr::VENDOR_SPECIFIC, &v).unwrap();
        }
    }
    let mut bytes = b.finish();
    assert_eq!(bytes.len(), 4096);
    crypto::sign_request(&mut bytes, SECRET.as_bytes());
    let reply = d
        .udp(&bytes, Duration::from_secs(3))
        .expect("4096-octet request answered");
    assert_eq!(verified(&reply, &ra), Code::AccessAccept);
}

#[test]
fn malformed_datagrams_are_dropped_counted_and_harmless() {
    let d = alice_daemon(&Setup::default());
    let (good, auth) = request_bytes("alice", "pin755224", true, SECRET);
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2, 3],
        good[..19].to_vec(),
        good[..good.len() - 3].to_vec(),
        (0..200).map(|i| (i * 37 % 251) as u8).collect(),
    ];
    let mut lying = good.clone();
    lying[2] = 0x10; // length 4096+ > received
    cases.push(lying);
    let mut zero = good.clone();
    zero[21] = 0; // first attribute length 0
    cases.push(zero);
    let mut one = good.clone();
    one[21] = 1;
    cases.push(one);
    let mut unknown = good.clone();
    unknown[0] = 99;
    cases.push(unknown);
    for c in &cases {
        assert_eq!(d.udp(c, Duration::from_millis(200)), None, "answered {c:?}");
    }
    let malformed =
        d.metric("otpgate_radius_dropped_total{client=\"loopback\",reason=\"malformed\"}");
    assert!(malformed >= 7.0, "malformed drops counted: {malformed}");
    // still serving
    let reply = d
        .udp(&good, Duration::from_secs(3))
        .expect("still answering");
    assert_eq!(verified(&reply, &auth), Code::AccessAccept);
    let warnings = d.log().matches("malformed packet dropped").count();
    assert_eq!(
        warnings, 1,
        "malformed packets are logged once a minute per client"
    );
}

#[test]
fn unknown_client_is_dropped() {
    let d = alice_daemon(&Setup::default());
    // rewrite the client network so that 127.0.0.1 is no longer a client, then reload
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        text.replace("address = \"127.0.0.0/8\"", "address = \"127.0.0.2\""),
    )
    .unwrap();
    d.sighup();
    d.wait_for_log("configuration reloaded", Duration::from_secs(5));
    let (bytes, _) = request_bytes("alice", "pin755224", true, SECRET);
    assert_eq!(d.udp(&bytes, SHORT), None);
    d.wait_for_log(
        "datagram from an unknown client dropped",
        Duration::from_secs(2),
    );
}

#[test]
fn sighup_swaps_secrets_and_refuses_a_bad_file() {
    let d = alice_daemon(&Setup::default());
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        text.replace("secret = \"testing123\"", "secret = \"n3w-s3cret\""),
    )
    .unwrap();
    d.sighup();
    d.wait_for_log("configuration reloaded", Duration::from_secs(5));
    let (old, _) = request_bytes("alice", "pin755224", true, SECRET);
    assert_eq!(d.udp(&old, SHORT), None, "old secret still accepted");
    let (new, _) = request_bytes("alice", "pin755224", true, "n3w-s3cret");
    assert!(
        d.udp(&new, Duration::from_secs(3)).is_some(),
        "new secret refused"
    );

    std::fs::write(&d.config, "[radius]\nbogus = 1\n").unwrap();
    d.sighup();
    d.wait_for_log("configuration reload refused", Duration::from_secs(5));
    let (new, _) = request_bytes("alice", &format!("pin{}", RFC4226[1]), true, "n3w-s3cret");
    assert!(
        d.udp(&new, Duration::from_secs(3)).is_some(),
        "a bad reload broke serving"
    );
    assert!(d.stop().success());
}

#[test]
fn radtest_talks_to_the_daemon() {
    let d = alice_daemon(&Setup::default());
    let server = d.radius.to_string();
    let out = d.cli(&[
        "radtest",
        "--server",
        &server,
        "--secret",
        SECRET,
        "--user",
        "alice",
        "--password",
        "pin755224",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("Access-Accept from"), "{text}");
    let out = d.cli(&[
        "radtest",
        "--server",
        &server,
        "--secret",
        SECRET,
        "--user",
        "alice",
        "--password",
        "pin755224",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Reply-Message = \"wrong otp value. previous otp used again\""),
        "{text}"
    );
    let out = d.cli(&[
        "radtest", "--server", &server, "--secret", SECRET, "--status",
    ]);
    assert_eq!(out.status.code(), Some(0));
}

/// The `radius` crate as an independent codec: it encodes a request we answer, and decodes
/// our reply.
#[test]
fn radius_crate_oracle() {
    use radius::core::code::Code as RCode;
    use radius::core::packet::Packet as RPacket;
    use radius::core::rfc2865;
    let d = alice_daemon(&Setup {
        client: "require_message_authenticator = false".into(),
        ..Default::default()
    });
    let mut req = RPacket::new(RCode::AccessRequest, SECRET.as_bytes());
    rfc2865::add_user_name(&mut req, "alice");
    rfc2865::add_user_password(&mut req, b"pin755224").unwrap();
    let bytes = req.encode().unwrap();
    let reply = d.udp(&bytes, Duration::from_secs(3)).expect("answered");
    let decoded = RPacket::decode(&reply, SECRET.as_bytes()).unwrap();
    assert_eq!(decoded.get_code(), RCode::AccessAccept);
    assert_eq!(decoded.get_identifier(), req.get_identifier());
    assert!(RPacket::is_authentic_response(
        &reply,
        &bytes,
        SECRET.as_bytes()
    ));
}

#[test]
fn challenge_response_over_radius_with_radclient_and_pyrad() {
    let d = alice_daemon(&Setup {
        extra: "[[policy]]\nname = \"cr\"\nscope = \"authentication\"\nactions = { challenge_response = \"hotp\" }\n"
            .into(),
        ..Default::default()
    });
    let r = d.radclient(
        "auth",
        &[
            "User-Name = alice",
            "User-Password = pin",
            "Message-Authenticator = 0x00",
        ],
    );
    assert_eq!(r.code, "Access-Challenge", "{}", r.raw);
    assert_eq!(r.attr("Reply-Message"), Some("please enter otp: "));
    let state = r.attr("State").expect("State").to_owned();
    // radclient prints State as hex (0x…); pyrad sends the same octets back
    let state_text = match state.strip_prefix("0x") {
        Some(hex) => String::from_utf8(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .unwrap(),
        )
        .unwrap(),
        None => state,
    };
    assert_eq!(state_text.len(), 20);
    let r = d.pyrad(json!({"user": "alice", "password": RFC4226[0], "state": state_text}));
    assert_eq!(r["code"], 2, "{r}");
    // the same State again: the challenge is gone
    let r = d.pyrad(json!({"user": "alice", "password": RFC4226[1], "state": state_text}));
    assert_eq!(r["code"], 3, "{r}");
    assert_eq!(r["attrs"]["Reply-Message"], json!(["wrong otp pin"]));
}

/// An SMTP server that is down, or that accepts and never answers: the email token's login
/// gets its Access-Reject within the timeout, with the documented message, and other logins
/// are answered meanwhile.
#[test]
fn smtp_down_or_silent_gives_a_bounded_reject() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s); // accept and say nothing
        }
    });
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let smtp = |name: &str, port: u16| {
        format!(
            "[[smtp]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nsender = \"o@example.com\"\ntimeout = 2\n"
        )
    };
    let d = alice_daemon(&Setup {
        extra: format!(
            "{}{}",
            smtp("down", closed_port),
            smtp("silent", silent_port)
        ),
        ..Default::default()
    });
    for (serial, user, server) in [("EMDOWN", "bob", "down"), ("EMSILENT", "carol", "silent")] {
        d.cli_ok(&[
            "token", "enroll", "--type", "email", "--serial", serial, "--user", user, "--pin",
            "1234",
        ]);
        d.cli_ok(&[
            "token",
            "set",
            serial,
            "--info",
            &format!("smtp_identifier={server}"),
        ]);
    }
    let started = std::time::Instant::now();
    let r = d.pyrad(json!({"user": "bob", "password": "1234", "timeout": 10}));
    assert_eq!(r["code"], 3, "{r}");
    assert_eq!(
        r["attrs"]["Reply-Message"],
        json!(["The PIN was correct, but the EMail could not be sent!"])
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // the silent server: meanwhile alice's login is answered at once
    let server = d.radius;
    let slow = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let (bytes, _) = request_bytes("carol", "1234", true, SECRET);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let reply = udp_exchange(&s, server, &bytes, Duration::from_secs(30));
        (reply, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let quick = std::time::Instant::now();
    let (bytes, auth) = request_bytes("alice", "pin755224", true, SECRET);
    let reply = d
        .udp(&bytes, Duration::from_secs(3))
        .expect("alice answered");
    assert_eq!(verified(&reply, &auth), Code::AccessAccept);
    assert!(
        quick.elapsed() < Duration::from_secs(1),
        "{:?}",
        quick.elapsed()
    );
    let (reply, took) = slow.join().unwrap();
    let reply = reply.expect("carol answered");
    let p = Packet::decode(&reply).unwrap();
    assert_eq!(p.code(), Code::AccessReject);
    assert!(took < Duration::from_secs(20), "{took:?}");
    let rows = d.cli_until(
        &["audit", "list", "--user", "carol"],
        "EMail could not be sent",
        Duration::from_secs(10),
    );
    assert!(rows.contains("EMail could not be sent"), "{rows}");
}
