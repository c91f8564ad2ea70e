use napi::Env;
use napi_derive::napi;

use super::io::{self, calls, JsPromise};
use super::{duration, whole_count, IdArg, Result, Slots, TextArg};
use crate::error::Error;
use crate::store::db::{self, Backend, Connection, DbOptions, DbStore};

static STORES: Slots<DbStore> = Slots::new();

#[napi(object)]
pub struct DbStoreOptions {
    /// 'mysql' (or 'mariadb'), 'postgresql' or 'sqlite'; implied by `url`.
    #[napi(js_name = "type")]
    pub kind: Option<String>,
    /// `mysql://user:password@host:port/database`, `postgres://…` or `sqlite:path`.
    pub url: Option<String>,
    /// Default '127.0.0.1'.
    pub host: Option<String>,
    /// Default 3306 (MySQL) or 5432 (PostgreSQL).
    pub port: Option<f64>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database; with SQLite, the path of its file (created when missing).
    pub database: Option<String>,
    /// The table is `<prefix>session`; letters, digits and _ only. Default ''.
    pub prefix: Option<String>,
    /// Most connections open at once. Default 10.
    pub pool_size: Option<f64>,
    /// Milliseconds a connection attempt may take. Default 2000.
    pub connect_timeout: Option<f64>,
    /// Milliseconds any call may take, waiting for a connection included. Default 3000.
    pub query_timeout: Option<f64>,
    /// Create the table when it is missing. Default true.
    pub create_table: Option<bool>,
    /// Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB.
    pub max_bytes: Option<f64>,
}

/// Creates a database store and returns its slot. Nothing connects until the first call;
/// every call runs on the I/O thread and resolves once the database has committed.
#[napi]
pub fn db_store_create(options: DbStoreOptions) -> Result<u32> {
    let backend = match options.kind.as_deref() {
        None => None,
        Some(name) => Some(
            Backend::from_name(name).ok_or_else(|| Error::InvalidOption {
                name: "type",
                reason: format!("{name:?} is not 'mysql', 'postgresql' or 'sqlite'"),
            })?,
        ),
    };
    let port = match options.port {
        None => None,
        Some(port) if port.fract() == 0.0 && (1.0..=65535.0).contains(&port) => Some(port as u16),
        Some(port) => {
            return Err(Error::InvalidOption {
                name: "port",
                reason: format!("{port} is not a port number"),
            }
            .into())
        }
    };
    let options = DbOptions {
        connection: Connection {
            backend,
            url: options.url,
            host: options.host,
            port,
            user: options.user,
            password: options.password,
            database: options.database,
        },
        prefix: options.prefix.unwrap_or_default(),
        pool_size: whole_count("poolSize", options.pool_size, db::DEFAULT_POOL_SIZE)?,
        connect_timeout: duration(
            "connectTimeout",
            options.connect_timeout,
            db::DEFAULT_CONNECT_TIMEOUT,
        )?,
        query_timeout: duration(
            "queryTimeout",
            options.query_timeout,
            db::DEFAULT_QUERY_TIMEOUT,
        )?,
        create_table: options.create_table.unwrap_or(true),
        max_bytes: whole_count("maxBytes", options.max_bytes, db::DEFAULT_MAX_BYTES)?,
    };
    // The pool's connections are driven by the I/O runtime, so it is made inside it.
    let _runtime = io::runtime()?.enter();
    Ok(STORES.insert(DbStore::new(options)?))
}

/// As memoryStoreLoad, from the database.
#[napi(
    ts_args_type = "slot: number, id: string, autoUpdateRate: number",
    ts_return_type = "Promise<string | null>"
)]
pub fn db_store_load(env: Env, slot: u32, id: IdArg, auto_update_rate: f64) -> Result<JsPromise> {
    calls::load(&env, STORES.get(slot)?, id, auto_update_rate)
}

/// As memoryStoreApply; resolves once the merged row is committed (G1, G2).
#[napi(
    ts_args_type = "slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number",
    ts_return_type = "Promise<void>"
)]
pub fn db_store_apply(
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
pub fn db_store_touch(env: Env, slot: u32, id: IdArg, max_age_ms: f64) -> Result<JsPromise> {
    calls::touch(&env, STORES.get(slot)?, id, max_age_ms)
}

#[napi(
    ts_args_type = "slot: number, id: string",
    ts_return_type = "Promise<void>"
)]
pub fn db_store_destroy(env: Env, slot: u32, id: IdArg) -> Result<JsPromise> {
    calls::destroy(&env, STORES.get(slot)?, id)
}

/// Moves the live session of `from` to `to` (regeneration); resolves with false when
/// `from` has none.
#[napi(
    ts_args_type = "slot: number, from: string, to: string",
    ts_return_type = "Promise<boolean>"
)]
pub fn db_store_rename(env: Env, slot: u32, from: IdArg, to: IdArg) -> Result<JsPromise> {
    calls::rename(&env, STORES.get(slot)?, from, to)
}

/// Deletes expired rows in batches of 1000; resolves with how many went.
#[napi(ts_return_type = "Promise<number>")]
pub fn db_store_gc(env: Env, slot: u32) -> Result<JsPromise> {
    calls::gc(&env, STORES.get(slot)?)
}
