//! The LDAP bind proxy between OpenLDAP's own clients (ldapwhoami, ldapsearch, ldapcompare)
//! and a real slapd: password+OTP and PIN binds, the operations after them, wrong and replayed
//! OTPs, service accounts, and an upstream that stops.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Setup};
use crate::harness::RFC4226;
use crate::slapd::{SVC, SVC_PW, Slapd};

const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A daemon with the slapd's users in realm `corp` and the proxy on `port`, mapping DNs by
/// template to the plain upstream.
fn daemon(slapd: &Slapd, port: u16, proxy: &str) -> Daemon {
    daemon_to(
        slapd,
        port,
        &format!(
            "upstream = [\"{}\"]\nuser_dn = [\"uid={{user}},ou=people,dc=example,dc=org\"]\n{proxy}",
            slapd.url()
        ),
    )
}

/// A daemon with the slapd's users in realm `corp` and the proxy on `port`; `proxy` names
/// the upstream and the mapping.
fn daemon_to(slapd: &Slapd, port: u16, proxy: &str) -> Daemon {
    Daemon::start(&Setup {
        extra: format!(
            "{}[[realm]]\nname = \"corp\"\nresolvers = [\"ldap1\"]\n\
             [ldap_proxy]\nlisten = [\"127.0.0.1:{port}\"]\nrealm = \"corp\"\n\
             service_accounts = [\"{SVC}\"]\n{proxy}",
            slapd.resolver("ldap1", ""),
        ),
        ..Default::default()
    })
}

/// `ldapwhoami` against the proxy: (exit code, its output).
fn whoami(port: u16, dn: &str, password: &str) -> (i32, String) {
    tool("ldapwhoami", port, dn, password, &[])
}

/// An OpenLDAP client tool against the proxy: (exit code, stdout and stderr).
fn tool(name: &str, port: u16, dn: &str, password: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(name)
        .args([
            "-x",
            "-H",
            &format!("ldap://127.0.0.1:{port}"),
            "-D",
            dn,
            "-w",
            password,
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} (Debian package ldap-utils): {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn password_and_otp_bind_then_search_compare_and_whoami() {
    let slapd = Slapd::start(0);
    let port = free_port();
    let d = daemon(&slapd, port, "password = \"password+otp\"\n");
    d.enroll_hotp_without_pin("P1", "alice@corp");

    let (code, out) = whoami(port, ALICE, &format!("alice-pw{}", RFC4226[0]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{ALICE}")), "{out}");

    // paged search and compare on the bound connection
    let (code, out) = tool(
        "ldapsearch",
        port,
        ALICE,
        &format!("alice-pw{}", RFC4226[1]),
        &[
            "-b",
            "ou=people,dc=example,dc=org",
            "-E",
            "pr=2/noprompt",
            "(objectClass=inetOrgPerson)",
            "mail",
        ],
    );
    assert_eq!(code, 0, "{out}");
    for mail in ["alice@example.org", "bob@example.org", "carol@example.org"] {
        assert!(out.contains(mail), "{mail}: {out}");
    }
    let (code, out) = tool(
        "ldapcompare",
        port,
        ALICE,
        &format!("alice-pw{}", RFC4226[2]),
        &["uid=carol,ou=people,dc=example,dc=org", "sn:White"],
    );
    assert_eq!(code, 6, "compareTrue: {out}");

    // a replayed OTP, a wrong one, a wrong directory password
    let (code, out) = whoami(port, ALICE, &format!("alice-pw{}", RFC4226[2]));
    assert_eq!(code, 49, "replay: {out}");
    let before = d.token("P1")["failcount"].as_i64().unwrap();
    let (code, out) = whoami(port, ALICE, "alice-pw000000");
    assert_eq!(code, 49, "wrong OTP: {out}");
    assert_eq!(d.token("P1")["failcount"].as_i64().unwrap(), before + 1);
    let (code, out) = whoami(port, ALICE, &format!("wrong{}", RFC4226[3]));
    assert_eq!(code, 49, "wrong password: {out}");
    let (code, out) = whoami(port, ALICE, &format!("alice-pw{}", RFC4226[3]));
    assert_eq!(
        code, 0,
        "the OTP was not burnt by the wrong password: {out}"
    );

    // the application's own account passes without an OTP
    let (code, out) = tool(
        "ldapsearch",
        port,
        SVC,
        SVC_PW,
        &["-b", "ou=people,dc=example,dc=org", "(uid=bob)", "mail"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bob@example.org"), "{out}");
    // anonymous and unknown DNs
    let (code, out) = whoami(port, "", "");
    assert_eq!(code, 7, "authMethodNotSupported: {out}");
    let (code, out) = tool(
        "ldapwhoami",
        port,
        "cn=nobody,dc=example,dc=org",
        "x123456",
        &[],
    );
    assert_eq!(code, 49, "{out}");

    let audit = d.cli_ok(&["audit", "list", "--json"]);
    assert!(audit.contains("\"origin\": \"ldap\""), "{audit}");
}

#[test]
fn pin_binds_upstream_as_the_service_account_and_a_stopped_directory_is_refused_fast() {
    let mut slapd = Slapd::start(0);
    let port = free_port();
    let d = daemon(
        &slapd,
        port,
        &format!(
            "password = \"pin\"\nupstream_bind_dn = \"{SVC}\"\nupstream_bind_password = \"{SVC_PW}\"\n"
        ),
    );
    d.enroll_hotp("P2", "alice@corp", "pin");
    let (code, out) = whoami(port, ALICE, &format!("pin{}", RFC4226[0]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("dn:{SVC}")),
        "bound upstream as the service account: {out}"
    );
    let (code, out) = whoami(port, ALICE, &format!("nip{}", RFC4226[1]));
    assert_eq!(code, 49, "{out}");

    slapd.stop();
    let start = Instant::now();
    let (code, out) = whoami(port, ALICE, &format!("pin{}", RFC4226[1]));
    assert!(code == 49 || code == 52, "{code}: {out}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // the bind's log line and its audit row say why
    d.wait_for_log("the directory is unavailable", Duration::from_secs(5));
    let audit = d.cli_ok(&["audit", "list", "--json"]);
    assert!(
        audit.contains("Unavailable: the directory is unavailable"),
        "{audit}"
    );
    assert_eq!(
        d.token("P2")["count"],
        1,
        "no OTP was spent while the directory was away"
    );
}

#[test]
fn starttls_and_ldaps_and_a_plain_bind_refused_where_tls_is_required() {
    let slapd = Slapd::start(0);
    let (port, tls_port) = (free_port(), free_port());
    let dir = slapd.ca_file();
    let dir = dir.parent().unwrap();
    let d = daemon(
        &slapd,
        port,
        &format!(
            "password = \"password+otp\"\nlisten_tls = [\"127.0.0.1:{tls_port}\"]\n\
             tls_certificate = \"{}\"\ntls_key = \"{}\"\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    );
    d.enroll_hotp_without_pin("T1", "alice@corp");
    let run = |url: &str, extra: &[&str], otp: &str| {
        let out = Command::new("ldapwhoami")
            .env("LDAPTLS_CACERT", slapd.ca_file())
            .args([
                "-x",
                "-H",
                url,
                "-D",
                ALICE,
                "-w",
                &format!("alice-pw{otp}"),
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let plain = format!("ldap://127.0.0.1:{port}");
    let (code, out) = run(&plain, &[], RFC4226[0]);
    assert_eq!(code, 13, "confidentialityRequired without TLS: {out}");
    let (code, out) = run(&plain, &["-ZZ"], RFC4226[0]);
    assert_eq!(code, 0, "StartTLS: {out}");
    assert!(out.contains(&format!("dn:{ALICE}")), "{out}");
    let (code, out) = run(&format!("ldaps://127.0.0.1:{tls_port}"), &[], RFC4226[1]);
    assert_eq!(code, 0, "LDAPS: {out}");
    assert!(out.contains(&format!("dn:{ALICE}")), "{out}");
}

/// Python's ldap3, an independent client: it reads the root DSE and the whole schema after
/// its bind (a message larger than a client may send), then searches with paging.
#[test]
fn python_ldap3_binds_reads_the_schema_and_pages() {
    let slapd = Slapd::start(0);
    let port = free_port();
    let d = daemon(&slapd, port, "password = \"password+otp\"\n");
    d.enroll_hotp_without_pin("PY1", "alice@corp");
    let python = std::env::var("OTPGATE_TEST_PYTHON").unwrap_or_else(|_| {
        let venv =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
        assert!(
            venv.exists(),
            "no Python with ldap3: run scripts/test (it creates target/test-venv)"
        );
        venv.display().to_string()
    });
    let script = format!(
        "from ldap3 import Server, Connection, SCHEMA\n\
         c = Connection(Server('ldap://127.0.0.1:{port}', get_info=SCHEMA), user='{ALICE}', password='alice-pw{otp}')\n\
         assert c.bind(), c.result\n\
         assert c.server.schema is not None and 'inetOrgPerson' in c.server.schema.object_classes\n\
         entries = c.extend.standard.paged_search('ou=people,dc=example,dc=org', '(objectClass=inetOrgPerson)', attributes=['mail'], paged_size=1, generator=False)\n\
         print(sorted(e['attributes']['mail'][0] for e in entries if e['type'] == 'searchResEntry'))\n",
        otp = RFC4226[0]
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("['alice@example.org', 'bob@example.org', 'carol@example.org']"),
        "{text}"
    );
}

/// With the bind cache on, an application's repeated bind with the same password is accepted
/// again without a new OTP; another password is checked as usual.
#[test]
fn the_bind_cache_accepts_a_repeated_bind_within_its_window() {
    let slapd = Slapd::start(0);
    let port = free_port();
    let d = daemon(
        &slapd,
        port,
        "password = \"password+otp\"\nbind_cache_seconds = 30\n",
    );
    d.enroll_hotp_without_pin("C1", "alice@corp");
    let first = format!("alice-pw{}", RFC4226[0]);
    for i in 0..3 {
        let (code, out) = tool("ldapwhoami", port, ALICE, &first, &[]);
        assert_eq!(code, 0, "bind {i}: {out}");
    }
    assert_eq!(
        d.token("C1")["count"],
        1,
        "one OTP spent for the three binds"
    );
    let (code, out) = whoami(port, ALICE, "alice-pw000000");
    assert_eq!(code, 49, "{out}");
    let (code, out) = whoami(port, ALICE, &format!("wrong{}", RFC4226[0]));
    assert_eq!(code, 49, "the directory still checks the password: {out}");
}

/// TLS to the upstream (LDAPS, StartTLS) with its CA, DNs found by the realm's resolver
/// instead of a template, and a modify relayed as the user; a wrong CA refuses the bind.
#[test]
fn tls_upstreams_dn_search_and_a_relayed_modify() {
    let slapd = Slapd::start(0);
    let ca = slapd.ca_file();
    for (upstream, starttls) in [(slapd.tls_url(), false), (slapd.url(), true)] {
        let port = free_port();
        let d = daemon_to(
            &slapd,
            port,
            &format!(
                "password = \"password+otp\"\nupstream = [\"{upstream}\"]\n\
                 upstream_starttls = {starttls}\nupstream_ca_file = \"{}\"\n\
                 user_dn_search = true\n",
                ca.display()
            ),
        );
        d.enroll_hotp_without_pin("S1", "carol@corp");
        let carol = "uid=carol,ou=people,dc=example,dc=org";
        let (code, out) = whoami(port, carol, &format!("carol-pw{}", RFC4226[0]));
        assert_eq!(code, 0, "{upstream}: {out}");
        assert!(out.contains(&format!("dn:{carol}")), "{out}");
        // a DN the resolver has no user entry for
        let (code, out) = tool(
            "ldapwhoami",
            port,
            "ou=people,dc=example,dc=org",
            &format!("x{}", RFC4226[1]),
            &[],
        );
        assert_eq!(code, 49, "{out}");
    }

    // ldapmodify through the proxy: the user changes her own directory password
    let port = free_port();
    let d = daemon(&slapd, port, "password = \"password+otp\"\n");
    d.enroll_hotp_without_pin("M1", "bob@corp");
    let bob = "uid=bob,ou=people,dc=example,dc=org";
    let mut child = Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            &format!("ldap://127.0.0.1:{port}"),
            "-D",
            bob,
            "-w",
            &format!("bob-pw{}", RFC4226[0]),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        write!(
            stdin,
            "dn: {bob}\nchangetype: modify\nreplace: userPassword\nuserPassword: bob-new\n"
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out) = whoami(port, bob, &format!("bob-new{}", RFC4226[1]));
    assert_eq!(code, 0, "the new directory password: {out}");

    // an upstream whose certificate the configured CA did not sign, by LDAPS and by StartTLS
    // (which shows the StartTLS upgrade above did happen)
    for (upstream, starttls) in [(slapd.tls_url(), false), (slapd.url(), true)] {
        let port = free_port();
        let d = daemon_to(
            &slapd,
            port,
            &format!(
                "password = \"password+otp\"\nupstream = [\"{upstream}\"]\n\
                 upstream_starttls = {starttls}\nupstream_ca_file = \"{}\"\n\
                 user_dn = [\"uid={{user}},ou=people,dc=example,dc=org\"]\n",
                slapd.other_ca_file().display()
            ),
        );
        d.enroll_hotp_without_pin("W1", "alice@corp");
        let (code, out) = whoami(port, ALICE, &format!("alice-pw{}", RFC4226[0]));
        assert_eq!(code, 52, "{upstream}: unavailable: {out}");
        d.wait_for_log("the directory is unavailable", Duration::from_secs(5));
        assert_eq!(d.token("W1")["count"], 0, "no OTP spent");
    }
}

/// Garbage, an oversized message and a flood of connections from one address end those
/// connections; a client from another address is served all along.
#[test]
fn malformed_oversized_and_flooding_clients_do_not_harm_others() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    let slapd = Slapd::start(0);
    let port = free_port();
    let d = daemon(
        &slapd,
        port,
        "password = \"password+otp\"\nmax_message_bytes = 4096\nconnections_per_source = 4\n",
    );
    d.enroll_hotp_without_pin("F1", "alice@corp");
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let from = |source: &str| -> TcpStream {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.connect(&proxy.into()).unwrap();
        let s: TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    // closed by the proxy: read gives end of stream (or a reset), never an answer
    let closed = |mut s: TcpStream, what: &str| {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("{what}: answered {:?}", &buf[..n]),
            Err(e) => panic!("{what}: still open ({e})"),
        }
    };

    let mut garbage = from("127.0.0.2");
    garbage.write_all(b"\x30\x05\x02\x01\x01\xff\xff").unwrap();
    closed(garbage, "malformed BER");
    // a SEQUENCE announcing 16 MiB, above max_message_bytes
    let mut big = from("127.0.0.2");
    big.write_all(&[0x30, 0x84, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01])
        .unwrap();
    big.write_all(&[0u8; 8192]).ok();
    closed(big, "oversized message");

    // four connections from 127.0.0.2 are allowed, the fifth is closed at once
    let flood: Vec<TcpStream> = (0..4).map(|_| from("127.0.0.2")).collect();
    closed(from("127.0.0.2"), "connection over the per-source limit");
    // meanwhile 127.0.0.1 binds and searches
    let (code, out) = whoami(port, ALICE, &format!("alice-pw{}", RFC4226[0]));
    assert_eq!(code, 0, "{out}");
    drop(flood);
    d.wait_for_log("malformed LDAP message", Duration::from_secs(5));
}
