//! Database store: one row per session in the table `<prefix>session` of think-session-mysql
//! and ThinkJS 2 (`cookie`, `data`, `expire`, and ThinkJS 3's `maxage` when the table has
//! it), on MySQL/MariaDB, PostgreSQL or SQLite through sqlx. A write merges the patch in
//! Rust into the row as last seen and writes back only if the row is still exactly that (a
//! compare-and-set; on conflict it reads the row and tries again), so concurrent requests
//! never overwrite each other's keys (G2) and no lock is held across round trips. The row
//! last seen per session is kept for this: a request that read its session writes it in one
//! round trip, and a new session is one INSERT.

mod pool;
mod sql;

use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lru::LruCache;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Row};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{check_max_bytes, Patch, Record};
use crate::store::{load_refreshing, SessionStore};

pub use sql::Backend;
use sql::{Statements, GC_BATCH};

pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
pub const DEFAULT_POOL_SIZE: usize = 10;
/// Shorter than the query timeout, so that a server that cannot be reached is reported as such.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(3);

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
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub connection: Connection,
    /// The table is `<prefix>session`; a plain identifier only.
    pub prefix: String,
    /// Most connections open at once.
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// The longest any call takes, waiting for a connection and retrying included (G3).
    pub query_timeout: Duration,
    /// Create the table when it is missing.
    pub create_table: bool,
    pub max_bytes: usize,
}

pub struct DbStore {
    pool: Pools,
    /// For error messages: which database a failure is about.
    address: String,
    table: String,
    create_table: bool,
    query_timeout: Duration,
    max_bytes: usize,
    /// Read from the table on first use (after a failure, on the next call).
    schema: OnceCell<Schema>,
    /// The row as this process last read or wrote it, per session: the first guess of a
    /// compare-and-set (a wrong guess costs one round trip, never a write).
    last_seen: Mutex<LruCache<SessionId, Stored>>,
}

/// Sessions whose last row is kept, and the largest row kept: room for the requests in
/// flight, a few MiB at most.
const LAST_SEEN_ENTRIES: usize = 1024;
const LAST_SEEN_MAX_BYTES: usize = 16 * 1024;

enum Pools {
    MySql(pool::Pool<MySqlConnection>),
    Postgres(pool::Pool<PgConnection>),
    Sqlite(pool::Pool<SqliteConnection>),
}

/// Runs `$body` with `$conn` bound to a connection of the store's database: the body is
/// written once and compiled for each backend. It runs a second time, on a new connection,
/// when the pool lent a reused connection that turned out dead. A failure becomes the
/// store's error, naming the database.
macro_rules! on_connection {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            Pools::MySql(pool) => on_connection!(@lease pool, $conn, $body),
            Pools::Postgres(pool) => on_connection!(@lease pool, $conn, $body),
            Pools::Sqlite(pool) => on_connection!(@lease pool, $conn, $body),
        }
        .map_err(|e: sqlx::Error| $store.failure(e))
    };
    (@lease $pool:ident, $conn:ident, $body:expr) => {
        async {
            let mut lease = $pool.acquire().await?;
            loop {
                // A block of its own, so that `?` in the body ends the attempt, not the call.
                let result = async {
                    let $conn = lease.conn();
                    $body
                }
                .await;
                if !lease.retry_after(&result).await? {
                    break result;
                }
            }
        }
        .await
    };
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

/// What the table turned out to be.
struct Schema {
    statements: Statements,
    /// ThinkJS 3's table; ThinkJS 2's has no `maxage` and its records live by `expire` alone.
    with_max_age: bool,
    /// think-session-mysql's `maxage int(11)` holds at most 2^31-1 ms (24.8 days).
    max_age_limit: i64,
    /// The store's `maxBytes`, lowered to what the `data` column holds (64 KiB for TEXT).
    max_bytes: usize,
}

/// A row as read or written.
#[derive(Clone, PartialEq, Eq)]
struct Stored {
    data: Option<String>,
    expire: i64,
    max_age: i64,
}

impl DbStore {
    /// Makes the pool; nothing connects until the first call. Must run inside a tokio
    /// runtime, which then drives the connections.
    pub fn new(options: DbOptions) -> Result<Self> {
        check_max_bytes(options.max_bytes)?;
        if !sql::check_prefix(&options.prefix) {
            return Err(Error::InvalidOption {
                name: "prefix",
                reason: format!(
                    "{:?} is not a plain identifier (letters, digits and _, not starting with a digit, at most 48)",
                    options.prefix
                ),
            });
        }
        if options.pool_size == 0 {
            return Err(Error::InvalidOption {
                name: "poolSize",
                reason: "must be at least 1".into(),
            });
        }
        let c = &options.connection;
        let backend = match (c.backend, c.url.as_deref()) {
            (Some(backend), _) => backend,
            (None, Some(url)) => Backend::from_url(url).ok_or_else(|| Error::InvalidOption {
                name: "url",
                reason: format!("{url:?} is not a mysql://, postgres:// or sqlite: URL"),
            })?,
            (None, None) => {
                return Err(Error::InvalidOption {
                    name: "type",
                    reason: "give `type` ('mysql', 'postgresql' or 'sqlite') or a `url`".into(),
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
                    reason: "MySQL needs the name of the database that holds the session table"
                        .into(),
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
                        reason:
                            "an in-memory SQLite database is one per connection; give a file path \
                                 (or use MemorySession)"
                                .into(),
                    });
                }
                if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(folder).map_err(|e| {
                        Error::store(
                            "db",
                            format!("sqlite: cannot create {}: {e}", folder.display()),
                        )
                    })?;
                }
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
        Ok(DbStore {
            pool,
            address,
            table: format!("{}session", options.prefix),
            create_table: options.create_table,
            query_timeout: options.query_timeout,
            max_bytes: options.max_bytes,
            schema: OnceCell::new(),
            last_seen: Mutex::new(LruCache::new(
                NonZeroUsize::new(LAST_SEEN_ENTRIES).expect("not zero"),
            )),
        })
    }

    fn backend(&self) -> Backend {
        match self.pool {
            Pools::MySql(_) => Backend::MySql,
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    fn failure(&self, cause: impl std::fmt::Display) -> Error {
        Error::store("db", format!("{}: {cause}", self.address))
    }

    fn timed_out(&self) -> Error {
        self.failure(format!(
            "no answer within the query timeout of {} ms",
            self.query_timeout.as_millis()
        ))
    }

    /// `call` cut off at the query timeout.
    async fn timed<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.query_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The table's shape, read on first use.
    async fn schema(&self) -> Result<&Schema> {
        self.schema.get_or_try_init(|| self.read_schema()).await
    }

    /// Reads the table's columns, creating the table first when it is missing and allowed.
    async fn read_schema(&self) -> Result<Schema> {
        let mut columns = self.columns().await?;
        if columns.is_empty() && self.create_table {
            let ddl = sql::create_table(self.backend(), &self.table);
            let created = on_connection!(self, |conn| sqlx::raw_sql(ddl.clone())
                .execute(&mut *conn)
                .await
                .map(|_| ()));
            columns = self.columns().await?;
            // Another process may have created it at the same moment: only a table still
            // missing makes the failure ours.
            if columns.is_empty() {
                created?;
            }
        }
        if columns.is_empty() {
            return Err(self.failure(format!(
                "the session table `{}` does not exist; create it (see the README) or set createTable: true",
                self.table
            )));
        }
        let column = |name: &str| {
            columns
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        };
        for name in ["cookie", "data", "expire"] {
            if column(name).is_none() {
                return Err(self.failure(format!(
                    "the table `{}` has no `{name}` column: it is not a session table",
                    self.table
                )));
            }
        }
        if self.unique_cookie_indexes().await? == 0 {
            return Err(self.failure(format!(
                "the table `{}` has no UNIQUE index on `cookie`; the store needs one row per session \
                 (add one, or let the store create its table)",
                self.table
            )));
        }
        let max_age = column("maxage");
        let max_age_limit = match max_age {
            Some((_, kind, _))
                if matches!(
                    kind.to_ascii_lowercase().as_str(),
                    "int" | "integer" | "mediumint"
                ) =>
            {
                i32::MAX as i64
            }
            _ => i64::MAX,
        };
        let data_limit = column("data")
            .and_then(|(_, _, bytes)| *bytes)
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|&bytes| bytes > 0);
        Ok(Schema {
            statements: Statements::new(self.backend(), &self.table, max_age.is_some()),
            with_max_age: max_age.is_some(),
            max_age_limit,
            max_bytes: data_limit.map_or(self.max_bytes, |limit| limit.min(self.max_bytes)),
        })
    }

    async fn columns(&self) -> Result<Vec<(String, String, Option<i64>)>> {
        let query = sql::columns(self.backend());
        let table = &self.table;
        on_connection!(self, |conn| {
            let rows = sqlx::query(query.clone())
                .bind(table)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<sqlx::Result<Vec<_>>>()
        })
    }

    fn last_seen(&self) -> std::sync::MutexGuard<'_, LruCache<SessionId, Stored>> {
        self.last_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `row` as the last seen of `id` (`None`: forgets it).
    fn remember(&self, id: &SessionId, row: Option<&Stored>) {
        match row {
            Some(row) if row.data.as_ref().map_or(0, String::len) <= LAST_SEEN_MAX_BYTES => {
                self.last_seen().put(id.clone(), row.clone());
            }
            _ => {
                self.last_seen().pop(id);
            }
        }
    }

    async fn unique_cookie_indexes(&self) -> Result<i64> {
        let query = sql::unique_cookie(self.backend());
        let table = &self.table;
        on_connection!(self, |conn| {
            let row = sqlx::query(query.clone())
                .bind(table)
                .fetch_one(&mut *conn)
                .await?;
            row.try_get(0)
        })
    }

    async fn fetch(&self, schema: &Schema, id: &SessionId) -> Result<Option<Stored>> {
        let query = &schema.statements.select;
        let stored = on_connection!(self, |conn| {
            let row = sqlx::query(query.clone())
                .bind(id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
            row.map(|row| {
                Ok(Stored {
                    data: row.try_get(0)?,
                    expire: row.try_get(1)?,
                    max_age: row.try_get(2)?,
                })
            })
            .transpose()
        })?;
        self.remember(id, stored.as_ref());
        Ok(stored)
    }

    /// The row as a live record; `Err` when it cannot be read as a session.
    fn decode(&self, stored: &Stored, now_ms: i64) -> Result<Option<Record>> {
        if stored.expire <= now_ms {
            return Ok(None);
        }
        let data = match stored.data.as_deref().map(str::trim) {
            None | Some("") => "{}".to_owned(),
            Some(text) if is_json_object(text) => text.to_owned(),
            Some(_) => {
                return Err(self.failure("unreadable session: its data is not a JSON object"))
            }
        };
        Ok(Some(Record {
            data,
            expires_at_ms: stored.expire,
            // ThinkJS 2's rows carry no lifetime: the time left stands in, so a read never
            // refreshes them (ThinkJS 2 does that when it writes).
            max_age_ms: if stored.max_age > 0 {
                stored.max_age
            } else {
                stored.expire - now_ms
            },
        }))
    }

    /// Writes `record` over the row `read` (`None`: as a new row).
    async fn write(
        &self,
        schema: &Schema,
        id: &SessionId,
        read: Option<&Stored>,
        record: &Record,
    ) -> Result<Write> {
        let max_age = record.max_age_ms.min(schema.max_age_limit);
        let statements = &schema.statements;
        let with_max_age = schema.with_max_age;
        let result = on_connection!(self, |conn| {
            let affected = match read {
                Some(old) => {
                    let mut query = sqlx::query(statements.update.clone())
                        .bind(record.data.as_str())
                        .bind(record.expires_at_ms);
                    if with_max_age {
                        query = query.bind(max_age);
                    }
                    query
                        .bind(id.as_str())
                        .bind(old.expire)
                        .bind(old.data.as_deref())
                        .execute(&mut *conn)
                        .await
                        .map(|done| done.rows_affected())
                }
                None => {
                    let mut query = sqlx::query(statements.insert.clone())
                        .bind(id.as_str())
                        .bind(record.data.as_str())
                        .bind(record.expires_at_ms);
                    if with_max_age {
                        query = query.bind(max_age);
                    }
                    query
                        .execute(&mut *conn)
                        .await
                        .map(|done| done.rows_affected())
                }
            };
            Write::of(affected)
        });
        let written = result?;
        if written == Write::Done {
            let row = Stored {
                data: Some(record.data.clone()),
                expire: record.expires_at_ms,
                max_age,
            };
            self.remember(id, Some(&row));
        }
        Ok(written)
    }
}

/// What became of a compare-and-set write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Done,
    /// The row is not the one read (another writer came first, or the guess was stale;
    /// for an INSERT, the row exists).
    Stale,
    /// The database undid the statement to break a deadlock (a concurrent gc or write):
    /// nothing was compared, so the row may well be unchanged when read again.
    Conflict,
}

impl Write {
    /// From the rows an UPDATE or INSERT affected, or its error.
    fn of(affected: sqlx::Result<u64>) -> sqlx::Result<Write> {
        match affected {
            Ok(1) => Ok(Write::Done),
            Ok(_) => Ok(Write::Stale),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Write::Stale),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40001") => {
                Ok(Write::Conflict)
            }
            Err(e) => Err(e),
        }
    }
}

/// True when `text` is one JSON object (the stored data must be one to be merged into).
fn is_json_object(text: &str) -> bool {
    text.starts_with('{') && serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok()
}

#[async_trait]
impl SessionStore for DbStore {
    /// The read and the refresh together stay within one query timeout.
    async fn load_data(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<(String, bool)>> {
        self.timed(load_refreshing(self, id, now_ms, auto_update_rate))
            .await
    }

    async fn load(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        self.timed(async {
            let schema = self.schema().await?;
            match self.fetch(schema, id).await? {
                Some(stored) => self.decode(&stored, now_ms),
                None => Ok(None),
            }
        })
        .await
    }

    /// Merge into the row last seen and compare-and-set; on a miss, read and do it again.
    /// A session this process has not seen is first guessed new (one INSERT).
    async fn apply_patch(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        self.timed(async {
            let schema = self.schema().await?;
            let mut guess = Some(self.last_seen().get(id).cloned());
            let mut last_read: Option<Option<Stored>> = None;
            loop {
                let stored = match guess.take() {
                    Some(guess) => guess,
                    None => {
                        let read = self.fetch(schema, id).await?;
                        // The same row twice, and a compare-and-set that missed it in between:
                        // the table cannot hold this write as read (no unique cookie, or a
                        // data column whose bytes differ from the text read).
                        if last_read.as_ref() == Some(&read) {
                            return Err(self.failure(format!(
                                "the row of this session in `{}` cannot be updated in place; \
                                 its `cookie` column must be UNIQUE and `data` a text column",
                                self.table
                            )));
                        }
                        last_read = Some(read.clone());
                        read
                    }
                };
                // A row that cannot be read as a session is replaced, as an expired one is.
                let current = match &stored {
                    Some(stored) => self.decode(stored, now_ms).unwrap_or(None),
                    None => None,
                };
                let record = patch.apply_to(current.as_ref(), now_ms, schema.max_bytes)?;
                match self.write(schema, id, stored.as_ref(), &record).await? {
                    Write::Done => return Ok(()),
                    Write::Stale => {}
                    // The row read may not have changed: it proves nothing about the table.
                    Write::Conflict => last_read = None,
                }
            }
        })
        .await
    }

    async fn touch(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        self.timed(async {
            let schema = self.schema().await?;
            let statements = &schema.statements;
            let expire = now_ms.saturating_add(max_age_ms);
            let max_age = max_age_ms.min(schema.max_age_limit);
            let with_max_age = schema.with_max_age;
            on_connection!(self, |conn| {
                let mut query = sqlx::query(statements.touch.clone()).bind(expire);
                if with_max_age {
                    query = query.bind(max_age);
                }
                let done = query
                    .bind(id.as_str())
                    .bind(now_ms)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
            .inspect(|&touched| {
                let mut last_seen = self.last_seen();
                match last_seen.get_mut(id) {
                    Some(row) if touched => (row.expire, row.max_age) = (expire, max_age),
                    Some(_) => {
                        last_seen.pop(id);
                    }
                    None => {}
                }
            })
        })
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.timed(async {
            let schema = self.schema().await?;
            let query = &schema.statements.delete;
            self.remember(id, None);
            on_connection!(self, |conn| sqlx::query(query.clone())
                .bind(id.as_str())
                .execute(&mut *conn)
                .await
                .map(|_| ()))
        })
        .await
    }

    /// One UPDATE of the row's cookie: atomic in every backend.
    async fn rename(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        self.timed(async {
            let schema = self.schema().await?;
            let query = &schema.statements.rename;
            let row = self.last_seen().pop(from);
            let renamed = on_connection!(self, |conn| sqlx::query(query.clone())
                .bind(to.as_str())
                .bind(from.as_str())
                .bind(now_ms)
                .execute(&mut *conn)
                .await
                .map(|done| done.rows_affected() == 1))?;
            self.remember(to, row.as_ref().filter(|_| renamed));
            Ok(renamed)
        })
        .await
    }

    /// Deletes expired rows a batch at a time, each batch a statement of its own under its
    /// own timeout, until a batch comes back short.
    async fn gc(&self, now_ms: i64) -> Result<u64> {
        let mut removed = 0;
        loop {
            let batch = self
                .timed(async {
                    let schema = self.schema().await?;
                    let statements = &schema.statements;
                    on_connection!(self, |conn| {
                        let mut query = sqlx::query(statements.gc.clone());
                        for _ in 0..statements.gc_now_params {
                            query = query.bind(now_ms);
                        }
                        query
                            .execute(&mut *conn)
                            .await
                            .map(|done| done.rows_affected())
                    })
                })
                .await?;
            removed += batch;
            if batch < u64::from(GC_BATCH) {
                return Ok(removed);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the MariaDB and PostgreSQL of the machine (MYSQL_URL, POSTGRES_URL) and a
    //! SQLite file per test; each test owns a table prefix, its table dropped before use. A
    //! server that cannot be reached fails the test.
    use super::*;
    use crate::store::conformance;
    use sqlx::{AssertSqlSafe, Connection as _};

    fn url(backend: Backend) -> String {
        match backend {
            Backend::MySql => std::env::var("MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
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
                    serde_json::from_str(&store.load(&a, now).await.unwrap().unwrap().data)
                        .unwrap();
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
}
