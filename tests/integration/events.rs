//! Spec §5 scenarios 47–80 (event framework, conditions, handler actions) and the "further
//! checkable facts", through the real pipeline with real peers: an SMTP sink, an HTTP
//! receiver, real scripts.

use std::time::Duration;

use chrono::TimeDelta;
use otpgate::admin::manage::TokenSetting;
use otpgate::auth::{Authentication, Request, Response};
use otpgate::clock::format_long;
use serde_json::{Map, json};

use crate::harness::{Backend, Harness, RFC4226, assert_answer};
use crate::on_both_backends;
use crate::sinks::{HttpSink, SmtpSink};

const SQLITE: Backend = Backend::Sqlite;
const WAIT: Duration = Duration::from_secs(3);

fn reject(message: &str) -> Response {
    let mut d = Map::new();
    d.insert("message".into(), json!(message));
    Response::decided(false, Authentication::Reject, d)
}

/// Which definitions hold for a request and an assumed POST answer.
async fn holds(h: &Harness, req: Request, answer: Option<Response>) -> Vec<(String, bool)> {
    h.auth
        .event_test("validate_check", &req, answer.as_ref())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.holds))
        .collect()
}

fn named(results: &[(String, bool)], name: &str) -> bool {
    results
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, h)| *h)
        .unwrap_or_else(|| panic!("no definition {name}: {results:?}"))
}

/// A Logging definition with one condition, for condition tests.
fn probe(name: &str, position: &str, condition: &str, value: &str) -> String {
    let value = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[[event]]\nname = \"{name}\"\nevent = \"validate_check\"\nhandler = \"Logging\"\naction = \"logging\"\n\
         position = \"{position}\"\nconditions = {{ {condition} = \"{value}\" }}\n"
    )
}

fn mail_handler(smtp: &SmtpSink, active: bool) -> String {
    format!(
        "{}[[event]]\nname = \"notify-sec\"\nactive = {active}\nevent = [\"validate_check\"]\nhandler = \"UserNotification\"\n\
         action = \"sendmail\"\nconditions = {{ result_value = \"False\" }}\n\
         options = {{ emailconfig = \"mail1\", To = \"email\", \"To email\" = \"sec@example.com\" }}\n",
        smtp.config("mail1")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_47_mail_on_failure_only() {
    let smtp = SmtpSink::start().await;
    let h = Harness::with_config(SQLITE, "", &mail_handler(&smtp, true)).await;
    let r = h.user("alice", "pin000000").await;
    assert_answer(&r, "REJECT", "wrong otp value");
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["sec@example.com"]);
    assert_eq!(mails[0].from, "otpgate@example.com");
    assert_eq!(
        mails[0].subject(),
        Some("An action was performed on your token.")
    );
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    // positive control: the next failure mails; handlers finish before the answer, so a mail
    // of the success would have arrived before it
    let r = h.user("alice", "pin000000").await;
    assert_answer(&r, "REJECT", "wrong otp value");
    assert_eq!(smtp.wait_for(2, WAIT).await.len(), 2);
    assert_eq!(smtp.mails().len(), 2, "a mail was sent on success");
    let rows = h
        .audit("POST-EVENT validate_check>>UserNotification:sendmail")
        .await;
    assert_eq!(rows.len(), 2);
    assert!(rows[0].success);
    assert_eq!(rows[0].info, "notify-sec (Sent to sec@example.com)");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_48_inactive_definition_never_runs() {
    let smtp = SmtpSink::start().await;
    // positive control: an active copy of the definition with another recipient
    let control = mail_handler(&smtp, true)
        .replace("notify-sec", "control")
        .replace("sec@example.com", "control@example.com");
    let control = &control[control.find("[[event]]").unwrap_or(0)..];
    let h = Harness::with_config(
        SQLITE,
        "",
        &format!("{}{control}", mail_handler(&smtp, false)),
    )
    .await;
    h.user("alice", "pin000000").await;
    h.user("alice", "pin755224").await;
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(
        mails[0].to,
        vec!["control@example.com"],
        "the inactive one sent"
    );
    h.close().await;
}

const COUNT_ON: &str = "[[event]]\nname = \"count\"\nevent = \"token_init, validate_check\"\nhandler = \"Counter\"\naction = \"increase_counter\"\noptions = { counter_name = \"hits\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_50_event_lists_are_split() {
    let h = Harness::with_config(SQLITE, "", COUNT_ON).await;
    // HOTP1's enrollment was a token_init: 1
    assert_eq!(h.auth.store().counter_value("hits").await.unwrap(), 1);
    h.user("alice", "pin755224").await;
    assert_eq!(h.auth.store().counter_value("hits").await.unwrap(), 2);
    h.close().await;
}

/// Increments that arrive together land in one commit, summed per counter and node: none is
/// lost or counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_counter_increments_add_up() {
    let h = Harness::with_config(SQLITE, "", "").await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = h.auth.store().clone();
        tasks.push(tokio::spawn(async move {
            let (name, delta) = if i % 3 == 0 { ("b", 2) } else { ("a", 1) };
            let node = if i % 5 == 0 { "n2" } else { "n1" };
            store.counter_add(name, node, delta).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(h.auth.store().counter_value("a").await.unwrap(), 200);
    assert_eq!(h.auth.store().counter_value("b").await.unwrap(), 200);
    h.close().await;
}

/// Definitions that share a condition evaluate it once per phase, but an action that changes
/// what it reads makes the next definition evaluate it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_condition_is_evaluated_again_after_an_action() {
    let events = "[[event]]\nname = \"before\"\nevent = \"validate_check\"\nhandler = \"Counter\"\naction = \"increase_counter\"\nconditions = { token_locked = \"False\" }\noptions = { counter_name = \"before\" }\n\
         [[event]]\nname = \"lock\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set failcounter\"\nconditions = { token_locked = \"False\" }\noptions = { \"fail counter\" = \"10\" }\n\
         [[event]]\nname = \"after\"\nevent = \"validate_check\"\nhandler = \"Counter\"\naction = \"increase_counter\"\nconditions = { token_locked = \"False\" }\noptions = { counter_name = \"after\" }\n";
    let h = Harness::with_config(SQLITE, "", events).await;
    h.user("alice", "pin755224").await;
    assert_eq!(h.auth.store().counter_value("before").await.unwrap(), 1);
    assert!(
        h.token("HOTP1").await.is_locked(),
        "the Token action locked it"
    );
    assert_eq!(
        h.auth.store().counter_value("after").await.unwrap(),
        0,
        "the definition after the lock saw the token unlocked"
    );
    h.close().await;
}

/// The request's decision trace says which definitions did not hold: by name up to four, past
/// four counted per condition, so the audit row does not grow with the event configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_names_a_few_definitions_that_did_not_hold_and_counts_many() {
    let mut events = String::new();
    for name in ["pre-a", "pre-b"] {
        events.push_str(&probe(name, "pre", "realm", "elsewhere"));
    }
    for i in 1..=5 {
        events.push_str(&probe(&format!("post-{i}"), "post", "realm", "elsewhere"));
    }
    events.push_str(&probe("post-failed", "post", "result_value", "False"));
    let h = Harness::with_config(SQLITE, "", &events).await;
    assert_answer(
        &h.user("alice", "pin755224").await,
        "ACCEPT",
        "matching 1 tokens",
    );
    let rows = h.audit("validate_check").await;
    let trace = &rows[0].trace;
    assert!(
        trace.contains("PRE-EVENT validate_check: conditions not met: realm: pre-a, pre-b"),
        "{trace}"
    );
    assert!(
        trace.contains(
            "POST-EVENT validate_check: conditions not met by 6 definitions: realm 5, result_value 1"
        ),
        "{trace}"
    );
    assert!(!trace.contains("post-1"), "{trace}");
    h.close().await;
}

/// Increments nobody waited for are committed when the store closes, not lost with the
/// process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_counter_increments_are_written_at_close() {
    use otpgate::store::{Database, Store};
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::harness::store_settings(Database::Sqlite(dir.path().join("otpgate.db")));
    let store = Store::open(&settings).await.unwrap();
    for _ in 0..3 {
        store.counter_add_queued("hits", "n1", 1);
    }
    store.close().await;
    drop(store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = Store::open(&settings).await.unwrap();
    assert_eq!(store.counter_value("hits").await.unwrap(), 3);
    store.close().await;
}

/// A definition sees the counter an earlier definition of the same phase changed, even when a
/// definition before both had already read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_definition_sees_an_earlier_counter_change() {
    let events = "[[event]]\nname = \"read\"\nevent = \"validate_check\"\nhandler = \"Logging\"\naction = \"logging\"\nconditions = { counter = \"hits<100\" }\n\
         [[event]]\nname = \"count\"\nevent = \"validate_check\"\nhandler = \"Counter\"\naction = \"increase_counter\"\noptions = { counter_name = \"hits\" }\n\
         [[event]]\nname = \"seen\"\nevent = \"validate_check\"\nhandler = \"Counter\"\naction = \"increase_counter\"\nconditions = { counter = \"hits==1\" }\noptions = { counter_name = \"seen\" }\n";
    let h = Harness::with_config(SQLITE, "", events).await;
    h.user("alice", "pin755224").await;
    assert_eq!(h.auth.store().counter_value("hits").await.unwrap(), 1);
    assert_eq!(h.auth.store().counter_value("seen").await.unwrap(), 1);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_51_enroll_an_email_token_on_first_login() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[[event]]\nname = \"first-login\"\nevent = \"validate_check\"\nposition = \"pre\"\nhandler = \"Token\"\naction = \"enroll\"\n\
         conditions = {{ user_token_number = \"0\" }}\n\
         options = {{ tokentype = \"email\", user = \"true\", dynamic_email = \"1\", additional_params = \"{{'pin':'1234'}}\" }}\n",
        smtp.config("mail1")
    );
    let h = Harness::with_config(SQLITE, "", &extra).await;
    let r = h.user("carol", "1234").await;
    assert_answer(&r, "CHALLENGE", "Enter the OTP from the Email");
    assert!(r.serial().unwrap().starts_with("PIEM"), "{}", r.body);
    let carol = h
        .auth
        .store()
        .tokens()
        .of_user("realm1", "carol")
        .await
        .unwrap();
    assert_eq!(carol.len(), 1);
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["carol@example.com"]);
    let otp = mails[0].body().trim().to_owned();
    assert_eq!(otp.len(), 6, "{otp:?}");
    // a second request does not enroll another token
    let r2 = h.user("carol", "1234").await;
    assert_eq!(r2.authentication(), Some("CHALLENGE"));
    assert_eq!(
        h.auth
            .store()
            .tokens()
            .of_user("realm1", "carol")
            .await
            .unwrap()
            .len(),
        1
    );
    // answer the first challenge with the mailed OTP
    let txid = r.transaction_id().unwrap().to_owned();
    let r = h
        .check(Request::user("carol", &otp).with_transaction(&txid))
        .await;
    assert_answer(&r, "ACCEPT", "Found matching challenge");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_53_post_handlers_skip_error_answers() {
    let h = Harness::with_config(SQLITE, "", COUNT_ON).await;
    let before = h.auth.store().counter_value("hits").await.unwrap();
    let r = h.user("eve", "x").await;
    assert_eq!(r.status_code, 400);
    assert_eq!(h.auth.store().counter_value("hits").await.unwrap(), before);
    h.close().await;
}

fn script_event(raise_error: bool) -> String {
    format!(
        "[handlers]\nscript_directory = \"scripts\"\n\
         [[event]]\nname = \"hook\"\nevent = \"validate_check\"\nhandler = \"Script\"\naction = \"fail.sh\"\n\
         options = {{ background = \"wait\", raise_error = \"{raise_error}\", serial = \"1\", user = \"1\", realm = \"1\", logged_in_user = \"1\", logged_in_role = \"1\" }}\n"
    )
}

const FAIL_SCRIPT: &str = "#!/bin/sh\necho \"$@\" >> {dir}/argv.txt\nexit 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_54_script_raise_error_aborts() {
    let h = Harness::with_files(
        SQLITE,
        "",
        &script_event(true),
        &[("scripts/fail.sh", FAIL_SCRIPT, true)],
    )
    .await;
    let r = h.user("alice", "pin755224").await;
    assert_ne!(r.authentication(), Some("ACCEPT"), "{}", r.body);
    assert!(!r.status(), "{}", r.body);
    let rows = h.audit("POST-EVENT validate_check>>Script:fail.sh").await;
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].success);
    let argv = std::fs::read_to_string(h.dir().join("argv.txt")).unwrap();
    assert_eq!(
        argv.trim(),
        "--serial HOTP1 --user alice --realm realm1 --logged_in_user none@none --logged_in_role none"
    );
    h.close().await;

    let h = Harness::with_files(
        SQLITE,
        "",
        &script_event(false),
        &[("scripts/fail.sh", FAIL_SCRIPT, true)],
    )
    .await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_55_disable_after_failures_without_chaining() {
    let extra = "[[event]]\nname = \"disable\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"disable\"\n\
                 conditions = { result_value = \"False\", failcounter = \">2\" }\n\
                 [[event]]\nname = \"on-disable\"\nevent = \"token_disable\"\nhandler = \"Counter\"\naction = \"increase_counter\"\noptions = { counter_name = \"disabled\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    for _ in 0..3 {
        h.user("alice", "pin000000").await;
    }
    assert!(!h.token("HOTP1").await.active);
    assert_eq!(h.auth.store().counter_value("disabled").await.unwrap(), 0);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_57_a_failing_handler_does_not_break_the_request() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[[event]]\nname = \"broken\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\naction = \"sendmail\"\n\
         abort_on_error = false\noptions = {{ emailconfig = \"mail1\", body = \"hello {{unknown}}\" }}\n",
        smtp.config("mail1")
    );
    let h = Harness::with_config(SQLITE, "", &extra).await;
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    let rows = h
        .audit("POST-EVENT validate_check>>UserNotification:sendmail")
        .await;
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].success);
    assert_eq!(rows[0].info, "broken (UnknownTag)");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_60_61_69_counter_conditions() {
    let mut extra = String::new();
    for (name, cond, value) in [
        ("fc_lt9", "failcounter", "<9"),
        ("fc_eq8", "failcounter", "=8"),
        ("fc_gt9", "failcounter", ">9"),
        ("fc_q7", "failcounter", "'>'7"),
        ("ca_gt99", "count_auth", ">99"),
        ("cas_gt45", "count_auth_success", ">45"),
        ("caf_gt45", "count_auth_fail", ">45"),
        ("caf_lt45", "count_auth_fail", "<45"),
        ("oc_0", "otp_counter", "0"),
        ("oc_1", "otp_counter", "1"),
        ("oc_gt100", "otp_counter", ">100"),
    ] {
        extra.push_str(&probe(name, "post", cond, value));
    }
    let h = Harness::with_config(SQLITE, "", &extra).await;
    h.set(
        "HOTP1",
        &[
            TokenSetting::Failcount(8),
            TokenSetting::TokenInfo("count_auth".into(), "100".into()),
            TokenSetting::TokenInfo("count_auth_success".into(), "50".into()),
        ],
    )
    .await;
    let r = holds(&h, Request::serial("HOTP1", ""), Some(reject("x"))).await;
    assert!(named(&r, "fc_lt9") && named(&r, "fc_eq8") && named(&r, "fc_q7"));
    assert!(!named(&r, "fc_gt9"));
    assert!(named(&r, "ca_gt99") && named(&r, "cas_gt45") && named(&r, "caf_gt45"));
    assert!(!named(&r, "caf_lt45"));
    assert!(named(&r, "oc_0") && !named(&r, "oc_1") && !named(&r, "oc_gt100"));
    h.auth
        .store()
        .tokens()
        .set_counter(h.token("HOTP1").await.id, 101, None)
        .await
        .unwrap();
    let r = holds(&h, Request::serial("HOTP1", ""), Some(reject("x"))).await;
    assert!(named(&r, "oc_gt100"));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_63_71_response_conditions() {
    let mut extra = String::new();
    for (name, cond, value) in [
        ("special", "detail_message", "special"),
        ("anchored", "detail_message", "^special"),
        ("rejected", "result_authentication", "REJECT"),
        ("accepted", "result_authentication", "ACCEPT"),
        ("status_false", "result_status", "False"),
        ("admin", "logged_in_user", "admin"),
        ("user", "logged_in_user", "user"),
    ] {
        extra.push_str(&probe(name, "post", cond, value));
    }
    extra.push_str(&probe("pre_value_false", "pre", "result_value", "False"));
    let h = Harness::with_config(SQLITE, "", &extra).await;
    let r = holds(
        &h,
        Request::user("alice", ""),
        Some(reject("something very special happened")),
    )
    .await;
    assert!(named(&r, "special") && !named(&r, "anchored"));
    // a response without message
    let bare = Response::decided(false, Authentication::Reject, Map::new());
    let r = holds(&h, Request::user("alice", ""), Some(bare)).await;
    assert!(!named(&r, "special"));
    // scenario 71
    let answer = Response {
        status_code: 200,
        body: json!({"result": {"value": false, "authentication": "REJECT", "status": false}}),
    };
    let r = holds(&h, Request::user("alice", ""), Some(answer)).await;
    assert!(named(&r, "rejected") && !named(&r, "accepted"));
    assert!(named(&r, "status_false"));
    assert!(!named(&r, "admin") && named(&r, "user"));
    // QUIRK kept: in PRE there is no answer, so result_value False holds
    assert!(named(&r, "pre_value_false"));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_66_67_68_70_user_and_token_conditions() {
    let mut extra = String::new();
    for (name, cond, value) in [
        ("realm1", "realm", "realm1"),
        ("realm3", "realm", "realm3"),
        ("lists", "realm", "realm3, realm1"),
        ("resolver1", "resolver", "resolver1"),
        ("given", "user_info", "givenname == Alice"),
        ("nonexistent", "user_info", "nonexistent == v"),
        ("locked", "token_locked", "True"),
        ("unlocked", "token_locked", "False"),
        ("la_1h", "last_auth", "1h"),
        ("la_100y", "last_auth", "100y"),
        ("no_tokens", "user_token_number", "<1"),
    ] {
        extra.push_str(&probe(name, "post", cond, value));
    }
    let h = Harness::with_config(SQLITE, "", &extra).await;
    let r = holds(&h, Request::user("alice", ""), Some(reject("x"))).await;
    assert!(named(&r, "realm1") && !named(&r, "realm3") && named(&r, "lists"));
    assert!(named(&r, "resolver1"));
    assert!(named(&r, "given") && !named(&r, "nonexistent"));
    // 68: a token without last_auth
    assert!(!named(&r, "la_1h") && !named(&r, "la_100y"));
    h.set(
        "HOTP1",
        &[
            TokenSetting::Maxfail(1),
            TokenSetting::Failcount(1),
            TokenSetting::TokenInfo("last_auth".into(), "2016-10-10".into()),
        ],
    )
    .await;
    let r = holds(&h, Request::serial("HOTP1", ""), Some(reject("x"))).await;
    assert!(named(&r, "locked") && !named(&r, "unlocked"));
    assert!(named(&r, "la_1h") && !named(&r, "la_100y"));
    // 70
    let r = holds(&h, Request::user("carol", ""), Some(reject("x"))).await;
    assert!(named(&r, "no_tokens"));
    h.enroll_hotp("C1", "carol", "p", crate::harness::RFC4226_KEY_HEX)
        .await;
    let r = holds(&h, Request::user("carol", ""), Some(reject("x"))).await;
    assert!(!named(&r, "no_tokens"));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_unknown_can_be_switched_off() {
    let extra = "[[event]]\nname = \"skip\"\nevent = \"validate_check\"\nhandler = \"Logging\"\naction = \"logging\"\nconditions = { tokentype = \"spass\" }\n\
                 [[event]]\nname = \"strict\"\nevent = \"validate_check\"\nhandler = \"Logging\"\naction = \"logging\"\nskip_unknown = false\nconditions = { tokentype = \"spass\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    h.enroll_hotp("HOTP2", "alice", "x", crate::harness::RFC4226_KEY_HEX)
        .await;
    // two tokens, wrong PIN: no single token is determined
    let r = holds(
        &h,
        Request::user("alice", ""),
        Some(reject("wrong otp pin")),
    )
    .await;
    assert!(
        named(&r, "skip"),
        "upstream rule: unknown counts as fulfilled (#3574)"
    );
    assert!(!named(&r, "strict"));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_73_76_set_tokeninfo_and_validity() {
    let extra = "[[event]]\nname = \"seen\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set tokeninfo\"\noptions = { key = \"seen\", value = \"at {now}\" }\n\
                 [[event]]\nname = \"earlier\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set tokeninfo\"\noptions = { key = \"earlier\", value = \"it was {current_time}-12h...\" }\n\
                 [[event]]\nname = \"validity\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set validity\"\nordering = 5\noptions = { \"valid from\" = \"+10m\", \"valid till\" = \"+10d\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    let now = crate::harness::t0();
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    let t = h.token("HOTP1").await;
    assert_eq!(
        t.info.get("seen").unwrap(),
        &format!("at {}", format_long(now))
    );
    assert_eq!(
        t.info.get("earlier").unwrap(),
        &format!("it was {}...", format_long(now - TimeDelta::hours(12)))
    );
    assert_eq!(
        t.validity_start.as_deref(),
        Some(otpgate::clock::format_short(now + TimeDelta::minutes(10)).as_str())
    );
    assert_eq!(
        t.validity_end.as_deref(),
        Some(otpgate::clock::format_short(now + TimeDelta::days(10)).as_str())
    );
    let r = h.user("alice", &format!("pin{}", RFC4226[1])).await;
    assert_answer(&r, "REJECT", "Outside validity period");
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_77_random_pin_and_response_mangler() {
    let extra = "[[event]]\nname = \"pin\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set random pin\"\nordering = 1\noptions = { length = 8 }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    let r = h.check(Request::serial("HOTP1", "pin755224")).await;
    let pin = r.body["detail"]["pin"].as_str().unwrap().to_owned();
    assert_eq!(pin.len(), 8);
    let r = h.user("alice", &format!("{pin}{}", RFC4226[1])).await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    h.close().await;

    let extra = format!(
        "{extra}[[event]]\nname = \"hide\"\nevent = \"validate_check\"\nhandler = \"ResponseMangler\"\naction = \"delete\"\nordering = 2\noptions = {{ \"JSON pointer\" = \"/detail/pin\" }}\n"
    );
    let h = Harness::with_config(SQLITE, "", &extra).await;
    let r = h.check(Request::serial("HOTP1", "pin755224")).await;
    assert!(r.body["detail"].get("pin").is_none(), "{}", r.body);
    h.close().await;
}

async fn scenario_79_counters_never_go_negative_unless_allowed(b: Backend) {
    let mk = |name: &str, action: &str, extra_opt: &str| {
        format!(
            "[[event]]\nname = \"{name}\"\nevent = \"token_{name}\"\nhandler = \"Counter\"\naction = \"{action}\"\noptions = {{ counter_name = \"c\"{extra_opt} }}\n"
        )
    };
    // drive each action through its own admin event
    let extra = [
        mk("enable", "increase_counter", ""),
        mk("disable", "decrease_counter", ""),
        mk(
            "revoke",
            "decrease_counter",
            ", allow_negative_values = \"True\"",
        ),
        mk("reset", "reset_counter", ""),
    ]
    .concat();
    let h = Harness::with_config(b, "", &extra).await;
    let a = &h.auth;
    let value = || async { h.auth.store().counter_value("c").await.unwrap() };
    use otpgate::auth::Origin;
    a.token_enable("HOTP1", true, Origin::Cli).await.unwrap();
    a.token_enable("HOTP1", true, Origin::Cli).await.unwrap();
    assert_eq!(value().await, 2);
    for _ in 0..3 {
        a.token_enable("HOTP1", false, Origin::Cli).await.unwrap();
    }
    assert_eq!(value().await, 0);
    a.token_revoke("HOTP1", Origin::Cli).await.unwrap();
    let rows = h
        .audit("POST-EVENT token_revoke>>Counter:decrease_counter")
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(value().await, -1);
    a.token_reset("HOTP1", Origin::Cli).await.unwrap();
    assert_eq!(value().await, 0);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_mangler_types_and_pointer_depth() {
    let extra = "[[event]]\nname = \"notint\"\nevent = \"validate_check\"\nhandler = \"ResponseMangler\"\naction = \"set\"\noptions = { \"JSON pointer\" = \"/detail/something\", type = \"integer\", value = \"notint\" }\n\
                 [[event]]\nname = \"int\"\nevent = \"validate_check\"\nhandler = \"ResponseMangler\"\naction = \"set\"\noptions = { \"JSON pointer\" = \"/detail/n\", type = \"integer\", value = \"42\" }\n\
                 [[event]]\nname = \"deep\"\nevent = \"validate_check\"\nhandler = \"ResponseMangler\"\naction = \"set\"\noptions = { \"JSON pointer\" = \"/a/b/c/d\", value = \"x\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    let r = h.user("alice", "pin755224").await;
    assert_eq!(r.body["detail"]["something"], json!("notint"));
    assert_eq!(r.body["detail"]["n"], json!(42));
    assert!(
        r.body.get("a").is_none(),
        "a 4-component pointer is ignored"
    );
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savefile_stays_in_the_spool_directory() {
    let extra = "[handlers]\nspool_directory = \"spool\"\n\
                 [[event]]\nname = \"save\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\naction = \"savefile\"\noptions = { filename = \"n-{random}.txt\", body = \"{username}@{userrealm}\" }\n\
                 [[event]]\nname = \"escape\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\naction = \"savefile\"\noptions = { filename = \"../x\", body = \"x\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    h.user("alice", "pin755224").await;
    let files: Vec<_> = std::fs::read_dir(h.dir().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let random = files[0]
        .strip_prefix("n-")
        .and_then(|f| f.strip_suffix(".txt"))
        .unwrap();
    assert_eq!(random.len(), 16);
    assert!(random.chars().all(|c| c.is_ascii_alphanumeric()));
    let text = std::fs::read_to_string(h.dir().join("spool").join(&files[0])).unwrap();
    assert_eq!(text, "alice@realm1");
    assert!(!h.dir().join("x").exists());
    let rows = h
        .audit("POST-EVENT validate_check>>UserNotification:savefile")
        .await;
    assert!(
        rows.iter()
            .any(|r| !r.success && r.info == "escape (PathError)")
    );
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_tags_and_webhook_body() {
    let smtp = SmtpSink::start().await;
    let web = HttpSink::start().await;
    let extra = format!(
        "{}[[event]]\nname = \"tags\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\naction = \"sendmail\"\n\
         options = {{ emailconfig = \"mail1\", body = \"u={{username}} r={{userrealm}} realm=[{{realm}}] admin=[{{admin}}] action={{action}} serial={{serial}}\" }}\n\
         [[event]]\nname = \"hook\"\nevent = \"validate_check\"\nhandler = \"WebHook\"\naction = \"post_webhook\"\n\
         options = {{ URL = \"{}\", content_type = \"application/json\", data = '{{\"u\":\"{{username}}\"}}', replace = \"True\" }}\n",
        smtp.config("mail1"),
        web.url("/hook")
    );
    let h = Harness::with_config(SQLITE, "", &extra).await;
    h.user("alice", "pin755224").await;
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["alice@example.com"]);
    assert_eq!(
        mails[0].body().trim(),
        "u=alice r=realm1 realm=[] admin=[] action=/validate/check serial=HOTP1"
    );
    let hooks = web.wait_for(1, WAIT).await;
    assert_eq!(hooks[0].path, "/hook");
    assert_eq!(hooks[0].content_type, "application/json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&hooks[0].body).unwrap(),
        json!({"u": "alice"})
    );
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_actions_on_all_user_tokens_and_by_type() {
    let extra = "[[event]]\nname = \"all\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set tokeninfo\"\n\
                 options = { tokens = \"user\", key = \"touched\", value = \"yes\" }\n\
                 [[event]]\nname = \"spass-only\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"disable\"\n\
                 options = { tokens = \"type:spass\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    h.enroll_hotp("HOTP2", "alice", "x", crate::harness::RFC4226_KEY_HEX)
        .await;
    h.enroll(otpgate::admin::manage::EnrollSpec {
        kind: Some(otpgate::token::TokenType::Spass),
        serial: Some("SP1".into()),
        user: Some("alice".into()),
        pin: Some(otpgate::secret::Secret::new("sp".into())),
        ..Default::default()
    })
    .await;
    h.user("alice", "nomatch").await;
    for s in ["HOTP1", "HOTP2", "SP1"] {
        assert_eq!(
            h.token(s).await.info.get("touched").map(String::as_str),
            Some("yes"),
            "{s}"
        );
    }
    assert!(!h.token("SP1").await.active);
    assert!(h.token("HOTP1").await.active && h.token("HOTP2").await.active);
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_locked_and_unlocked_events() {
    let extra = "[[event]]\nname = \"locked\"\nevent = \"token_locked\"\nhandler = \"Counter\"\naction = \"increase_counter\"\noptions = { counter_name = \"locked\" }\n\
                 [[event]]\nname = \"unlocked\"\nevent = \"token_unlocked\"\nhandler = \"Token\"\naction = \"set tokeninfo\"\noptions = { key = \"unlocked\", value = \"{now}\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    h.set("HOTP1", &[TokenSetting::Maxfail(2)]).await;
    h.user("alice", "pin000000").await;
    assert_eq!(h.auth.store().counter_value("locked").await.unwrap(), 0);
    h.user("alice", "pin000000").await;
    assert_eq!(h.auth.store().counter_value("locked").await.unwrap(), 1);
    // further failures do not fire it again
    h.user("alice", "pin000000").await;
    assert_eq!(h.auth.store().counter_value("locked").await.unwrap(), 1);
    h.auth
        .token_reset("HOTP1", otpgate::auth::Origin::Cli)
        .await
        .unwrap();
    assert!(h.token("HOTP1").await.info.contains_key("unlocked"));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_mangler_rewrites_before_the_check() {
    let extra = "[[event]]\nname = \"strip-domain\"\nevent = \"validate_check\"\nposition = \"pre\"\nhandler = \"RequestMangler\"\naction = \"set\"\n\
                 options = { parameter = \"user\", value = \"{0}\", match_parameter = \"user\", match_pattern = \"(.*)@corp\\\\.example\", reset_user = \"True\" }\n";
    let h = Harness::with_config(SQLITE, "", extra).await;
    let r = h.user("alice@corp.example", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    h.close().await;
}

#[test]
fn definitions_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let check = |events: &str| {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("[database]\nurl = \"sqlite:x.db\"\n[[resolver]]\nname = \"r\"\ntype = \"file\"\npath = \"users.toml\"\n[[realm]]\nname = \"a\"\nresolvers = [\"r\"]\n{events}")).unwrap();
        otpgate::config::load(&path).err().map(|e| e.to_string())
    };
    let def = |body: &str| format!("[[event]]\nname = \"d\"\nevent = \"validate_check\"\n{body}\n");
    for (body, want) in [
        (
            "handler = \"Nope\"\naction = \"x\"",
            "unknown handler module",
        ),
        (
            "handler = \"Token\"\naction = \"explode\"",
            "unknown Token action",
        ),
        (
            "handler = \"Token\"\naction = \"disable\"\nconditions = { blabla = \"1\" }",
            "unknown condition",
        ),
        (
            "handler = \"Token\"\naction = \"disable\"\noptions = { colour = \"red\" }",
            "unknown option",
        ),
        (
            "handler = \"Token\"\naction = \"set failcounter\"\noptions = { \"fail counter\" = \"many\" }",
            "not an integer",
        ),
        (
            "handler = \"Federation\"\naction = \"forward\"\nposition = \"pre\"\noptions = { privacyIDEA = \"x\" }",
            "cannot run in position pre",
        ),
        (
            "handler = \"Token\"\naction = \"set random pin\"\nposition = \"pre\"",
            "only in position post",
        ),
        (
            "handler = \"Token\"\naction = \"disable\"\nconditions = { serial = \"(\" }",
            "bad regular expression",
        ),
        (
            "handler = \"Token\"\naction = \"disable\"\nconditions = { client_ip = \"10.0.0.0/99\" }",
            "neither an IP address",
        ),
        (
            "handler = \"Token\"\naction = \"disable\"\nconditions = { last_auth = \"soon\" }",
            "not a duration",
        ),
        (
            "handler = \"Script\"\naction = \"../bin/sh\"",
            "not a file name",
        ),
        (
            "handler = \"UserNotification\"\naction = \"sendmail\"\noptions = { emailconfig = \"none\" }",
            "no [[smtp]] server",
        ),
    ] {
        let err = check(&def(body)).unwrap_or_else(|| panic!("accepted: {body}"));
        assert!(err.contains("event \"d\""), "{err}");
        assert!(err.contains(want), "{body}: {err}");
    }
    assert_eq!(
        check(&def("handler = \"Token\"\naction = \"Disable\"")),
        None
    );
}

on_both_backends!(scenario_79_counters_never_go_negative_unless_allowed);

/// `otpgate event test` says why a condition does not hold (a phase skips the reasons, it
/// only needs whether the condition holds), and a login still runs past the definition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_test_says_why_a_condition_does_not_hold() {
    let h =
        Harness::with_config(SQLITE, "", &probe("totp-only", "post", "tokentype", "totp")).await;
    let reports = h
        .auth
        .event_test(
            "validate_check",
            &Request::serial("HOTP1", ""),
            Some(&reject("x")),
        )
        .await
        .unwrap();
    let report = reports.iter().find(|r| r.name == "totp-only").unwrap();
    assert!(!report.holds);
    assert_eq!(
        report.checks,
        [(
            "tokentype".to_owned(),
            "fails: token type is hotp".to_owned()
        )]
    );
    let r = h.user("alice", "pin755224").await;
    assert_answer(&r, "ACCEPT", "matching 1 tokens");
    h.close().await;
}
