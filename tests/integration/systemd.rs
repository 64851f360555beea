//! What the unit relies on, without systemd: the notify protocol (READY, the watchdog's pings
//! while the receive loops turn, STOPPING) on a socket of the test's own, and log lines for
//! the journal when stderr is the journal's stream.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{BIN, Daemon, Setup};

#[test]
fn notify_ready_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let d = Daemon::start(&Setup {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            // a ping at least every 0.4 s
            ("WATCHDOG_USEC".into(), "1200000".into()),
        ],
        ..Default::default()
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 4, "pings every 0.4 s for 3 s: {pings} in {seen:?}");
    d.stop();
    let mut stopping = false;
    for _ in 0..10 {
        if let Ok(n) = sock.recv(&mut buf) {
            stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
        }
    }
    assert!(stopping, "STOPPING=1 at the end");
}

#[test]
fn log_lines_for_the_journal_carry_their_priority_and_no_time() {
    let mut d = Daemon::start(&Setup::default());
    let config = d.config.clone();
    let cmd = format!(
        "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) OTPGATE_LOG=info exec timeout -s INT 2 '{BIN}' -c '{}' serve",
        config.display()
    );
    // the same files, run again by the shell under a journal-like stderr
    d.kill();
    let out = Command::new("sh")
        .args(["-c", &cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let ready = log
        .lines()
        .find(|l| l.contains("otpgate ready"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(ready.starts_with("<6>"), "{ready}");
    assert!(
        ready[3..].trim_start().starts_with("INFO"),
        "no timestamp (journald stamps the entry itself): {ready}"
    );
    assert!(
        log.lines().all(|l| l.starts_with('<')),
        "every line has a priority: {log}"
    );
}
