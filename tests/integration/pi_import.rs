//! `otpgate import privacyidea` against a real privacyIDEA 3.14 (PyPI, in target/pi-venv, set
//! up by scripts/test): its site is built through its own REST API
//! (tests/fixtures/privacyidea_site.py), on SQLite, MariaDB and PostgreSQL; then the same users log in
//! to otpgate with their PINs and next OTPs, and the imported event definitions do to the
//! tokens what privacyIDEA's did for the same requests.

use std::path::{Path, PathBuf};
use std::process::Command;

use otpgate::clock::{Clock, SystemClock};
use otpgate::token::HashLib;
use otpgate::token::otp::{hotp, time_counter};

use crate::daemon::{Daemon, Setup};
use crate::mariadb::MariaDb;

const KEY: &[u8] = b"12345678901234567890";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pi_python() -> String {
    std::env::var("OTPGATE_TEST_PI_PYTHON").unwrap_or_else(|_| {
        let venv = repo().join("target/pi-venv/bin/python");
        assert!(
            venv.exists(),
            "no privacyIDEA: run scripts/test (it creates target/pi-venv)"
        );
        venv.display().to_string()
    })
}

/// One privacyIDEA at a time: its setup takes seconds of CPU, and the suite's timing-sensitive
/// tests run beside these on CI's two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run the site script; its JSON.
fn site(args: &[&str]) -> serde_json::Value {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(pi_python())
        .arg(repo().join("tests/fixtures/privacyidea_site.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "privacyidea_site.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pi_token<'a>(site: &'a serde_json::Value, serial: &str) -> &'a serde_json::Value {
    site["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["serial"] == serial)
        .unwrap()
}

fn import(d: &Daemon, db: &str, enckey: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "import",
        "privacyidea",
        "--database",
        db,
        "--enckey",
        enckey.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    d.cli(&args)
}

/// What the admin does with the import's TOML: `config` with it appended becomes the
/// configuration, `check-config` accepts it, the daemon restarts on it.
fn adopt(d: &mut Daemon, config: &str, generated: &str) {
    std::fs::write(&d.config, format!("{config}{generated}")).unwrap();
    d.cli_ok(&["check-config"]);
    d.restart();
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The whole move, from privacyIDEA at `db_uri` (its SQLAlchemy URI) in `home`.
fn move_site(home: &Path, db_uri: &str) {
    let pi = site(&["setup", home.to_str().unwrap(), "--db-uri", db_uri]);
    let enckey = home.join("enckey");
    let mut d = Daemon::start(&Setup::default());

    // a foreign encKey: refused, nothing written
    let foreign = home.join("foreign-enckey");
    std::fs::write(&foreign, [7u8; 96]).unwrap();
    let out = import(&d, db_uri, &foreign, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("opens none of the"), "{}", text(&out));
    let toml_out = d.config.with_file_name("privacyidea-import.toml");
    assert!(!toml_out.exists());
    assert!(!d.cli(&["token", "show", "PIHOTP1"]).status.success());

    // dry run: the plan and one line for everything that does not come over
    let out = import(&d, db_uri, &enckey, &["--dry-run"]);
    let dry = text(&out);
    assert!(out.status.success(), "{dry}");
    assert!(
        dry.contains("tokens: 7 of 8 importable (1 email, 3 hotp, 1 sms, 1 spass, 1 totp)"),
        "{dry}"
    );
    assert!(
        dry.contains("PINs: 5 argon2 hashes kept, 1 encrypted PINs sealed again"),
        "{dry}"
    );
    assert!(
        dry.contains("not imported: token PIREG1: type registration"),
        "{dry}"
    );
    assert!(
        dry.contains("not imported: policy encpin: scope enrollment"),
        "{dry}"
    );
    assert!(
        dry.contains("changed: policy hide: action webauthn_timeout left out"),
        "{dry}"
    );
    assert!(dry.contains("dry run: nothing written"), "{dry}");
    assert!(!toml_out.exists());
    assert!(!d.cli(&["token", "show", "PIHOTP1"]).status.success());

    let out = import(&d, db_uri, &enckey, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("imported 7 token(s) (0 present already"),
        "{}",
        text(&out)
    );
    // twice: nothing doubles
    let again = import(&d, db_uri, &enckey, &[]);
    assert!(
        text(&again).contains("imported 0 token(s) (7 present already"),
        "{}",
        text(&again)
    );
    let listed = d.cli_ok(&["token", "list"]);
    assert!(listed.contains("7 token(s)"), "{listed}");

    // the state came along
    let alice = d.token("PIHOTP1");
    let pi_alice = pi_token(&pi, "PIHOTP1");
    assert_eq!(alice["count"], pi_alice["count"]);
    assert_eq!(alice["maxfail"], 7);
    assert_eq!(alice["description"], "alice's fob");
    assert_eq!(alice["info"]["department"], "sales");
    assert_eq!(
        alice["info"]["validity_period_end"],
        "2035-01-01T00:00+0000"
    );
    assert_eq!(
        d.token("PIHOTP2")["failcount"],
        pi_token(&pi, "PIHOTP2")["failcount"]
    );
    assert_eq!(d.token("PITOTP1")["info"]["hashlib"], "sha256");
    assert_eq!(d.token("PIHOTP2")["user"], "frank");

    // the sections join the configuration and it validates
    let generated = std::fs::read_to_string(&toml_out).unwrap();
    assert!(
        generated.contains(
            "# changed: realm corp: not the default realm: the configuration's is realm1"
        ),
        "{generated}"
    );
    // the admin makes privacyIDEA's default realm the default
    let generated = generated.replace("name = \"corp\"", "default = true\nname = \"corp\"");
    let config = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("name = \"realm1\"\ndefault = true", "name = \"realm1\"");
    adopt(&mut d, &config, &generated);
    // and a third run finds them there
    let third = text(&import(&d, db_uri, &enckey, &["--dry-run"]));
    assert!(
        third.contains("not imported: realm corp: the configuration has one"),
        "{third}"
    );

    // logins: a used OTP stays used, the next one works, PINs as in privacyIDEA
    let h = |c| hotp(KEY, c, 6, HashLib::Sha1);
    assert_eq!(
        d.pap("alice", &format!("alicepin{}", h(1))),
        "Access-Reject"
    );
    assert_eq!(
        d.pap("alice", &format!("alicepin{}", h(2))),
        "Access-Accept"
    );
    assert_eq!(
        d.pap("alice", &format!("wrongpin{}", h(3))),
        "Access-Reject"
    );
    let now = SystemClock.now().timestamp();
    let totp = hotp(KEY, time_counter(now, 30) as u64, 8, HashLib::Sha256);
    assert_eq!(d.pap("bob", &format!("bob pin%{totp}")), "Access-Accept");
    assert_eq!(d.pap("carol", "carolsecret"), "Access-Accept");
    assert_eq!(d.pap("carol", "carolsecreT"), "Access-Reject");
    // frank's PIN was stored encrypted in privacyIDEA: sealed again with otpgate's key
    assert_eq!(
        d.pap("frank", &format!("frankpin{}", h(0))),
        "Access-Accept"
    );

    // the event definitions: the same requests do the same to the tokens in both systems
    let wrong = format!("alicepin{}", h(100));
    let pi_after = site(&["check", home.to_str().unwrap(), "alice", &wrong]);
    assert_eq!(pi_after["result"]["value"], false);
    assert_eq!(d.pap("alice", &wrong), "Access-Reject");
    let pi_desc = pi_after["tokens"][0]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    let ours = d.token("PIHOTP1");
    let our_desc = ours["description"].as_str().unwrap();
    assert!(pi_desc.starts_with("failed at 20"), "{pi_desc}");
    assert!(our_desc.starts_with("failed at 20"), "{our_desc}");
    assert_eq!(ours["info"]["last_ok"], "yes");
    let pi_ok = site(&["check", home.to_str().unwrap(), "carol", "carolsecret"]);
    assert_eq!(pi_ok["result"]["value"], true);
    assert_eq!(pi_ok["tokens"][0]["info"]["last_ok"], "yes");
    assert_eq!(d.token("PISPASS1")["info"]["last_ok"], "yes");
}

#[test]
fn a_privacyidea_site_on_sqlite_moves_over() {
    let home = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", home.path().join("pi.sqlite").display());
    move_site(home.path(), &uri);
}

#[test]
fn a_privacyidea_site_on_mariadb_moves_over() {
    let db = MariaDb::start();
    let home = tempfile::tempdir().unwrap();
    let uri = format!(
        "{}?charset=utf8mb4",
        db.url().replacen("mysql://", "mysql+pymysql://", 1)
    );
    move_site(home.path(), &uri);
}

/// Owners in LDAP: privacyIDEA records them by entryUUID or by DN; the import finds their
/// logins through the imported LDAP resolvers (bind password decrypted), and they log in.
#[test]
fn owners_in_an_ldap_directory_are_found_by_entryuuid_and_by_dn() {
    let slapd = crate::slapd::Slapd::start(0);
    let home = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", home.path().join("pi.sqlite").display());
    site(&[
        "setup",
        home.path().to_str().unwrap(),
        "--db-uri",
        &uri,
        "--ldap",
        &slapd.url(),
    ]);
    let mut d = Daemon::start(&Setup::default());
    let out = import(&d, &uri, &home.path().join("enckey"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("imported 9 token(s)"), "{}", text(&out));
    let by_uuid = d.token("LDAPHOTP1");
    assert_eq!(
        (&by_uuid["user"], &by_uuid["realm"]),
        (&"alice".into(), &"ldapuuid".into())
    );
    let by_dn = d.token("LDAPHOTP2");
    assert_eq!(
        (&by_dn["user"], &by_dn["realm"]),
        (&"carol".into(), &"ldapdn".into())
    );

    let generated =
        std::fs::read_to_string(d.config.with_file_name("privacyidea-import.toml")).unwrap();
    assert!(
        generated.contains("bind_password = \"svc-pw\""),
        "{generated}"
    );
    let config = std::fs::read_to_string(&d.config).unwrap();
    adopt(&mut d, &config, &generated);
    let h = |c| hotp(KEY, c, 6, HashLib::Sha1);
    assert_eq!(
        d.pap("alice@ldapuuid", &format!("ldappin{}", h(0))),
        "Access-Accept"
    );
    assert_eq!(
        d.pap("carol@ldapdn", &format!("ldappin{}", h(0))),
        "Access-Accept"
    );
    assert_eq!(
        d.pap("carol@ldapdn", &format!("ldappin{}", h(0))),
        "Access-Reject"
    );
}

#[test]
fn a_privacyidea_site_on_postgresql_moves_over() {
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::pg::fresh_database());
    let home = tempfile::tempdir().unwrap();
    move_site(
        home.path(),
        &url.replacen("postgres://", "postgresql+psycopg2://", 1),
    );
}
