//! Redis store: one key per session in think-session-redis's format (or ThinkJS 2's), one
//! shared client per configuration that reconnects by itself, from a single server to a
//! cluster or a Sentinel-watched master. A write merges the request's changes in Rust into
//! the record as Redis holds it, so concurrent requests on one session never overwrite
//! each other's keys (G2): on Node's loop by WATCH/MULTI/EXEC (`commit`), elsewhere by a
//! compare-and-set script against the record as this process last saw it.

use std::sync::{Arc, LazyLock, Mutex as SyncMutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError,
    RedisFuture, Value,
};
use tokio::sync::{Mutex, OnceCell};

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{check_max_bytes, Patch, Record};
use crate::store::{load_refreshing, options, reactor, Format, Loaded, Runs, SessionStore};

mod cache;
mod commit;
mod hash;
mod on_loop;
use cache::ReadCache;
use commit::{Change, Committer, Failure};
use on_loop::LoopConnection;

/// How sessions are kept in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One string per session holding a framework's record text (the JS peers' formats).
    Text(Format),
    /// One hash per session, a field per session key (see `hash`).
    Hash,
}

impl Layout {
    /// The `format` option: 'thinkjs3' (the default), 'thinkjs2' or 'hash'.
    fn parse(value: Option<&str>) -> Result<Layout> {
        match value {
            Some("hash") => Ok(Layout::Hash),
            other => options::format(other)
                .map(Layout::Text)
                .map_err(|_| Error::InvalidOption {
                    name: "format",
                    reason: format!(
                        "{:?} is not 'thinkjs3', 'thinkjs2' or 'hash'",
                        other.unwrap_or_default()
                    ),
                }),
        }
    }
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Sets the key to `ARGV[1]` with a TTL of `ARGV[2]` ms only while it holds what the
/// writer merged into: `ARGV[4]` when `ARGV[3]` is 'text', nothing when it is 'none'.
/// Returns 1 when written; otherwise what the key holds (text or nil) and its PTTL, so the
/// writer merges again without another round trip.
static COMPARE_AND_SET: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local current = redis.call('GET', KEYS[1]) \
         if (current == false and ARGV[3] == 'none') or current == ARGV[4] then \
           redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
         return {current, redis.call('PTTL', KEYS[1])}",
    )
});

/// What a key held when this process last read or wrote it: the first guess of a
/// compare-and-set (a wrong guess costs a round trip, never a write).
#[derive(Clone, Default)]
struct Seen {
    /// The key's text; none when it did not exist.
    text: Option<String>,
    /// When its TTL runs out (ThinkJS 2's records live by it alone); `i64::MIN` without one.
    ttl_ends_ms: i64,
}

impl Seen {
    fn new(text: Option<String>, pttl_ms: i64, now_ms: i64) -> Seen {
        let ttl_ends_ms = if pttl_ms > 0 {
            now_ms.saturating_add(pttl_ms)
        } else {
            i64::MIN
        };
        Seen { text, ttl_ends_ms }
    }

    /// What keeping it costs: the text, and the entry around it (id, links, fields).
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD + self.text.as_ref().map_or(0, String::len)
    }
}

/// The last seen text of recently used sessions, bounded in bytes (the recent sessions of
/// a busy process, a few MiB at most) and by entry: a session larger than a quarter of the
/// bound is read again before it is written.
struct LastSeen {
    entries: lru::LruCache<SessionId, Seen>,
    bytes: usize,
}

const LAST_SEEN_BYTES: usize = 16 * 1024 * 1024;
/// Bytes an entry costs besides its text: its id (at most 128), key copy and links.
const ENTRY_OVERHEAD: usize = 256;

impl LastSeen {
    fn get(&mut self, id: &SessionId) -> Option<Seen> {
        self.entries.get(id).cloned()
    }

    /// Keeps what a key held; a missing key is not kept (ids from cookies are anyone's to
    /// make up: a write guesses a session it has not seen new anyway).
    fn put(&mut self, id: &SessionId, seen: Seen) {
        self.forget(id);
        if seen.text.is_none() || seen.bytes() > LAST_SEEN_BYTES / 4 {
            return;
        }
        self.bytes += seen.bytes();
        self.entries.put(id.clone(), seen);
        while self.bytes > LAST_SEEN_BYTES {
            match self.entries.pop_lru() {
                Some((_, old)) => self.bytes -= old.bytes(),
                None => break,
            }
        }
    }

    fn forget(&mut self, id: &SessionId) -> Option<Seen> {
        let old = self.entries.pop(id)?;
        self.bytes -= old.bytes();
        Some(old)
    }
}

/// Regeneration on one server: the record moves with its TTL in one step.
static RENAME: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
         redis.call('RENAME', KEYS[1], KEYS[2]) return 1",
    )
});

/// Deletes the key only while it still holds `ARGV[1]` (its DUMP) and its TTL has not grown past
/// `ARGV[2]` ms: the last step of a move between cluster slots, which a concurrent write
/// or refresh (ThinkJS 2's records change only their TTL) makes start over instead of
/// being lost.
static DELETE_IF_SAME: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('DUMP', KEYS[1]) == ARGV[1] \
            and redis.call('PTTL', KEYS[1]) <= tonumber(ARGV[2]) then \
           redis.call('DEL', KEYS[1]) return 1 end \
         return 0",
    )
});

/// A move between cluster slots starts over at most this often before it gives up.
const RENAME_ATTEMPTS: usize = 8;

/// Where the sessions live.
#[derive(Debug, Clone)]
pub enum Target {
    /// One server: `redis://[user:pass@]host:port/db`, or `rediss://` for TLS.
    Server(String),
    /// Redis Cluster: the URLs of some of its nodes; MOVED and ASK are followed.
    Cluster(Vec<String>),
    /// The master that these Sentinels name `master`; followed across failovers.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub target: Target,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: Option<i64>,
    /// Prepended to every id to make the key; empty by default, as think-session-redis.
    pub prefix: String,
    pub layout: Layout,
    pub connect_timeout: Duration,
    /// The longest any call takes before it fails (G3), reconnecting included.
    pub command_timeout: Duration,
    pub max_bytes: usize,
    /// Replicas that must confirm each write (`WAIT`) before it resolves; 0: none.
    pub replicas: usize,
    /// Sessions kept by a read cache that Redis invalidates (`cache`); none: no cache.
    pub cache_entries: Option<usize>,
}

/// The store's options as JavaScript names them (the glue maps ioredis's names onto these).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    url: Option<String>,
    host: Option<String>,
    port: Option<f64>,
    username: Option<String>,
    password: Option<String>,
    db: Option<f64>,
    /// Redis Cluster: URLs of some of its nodes.
    cluster: Option<Vec<String>>,
    /// Sentinel: the Sentinels' URLs; `masterName` names the master they watch.
    sentinels: Option<Vec<String>>,
    master_name: Option<String>,
    prefix: Option<String>,
    format: Option<String>,
    connect_timeout: Option<f64>,
    command_timeout: Option<f64>,
    max_bytes: Option<f64>,
    replicas: Option<f64>,
    cache: Option<CacheConfig>,
}

/// `cache: { maxEntries }`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CacheConfig {
    max_entries: Option<f64>,
}

/// Sessions a read cache keeps when `cache` does not say.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// The store registered as "redis". Must run inside the tokio runtime that will drive
/// its connections; nothing connects until the first call.
pub fn open(json: &str) -> Result<Box<dyn SessionStore>> {
    let config: Config = options::parse("redis", json)?;
    let target = match (config.cluster, config.sentinels) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidOption {
                name: "cluster",
                reason: "give `cluster` or `sentinels`, not both".into(),
            })
        }
        (Some(nodes), None) if nodes.is_empty() => {
            return Err(Error::InvalidOption {
                name: "cluster",
                reason: "lists no node".into(),
            })
        }
        (Some(nodes), None) => Target::Cluster(nodes),
        (None, Some(sentinels)) => Target::Sentinel {
            master: config.master_name.ok_or(Error::InvalidOption {
                name: "masterName",
                reason: "`sentinels` need the name of the master they watch".into(),
            })?,
            sentinels,
        },
        (None, None) => Target::Server(config.url.unwrap_or_else(|| {
            let host = config.host.as_deref().unwrap_or("127.0.0.1");
            let port = config.port.unwrap_or(6379.0);
            if host.contains(':') {
                format!("redis://[{host}]:{port}")
            } else {
                format!("redis://{host}:{port}")
            }
        })),
    };
    let db = match config.db {
        None => None,
        Some(db) if db.fract() == 0.0 && (0.0..=1e6).contains(&db) => Some(db as i64),
        Some(db) => {
            return Err(Error::InvalidOption {
                name: "db",
                reason: format!("{db} is not a database number"),
            })
        }
    };
    let replicas = match config.replicas {
        None | Some(0.0) => 0,
        n => options::count("replicas", n, 0)?,
    };
    if replicas > 0 && matches!(target, Target::Cluster(_)) {
        return Err(Error::InvalidOption {
            name: "replicas",
            reason: "works on one server or behind Sentinels; in a Cluster WAIT would not reach the node of the session's key".into(),
        });
    }
    // TLS needs a process-wide crypto provider; one may be installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(Box::new(RedisStore::new(RedisOptions {
        target,
        username: config.username,
        password: config.password.filter(|p| !p.is_empty()),
        db,
        prefix: config.prefix.unwrap_or_default(),
        layout: Layout::parse(config.format.as_deref())?,
        connect_timeout: options::millis(
            "connectTimeout",
            config.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        command_timeout: options::millis(
            "commandTimeout",
            config.command_timeout,
            DEFAULT_COMMAND_TIMEOUT,
        )?,
        max_bytes: options::max_bytes(config.max_bytes)?,
        replicas,
        cache_entries: match config.cache {
            None => None,
            Some(cache) => Some(options::count(
                "cache.maxEntries",
                cache.max_entries,
                DEFAULT_CACHE_ENTRIES,
            )?),
        },
    })?))
}

pub struct RedisStore {
    connection: Connection,
    /// For error messages: which Redis a failure is about.
    address: String,
    prefix: String,
    layout: Layout,
    command_timeout: Duration,
    max_bytes: usize,
    replicas: usize,
    last_seen: SyncMutex<LastSeen>,
    /// Writes of the string formats on the event loop (see `commit`); without it they go
    /// by a compare-and-set script.
    committer: Option<Arc<Committer>>,
    /// Reads kept in memory, invalidated by Redis (`cache`; see `cache`).
    cache: Option<Arc<ReadCache>>,
}

enum Connection {
    /// Reconnects by itself; a call while the server is down fails at once.
    Server(ConnectionManager),
    /// One server over plain TCP, on the caller's event loop (Node's): no thread hop per
    /// call. Connects again on the first call after a failure.
    Loop(LoopConnection),
    /// Connected on first use; the connection then follows the cluster by itself.
    Cluster(ClusterClient, OnceCell<ClusterConnection>),
    /// Asks the Sentinels for the master again after a connection fails.
    Sentinel(
        Mutex<SentinelClient>,
        Mutex<Option<ConnectionManager>>,
        ConnectionManagerConfig,
    ),
}

impl RedisStore {
    /// Makes the client; nothing connects until the first call. Must run inside a tokio
    /// runtime, which then drives the connections.
    pub fn new(options: RedisOptions) -> Result<Self> {
        check_max_bytes(options.max_bytes)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let option_error = |name: &'static str| {
            move |e: RedisError| Error::InvalidOption {
                name,
                reason: e.to_string(),
            }
        };
        let (connection, address) = match &options.target {
            Target::Server(url) => {
                let info = connection_info(url, &options).map_err(option_error("url"))?;
                let address = info.addr().to_string();
                if let Some(on_loop) = on_loop(&info, &options)? {
                    let mut store =
                        RedisStore::with(Connection::Loop(on_loop.connection), address, options);
                    store.committer = on_loop.committer;
                    store.cache = on_loop.cache;
                    return Ok(store);
                }
                refuse_replicas(&options)?;
                refuse_cache(&options)?;
                let client = redis::Client::open(info).map_err(option_error("url"))?;
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(option_error("url"))?;
                (Connection::Server(manager), address)
            }
            Target::Cluster(nodes) => {
                refuse_replicas(&options)?;
                refuse_cache(&options)?;
                let infos = nodes
                    .iter()
                    .map(|url| connection_info(url, &options))
                    .collect::<redis::RedisResult<Vec<_>>>()
                    .map_err(option_error("cluster"))?;
                let address = format!("cluster {}", addresses(&infos));
                let client = ClusterClient::builder(infos)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.command_timeout)
                    .build()
                    .map_err(option_error("cluster"))?;
                (Connection::Cluster(client, OnceCell::new()), address)
            }
            Target::Sentinel { sentinels, master } => {
                refuse_replicas(&options)?;
                refuse_cache(&options)?;
                let infos = sentinels
                    .iter()
                    .map(|url| url.as_str().into_connection_info())
                    .collect::<redis::RedisResult<Vec<_>>>()
                    .map_err(option_error("sentinels"))?;
                let address = format!("master {master} of sentinels {}", addresses(&infos));
                let auth = with_auth(RedisConnectionInfo::default(), &options);
                let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(auth);
                let client = SentinelClient::build(
                    infos,
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(option_error("sentinels"))?;
                let connection = Connection::Sentinel(Mutex::new(client), Mutex::new(None), config);
                (connection, address)
            }
        };
        Ok(RedisStore::with(connection, address, options))
    }

    fn with(connection: Connection, address: String, options: RedisOptions) -> RedisStore {
        RedisStore {
            connection,
            address,
            prefix: options.prefix,
            layout: options.layout,
            command_timeout: options.command_timeout,
            max_bytes: options.max_bytes,
            replicas: options.replicas,
            last_seen: SyncMutex::new(LastSeen {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
            }),
            committer: None,
            cache: None,
        }
    }

    fn last_seen(&self) -> MutexGuard<'_, LastSeen> {
        self.last_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_hash(&self) -> bool {
        self.layout == Layout::Hash
    }

    /// The record format of a string layout (the hash layout has none).
    fn format(&self) -> Format {
        match self.layout {
            Layout::Text(format) => format,
            Layout::Hash => Format::ThinkJs3,
        }
    }

    /// The `format` option as the user gives it, for messages.
    fn format_name(&self) -> &'static str {
        match self.layout {
            Layout::Text(Format::ThinkJs3) => "thinkjs3",
            Layout::Text(Format::ThinkJs2) => "thinkjs2",
            Layout::Hash => "hash",
        }
    }

    /// Which connection of the event loop's a call went on (a count of connects), so a
    /// confirmation can tell it was asked on the same one.
    fn generation(&self) -> Option<u64> {
        match &self.connection {
            Connection::Loop(connection) => Some(connection.generation()),
            _ => None,
        }
    }

    /// With `replicas`, waits until that many replicas have the writes made so far on this
    /// connection (`WAIT`), so an acknowledged write survives a failover. `written_on`: the
    /// connection the write went on; WAIT on another one would confirm nothing.
    async fn confirm(&self, written_on: Option<u64>) -> Result<()> {
        if self.replicas == 0 {
            return Ok(());
        }
        // Within the call's own timeout, with room for the answer.
        let wait_ms = (self.command_timeout.as_millis() * 3 / 4).max(1) as u64;
        let replicas = self.replicas;
        let confirmed: usize = self
            .run(async |conn| {
                redis::cmd("WAIT")
                    .arg(replicas)
                    .arg(wait_ms)
                    .query_async(conn)
                    .await
            })
            .await?;
        if self.generation() != written_on {
            return Err(self.failure(
                "the connection to Redis was replaced between the write and its confirmation: whether the replicas have it is unknown",
            ));
        }
        if confirmed >= replicas {
            return Ok(());
        }
        Err(self.unconfirmed(confirmed, wait_ms).await)
    }

    /// The error of a write fewer replicas than `replicas` confirmed within `wait_ms`.
    async fn unconfirmed(&self, confirmed: usize, wait_ms: u64) -> Error {
        let replicas = self.replicas;
        let info: String = self
            .run(async |conn| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query_async(conn)
                    .await
            })
            .await
            .unwrap_or_default();
        let present = info
            .lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .unwrap_or("?");
        self.failure(format!(
            "the write is on the master, but {confirmed} of the {replicas} replicas `replicas` asks for confirmed it within {wait_ms} ms (the master has {present} connected replicas)"
        ))
    }

    /// The error of a write the committer could not make.
    async fn failed(&self, failure: Failure, key: &str) -> Error {
        match failure {
            Failure::Redis(err) => self.wrong_type(self.failure(err), key),
            Failure::Change(err) => err,
            Failure::TimedOut => self.timed_out().await,
            Failure::Unconfirmed { confirmed, wait_ms } => {
                self.unconfirmed(confirmed, wait_ms).await
            }
        }
    }

    fn key(&self, id: &SessionId) -> String {
        format!("{}{}", self.prefix, id.as_str())
    }

    fn failure(&self, cause: impl std::fmt::Display) -> Error {
        Error::store("redis", format!("{}: {cause}", self.address))
    }

    /// Runs `call` on a connection, failing after the command timeout whatever happens
    /// underneath (a server that accepts and never answers included).
    async fn run<T, F>(&self, call: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let attempt = async {
            let mut conn = self.connect().await?;
            let result = call(&mut conn).await;
            if let Err(err) = &result {
                self.forget_if_broken(err).await;
            }
            result
        };
        match tokio::time::timeout(self.command_timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.failure(err)),
            Err(_) => Err(self.timed_out().await),
        }
    }

    /// The error of a call past the command timeout. Behind Sentinels the master may have
    /// gone silent (a partition): it is asked for again next time.
    async fn timed_out(&self) -> Error {
        if let Connection::Sentinel(_, current, _) = &self.connection {
            *current.lock().await = None;
        }
        self.failure(format!(
            "no answer within the command timeout of {} ms",
            self.command_timeout.as_millis()
        ))
    }

    async fn connect(&self) -> redis::RedisResult<Conn> {
        match &self.connection {
            Connection::Server(manager) => Ok(Conn::Manager(manager.clone())),
            Connection::Loop(connection) => Ok(Conn::Loop(connection.clone())),
            Connection::Cluster(client, cell) => {
                let conn = cell
                    .get_or_try_init(|| client.get_async_connection())
                    .await?;
                Ok(Conn::Cluster(conn.clone()))
            }
            Connection::Sentinel(sentinel, current, config) => {
                let mut current = current.lock().await;
                if let Some(manager) = &*current {
                    return Ok(Conn::Manager(manager.clone()));
                }
                let client = sentinel.lock().await.async_get_client().await?;
                let manager = ConnectionManager::new_with_config(client, config.clone()).await?;
                *current = Some(manager.clone());
                Ok(Conn::Manager(manager))
            }
        }
    }

    /// After a failover the old master refuses writes or is gone: ask the Sentinels again.
    async fn forget_if_broken(&self, err: &RedisError) {
        if let Connection::Sentinel(_, current, _) = &self.connection {
            if err.is_io_error()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
                || err.code() == Some("READONLY")
                || err.to_string().contains("READONLY")
            {
                *current.lock().await = None;
            }
        }
    }

    /// The key's text as Redis has it now, with its TTL where the format lives by it
    /// (think-session-redis's record carries its expiry; ThinkJS 2's has only the TTL).
    async fn fetch(&self, key: &str, now_ms: i64) -> Result<Seen> {
        let with_ttl = self.format() == Format::ThinkJs2;
        if let Some(cache) = &self.cache {
            let read = cache.read(key, with_ttl, now_ms);
            let (text, pttl) = match tokio::time::timeout(self.command_timeout, read).await {
                Ok(read) => read.map_err(|e| self.wrong_type(self.failure(e), key))?,
                Err(_) => return Err(self.timed_out().await),
            };
            return Ok(Seen::new(text, pttl, now_ms));
        }
        let (text, pttl): (Option<String>, i64) = self
            .run(async |conn| {
                if !with_ttl {
                    let text: Option<String> = Cmd::get(key).query_async(conn).await?;
                    return Ok((text, 0));
                }
                let mut pipe = Pipeline::new();
                pipe.get(key).pttl(key);
                pipe.query_async::<(Option<String>, i64)>(conn).await
            })
            .await
            .map_err(|e| self.wrong_type(e, key))?;
        Ok(Seen::new(text, pttl, now_ms))
    }

    /// The live record in what was seen; an unreadable one counts as none, so a write
    /// replaces it.
    fn live(&self, seen: &Seen, now_ms: i64) -> Option<Record> {
        let text = seen.text.as_deref()?;
        let ttl_ms = seen.ttl_ends_ms.saturating_sub(now_ms);
        live_record(self.format(), text, ttl_ms, now_ms)
    }

    /// Writes what `change` makes of the live record (none: nothing to write) by
    /// compare-and-set against the key as last seen; on a miss Redis hands back what the key
    /// holds and the change is made again. `guess_new`: a session this process has not seen
    /// is first guessed missing (a new session is one round trip); otherwise it is read
    /// first. True when written; the whole write stays within the command timeout.
    async fn write(
        &self,
        id: &SessionId,
        now_ms: i64,
        guess_new: bool,
        change: impl Fn(Option<&Record>) -> Result<Option<Record>> + Send + Sync + 'static,
    ) -> Result<bool> {
        let key = self.key(id);
        if let Some(committer) = &self.committer {
            let format = self.format();
            let change: Change = Box::new(move |text, pttl_ms| {
                let current = text.and_then(|text| live_record(format, text, pttl_ms, now_ms));
                Ok(change(current.as_ref())?.map(|record| {
                    let max_age_ms = record.max_age_ms;
                    (encode(format, &record), max_age_ms)
                }))
            });
            let written = committer.write(key.clone(), change);
            return match tokio::time::timeout(self.command_timeout, written).await {
                Ok(Ok(written)) => Ok(written),
                Ok(Err(failure)) => Err(self.failed(failure, &key).await),
                Err(_) => Err(self.timed_out().await),
            };
        }
        let work = async {
            let cached = self.last_seen().get(id);
            // Whether `seen` is Redis's own answer, rather than a guess.
            let mut answered = cached.is_none() && !guess_new;
            let mut seen = match cached {
                Some(seen) => seen,
                None if guess_new => Seen::default(),
                None => self.fetch(&key, now_ms).await?,
            };
            loop {
                let current = self.live(&seen, now_ms);
                let changed = change(current.as_ref());
                // A guess may be out of date: when it is too large to write, has nothing to
                // write, or looks expired (ThinkJS 2's records live by a TTL another worker may
                // have moved, which the compared text does not show), Redis's own answer decides.
                let doubtful = current.is_none() && seen.text.is_some();
                if !answered && (doubtful || !matches!(changed, Ok(Some(_)))) {
                    seen = self.fetch(&key, now_ms).await?;
                    answered = true;
                    continue;
                }
                let Some(record) = changed? else {
                    self.last_seen().put(id, seen);
                    return Ok(false);
                };
                let text = encode(self.format(), &record);
                let mut invocation = COMPARE_AND_SET.key(&key);
                invocation.arg(&text).arg(record.max_age_ms);
                match &seen.text {
                    Some(expected) => invocation.arg("text").arg(expected),
                    None => invocation.arg("none"),
                };
                let answer: Value = self
                    .run(async |conn| invocation.invoke_async(conn).await)
                    .await
                    .map_err(|e| self.wrong_type(e, &key))?;
                let written_on = self.generation();
                seen = match answer {
                    Value::Int(1) => {
                        let written = Seen::new(Some(text), record.max_age_ms, now_ms);
                        self.last_seen().put(id, written);
                        self.confirm(written_on).await?;
                        return Ok(true);
                    }
                    Value::Array(reply) => {
                        match <(Option<String>, i64)>::from_redis_value(Value::Array(reply)) {
                            Ok((text, pttl)) => {
                                answered = true;
                                Seen::new(text, pttl, now_ms)
                            }
                            Err(err) => return Err(self.failure(err)),
                        }
                    }
                    other => {
                        return Err(self
                            .failure(format!("unexpected answer to a compare-and-set: {other:?}")))
                    }
                };
            }
        };
        match tokio::time::timeout(self.command_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out().await),
        }
    }

    fn decode(&self, text: &str, ttl_ms: i64, now_ms: i64) -> Result<Option<Record>> {
        let record = decode(self.format(), text, ttl_ms, now_ms).ok_or_else(|| {
            self.failure("unreadable session: not a session record with a JSON object as data")
        })?;
        Ok(record.filter(|record| record.is_live(now_ms)))
    }
}

/// The record a key's text holds in `format`, live or not; none when the text is not one
/// (`Some(None)`: a ThinkJS 2 record whose TTL is gone). `ttl_ms`: the key's PTTL.
fn decode(format: Format, text: &str, ttl_ms: i64, now_ms: i64) -> Option<Option<Record>> {
    match format {
        // Without a readable expiry a record has expired, to reads and writes alike.
        Format::ThinkJs3 => Record::from_thinkjs3(text).map(Some),
        // The record is the data alone and lives by its TTL (none: not read); with only
        // the time left to go by, a read never refreshes it.
        Format::ThinkJs2 if ttl_ms <= 0 => Some(None),
        Format::ThinkJs2 => text.trim_start().starts_with('{').then(|| {
            Some(Record {
                data: text.trim().to_owned(),
                expires_at_ms: now_ms + ttl_ms,
                max_age_ms: ttl_ms,
            })
        }),
    }
}

/// The live record in a key's text; an unreadable one counts as none, so a write replaces
/// it.
fn live_record(format: Format, text: &str, ttl_ms: i64, now_ms: i64) -> Option<Record> {
    decode(format, text, ttl_ms, now_ms)
        .flatten()
        .filter(|record| record.is_live(now_ms))
}

/// The key's text for a record, in `format`.
fn encode(format: Format, record: &Record) -> String {
    match format {
        Format::ThinkJs3 => format!(
            "{{\"data\":{},\"maxAge\":{},\"expires\":{}}}",
            record.data, record.max_age_ms, record.expires_at_ms
        ),
        Format::ThinkJs2 => record.data.clone(),
    }
}

/// `replicas` needs the event loop's connection, which can tell that a write and its
/// WAIT went on one connection (the `redis` crate's reconnect silently).
fn refuse_replicas(options: &RedisOptions) -> Result<()> {
    if options.replicas == 0 {
        return Ok(());
    }
    Err(Error::InvalidOption {
        name: "replicas",
        reason: "works on one server over redis:// for now (not over TLS, behind Sentinels or in a Cluster), where a write and its WAIT are known to share a connection".into(),
    })
}

/// `cache` needs the event loop's connections, which hear Redis's invalidations.
fn refuse_cache(options: &RedisOptions) -> Result<()> {
    if options.cache_entries.is_none() {
        return Ok(());
    }
    Err(Error::InvalidOption {
        name: "cache",
        reason: "works on one server over redis:// for now (not over TLS, behind Sentinels or in a Cluster), and in Node's main thread".into(),
    })
}

/// What a store on the caller's event loop works with.
struct OnLoop {
    connection: LoopConnection,
    committer: Option<Arc<Committer>>,
    cache: Option<Arc<ReadCache>>,
}

/// The connection on the caller's event loop, where there is one and the server is
/// plain TCP speaking RESP2 (TLS, Unix sockets and RESP3 keep the `redis` crate's).
fn on_loop(info: &redis::ConnectionInfo, options: &RedisOptions) -> Result<Option<OnLoop>> {
    let Some(reactor) = reactor::current() else {
        return Ok(None);
    };
    let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Ok(None);
    };
    let settings = info.redis_settings();
    if settings.protocol() != redis::ProtocolVersion::RESP2 {
        return Ok(None);
    }
    // RESP3 where a read cache hears Redis's invalidations in line with the answers.
    let connect = |resp3: bool| {
        let mut hello = Pipeline::new();
        let auth = if resp3 {
            hello.cmd("HELLO").arg(3);
            settings.password().map(|password| {
                (
                    hello
                        .arg("AUTH")
                        .arg(settings.username().unwrap_or("default")),
                    password,
                )
            })
        } else {
            settings.password().map(|password| {
                let auth = hello.cmd("AUTH");
                if let Some(user) = settings.username() {
                    auth.arg(user);
                }
                (auth, password)
            })
        };
        if let Some((auth, password)) = auth {
            auth.arg(password);
        }
        if settings.db() != 0 {
            hello.cmd("SELECT").arg(settings.db());
        }
        LoopConnection::new(
            reactor,
            (host.clone(), *port),
            hello.get_packed_pipeline(),
            hello.len(),
            settings.db(),
            options.connect_timeout,
        )
    };
    let (committer, cache) = match (options.layout, options.cache_entries) {
        (Layout::Text(format), entries) => {
            let connection = connect(entries.is_some())?;
            let cache = entries.map(|entries| ReadCache::new(connection.clone(), reactor, entries));
            let committer = Committer::new(
                connection,
                reactor,
                options.command_timeout,
                options.replicas,
                format == Format::ThinkJs2,
                cache.clone(),
            );
            (Some(committer), cache)
        }
        (Layout::Hash, None) => (None, None),
        (Layout::Hash, Some(_)) => return Err(Error::InvalidOption {
            name: "cache",
            reason:
                "works with the string formats ('thinkjs3', 'thinkjs2') for now, not with 'hash'"
                    .into(),
        }),
    };
    Ok(Some(OnLoop {
        connection: connect(false)?,
        committer,
        cache,
    }))
}

/// A node's URL with the options' database and credentials, which win over the URL's.
fn connection_info(url: &str, options: &RedisOptions) -> redis::RedisResult<redis::ConnectionInfo> {
    let info = url.into_connection_info()?;
    let settings = with_auth(info.redis_settings().clone(), options);
    Ok(info.set_redis_settings(settings))
}

fn with_auth(mut info: RedisConnectionInfo, options: &RedisOptions) -> RedisConnectionInfo {
    if let Some(db) = options.db {
        info = info.set_db(db);
    }
    if let Some(user) = &options.username {
        info = info.set_username(user);
    }
    if let Some(password) = &options.password {
        info = info.set_password(password);
    }
    info
}

/// The nodes' addresses, for error messages.
fn addresses(infos: &[redis::ConnectionInfo]) -> String {
    let addresses: Vec<String> = infos.iter().map(|i| i.addr().to_string()).collect();
    addresses.join(",")
}

#[async_trait]
impl SessionStore for RedisStore {
    fn runs(&self) -> Runs {
        match self.connection {
            Connection::Loop(_) => Runs::Loop,
            _ => Runs::Io,
        }
    }

    /// The read and the refresh together stay within one command timeout.
    async fn load_data(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<Loaded>> {
        let read = load_refreshing(self, id, now_ms, auto_update_rate);
        match tokio::time::timeout(self.command_timeout, read).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out().await),
        }
    }

    /// From the read cache, when it holds the session and the read needs no refresh.
    fn load_data_cached(
        &self,
        id: &SessionId,
        now_ms: i64,
        rate: f64,
    ) -> Option<Result<Option<Loaded>>> {
        let cached = self.cache.as_ref()?.get(&self.key(id))?;
        let ttl_ms = cached.ttl_ends_ms.saturating_sub(now_ms);
        // An unreadable record: the full read reports it.
        let record = decode(self.format(), &cached.text, ttl_ms, now_ms)?;
        let Some(record) = record.filter(|record| record.is_live(now_ms)) else {
            return Some(Ok(None));
        };
        if record.needs_refresh(now_ms, rate) {
            return None;
        }
        Some(Ok(Some(Loaded {
            data: record.data,
            refreshed: false,
        })))
    }

    /// Keeps what it read as the guess of the session's next write.
    async fn load(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        if self.is_hash() {
            return self.load_hash(id, now_ms).await;
        }
        let seen = self.fetch(&self.key(id), now_ms).await?;
        let record = match &seen.text {
            Some(text) => self.decode(text, seen.ttl_ends_ms.saturating_sub(now_ms), now_ms),
            None => Ok(None),
        };
        // The committer reads what it writes over; the script needs a guess.
        if self.committer.is_none() {
            self.last_seen().put(id, seen);
        }
        record
    }

    /// The patch merged into the live record in Rust, written by compare-and-set.
    async fn apply_patch(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        if self.is_hash() {
            return self.apply_hash(id, patch, now_ms).await;
        }
        let max_bytes = self.max_bytes;
        let patch = patch.clone();
        self.write(id, now_ms, true, move |current| {
            patch.apply_to(current, now_ms, max_bytes).map(Some)
        })
        .await
        .map(|_| ())
    }

    /// The live record with its expiry moved, its data as it is (whatever its size).
    async fn touch(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        crate::session::check_max_age(max_age_ms)?;
        if self.is_hash() {
            return self.touch_hash(id, max_age_ms, now_ms).await;
        }
        self.write(id, now_ms, false, move |current| {
            let Some(record) = current else {
                return Ok(None);
            };
            let mut record = record.clone();
            record.extend(now_ms, max_age_ms)?;
            Ok(Some(record))
        })
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        let key = self.key(id);
        self.last_seen().forget(id);
        self.run(async |conn| Cmd::del(&key).query_async::<()>(conn).await)
            .await?;
        if let Some(cache) = &self.cache {
            cache.forget(&key);
        }
        let written_on = self.generation();
        self.confirm(written_on).await
    }

    /// On one server (or behind Sentinels) one script moves the key. In a cluster the two
    /// keys live in different slots, so the record is copied, then the old key deleted only
    /// if it still holds what was copied, with no longer a TTL (otherwise the copy is made
    /// again): a write or refresh of the old id meanwhile is carried over, never lost.
    /// Until the delete, both ids read the same data.
    async fn rename(&self, from: &SessionId, to: &SessionId, _now_ms: i64) -> Result<bool> {
        let (source, target) = (self.key(from), self.key(to));
        // Forgotten for both ids: a guess at either would be a wrong one.
        self.last_seen().forget(from);
        self.last_seen().forget(to);
        if let Some(cache) = &self.cache {
            cache.forget(&source);
            cache.forget(&target);
        }
        if !matches!(self.connection, Connection::Cluster(..)) {
            let moved: i64 = self
                .run(async |conn| RENAME.key(&source).key(&target).invoke_async(conn).await)
                .await?;
            // Again: a read of either id on the cache's connection may have been answered
            // before the move, and its invalidation comes on that connection, not this one.
            if let Some(cache) = &self.cache {
                cache.forget(&source);
                cache.forget(&target);
            }
            let written_on = self.generation();
            self.confirm(written_on).await?;
            return Ok(moved == 1);
        }
        for _ in 0..RENAME_ATTEMPTS {
            // DUMP and RESTORE move the key whatever its type (string or hash).
            let (dump, ttl): (Option<Vec<u8>>, i64) = self
                .run(async |conn| {
                    let mut pipe = Pipeline::new();
                    pipe.atomic().cmd("DUMP").arg(&source).pttl(&source);
                    pipe.query_async(conn).await
                })
                .await?;
            let Some(dump) = dump else {
                self.destroy(to).await?;
                return Ok(false);
            };
            let mut copy = Cmd::new();
            // 0 means no expiry to RESTORE: only for a key that had none (PTTL -1); a key
            // in its last millisecond keeps 1.
            let restore_ttl = if ttl < 0 { 0 } else { ttl.max(1) };
            copy.arg("RESTORE")
                .arg(&target)
                .arg(restore_ttl)
                .arg(&dump)
                .arg("REPLACE");
            self.run(async |conn| copy.query_async::<()>(conn).await)
                .await?;
            let deleted: i64 = self
                .run(async |conn| {
                    DELETE_IF_SAME
                        .key(&source)
                        .arg(&dump)
                        .arg(ttl)
                        .invoke_async(conn)
                        .await
                })
                .await?;
            if deleted == 1 {
                return Ok(true);
            }
        }
        Err(self
            .failure("session regeneration: the old id kept changing while its record was moved"))
    }

    /// Redis drops expired keys itself (each is written with PX): nothing to collect.
    async fn gc(&self, _now_ms: i64) -> Result<u64> {
        Ok(0)
    }
}

/// A connection of whichever kind the target needs.
enum Conn {
    Manager(ConnectionManager),
    Loop(LoopConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Loop(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Loop(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Loop(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the Redis on 127.0.0.1:6379 (or REDIS_URL), each test under a key prefix of
    //! its own, cleaned before use; a server that cannot be reached fails the test.
    use super::*;

    async fn store(name: &str, format: Format) -> RedisStore {
        store_of(name, Layout::Text(format)).await
    }

    async fn store_of(name: &str, layout: Layout) -> RedisStore {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("tsn-rust-{name}-{}:", std::process::id());
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| {
                panic!("these tests need Redis at {url} (set REDIS_URL to use another): {e}")
            });
        let keys: Vec<String> = Cmd::keys(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            Cmd::del(keys).query_async::<()>(&mut conn).await.unwrap();
        }
        RedisStore::new(RedisOptions {
            target: Target::Server(url),
            username: None,
            password: None,
            db: None,
            prefix,
            layout,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_bytes: 200,
            replicas: 0,
            cache_entries: None,
        })
        .unwrap()
    }

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn meets_the_store_contract() {
        crate::store::conformance::check(&store("contract", Format::ThinkJs3).await).await;
    }

    #[tokio::test]
    async fn the_hash_format_meets_the_store_contract() {
        crate::store::conformance::check(&store_of("contract-hash", Layout::Hash).await).await;
    }

    #[tokio::test]
    async fn the_hash_format_writes_only_the_changed_fields() {
        let s = store_of("hash-fields", Layout::Hash).await;
        let id = id("hashfields1");
        let patch = Patch::of(&[("a", "1"), ("b", r#"{"x":[1,2]}"#)], 60_000);
        s.apply_patch(&id, &patch, 0).await.unwrap();
        s.apply_patch(&id, &Patch::of(&[("a", "null"), ("c", "0.10")], 60_000), 0)
            .await
            .unwrap();
        let key = s.key(&id);
        let fields: Vec<(Vec<u8>, String)> = s
            .run(async |conn| Cmd::hgetall(&key).query_async(conn).await)
            .await
            .unwrap();
        let names: Vec<&[u8]> = fields.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(
            names,
            [&b"b"[..], hash::EXPIRES_FIELD, hash::MAX_AGE_FIELD, b"c"]
        );
        assert_eq!(fields[3].1, "0.10", "the value's text as given");
        let pttl: i64 = s
            .run(async |conn| Cmd::pttl(&key).query_async(conn).await)
            .await
            .unwrap();
        assert!(pttl > 59_000 && pttl <= 60_000);
        let record = s.load(&id, 1).await.unwrap().unwrap();
        assert_eq!(record.data, r#"{"b":{"x":[1,2]},"c":0.10}"#);
        assert_eq!(record.max_age_ms, 60_000);
    }

    #[tokio::test]
    async fn a_key_of_the_other_format_is_an_error_and_left_as_it_is() {
        let (text, hash) = (
            store("wrongtype", Format::ThinkJs3).await,
            store_of("wrongtype", Layout::Hash).await,
        );
        let (a, b) = (id("wrongtype01"), id("wrongtype02"));
        text.apply_patch(&a, &Patch::of(&[("n", "1")], 60_000), 0)
            .await
            .unwrap();
        hash.apply_patch(&b, &Patch::of(&[("n", "1")], 60_000), 0)
            .await
            .unwrap();
        let now = crate::session::now_ms();
        let err = hash.load(&a, now).await.unwrap_err().to_string();
        assert!(
            err.contains("holds a string") && err.contains("\"hash\""),
            "{err}"
        );
        let err = text.load(&b, now).await.unwrap_err().to_string();
        assert!(
            err.contains("holds a hash") && err.contains("\"thinkjs3\""),
            "{err}"
        );
        let write = Patch::of(&[("m", "2")], 60_000);
        assert!(text.apply_patch(&b, &write, now).await.is_err());
        let key = hash.key(&b);
        let kept: Vec<(Vec<u8>, String)> = hash
            .run(async |conn| Cmd::hgetall(&key).query_async(conn).await)
            .await
            .unwrap();
        assert_eq!(kept.len(), 3, "the hash is as it was: {kept:?}");
    }

    #[tokio::test]
    async fn merges_without_touching_the_text_of_other_members() {
        let s = store("merge", Format::ThinkJs3).await;
        let a = id("merge-session");
        let awkward = [
            ("q\"uote", r#""a } , ] \" {""#),
            ("nested", r#"{"x":[1,{"y":"}"}],"z":"\\"}"#),
            ("num", "1e+21"),
        ];
        s.apply_patch(&a, &Patch::of(&awkward, 60_000), 0)
            .await
            .unwrap();
        s.apply_patch(
            &a,
            &Patch::of(&[("num", "0.1"), ("new", "true")], 60_000),
            0,
        )
        .await
        .unwrap();
        let data = s.load(&a, 1).await.unwrap().unwrap().data;
        assert_eq!(
            data,
            r#"{"q\"uote":"a } , ] \" {","nested":{"x":[1,{"y":"}"}],"z":"\\"},"num":0.1,"new":true}"#
        );
    }

    #[tokio::test]
    async fn a_corrupt_record_is_an_error_to_read_and_replaced_by_a_write() {
        let s = store("corrupt", Format::ThinkJs3).await;
        let a = id("corrupt-session");
        s.run(async |conn| {
            Cmd::set(s.key(&a), "{not json")
                .query_async::<()>(conn)
                .await
        })
        .await
        .unwrap();
        let err = s.load(&a, 0).await.unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_STORE");
        assert!(
            err.to_string().contains("redis store: 127.0.0.1:6379"),
            "{err}"
        );
        s.apply_patch(&a, &Patch::of(&[("k", "1")], 60_000), 0)
            .await
            .unwrap();
        assert_eq!(s.load(&a, 1).await.unwrap().unwrap().data, r#"{"k":1}"#);
    }

    async fn set_raw(s: &RedisStore, id: &SessionId, text: &str) {
        s.run(async |conn| Cmd::set(s.key(id), text).query_async::<()>(conn).await)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_record_without_an_expiry_is_neither_read_nor_merged_into() {
        let s = store("no-expiry", Format::ThinkJs3).await;
        let a = id("no-expiry-session");
        set_raw(&s, &a, r#"{"data":{"user":"bob"},"maxAge":1000}"#).await;
        assert_eq!(s.load(&a, 0).await.unwrap(), None);
        s.apply_patch(&a, &Patch::of(&[("x", "1")], 60_000), 0)
            .await
            .unwrap();
        assert_eq!(s.load(&a, 1).await.unwrap().unwrap().data, r#"{"x":1}"#);
        // ThinkJS 2's records live by their TTL; one without is not read either
        let t = store("no-ttl", Format::ThinkJs2).await;
        set_raw(&t, &a, r#"{"user":"bob"}"#).await;
        assert_eq!(t.load(&a, 0).await.unwrap(), None);
        t.apply_patch(&a, &Patch::of(&[("x", "1")], 60_000), 0)
            .await
            .unwrap();
        assert_eq!(t.load(&a, 1).await.unwrap().unwrap().data, r#"{"x":1}"#);
    }

    #[tokio::test]
    async fn refreshing_a_record_over_a_lowered_limit_still_works() {
        let s = store("touch-big", Format::ThinkJs3).await;
        let a = id("touch-big-session");
        let big = format!(
            r#"{{"data":{{"b":"{}"}},"maxAge":60000,"expires":{}}}"#,
            "x".repeat(300),
            i64::MAX / 2
        );
        set_raw(&s, &a, &big).await;
        assert!(s.touch(&a, 60_000, 0).await.unwrap());
    }

    #[tokio::test]
    async fn a_write_over_a_stale_guess_merges_into_what_redis_holds() {
        let s = store("stale", Format::ThinkJs3).await;
        let a = id("stale-session");
        s.apply_patch(&a, &Patch::of(&[("mine", "1")], 60_000), 0)
            .await
            .unwrap();
        // Another process writes the session after this one last saw it.
        let theirs = r#"{"data":{"mine":1,"theirs":"x"},"maxAge":60000,"expires":60000}"#;
        set_raw(&s, &a, theirs).await;
        s.apply_patch(&a, &Patch::of(&[("more", "2")], 60_000), 0)
            .await
            .unwrap();
        let data = s.load(&a, 1).await.unwrap().unwrap().data;
        assert_eq!(data, r#"{"mine":1,"theirs":"x","more":2}"#);
        // A session guessed new that exists is merged into too.
        let b = id("stale-new-session");
        set_raw(&s, &b, theirs).await;
        s.apply_patch(&b, &Patch::of(&[("more", "2")], 60_000), 0)
            .await
            .unwrap();
        let data = s.load(&b, 1).await.unwrap().unwrap().data;
        assert_eq!(data, r#"{"mine":1,"theirs":"x","more":2}"#);
    }

    #[tokio::test]
    async fn writers_in_two_processes_keep_every_key() {
        // Two stores with caches of their own, as two workers have.
        let (s, t) = (
            store("two", Format::ThinkJs3).await,
            store("two", Format::ThinkJs3).await,
        );
        let a = &id("two-writers-session");
        let writes = (0..20).map(|n| {
            let store = if n % 2 == 0 { &s } else { &t };
            let name = format!("k{n}");
            async move {
                let patch = Patch::of(&[(name.as_str(), "1")], 60_000);
                store.apply_patch(a, &patch, 0).await.unwrap();
            }
        });
        futures_util::future::join_all(writes).await;
        let data: serde_json::Value =
            serde_json::from_str(&s.load(a, 1).await.unwrap().unwrap().data).unwrap();
        assert_eq!(data.as_object().unwrap().len(), 20, "{data}");
    }

    #[tokio::test]
    async fn a_touch_reads_a_session_it_has_not_seen_and_creates_none() {
        let s = store("touch", Format::ThinkJs2).await;
        let a = id("touch-session");
        assert!(!s.touch(&a, 60_000, 0).await.unwrap());
        assert_eq!(s.load(&a, 0).await.unwrap(), None);
        set_raw(&s, &a, r#"{"k":1}"#).await;
        s.run(async |conn| Cmd::pexpire(s.key(&a), 5_000).query_async::<()>(conn).await)
            .await
            .unwrap();
        assert!(s.touch(&a, 60_000, 0).await.unwrap());
        let ttl: i64 = s
            .run(async |conn| Cmd::pttl(s.key(&a)).query_async(conn).await)
            .await
            .unwrap();
        assert!(ttl > 50_000, "{ttl}");
        assert_eq!(s.load(&a, 1).await.unwrap().unwrap().data, r#"{"k":1}"#);
    }

    #[tokio::test]
    async fn refuses_data_over_the_limit_and_keeps_the_record() {
        let s = store("limit", Format::ThinkJs2).await;
        let a = id("limit-session");
        s.apply_patch(&a, &Patch::of(&[("k", "1")], 60_000), 0)
            .await
            .unwrap();
        let big = format!("\"{}\"", "x".repeat(300));
        let err = s
            .apply_patch(&a, &Patch::of(&[("big", big.as_str())], 60_000), 0)
            .await
            .unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_TOO_LARGE");
        assert_eq!(s.load(&a, 1).await.unwrap().unwrap().data, r#"{"k":1}"#);
    }
}
