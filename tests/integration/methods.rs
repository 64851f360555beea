//! CHAP, MS-CHAP and MS-CHAPv2 with PIN + OTP against the running binary — radtest from
//! freeradius-utils, and an MS-CHAPv2 client written from the RFCs that checks the success
//! message and the MPPE keys — the clean refusal of EAP and of requests without a credential,
//! and Status-Server on the accounting port.

use std::process::Command;

use serde_json::json;

use crate::daemon::{Daemon, RadclientReply, SECRET, Setup};
use crate::harness::{RFC4226, RFC4226_KEY_HEX};

/// `radtest -t <method>` (freeradius-utils) against the daemon.
fn radtest(d: &Daemon, method: &str, user: &str, password: &str) -> RadclientReply {
    let out = Command::new("radtest")
        .args([
            "-t",
            method,
            user,
            password,
            &d.radius.to_string(),
            "0",
            SECRET,
        ])
        .output()
        .expect("radtest (Debian package freeradius-utils)");
    RadclientReply::parse(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn enroll(d: &Daemon, serial: &str, user: &str, pin: &[&str]) {
    let mut args = vec!["token", "enroll", "--type", "hotp", "--serial", serial];
    args.extend(["--user", user, "--key", RFC4226_KEY_HEX]);
    args.extend(pin);
    d.cli_ok(&args);
}

fn failcount(d: &Daemon, serial: &str) -> i64 {
    d.token(serial)["failcount"].as_i64().unwrap()
}

#[test]
fn chap_mschap_and_mschapv2_accept_pin_and_otp_and_count_only_real_failures() {
    let d = Daemon::start(&Setup::default());
    enroll(&d, "C1", "alice", &["--pin", "1234", "--encrypt-pin"]);
    let otp = |i: usize| format!("1234{}", RFC4226[i]);

    let r = radtest(&d, "chap", "alice", &otp(0));
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    let r = radtest(&d, "chap", "alice", &otp(0));
    assert_eq!(r.code, "Access-Reject", "replay: {}", r.raw);

    let r = radtest(&d, "mschap", "alice", &otp(1));
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    for name in ["MS-CHAP-MPPE-Keys", "MS-MPPE-Encryption-Policy"] {
        assert!(r.attrs.iter().any(|(k, _)| k == name), "{name}: {}", r.raw);
    }

    let reply = d.mschapv2("alice", &otp(2));
    assert_eq!(reply["code"], 2, "{reply}");
    assert_eq!(reply["success_valid"], true, "MS-CHAP2-Success: {reply}");
    assert_eq!(reply["keys_valid"], true, "MPPE keys: {reply}");
    assert_eq!(d.token("C1")["count"], 3);

    // otpgate's own client (the load generator's) speaks MS-CHAPv2 too
    let out = Command::new(crate::daemon::BIN)
        .args([
            "radtest", "--method", "mschapv2", "--secret", SECRET, "--user", "alice",
        ])
        .args(["--password", &otp(3), "--server", &d.radius.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.token("C1")["count"], 4);

    let before = failcount(&d, "C1");
    let reply = d.mschapv2("alice", "1234000000");
    assert_eq!(reply["code"], 3, "{reply}");
    assert!(
        reply["error"].as_str().unwrap_or("").starts_with("E=691"),
        "{reply}"
    );
    assert_eq!(failcount(&d, "C1"), before + 1, "a wrong OTP is a failure");
    let r = radtest(&d, "mschap", "alice", "9999");
    assert_eq!(r.code, "Access-Reject", "{}", r.raw);
    assert_eq!(failcount(&d, "C1"), before + 2);

    // the decision traces name the methods
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&d.cli_ok(&["audit", "list", "--json"])).unwrap();
    let traces: String = rows
        .iter()
        .filter(|r| r["event"] == "validate_check")
        .map(|r| d.cli_ok(&["audit", "explain", &r["id"].to_string()]))
        .collect();
    for method in ["by chap:", "by mschap:", "by mschapv2:"] {
        assert!(traces.contains(method), "{method}: {traces}");
    }
}

#[test]
fn a_hashed_pin_cannot_be_tested_and_otppin_none_needs_none() {
    let d = Daemon::start(&Setup {
        extra: "[[policy]]\nname = \"nopin\"\nscope = \"authentication\"\nrealm = [\"realm3\"]\n\
                actions = { otppin = \"none\" }\n"
            .into(),
        ..Default::default()
    });
    enroll(&d, "H1", "alice", &["--pin", "1234"]);
    let r = radtest(&d, "chap", "alice", &format!("1234{}", RFC4226[0]));
    assert_eq!(r.code, "Access-Reject", "{}", r.raw);
    assert!(r.raw.contains("--encrypt-pin"), "{}", r.raw);
    assert_eq!(failcount(&d, "H1"), 0, "not the user's failure");

    // the same kind of token in a realm with otppin = none: the OTP alone
    enroll(&d, "N1", "bob@realm3", &["--pin", "1234"]);
    let reply = d.mschapv2("bob@realm3", RFC4226[0]);
    assert_eq!(reply["code"], 2, "{reply}");
    assert_eq!(reply["keys_valid"], true, "{reply}");
    let r = radtest(&d, "chap", "bob@realm3", RFC4226[1]);
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
}

#[test]
fn eap_and_requests_without_a_credential_are_refused_without_a_failure() {
    let d = Daemon::start(&Setup::default());
    enroll(&d, "E1", "alice", &["--pin", "1234"]);
    let pass = format!("1234{}", RFC4226[0]);

    // EAP-Response/Identity beside a valid password: EAP is not taken, the password not used
    let reply = d.pyrad(json!({"user": "alice", "password": pass, "eap": "0201000a01616c696365"}));
    assert_eq!(reply["code"], 3, "{reply}");
    let message = reply["attrs"]["Reply-Message"].to_string();
    assert!(message.contains("does not accept EAP"), "{reply}");
    let reply = d.pyrad(json!({"user": "alice"}));
    assert_eq!(reply["code"], 3, "{reply}");
    assert!(
        reply["attrs"]["Reply-Message"]
            .to_string()
            .contains("no credential"),
        "{reply}"
    );
    assert_eq!(failcount(&d, "E1"), 0);
    assert_eq!(d.token("E1")["count"], 0, "no OTP spent");
    let reply = d.pyrad(json!({"user": "alice", "password": pass}));
    assert_eq!(reply["code"], 2, "the same OTP by PAP: {reply}");

    let audit = d.cli_ok(&["audit", "list", "--json"]);
    assert!(audit.contains("does not accept EAP"), "{audit}");
    let metrics = d.http_get("/metrics");
    assert!(
        metrics.contains("otpgate_radius_unsupported_total{client=\"loopback\",method=\"EAP\"} 1"),
        "{metrics}"
    );
    d.wait_for_log(
        "Access-Request rejected: otpgate does not accept EAP",
        std::time::Duration::from_secs(5),
    );
}

#[test]
fn status_server_on_the_accounting_port_gets_an_accounting_response() {
    let acct = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let d = Daemon::start(&Setup {
        radius: format!("accounting_listen = [\"127.0.0.1:{acct}\"]\n"),
        ..Default::default()
    });
    let reply = d.python_client("pyrad_client.py", acct, json!({"code": "status"}));
    assert_eq!(reply["code"], 5, "Accounting-Response: {reply}");
    let reply = d.pyrad(json!({"code": "status"}));
    assert_eq!(
        reply["code"], 2,
        "Access-Accept on the authentication port: {reply}"
    );
    let reply = d.python_client("pyrad_client.py", acct, json!({"code": "acct"}));
    assert_eq!(reply["code"], 5, "{reply}");
    // an Access-Request does not belong on the accounting port
    let reply = d.python_client(
        "pyrad_client.py",
        acct,
        json!({"user": "alice", "password": "x", "timeout": 1, "retries": 1}),
    );
    assert_eq!(reply["timeout"], true, "{reply}");
}

/// One otpgate, two kinds of NAS: switches (NAS-Identifier `sw-…`) take the OTP alone, the VPN
/// wants PIN and OTP; a policy for another RADIUS client name does not apply here.
#[test]
fn policies_tell_nas_identities_apart() {
    let d = Daemon::start(&Setup {
        extra: "[[policy]]\nname = \"switches\"\nscope = \"authentication\"\n\
                nas_identifier = [\"/sw-[0-9]+/\"]\nactions = { otppin = \"none\" }\n\
                [[policy]]\nname = \"elsewhere\"\nscope = \"authorization\"\n\
                radius_client = [\"other\"]\nactions = { tokentype = \"totp\" }\n"
            .into(),
        ..Default::default()
    });
    enroll(&d, "P1", "alice", &["--pin", "1234"]);
    let login = |nas: &str, password: String| {
        d.pyrad(json!({"user": "alice", "password": password, "attrs": {"NAS-Identifier": nas}}))["code"]
            .clone()
    };
    assert_eq!(
        login("sw-17", RFC4226[0].to_owned()),
        2,
        "switch: OTP alone"
    );
    assert_eq!(
        login("vpn-1", RFC4226[1].to_owned()),
        3,
        "VPN: the PIN is missing"
    );
    assert_eq!(
        login("vpn-1", format!("1234{}", RFC4226[2])),
        2,
        "VPN: PIN and OTP"
    );
    assert_eq!(
        login("sw-17x", RFC4226[3].to_owned()),
        3,
        "the pattern matches whole values"
    );
}
