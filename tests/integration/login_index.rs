//! The audit table's per-user index follows the `auth_max_*` policies (`store::login_index`):
//! built when the serving daemon's configuration has one, at start or at a reload; dropped on
//! SQLite when none is left; kept on a shared PostgreSQL, and rebuilt there when a failed build
//! left it invalid.

use std::path::Path;
use std::time::Duration;

use otpgate::store::login_index::{IndexChange, IndexState};
use otpgate::store::{Database, Store, StoreSettings};

use crate::daemon::{Daemon, Setup};

const LIMIT: &str = "\n[[policy]]\nname = \"limit\"\nscope = \"authorization\"\n\
                     actions = { auth_max_fail = \"2/1m\" }\n";

fn sqlite_index_count(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'audit_user'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn the_daemon_builds_and_drops_the_index_with_its_policies() {
    let d = Daemon::start(&Setup::default());
    let db = d.config.parent().unwrap().join("otpgate.db");
    assert_eq!(sqlite_index_count(&db), 0, "no policy counts logins");
    d.enroll_hotp("HOTP1", "alice", "pin");

    let plain = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{plain}{LIMIT}")).unwrap();
    d.sighup();
    d.wait_for_log("audit_user index built", Duration::from_secs(10));
    assert_eq!(sqlite_index_count(&db), 1);
    // and the daemon's policy counts through it
    let login = |pass: &str| {
        let password = format!("User-Password = {pass}");
        d.radclient(
            "auth",
            &[
                "User-Name = alice",
                &password,
                "Message-Authenticator = 0x00",
            ],
        )
    };
    for wrong in ["pin000000", "pin000001"] {
        assert_eq!(login(wrong).code, "Access-Reject");
    }
    let r = login("pin755224");
    assert_eq!(r.code, "Access-Reject", "{}", r.raw);
    assert_eq!(
        r.attr("Reply-Message"),
        Some("Only 2 failed authentications per 0:01:00 allowed.")
    );

    std::fs::write(&d.config, &plain).unwrap();
    d.sighup();
    d.wait_for_log("audit_user index dropped", Duration::from_secs(10));
    assert_eq!(sqlite_index_count(&db), 0);
}

#[test]
fn a_daemon_started_with_the_policy_builds_the_index() {
    let d = Daemon::start(&Setup {
        extra: LIMIT.into(),
        ..Setup::default()
    });
    d.wait_for_log("audit_user index built", Duration::from_secs(10));
    assert_eq!(
        sqlite_index_count(&d.config.parent().unwrap().join("otpgate.db")),
        1
    );
}

/// What aligning did, with the build's time left out, and the state after it.
async fn align(store: &Store, needed: bool) -> (IndexChange, IndexState) {
    let change = match store.align_login_index(needed).await.unwrap() {
        IndexChange::Built(_) => IndexChange::Built(Duration::ZERO),
        other => other,
    };
    (change, store.login_index_state().await.unwrap())
}

/// From a fresh store (no index), align step by step and check each outcome.
async fn walk(store: &Store, steps: &[(bool, (IndexChange, IndexState))]) {
    assert_eq!(store.login_index_state().await.unwrap(), IndexState::Absent);
    for (needed, outcome) in steps {
        assert_eq!(align(store, *needed).await, *outcome, "needed: {needed}");
    }
}

const BUILT: IndexChange = IndexChange::Built(Duration::ZERO);

fn settings(database: Database) -> StoreSettings {
    StoreSettings {
        max_connections: 3,
        ..crate::harness::store_settings(database)
    }
}

/// On SQLite the index comes and goes with the need, through the writer, and asking twice
/// changes nothing.
#[tokio::test]
async fn sqlite_builds_and_drops_it_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&settings(Database::Sqlite(dir.path().join("otpgate.db"))))
        .await
        .unwrap();
    walk(
        &store,
        &[
            (false, (IndexChange::Unchanged, IndexState::Absent)),
            (true, (BUILT, IndexState::Present)),
            (true, (IndexChange::Unchanged, IndexState::Present)),
            (false, (IndexChange::Dropped, IndexState::Absent)),
        ],
    )
    .await;
    store.close().await;
}

/// On PostgreSQL a node builds the index concurrently, leaves it to the others when it does
/// not need it, and rebuilds one that a failed build left invalid.
#[tokio::test]
async fn postgresql_builds_keeps_and_repairs_the_index() {
    let url = crate::pg::fresh_database().await;
    let store = Store::open(&settings(Database::Postgres(url.clone())))
        .await
        .unwrap();
    walk(
        &store,
        &[
            (false, (IndexChange::Unchanged, IndexState::Absent)),
            (true, (BUILT, IndexState::Present)),
            (false, (IndexChange::KeptForOtherNodes, IndexState::Present)),
        ],
    )
    .await;

    // what a build that was cancelled halfway leaves behind
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE pg_index SET indisvalid = false \
         WHERE indexrelid = 'audit_user'::regclass",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        store.login_index_state().await.unwrap(),
        IndexState::Invalid
    );
    assert_eq!(align(&store, true).await, (BUILT, IndexState::Present));
    store.close().await;
}
