//! The db store against the MariaDB and PostgreSQL of the machine (MYSQL_URL,
//! POSTGRES_URL) and a SQLite file per test; each test owns a table prefix, its table
//! dropped before use. A server that cannot be reached fails the test.
use super::*;
use crate::session::DEFAULT_MAX_BYTES;
use crate::store::conformance;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection as _};

fn url(backend: Backend) -> String {
    match backend {
        Backend::MySql => {
            std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
        }
        Backend::Postgres => std::env::var("POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into()),
        Backend::Sqlite => unreachable!("SQLite tests use a file of their own"),
    }
}

/// Runs `sql` (statements separated by `;`) on a connection of its own.
async fn execute(backend: Backend, target: &str, sql: String) {
    let sql = AssertSqlSafe(sql);
    let done = match backend {
        Backend::MySql => {
            let mut c = MySqlConnection::connect(target).await.unwrap_or_else(|e| {
                panic!("these tests need MariaDB at {target} (set MYSQL_URL): {e}")
            });
            sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
        }
        Backend::Postgres => {
            let mut c = PgConnection::connect(target).await.unwrap_or_else(|e| {
                panic!("these tests need PostgreSQL at {target} (set POSTGRES_URL): {e}")
            });
            sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
        }
        Backend::Sqlite => {
            let options = SqliteConnectOptions::new()
                .filename(target)
                .create_if_missing(true);
            let mut c = SqliteConnection::connect_with(&options).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
        }
    };
    done.unwrap();
}

/// MariaDB's count of deadlocks since it started (every database, every client).
async fn mariadb_deadlocks() -> i64 {
    let mut c = MySqlConnection::connect(&url(Backend::MySql))
        .await
        .unwrap();
    let row = sqlx::query("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    row.try_get::<String, _>(1).unwrap().parse().unwrap()
}

struct Fixture {
    backend: Backend,
    target: String,
    prefix: String,
    _folder: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A fresh, empty place for table `tsn_rust_<name>_session`.
    async fn new(backend: Backend, name: &str) -> Fixture {
        let prefix = format!("tsn_rust_{name}_");
        let (target, folder) = match backend {
            Backend::Sqlite => {
                let folder = tempfile::tempdir().unwrap();
                let path = folder.path().join("sessions.sqlite");
                (path.to_string_lossy().into_owned(), Some(folder))
            }
            _ => (url(backend), None),
        };
        let fixture = Fixture {
            backend,
            target,
            prefix,
            _folder: folder,
        };
        fixture
            .execute(format!("DROP TABLE IF EXISTS {}session", fixture.prefix))
            .await;
        fixture
    }

    async fn execute(&self, sql: String) {
        execute(self.backend, &self.target, sql).await
    }

    fn options(&self) -> DbOptions {
        let connection = match self.backend {
            Backend::Sqlite => Connection {
                backend: Some(Backend::Sqlite),
                database: Some(self.target.clone()),
                ..Connection::default()
            },
            _ => Connection {
                url: Some(self.target.clone()),
                ..Connection::default()
            },
        };
        DbOptions {
            connection,
            prefix: self.prefix.clone(),
            pool_size: 4,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            create_table: true,
            max_bytes: 200,
        }
    }

    fn store(&self) -> DbStore {
        DbStore::new(self.options()).unwrap()
    }
}

const BACKENDS: [Backend; 3] = [Backend::MySql, Backend::Postgres, Backend::Sqlite];

fn id(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

#[tokio::test]
async fn meets_the_store_contract_on_every_backend() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "contract").await;
        let store = fixture.store();
        conformance::check(&store).await;
        conformance::check_gc(&store).await;
    }
}

#[tokio::test]
async fn concurrent_writers_of_one_session_keep_every_key() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "concurrent").await;
        let store = DbStore::new(DbOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            pool_size: 10,
            ..fixture.options()
        })
        .unwrap();
        let now = crate::session::now_ms();
        let patches: Vec<Patch> = (0..50)
            .map(|i| Patch::of(&[(format!("k{i}").as_str(), &format!("{i}"))], 60_000))
            .collect();
        // Each write at its own time, so each moves the row's expiry (as requests do):
        // writers then contend for the expiry index too, where MariaDB can deadlock, the
        // more likely the more rows the table holds.
        for other in 0..200 {
            let patch = Patch::of(&[("n", "1")], 60_000);
            store
                .apply_patch(&id(&format!("other-session-{other}")), &patch, now + other)
                .await
                .unwrap();
        }
        let deadlocks = mariadb_deadlocks().await;
        // MariaDB's deadlocks came about one round in twenty.
        let rounds = if backend == Backend::MySql { 40 } else { 3 };
        for round in 0..rounds {
            let a = id(&format!("concurrent-session-{round}"));
            let writes = (0..)
                .zip(&patches)
                .map(|(i, p)| store.apply_patch(&a, p, now + i));
            for result in futures_util::future::join_all(writes).await {
                result.unwrap();
            }
            let data: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&store.load(&a, now).await.unwrap().unwrap().data).unwrap();
            assert_eq!(data.len(), 50, "{backend:?}: {data:?}");
        }
        // None deadlocked: writers of one row queue on its cookie. (The count is the
        // server's: a client elsewhere could add to it.)
        if backend == Backend::MySql {
            assert_eq!(mariadb_deadlocks().await, deadlocks, "writers deadlocked");
        }
    }
}

#[tokio::test]
async fn two_processes_writing_one_session_keep_both_writes() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "processes").await;
        // Two stores: each keeps its own last-seen rows, stale once the other writes.
        let (one, two) = (fixture.store(), fixture.store());
        let a = id("processes-session");
        for (i, store) in [&one, &two, &one, &two, &one].into_iter().enumerate() {
            let patch = Patch::of(&[(format!("k{i}").as_str(), "true")], 60_000);
            store.apply_patch(&a, &patch, i as i64).await.unwrap();
        }
        let touched = two.touch(&a, 60_000, 10).await.unwrap();
        assert!(touched);
        one.apply_patch(&a, &Patch::of(&[("k0", "null")], 60_000), 11)
            .await
            .unwrap();
        let record = two.load(&a, 12).await.unwrap().unwrap();
        assert_eq!(
            record.data, r#"{"k1":true,"k2":true,"k3":true,"k4":true}"#,
            "{backend:?}"
        );
        assert_eq!(record.expires_at_ms, 60_011);
    }
}

#[tokio::test]
async fn keeps_the_exact_text_of_values() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "exact").await;
        let store = fixture.store();
        let a = id("exact-session");
        let values = [
            ("big", "9007199254740991"),
            ("f", "0.1"),
            ("e", "1e+21"),
            ("ü", r#""日本 ✓ \"q\"""#),
        ];
        store
            .apply_patch(&a, &Patch::of(&values, 60_000), 0)
            .await
            .unwrap();
        let data = store.load(&a, 1).await.unwrap().unwrap().data;
        assert_eq!(
            data, r#"{"big":9007199254740991,"f":0.1,"e":1e+21,"ü":"日本 ✓ \"q\""}"#,
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn reads_and_writes_thinkjs2_tables_without_maxage() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "thinkjs2").await;
        let t = format!("{}session", fixture.prefix);
        let id_column = match backend {
            Backend::MySql => "id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY",
            Backend::Postgres => "id serial PRIMARY KEY",
            Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        fixture
            .execute(format!(
                "CREATE TABLE {t} ({id_column}, cookie varchar(255) NOT NULL DEFAULT '' UNIQUE, \
                 data text, expire bigint NOT NULL)"
            ))
            .await;
        fixture
            .execute(format!(
                "INSERT INTO {t} (cookie, data, expire) VALUES ('thinkjs2-session', '{{\"user\":\"bob\"}}', 5000)"
            ))
            .await;
        let store = fixture.store();
        let a = id("thinkjs2-session");
        let record = store.load(&a, 1_000).await.unwrap().unwrap();
        assert_eq!(record.data, r#"{"user":"bob"}"#);
        assert!(
            !record.needs_refresh(1_000, 0.5),
            "{backend:?}: a read never refreshes"
        );
        store
            .apply_patch(&a, &Patch::of(&[("n", "1")], 60_000), 1_000)
            .await
            .unwrap();
        let record = store.load(&a, 1_001).await.unwrap().unwrap();
        assert_eq!(record.data, r#"{"user":"bob","n":1}"#, "{backend:?}");
        assert_eq!(record.expires_at_ms, 61_000);
    }
}

#[tokio::test]
async fn unreadable_rows_are_errors_to_read_and_replaced_by_a_write() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "corrupt").await;
        let store = fixture.store();
        let a = id("corrupt-session");
        store
            .apply_patch(&a, &Patch::of(&[("k", "1")], 60_000), 0)
            .await
            .unwrap();
        fixture
            .execute(format!(
                "UPDATE {}session SET data = '{{not json' WHERE cookie = 'corrupt-session'",
                fixture.prefix
            ))
            .await;
        let err = store.load(&a, 1).await.unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_STORE");
        assert!(err.to_string().contains(backend.name()), "{err}");
        store
            .apply_patch(&a, &Patch::of(&[("k", "2")], 60_000), 1)
            .await
            .unwrap();
        assert_eq!(store.load(&a, 2).await.unwrap().unwrap().data, r#"{"k":2}"#);
    }
}

#[tokio::test]
async fn refuses_data_over_the_limit_and_keeps_the_row() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "limit").await;
        let store = fixture.store();
        let a = id("limit-session");
        store
            .apply_patch(&a, &Patch::of(&[("k", "1")], 60_000), 0)
            .await
            .unwrap();
        let big = format!("\"{}\"", "x".repeat(300));
        let err = store
            .apply_patch(&a, &Patch::of(&[("big", big.as_str())], 60_000), 0)
            .await
            .unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_TOO_LARGE");
        assert_eq!(store.load(&a, 1).await.unwrap().unwrap().data, r#"{"k":1}"#);
    }
}

#[tokio::test]
async fn a_mysql_text_column_lowers_the_limit_to_what_it_holds() {
    let fixture = Fixture::new(Backend::MySql, "text").await;
    fixture
        .execute(format!(
            "CREATE TABLE {}session (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             cookie varchar(255) NOT NULL DEFAULT '' UNIQUE, data text, \
             expire bigint NOT NULL DEFAULT 0, maxage int NOT NULL DEFAULT 0) CHARSET=utf8mb4",
            fixture.prefix
        ))
        .await;
    let store = DbStore::new(DbOptions {
        max_bytes: DEFAULT_MAX_BYTES,
        ..fixture.options()
    })
    .unwrap();
    let a = id("text-session");
    let big = format!("\"{}\"", "x".repeat(70_000));
    let err = store
        .apply_patch(&a, &Patch::of(&[("big", big.as_str())], 60_000), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: 65_535, .. }),
        "{err}"
    );
    // think-session-mysql's `maxage int` takes lifetimes past 24.8 days, capped
    let year = 365 * 24 * 3600 * 1000;
    store
        .apply_patch(&a, &Patch::of(&[("k", "1")], year), 0)
        .await
        .unwrap();
    assert_eq!(
        store.load(&a, 1).await.unwrap().unwrap().expires_at_ms,
        year
    );
}

#[tokio::test]
async fn merges_into_a_latin1_mysql_table() {
    let fixture = Fixture::new(Backend::MySql, "latin1").await;
    fixture
        .execute(format!(
            "CREATE TABLE {}session (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             cookie varchar(255) NOT NULL DEFAULT '' UNIQUE, data text CHARACTER SET latin1, \
             expire bigint NOT NULL DEFAULT 0, maxage int NOT NULL DEFAULT 0) CHARSET=latin1",
            fixture.prefix
        ))
        .await;
    let (one, two) = (fixture.store(), fixture.store());
    let a = id("latin1-session");
    one.apply_patch(&a, &Patch::of(&[("name", r#""José""#)], 60_000), 0)
        .await
        .unwrap();
    // a second store reads the row back from the table, then merges into it
    two.apply_patch(&a, &Patch::of(&[("n", "1")], 60_000), 1)
        .await
        .unwrap();
    assert_eq!(
        one.load(&a, 2).await.unwrap().unwrap().data,
        r#"{"name":"José","n":1}"#
    );
}

#[tokio::test]
async fn a_table_without_a_unique_cookie_fails_a_write_at_once() {
    let fixture = Fixture::new(Backend::Sqlite, "duplicate").await;
    let t = format!("{}session", fixture.prefix);
    fixture
        .execute(format!(
            "CREATE TABLE {t} (cookie text, data text, expire bigint, maxage bigint); \
             INSERT INTO {t} VALUES ('duplicate-session', '{{}}', 99999, 60000); \
             INSERT INTO {t} VALUES ('duplicate-session', '{{}}', 99999, 60000)"
        ))
        .await;
    let store = fixture.store();
    let started = std::time::Instant::now();
    let err = store
        .apply_patch(
            &id("duplicate-session"),
            &Patch::of(&[("k", "1")], 60_000),
            0,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no UNIQUE index on `cookie`"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_missing_table_is_created_only_when_allowed() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "missing").await;
        let store = DbStore::new(DbOptions {
            create_table: false,
            ..fixture.options()
        })
        .unwrap();
        let err = store.load(&id("missing-session"), 0).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("tsn_rust_missing_session` does not exist"),
            "{err}"
        );
        assert!(fixture
            .store()
            .load(&id("missing-session"), 0)
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn a_closed_store_fails_every_call_and_lets_its_connections_go() {
    for backend in BACKENDS {
        let fixture = Fixture::new(backend, "closed").await;
        let store = fixture.store();
        let session = id("closed-session");
        store
            .apply_patch(&session, &Patch::of(&[("k", "1")], 60_000), 0)
            .await
            .unwrap();
        store.close().await.unwrap();
        let err = store.load(&session, 0).await.unwrap_err();
        assert!(
            err.to_string().contains("closed pool"),
            "{backend:?}: {err}"
        );
        assert!(
            fixture.store().load(&session, 0).await.unwrap().is_some(),
            "{backend:?}: another store still reads the row"
        );
    }
}

#[test]
fn a_prefix_that_is_not_an_identifier_is_refused_at_creation() {
    let fixture = Fixture {
        backend: Backend::MySql,
        target: url(Backend::MySql),
        prefix: String::new(),
        _folder: None,
    };
    for prefix in ["x`; DROP TABLE users; -- ", "a b", "t\"", "1abc"] {
        let err = DbStore::new(DbOptions {
            prefix: prefix.into(),
            ..fixture.options()
        })
        .err()
        .unwrap();
        assert_eq!(err.code().as_str(), "ERR_SESSION_OPTIONS", "{prefix}");
    }
}

#[tokio::test]
async fn a_server_that_is_down_fails_fast_naming_the_database() {
    // A port nothing listens on: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    for (backend, scheme) in [(Backend::MySql, "mysql"), (Backend::Postgres, "postgres")] {
        let store = DbStore::new(DbOptions {
            connection: Connection {
                url: Some(format!("{scheme}://root@127.0.0.1:{port}/test")),
                ..Connection::default()
            },
            prefix: String::new(),
            pool_size: 2,
            connect_timeout: Duration::from_millis(500),
            query_timeout: Duration::from_millis(800),
            create_table: true,
            max_bytes: DEFAULT_MAX_BYTES,
        })
        .unwrap();
        let started = std::time::Instant::now();
        let err = store.load(&id("down-session"), 0).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} 127.0.0.1:{port}/test", backend.name())),
            "{text}"
        );
    }
}

#[tokio::test]
async fn recovers_when_the_server_kills_its_connections() {
    execute(
        Backend::MySql,
        &url(Backend::MySql),
        "CREATE DATABASE IF NOT EXISTS tsn_rust_kill".into(),
    )
    .await;
    let target = url(Backend::MySql).replace("/test", "/tsn_rust_kill");
    let fixture = Fixture {
        backend: Backend::MySql,
        target: target.clone(),
        prefix: "tsn_rust_kill_".into(),
        _folder: None,
    };
    fixture
        .execute("DROP TABLE IF EXISTS tsn_rust_kill_session".into())
        .await;
    let store = fixture.store();
    let a = id("kill-session");
    let now = crate::session::now_ms();
    store
        .apply_patch(&a, &Patch::of(&[("before", "1")], 60_000), now)
        .await
        .unwrap();
    let mut admin = MySqlConnection::connect(&target).await.unwrap();
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
         WHERE db = 'tsn_rust_kill' AND id <> CONNECTION_ID()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ids.is_empty(), "the store holds a connection");
    for (conn,) in ids {
        sqlx::raw_sql(AssertSqlSafe(format!("KILL {conn}")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    store
        .apply_patch(&a, &Patch::of(&[("after", "2")], 60_000), now)
        .await
        .unwrap();
    assert_eq!(
        store.load(&a, now).await.unwrap().unwrap().data,
        r#"{"before":1,"after":2}"#
    );
}

#[tokio::test]
async fn the_sqlite_file_and_its_folder_are_the_owners_alone() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    let options = |database: &std::path::Path, trust_folder| DbOptions {
        connection: Connection {
            backend: Some(Backend::Sqlite),
            database: Some(database.to_string_lossy().into_owned()),
            trust_folder,
            ..Connection::default()
        },
        prefix: String::new(),
        pool_size: 2,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        query_timeout: DEFAULT_QUERY_TIMEOUT,
        create_table: true,
        max_bytes: DEFAULT_MAX_BYTES,
    };
    let file = dir.path().join("made/here/sessions.sqlite");
    let store = DbStore::new(options(&file, false)).unwrap();
    let id = SessionId::parse("sqlite-private").unwrap();
    store
        .apply_patch(&id, &Patch::of(&[("k", "1")], 60_000), 0)
        .await
        .unwrap();
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    for name in [
        "sessions.sqlite",
        "sessions.sqlite-wal",
        "sessions.sqlite-shm",
    ] {
        assert_eq!(mode(&file.with_file_name(name)), 0o600, "{name}");
    }
    store.close().await.unwrap();
    // a folder others may write in is refused when the handle is made
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = DbStore::new(options(&shared.join("s.sqlite"), false))
        .err()
        .unwrap();
    assert_eq!(err.code().as_str(), "ERR_SESSION_OPTIONS");
    assert!(err.to_string().contains("mode 0777"), "{err}");
    assert!(DbStore::new(options(&shared.join("s.sqlite"), true)).is_ok());
    // a folder the file shares with the app's other files is checked, not changed
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(DbStore::new(options(&runtime.join("s.sqlite"), false)).is_ok());
    assert_eq!(mode(&runtime), 0o755);
    assert_eq!(mode(&runtime.join("s.sqlite")), 0o600);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), unsafe {
        libc::geteuid()
    });
}
