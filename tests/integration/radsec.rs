//! RadSec (RFC 6614) against the running binary: a client written with Python's ssl and pyrad,
//! and radsecproxy (Debian) relaying radclient's UDP to otpgate over TLS. Certificates from a
//! test CA: the NAS's own is accepted; none, one from another CA, an expired one and one whose
//! common name is not pinned are refused.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};
use serde_json::json;

use crate::daemon::{Daemon, SECRET, Setup};
use crate::harness::{RFC4226, RFC4226_KEY_HEX};

pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("RadSec test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Self {
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and key as `<name>.pem` / `<name>.key`; `expired`: valid in 2020 only.
    pub(crate) fn leaf(
        &self,
        dir: &Path,
        name: &str,
        cn: &str,
        expired: bool,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    port: u16,
    d: Daemon,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let ca = Ca::new(p, "ca");
    let other = Ca::new(p, "other-ca");
    ca.leaf(p, "server", "otpgate", false);
    ca.leaf(p, "nas", "nas1", false);
    ca.leaf(p, "nas-unpinned", "nas2", false);
    ca.leaf(p, "nas-expired", "nas1", true);
    other.leaf(p, "nas-other", "nas1", false);
    let port = free_port();
    let d = Daemon::start(&Setup {
        radius: format!(
            "[radius.radsec]\nlisten = [\"127.0.0.1:{port}\"]\ncertificate = \"{p}/server.pem\"\n\
             key = \"{p}/server.key\"\nca_file = \"{p}/ca.pem\"\n",
            p = p.display()
        ),
        client: "tls_common_name = [\"nas1\"]\n".into(),
        ..Default::default()
    });
    d.cli_ok(&[
        "token",
        "enroll",
        "--type",
        "hotp",
        "--serial",
        "R1",
        "--user",
        "alice",
        "--key",
        RFC4226_KEY_HEX,
    ]);
    Fixture { dir, port, d }
}

impl Fixture {
    fn client(&self, cert: Option<&str>, spec: serde_json::Value) -> serde_json::Value {
        let p = self.dir.path();
        let mut spec = spec;
        spec["ca"] = p.join("ca.pem").display().to_string().into();
        if let Some(name) = cert {
            spec["cert"] = p.join(format!("{name}.pem")).display().to_string().into();
            spec["key"] = p.join(format!("{name}.key")).display().to_string().into();
        }
        self.d.python_client("radsec_client.py", self.port, spec)
    }
}

#[test]
fn a_nas_with_its_certificate_logs_in_and_others_are_refused() {
    let f = start();
    let reply = f.client(
        Some("nas"),
        json!({"user": "alice", "password": RFC4226[0]}),
    );
    assert_eq!(reply["codes"], json!([2]), "{reply}");
    // keep-alive and several requests on one connection
    let reply = f.client(Some("nas"), json!({"code": "status", "count": 3}));
    assert_eq!(reply["codes"], json!([2, 2, 2]), "{reply}");
    let reply = f.client(
        Some("nas"),
        json!({"user": "alice", "password": RFC4226[0]}),
    );
    assert_eq!(reply["codes"], json!([3]), "replayed OTP: {reply}");

    for (cert, why) in [
        (None, "no certificate"),
        (Some("nas-other"), "another CA"),
        (Some("nas-expired"), "expired"),
        (Some("nas-unpinned"), "common name not pinned"),
    ] {
        let reply = f.client(cert, json!({"code": "status"}));
        assert!(reply["error"].is_string(), "{why}: {reply}");
        assert_eq!(reply["codes"], json!([]), "{why}: {reply}");
    }
    f.d.wait_for_log("reason=\"handshake\"", Duration::from_secs(5));
    f.d.wait_for_log("reason=\"certificate_pin\"", Duration::from_secs(5));
    assert_eq!(f.d.token("R1")["count"], 1);
}

/// radsecproxy (an independent RadSec implementation) relays radclient's UDP to otpgate.
#[test]
fn radsecproxy_relays_radclient_to_otpgate_over_tls() {
    let f = start();
    let p = f.dir.path();
    let udp = free_port();
    let conf = p.join("radsecproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "ListenUDP 127.0.0.1:{udp}\nLogLevel 3\nLogDestination file://{p}/radsecproxy.log\n\
             PidFile {p}/radsecproxy.pid\n\
             tls default {{\n CACertificateFile {p}/ca.pem\n CertificateFile {p}/nas.pem\n \
             CertificateKeyFile {p}/nas.key\n}}\n\
             client local {{\n host 127.0.0.1\n type udp\n secret {SECRET}\n}}\n\
             server otpgate {{\n host 127.0.0.1\n port {port}\n type tls\n secret radsec\n \
             tls default\n CertificateNameCheck off\n}}\n\
             realm * {{\n server otpgate\n}}\n",
            p = p.display(),
            port = f.port
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/radsecproxy", "/usr/bin/radsecproxy"]
        .into_iter()
        .find(|b| Path::new(b).exists())
        .expect("radsecproxy (Debian package radsecproxy): run scripts/test");
    let mut proxy: Child = Command::new(bin)
        .args(["-f", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // radclient through the proxy; the proxy connects to otpgate on the first request
    let until = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let out = Command::new("radclient")
            .args([
                "-x",
                "-r",
                "1",
                "-t",
                "2",
                &format!("127.0.0.1:{udp}"),
                "auth",
                SECRET,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(
                    format!("User-Name = alice, User-Password = {}", RFC4226[0]).as_bytes(),
                )?;
                c.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("Received") || Instant::now() > until {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(
        reply.contains("Received Access-Accept"),
        "{reply}\n{}\n{}",
        std::fs::read_to_string(p.join("radsecproxy.log")).unwrap_or_default(),
        f.d.log()
    );
    f.d.wait_for_log("RadSec connection open", Duration::from_secs(5));
}

/// A new certificate takes effect with a reload: connections after it get the new one.
#[test]
fn a_reload_brings_a_new_server_certificate() {
    let f = start();
    let p = f.dir.path();
    let reply = f.client(Some("nas"), json!({"code": "status"}));
    assert_eq!(reply["codes"], json!([2]), "{reply}");
    // the server's files now hold a certificate from a CA the NAS does not trust
    let stranger = Ca::new(p, "stranger-ca");
    let (cert, key) = stranger.leaf(p, "stranger", "otpgate", false);
    std::fs::copy(cert, p.join("server.pem")).unwrap();
    std::fs::copy(key, p.join("server.key")).unwrap();
    f.d.sighup();
    f.d.wait_for_log("configuration reloaded", Duration::from_secs(10));
    let reply = f.client(Some("nas"), json!({"code": "status"}));
    assert!(
        reply["error"].is_string(),
        "the new certificate is served: {reply}"
    );
}
