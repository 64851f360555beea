//! The admin command line as a shell uses it.

use std::process::{Command, Stdio};

use crate::daemon::{BIN, Daemon, Setup};

/// `otpgate token list | head -1`: the reader goes away before the command has written; the
/// command ends with success and no panic message, as `head` expects of it.
#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    let d = Daemon::start(&Setup::default());
    for i in 0..50 {
        d.enroll_hotp(&format!("HOTP{i}"), "alice", "pin");
    }
    for args in [&["token", "list"][..], &["audit", "list"][..]] {
        let mut child = Command::new(BIN)
            .arg("-c")
            .arg(&d.config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the reader closes before the command has opened its store, let alone written
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "otpgate {args:?}: {:?} {stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
