//! A real MariaDB for the tests: `mariadb-install-db` into a temporary directory and
//! `mariadbd` on a free loopback port, root without a password, one per test, stopped when
//! the test ends (or by a watchdog when the test process is gone).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct MariaDb {
    _dir: tempfile::TempDir,
    port: u16,
    server: std::process::Child,
}

impl MariaDb {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg("--skip-test-db")
            .output()
            .expect("mariadb-install-db (Debian package mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let d = dir.path();
        let server = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("server.log")).unwrap())
            .spawn()
            .expect("mariadbd (Debian package mariadb-server)");
        crate::daemon::kill_with_test_process(server.id());
        let start = Instant::now();
        loop {
            let ok = Command::new("mariadb")
                .args(["-h127.0.0.1", &format!("-P{port}"), "-uroot"])
                .args(["-e", "CREATE DATABASE IF NOT EXISTS app"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mariadbd did not answer: {}",
                std::fs::read_to_string(d.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            _dir: dir,
            port,
            server,
        }
    }

    /// The `app` database as root.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/app", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
