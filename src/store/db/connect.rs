//! Where the sessions live: the backend and its connection options from a URL and/or
//! think-mysql's option names, and the pool of connections to it.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;

use super::sql::Backend;
use super::{pool, DbOptions};
use crate::error::{Error, Result};
use crate::store::private::{self, PrivateFolders};

/// Where the sessions live: a URL, or the parts of one (think-mysql's option names).
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// 'mysql' | 'postgresql' | 'sqlite' (and aliases); implied by `url` when it has one.
    pub backend: Option<Backend>,
    /// `mysql://…`, `postgres://…` or `sqlite:path`; the fields below override its parts.
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database, or with SQLite the file's path.
    pub database: Option<String>,
    /// SQLite: use a folder that another user owns or may write in, or that is a link.
    pub trust_folder: bool,
}

/// The pool of the store's backend.
pub(super) enum Pools {
    MySql(pool::Pool<MySqlConnection>),
    Postgres(pool::Pool<PgConnection>),
    Sqlite(pool::Pool<SqliteConnection>),
}

/// Connection options with the fields given beside (or instead of) a URL; MySQL and
/// PostgreSQL name their setters alike.
macro_rules! with_fields {
    ($options:expr, $c:expr) => {{
        let mut o = $options;
        if let Some(host) = &$c.host {
            o = o.host(host);
        }
        if let Some(port) = $c.port {
            o = o.port(port);
        }
        if let Some(user) = &$c.user {
            o = o.username(user);
        }
        if let Some(password) = $c.password.as_deref().filter(|p| !p.is_empty()) {
            o = o.password(password);
        }
        if let Some(database) = &$c.database {
            o = o.database(database);
        }
        o
    }};
}

/// The pool for `options` and the address failures name; nothing connects yet.
pub(super) fn connect(options: &DbOptions) -> Result<(Pools, String)> {
    let c = &options.connection;
    let backend = match (c.backend, c.url.as_deref()) {
        (Some(backend), _) => backend,
        (None, Some(url)) => Backend::from_url(url).ok_or_else(|| Error::InvalidOption {
            name: "url",
            reason: format!("{url:?} is not a mysql://, postgres:// or sqlite: URL"),
        })?,
        (None, None) => {
            return Err(Error::InvalidOption {
                name: "dialect",
                reason: "cannot tell which database to speak to: set `dialect` to 'mysql', 'postgresql' or 'sqlite', or give a `url` (think-session replaces `type` with the adapter's key)".into(),
            })
        }
    };
    let url_error = |e: sqlx::Error| Error::InvalidOption {
        name: "url",
        reason: e.to_string(),
    };
    let (size, timeout) = (options.pool_size, options.connect_timeout);
    let (pool, address) = match backend {
        Backend::MySql => {
            let o = match &c.url {
                Some(url) => MySqlConnectOptions::from_str(url).map_err(url_error)?,
                // think-mysql's defaults
                None => MySqlConnectOptions::new()
                    .host("127.0.0.1")
                    .username("root"),
            };
            let o = with_fields!(o, c);
            let database = o.get_database().ok_or_else(|| Error::InvalidOption {
                name: "database",
                reason: "MySQL needs the name of the database that holds the session table".into(),
            })?;
            let address = format!("mysql {}:{}/{database}", o.get_host(), o.get_port());
            let o = o.disable_statement_logging();
            (Pools::MySql(pool::Pool::new(o, size, timeout)), address)
        }
        Backend::Postgres => {
            let o = match &c.url {
                Some(url) => PgConnectOptions::from_str(url).map_err(url_error)?,
                None => PgConnectOptions::new(),
            };
            let o = with_fields!(o, c);
            let address = format!(
                "postgresql {}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            );
            let o = o.disable_statement_logging();
            (Pools::Postgres(pool::Pool::new(o, size, timeout)), address)
        }
        Backend::Sqlite => {
            let path = match (&c.database, &c.url) {
                (Some(path), _) => PathBuf::from(path),
                (None, Some(url)) => SqliteConnectOptions::from_str(url)
                    .map_err(url_error)?
                    .get_filename()
                    .to_owned(),
                (None, None) => {
                    return Err(Error::InvalidOption {
                        name: "database",
                        reason: "SQLite needs the path of its file as `database`".into(),
                    })
                }
            };
            if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
                return Err(Error::InvalidOption {
                    name: "database",
                    reason: "an in-memory SQLite database is one per connection; give a file path \
                             (or use MemorySession)"
                        .into(),
                });
            }
            // The file and its folder are the process user's alone, as the file store's are.
            let folder = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(folder) => folder.to_owned(),
                None => PathBuf::from("."),
            };
            PrivateFolders::shared(c.trust_folder)
                .ensure(&folder, true)
                .map_err(|reason| Error::InvalidOption {
                    name: "database",
                    reason,
                })?;
            private::prepare_database(&path).map_err(|e| Error::InvalidOption {
                name: "database",
                reason: format!("{}: {e}", path.display()),
            })?;
            let o = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(options.query_timeout)
                .disable_statement_logging();
            let address = format!("sqlite {}", path.display());
            (Pools::Sqlite(pool::Pool::new(o, size, timeout)), address)
        }
    };
    Ok((pool, address))
}
