//! A real OpenLDAP `slapd` for the tests: its own configuration and database in a temporary
//! directory, on free loopback ports (ldap:// with StartTLS, and ldaps://), a test CA, the
//! `memberof` overlay, AD-like attributes (tests/fixtures/ldap/ad.schema) and the fixture tree
//! (tests/fixtures/ldap/tree.ldif) added online so the overlay sees it. One per test, so a test
//! may stop it and start it again on the same ports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=org";
pub const ADMIN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-pw";
pub const SVC: &str = "cn=svc,ou=service,dc=example,dc=org";
pub const SVC_PW: &str = "svc-pw";

pub struct Slapd {
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    pid: Option<u32>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn slapd_bin() -> PathBuf {
    ["/usr/sbin/slapd", "/usr/libexec/slapd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("slapd not found: install the Debian packages slapd and ldap-utils")
}

/// A test CA and a server certificate for 127.0.0.1 and localhost; returns the CA's PEM.
fn make_certs(dir: &Path, tag: &str) -> String {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("otpgate test CA {tag}"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(dir.join(format!("{tag}ca.pem")), ca_cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{tag}server.pem")), leaf_cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{tag}server.key")),
        leaf_key.serialize_pem(),
    )
    .unwrap();
    ca_cert.pem()
}

impl Slapd {
    /// Start with the fixture tree and `extra_users` more users (`user0000`…, for paging).
    pub fn start(extra_users: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        make_certs(dir.path(), "");
        // a CA that signed nothing of this server's: a client trusting it must refuse
        make_certs(dir.path(), "other-");
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        let d = dir.path().display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include {schema}\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             pidfile {d}/slapd.pid\n\
             TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 268435456\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ADMIN}\"\n\
             rootpw {ADMIN_PW}\n\
             directory {d}/db\n\
             index uid,sAMAccountName,userPrincipalName,member eq\n\
             sizelimit size.soft=1000 size.hard=1000 size.prtotal=unlimited\n\
             overlay memberof\n\
             memberof-group-oc groupOfNames\n\
             memberof-member-ad member\n\
             memberof-memberof-ad memberOf\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by users read by * none\n",
            schema = fixtures().join("ad.schema").display(),
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let mut s = Self {
            dir,
            port: free_port(),
            tls_port: free_port(),
            pid: None,
        };
        s.resume();
        s.ldapadd(&std::fs::read_to_string(fixtures().join("tree.ldif")).unwrap());
        if extra_users > 0 {
            let mut ldif = String::new();
            for i in 0..extra_users {
                ldif.push_str(&format!(
                    "dn: uid=user{i:04},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: user{i:04}\ncn: User {i}\nsn: User{i}\nmail: user{i:04}@example.org\n\n"
                ));
            }
            s.ldapadd(&ldif);
        }
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// Start (again, on the same ports) and wait until it answers.
    pub fn resume(&mut self) {
        let status = Command::new(slapd_bin())
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(format!("{} {}/", self.url(), self.tls_url()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start slapd");
        assert!(status.success(), "slapd did not start ({status})");
        let pid_file = self.dir.path().join("slapd.pid");
        let start = Instant::now();
        loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                self.pid = Some(pid);
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "slapd did not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::daemon::kill_with_test_process(self.pid.unwrap_or(0));
    }

    /// Stop the server (its connections drop).
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = std::fs::remove_file(self.dir.path().join("slapd.pid"));
        }
    }

    pub fn ldapadd(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("ldapadd")
            .args(["-x", "-c", "-H", &self.url(), "-D", ADMIN, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapadd (Debian package ldap-utils)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A `[[resolver]]` table for this server: OpenLDAP style, groups by search, nested.
    pub fn resolver(&self, name: &str, extra: &str) -> String {
        format!(
            "[[resolver]]\nname = \"{name}\"\ntype = \"ldap\"\nservers = [\"{url}\"]\n\
             bind_dn = \"{SVC}\"\nbind_password = \"{SVC_PW}\"\nbase_dn = \"ou=people,{BASE}\"\n\
             filter = \"(objectClass=inetOrgPerson)\"\n{logins}\
             group_base_dn = \"ou=groups,{BASE}\"\nnested_groups = true\n\
             attributes = {{ department = \"departmentNumber\" }}\n{extra}\n",
            url = self.url(),
            logins = if extra.contains("login_attributes") {
                ""
            } else {
                "login_attributes = [\"uid\"]\n"
            },
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}
