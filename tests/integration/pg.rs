//! A real PostgreSQL for the tests: started once per test process on a free loopback port
//! (initdb + pg_ctl as the `postgres` user), one fresh database per test, stopped by a watchdog
//! when the test process exits. `OTPGATE_TEST_PG_URL` points at an existing server instead.
//! A test that stops the database makes a [`Cluster`] of its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub struct PgServer {
    /// `postgres://postgres@127.0.0.1:PORT` (no database part).
    pub base_url: String,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() && dir.join("postgres").exists() {
            return Some(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

fn as_postgres(cmd: &str) -> Result<(), String> {
    let running_as_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let status = if running_as_root {
        Command::new("runuser")
            .args(["-u", "postgres", "--", "sh", "-c", cmd])
            .status()
    } else {
        Command::new("sh").args(["-c", cmd]).status()
    };
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{cmd}` failed with {s}")),
        Err(e) => Err(format!("`{cmd}`: {e}")),
    }
}

fn start() -> Result<PgServer, String> {
    if let Ok(url) = std::env::var("OTPGATE_TEST_PG_URL") {
        return Ok(PgServer {
            base_url: url.trim_end_matches('/').to_owned(),
        });
    }
    let own = Cluster::create("")?;
    let base_url = own.base_url();
    // the shared server lives as long as the test process: its watchdog stops it
    std::mem::forget(own);
    Ok(PgServer { base_url })
}

/// A PostgreSQL cluster in a directory of its own: the shared server, or one a test stops and
/// starts again (on the same port) to see what otpgate does while the database is away.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    /// initdb and start; `tag` tells the directories of several clusters apart.
    pub fn create(tag: &str) -> Result<Self, String> {
        let bin = bin_dir().ok_or(
            "PostgreSQL server binaries not found (install the Debian `postgresql` package, \
             or set OTPGATE_TEST_PG_URL)",
        )?;
        let cluster = Self {
            bin,
            dir: tempdir_for_postgres(tag)?,
            port: free_port(),
        };
        as_postgres(&format!(
            "{b}/initdb -A trust -U postgres -D {data} >{d}/initdb.log 2>&1",
            b = cluster.bin.display(),
            data = cluster.data().display(),
            d = cluster.dir.display(),
        ))?;
        cluster.resume()?;
        // Stop the server when this test process is gone, however it ends.
        let me = std::process::id();
        let data = cluster.data();
        let (b, data, d) = (cluster.bin.display(), data.display(), cluster.dir.display());
        let watchdog = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; runuser -u postgres -- {b}/pg_ctl -D {data} -m immediate stop >/dev/null 2>&1 || {b}/pg_ctl -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {d}",
        );
        Command::new("setsid")
            .args(["sh", "-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("watchdog: {e}"))?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://postgres@127.0.0.1:PORT` (no database part).
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Start the server (again).
    pub fn resume(&self) -> Result<(), String> {
        as_postgres(&format!(
            "{b}/pg_ctl -D {data} -l {d}/server.log -w -t 60 -o \"-p {port} -c listen_addresses=127.0.0.1 -k {d} -F -c max_connections=300\" start >/dev/null",
            b = self.bin.display(),
            data = self.data().display(),
            d = self.dir.display(),
            port = self.port,
        ))
    }

    /// Stop the server (`fast`: connections are cut, as in a restart or a failover).
    pub fn stop(&self) -> Result<(), String> {
        as_postgres(&format!(
            "{b}/pg_ctl -D {data} -m fast -w stop >/dev/null",
            b = self.bin.display(),
            data = self.data().display(),
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&format!(
            "{b}/pg_ctl -D {data} -m immediate stop >/dev/null 2>&1 || true",
            b = self.bin.display(),
            data = self.data().display(),
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tempdir_for_postgres(tag: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("otpgate-pg-{}{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir)
        .status();
    Ok(dir)
}

/// The shared server, started on first use.
pub fn server() -> Result<&'static PgServer, String> {
    SERVER.get_or_init(start).as_ref().map_err(Clone::clone)
}

/// A fresh, empty database; returns its URL.
pub async fn fresh_database() -> String {
    let server = match server() {
        Ok(s) => s,
        Err(e) => panic!("PostgreSQL for the tests: {e}"),
    };
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin_url = format!("{}/postgres", server.base_url);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    format!("{}/{name}", server.base_url)
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
