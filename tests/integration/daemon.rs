//! Black-box harness: the real `otpgate` binary, started with `serve` on a loopback port 0,
//! administered through its own CLI, and spoken to as a NAS would (our client, `radclient`,
//! pyrad, raw UDP).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "testing123";
pub const BIN: &str = env!("CARGO_BIN_EXE_otpgate");

/// What the test wants in the configuration beyond the baseline.
#[derive(Debug, Default, Clone)]
pub struct Setup {
    /// Keys added to `[radius]` (before the client tables).
    pub radius: String,
    /// Keys added to the loopback client.
    pub client: String,
    /// Keys added to `[system]`.
    pub system: String,
    /// Further TOML after everything else (reply rules, events, policies …).
    pub extra: String,
    /// Serve `/validate/check` on the HTTP listener.
    pub http_validate: bool,
    /// Keys added to `[http]`.
    pub http: String,
    /// Another database than the node's own SQLite file (e.g. a shared PostgreSQL).
    pub database: Option<String>,
    /// Keys added to `[database]`.
    pub database_keys: String,
    /// A key file shared with other nodes.
    pub key_file: Option<PathBuf>,
    /// The node name (default "bb").
    pub node: Option<String>,
    /// Further environment of the daemon's process.
    pub env: Vec<(String, String)>,
    /// No `[http]` listener (no `/metrics`, no `/healthz`).
    pub no_http: bool,
    /// The users file instead of the baseline's.
    pub users: Option<String>,
}

pub struct Daemon {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub radius: SocketAddr,
    pub http: SocketAddr,
    log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    /// The listening lines a start waits for.
    listeners: usize,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn config_text(dir: &Path, s: &Setup) -> String {
    format!(
        "node = \"{node}\"\n[database]\nurl = \"{database}\"\n{database_keys}\n[secrets]\nkey_file = \"{key_file}\"\n\
         [pin]\nargon2_memory_kib = 64\nargon2_iterations = 1\n[system]\n{system}\n\
         [radius]\nlisten = [\"127.0.0.1:0\"]\ndictionaries = \"{dict}\"\n{radius}\n\
         {http}\
         [[radius.client]]\nname = \"loopback\"\naddress = \"127.0.0.0/8\"\nsecret = \"{SECRET}\"\n{client}\n\
         [[resolver]]\nname = \"resolver1\"\ntype = \"file\"\npath = \"users.toml\"\n\
         [[realm]]\nname = \"realm1\"\ndefault = true\nresolvers = [\"resolver1\"]\n\
         [[realm]]\nname = \"realm3\"\nresolvers = [\"resolver1\"]\n{extra}\n",
        system = s.system,
        database_keys = s.database_keys,
        radius = s.radius,
        client = s.client,
        extra = s.extra,
        http = if s.no_http {
            String::new()
        } else {
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\nvalidate_check = {}\n{}\n",
                s.http_validate, s.http
            )
        },
        node = s.node.as_deref().unwrap_or("bb"),
        database = s.database.as_deref().unwrap_or("sqlite:otpgate.db"),
        key_file = s
            .key_file
            .as_ref()
            .map_or("secret.key".to_owned(), |p| p.display().to_string()),
        dict = repo().join("dictionaries").display(),
    )
    .replace("{dir}", &dir.display().to_string())
}

impl Daemon {
    pub fn start(setup: &Setup) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = setup
            .users
            .clone()
            .unwrap_or_else(crate::harness::users_file);
        std::fs::write(dir.path().join("users.toml"), users).unwrap();
        let config = dir.path().join("otpgate.toml");
        std::fs::write(&config, config_text(dir.path(), setup)).unwrap();
        // it holds the RADIUS secret: serve refuses a file others can read
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut d = Self {
            child: None,
            _dir: dir,
            config,
            radius: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:0".parse().unwrap(),
            log: Arc::new(Mutex::new(String::new())),
            env: setup.env.clone(),
            listeners: if setup.no_http { 1 } else { 2 },
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let mut child = Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&self.config)
            // TEST_OTPGATE_LOG (e.g. "info,sqlx=debug") when a test needs more of the log
            .env(
                "OTPGATE_LOG",
                std::env::var("TEST_OTPGATE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start otpgate serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="));
                if let Some(addr) = addr {
                    if line.contains("RADIUS listening") {
                        let _ = tx.send(("radius", addr.to_owned()));
                    } else if line.contains("HTTP listening") {
                        let _ = tx.send(("http", addr.to_owned()));
                    }
                }
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        for _ in 0..self.listeners {
            let (kind, addr) = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("daemon did not start:\n{}", self.log()));
            match kind {
                "radius" => self.radius = addr.parse().unwrap(),
                _ => self.http = addr.parse().unwrap(),
            }
        }
        self.child = Some(child);
        self.wait_for_log("otpgate ready", Duration::from_secs(10));
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle` (e.g. after a reload).
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("log never showed {needle:?}:\n{}", self.log());
    }

    /// GET a path from the HTTP endpoint; the body.
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or(out)
    }

    /// One HTTP/1.1 request to the HTTP listener: (status, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The value of the first Prometheus sample line that starts with `prefix`, or 0.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.http_get("/metrics")
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Run an admin command against the same configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run otpgate")
    }

    /// The CLI with `input` on its standard input (a password for `--password-stdin`).
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("-c").arg(&self.config).args(args);
        with_stdin(cmd, input)
    }

    /// Run an admin command that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "otpgate {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run an admin command until its stdout contains `needle`; for audit rows, which the
    /// daemon writes in batches shortly after it answers (`store::audit`, `LINGER`).
    pub fn cli_until(&self, args: &[&str], needle: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let out = self.cli_ok(args);
            if out.contains(needle) || Instant::now() >= until {
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An HOTP token with RFC 4226's key, for `user`, with `pin`.
    pub fn enroll_hotp(&self, serial: &str, user: &str, pin: &str) {
        self.enroll_rfc4226(serial, user, &["--pin", pin]);
    }

    /// The same token without a PIN (where another factor comes first, e.g. a directory
    /// password).
    pub fn enroll_hotp_without_pin(&self, serial: &str, user: &str) {
        self.enroll_rfc4226(serial, user, &[]);
    }

    fn enroll_rfc4226(&self, serial: &str, user: &str, extra: &[&str]) {
        let mut args = vec!["token", "enroll", "--type", "hotp", "--serial", serial];
        args.extend(["--user", user, "--key", crate::harness::RFC4226_KEY_HEX]);
        args.extend(extra);
        self.cli_ok(&args);
    }

    pub fn token(&self, serial: &str) -> serde_json::Value {
        serde_json::from_str(&self.cli_ok(&["token", "show", serial, "--json"])).unwrap()
    }

    pub fn sighup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status()
                .unwrap();
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The directory of its configuration, store and key file.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// SIGKILL (no chance to flush anything) and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same directory, configuration and store (new ports).
    pub fn restart(&mut self) {
        self.kill();
        self.log.lock().unwrap().clear();
        self.spawn();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(self) -> std::process::ExitStatus {
        self.stop_with_log().0
    }

    /// SIGTERM, wait for the exit, and the whole log.
    pub fn stop_with_log(mut self) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // the log's reader thread ends with the pipe: wait for its last lines
                let mut last = String::new();
                for _ in 0..50 {
                    std::thread::sleep(Duration::from_millis(20));
                    let now = self.log();
                    if now == last {
                        break;
                    }
                    last = now;
                }
                return (status, last);
            }
            assert!(
                Instant::now() < until,
                "daemon did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send raw bytes from a fresh socket; the reply or `None` after `wait`.
    pub fn udp(&self, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_exchange(&s, self.radius, bytes, wait)
    }

    /// radclient (freeradius-utils): `attrs` like `User-Name = alice`, joined with commas.
    /// A PAP login with radclient (Message-Authenticator sent): the reply's code.
    pub fn pap(&self, user: &str, password: &str) -> String {
        self.radclient(
            "auth",
            &[
                &format!("User-Name = {user}"),
                &format!("User-Password = \"{password}\""),
                "Message-Authenticator = 0x00",
            ],
        )
        .code
    }

    pub fn radclient(&self, kind: &str, attrs: &[&str]) -> RadclientReply {
        let bin = which("radclient").unwrap_or_else(|| {
            panic!("radclient not found: run scripts/test (it installs freeradius-utils)")
        });
        let mut cmd = Command::new(bin);
        cmd.args(["-x", "-r", "1", "-t", "2"])
            .arg(self.radius.to_string())
            .arg(kind)
            .arg(SECRET);
        let out = with_stdin(cmd, &attrs.join(", "));
        RadclientReply::parse(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// pyrad (PyPI, in the test venv); see tests/fixtures/pyrad_client.py for the spec.
    pub fn pyrad(&self, spec: serde_json::Value) -> serde_json::Value {
        self.python_client("pyrad_client.py", self.radius.port(), spec)
    }

    /// An independent MS-CHAPv2 client; see tests/fixtures/mschapv2_client.py.
    pub fn mschapv2(&self, user: &str, password: &str) -> serde_json::Value {
        self.python_client(
            "mschapv2_client.py",
            self.radius.port(),
            serde_json::json!({"user": user, "password": password, "secret": SECRET}),
        )
    }

    /// A client script of tests/fixtures run with the test venv's Python on `port`.
    pub fn python_client(
        &self,
        script: &str,
        port: u16,
        mut spec: serde_json::Value,
    ) -> serde_json::Value {
        spec["port"] = port.into();
        let python = std::env::var("OTPGATE_TEST_PYTHON").unwrap_or_else(|_| {
            let venv = repo().join("target/test-venv/bin/python");
            assert!(
                venv.exists(),
                "no Python with pyrad: run scripts/test (it creates target/test-venv)"
            );
            venv.display().to_string()
        });
        let out = Command::new(python)
            .arg(repo().join("tests/fixtures").join(script))
            .arg(spec.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Send `bytes` from `s` and wait for one datagram.
/// Run `cmd` with `input` on its standard input; its output.
fn with_stdin(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Kill `pid` once this test process is gone, however it ends (a server a test started).
pub fn kill_with_test_process(pid: u32) {
    let watchdog = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null",
        me = std::process::id()
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

pub fn udp_exchange(
    s: &UdpSocket,
    to: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(bytes, to).unwrap();
    let mut buf = [0u8; 4096];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// What radclient printed, parsed.
#[derive(Debug, Default)]
pub struct RadclientReply {
    /// `Access-Accept`, … or empty when nothing came back.
    pub code: String,
    /// `(name, value)` lines of the received packet.
    pub attrs: Vec<(String, String)>,
    pub raw: String,
}

impl RadclientReply {
    pub fn parse(text: &str) -> Self {
        let mut r = Self {
            raw: text.to_owned(),
            ..Default::default()
        };
        let mut in_reply = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("Received ") {
                r.code = rest.split_whitespace().next().unwrap_or("").to_owned();
                in_reply = true;
                continue;
            }
            if line.starts_with("Sent ") {
                in_reply = false;
                continue;
            }
            if in_reply && let Some((k, v)) = line.trim().split_once(" = ") {
                r.attrs
                    .push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
            }
        }
        r
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
