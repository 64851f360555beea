//! An accepted OTP stays consumed: the daemon is killed with SIGKILL under load, restarted on
//! the same store, and every user's last accepted OTP is sent again — it must be rejected. The
//! answer to a login leaves only after its consumption is committed (group commit), so no
//! Access-Accept can be ahead of the database.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otpgate::radius::client::{AccessRequest, encode_access_request};
use otpgate::radius::packet::{Code, Packet};
use otpgate::secret::Secret;
use otpgate::token::otp::{HashLib, hotp};

use crate::daemon::{Daemon, SECRET, Setup, udp_exchange};

const USERS: [(&str, &str); 3] = [
    ("alice", "3132333435363738393031323334353637383930"),
    ("bob", "3132333435363738393031323334353637383931"),
    ("carol", "3132333435363738393031323334353637383932"),
];

fn login(server: std::net::SocketAddr, user: &str, otp: &str) -> Option<Code> {
    let (bytes, _) = encode_access_request(
        &AccessRequest {
            user: user.into(),
            password: Secret::new(format!("pin{otp}")),
            message_authenticator: true,
            ..Default::default()
        },
        1,
        SECRET.as_bytes(),
    )
    .ok()?;
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    let reply = udp_exchange(&s, server, &bytes, Duration::from_millis(1500))?;
    Packet::decode(&reply).ok().map(|p| p.code())
}

/// A daemon with one HOTP token (PIN `pin`) for each of `USERS`.
fn daemon_with_users() -> Daemon {
    let d = Daemon::start(&Setup::default());
    for (user, key) in USERS {
        d.cli_ok(&[
            "token",
            "enroll",
            "--serial",
            &format!("D-{user}"),
            "--user",
            user,
            "--pin",
            "pin",
            "--key",
            key,
        ]);
    }
    d
}

#[test]
fn sigkill_under_load_never_lets_an_accepted_otp_in_again() {
    let mut d = daemon_with_users();
    let server = d.radius;
    let stop = Arc::new(AtomicBool::new(false));
    let last_accepted: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
    let mut threads = Vec::new();
    for (user, key) in USERS {
        let stop = stop.clone();
        let last = last_accepted.clone();
        threads.push(std::thread::spawn(move || {
            let key = data_encoding::HEXLOWER.decode(key.as_bytes()).unwrap();
            let mut counter = 0u64;
            let mut accepted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let otp = hotp(&key, counter, 6, HashLib::Sha1);
                match login(server, user, &otp) {
                    Some(Code::AccessAccept) => {
                        accepted += 1;
                        let mut l = last.lock().unwrap();
                        l.retain(|(u, _, _)| u != user);
                        l.push((user.to_owned(), otp, counter));
                        counter += 1;
                    }
                    // the daemon is gone: stop
                    None => break,
                    Some(_) => counter += 1,
                }
            }
            accepted
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    d.kill(); // SIGKILL while the threads keep sending
    stop.store(true, Ordering::Relaxed);
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        total > 30,
        "too little load to mean anything: {total} accepted"
    );

    d.restart();
    let last = last_accepted.lock().unwrap().clone();
    assert_eq!(last.len(), USERS.len());
    for (user, otp, counter) in &last {
        let again = login(d.radius, user, otp);
        assert_eq!(
            again,
            Some(Code::AccessReject),
            "{user}'s OTP of counter {counter}, accepted before the kill, was accepted again"
        );
    }
    // and the next OTP still works: the store is consistent
    let (user, key) = USERS[0];
    let key = data_encoding::HEXLOWER.decode(key.as_bytes()).unwrap();
    let next = last.iter().find(|(u, _, _)| u == user).unwrap().2 + 1;
    let code = (next..next + 10)
        .map(|c| login(d.radius, user, &hotp(&key, c, 6, HashLib::Sha1)))
        .find(|c| *c == Some(Code::AccessAccept));
    assert_eq!(code, Some(Some(Code::AccessAccept)));
}

/// Every answer a client saw has its audit row, a SIGKILL notwithstanding: the row of a
/// request is committed before its answer leaves. Rows may exceed the answers by the requests
/// in flight at the kill (stored, but their answers never arrived).
#[test]
fn sigkill_under_load_keeps_the_audit_row_of_every_answer() {
    let mut d = daemon_with_users();
    let server = d.radius;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (user, key) in USERS {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let key = data_encoding::HEXLOWER.decode(key.as_bytes()).unwrap();
            let mut answered = 0u64;
            let mut counter = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // accepts and rejects alike: every answered request has a row
                let otp = if counter % 3 == 2 {
                    "000000".to_owned()
                } else {
                    hotp(&key, counter, 6, HashLib::Sha1)
                };
                match login(server, user, &otp) {
                    Some(_) => answered += 1,
                    None => break,
                }
                counter += 1;
            }
            answered
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    d.kill();
    stop.store(true, Ordering::Relaxed);
    let answered: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        answered > 30,
        "too little load to mean anything: {answered}"
    );
    let db = rusqlite::Connection::open(d.dir().join("otpgate.db")).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE event = 'validate_check'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let rows = u64::try_from(rows).unwrap();
    assert!(
        rows >= answered && rows <= answered + USERS.len() as u64,
        "{answered} answers, {rows} audit rows"
    );
}
