//! The size of a login's state machine. Every request's task holds it and spawning the task
//! copies it whole, so a rare branch (a challenge, an event phase, an admin write, a guarded
//! query) is boxed where it is awaited rather than sized into every login
//! (docs/performance.md, "What the profiles showed").

use otpgate::auth::Request;

use crate::harness::{Backend, Harness};

/// Bytes: 4,688 in the test and the release build, 11,520 before the rare branches were boxed
/// (13,536 in the release build).
const LOGIN_FUTURE_LIMIT: usize = 6 * 1024;

#[tokio::test]
async fn a_login_future_does_not_carry_its_rare_branches() {
    let h = Harness::new(Backend::Sqlite, "").await;
    let login = h.auth.validate_check(Request::user("alice", "123456"));
    let size = size_of_val(&login);
    drop(login);
    h.close().await;
    assert!(
        size <= LOGIN_FUTURE_LIMIT,
        "a login's future is {size} bytes (limit {LOGIN_FUTURE_LIMIT}): is a rare branch awaited unboxed?"
    );
}
