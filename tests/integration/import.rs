//! `otpgate token import`, black-box: seed files written by python-pskc, an independent
//! implementation of RFC 6030 (tests/fixtures/pskc/make.py), loaded through the CLI into a
//! running daemon, then used by radclient as a NAS would.

use std::path::PathBuf;

use otpgate::auth::Origin;
use otpgate::clock::{Clock, SystemClock};
use otpgate::token::import::{PskcKeys, parse_pskc};
use otpgate::token::{HashLib, TokenType};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Backend, Harness, RFC4226};
use crate::on_both_backends;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pskc")
        .join(name)
        .display()
        .to_string()
}

fn login(d: &Daemon, user: &str, password: &str) -> String {
    let r = d.radclient(
        "auth",
        &[
            &format!("User-Name = {user}"),
            &format!("User-Password = {password}"),
            "Message-Authenticator = 0x00",
        ],
    );
    r.code
}

/// PBKDF2 (HMAC-SHA256) into AES-256-CBC with HMAC-SHA256 MACs: a wrong password is refused
/// with a message that says so and stores nothing; the right one (from a file, with the
/// newline an editor leaves) loads a HOTP at counter 5 and a SHA-256 TOTP with 8 digits, a
/// 60 s step and a drift of -2 steps, and both log in.
#[test]
fn a_password_protected_pskc_file_loads_tokens_that_log_in() {
    let d = Daemon::start(&Setup::default());
    let file = fixture("pbkdf2-aes256-cbc.pskcxml");

    let wrong = d.cli(&["token", "import", &file, "--password", "Correct horse"]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(!d.cli(&["token", "show", "PW0001"]).status.success());

    let password_file = d.config.with_file_name("pskc-password");
    std::fs::write(&password_file, "correct horse\n").unwrap();
    let out = d.cli_ok(&[
        "token",
        "import",
        &file,
        "--password-file",
        &password_file.display().to_string(),
    ]);
    assert!(out.contains("imported 2 of 2"), "{out}");
    let audit = d.cli_ok(&["audit", "list"]);
    assert!(audit.contains("token_load"), "{audit}");

    d.cli_ok(&["token", "assign", "PW0001", "--user", "alice"]);
    assert_eq!(
        login(&d, "alice", RFC4226[4]),
        "Access-Reject",
        "below the counter"
    );
    assert_eq!(login(&d, "alice", RFC4226[5]), "Access-Accept");
    assert_eq!(login(&d, "alice", RFC4226[5]), "Access-Reject", "replayed");

    let totp = d.token("PW0002");
    assert_eq!(totp["otplen"], 8);
    assert_eq!(totp["info"]["hashlib"], "sha256");
    assert_eq!(totp["info"]["timeStep"], "60");
    assert_eq!(totp["info"]["timeShift"], "-120");
    d.cli_ok(&["token", "assign", "PW0002", "--user", "bob"]);
    // the device's clock runs two steps behind: its code is the one of two minutes ago
    // the daemon's clock
    let now = || SystemClock.now().timestamp();
    if (now() - 120) % 60 > 50 {
        std::thread::sleep(std::time::Duration::from_secs(11));
    }
    let step = u64::try_from((now() - 120) / 60).unwrap();
    let code = otpgate::token::otp::hotp(
        b"12345678901234567890123456789012",
        step,
        8,
        HashLib::Sha256,
    );
    assert_eq!(login(&d, "bob", &code), "Access-Accept");
}

/// A pre-shared key for AES key wrap (RFC 5649, as the 20-byte seed needs padding), and the
/// key's validity period; a wrong key is named.
#[test]
fn a_key_wrapped_pskc_file_keeps_the_validity_period() {
    let d = Daemon::start(&Setup::default());
    let file = fixture("psk-kw-aes128.pskcxml");
    let wrong = d.cli(&[
        "token",
        "import",
        &file,
        "--psk",
        "ff0102030405060708090a0b0c0d0e0f",
    ]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("wrong pre-shared key"), "{stderr}");

    d.cli_ok(&[
        "token",
        "import",
        &file,
        "--psk",
        "000102030405060708090a0b0c0d0e0f",
    ]);
    let t = d.token("KW0001");
    // written in the server's time zone, to the minute (privacyIDEA's format)
    let bound = |key: &str| {
        let text = t["info"][key].as_str().unwrap();
        chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%z")
            .unwrap()
            .to_utc()
            .to_rfc3339()
    };
    assert_eq!(bound("validity_period_start"), "2026-01-01T00:00:00+00:00");
    assert_eq!(bound("validity_period_end"), "2030-12-31T23:59:00+00:00");
    d.cli_ok(&["token", "assign", "KW0001", "--user", "alice"]);
    assert_eq!(login(&d, "alice", RFC4226[0]), "Access-Accept");
}

/// What an import stores, on both backends: the counter, the TOTP's hash, digits, step and
/// time shift, and the validity period, as the token lookup reads them back.
async fn an_import_stores_every_setting_it_read(backend: Backend) {
    let h = Harness::new(backend, "").await;
    let read = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();
    let password = PskcKeys {
        psk: None,
        password: Some("correct horse"),
    };
    let mut tokens = parse_pskc(&read("pbkdf2-aes256-cbc.pskcxml"), password).unwrap();
    let kek: Vec<u8> = (0u8..16).collect();
    let wrapped = PskcKeys {
        psk: Some(&kek),
        password: None,
    };
    tokens.extend(parse_pskc(&read("psk-kw-aes128.pskcxml"), wrapped).unwrap());
    let report = h
        .auth
        .import_tokens(tokens, None, Origin::Cli)
        .await
        .unwrap();
    assert_eq!(report.imported, 3);

    assert_eq!(h.token("PW0001").await.otp_counter, 5);
    let totp = h.token("PW0002").await;
    assert_eq!(
        (
            totp.kind,
            totp.hashlib,
            totp.otplen,
            totp.time_step,
            totp.time_shift
        ),
        (TokenType::Totp, HashLib::Sha256, 8, Some(60), -120)
    );
    let wrapped = h.token("KW0001").await;
    assert!(wrapped.validity_start.is_some() && wrapped.validity_end.is_some());
    h.close().await;
}

on_both_backends!(an_import_stores_every_setting_it_read);
