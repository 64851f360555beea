//! SQLite commits that stall: another process holds the database's write lock (an admin's
//! `sqlite3` shell left in a transaction) while logins come. After `commit_timeout` the login
//! waiting for the commit is refused, later ones at once, and a node with
//! `when_store_unavailable = "no_reply"` stays silent; the stall is one log line; `/healthz`
//! and `otpgate_store_up` say so. When the lock is released the stalled commit completes, the
//! node serves again, and the refused logins' audit rows are written. A node stopped while
//! the lock is held stops within seconds and writes the audit rows it could not store to its
//! log.

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
