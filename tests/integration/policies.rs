//! Spec §5 scenarios with policies and challenge-response, through the real pipeline on SQLite
//! and on PostgreSQL.

use chrono::TimeDelta;
use otpgate::admin::manage::TokenSetting;
use otpgate::auth::Request;

use crate::harness::{Backend, Harness, RFC4226, assert_answer};
use crate::on_both_backends;

fn policy(name: &str, scope: &str, actions: &str) -> String {
    format!("[[policy]]\nname = \"{name}\"\nscope = \"{scope}\"\nactions = {{ {actions} }}\n")
}

async fn with_policy(b: Backend, name: &str, scope: &str, actions: &str) -> Harness {
    Harness::with_config(b, "", &policy(name, scope, actions)).await
}

async fn scenario_12_otppin_userstore(b: Backend) {
    let h = with_policy(b, "pol", "authentication", "otppin = \"userstore\"").await;
    let r = h.user("alice", "Secret1755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    let r = h.user("alice", "pin287082").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

async fn scenario_13_otppin_none(b: Backend) {
    let h = with_policy(b, "pol", "authentication", "otppin = \"none\"").await;
    let r = h.user("alice", "755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    let r = h.user("alice", "x287082").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

async fn scenario_23_pass_on_no_user(b: Backend) {
    let h = with_policy(b, "pol", "authentication", "passOnNoUser = true").await;
    let r = h.user("eve", "x").await;
    assert_answer(&r, "ACCEPT", "user does not exist, accepted due to 'pol'");
    h.close().await;
}

async fn scenario_24_25_pass_on_no_token(b: Backend) {
    let h = with_policy(b, "pol", "authentication", "passOnNoToken = true").await;
    let r = h.user("carol", "anything").await;
    assert_answer(&r, "ACCEPT", "user has no token, accepted due to 'pol'");
    let r = h.user("alice", "wrong").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
    let h = Harness::new(b, "").await;
    let r = h.user("carol", "anything").await;
    assert_answer(&r, "REJECT", "The user has no tokens assigned");
    h.close().await;
}

async fn scenario_26_passthru_userstore(b: Backend) {
    let h = with_policy(b, "pt", "authentication", "passthru = \"userstore\"").await;
    let r = h.user("carol", "Carol1").await;
    assert_answer(&r, "ACCEPT", "against userstore due to 'pt'");
    let r = h.user("carol", "wrong").await;
    assert_answer(&r, "REJECT", "The user has no tokens assigned");
    let r = h.user("alice", "Secret1").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

async fn scenario_27_auth_max_fail(b: Backend) {
    let h = with_policy(b, "pol", "authorization", "auth_max_fail = \"2/20s\"").await;
    h.user("alice", "pin000000").await;
    h.user("alice", "pin000001").await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(
        &r,
        "REJECT",
        "Only 2 failed authentications per 0:00:20 allowed.",
    );
    assert_eq!(
        h.token("HOTP1").await.otp_counter,
        0,
        "the OTP was not checked"
    );
    // 21 s later the window has passed
    h.clock.advance(TimeDelta::seconds(21));
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    h.close().await;
}

async fn scenario_28_auth_max_success(b: Backend) {
    let h = with_policy(b, "pol", "authorization", "auth_max_success = \"2/20s\"").await;
    assert_eq!(
        h.user("alice", "pin755224").await.authentication(),
        Some("ACCEPT")
    );
    assert_eq!(
        h.user("alice", "pin287082").await.authentication(),
        Some("ACCEPT")
    );
    let r = h.user("alice", "pin359152").await;
    assert_answer(
        &r,
        "REJECT",
        "Only 2 successful authentications per 0:00:20 allowed.",
    );
    h.close().await;
}

async fn scenario_30_reset_all_user_tokens(b: Backend) {
    let h = with_policy(b, "pol", "authentication", "reset_all_user_tokens = true").await;
    h.enroll_hotp(
        "HOTP2",
        "alice",
        "pin2",
        "3132333435363738393031323334353637383931",
    )
    .await;
    h.set("HOTP2", &[TokenSetting::Failcount(5)]).await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.token("HOTP2").await.failcount, 0);
    h.close().await;
}

async fn challenge_harness(b: Backend, more: &str) -> Harness {
    with_policy(
        b,
        "cr",
        "authentication",
        &format!("challenge_response = \"hotp\"{more}"),
    )
    .await
}

async fn scenario_35_37_challenge_round_trip(b: Backend) {
    let h = challenge_harness(b, "").await;
    let r = h.user("alice", "pin").await;
    assert_answer(&r, "CHALLENGE", "please enter otp: ");
    assert!(!r.value());
    let txid = r.transaction_id().unwrap().to_owned();
    assert_eq!(txid.len(), 20);
    assert!(txid.bytes().all(|c| c.is_ascii_digit()));
    let mc = r.body["detail"]["multi_challenge"].as_array().unwrap();
    assert_eq!(mc.len(), 1);
    assert_eq!(mc[0]["serial"], "HOTP1");
    assert_eq!(mc[0]["client_mode"], "interactive");
    assert_eq!(h.token("HOTP1").await.failcount, 0);
    // 37: the OTP alone with the transaction id
    let r = h
        .check(Request::user("alice", "755224").with_transaction(&txid))
        .await;
    assert_answer(&r, "ACCEPT", "Found matching challenge");
    assert_eq!(h.token("HOTP1").await.failcount, 0);
    assert!(
        h.auth
            .store()
            .challenges_of("HOTP1", Some(&txid))
            .await
            .unwrap()
            .is_empty()
    );
    let r = h
        .check(Request::user("alice", "287082").with_transaction(&txid))
        .await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

async fn scenario_36_challenge_text(b: Backend) {
    let h = challenge_harness(b, ", challenge_text = \"Enter code\"").await;
    let r = h.user("alice", "pin").await;
    assert_answer(&r, "CHALLENGE", "Enter code");
    h.close().await;
}

async fn scenario_39_expired_challenge(b: Backend) {
    let h = challenge_harness(b, "").await;
    let r = h.user("alice", "pin").await;
    let txid = r.transaction_id().unwrap().to_owned();
    h.clock.advance(TimeDelta::seconds(121));
    let r = h
        .check(Request::user("alice", "755224").with_transaction(&txid))
        .await;
    assert_answer(&r, "REJECT", "Response did not match the challenge.");
    assert_eq!(h.token("HOTP1").await.failcount, 1);
    h.close().await;
}

async fn scenario_40_no_challenge_without_policy(b: Backend) {
    let h = Harness::new(b, "").await;
    let r = h.user("alice", "pin").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

async fn scenario_44_increase_failcounter_on_challenge(b: Backend) {
    let h = challenge_harness(b, ", increase_failcounter_on_challenge = true").await;
    let r = h.user("alice", "pin").await;
    assert_eq!(r.authentication(), Some("CHALLENGE"));
    assert_eq!(h.token("HOTP1").await.failcount, 1);
    h.close().await;
}

async fn scenario_46_force_challenge_response(b: Backend) {
    let h = challenge_harness(b, ", force_challenge_response = true").await;
    let r = h.user("alice", "pin755224").await;
    assert_eq!(r.authentication(), Some("REJECT"), "{}", r.body);
    let r = h.user("alice", "pin").await;
    assert_eq!(r.authentication(), Some("CHALLENGE"));
    h.close().await;
}

async fn state_from_another_user_or_unknown_is_rejected(b: Backend) {
    let h = challenge_harness(b, "").await;
    h.enroll_hotp(
        "BOB1",
        "bob",
        "bpin",
        "3132333435363738393031323334353637383931",
    )
    .await;
    let r = h.user("alice", "pin").await;
    let txid = r.transaction_id().unwrap().to_owned();
    // bob answers alice's challenge with alice's OTP: never accepted
    let r = h
        .check(Request::user("bob", RFC4226[0]).with_transaction(&txid))
        .await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    let r = h
        .check(Request::user("alice", RFC4226[0]).with_transaction("12345678901234567890"))
        .await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    // alice's challenge is still answerable by alice
    let r = h
        .check(Request::user("alice", RFC4226[0]).with_transaction(&txid))
        .await;
    assert_answer(&r, "ACCEPT", "Found matching challenge");
    h.close().await;
}

async fn authorization_by_type_serial_and_tokeninfo(b: Backend) {
    let h = with_policy(b, "only-totp", "authorization", "tokentype = \"totp\"").await;
    let r = h.user("alice", "pin755224").await;
    assert!(!r.status(), "{}", r.body);
    assert_eq!(
        r.message(),
        Some("ERR303: Tokentype not allowed for authentication!")
    );
    h.close().await;
    let h = with_policy(b, "serials", "authorization", "serial = \"HOTP\"").await;
    assert_eq!(
        h.user("alice", "pin755224").await.authentication(),
        Some("ACCEPT")
    );
    h.close().await;
    let h = with_policy(b, "info", "authorization", "tokeninfo = \"dept/^IT$/\"").await;
    assert!(!h.user("alice", "pin755224").await.status());
    h.set(
        "HOTP1",
        &[TokenSetting::TokenInfo("dept".into(), "IT".into())],
    )
    .await;
    assert_eq!(
        h.user("alice", "pin287082").await.authentication(),
        Some("ACCEPT")
    );
    h.close().await;
}

async fn last_auth_policy(b: Backend) {
    let h = with_policy(b, "fresh", "authorization", "last_auth = \"10d\"").await;
    assert_eq!(
        h.user("alice", "pin755224").await.authentication(),
        Some("ACCEPT")
    );
    h.clock.advance(TimeDelta::days(11));
    let r = h.user("alice", "pin287082").await;
    assert_eq!(r.authentication(), Some("REJECT"));
    assert!(
        r.message().unwrap().ends_with("It is too long ago."),
        "{}",
        r.body
    );
    h.close().await;
}

async fn mangle_set_realm_and_disabled_types(b: Backend) {
    let extra = format!(
        "{}{}",
        policy(
            "strip",
            "authentication",
            "mangle = \"user/(.*)@corp\\\\.example/\\\\1/\""
        ),
        policy(
            "no-spass",
            "authentication",
            "disabled_token_types = \"hotp\""
        )
    );
    let h = Harness::with_config(b, "", &extra).await;
    let r = h.user("alice@corp.example", "pin755224").await;
    assert_answer(&r, "REJECT", "No suitable token found for authentication.");
    h.close().await;
    let h = with_policy(b, "realm", "authentication", "set_realm = \"realm3\"").await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "REJECT", "The user has no tokens assigned");
    h.close().await;
}

async fn hide_specific_error_message(b: Backend) {
    let h = with_policy(
        b,
        "hide",
        "authentication",
        "hide_specific_error_message = true",
    )
    .await;
    let r = h.user("eve", "x").await;
    assert_eq!(r.message(), Some("ERR10: Authentication failed."));
    let r = h.user("alice", "pin000000").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

on_both_backends!(
    scenario_12_otppin_userstore,
    scenario_13_otppin_none,
    scenario_23_pass_on_no_user,
    scenario_24_25_pass_on_no_token,
    scenario_26_passthru_userstore,
    scenario_27_auth_max_fail,
    scenario_28_auth_max_success,
    scenario_30_reset_all_user_tokens,
    scenario_35_37_challenge_round_trip,
    scenario_36_challenge_text,
    scenario_39_expired_challenge,
    scenario_40_no_challenge_without_policy,
    scenario_44_increase_failcounter_on_challenge,
    scenario_46_force_challenge_response,
    state_from_another_user_or_unknown_is_rejected,
    authorization_by_type_serial_and_tokeninfo,
    last_auth_policy,
    mangle_set_realm_and_disabled_types,
    hide_specific_error_message,
);
