use napi::Env;
use napi_derive::napi;

use super::io::{self, calls, JsPromise};
use super::{duration, format_option, whole_count, IdArg, Result, Slots, TextArg};
use crate::error::Error;
use crate::store::redis::{self, RedisOptions, RedisStore, Target};

static STORES: Slots<RedisStore> = Slots::new();

#[napi(object)]
pub struct RedisStoreOptions {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Default: from host and port.
    pub url: Option<String>,
    /// Default '127.0.0.1'.
    pub host: Option<String>,
    /// Default 6379.
    pub port: Option<f64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: Option<f64>,
    /// Redis Cluster: URLs of some of its nodes.
    pub cluster: Option<Vec<String>>,
    /// Sentinel: the Sentinels' URLs; `masterName` names the master they watch.
    pub sentinels: Option<Vec<String>>,
    pub master_name: Option<String>,
    /// Prepended to each id to make its key. Default none, as think-session-redis.
    pub prefix: Option<String>,
    /// 'thinkjs3' (think-session-redis's records, the default) or 'thinkjs2'.
    pub format: Option<String>,
    /// Milliseconds a connection attempt may take. Default 3000.
    pub connect_timeout: Option<f64>,
    /// Milliseconds any call may take, reconnecting included. Default 3000.
    pub command_timeout: Option<f64>,
    /// Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB.
    pub max_bytes: Option<f64>,
}

/// Creates a Redis store and returns its slot. Nothing connects until the first call;
/// every call runs on the I/O thread and resolves once Redis has answered.
#[napi]
pub fn redis_store_create(options: RedisStoreOptions) -> Result<u32> {
    let target = match (options.cluster, options.sentinels) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidOption {
                name: "cluster",
                reason: "give `cluster` or `sentinels`, not both".into(),
            }
            .into())
        }
        (Some(nodes), None) if nodes.is_empty() => {
            return Err(Error::InvalidOption {
                name: "cluster",
                reason: "lists no node".into(),
            }
            .into())
        }
        (Some(nodes), None) => Target::Cluster(nodes),
        (None, Some(sentinels)) => Target::Sentinel {
            master: options.master_name.ok_or(Error::InvalidOption {
                name: "masterName",
                reason: "`sentinels` need the name of the master they watch".into(),
            })?,
            sentinels,
        },
        (None, None) => Target::Server(options.url.unwrap_or_else(|| {
            let host = options.host.as_deref().unwrap_or("127.0.0.1");
            let port = options.port.unwrap_or(6379.0);
            if host.contains(':') {
                format!("redis://[{host}]:{port}")
            } else {
                format!("redis://{host}:{port}")
            }
        })),
    };
    let format = format_option(options.format.as_deref())?;
    let db = match options.db {
        None => None,
        Some(db) if db.fract() == 0.0 && (0.0..=1e6).contains(&db) => Some(db as i64),
        Some(db) => {
            return Err(Error::InvalidOption {
                name: "db",
                reason: format!("{db} is not a database number"),
            }
            .into())
        }
    };
    let options = RedisOptions {
        target,
        username: options.username,
        password: options.password.filter(|p| !p.is_empty()),
        db,
        prefix: options.prefix.unwrap_or_default(),
        format,
        connect_timeout: duration(
            "connectTimeout",
            options.connect_timeout,
            redis::DEFAULT_CONNECT_TIMEOUT,
        )?,
        command_timeout: duration(
            "commandTimeout",
            options.command_timeout,
            redis::DEFAULT_COMMAND_TIMEOUT,
        )?,
        max_bytes: whole_count("maxBytes", options.max_bytes, redis::DEFAULT_MAX_BYTES)?,
    };
    // TLS needs a process-wide crypto provider; one may be installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The client's connections are driven by the I/O runtime, so it is made inside it.
    let _runtime = io::runtime()?.enter();
    Ok(STORES.insert(RedisStore::new(options)?))
}

/// As memoryStoreLoad, from Redis.
#[napi(
    ts_args_type = "slot: number, id: string, autoUpdateRate: number",
    ts_return_type = "Promise<string | null>"
)]
pub fn redis_store_load(
    env: Env,
    slot: u32,
    id: IdArg,
    auto_update_rate: f64,
) -> Result<JsPromise> {
    calls::load(&env, STORES.get(slot)?, id, auto_update_rate)
}

/// As memoryStoreApply; merged on the Redis server by a script (G2).
#[napi(
    ts_args_type = "slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number",
    ts_return_type = "Promise<void>"
)]
pub fn redis_store_apply(
    env: Env,
    slot: u32,
    id: IdArg,
    name: Option<TextArg>,
    value: Option<TextArg>,
    max_age_ms: f64,
) -> Result<JsPromise> {
    calls::apply(&env, STORES.get(slot)?, id, name, value, max_age_ms)
}

/// As memoryStoreTouch.
#[napi(
    ts_args_type = "slot: number, id: string, maxAgeMs: number",
    ts_return_type = "Promise<boolean>"
)]
pub fn redis_store_touch(env: Env, slot: u32, id: IdArg, max_age_ms: f64) -> Result<JsPromise> {
    calls::touch(&env, STORES.get(slot)?, id, max_age_ms)
}

#[napi(
    ts_args_type = "slot: number, id: string",
    ts_return_type = "Promise<void>"
)]
pub fn redis_store_destroy(env: Env, slot: u32, id: IdArg) -> Result<JsPromise> {
    calls::destroy(&env, STORES.get(slot)?, id)
}

/// Moves the live session of `from` to `to` (regeneration); resolves with false when
/// `from` has none.
#[napi(
    ts_args_type = "slot: number, from: string, to: string",
    ts_return_type = "Promise<boolean>"
)]
pub fn redis_store_rename(env: Env, slot: u32, from: IdArg, to: IdArg) -> Result<JsPromise> {
    calls::rename(&env, STORES.get(slot)?, from, to)
}

/// Redis expires sessions by itself; resolves with 0.
#[napi(ts_return_type = "Promise<number>")]
pub fn redis_store_gc(env: Env, slot: u32) -> Result<JsPromise> {
    calls::gc(&env, STORES.get(slot)?)
}
