//! Challenge-response with tokens that deliver their OTP: email through a real SMTP sink, SMS
//! through a real HTTP gateway (spec §4.3, scenarios 41, 42).

use std::time::Duration;

use otpgate::admin::manage::EnrollSpec;
use otpgate::auth::Request;
use otpgate::secret::Secret;
use otpgate::token::TokenType;

use crate::harness::{Backend, Harness, assert_answer};
use crate::sinks::{HttpSink, SmtpSink};

const WAIT: Duration = Duration::from_secs(3);

async fn sms_harness(gateway: &HttpSink) -> Harness {
    let extra = format!(
        "[[sms_gateway]]\nname = \"gw\"\nurl = \"{}\"\nmethod = \"GET\"\ntimeout = 3\n\
         parameters = {{ to = \"{{phone}}\", text = \"{{message}}\" }}\n",
        gateway.url("/send")
    );
    let h = Harness::with_config(Backend::Sqlite, "", &extra).await;
    h.enroll(EnrollSpec {
        kind: Some(TokenType::Sms),
        serial: Some("SMS1".into()),
        user: Some("alice".into()),
        pin: Some(Secret::new("smspin".into())),
        ..Default::default()
    })
    .await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_42_sms_gateway_failure_rejects_with_the_reason() {
    let gw = HttpSink::start().await;
    gw.set_status(500);
    let h = sms_harness(&gw).await;
    let r = h.user("alice", "smspin").await;
    assert_eq!(r.authentication(), Some("REJECT"), "{}", r.body);
    assert!(
        r.message()
            .unwrap()
            .contains("The PIN was correct, but the SMS could not be sent"),
        "{}",
        r.body
    );
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_challenge_round_trip_through_the_gateway() {
    let gw = HttpSink::start().await;
    let h = sms_harness(&gw).await;
    let r = h.user("alice", "smspin").await;
    assert_answer(&r, "CHALLENGE", "Enter the OTP from the SMS:");
    let sent = gw.wait_for(1, WAIT).await;
    assert_eq!(sent[0].path, "/send");
    let q: Vec<(String, String)> = sent[0]
        .query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2B", "+")))
        .collect();
    assert!(q.contains(&("to".into(), "+4915100000001".into())), "{q:?}");
    let otp = q
        .iter()
        .find(|(k, _)| k == "text")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(otp.len(), 6);
    let txid = r.transaction_id().unwrap().to_owned();
    let r = h
        .check(Request::user("alice", "000000").with_transaction(&txid))
        .await;
    assert_answer(&r, "REJECT", "Response did not match the challenge.");
    let r = h
        .check(Request::user("alice", &otp).with_transaction(&txid))
        .await;
    assert_answer(&r, "ACCEPT", "Found matching challenge");
    // the challenge is gone: the same answer again is an unknown transaction
    let r = h
        .check(Request::user("alice", &otp).with_transaction(&txid))
        .await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_41_email_challenge_round_trip() {
    let smtp = SmtpSink::start().await;
    let h = Harness::with_config(Backend::Sqlite, "", &smtp.config("mail1")).await;
    h.enroll(EnrollSpec {
        kind: Some(TokenType::Email),
        serial: Some("EM1".into()),
        user: Some("alice".into()),
        pin: Some(Secret::new("1234".into())),
        ..Default::default()
    })
    .await;
    let r = h.user("alice", "1234").await;
    assert_answer(&r, "CHALLENGE", "Enter the OTP from the Email");
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["alice@example.com"]);
    let otp = mails[0].body().trim().to_owned();
    let txid = r.transaction_id().unwrap().to_owned();
    let r = h
        .check(Request::user("alice", &otp).with_transaction(&txid))
        .await;
    assert_answer(&r, "ACCEPT", "Found matching challenge");
    h.close().await;
}
