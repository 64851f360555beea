//! PostgreSQL goes away under a running daemon, as in a restart or a failover, and comes
//! back: the first login waits until a check finds the database gone (about a second, never
//! more than `connect_timeout` and the check), later ones fail at once with a clear
//! Reply-Message instead of each waiting again; the outage is one log line, not one per login;
//! nothing is consumed while it lasts; logins go on by themselves when the database answers;
//! the audit rows of the refused logins are written afterwards.
//! `/healthz` and the gauge `otpgate_store_up` say so meanwhile. A node with
//! `when_store_unavailable = "no_reply"` stays silent instead, so the NAS fails over.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use otpgate::radius::client::{AccessRequest, encode_access_request};
use otpgate::radius::packet::{Code, Packet};
use otpgate::secret::Secret;

use crate::blackhole::Blackhole;
use crate::daemon::{Daemon, SECRET, Setup, udp_exchange};
use crate::harness::RFC4226;
use crate::pg::Cluster;

/// `[database] connect_timeout` of the daemon under test, in seconds.
const CONNECT_TIMEOUT_S: u64 = 2;

/// Send one Access-Request for alice; the reply's code and Reply-Message, and how long it took.
pub fn login(d: &Daemon, id: u8, password: &str) -> (Option<(Code, String)>, Duration) {
    login_within(d, id, password, Duration::from_secs(CONNECT_TIMEOUT_S * 3))
}

pub fn login_within(
    d: &Daemon,
    id: u8,
    password: &str,
    wait: Duration,
) -> (Option<(Code, String)>, Duration) {
    login_as(d, "alice", id, password, wait)
}

fn login_as(
    d: &Daemon,
    user: &str,
    id: u8,
    password: &str,
    wait: Duration,
) -> (Option<(Code, String)>, Duration) {
    let (request, _) = encode_access_request(
        &AccessRequest {
            user: user.into(),
            password: Secret::new(password.into()),
            message_authenticator: true,
            ..Default::default()
        },
        id,
        SECRET.as_bytes(),
    )
    .unwrap();
    let started = Instant::now();
    let reply = udp_exchange(
        &UdpSocket::bind("127.0.0.1:0").unwrap(),
        d.radius,
        &request,
        wait,
    );
    let took = started.elapsed();
    let answer = reply.map(|r| {
        let p = Packet::decode(&r).unwrap();
        let message = p
            .attr(18)
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_default();
        (p.code(), message)
    });
    (answer, took)
}

/// Two nodes on `db`'s database `postgres`: the first answers REJECT when its store is
/// unavailable, the second nothing (its NAS should fail over rather than hear a reject). alice
/// has HOTP1 and has logged in once with the first OTP.
fn two_nodes(
    db: &Cluster,
    keys: &std::path::Path,
    database_keys: &str,
    extra: &str,
) -> (Daemon, Daemon) {
    let node = |radius: &str| Setup {
        database: Some(format!("{}/postgres", db.base_url())),
        database_keys: database_keys.into(),
        key_file: Some(keys.join("secret.key")),
        radius: radius.into(),
        extra: extra.into(),
        ..Default::default()
    };
    let d = Daemon::start(&node(""));
    let silent = Daemon::start(&node("when_store_unavailable = \"no_reply\""));
    d.enroll_hotp("HOTP1", "alice", "pin");
    let (answer, _) = login(&d, 1, &format!("pin{}", RFC4226[0]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept);
    (d, silent)
}

/// A node whose connections to `db` pass through a proxy that can silence them; alice has
/// HOTP1.
fn node_behind_blackhole(db: &Cluster, database_keys: &str) -> (Blackhole, Daemon) {
    let proxy = Blackhole::start(([127, 0, 0, 1], db.port()).into());
    let d = Daemon::start(&Setup {
        database: Some(format!("postgres://postgres@{}/postgres", proxy.addr)),
        database_keys: database_keys.into(),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    (proxy, d)
}

/// Send `user`'s `password` until it is accepted, within `limit`, with ids from `first_id`
/// on; the id of the accepted request.
fn accepted_within(d: &Daemon, user: &str, password: &str, first_id: u8, limit: Duration) -> u8 {
    let until = Instant::now() + limit;
    let mut id = first_id;
    loop {
        let (answer, _) = login_as(d, user, id, password, Duration::from_secs(6));
        if answer
            .as_ref()
            .is_some_and(|(c, _)| *c == Code::AccessAccept)
        {
            return id;
        }
        assert!(
            Instant::now() < until,
            "{user}: no Access-Accept within {limit:?}: {answer:?}\n{}",
            d.log()
        );
        id = id.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A login refused at once, as while the breaker is open: Access-Reject within 500 ms; its
/// Reply-Message.
pub fn refused_at_once(d: &Daemon, id: u8, password: &str) -> String {
    let (answer, took) = login(d, id, password);
    let (code, message) = answer.unwrap_or_else(|| panic!("login {id}: no answer"));
    assert_eq!(code, Code::AccessReject, "login {id}: {message}");
    assert!(
        took < Duration::from_millis(500),
        "login {id} took {took:?}"
    );
    message
}

/// A login whose commit stalls (`commit_timeout = 1`): refused once the commit has waited,
/// within 2.5 s, with a Reply-Message that says so and names the likely `cause`.
pub fn refused_once_commits_stall(d: &Daemon, id: u8, password: &str, cause: &str) {
    let (answer, took) = login(d, id, password);
    let (code, message) = answer.expect("no answer while commits stall");
    assert_eq!(code, Code::AccessReject);
    assert!(
        message.contains("token store unavailable")
            && message.contains("commits wait")
            && message.contains(cause),
        "Reply-Message {message:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "the first login took {took:?}"
    );
}

/// While commits stall: `otpgate_store_up` 0, `/healthz` 503, one log line for the stall.
pub fn shows_the_stall(d: &Daemon) {
    assert_eq!(d.metric("otpgate_store_up"), 0.0);
    assert!(d.http_get("/healthz").contains("store unavailable"));
    // the daemon's log thread writes a line shortly after it is logged
    d.wait_for_log("its commits do not complete", Duration::from_secs(2));
    let log = d.log();
    assert_eq!(
        log.matches("its commits do not complete").count(),
        1,
        "one line for the stall:\n{log}"
    );
}

/// Once commits complete again, after alice's login with OTP 2 stalled on `d` and OTP 3 was
/// refused at once: both nodes serve by themselves, and the refused logins' audit rows are
/// written.
pub fn serves_again_after_the_stall(d: &Daemon, silent: &Daemon) {
    d.wait_for_log("the database commits again", Duration::from_secs(5));
    assert_eq!(d.metric("otpgate_store_up"), 1.0);
    // the commit that stalled was stored in the end, although its login was refused: that OTP
    // is used up (the safe way round: a login refused, never a replay accepted)
    assert_eq!(d.token("HOTP1")["count"], 2, "{}", d.token("HOTP1"));
    // the logins refused at once wrote nothing: their OTP is still good
    let (answer, _) = login(d, 10, &format!("pin{}", RFC4226[2]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());
    silent.wait_for_log("the database commits again", Duration::from_secs(5));
    let (answer, _) = login(silent, 11, &format!("pin{}", RFC4226[3]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", silent.log());
    wait_for_audit_rows(d, "commits wait", 4);
}

/// A connection to `url` (a role and a database).
async fn connection(url: &str) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

/// Run `sql` as the superuser on the database `postgres`; the first column of its first row.
fn superuser(base_url: &str, sql: &'static str) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = connection(&format!("{base_url}/postgres")).await;
        let mut answer = String::new();
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            let row = sqlx::query(statement).fetch_optional(&mut conn).await;
            if let Some(row) = row.unwrap() {
                answer = sqlx::Row::try_get::<String, _>(&row, 0)
                    .or_else(|_| sqlx::Row::try_get::<i64, _>(&row, 0).map(|n| n.to_string()))
                    .or_else(|_| sqlx::Row::try_get::<i32, _>(&row, 0).map(|n| n.to_string()))
                    .or_else(|_| sqlx::Row::try_get::<bool, _>(&row, 0).map(|b| b.to_string()))
                    .unwrap_or_default();
            }
        }
        answer
    })
}

/// Lock `serial`'s token row in a transaction of its own, as an admin's long transaction would,
/// until the returned sender is used or dropped.
fn hold_token_lock(base_url: &str, serial: &'static str) -> std::sync::mpsc::Sender<()> {
    let url = format!("{base_url}/postgres");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT id FROM token WHERE serial = $1 FOR UPDATE")
                .bind(serial)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            locked.send(()).unwrap();
            let _ = released.recv();
            sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        });
    });
    is_locked.recv().unwrap();
    release
}

/// `pg_terminate_backend` for every other connection to the database `postgres`.
fn terminate_connections(base_url: &str) {
    let killed = superuser(
        base_url,
        "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = 'postgres' AND pid <> pg_backend_pid()",
    );
    assert_ne!(killed, "0", "no otpgate connection to terminate");
}

/// Wait until at least `at_least` validate_check audit rows whose info contains `needle` are
/// in the database. The audit writer retries the batch it holds first and the queued rows
/// follow in later batches, so this waits for the count and not for the first row.
pub fn wait_for_audit_rows(d: &Daemon, needle: &str, at_least: usize) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = d.cli_ok(&["audit", "list", "--event", "validate_check", "--json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&rows).unwrap();
        let found = rows
            .iter()
            .filter(|r| r["info"].as_str().is_some_and(|i| i.contains(needle)))
            .count();
        if found >= at_least {
            return;
        }
        assert!(
            Instant::now() < until,
            "{found} audit rows with {needle:?} after 20 s: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn postgresql_away_and_back() {
    let db = Cluster::create("-outage").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let keys = tempfile::tempdir().unwrap();
    // a small audit queue, which the outage fills
    let (d, silent) = two_nodes(
        &db,
        keys.path(),
        &format!("connect_timeout = {CONNECT_TIMEOUT_S}"),
        "[audit]\nqueue_size = 16\n",
    );

    // connections that break while the database is up (a backend terminated, a firewall's
    // reset) are no outage: sqlx replaces a dead idle connection before handing it out, and a
    // query that fails on one only wakes the probe, which finds the database answering (unit
    // tests in store::diagnostics::health)
    terminate_connections(&db.base_url());
    let (answer, _) = login(&d, 90, "pin000000");
    assert_eq!(answer.map(|a| a.0), Some(Code::AccessReject));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !d.log().contains("the database is unreachable"),
        "{}",
        d.log()
    );

    assert_eq!(d.metric("otpgate_store_up"), 1.0);

    db.stop().unwrap();
    let silent_first = std::thread::scope(|s| {
        let first = s.spawn(|| login(&silent, 2, &format!("pin{}", RFC4226[1])));
        // the first login waits until the check finds the database gone
        let answer = login(&d, 2, &format!("pin{}", RFC4226[1]));
        (first.join().unwrap(), answer)
    });
    let ((silent_answer, _), (answer, took)) = silent_first;
    assert_eq!(silent_answer, None, "no_reply answered during the outage");
    let (code, message) = answer.expect("no answer while the database is down");
    assert_eq!(code, Code::AccessReject);
    assert!(
        took <= Duration::from_secs(CONNECT_TIMEOUT_S) + Duration::from_millis(1500),
        "the first login during the outage took {took:?}"
    );
    // the next ones are refused at once, and say why, also while a probe waits for the
    // database (they come over more than connect_timeout)
    for id in 3..8 {
        std::thread::sleep(Duration::from_millis(500));
        let message = refused_at_once(&d, id, &format!("pin{}", RFC4226[1]));
        assert!(
            message.contains("token store unavailable"),
            "Reply-Message {message:?}"
        );
    }
    assert!(
        message.contains("token store unavailable"),
        "first Reply-Message {message:?}"
    );
    // more refused logins than the audit queue holds: none waits for room in it, the rows
    // that do not fit go to the log
    for id in 20..60 {
        refused_at_once(&d, id, &format!("pin{}", RFC4226[1]));
    }
    d.wait_for_log(
        "audit row written to the log instead",
        Duration::from_secs(1),
    );
    let log = d.log();
    assert_eq!(
        log.matches("the database is unreachable").count(),
        1,
        "one line for the outage, not one per login:\n{log}"
    );
    assert!(
        !log.contains("stored data is inconsistent"),
        "an outage is not corrupt data:\n{log}"
    );
    assert_eq!(d.metric("otpgate_store_up"), 0.0);
    assert!(d.http_get("/healthz").contains("store unavailable"));

    for id in 3..6 {
        let (answer, _) = login_within(
            &silent,
            id,
            &format!("pin{}", RFC4226[1]),
            Duration::from_millis(500),
        );
        assert_eq!(answer, None, "no_reply answered during the outage");
    }
    silent.wait_for_log("result=\"no reply\"", Duration::from_secs(1));
    assert!(
        silent.metric(
            "otpgate_radius_dropped_total{client=\"loopback\",reason=\"store_unavailable\"}"
        ) >= 4.0
    );

    db.resume().unwrap();
    // nothing was consumed while it was away: the same OTP logs in once the database answers
    let mut id = accepted_within(
        &d,
        "alice",
        &format!("pin{}", RFC4226[1]),
        10,
        Duration::from_secs(15),
    );
    d.wait_for_log("the database answers again", Duration::from_secs(2));
    assert_eq!(d.metric("otpgate_store_up"), 1.0);
    assert!(d.http_get("/healthz").contains("ok"));
    let (answer, _) = login(&d, id + 1, &format!("pin{}", RFC4226[1]));
    assert_eq!(answer.unwrap().0, Code::AccessReject, "replay accepted");
    // the silent node answers again too (after its own probe)
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        id += 1;
        let (answer, _) = login_within(
            &silent,
            id,
            &format!("pin{}", RFC4226[2]),
            Duration::from_secs(1),
        );
        match answer {
            Some((code, _)) => {
                assert_eq!(code, Code::AccessAccept);
                break;
            }
            None => assert!(Instant::now() < until, "{}", silent.log()),
        }
    }

    // the refused logins' audit rows were kept and written when it came back
    wait_for_audit_rows(&d, "token store unavailable", 5);
}

/// A primary whose synchronous standby is gone (Patroni's synchronous mode with the replica
/// down) answers every query but holds every commit that wrote until a standby confirms it:
/// for ever, with no error. Logins stop waiting after `commit_timeout` and are refused at once
/// while it lasts; the commit in flight is not given up, and is stored when the standby
/// "comes back".
#[test]
fn commits_that_wait_for_a_missing_synchronous_standby() {
    let db = Cluster::create("-stall").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let keys = tempfile::tempdir().unwrap();
    let (d, silent) = two_nodes(&db, keys.path(), "commit_timeout = 1", "");

    superuser(
        &db.base_url(),
        "ALTER SYSTEM SET synchronous_standby_names = 'ghost'; SELECT pg_reload_conf()",
    );
    // reads still answer, as they do in production
    assert_eq!(superuser(&db.base_url(), "SELECT 1"), "1");
    // the answer says what the commit waits for, as the database tells it
    refused_once_commits_stall(
        &d,
        2,
        &format!("pin{}", RFC4226[1]),
        "(the commit waits for a synchronous standby; synchronous_standby_names = 'ghost')",
    );
    for id in 3..6 {
        refused_at_once(&d, id, &format!("pin{}", RFC4226[2]));
        // the other node's consumption of the same OTP waits behind the stalled one
        let (answer, _) = login_within(
            &silent,
            id,
            &format!("pin{}", RFC4226[1]),
            Duration::from_millis(2500),
        );
        assert_eq!(answer, None, "no_reply answered while commits stall");
    }
    shows_the_stall(&d);

    superuser(
        &db.base_url(),
        "ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()",
    );
    serves_again_after_the_stall(&d, &silent);
}

/// Another session on the database that holds every token row locked (an admin's `psql`
/// left inside `SELECT … FOR UPDATE`), until dropped.
struct RowLocks {
    runtime: tokio::runtime::Runtime,
    conn: Option<sqlx::PgConnection>,
    /// The session's server process.
    pid: i32,
}

impl RowLocks {
    /// As the session of `url` (a role and a database).
    fn take(url: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (conn, pid) = runtime.block_on(async {
            let mut conn = connection(url).await;
            for sql in [
                "SET application_name = 'admin-shell'",
                "BEGIN",
                "SELECT id FROM token FOR UPDATE",
            ] {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            (conn, pid)
        });
        Self {
            runtime,
            conn: Some(conn),
            pid,
        }
    }
}

impl Drop for RowLocks {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.runtime
                .block_on(async move { sqlx::Connection::close(conn).await })
                .ok();
        }
    }
}

/// A commit that waits for a row lock another session holds is a stall too, and the answer
/// names the session. The probe's own commit touches no token row and completes, so the
/// breaker closes again within seconds, and once the lock is gone the token's logins go on.
#[test]
fn a_commit_that_waits_for_a_lock_names_who_holds_it() {
    let db = Cluster::create("-lock").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let keys = tempfile::tempdir().unwrap();
    let (d, _silent) = two_nodes(&db, keys.path(), "commit_timeout = 1", "");

    stalls_while_locked(&d, &format!("{}/postgres", db.base_url()));
}

/// While the session of `url` holds alice's token row, her login (OTP 2) is refused with an
/// answer that names the session; once it lets go, her next OTP logs in.
fn stalls_while_locked(d: &Daemon, url: &str) {
    let locks = RowLocks::take(url);
    refused_once_commits_stall(
        d,
        2,
        &format!("pin{}", RFC4226[1]),
        &format!(
            "(the commit waits for a lock held by process {} (admin-shell))",
            locks.pid
        ),
    );
    drop(locks);
    accepted_within(
        d,
        "alice",
        &format!("pin{}", RFC4226[2]),
        4,
        Duration::from_secs(10),
    );
}

/// As in production, the node's role is no superuser (it owns its database) and the session
/// that holds the lock is another role's, which may read and lock the token rows and nothing
/// more. The node still finds its own waiting commit and names the holder.
#[test]
fn an_unprivileged_node_names_another_roles_lock_holder() {
    let db = Cluster::create("-roles").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    superuser(
        &db.base_url(),
        "CREATE ROLE otpgate LOGIN; CREATE ROLE helpdesk LOGIN; \
         CREATE DATABASE otpgate OWNER otpgate",
    );
    let node_url = format!("postgres://otpgate@127.0.0.1:{}/otpgate", db.port());
    let d = Daemon::start(&Setup {
        database: Some(node_url.clone()),
        database_keys: "commit_timeout = 1".into(),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    let (answer, _) = login(&d, 1, &format!("pin{}", RFC4226[0]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut owner = connection(&node_url).await;
        sqlx::query("GRANT SELECT, UPDATE ON token TO helpdesk")
            .execute(&mut owner)
            .await
            .unwrap();
    });

    stalls_while_locked(
        &d,
        &format!("postgres://helpdesk@127.0.0.1:{}/otpgate", db.port()),
    );
}

/// A node that starts while its PostgreSQL does not answer (it boots first, a failover is
/// under way) waits for it without listening, says so once, and serves when it answers.
#[test]
fn a_node_that_starts_before_its_database_waits_for_it() {
    let db = Cluster::create("-late").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    db.stop().unwrap();
    let resumed = std::thread::scope(|s| {
        let resume = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            db.resume()
        });
        let d = Daemon::start(&Setup {
            database: Some(format!("{}/postgres", db.base_url())),
            database_keys: "connect_timeout = 1".into(),
            ..Default::default()
        });
        resume.join().unwrap().unwrap();
        d
    });
    let log = resumed.log();
    assert_eq!(
        log.matches("waiting for it before serving").count(),
        1,
        "{log}"
    );
    assert!(log.contains("the database answers; starting"), "{log}");
    resumed.enroll_hotp("HOTP1", "alice", "pin");
    let (answer, _) = login(&resumed, 1, &format!("pin{}", RFC4226[0]));
    assert_eq!(answer.unwrap().0, Code::AccessAccept);
}

/// A commit that waits for something that never comes for it (here a row lock an admin's
/// transaction holds; in production a connection to a primary that was powered off) is given
/// up once the database commits again, so that one stuck batch does not hold every later login
/// of the node. Its login was refused and nothing of it was stored.
#[test]
fn a_commit_stuck_while_others_commit_is_given_up() {
    let db = Cluster::create("-stuck").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let d = Daemon::start(&Setup {
        database: Some(format!("{}/postgres", db.base_url())),
        database_keys: "commit_timeout = 1".into(),
        ..Default::default()
    });
    d.enroll_hotp("HOTP1", "alice", "pin");
    d.enroll_hotp("HOTP2", "bob", "pin");
    let wait = Duration::from_secs(6);
    let (answer, _) = login_as(&d, "alice", 1, &format!("pin{}", RFC4226[0]), wait);
    assert_eq!(answer.unwrap().0, Code::AccessAccept);

    let release = hold_token_lock(&db.base_url(), "HOTP1");
    let (answer, took) = login_as(&d, "alice", 2, &format!("pin{}", RFC4226[1]), wait);
    let (code, message) = answer.expect("no answer while alice's token is locked");
    assert_eq!(code, Code::AccessReject);
    assert!(
        message.contains("token store unavailable"),
        "Reply-Message {message:?}"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    d.wait_for_log("was given up", Duration::from_secs(5));
    assert_eq!(d.metric("otpgate_store_commits_given_up_total"), 1.0);
    // the writer went on: bob's token is not locked
    let (answer, took) = login_as(&d, "bob", 3, &format!("pin{}", RFC4226[0]), wait);
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());
    assert!(took < Duration::from_millis(500), "took {took:?}");

    release.send(()).unwrap();
    // the batch given up was not committed: alice's OTP is still good
    let (answer, _) = login_as(&d, "alice", 4, &format!("pin{}", RFC4226[1]), wait);
    assert_eq!(answer.unwrap().0, Code::AccessAccept, "{}", d.log());
}

/// Commits stall, then the connections waiting for the standby go silent (the primary they
/// reached was powered off under a floating address: no error, no reset), while the node's
/// other connections, and new ones, reach a database that commits again. Neither the silent
/// commit nor the probe's silent write holds the node: the probe finds its server process idle
/// and writes again, the commit is given up, and the node serves.
#[test]
fn silent_connections_during_a_stall_do_not_hold_the_node() {
    let db = Cluster::create("-silent").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let (proxy, d) = node_behind_blackhole(&db, "commit_timeout = 1");
    d.enroll_hotp("HOTP2", "bob", "pin");
    let wait = Duration::from_secs(6);
    let (answer, _) = login_as(&d, "alice", 1, &format!("pin{}", RFC4226[0]), wait);
    assert_eq!(answer.unwrap().0, Code::AccessAccept);

    superuser(
        &db.base_url(),
        "ALTER SYSTEM SET synchronous_standby_names = 'ghost'; SELECT pg_reload_conf()",
    );
    let (answer, _) = login_as(&d, "alice", 2, &format!("pin{}", RFC4226[1]), wait);
    assert_eq!(answer.map(|a| a.0), Some(Code::AccessReject));
    // the stalled commit and the probe's write, each waiting on a connection of its own
    let until = Instant::now() + Duration::from_secs(5);
    let waiting: Vec<u16> = loop {
        let ports = superuser(
            &db.base_url(),
            "SELECT COALESCE(string_agg(client_port::text, ','), '') FROM pg_stat_activity \
             WHERE wait_event = 'SyncRep'",
        );
        let ports: Vec<u16> = ports.split(',').filter_map(|p| p.parse().ok()).collect();
        if ports.len() >= 2 {
            break ports;
        }
        assert!(Instant::now() < until, "waiting for the standby: {ports:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(proxy.silence(&waiting), waiting.len());
    superuser(
        &db.base_url(),
        "ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()",
    );

    // within 30 s of the database committing again
    accepted_within(
        &d,
        "bob",
        &format!("pin{}", RFC4226[0]),
        10,
        Duration::from_secs(30),
    );
    d.wait_for_log("was given up", Duration::from_secs(1));
}

/// The primary is powered off under a floating address: every connection the node holds goes
/// silent, new connections reach the new primary. The node serves again without a restart,
/// within seconds (2 s here, with `connect_timeout = 2`), not after the kernel gives the
/// silent connections up.
#[test]
fn every_connection_silent_after_a_failover() {
    let db = Cluster::create("-poweroff").unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let (proxy, d) = node_behind_blackhole(&db, "commit_timeout = 1\nconnect_timeout = 2");
    let wait = Duration::from_secs(6);
    for (id, otp) in RFC4226[..3].iter().enumerate() {
        let (answer, _) = login_as(&d, "alice", id as u8, &format!("pin{otp}"), wait);
        assert_eq!(answer.unwrap().0, Code::AccessAccept);
    }
    let silenced = proxy.silence_all();
    let until = Instant::now() + Duration::from_secs(20);
    let mut id = 10;
    let mut otp = 3;
    loop {
        let (answer, _) = login_as(&d, "alice", id, &format!("pin{}", RFC4226[otp]), wait);
        match &answer {
            Some((Code::AccessAccept, _)) => break,
            Some((_, m)) if !m.starts_with("ERR") => otp += 1,
            _ => {}
        }
        assert!(
            Instant::now() < until,
            "{silenced} connections silenced; still no Access-Accept after 20 s: {answer:?}\n{}",
            d.log()
        );
        id = id.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(d.metric("otpgate_store_pool_connections ") >= 1.0);
}
