//! The event engine through the running daemon: RADIUS logins and admin commands fire the
//! definitions, and the tests read the state they leave (tokens, counters, metrics). Every
//! "nothing happened" has a positive control in the same test.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use otpgate::clock::{Clock, SystemClock};
use otpgate::token::HashLib;
use otpgate::token::otp::{hotp, time_counter};

use crate::daemon::{BIN, Daemon, Setup, config_text};
use crate::harness::RFC4226;

fn with_events(extra: &str) -> Daemon {
    Daemon::start(&Setup {
        extra: extra.to_owned(),
        ..Setup::default()
    })
}

/// A Logging definition on validate_check whose line says `<name> fired for <serial> of
/// <user>`: the log shows which conditions held.
fn logging_def(name: &str, ordering: u32, position: &str, keys: &str, condition: &str) -> String {
    format!(
        "[[event]]\nname = \"{name}\"\nevent = \"validate_check\"\nhandler = \"Logging\"\n\
         action = \"logging\"\nposition = \"{position}\"\nordering = {ordering}\n{keys}\
         conditions = {{ {condition} }}\n\
         options = {{ level = \"WARNING\", message = \"{name} fired for {{serial}} of {{username}}\" }}\n"
    )
}

/// An `[[sms_gateway]]` named gw that sends GET requests to `url`.
fn sms_gateway(url: &str) -> String {
    format!(
        "[[sms_gateway]]\nname = \"gw\"\nurl = \"{url}\"\nmethod = \"GET\"\ntimeout = 3\n\
         parameters = {{ to = \"{{phone}}\", text = \"{{message}}\" }}\n"
    )
}

#[test]
fn selectors_unassigned_and_disabled_change_every_such_token() {
    let d = with_events(
        "[[event]]\nname = \"disable-spare-hotp\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"disable\"\nordering = 1\nconditions = { result_value = \"True\" }\n\
         options = { tokens = \"unassigned:hotp\" }\n\
         [[event]]\nname = \"tag-disabled\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"set description\"\nordering = 2\nconditions = { result_value = \"True\" }\n\
         options = { tokens = \"disabled\", description = \"parked\" }\n",
    );
    d.enroll_hotp("ALICE1", "alice", "pin");
    d.cli_ok(&["token", "enroll", "--type", "hotp", "--serial", "SPARE1"]);
    d.cli_ok(&["token", "enroll", "--type", "totp", "--serial", "SPARE2"]);
    d.enroll_hotp("BOB1", "bob", "pin");
    d.cli_ok(&["token", "disable", "BOB1"]);

    // a failed login: the conditions do not hold, nothing changes
    assert_eq!(d.pap("alice", "pin000000"), "Access-Reject");
    assert_eq!(d.token("SPARE1")["active"], true);
    assert_eq!(d.token("BOB1")["description"], "");

    assert_eq!(
        d.pap("alice", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    assert_eq!(
        d.token("SPARE1")["active"],
        false,
        "unassigned HOTP disabled"
    );
    assert_eq!(d.token("SPARE2")["active"], true, "a TOTP is not selected");
    assert_eq!(
        d.token("ALICE1")["active"],
        true,
        "an assigned token is not selected"
    );
    // the second definition sees the first one's change
    assert_eq!(d.token("SPARE1")["description"], "parked");
    assert_eq!(d.token("BOB1")["description"], "parked");
    assert_eq!(d.token("SPARE2")["description"], "");
    assert_eq!(d.token("ALICE1")["description"], "");
}

/// privacyIDEA's documented example, verbatim: the token is a SHA-256 TOTP with that key.
#[test]
fn additional_params_from_the_documentation_enroll_a_totp() {
    let d = with_events(
        "[[event]]\nname = \"first-token\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"enroll\"\nconditions = { result_value = \"False\" }\n\
         options = { tokentype = \"hotp\", user = \"1\", additional_params = \
         '{\"hashlib\": \"sha256\", \"type\": \"totp\", \"genkey\": 0, \"otpkey\": \"31323334\"}' }\n",
    );
    assert_eq!(d.pap("carol", "whatever"), "Access-Reject");
    let listed = d.cli_ok(&["token", "list", "--user", "carol"]);
    let serial = listed
        .lines()
        .find(|l| l.contains("totp"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no TOTP for carol: {listed}"))
        .to_owned();
    assert_eq!(d.token(&serial)["info"]["hashlib"], "sha256");
    let now = SystemClock.now().timestamp();
    let otp = hotp(b"1234", time_counter(now, 30) as u64, 6, HashLib::Sha256);
    assert_eq!(d.pap("carol", &otp), "Access-Accept");
}

#[test]
fn token_load_and_token_realm_fire_and_counters_can_be_read() {
    let d = with_events(
        "[[event]]\nname = \"count-loads\"\nevent = \"token_load\"\nhandler = \"Counter\"\n\
         action = \"increase_counter\"\noptions = { counter_name = \"loads\" }\n\
         [[event]]\nname = \"count-realms\"\nevent = \"token_realm\"\nhandler = \"Counter\"\n\
         action = \"increase_counter\"\noptions = { counter_name = \"realm_changes\" }\n",
    );
    assert!(d.cli_ok(&["event", "counters"]).contains("no counters"));
    let csv = d.dir().join("seeds.csv");
    std::fs::write(
        &csv,
        "OATH0001, 3132333435363738393031323334353637383930, hotp, 6, 0\n",
    )
    .unwrap();
    d.cli_ok(&["token", "import", csv.to_str().unwrap()]);
    let set = d.cli_ok(&["token", "realms", "OATH0001", "realm1", "realm3"]);
    assert!(set.contains("realms realm1, realm3"), "{set}");
    assert_eq!(
        d.token("OATH0001")["realms"],
        serde_json::json!(["realm1", "realm3"])
    );
    let bad = d.cli(&["token", "realms", "OATH0001", "nowhere"]);
    assert!(!bad.status.success());

    let counters: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["event", "counters", "--json"])).unwrap();
    assert_eq!(
        counters,
        serde_json::json!({"loads": 1, "realm_changes": 1})
    );
    assert_eq!(d.metric("otpgate_event_counter{name=\"loads\"}"), 1.0);
    assert_eq!(
        d.metric("otpgate_event_counter{name=\"realm_changes\"}"),
        1.0
    );
}

/// What cannot run is refused at load, each with its key.
#[test]
fn definitions_that_could_never_run_as_written_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.toml"), crate::harness::users_file()).unwrap();
    let check = |events: &str| -> String {
        let config = dir.path().join("otpgate.toml");
        let setup = Setup {
            extra: events.to_owned(),
            ..Setup::default()
        };
        std::fs::write(&config, config_text(dir.path(), &setup)).unwrap();
        // it holds the RADIUS secret: check-config refuses a file others can read
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let def = |name: &str, event: &str, options: &str| {
        format!(
            "[[event]]\nname = \"{name}\"\nevent = \"{event}\"\nhandler = \"Token\"\n\
             action = \"enroll\"\noptions = {{ tokentype = \"hotp\", {options} }}\n"
        )
    };
    let ok = check(&def("a", "validate_check", "user = \"1\""));
    assert!(ok.contains(": OK"), "{ok}");
    for (events, want) in [
        (
            def("a", "token_lost", "user = \"1\""),
            "event[0].event: event \"a\": otpgate never raises \"token_lost\"",
        ),
        (
            format!(
                "{}{}",
                def("twin", "validate_check", "user = \"1\""),
                def("twin", "token_init", "user = \"1\"")
            ),
            "event[1].name: event \"twin\": another definition has this name",
        ),
        (
            def(
                "a",
                "validate_check",
                "additional_params = '{\"hashlib\": \"md5\"}'",
            ),
            "use sha1, sha256 or sha512",
        ),
        (
            def(
                "a",
                "validate_check",
                "additional_params = '{\"otplen\": \"x\"}'",
            ),
            "use a number",
        ),
        (
            def(
                "a",
                "validate_check",
                "smtp_identifier = \"no-such-server\"",
            ),
            "smtp_identifier \"no-such-server\": no [[smtp]] has this name",
        ),
    ] {
        let out = check(&events);
        assert!(out.contains(want), "{events}\n→ {out}");
    }
}

/// `{ua_browser}` and `{ua_string}`: HTTP's User-Agent (a form field of that name does not
/// stand in for it), RADIUS's NAS-Identifier; `{username}`, `{realm}`, `{client_ip}` beside.
#[test]
fn user_agent_and_request_tags_reach_the_token() {
    let d = Daemon::start(&Setup {
        http_validate: true,
        extra: "[[event]]\nname = \"stamp\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
                action = \"set tokeninfo\"\nconditions = { result_value = \"True\" }\n\
                options = { key = \"seen\", value = \"{ua_browser}|{ua_string}|{username}@{realm}|{client_ip}\" }\n"
            .to_owned(),
        ..Setup::default()
    });
    d.enroll_hotp("ALICE1", "alice", "pin");
    let r = d.radclient(
        "auth",
        &[
            "User-Name = alice",
            &format!("User-Password = \"pin{}\"", RFC4226[0]),
            "NAS-Identifier = vpn-gw1",
            "Message-Authenticator = 0x00",
        ],
    );
    assert_eq!(r.code, "Access-Accept");
    assert_eq!(
        d.token("ALICE1")["info"]["seen"],
        "vpn-gw1|vpn-gw1|alice@realm1|127.0.0.1"
    );
    let body = format!("user=alice&pass=pin{}&User-Agent=spoofed", RFC4226[1]);
    let (status, answer) = d.http(
        "POST",
        "/validate/check",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("User-Agent", "privacyIDEA-LDAP-Proxy/1.2 python-requests"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        d.token("ALICE1")["info"]["seen"],
        "privacyIDEA-LDAP-Proxy|privacyIDEA-LDAP-Proxy/1.2 python-requests|alice@realm1|127.0.0.1"
    );
}

/// `To = logged_in_user`: the administrator acting, found in the directory by the login;
/// a mail without a recipient fails the action and the audit row says why.
#[test]
fn logged_in_user_mail_reaches_the_admin_and_no_recipient_is_a_failure() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let smtp = rt.block_on(crate::sinks::SmtpSink::start());
    let d = with_events(&format!(
        "{}[[event]]\nname = \"tell-admin\"\nevent = \"token_enable\"\nhandler = \"UserNotification\"\n\
         action = \"sendmail\"\noptions = {{ emailconfig = \"mail1\", To = \"logged_in_user\", \
         subject = \"{{serial}} enabled\" }}\n",
        smtp.config("mail1")
    ));
    d.enroll_hotp("T1", "bob", "pin");
    let as_admin = |login: &str| {
        let out = Command::new(BIN)
            .arg("-c")
            .arg(&d.config)
            .args(["token", "enable", "T1"])
            .env("USER", login)
            .env_remove("SUDO_USER")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    as_admin("alice");
    let mails = rt.block_on(smtp.wait_for(1, std::time::Duration::from_secs(5)));
    assert_eq!(mails[0].to, vec!["alice@example.com"]);
    assert_eq!(mails[0].subject(), Some("T1 enabled"));

    as_admin("nobody-in-the-directory");
    let rows: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["audit", "list", "--json", "--limit", "20"])).unwrap();
    let runs: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "POST-EVENT token_enable>>UserNotification:sendmail")
        .collect();
    assert_eq!(runs.len(), 2, "{rows:#}");
    // newest first
    assert_eq!(runs[0]["success"], false);
    let info = runs[0]["info"].as_str().unwrap();
    assert!(info.contains("no recipient: no logged-in user"), "{info}");
    assert_eq!(runs[1]["success"], true);
    assert_eq!(smtp.mails().len(), 1, "no second mail");
}

/// `event test --replay N`: the definitions' conditions against the last N audited logins;
/// for an active Counter the replay's count is what really happened, and an inactive rule
/// shows what it would have done.
#[test]
fn replay_counts_what_fired_and_what_would_have() {
    let d = with_events(
        "[[event]]\nname = \"count-failures\"\nevent = \"validate_check\"\nhandler = \"Counter\"\n\
         action = \"increase_counter\"\nconditions = { result_value = \"False\" }\n\
         options = { counter_name = \"failures\" }\n\
         [[event]]\nname = \"planned-alice-alert\"\nactive = false\nevent = \"validate_check\"\n\
         handler = \"Logging\"\naction = \"logging\"\n\
         conditions = { result_value = \"False\", user_info = \"username == alice\" }\n\
         [[event]]\nname = \"on-enable\"\nevent = \"token_enable\"\nhandler = \"Logging\"\n\
         action = \"logging\"\n",
    );
    d.enroll_hotp("A1", "alice", "pin");
    d.enroll_hotp("B1", "bob", "pin");
    assert_eq!(d.pap("alice", "pin000000"), "Access-Reject");
    assert_eq!(
        d.pap("alice", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    assert_eq!(d.pap("bob", "pin111111"), "Access-Reject");
    assert_eq!(d.pap("alice", "wrong"), "Access-Reject");
    assert_eq!(d.pap("bob", &format!("pin{}", RFC4226[0])), "Access-Accept");

    let replay: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["event", "test", "--replay", "100", "--json"])).unwrap();
    assert_eq!(replay["requests"], 5);
    let line = |name: &str| {
        replay["definitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {replay:#}"))
    };
    let counters: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["event", "counters", "--json"])).unwrap();
    assert_eq!(counters["failures"], 3);
    assert_eq!(line("count-failures")["fired"], counters["failures"]);
    let planned = line("planned-alice-alert");
    assert_eq!(
        (planned["fired"].clone(), planned["active"].clone()),
        (2.into(), false.into())
    );
    assert_eq!(planned["audit_ids"].as_array().unwrap().len(), 2);
    assert!(
        replay["definitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["name"] != "on-enable"),
        "only definitions on validate_check are replayed"
    );
    // the last two only
    let two: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["event", "test", "--replay", "2", "--json"])).unwrap();
    assert_eq!(two["requests"], 2);
    let text = d.cli_ok(&["event", "test", "--replay", "100"]);
    assert!(
        text.contains("replayed 5 audited authentication(s)"),
        "{text}"
    );
    assert!(text.contains("planned-alice-alert"), "{text}");
}

/// Every Token action on the request's token, fired by `otpgate token enable` and told
/// apart by the `serial` condition; each token shows the action's effect, and the others
/// none of it.
#[test]
fn token_actions_change_the_request_token() {
    let def = |name: &str, serial: &str, action: &str, options: &str| {
        format!(
            "[[event]]\nname = \"{name}\"\nevent = \"token_enable\"\nhandler = \"Token\"\n\
             action = \"{action}\"\nconditions = {{ serial = \"^{serial}$\" }}\noptions = {{ {options} }}\n"
        )
    };
    let defs = [
        def(
            "realm",
            "T-REALM",
            "set tokenrealm",
            "realm = \"realm3\", only_realm = \"1\"",
        ),
        def("delete", "T-DEL", "delete", ""),
        def("unassign", "T-UNASSIGN", "unassign", ""),
        def(
            "window",
            "T-COUNT",
            "set countwindow",
            "\"count window\" = \"33\"",
        ),
        def(
            "seen",
            "T-INFO",
            "increase tokeninfo",
            "key = \"seen\", increment = \"2\"",
        ),
        def(
            "fail",
            "T-FAIL",
            "change failcounter",
            "\"change fail counter\" = \"+3\"",
        ),
        def(
            "maxfail",
            "T-MAX",
            "set max failcount",
            "\"max failcount\" = \"4\"",
        ),
        def(
            "group-add",
            "T-GROUP",
            "add tokengroup",
            "tokengroup = \"laptops\"",
        ),
        def(
            "until",
            "T-VALID",
            "set validity",
            "\"valid till\" = \"+10m\"",
        ),
    ]
    .concat();
    let d = with_events(&defs);
    for serial in [
        "T-REALM",
        "T-DEL",
        "T-UNASSIGN",
        "T-COUNT",
        "T-INFO",
        "T-FAIL",
        "T-MAX",
        "T-GROUP",
        "T-VALID",
    ] {
        d.enroll_hotp(serial, "bob", "pin");
        d.cli_ok(&["token", "disable", serial]);
    }
    let before = d.token("T-COUNT");
    for serial in [
        "T-REALM",
        "T-DEL",
        "T-UNASSIGN",
        "T-COUNT",
        "T-INFO",
        "T-FAIL",
        "T-MAX",
        "T-GROUP",
        "T-VALID",
    ] {
        d.cli_ok(&["token", "enable", serial]);
    }
    assert_eq!(d.token("T-REALM")["realms"], serde_json::json!(["realm3"]));
    assert!(
        !d.cli(&["token", "show", "T-DEL"]).status.success(),
        "deleted"
    );
    assert_eq!(d.token("T-UNASSIGN")["user"], serde_json::Value::Null);
    assert_eq!(d.token("T-COUNT")["count_window"], 33);
    assert_eq!(d.token("T-INFO")["info"]["seen"], "2");
    d.cli_ok(&["token", "enable", "T-INFO"]);
    assert_eq!(d.token("T-INFO")["info"]["seen"], "4", "increased again");
    assert_eq!(d.token("T-FAIL")["failcount"], 3);
    assert_eq!(d.token("T-MAX")["maxfail"], 4);
    assert_eq!(d.token("T-GROUP")["groups"], serde_json::json!(["laptops"]));
    let till = d.token("T-VALID")["info"]["validity_period_end"].clone();
    assert!(till.as_str().is_some_and(|t| t.starts_with("20")), "{till}");
    // no action reached a token its condition does not name
    let untouched = d.token("T-COUNT");
    assert_eq!(untouched["user"], "bob");
    assert_eq!(untouched["failcount"], before["failcount"]);
    assert_eq!(untouched["maxfail"], before["maxfail"]);
    assert_eq!(untouched["realms"], before["realms"]);
    assert!(untouched["info"].get("seen").is_none());
    assert!(untouched.get("groups").is_none());
}

/// Token, answer and client conditions on one real login, observed through the Logging
/// handler's lines in the daemon's log; the last definition is the positive control that the
/// lines of this request are all written.
#[test]
fn conditions_on_a_real_login_and_the_logging_lines() {
    let logging = |name: &str, ordering: u32, condition: &str| {
        logging_def(name, ordering, "post", "", condition)
    };
    let holds = [
        ("realm3", "tokenrealm = \"realm3\""),
        ("resolver", "tokenresolver = \"resolver1\""),
        ("owned", "token_has_owner = \"True\""),
        ("valid", "token_validity_period = \"True\""),
        ("loopback", "client_ip = \"127.0.0.0/8, !10.0.0.1\""),
        ("matching", "detail_message = \"^matching\""),
        ("accepted", "result_authentication = \"ACCEPT\""),
        ("serial", "serial = \"A1\""),
    ];
    let fails = [
        ("orphaned", "token_is_orphaned = \"True\""),
        ("rolling-out", "rollout_state = \"clientwait\""),
        ("elsewhere", "client_ip = \"10.0.0.0/8\""),
        ("realm9", "tokenrealm = \"realm9\""),
        ("other-serial", "serial = \"B\""),
    ];
    let mut defs = String::new();
    for (i, (name, c)) in holds.iter().chain(fails.iter()).enumerate() {
        defs.push_str(&logging(name, i as u32, c));
    }
    defs.push_str(&logging("zz-last", 99, "result_value = \"True\""));
    let d = with_events(&defs);
    d.enroll_hotp("A1", "alice", "pin");
    d.cli_ok(&["token", "realms", "A1", "realm1", "realm3"]);
    assert_eq!(
        d.pap("alice", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    d.wait_for_log(
        "zz-last fired for A1 of alice",
        std::time::Duration::from_secs(5),
    );
    let log = d.log();
    for (name, _) in holds {
        assert!(
            log.contains(&format!("{name} fired for A1 of alice")),
            "{name}:\n{log}"
        );
    }
    for (name, _) in fails {
        assert!(!log.contains(&format!("{name} fired")), "{name}:\n{log}");
    }
    assert!(
        log.contains("WARN"),
        "the level is the configured one:\n{log}"
    );
}

/// `sendsms` reaches a real HTTP gateway; a Federation to a server that is down ends the
/// request (its `abort_on_error` defaults to true) and with `abort_on_error = false` does not;
/// a `background` script runs while the answer is already out (it blocks on a FIFO the test
/// opens only afterwards).
#[test]
fn sms_abort_on_error_and_background_scripts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gateway = rt.block_on(crate::sinks::HttpSink::start());
    let scripts = tempfile::tempdir().unwrap();
    let gate = scripts.path().join("gate");
    let out = scripts.path().join("out");
    assert!(
        Command::new("mkfifo")
            .arg(&gate)
            .status()
            .unwrap()
            .success()
    );
    let script = scripts.path().join("wait-for-gate.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nread line < {gate}\necho \"$line $*\" > {out}.tmp && mv {out}.tmp {out}\n",
            gate = gate.display(),
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let d = with_events(&format!(
        "[handlers]\nscript_directory = \"{scripts}\"\n{sms}\
         [[event]]\nname = \"sms-on-login\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\n\
         action = \"sendsms\"\nconditions = {{ result_value = \"True\", user_info = \"username == alice\" }}\n\
         options = {{ smsconfig = \"gw\", body = \"login with {{serial}}\" }}\n\
         [[remote]]\nname = \"down\"\ntype = \"privacyidea\"\nurl = \"{dead_url}\"\n\
         [[event]]\nname = \"forward-bob\"\nevent = \"validate_check\"\nhandler = \"Federation\"\n\
         action = \"forward\"\nconditions = {{ user_info = \"username == bob\" }}\n\
         options = {{ privacyIDEA = \"down\" }}\n\
         [[event]]\nname = \"forward-carol\"\nevent = \"validate_check\"\nhandler = \"Federation\"\n\
         action = \"forward\"\nabort_on_error = false\nconditions = {{ user_info = \"username == carol\" }}\n\
         options = {{ privacyIDEA = \"down\" }}\n\
         [[event]]\nname = \"script\"\nevent = \"validate_check\"\nhandler = \"Script\"\n\
         action = \"wait-for-gate.sh\"\nconditions = {{ result_value = \"True\", user_info = \"username == alice\" }}\n\
         options = {{ background = \"background\", serial = \"1\" }}\n",
        scripts = scripts.path().display(),
        sms = sms_gateway(&gateway.url("/send")),
    ));
    d.enroll_hotp("A1", "alice", "pin");
    d.enroll_hotp("B1", "bob", "pin");
    d.enroll_hotp("C1", "carol", "pin");

    assert_eq!(d.pap("bob", &format!("pin{}", RFC4226[0])), "Access-Reject");
    assert_eq!(
        d.pap("carol", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    // the answer came while the script still waits at the gate
    assert_eq!(
        d.pap("alice", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    assert!(!out.exists());
    std::fs::write(&gate, "opened\n").unwrap();
    let start = std::time::Instant::now();
    while !out.exists() {
        assert!(
            start.elapsed().as_secs() < 10,
            "the background script never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        "opened --serial A1"
    );

    let sms = rt.block_on(gateway.wait_for(1, std::time::Duration::from_secs(5)));
    assert_eq!(sms.len(), 1, "one SMS, for alice only");
    assert!(
        sms[0].query.contains("to=%2B4915100000001"),
        "{}",
        sms[0].query
    );
    assert!(
        sms[0].query.contains("login+with+A1") || sms[0].query.contains("login%20with%20A1"),
        "{}",
        sms[0].query
    );
    // both forwards failed; only bob's ended his request
    for user in ["bob", "carol"] {
        // audit rows are written behind the answer
        let listed = d.cli_until(
            &["audit", "list", "--json", "--user", user],
            "Federation:forward",
            std::time::Duration::from_secs(5),
        );
        let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let run = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["event"] == "POST-EVENT validate_check>>Federation:forward")
            .cloned()
            .unwrap_or_else(|| panic!("{user}: {rows:#}"));
        assert_eq!(run["success"], false, "{user}");
    }
}

/// privacyIDEA's enrolment mail: on `token_init`, `{googleurl_value}` is the otpauth:// URI
/// and `attach_qrcode` attaches it as a PNG; a spass token has no URI and no attachment.
#[test]
fn enrolment_mail_carries_the_uri_and_the_qr_code() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let smtp = rt.block_on(crate::sinks::SmtpSink::start());
    let d = with_events(&format!(
        "{}[[event]]\nname = \"welcome\"\nevent = \"token_init\"\nhandler = \"UserNotification\"\n\
         action = \"sendmail\"\noptions = {{ emailconfig = \"mail1\", To = \"tokenowner\", \
         attach_qrcode = \"1\", subject = \"your {{tokentype}} {{serial}}\", body = \"scan {{googleurl_value}}\" }}\n",
        smtp.config("mail1")
    ));
    d.enroll_hotp("H1", "alice", "pin");
    let mails = rt.block_on(smtp.wait_for(1, std::time::Duration::from_secs(5)));
    let m = &mails[0];
    assert_eq!(m.to, vec!["alice@example.com"]);
    assert_eq!(m.subject(), Some("your hotp H1"));
    assert!(m.data.contains("multipart/mixed"), "{}", m.data);
    assert!(m.data.contains("filename=\"qrcode.png\""), "{}", m.data);
    assert!(m.data.contains("otpauth://hotp/"), "{}", m.data);
    // the PNG's signature, base64
    assert!(m.data.contains("iVBORw0KGgo"), "{}", m.data);

    d.cli_ok(&[
        "token", "enroll", "--type", "spass", "--serial", "S1", "--user", "carol", "--pin", "x",
    ]);
    let mails = rt.block_on(smtp.wait_for(2, std::time::Duration::from_secs(5)));
    let m = &mails[1];
    assert_eq!(m.subject(), Some("your spass S1"));
    assert!(!m.data.contains("qrcode.png"), "{}", m.data);
    assert!(!m.data.contains("otpauth://"), "{}", m.data);
}

/// `challenge_expired` and `challenge_session` around a RADIUS challenge: after the request
/// that triggered it (POST: the answer names the new challenge) and before the request that
/// answers it (PRE: its State names it; after a right answer the challenge is gone), with
/// `skip_unknown = false` so that "no challenge" does not count as fulfilled; `{now}-12d`
/// written into a tokeninfo and compared with `{now}` offsets.
#[test]
fn challenge_and_time_offset_conditions_on_a_challenge_login() {
    let logging = |name: &str, ordering: u32, condition: &str| {
        let position = if name.starts_with("pre-") {
            "pre"
        } else {
            "post"
        };
        logging_def(
            name,
            ordering,
            position,
            "skip_unknown = false\n",
            condition,
        )
    };
    let mut defs = String::from(
        "[[policy]]\nname = \"cr\"\nscope = \"authentication\"\nactions = { challenge_response = \"hotp\" }\n\
         [[event]]\nname = \"stamp\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"set tokeninfo\"\nordering = 1\nconditions = { result_authentication = \"CHALLENGE\" }\n\
         options = { key = \"challenged\", value = \"{now}-12d\" }\n",
    );
    for (i, (name, c)) in [
        ("unexpired", "challenge_expired = \"False\""),
        ("pre-unexpired", "challenge_expired = \"False\""),
        ("expired", "challenge_expired = \"True\""),
        ("sessionless", "challenge_session = \"^$\""),
        ("twelve-days-ago", "tokeninfo = \"challenged < {now}-11d\""),
        (
            "thirteen-days-ago",
            "tokeninfo = \"challenged < {now}-13d\"",
        ),
        ("zz-last", "result_value = \"True\""),
    ]
    .iter()
    .enumerate()
    {
        defs.push_str(&logging(name, 10 + i as u32, c));
    }
    let d = with_events(&defs);
    d.enroll_hotp("A1", "alice", "pin");
    let r = d.radclient(
        "auth",
        &[
            "User-Name = alice",
            "User-Password = pin",
            "Message-Authenticator = 0x00",
        ],
    );
    assert_eq!(r.code, "Access-Challenge", "{}", r.raw);
    let state = r.attr("State").expect("State").to_owned();
    let r = d.radclient(
        "auth",
        &[
            "User-Name = alice",
            &format!("User-Password = {}", RFC4226[0]),
            &format!("State = {state}"),
            "Message-Authenticator = 0x00",
        ],
    );
    assert_eq!(r.code, "Access-Accept", "{}", r.raw);
    d.wait_for_log("zz-last fired for A1", std::time::Duration::from_secs(5));
    let log = d.log();
    for fired in ["unexpired", "pre-unexpired", "sessionless"] {
        assert_eq!(
            log.matches(&format!(" {fired} fired for A1")).count(),
            1,
            "{fired}:\n{log}"
        );
    }
    // written after the challenge, read after the answer
    assert!(log.contains("twelve-days-ago fired for A1"), "{log}");
    for not in ["expired fired", "thirteen-days-ago fired"] {
        assert!(
            !log.contains(&format!(" {not}")) && !log.contains(&format!("\"{not}")),
            "{not}:\n{log}"
        );
    }
}

/// `enroll` of an SMS token with `dynamic_phone` on a user's failed first login: the next
/// login with the PIN from `additional_params` sends the OTP to the mobile in the directory.
#[test]
fn enroll_an_sms_token_with_dynamic_phone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gateway = rt.block_on(crate::sinks::HttpSink::start());
    let d = with_events(&format!(
        "{}[[event]]\nname = \"sms-for-newcomers\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"enroll\"\nconditions = {{ result_value = \"False\", user_token_number = \"0\" }}\n\
         options = {{ tokentype = \"sms\", user = \"1\", dynamic_phone = \"1\", sms_identifier = \"gw\", \
         additional_params = '{{\"pin\": \"smspin\"}}' }}\n",
        sms_gateway(&gateway.url("/send"))
    ));
    assert_eq!(d.pap("carol", "anything"), "Access-Reject");
    let listed = d.cli_ok(&["token", "list", "--user", "carol"]);
    assert!(listed.contains(" sms "), "{listed}");
    assert!(gateway.requests().is_empty(), "enrolling sends nothing");
    let r = d.radclient(
        "auth",
        &[
            "User-Name = carol",
            "User-Password = smspin",
            "Message-Authenticator = 0x00",
        ],
    );
    assert_eq!(r.code, "Access-Challenge", "{}", r.raw);
    let sent = rt.block_on(gateway.wait_for(1, std::time::Duration::from_secs(5)));
    assert!(
        sent[0].query.contains("to=%2B4915100000003"),
        "{}",
        sent[0].query
    );
    // a second failed login does not enroll a second token (the user has one now)
    assert_eq!(d.pap("carol", "anything"), "Access-Reject");
    let listed = d.cli_ok(&["token", "list", "--user", "carol"]);
    assert!(listed.contains("1 token(s)"), "{listed}");
}

/// CustomUserAttributes: a login stores the NAS it came through as the user's attribute, a
/// later definition's `user_info` condition reads it in the same request, a failed login
/// deletes it.
#[test]
fn custom_user_attributes_are_set_read_and_deleted() {
    let d = with_events(
        "[[event]]\nname = \"remember-nas\"\nevent = \"validate_check\"\nhandler = \"CustomUserAttributes\"\n\
         action = \"set_custom_user_attributes\"\nordering = 1\nconditions = { result_value = \"True\" }\n\
         options = { user = \"tokenowner\", attrkey = \"last_nas\", attrvalue = \"{ua_browser}\" }\n\
         [[event]]\nname = \"forget-nas\"\nevent = \"validate_check\"\nhandler = \"CustomUserAttributes\"\n\
         action = \"delete_custom_user_attributes\"\nordering = 1\nconditions = { result_value = \"False\" }\n\
         options = { user = \"tokenowner\", attrkey = \"last_nas\" }\n\
         [[event]]\nname = \"came-via-gw1\"\nevent = \"validate_check\"\nhandler = \"Logging\"\n\
         action = \"logging\"\nordering = 2\nconditions = { user_info = \"last_nas == vpn-gw1\" }\n\
         options = { level = \"WARNING\", message = \"came-via-gw1 fired {serial}\" }\n\
         [[event]]\nname = \"zz-last\"\nevent = \"validate_check\"\nhandler = \"Logging\"\n\
         action = \"logging\"\nordering = 3\n\
         options = { level = \"WARNING\", message = \"zz-last fired {serial}\" }\n",
    );
    d.enroll_hotp("A1", "alice", "pin");
    let via = |nas: &str, password: &str| {
        d.radclient(
            "auth",
            &[
                "User-Name = alice",
                &format!("User-Password = \"{password}\""),
                &format!("NAS-Identifier = {nas}"),
                "Message-Authenticator = 0x00",
            ],
        )
        .code
    };
    let wait_count = |n: usize| {
        let start = std::time::Instant::now();
        while d.log().matches("zz-last fired").count() < n {
            assert!(start.elapsed().as_secs() < 5, "{}", d.log());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        d.log().matches("came-via-gw1 fired").count()
    };
    assert_eq!(
        via("vpn-gw1", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    assert_eq!(wait_count(1), 1, "set, then read in the same request");
    assert_eq!(via("vpn-gw1", "pin000000"), "Access-Reject");
    assert_eq!(wait_count(2), 1, "deleted before it is read");
    assert_eq!(
        via("vpn-gw2", &format!("pin{}", RFC4226[1])),
        "Access-Accept"
    );
    assert_eq!(wait_count(3), 1, "another NAS: another value");
    assert_eq!(
        via("vpn-gw1", &format!("pin{}", RFC4226[2])),
        "Access-Accept"
    );
    assert_eq!(wait_count(4), 2);
    let rows = d.cli_until(
        &["audit", "list", "--json", "--user", "alice"],
        "CustomUserAttributes:delete_custom_user_attributes",
        std::time::Duration::from_secs(5),
    );
    assert!(rows.contains("last_nas deleted for alice@realm1"), "{rows}");
    assert!(rows.contains("last_nas set for alice@realm1"), "{rows}");
}

/// Every admin operation raises its event: a Counter per event, then each operation once.
#[test]
fn every_admin_operation_raises_its_event() {
    let events = [
        "token_init",
        "token_set",
        "token_setpin",
        "token_disable",
        "token_enable",
        "token_unassign",
        "token_assign",
        "token_resync",
        "token_realm",
        "token_reset",
        "token_revoke",
        "token_delete",
    ];
    let defs: String = events
        .iter()
        .map(|e| {
            format!(
                "[[event]]\nname = \"count-{e}\"\nevent = \"{e}\"\nhandler = \"Counter\"\n\
                 action = \"increase_counter\"\noptions = {{ counter_name = \"{e}\" }}\n"
            )
        })
        .collect();
    let d = with_events(&defs);
    d.enroll_hotp("T1", "alice", "pin");
    d.cli_ok(&["token", "set", "T1", "--description", "fob"]);
    d.cli_ok(&["token", "set-pin", "T1", "--pin", "newpin"]);
    d.cli_ok(&["token", "disable", "T1"]);
    d.cli_ok(&["token", "enable", "T1"]);
    d.cli_ok(&["token", "unassign", "T1"]);
    d.cli_ok(&["token", "assign", "T1", "--user", "bob"]);
    d.cli_ok(&["token", "resync", "T1", RFC4226[3], RFC4226[4]]);
    d.cli_ok(&["token", "realms", "T1", "realm1", "realm3"]);
    d.cli_ok(&["token", "reset", "T1"]);
    d.cli_ok(&["token", "revoke", "T1"]);
    d.cli_ok(&["token", "delete", "T1"]);
    let counters: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["event", "counters", "--json"])).unwrap();
    for e in events {
        assert_eq!(counters[e], 1, "{e}: {counters}");
    }
}

/// The notification tags of a login, rendered into a real mail.
#[test]
fn notification_tags_of_a_login_reach_the_mail() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let smtp = rt.block_on(crate::sinks::SmtpSink::start());
    let d = with_events(&format!(
        "[handlers]\nbase_url = \"https://otp.example.org/\"\n{}\
         [[event]]\nname = \"tags\"\nevent = \"validate_check\"\nhandler = \"UserNotification\"\n\
         action = \"sendmail\"\nconditions = {{ result_value = \"True\" }}\n\
         options = {{ emailconfig = \"mail1\", To = \"tokenowner\", subject = \"tags\", body = \
         \"g={{givenname}} s={{surname}} u={{username}} r={{userrealm}} d={{tokendescription}} \
         t={{tokentype}} n={{serial}} rg={{recipient_givenname}} rs={{recipient_surname}} a={{action}} url={{url}} \
         ip={{client_ip}} date={{date}} time={{time}}\" }}\n",
        smtp.config("mail1")
    ));
    d.enroll_hotp("T1", "alice", "pin");
    d.cli_ok(&["token", "set", "T1", "--description", "blue fob"]);
    assert_eq!(
        d.pap("alice", &format!("pin{}", RFC4226[0])),
        "Access-Accept"
    );
    let mails = rt.block_on(smtp.wait_for(1, std::time::Duration::from_secs(5)));
    let body = mails[0].body();
    let today = SystemClock
        .now()
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d")
        .to_string();
    for want in [
        "g=Alice s=Smith u=alice r=realm1 d=blue fob t=hotp n=T1 rg=Alice rs=Smith",
        "a=/validate/check url=https://otp.example.org/ ip=127.0.0.1",
        &format!("date={today}"),
    ] {
        assert!(body.contains(want), "{want:?} in {body:?}");
    }
    assert!(body.contains(" time="), "{body}");
}

/// The NAS conditions (NAS-IP-Address, Called-Station-Id, NAS-Identifier, the RADIUS client)
/// on logins, driving add/remove tokengroup and set tokeninfo.
#[test]
fn nas_conditions_and_token_groups_on_logins() {
    let d = with_events(
        "[[event]]\nname = \"groups\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"add tokengroup\"\nconditions = { result_value = \"True\", nas_ip_address = \"10.1.2.3\" }\n\
         options = { tokengroup = \"office\" }\n\
         [[event]]\nname = \"ungroup\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"remove tokengroup\"\nconditions = { result_value = \"True\", called_station_id = \"/.*-guest$/\" }\n\
         options = { tokengroup = \"office\" }\n\
         [[event]]\nname = \"via\"\nevent = \"validate_check\"\nhandler = \"Token\"\n\
         action = \"set tokeninfo\"\nconditions = { nas_identifier = \"vpn-gw1\", radius_client = \"loopback\" }\n\
         options = { key = \"via\", value = \"gw1\" }\n",
    );
    d.enroll_hotp("T1", "alice", "pin");
    let via = |attrs: &[&str], otp: &str| {
        let pw = format!("User-Password = \"pin{otp}\"");
        let mut all = vec![
            "User-Name = alice",
            pw.as_str(),
            "Message-Authenticator = 0x00",
        ];
        all.extend_from_slice(attrs);
        d.radclient("auth", &all).code
    };
    assert_eq!(
        via(&["NAS-IP-Address = 10.9.9.9"], RFC4226[0]),
        "Access-Accept"
    );
    assert!(d.token("T1").get("groups").is_none(), "another NAS");
    assert_eq!(
        via(&["NAS-IP-Address = 10.1.2.3"], RFC4226[1]),
        "Access-Accept"
    );
    assert_eq!(d.token("T1")["groups"], serde_json::json!(["office"]));
    assert_eq!(
        via(&["Called-Station-Id = \"ssid-corp\""], RFC4226[2]),
        "Access-Accept"
    );
    assert_eq!(
        d.token("T1")["groups"],
        serde_json::json!(["office"]),
        "not a guest SSID"
    );
    assert_eq!(
        via(&["Called-Station-Id = \"ssid-guest\""], RFC4226[3]),
        "Access-Accept"
    );
    assert!(d.token("T1").get("groups").is_none(), "removed");
    assert!(
        d.token("T1")["info"].get("via").is_none(),
        "no NAS-Identifier yet"
    );
    assert_eq!(
        via(&["NAS-Identifier = vpn-gw1"], RFC4226[4]),
        "Access-Accept"
    );
    assert_eq!(d.token("T1")["info"]["via"], "gw1");
}
