//! The `ldap` resolver against a real slapd: lookups, attributes, groups (nested), passwords
//! by bind, filter injection, paging, TLS, reply attributes by group over RADIUS, and a
//! directory that stops mid-run.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{Daemon, Setup};
use crate::harness::RFC4226;
use crate::slapd::Slapd;

/// A daemon whose realm `corp` is the slapd's people.
fn daemon(slapd: &Slapd, resolver_extra: &str, extra: &str) -> Daemon {
    Daemon::start(&Setup {
        extra: format!(
            "{}[[realm]]\nname = \"corp\"\nresolvers = [\"ldap1\"]\naliases = [\"CORP\", \"corp.example\"]\n{extra}",
            slapd.resolver("ldap1", resolver_extra)
        ),
        ..Default::default()
    })
}

fn show(d: &Daemon, user: &str) -> Option<Value> {
    let out = d.cli(&["user", "show", user, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn check_password(d: &Daemon, user: &str, password: &str) -> (i32, String) {
    let out = d.cli_stdin(
        &["user", "check", user, "--password-stdin"],
        &format!("{password}\n"),
    );
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn pap(d: &Daemon, user: &str, password: &str) -> crate::daemon::RadclientReply {
    d.radclient(
        "auth",
        &[
            &format!("User-Name = \"{user}\""),
            &format!("User-Password = \"{password}\""),
            "Message-Authenticator = 0x00",
        ],
    )
}

#[test]
fn lookups_attributes_nested_groups_and_password_binds() {
    let slapd = Slapd::start(0);
    let d = daemon(&slapd, "", "");
    let alice = show(&d, "alice@corp").expect("alice is found");
    assert_eq!(alice["login"], "alice");
    assert_eq!(alice["realm"], "corp");
    assert_eq!(alice["resolver"], "ldap1");
    assert_eq!(alice["dn"], "uid=alice,ou=people,dc=example,dc=org");
    assert_eq!(alice["attributes"]["email"], "alice@example.org");
    assert_eq!(alice["attributes"]["mobile"], "+4915100000001");
    assert_eq!(alice["attributes"]["givenname"], "Alice");
    assert_eq!(alice["attributes"]["surname"], "Smith");
    assert_eq!(alice["attributes"]["phone"], "+49301234567");
    assert_eq!(
        alice["free_attributes"]["department"],
        serde_json::json!(["IT", "Ops"]),
        "a multi-valued attribute keeps its values"
    );
    let groups: Vec<String> = serde_json::from_value(alice["groups"].clone()).unwrap();
    let lower: Vec<String> = groups.iter().map(|g| g.to_lowercase()).collect();
    assert!(
        lower.contains(&"cn=vpn,ou=groups,dc=example,dc=org".into()),
        "{groups:?}"
    );
    assert!(
        lower.contains(&"cn=staff,ou=groups,dc=example,dc=org".into()),
        "staff holds vpn, which holds alice: {groups:?}"
    );
    assert!(!lower.iter().any(|g| g.contains("admins")), "{groups:?}");
    // a login's case does not matter; the directory's spelling comes back
    assert_eq!(show(&d, "ALICE@corp").unwrap()["login"], "alice");
    // aliases: a Windows domain and a UPN suffix name the realm
    assert_eq!(show(&d, "CORP\\alice").unwrap()["realm"], "corp");
    assert_eq!(show(&d, "alice@corp.example").unwrap()["realm"], "corp");

    // passwords: a bind as the user
    assert_eq!(check_password(&d, "alice@corp", "alice-pw").0, 0);
    let (code, out) = check_password(&d, "alice@corp", "wrong");
    assert_eq!(code, 1, "{out}");
    let (code, out) = check_password(&d, "alice@corp", "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("empty"), "{out}");

    // filter injection: each is a login compared as text, never a wider search
    for login in [
        "*",
        ")(uid=*",
        "admin)(|(uid=*",
        "alice)(uid=*",
        "*)(objectClass=*",
        "a\\2a",
    ] {
        assert!(
            show(&d, &format!("{login}@corp")).is_none(),
            "{login:?} must find nothing"
        );
    }
}

#[test]
fn reply_attributes_from_ldap_groups_over_radius() {
    let slapd = Slapd::start(0);
    let d = daemon(
        &slapd,
        "",
        "[[radius.reply]]\nrealm = \"corp\"\ngroup = \"staff\"\nattributes = { \"Class\" = \"staff\" }\n\
         [[radius.reply]]\nrealm = \"corp\"\ngroup = \"cn=vpn,ou=groups,dc=example,dc=org\"\nattributes = { \"Filter-Id\" = \"vpn-{username}\" }\n\
         [[radius.reply]]\nrealm = \"corp\"\ngroup = \"admins\"\nattributes = { \"Class\" = \"admin\" }\n",
    );
    d.enroll_hotp("LDAP1", "alice@corp", "pin");
    let r = pap(&d, "alice@corp", &format!("pin{}", RFC4226[0]));
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    assert_eq!(r.attr("Class"), Some("0x7374616666"), "{}", r.raw);
    assert_eq!(r.attr("Filter-Id"), Some("vpn-alice"), "{}", r.raw);
    assert!(!r.raw.contains("0x61646d696e"), "not in admins: {}", r.raw);
    // the same user by its UPN
    let r = pap(&d, "alice@corp.example", &format!("pin{}", RFC4226[1]));
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
}

#[test]
fn userstore_pin_is_the_directory_password_and_disabled_accounts_are_refused() {
    let slapd = Slapd::start(0);
    let d = daemon(
        &slapd,
        "active_directory = true\nlogin_attributes = [\"sAMAccountName\", \"userPrincipalName\"]\n",
        "[[policy]]\nname = \"us\"\nscope = \"authentication\"\nactions = { otppin = \"userstore\" }\n",
    );
    d.enroll_hotp("A1", "alice@corp", "unused");
    d.enroll_hotp("B1", "bob@corp", "unused");
    let r = pap(&d, "alice@corp", &format!("alice-pw{}", RFC4226[0]));
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    let r = pap(&d, "alice@corp", &format!("wrong-pw{}", RFC4226[1]));
    assert_eq!(r.code, "Access-Reject", "{}", r.raw);
    let r = pap(&d, "alice@corp", RFC4226[1]);
    assert_eq!(
        r.code, "Access-Reject",
        "an empty password never binds: {}",
        r.raw
    );
    // bob's userAccountControl has ACCOUNTDISABLE
    assert_eq!(show(&d, "bob@corp").unwrap()["disabled"], true);
    let r = pap(&d, "bob@corp", &format!("bob-pw{}", RFC4226[0]));
    assert_eq!(r.code, "Access-Reject", "{}", r.raw);
    let audit = d.cli_ok(&["audit", "list", "--json"]);
    assert!(audit.contains("disabled in the directory"), "{audit}");
}

#[test]
fn paged_listing_beyond_the_size_limit_and_tls() {
    let slapd = Slapd::start(1_500);
    // slapd answers at most 1,000 entries a search, as Active Directory does; pages get all
    let d = daemon(&slapd, "page_size = 400\n", "");
    let out = d.cli_ok(&["user", "list", "--realm", "corp", "--json"]);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1_503, "three fixture users and 1,500 more");
    drop(d);

    // ldaps:// with the test CA
    let tls = |servers: &str, ca: &std::path::Path| {
        format!(
            "{}\n[[realm]]\nname = \"corp\"\nresolvers = [\"tls1\"]\n",
            slapd
                .resolver("tls1", &format!("ca_file = \"{}\"\n", ca.display()))
                .replace(&format!("servers = [\"{}\"]", slapd.url()), servers)
        )
    };
    for (servers, ca, ok) in [
        (
            format!("servers = [\"{}\"]", slapd.tls_url()),
            slapd.ca_file(),
            true,
        ),
        (
            format!("servers = [\"{}\"]\nstart_tls = true", slapd.url()),
            slapd.ca_file(),
            true,
        ),
        (
            format!("servers = [\"{}\"]", slapd.tls_url()),
            slapd.other_ca_file(),
            false,
        ),
        (
            format!("servers = [\"{}\"]\nstart_tls = true", slapd.url()),
            slapd.other_ca_file(),
            false,
        ),
    ] {
        let d = Daemon::start(&Setup {
            extra: tls(&servers, &ca),
            ..Default::default()
        });
        let out = d.cli(&["user", "show", "alice@corp", "--json"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.success(),
            ok,
            "{servers} with {}: {text}",
            ca.display()
        );
        if !ok {
            assert!(text.to_lowercase().contains("certificate"), "{text}");
        }
    }
}

#[test]
fn a_directory_that_stops_is_a_fast_reject_and_logins_resume_when_it_returns() {
    let mut slapd = Slapd::start(0);
    let d = daemon(&slapd, "cache_ttl = 0\ntimeout = 1\n", "");
    d.enroll_hotp("S1", "alice@corp", "pin");
    let r = pap(&d, "alice@corp", &format!("pin{}", RFC4226[0]));
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);

    slapd.stop();
    for (i, otp) in RFC4226[1..4].iter().enumerate() {
        let start = Instant::now();
        let r = pap(&d, "alice@corp", &format!("pin{otp}"));
        assert_eq!(r.code, "Access-Reject", "attempt {i}: {}", r.raw);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "answered within a NAS's timeout: {:?}",
            start.elapsed()
        );
    }
    let audit = d.cli_ok(&["audit", "list", "--json"]);
    assert!(audit.contains("directory unreachable"), "{audit}");
    assert!(audit.contains("ldap1"), "{audit}");

    slapd.resume();
    let back = Instant::now();
    let mut otp = 1;
    loop {
        let r = pap(&d, "alice@corp", &format!("pin{}", RFC4226[otp]));
        if r.code == "Access-Accept" {
            break;
        }
        otp += 1;
        assert!(
            back.elapsed() < Duration::from_secs(5) && otp < RFC4226.len(),
            "logins work again within 5 s of the directory's return: {}",
            r.raw
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
