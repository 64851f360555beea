//! privacyIDEA's clients against otpgate's HTTP API, their requests reproduced from their
//! published sources: the FreeRADIUS plugin's double encoding and `FreeRADIUS` User-Agent, the
//! LDAP proxy's plain form, the Credential Provider's and PAM module's trigger by an empty
//! `pass` and their polling, the Keycloak/ADFS flow (`/auth` → `triggerchallenge` → `check`
//! with `transaction_id`), radiuscheck and samlcheck, and bad input.

use serde_json::Value;

use crate::daemon::{Daemon, Setup};
use crate::harness::{RFC4226, RFC4226_KEY_HEX, hash, users_file};

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn start(extra: &str) -> Daemon {
    Daemon::start(&Setup {
        http_validate: true,
        users: Some(format!("{}[[user]]\nusername = \"jürgen\"\n", users_file())),
        extra: format!(
            "[[realm]]\nname = \"corp\"\nresolvers = [\"resolver1\"]\n\
             [[api_account]]\nname = \"keycloak\"\npassword_hash = \"{}\"\nrights = [\"triggerchallenge\"]\n\
             [[api_account]]\nname = \"reporting\"\npassword_hash = \"{}\"\n{extra}",
            hash("kc-secret"),
            hash("rp-secret"),
        ),
        ..Default::default()
    })
}

fn enroll(d: &Daemon, serial: &str, user: &str, pin: Option<&str>) {
    let mut args = vec!["token", "enroll", "--type", "hotp", "--serial", serial];
    args.extend(["--user", user, "--key", RFC4226_KEY_HEX]);
    if let Some(p) = pin {
        args.extend(["--pin", p]);
    }
    d.cli_ok(&args);
}

/// URI::Encode with `encode_reserved => 0`, as the FreeRADIUS plugin applies it first.
fn uri_encode(s: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
    s.bytes()
        .map(|b| {
            if keep(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// application/x-www-form-urlencoded, as LWP's POST writes it.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b' ' => "+".to_owned(),
                b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn post(d: &Daemon, path: &str, ua: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = d.http(
        "POST",
        path,
        &[FORM, ("User-Agent", ua)],
        form(pairs).as_bytes(),
    );
    (status, json(&body))
}

#[test]
fn the_freeradius_plugins_double_encoding_reaches_the_right_user_and_pin() {
    let d = start("");
    enroll(&d, "J1", "jürgen", Some("a b%c"));
    enroll(&d, "A1", "alice@corp", Some("1234"));
    let pass = format!("a b%c{}", RFC4226[0]);
    let user = uri_encode("jürgen");
    let (status, r) = post(
        &d,
        "/validate/check",
        "FreeRADIUS",
        &[("user", &user), ("pass", &uri_encode(&pass))],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["authentication"], "ACCEPT", "{r}");
    for key in ["jsonrpc", "id", "version", "versionnumber", "time"] {
        assert!(!r[key].is_null(), "envelope {key}: {r}");
    }
    let (_, r) = post(
        &d,
        "/validate/check",
        "FreeRADIUS",
        &[
            ("user", &uri_encode("corp\\alice")),
            ("pass", &uri_encode(&format!("1234{}", RFC4226[0]))),
        ],
    );
    assert_eq!(r["result"]["authentication"], "ACCEPT", "{r}");
    assert_eq!(d.token("J1")["failcount"], 0);

    // privacyIDEA's LDAP proxy encodes once: its values are taken as they are
    enroll(&d, "L1", "bob", Some("50%"));
    let (_, r) = post(
        &d,
        "/validate/check",
        "privacyIDEA-LDAP-Proxy",
        &[("user", "bob"), ("pass", &format!("50%{}", RFC4226[0]))],
    );
    assert_eq!(r["result"]["authentication"], "ACCEPT", "{r}");

    // no `pass` at all: a parameter error, nothing counted
    let (status, r) = post(&d, "/validate/check", "FreeRADIUS", &[("user", "bob")]);
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["result"]["error"]["code"], 905, "{r}");
    assert_eq!(d.token("L1")["failcount"], 0);
}

#[test]
fn credential_provider_and_pam_trigger_by_empty_pass_poll_and_answer() {
    let d = start(
        "[[policy]]\nname = \"cr\"\nscope = \"authentication\"\n\
         actions = { challenge_response = \"hotp\" }\n",
    );
    enroll(&d, "C1", "carol", None);
    let (_, r) = post(
        &d,
        "/validate/check",
        "privacyidea-cp/3.6.0 Windows/Laptop-1 CredentialProvider/10",
        &[("user", "carol"), ("pass", "")],
    );
    assert_eq!(r["result"]["authentication"], "CHALLENGE", "{r}");
    let txid = r["detail"]["transaction_id"].as_str().unwrap().to_owned();
    let mc = &r["detail"]["multi_challenge"][0];
    for key in ["type", "serial", "message", "transaction_id", "client_mode"] {
        assert!(!mc[key].is_null(), "multi_challenge.{key}: {r}");
    }
    let (status, body) = d.http(
        "GET",
        &format!("/validate/polltransaction?transaction_id={txid}"),
        &[],
        b"",
    );
    let p = json(&body);
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["result"]["value"], false, "{p}");
    assert_eq!(p["detail"]["challenge_status"], "pending", "{p}");
    let (_, body) = d.http(
        "GET",
        &format!("/validate/polltransaction/{txid}"),
        &[],
        b"",
    );
    assert_eq!(json(&body)["detail"]["challenge_status"], "pending");
    // the answer, with `state` as privacyIDEA's PAM module names it
    let (_, r) = post(
        &d,
        "/validate/check",
        "privacyidea-pam",
        &[("user", "carol"), ("pass", RFC4226[0]), ("state", &txid)],
    );
    assert_eq!(r["result"]["authentication"], "ACCEPT", "{r}");
}

#[test]
fn keycloak_authenticates_triggers_and_checks_with_the_transaction() {
    let d = start("");
    enroll(&d, "K1", "alice", Some("1234"));
    let (status, r) = post(
        &d,
        "/auth",
        "privacyIDEA-Keycloak",
        &[("username", "keycloak"), ("password", "kc-secret")],
    );
    assert_eq!(status, 200, "{r}");
    let token = r["result"]["value"]["token"].as_str().unwrap().to_owned();
    assert_eq!(r["result"]["value"]["role"], "admin");

    for header in [token.clone(), format!("Bearer {token}")] {
        let (status, body) = d.http(
            "POST",
            "/validate/triggerchallenge",
            &[FORM, ("Authorization", &header)],
            b"user=alice",
        );
        let t = json(&body);
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["result"]["value"], 1, "{t}");
        assert_eq!(t["result"]["authentication"], "CHALLENGE", "{t}");
        assert_eq!(t["detail"]["multi_challenge"][0]["serial"], "K1", "{t}");
        assert_eq!(t["detail"]["preferred_client_mode"], "interactive", "{t}");
    }
    let (_, body) = d.http(
        "POST",
        "/validate/triggerchallenge",
        &[FORM, ("PI-Authorization", &token)],
        b"user=alice",
    );
    let txid = json(&body)["detail"]["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, r) = post(
        &d,
        "/validate/check",
        "privacyIDEA-Keycloak",
        &[
            ("user", "alice"),
            ("pass", RFC4226[0]),
            ("transaction_id", &txid),
        ],
    );
    assert_eq!(r["result"]["authentication"], "ACCEPT", "{r}");
    assert_eq!(d.token("K1")["failcount"], 0, "a trigger is no failure");

    let audit = d.cli_ok(&["audit", "list", "--json"]);
    for event in ["\"auth\"", "\"validate_triggerchallenge\""] {
        assert!(audit.contains(event), "{event}: {audit}");
    }
}

#[test]
fn radiuscheck_and_samlcheck_shapes() {
    let d = start("");
    enroll(&d, "R1", "alice", None);
    let (status, body) = d.http(
        "POST",
        "/validate/radiuscheck",
        &[FORM],
        format!("user=alice&pass={}", RFC4226[0]).as_bytes(),
    );
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, body) = d.http(
        "POST",
        "/validate/radiuscheck",
        &[FORM],
        b"user=alice&pass=000000",
    );
    assert_eq!((status, body.as_str()), (400, ""));
    let (_, r) = post(
        &d,
        "/validate/samlcheck",
        "simpleSAMLphp",
        &[("user", "alice"), ("pass", RFC4226[1])],
    );
    assert_eq!(r["result"]["value"]["auth"], true, "{r}");
    assert_eq!(
        r["result"]["value"]["attributes"]["email"], "alice@example.com",
        "{r}"
    );
    assert_eq!(
        r["result"]["value"]["attributes"]["givenname"], "Alice",
        "{r}"
    );
}

/// Wrong, expired and foreign tokens, an account without the right, and malformed requests: a
/// clear error each, and nothing changed.
#[test]
fn bad_tokens_and_bad_requests_change_nothing() {
    let d = start(
        "[[event]]\nname = \"api-login-failed\"\nevent = \"auth\"\nhandler = \"Logging\"\n\
         action = \"logging\"\nconditions = { result_value = \"False\" }\n\
         options = { message = \"api-login-failed {client_ip}\" }\n",
    );
    enroll(&d, "B1", "alice", Some("1234"));
    let key = otpgate::crypto::MasterKey::load(&d.config.with_file_name("secret.key")).unwrap();
    let sign = |name: &str, rights: &[&str], exp: i64, key: &[u8]| {
        let b64 = base64_url_nopad;
        let body = serde_json::json!({"username": name, "role": "admin", "rights": rights, "iat": 0, "exp": exp});
        let signed = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64(body.to_string().as_bytes())
        );
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(signed.as_bytes());
        format!("{signed}.{}", b64(&m.finalize().into_bytes()))
    };
    let far = 4_000_000_000;
    let cases = [
        (
            sign("keycloak", &["triggerchallenge"], 1, key.api_signing_key()),
            401,
            4305,
        ),
        (
            sign("keycloak", &["triggerchallenge"], far, &[9u8; 32]),
            401,
            4304,
        ),
        (
            sign("nobody", &["triggerchallenge"], far, key.api_signing_key()),
            401,
            4306,
        ),
        (
            sign(
                "reporting",
                &["triggerchallenge"],
                far,
                key.api_signing_key(),
            ),
            403,
            303,
        ),
        ("garbage".to_owned(), 401, 4304),
    ];
    for (token, status, code) in cases {
        let (s, body) = d.http(
            "POST",
            "/validate/triggerchallenge",
            &[FORM, ("Authorization", &token)],
            b"user=alice",
        );
        let r = json(&body);
        assert_eq!(
            (s, r["result"]["error"]["code"].as_i64()),
            (status, Some(code)),
            "{r}"
        );
    }
    let (s, body) = d.http("POST", "/validate/triggerchallenge", &[FORM], b"user=alice");
    assert_eq!(s, 401, "{body}");

    // wrong passwords are counted, fire the `auth` handlers and are throttled per source
    for _ in 0..5 {
        let (s, _) = post(
            &d,
            "/auth",
            "curl",
            &[("username", "keycloak"), ("password", "x")],
        );
        assert_eq!(s, 401);
    }
    let (s, r) = post(
        &d,
        "/auth",
        "curl",
        &[("username", "keycloak"), ("password", "kc-secret")],
    );
    assert_eq!(s, 429, "throttled even with the right password: {r}");
    d.wait_for_log(
        "api-login-failed 127.0.0.1",
        std::time::Duration::from_secs(5),
    );

    for (body, what) in [
        (
            b"user=alice&user=bob&pass=1".to_vec(),
            "duplicated parameter",
        ),
        (b"user=\xff\xfe&pass=1".to_vec(), "invalid UTF-8"),
        (
            b"user=alice&pass=%C3%28".to_vec(),
            "invalid UTF-8 after decoding",
        ),
    ] {
        let (s, r) = d.http(
            "POST",
            "/validate/check",
            &[FORM, ("User-Agent", "privacyidea-cp")],
            &body,
        );
        let r = json(&r);
        assert_eq!(
            (s, r["result"]["error"]["code"].as_i64()),
            (400, Some(905)),
            "{what}: {r}"
        );
    }
    let big = format!("user=alice&pass={}", "1".repeat(100_000));
    let (s, _) = d.http("POST", "/validate/check", &[FORM], big.as_bytes());
    assert_eq!(s, 413, "oversized body");
    assert_eq!(d.token("B1")["failcount"], 0, "nothing counted");
    assert_eq!(d.token("B1")["count"], 0, "no OTP spent");
}

fn base64_url_nopad(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// With a certificate the listener speaks HTTPS only (clients send passwords).
#[test]
fn https_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::radsec::Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf(dir.path(), "server", "otpgate", false);
    let d = Daemon::start(&Setup {
        http_validate: true,
        http: format!(
            "tls_certificate = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        ..Default::default()
    });
    enroll(&d, "S1", "alice", None);
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(dir.path().join("ca.pem"))
        .arg(format!(
            "https://127.0.0.1:{}/validate/check",
            d.http.port()
        ))
        .args(["-d", &format!("user=alice&pass={}", RFC4226[0])])
        .output()
        .expect("curl");
    let r = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["result"]["authentication"], "ACCEPT", "{r}");
    // plain HTTP gets no answer from the TLS listener
    let plain = std::process::Command::new("curl")
        .args(["-s", "-m", "3"])
        .arg(format!("http://127.0.0.1:{}/healthz", d.http.port()))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));
}

/// The authorization policies that put the user into the answer, for clients that read it.
#[test]
fn add_user_and_resolver_in_response() {
    let d = start(
        "[[policy]]\nname = \"details\"\nscope = \"authorization\"\n\
         actions = { add_user_in_response = true, add_resolver_in_response = true }\n",
    );
    enroll(&d, "U1", "alice", None);
    let (_, r) = post(
        &d,
        "/validate/check",
        "curl",
        &[("user", "alice"), ("pass", "000000")],
    );
    assert!(r["detail"]["user"].is_null(), "not on a reject: {r}");
    let (_, r) = post(
        &d,
        "/validate/check",
        "curl",
        &[("user", "alice"), ("pass", RFC4226[0])],
    );
    assert_eq!(r["detail"]["user"]["email"], "alice@example.com", "{r}");
    assert_eq!(r["detail"]["user"]["username"], "alice", "{r}");
    assert_eq!(r["detail"]["user-resolver"], "resolver1", "{r}");
    assert_eq!(r["detail"]["user-realm"], "realm1", "{r}");
}
