//! Spec §5 scenarios through the real pipeline, on SQLite and on PostgreSQL.

use chrono::TimeDelta;
use otpgate::admin::manage::{EnrollSpec, TokenSetting};
use otpgate::auth::Request;
use otpgate::clock::{format_long, format_short};
use otpgate::secret::Secret;
use otpgate::token::otp::{HashLib, hotp, time_counter};
use otpgate::token::{TokenType, enroll::parse_hex_key};

use crate::harness::{Backend, Harness, RFC4226, assert_answer, t0};
use crate::on_both_backends;

const DEFAULT: &str = "";

async fn scenario_01_correct_pin_and_otp_accepts(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(r.serial(), Some("HOTP1"));
    assert_eq!(r.detail_str("type"), Some("hotp"));
    assert_eq!(r.body["detail"]["otplen"], 6);
    let t = h.token("HOTP1").await;
    assert_eq!((t.otp_counter, t.failcount), (1, 0));
    assert_eq!((t.count_auth, t.count_auth_success), (1, 1));
    assert_eq!(t.tokeninfo("last_auth"), Some(format_long(t0())));
    h.close().await;
}

async fn scenario_02_same_otp_again_is_previous_otp(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.user("alice", "pin755224").await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "REJECT", "wrong otp value. previous otp used again");
    let t = h.token("HOTP1").await;
    assert_eq!((t.failcount, t.otp_counter), (1, 1));
    h.close().await;
}

async fn scenario_03_otp_at_the_end_of_the_window_accepts(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.user("alice", "pin755224").await;
    let r = h.user("alice", &format!("pin{}", RFC4226[9])).await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.token("HOTP1").await.otp_counter, 10);
    h.close().await;
}

async fn scenario_04_otp_outside_the_window_rejects(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let r = h.user("alice", &format!("pin{}", RFC4226[10])).await;
    assert_answer(&r, "REJECT", "wrong otp value");
    let t = h.token("HOTP1").await;
    assert_eq!((t.failcount, t.otp_counter), (1, 0));
    h.close().await;
}

async fn scenario_05_wrong_pin_rejects_and_counts(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let r = h.user("alice", "wrong755224").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    assert_eq!(h.token("HOTP1").await.failcount, 1);
    h.close().await;

    let h = Harness::new(b, "IncFailCountOnFalsePin = false").await;
    let r = h.user("alice", "wrong755224").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    assert_eq!(h.token("HOTP1").await.failcount, 0);
    h.close().await;
}

async fn scenario_07_no_token_matches_rejects_all(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.enroll_hotp(
        "HOTP2",
        "alice",
        "pin2",
        "3132333435363738393031323334353637383931",
    )
    .await;
    let r = h.user("alice", "nomatch123456").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    assert_eq!(r.serial(), None);
    assert_eq!(h.token("HOTP1").await.failcount, 1);
    assert_eq!(h.token("HOTP2").await.failcount, 1);
    h.close().await;
}

async fn scenario_10_pin_alone_without_policy_rejects(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let r = h.user("alice", "pin").await;
    assert_answer(&r, "REJECT", "wrong otp pin");
    h.close().await;
}

async fn scenario_14_disabled_token_rejects_untouched(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.auth
        .token_enable("HOTP1", false, otpgate::auth::Origin::Cli)
        .await
        .unwrap();
    let r = h.user("alice", "pin755224").await;
    assert_eq!(r.authentication(), Some("REJECT"));
    assert!(
        r.message().unwrap().contains("Token is disabled"),
        "{}",
        r.body
    );
    let t = h.token("HOTP1").await;
    assert_eq!((t.otp_counter, t.failcount), (0, 0));
    h.close().await;
}

async fn scenario_15_outside_validity_period_rejects(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let yesterday = format_short(t0() - TimeDelta::days(1));
    h.set("HOTP1", &[TokenSetting::ValidityEnd(yesterday)])
        .await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "REJECT", "Outside validity period");
    h.close().await;

    let h = Harness::new(b, DEFAULT).await;
    let tomorrow = format_short(t0() + TimeDelta::days(1));
    h.set("HOTP1", &[TokenSetting::ValidityStart(tomorrow)])
        .await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "REJECT", "Outside validity period");
    assert_eq!(h.token("HOTP1").await.otp_counter, 0);
    h.close().await;
}

async fn scenario_16_auth_counter_max_on_spass(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.enroll(EnrollSpec {
        kind: Some(TokenType::Spass),
        serial: Some("SP1".into()),
        pin: Some(Secret::new("123456".into())),
        ..Default::default()
    })
    .await;
    h.set("SP1", &[TokenSetting::CountAuthMax(5)]).await;
    for attempt in 1..=5 {
        let r = h.check(Request::serial("SP1", "123456")).await;
        assert_eq!(
            r.authentication(),
            Some("ACCEPT"),
            "attempt {attempt}: {}",
            r.body
        );
    }
    let r = h.check(Request::serial("SP1", "123456")).await;
    assert_answer(&r, "REJECT", "Authentication counter exceeded");
    h.close().await;
}

async fn scenario_17_no_auth_counter_leaves_count_auth(b: Backend) {
    let h = Harness::new(b, "no_auth_counter = true").await;
    let r = h.user("alice", "pin755224").await;
    assert_eq!(r.authentication(), Some("ACCEPT"));
    let t = h.token("HOTP1").await;
    assert_eq!((t.count_auth, t.count_auth_success), (0, 0));
    h.close().await;
}

async fn scenario_18_totp_current_step_then_replay(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let key = "3132333435363738393031323334353637383930";
    h.enroll(EnrollSpec {
        kind: Some(TokenType::Totp),
        serial: Some("TOTP1".into()),
        key: Some(parse_hex_key(key).unwrap()),
        pin: Some(Secret::new("tpin".into())),
        user: Some("carol".into()),
        time_step: Some(30),
        ..Default::default()
    })
    .await;
    let step = time_counter(t0().timestamp(), 30);
    let otp = hotp(
        &parse_hex_key(key).unwrap().expose().clone(),
        step as u64,
        6,
        HashLib::Sha1,
    );
    let r = h.user("carol", &format!("tpin{otp}")).await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.token("TOTP1").await.otp_counter, step);
    let r = h.user("carol", &format!("tpin{otp}")).await;
    assert_answer(&r, "REJECT", "wrong otp value. previous otp used again");
    // Thirty seconds later the next step's value is accepted.
    h.clock.advance(TimeDelta::seconds(30));
    let next = hotp(b"12345678901234567890", step as u64 + 1, 6, HashLib::Sha1);
    let r = h.user("carol", &format!("tpin{next}")).await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.token("TOTP1").await.otp_counter, step + 1);
    h.close().await;
}

async fn scenario_21_serial_requests(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let r = h.check(Request::serial("HOTP1", "pin755224")).await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");

    let mut req = Request::serial("HOTP1", "pin287082");
    req.user = Some("bob".into());
    let r = h.check(req).await;
    assert_eq!(r.status_code, 400);
    assert!(!r.status());
    assert_eq!(
        r.message(),
        Some("ERR905: Given serial does not belong to given user!")
    );

    let r = h.check(Request::serial("UNKNOWN", "pin287082")).await;
    assert_eq!(r.status_code, 404);
    assert!(!r.status());
    h.close().await;
}

async fn scenario_22_unknown_user_is_error_904(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    let r = h.user("eve", "x").await;
    assert_eq!(r.status_code, 400);
    assert!(!r.status());
    assert_eq!(r.body["result"]["error"]["code"], 904);
    assert_eq!(
        r.message(),
        Some("ERR904: User <eve@realm1> does not exist.")
    );
    assert_eq!(r.authentication(), None);
    h.close().await;
}

async fn scenario_31_maxfail_locks_the_token(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.set("HOTP1", &[TokenSetting::Maxfail(3)]).await;
    for otp in ["111111", "222222", "333333"] {
        let r = h.user("alice", &format!("pin{otp}")).await;
        assert_answer(&r, "REJECT", "wrong otp value");
    }
    let t = h.token("HOTP1").await;
    assert_eq!(t.failcount, 3);
    assert_eq!(
        t.tokeninfo("failcounter_exceeded"),
        Some(format_short(t0()))
    );
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "REJECT", "Failcounter exceeded");
    let t = h.token("HOTP1").await;
    assert_eq!((t.failcount, t.otp_counter), (3, 0));
    h.close().await;
}

async fn scenario_32_failcounter_clear_timeout(b: Backend) {
    let locked = |h: &Harness| {
        let stamp = format_short(t0() - TimeDelta::minutes(10));
        let auth = h.auth.clone();
        async move {
            auth.token_set(
                "HOTP1",
                &[
                    TokenSetting::Maxfail(5),
                    TokenSetting::Failcount(5),
                    TokenSetting::TokenInfo("failcounter_exceeded".into(), stamp),
                ],
                otpgate::auth::Origin::Cli,
            )
            .await
            .unwrap();
        }
    };
    let h = Harness::new(b, "failcounter_clear_timeout = 30").await;
    locked(&h).await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "REJECT", "Failcounter exceeded");
    h.close().await;

    let h = Harness::new(b, "failcounter_clear_timeout = 5").await;
    locked(&h).await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.token("HOTP1").await.failcount, 0);
    h.close().await;
}

async fn scenario_34_success_resets_failcount(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.set("HOTP1", &[TokenSetting::Failcount(2)]).await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.token("HOTP1").await.failcount, 0);
    h.close().await;
}

/// 16 requests with the same valid OTP at once: exactly one is accepted.
async fn concurrent_same_otp_is_accepted_once(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    // Room for 15 failures, so every loser sees the replay rather than a lock.
    h.set("HOTP1", &[TokenSetting::Maxfail(100)]).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let auth = h.auth.clone();
        tasks.push(tokio::spawn(async move {
            auth.validate_check(Request::user("alice", "pin755224"))
                .await
                .response
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.authentication() {
            Some("ACCEPT") => accepted += 1,
            Some("REJECT") => assert!(
                r.message().unwrap().starts_with("wrong otp value"),
                "{}",
                r.body
            ),
            _ => panic!("{}", r.body),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(h.token("HOTP1").await.otp_counter, 1);
    h.close().await;
}

/// A user with several tokens pays one argon2 verification for a successful login.
async fn one_pin_verification_per_successful_login(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    for i in 2..6 {
        h.enroll_hotp(
            &format!("HOTP{i}"),
            "alice",
            &format!("pin{i}"),
            &format!("31323334353637383930313233343536373839{:02}", 30 + i),
        )
        .await;
    }
    let before = h.auth.pins().verification_count();
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    assert_eq!(h.auth.pins().verification_count() - before, 1);
    h.close().await;
}

/// Every request writes one audit row with a decision trace, and never the password.
async fn audit_row_with_trace_and_no_secret(b: Backend) {
    let h = Harness::new(b, DEFAULT).await;
    h.user("alice", "pin755224").await;
    h.user("alice", "wrongpin999999").await;
    h.auth.audit().flush().await;
    let rows = h
        .auth
        .store()
        .list_audit(&otpgate::store::audit::AuditFilter {
            event: Some("validate_check".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let ok = &rows[1];
    assert!(ok.success);
    assert_eq!(
        (ok.user.as_str(), ok.realm.as_str(), ok.serial.as_str()),
        ("alice", "realm1", "HOTP1")
    );
    assert!(
        ok.trace.contains("PIN and OTP right (counter 0)"),
        "{}",
        ok.trace
    );
    for r in &rows {
        let all = serde_json::to_string(r).unwrap();
        for secret in ["pin755224", "755224", "wrongpin999999"] {
            assert!(!all.contains(secret), "audit row leaks {secret}: {all}");
        }
    }
    h.close().await;
}

on_both_backends!(
    scenario_01_correct_pin_and_otp_accepts,
    scenario_02_same_otp_again_is_previous_otp,
    scenario_03_otp_at_the_end_of_the_window_accepts,
    scenario_04_otp_outside_the_window_rejects,
    scenario_05_wrong_pin_rejects_and_counts,
    scenario_07_no_token_matches_rejects_all,
    scenario_10_pin_alone_without_policy_rejects,
    scenario_14_disabled_token_rejects_untouched,
    scenario_15_outside_validity_period_rejects,
    scenario_16_auth_counter_max_on_spass,
    scenario_17_no_auth_counter_leaves_count_auth,
    scenario_18_totp_current_step_then_replay,
    scenario_21_serial_requests,
    scenario_22_unknown_user_is_error_904,
    scenario_31_maxfail_locks_the_token,
    scenario_32_failcounter_clear_timeout,
    scenario_34_success_resets_failcount,
    concurrent_same_otp_is_accepted_once,
    one_pin_verification_per_successful_login,
    audit_row_with_trace_and_no_secret,
);
