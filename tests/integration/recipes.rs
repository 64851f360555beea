//! The recipes of docs/events.md, end to end: the running daemon, logins over RADIUS (pyrad),
//! mail to a real SMTP sink; and Federation between two running daemons.

use std::time::Duration;

use serde_json::json;

use crate::daemon::{Daemon, SECRET, Setup};
use crate::harness::RFC4226;
use crate::sinks::SmtpSink;

const WAIT: Duration = Duration::from_secs(5);

fn login(d: &Daemon, user: &str, password: &str) -> serde_json::Value {
    d.pyrad(json!({"user": user, "password": password}))
}

/// Recipe 1: tell the user by mail when the PIN was right but the OTP wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_notify_when_pin_right_and_otp_wrong() {
    let smtp = SmtpSink::start().await;
    let d = Daemon::start(&Setup {
        extra: format!(
            "{}[[event]]\nname = \"pin-known\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\naction = \"sendmail\"\n\
             conditions = {{ result_value = \"False\", detail_message = \"^wrong otp value\" }}\n\
             options = {{ emailconfig = \"mail1\", To = \"tokenowner\", subject = \"Someone knows your PIN\", \
             body = \"Hello {{user}}, someone entered your PIN with a wrong code at {{time}} from {{client_ip}}.\" }}\n",
            smtp.config("mail1")
        ),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    assert_eq!(login(&d, "alice", "wrong755224")["code"], 3);
    assert_eq!(login(&d, "alice", "pin000000")["code"], 3);
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "only the right-PIN failure mails");
    assert_eq!(mails[0].to, vec!["alice@example.com"]);
    assert_eq!(mails[0].subject(), Some("Someone knows your PIN"));
    assert!(
        mails[0]
            .body()
            .starts_with("Hello Alice, someone entered your PIN")
    );
    assert!(
        mails[0].body().contains("from 127.0.0.1"),
        "{:?}",
        mails[0].data
    );
}

/// Recipe 2: disable a token after 100 successful or 50 failed logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_disable_after_100_successes_or_50_failures() {
    let d = Daemon::start(&Setup {
        extra: "[[event]]\nname = \"100-ok\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"disable\"\n\
                conditions = { count_auth_success = \">=100\" }\n\
                [[event]]\nname = \"50-failed\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"disable\"\n\
                conditions = { count_auth_fail = \">=50\" }\n"
            .into(),
        ..Default::default()
    });
    d.enroll_hotp("OK1", "alice", "pin");
    d.cli_ok(&[
        "token",
        "set",
        "OK1",
        "--info",
        "count_auth=99",
        "--info",
        "count_auth_success=99",
    ]);
    assert_eq!(login(&d, "alice", &format!("pin{}", RFC4226[0]))["code"], 2);
    assert_eq!(
        d.token("OK1")["active"],
        false,
        "the 100th success disables"
    );

    d.enroll_hotp("BAD1", "bob", "pin");
    d.cli_ok(&[
        "token",
        "set",
        "BAD1",
        "--info",
        "count_auth=58",
        "--info",
        "count_auth_success=10",
    ]);
    assert_eq!(login(&d, "bob", "pin000000")["code"], 3);
    assert_eq!(d.token("BAD1")["active"], true, "49 failures");
    assert_eq!(login(&d, "bob", "pin000001")["code"], 3);
    assert_eq!(
        d.token("BAD1")["active"],
        false,
        "the 50th failure disables"
    );
}

/// Recipe 3: stamp `{now}` on failure and lock; a second definition unlocks once the stamp is
/// more than 7 days old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_lock_with_a_timestamp_and_unlock_after_7_days() {
    let d = Daemon::start(&Setup {
        extra: "[[event]]\nname = \"stamp\"\nordering = 1\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"set tokeninfo\"\n\
                conditions = { result_value = \"False\", detail_message = \"^wrong otp value\" }\n\
                options = { key = \"locked_at\", value = \"{now}\" }\n\
                [[event]]\nname = \"lock\"\nordering = 2\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"disable\"\n\
                conditions = { result_value = \"False\", detail_message = \"^wrong otp value\" }\n\
                [[event]]\nname = \"unlock\"\nordering = 1\nposition = \"pre\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"enable\"\n\
                conditions = { tokeninfo = \"locked_at < {now}-7d\" }\n\
                [[event]]\nname = \"unstamp\"\nordering = 2\nposition = \"pre\"\nevent = \"validate_check\"\nhandler = \"Token\"\naction = \"delete tokeninfo\"\n\
                conditions = { tokeninfo = \"locked_at < {now}-7d\" }\noptions = { key = \"locked_at\" }\n"
            .into(),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    assert_eq!(login(&d, "alice", "pin000000")["code"], 3);
    let t = d.token("HOTP1");
    assert_eq!(t["active"], false);
    assert!(t["info"]["locked_at"].is_string(), "{t}");
    // a fresh stamp keeps it locked
    let r = login(&d, "alice", &format!("pin{}", RFC4226[0]));
    assert_eq!(r["attrs"]["Reply-Message"], json!(["Token is disabled"]));
    // eight days later (the stamp moved back) the PRE definitions unlock it first
    // the daemon runs on the real clock, so the test reads it through the sanctioned one
    use otpgate::clock::Clock;
    let old =
        otpgate::clock::format_long(otpgate::clock::SystemClock.now() - chrono::TimeDelta::days(8));
    d.cli_ok(&[
        "token",
        "set",
        "HOTP1",
        "--info",
        &format!("locked_at={old}"),
    ]);
    let r = login(&d, "alice", &format!("pin{}", RFC4226[0]));
    assert_eq!(r["code"], 2, "{r}");
    let t = d.token("HOTP1");
    assert_eq!(t["active"], true);
    assert!(t["info"].get("locked_at").is_none(), "{t}");
}

/// Recipe 4: enroll an email token on the first login of a user who has none; the login then
/// continues as a challenge over RADIUS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_enroll_email_token_on_first_login() {
    let smtp = SmtpSink::start().await;
    let d = Daemon::start(&Setup {
        extra: format!(
            "{}[[event]]\nname = \"first-login\"\nevent = \"validate_check\"\nposition = \"pre\"\nhandler = \"Token\"\naction = \"enroll\"\n\
             conditions = {{ user_token_number = \"0\" }}\n\
             options = {{ tokentype = \"email\", user = \"true\", dynamic_email = \"1\", additional_params = '{{\"pin\": \"1234\"}}' }}\n",
            smtp.config("mail1")
        ),
        ..Default::default()
    });
    let r = login(&d, "carol", "1234");
    assert_eq!(r["code"], 11, "Access-Challenge: {r}");
    assert_eq!(
        r["attrs"]["Reply-Message"],
        json!(["Enter the OTP from the Email"])
    );
    let state = r["attrs"]["State"][0].as_str().unwrap().to_owned();
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["carol@example.com"]);
    let otp = mails[0].body().trim().to_owned();
    let r = d.pyrad(json!({"user": "carol", "password": otp, "state": state}));
    assert_eq!(r["code"], 2, "{r}");
}

/// Federation: a daemon forwards failed logins to a second one over HTTP, and to a RADIUS
/// upstream; the remote's answer becomes the answer.
#[test]
fn federation_forwards_to_another_otpgate_over_http_and_radius() {
    let child = Daemon::start(&Setup {
        extra: "".into(),
        http_validate: true,
        ..Default::default()
    });
    child.enroll_hotp("CHILD1", "bob", "bpin");
    child.cli_ok(&[
        "token",
        "enroll",
        "--serial",
        "CHILD3",
        "--user",
        "bob",
        "--realm",
        "realm3",
        "--pin",
        "bpin",
        "--key",
        crate::harness::RFC4226_KEY_HEX,
    ]);
    let parent = Daemon::start(&Setup {
        extra: format!(
            "[[remote]]\nname = \"child-http\"\ntype = \"otpgate\"\nurl = \"http://{}\"\n\
             [[remote]]\nname = \"child-radius\"\ntype = \"radius\"\naddress = \"{}\"\nsecret = \"{SECRET}\"\n\
             [[event]]\nname = \"fallback\"\nevent = \"validate_check\"\nhandler = \"Federation\"\naction = \"forward\"\n\
             conditions = {{ result_value = \"False\", realm = \"realm1\" }}\noptions = {{ privacyIDEA = \"child-http\" }}\n\
             [[event]]\nname = \"fallback-radius\"\nevent = \"validate_check\"\nhandler = \"Federation\"\naction = \"forward\"\n\
             conditions = {{ result_value = \"False\", realm = \"realm3\" }}\noptions = {{ remote = \"child-radius\" }}\n",
            child.http, child.radius
        ),
        ..Default::default()
    });
    // bob has no token on the parent: the child decides
    let r = login(&parent, "bob", &format!("bpin{}", RFC4226[0]));
    assert_eq!(r["code"], 2, "{r}\n{}", parent.log());
    let r = login(&parent, "bob", &format!("bpin{}", RFC4226[0]));
    assert_eq!(r["code"], 3, "the child saw the same OTP again: {r}");
    // realm3 goes over RADIUS (the child's default realm has bob too)
    let r = login(&parent, "bob@realm3", &format!("bpin{}", RFC4226[1]));
    assert_eq!(r["code"], 2, "{r}");
    let rows = parent.cli_until(
        &[
            "audit",
            "list",
            "--event",
            "POST-EVENT validate_check>>Federation:forward",
        ],
        "fallback",
        Duration::from_secs(10),
    );
    assert!(rows.contains("fallback"), "{rows}");
}
