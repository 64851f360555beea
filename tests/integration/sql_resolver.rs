//! The `sql` resolver on SQLite, PostgreSQL and MariaDB: a table mapping and a query of the
//! admin's own, attributes and groups, and every password hash format with known vectors.

use crate::daemon::{Daemon, Setup};

/// Users and their passwords, one hash format each (vectors made by Python's bcrypt and
/// crypt, and OpenLDAP's slappasswd).
fn users() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("alice", crate::harness::hash("alice-pw"), "alice-pw"),
        (
            "carol",
            "$2b$05$mwthOKPH84.TumFQ5ZRXOucyM.ljRVOu9SZeYtmQEIEgRJDc5IMHa".into(),
            "carol-pw",
        ),
        (
            "dave",
            "$6$rounds=5000$saltsalt$4cG9yuHFN6bSGpXWjso316tFclI3374MZThqLsDiELx1gkA8qYB/7wKUMSvatgURutSZxsi2IIuFHRION7WR/0".into(),
            "dave-pw",
        ),
        ("erin", "{SSHA}d57li5wZqG/jU8/TO8z4X0cq90AR6kof".into(), "erin-pw"),
        (
            "frank",
            "{SSHA512}kNfm2dDDAR10/oIRD6ZIv8GIfik1PRxFWfpron7627WPsJvnK8c7ZVt75GzKe5YlJcaEzes3xuKHmVYSRbZqiDHJJbfHh+Dp".into(),
            "frank-pw",
        ),
    ]
}

/// The statements that make the application's user table.
fn setup_sql() -> Vec<String> {
    let mut out = vec![
        "CREATE TABLE app_users (login VARCHAR(64) PRIMARY KEY, pw VARCHAR(255), \
         mail VARCHAR(255), roles VARCHAR(255), first_name VARCHAR(64), active INTEGER)"
            .to_owned(),
    ];
    for (login, hash, _) in users() {
        out.push(format!(
            "INSERT INTO app_users VALUES ('{login}', '{hash}', '{login}@example.org', 'vpn;staff', 'N-{login}', 1)"
        ));
    }
    out.push(
        "INSERT INTO app_users VALUES ('gone', NULL, 'gone@example.org', '', 'Gone', 0)".into(),
    );
    out
}

fn resolver(database: &str) -> String {
    format!(
        "[[resolver]]\nname = \"app\"\ntype = \"sql\"\ndatabase = \"{database}\"\ntable = \"app_users\"\n\
         attributes = {{ username = \"login\", password = \"pw\", email = \"mail\", groups = \"roles\", givenname = \"first_name\" }}\n\
         where = \"active = 1\"\n\
         [[resolver]]\nname = \"appq\"\ntype = \"sql\"\ndatabase = \"{database}\"\n\
         query = \"SELECT login AS username, pw AS password, mail AS email FROM app_users WHERE login = ? AND active = 1\"\n\
         [[realm]]\nname = \"app\"\nresolvers = [\"app\"]\n\
         [[realm]]\nname = \"appq\"\nresolvers = [\"appq\"]\n"
    )
}

fn check(d: &Daemon, user: &str, password: &str) -> bool {
    let out = d.cli_stdin(
        &["user", "check", user, "--password-stdin"],
        &format!("{password}\n"),
    );
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "user check {user}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn exercise(database: &str) {
    let d = Daemon::start(&Setup {
        extra: resolver(database),
        ..Default::default()
    });
    let out = d.cli_ok(&["user", "show", "alice@app", "--json"]);
    let alice: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(alice["resolver"], "app");
    assert_eq!(alice["attributes"]["email"], "alice@example.org");
    assert_eq!(alice["attributes"]["givenname"], "N-alice");
    assert_eq!(alice["groups"], serde_json::json!(["vpn", "staff"]));
    for (login, _, password) in users() {
        for realm in ["app", "appq"] {
            let user = format!("{login}@{realm}");
            assert!(check(&d, &user, password), "{user} with its password");
            assert!(
                !check(&d, &user, &format!("{password}x")),
                "{user} with a wrong one"
            );
        }
    }
    // the where condition hides inactive rows; an injection attempt is a bound parameter
    for user in [
        "gone@app",
        "gone@appq",
        "' OR '1'='1@app",
        "x' OR 1=1 --@appq",
    ] {
        assert!(
            !d.cli(&["user", "show", user]).status.success(),
            "{user} must not be found"
        );
    }
    let list = d.cli_ok(&["user", "list", "--realm", "app", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(list.len(), users().len());
}

#[test]
fn sql_resolver_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for s in setup_sql() {
        conn.execute(&s, []).unwrap();
    }
    drop(conn);
    exercise(&format!("sqlite:{}", path.display()));
}

/// The application's table on a server sqlx speaks to, then the resolver's checks.
macro_rules! load_and_exercise {
    ($connection:ty, $url:expr) => {{
        let url: String = $url;
        let mut conn = <$connection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for s in setup_sql() {
            sqlx::query(sqlx::AssertSqlSafe(s))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        tokio::task::spawn_blocking(move || exercise(&url))
            .await
            .unwrap();
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_resolver_on_postgresql() {
    load_and_exercise!(sqlx::PgConnection, crate::pg::fresh_database().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_resolver_on_mariadb() {
    let server = crate::mariadb::MariaDb::start();
    load_and_exercise!(sqlx::MySqlConnection, server.url());
}
