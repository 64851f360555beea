//! SQLite commits that stall: another process holds the database's write lock (an admin's
//! `sqlite3` shell left in a transaction) while logins come. After `commit_timeout` the login
//! waiting for the commit is refused, later ones at once, and a node with
//! `when_store_unavailable = "no_reply"` stays silent; the stall is one log line; `/healthz`
//! and `otpgate_store_up` say so. When the lock is released the stalled commit completes, the
//! node serves again, and the refused logins' audit rows are written. A node stopped while
//! the lock is held stops within seconds and writes the audit rows it could not store to its
//! log. A disk that does not finish its writes (every fsync of the daemon's held while a flag
//! file exists, by a shim the test compiles and preloads) stalls the same way, and the
//! answer says it is the disk.

use std::time::{Duration, Instant};

use otpgate::radius::packet::Code;

use crate::daemon::{Daemon, Setup};
use crate::harness::RFC4226;
use crate::outage::{
    login, login_within, refused_at_once, refused_once_commits_stall, serves_again_after_the_stall,
    shows_the_stall,
};

/// Another process's write transaction on the SQLite file at `path`, until dropped.
fn hold_write_lock(path: &std::path::Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
}

#[test]
fn a_write_lock_held_by_another_process() {
    let keys = tempfile::tempdir().unwrap();
    let node = |radius: &str, database: Option<String>| Setup {
        database,
        database_keys: "commit_timeout = 1".into(),
        key_file: Some(keys.path().join("secret.key")),
        radius: radius.into(),
        ..Default::default()
    };
    let d = Daemon::start(&node("", None));
    let file = d.config.parent().unwrap().join("otpgate.db");
    let silent = Daemon::start(&node(
        "when_store_unavailable = \"no_reply\"",
        Some(format!("sqlite:{}", file.display())),
    ));
    d.enroll_hotp("HOTP1", "alice", "pin");
    let (answer, _) = login(&d, 1, &format!("pin{}", RFC4226[0]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());

    let holder = hold_write_lock(&file);
    // the answer names the process holding the lock: this test
    let held_by_us = format!(
        "(the database's write lock is held by process {} (",
        std::process::id()
    );
    refused_once_commits_stall(&d, 2, &format!("pin{}", RFC4226[1]), &held_by_us);
    for id in 3..6 {
        refused_at_once(&d, id, &format!("pin{}", RFC4226[2]));
    }
    // the other node's commit stalls too, and its NAS hears nothing; it carries the OTP the
    // first node's stalled commit carries, so that whichever commits first, the other
    // consumes nothing
    let (answer, _) = login_within(
        &silent,
        6,
        &format!("pin{}", RFC4226[1]),
        Duration::from_millis(2500),
    );
    assert_eq!(answer, None, "no_reply answered while commits stall");
    shows_the_stall(&d);

    drop(holder);
    serves_again_after_the_stall(&d, &silent);
}

#[test]
fn a_node_stopped_while_commits_stall_logs_its_audit_rows() {
    let d = Daemon::start(&Setup {
        database_keys: "commit_timeout = 1".into(),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    let file = d.config.parent().unwrap().join("otpgate.db");
    let _holder = hold_write_lock(&file);
    refused_once_commits_stall(&d, 1, &format!("pin{}", RFC4226[0]), "write lock");
    let started = Instant::now();
    let (status, log) = d.stop_with_log();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    assert!(
        log.contains("the database still holds back audit rows"),
        "{log}"
    );
    let logged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("audit row written to the log instead"))
        .collect();
    assert!(
        logged.iter().any(|l| l.contains("commits wait")),
        "the refused login's row is in the log:\n{log}"
    );
}

/// An admin command that gives up on the write lock says who holds it.
#[test]
fn an_admin_command_names_who_holds_the_write_lock() {
    let d = Daemon::start(&Setup::default());
    let file = d.config.parent().unwrap().join("otpgate.db");
    let holder = hold_write_lock(&file);
    let out = d.cli(&[
        "token", "enroll", "--type", "hotp", "--user", "alice", "--pin", "pin",
    ]);
    drop(holder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("database is locked")
            && stderr.contains(&format!(
                "(the database's write lock is held by process {} (",
                std::process::id()
            )),
        "{stderr}"
    );
}

/// Every `fsync` and `fdatasync` of a process that preloads it waits while a flag file
/// exists: a disk that does not finish a write (a network volume that hangs), at the system
/// call SQLite makes.
struct HangingSync {
    dir: tempfile::TempDir,
}

impl HangingSync {
    const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
static void hold(void) {
    const char *flag = getenv("OTPGATE_TEST_SYNC_HANGS_WHILE");
    while (flag && access(flag, F_OK) == 0) usleep(10000);
}
int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    hold();
    return real(fd);
}
int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    hold();
    return real(fd);
}
"#;

    fn build() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("hang.c");
        std::fs::write(&source, Self::SOURCE).unwrap();
        let built = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.path().join("hang.so"))
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("cc is needed for this test (the crate's build needs it too)");
        assert!(built.success());
        Self { dir }
    }

    fn flag(&self) -> std::path::PathBuf {
        self.dir.path().join("hang")
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "LD_PRELOAD".into(),
                self.dir.path().join("hang.so").display().to_string(),
            ),
            (
                "OTPGATE_TEST_SYNC_HANGS_WHILE".into(),
                self.flag().display().to_string(),
            ),
        ]
    }

    fn hang(&self) {
        std::fs::write(self.flag(), b"").unwrap();
    }

    fn release(&self) {
        std::fs::remove_file(self.flag()).unwrap();
    }
}

#[test]
fn a_disk_that_does_not_finish_a_write() {
    let disk = HangingSync::build();
    let d = Daemon::start(&Setup {
        database_keys: "commit_timeout = 1".into(),
        env: disk.env(),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    let (answer, _) = login(&d, 1, &format!("pin{}", RFC4226[0]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());

    disk.hang();
    refused_once_commits_stall(
        &d,
        2,
        &format!("pin{}", RFC4226[1]),
        "(the disk does not finish a write)",
    );
    refused_at_once(&d, 3, &format!("pin{}", RFC4226[2]));
    shows_the_stall(&d);
    // the health check says why, for the admin who asks
    assert_eq!(
        d.http_get("/healthz"),
        "store unavailable: commits wait longer than 1 s (the disk does not finish a write)\n"
    );
    // two health checks, one line: a load balancer's polling does not fill the log
    d.wait_for_log(
        "health check: the store does not answer",
        Duration::from_secs(2),
    );
    // a second line would be on its way for a few milliseconds at most
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        d.log()
            .matches("health check: the store does not answer")
            .count(),
        1,
        "{}",
        d.log()
    );

    disk.release();
    d.wait_for_log("the database commits again", Duration::from_secs(5));
    assert_eq!(d.metric("otpgate_store_up"), 1.0);
    // the stalled commit was stored: its OTP is used up, the one refused at once is not
    let (answer, _) = login(&d, 4, &format!("pin{}", RFC4226[1]));
    assert_eq!(answer.unwrap().0, Code::AccessReject);
    let (answer, _) = login(&d, 5, &format!("pin{}", RFC4226[2]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());
}
