//! Several nodes on one PostgreSQL: two running daemons share the store and the key file.
//! The same OTP at both nodes at once is accepted once; a challenge issued by one node is
//! answered at the other; a NAS that fails over with the same request gets the first node's
//! answer (request ledger); event counters add up across nodes.

use std::net::UdpSocket;
use std::time::Duration;

use otpgate::radius::client::{AccessRequest, encode_access_request};
use otpgate::radius::packet::{Code, Packet};
use otpgate::secret::Secret;
use serde_json::json;

use crate::daemon::{Daemon, SECRET, Setup, udp_exchange};
use crate::harness::RFC4226;

const EXTRA: &str = "[[policy]]\nname = \"cr\"\nscope = \"authentication\"\nactions = { challenge_response = \"hotp\" }\n\
    [[event]]\nname = \"count\"\nevent = \"validate_check\"\nhandler = \"Counter\"\naction = \"increase_counter\"\noptions = { counter_name = \"logins\" }\n";

fn request(password: &str) -> (Vec<u8>, [u8; 16]) {
    encode_access_request(
        &AccessRequest {
            user: "alice".into(),
            password: Secret::new(password.into()),
            message_authenticator: true,
            ..Default::default()
        },
        7,
        SECRET.as_bytes(),
    )
    .unwrap()
}

fn code(reply: &[u8]) -> Code {
    Packet::decode(reply).unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql() {
    let url = crate::pg::fresh_database().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("secret.key");
    let node = |name: &str| Setup {
        extra: EXTRA.into(),
        database: Some(url.clone()),
        key_file: Some(key_file.clone()),
        node: Some(name.into()),
        ..Default::default()
    };
    let a = Daemon::start(&node("a"));
    let b = Daemon::start(&node("b"));
    a.enroll_hotp("HOTP1", "alice", "pin");

    // 1. the same OTP at both nodes at once: accepted once
    let (ra, _) = request(&format!("pin{}", RFC4226[0]));
    let (rb, _) = request(&format!("pin{}", RFC4226[0]));
    let (sa, sb) = (a.radius, b.radius);
    let ta = std::thread::spawn(move || {
        udp_exchange(
            &UdpSocket::bind("127.0.0.1:0").unwrap(),
            sa,
            &ra,
            Duration::from_secs(5),
        )
    });
    let tb = std::thread::spawn(move || {
        udp_exchange(
            &UdpSocket::bind("127.0.0.1:0").unwrap(),
            sb,
            &rb,
            Duration::from_secs(5),
        )
    });
    let answers = [ta.join().unwrap().unwrap(), tb.join().unwrap().unwrap()];
    let accepts = answers
        .iter()
        .filter(|r| code(r) == Code::AccessAccept)
        .count();
    assert_eq!(accepts, 1, "the same OTP was accepted {accepts} times");

    // 2. a challenge issued by A is answered at B
    let r = a.pyrad(json!({"user": "alice", "password": "pin"}));
    assert_eq!(r["code"], 11, "{r}");
    let state = r["attrs"]["State"][0].as_str().unwrap().to_owned();
    let r = b.pyrad(json!({"user": "alice", "password": RFC4226[1], "state": state}));
    assert_eq!(r["code"], 2, "{r}");

    // 3. a NAS fails over: the same request (identifier, authenticator) to B gets A's answer
    let (req, _) = request(&format!("pin{}", RFC4226[2]));
    let first = udp_exchange(
        &UdpSocket::bind("127.0.0.1:0").unwrap(),
        a.radius,
        &req,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(code(&first), Code::AccessAccept);
    let counter = a.token("HOTP1")["count"].clone();
    // like a NAS, retransmit: a copy that arrives while A's answer is being recorded is dropped
    let nas = UdpSocket::bind("127.0.0.1:0").unwrap();
    let again = (0..5)
        .find_map(|_| udp_exchange(&nas, b.radius, &req, Duration::from_millis(500)))
        .expect("node B answered the failover");
    assert_eq!(again, first, "node B did not give node A's answer");
    assert_eq!(
        a.token("HOTP1")["count"],
        counter,
        "node B checked the OTP a second time"
    );
    b.wait_for_log("answered with another node's reply", Duration::from_secs(2));

    // 4. event counters add up across nodes (5 validate_check so far: 2 + 1 + 1 at A, 1 + 0 at B …).
    // A node commits its increments after the reply; a graceful stop commits what is left.
    assert!(a.stop().success());
    assert!(b.stop().success());
    let store = otpgate::store::Store::open(&otpgate::store::StoreSettings {
        max_connections: 1,
        ..crate::harness::store_settings(otpgate::store::Database::Postgres(url.clone()))
    })
    .await
    .unwrap();
    let total = store.counter_value("logins").await.unwrap();
    // a: 1 (same OTP) + 1 (challenge) + 1 (failover original); b: 1 (same OTP) + 1 (answer)
    assert_eq!(total, 5, "counter rows of both nodes add up");
    store.close().await;
}
