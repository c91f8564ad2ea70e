//! Database store: one row per session in the table `<prefix>session` of think-session-mysql
//! and ThinkJS 2 (`cookie`, `data`, `expire`, and ThinkJS 3's `maxage` when the table has
//! it), on MySQL/MariaDB, PostgreSQL or SQLite through sqlx. A write merges the patch in
//! Rust into the row as last seen and writes back only if the row is still exactly that (a
//! compare-and-set; on conflict it reads the row and tries again), so concurrent requests
//! never overwrite each other's keys (G2) and no lock is held across round trips. The row
//! last seen per session is kept for this: a request that read its session writes it in one
//! round trip, and a new session is one INSERT.

mod connect;
mod pool;
mod sql;

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lru::LruCache;
use sqlx::Row;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{check_max_bytes, Patch, Record};
use crate::store::{load_refreshing, options, Loaded, SessionStore};

pub use connect::Connection;
use connect::Pools;
use schema::Schema;
pub use sql::Backend;
use sql::GC_BATCH;

pub const DEFAULT_POOL_SIZE: usize = 10;
/// Shorter than the query timeout, so that a server that cannot be reached is reported as such.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// The store's options as JavaScript names them (think-mysql's, plus `dialect`, `type`
/// and `url`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// 'mysql' (or 'mariadb'), 'postgresql' or 'sqlite': which database, whatever else
    /// says. `url`'s scheme must agree with it.
    dialect: Option<String>,
    /// The same names, as think-session hands over the adapter's key (which may be
    /// anything): the weakest hint, after `dialect` and `url`.
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    host: Option<String>,
    port: Option<f64>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    prefix: Option<String>,
    pool_size: Option<f64>,
    connect_timeout: Option<f64>,
    query_timeout: Option<f64>,
    create_table: Option<bool>,
    max_bytes: Option<f64>,
    /// SQLite: use a folder that another user owns or may write in, or that is a link.
    trust_folder: Option<bool>,
}

/// The store registered as "db". Must run inside the tokio runtime that will drive its
/// connections; nothing connects until the first call.
pub fn open(json: &str) -> Result<Box<dyn SessionStore>> {
    let config: Config = options::parse("db", json)?;
    let named = |option: &'static str, value: Option<&str>| {
        value
            .map(|name| {
                Backend::from_name(name).ok_or_else(|| Error::InvalidOption {
                    name: option,
                    reason: format!("{name:?} is not 'mysql', 'postgresql' or 'sqlite'"),
                })
            })
            .transpose()
    };
    let dialect = named("dialect", config.dialect.as_deref())?;
    let kind = named("type", config.kind.as_deref())?;
    let by_url = config.url.as_deref().and_then(Backend::from_url);
    if let (Some(dialect), Some(by_url)) = (dialect, by_url) {
        if dialect != by_url {
            return Err(Error::InvalidOption {
                name: "dialect",
                reason: format!(
                    "is '{}' but `url` is a {} URL: make them agree, or leave one out",
                    dialect.name(),
                    by_url.name()
                ),
            });
        }
    }
    let backend = dialect.or(by_url).or(kind);
    let port = match config.port {
        None => None,
        Some(port) if port.fract() == 0.0 && (1.0..=65535.0).contains(&port) => Some(port as u16),
        Some(port) => {
            return Err(Error::InvalidOption {
                name: "port",
                reason: format!("{port} is not a port number"),
            })
        }
    };
    Ok(Box::new(DbStore::new(DbOptions {
        connection: Connection {
            backend,
            url: config.url,
            host: config.host,
            port,
            user: config.user,
            password: config.password,
            database: config.database,
            trust_folder: config.trust_folder.unwrap_or(false),
        },
        prefix: config.prefix.unwrap_or_default(),
        pool_size: options::count("poolSize", config.pool_size, DEFAULT_POOL_SIZE)?,
        connect_timeout: options::millis(
            "connectTimeout",
            config.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        query_timeout: options::millis(
            "queryTimeout",
            config.query_timeout,
            DEFAULT_QUERY_TIMEOUT,
        )?,
        create_table: config.create_table.unwrap_or(true),
        max_bytes: options::max_bytes(config.max_bytes)?,
    })?))
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

// After the macro, which it uses.
mod schema;

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
        let (pool, address) = connect::connect(&options)?;
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
    ) -> Result<Option<Loaded>> {
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
    async fn close(&self) -> Result<()> {
        match &self.pool {
            Pools::MySql(pool) => pool.close().await,
            Pools::Postgres(pool) => pool.close().await,
            Pools::Sqlite(pool) => pool.close().await,
        }
        Ok(())
    }

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
mod tests;
