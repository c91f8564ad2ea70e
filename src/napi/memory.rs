use napi::bindgen_prelude::AsyncTask;
use napi::{Env, JsString};
use napi_derive::napi;

use super::{
    blocking, js_loaded_text, patch_of, whole_count, whole_ms, Blocking, IdArg, Result, Slots,
    TextArg,
};
use crate::session::now_ms;
use crate::store::memory::{self, MemoryOptions, MemoryStore};

static STORES: Slots<MemoryStore> = Slots::new();

#[napi(object)]
pub struct MemoryStoreOptions {
    /// Most sessions kept; past it the least recently used goes. Default 100000.
    pub max_entries: Option<f64>,
    /// Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB.
    pub max_bytes: Option<f64>,
}

/// Creates a store of sessions in this process's memory, outside the V8 heap, and returns
/// its slot. Every call on it is synchronous: the work is shorter than a thread hop.
#[napi]
pub fn memory_store_create(options: Option<MemoryStoreOptions>) -> Result<u32> {
    let (max_entries, max_bytes) = options.map_or((None, None), |o| (o.max_entries, o.max_bytes));
    let options = MemoryOptions {
        max_entries: whole_count("maxEntries", max_entries, memory::DEFAULT_MAX_ENTRIES)?,
        max_bytes: whole_count("maxBytes", max_bytes, memory::DEFAULT_MAX_BYTES)?,
    };
    Ok(STORES.insert(MemoryStore::new(options)?))
}

/// The data of the live session as JSON text, or null. When less than `autoUpdateRate`
/// of its lifetime is left the expiry is refreshed too, and the text then starts with a
/// space (which JSON.parse ignores) so the caller knows to send the cookie again.
#[napi(
    ts_args_type = "slot: number, id: string, autoUpdateRate: number",
    ts_return_type = "string | null"
)]
pub fn memory_store_load<'env>(
    env: &'env Env,
    slot: u32,
    id: IdArg,
    auto_update_rate: f64,
) -> Result<Option<JsString<'env>>> {
    let id = id.0?;
    STORES
        .get(slot)?
        .load_data(&id, now_ms(), auto_update_rate, |data, refreshed| {
            js_loaded_text(env, data, refreshed)
        })
        .transpose()
}

/// Sets key `name` to `value` (JSON text; `"null"` removes the key) and the expiry to
/// now + `maxAgeMs`, creating the record when missing. A null `name` only sets the expiry.
#[napi(
    ts_args_type = "slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number"
)]
pub fn memory_store_apply(
    slot: u32,
    id: IdArg,
    name: Option<TextArg>,
    value: Option<TextArg>,
    max_age_ms: f64,
) -> Result<()> {
    let id = id.0?;
    let patch = patch_of(name, value, max_age_ms)?;
    Ok(STORES.get(slot)?.apply_patch_now(&id, &patch, now_ms())?)
}

/// Moves the expiry of a live session to now + `maxAgeMs`, creating nothing; false when
/// there is none (a read-only request's refresh must not bring back a moved session).
#[napi(ts_args_type = "slot: number, id: string, maxAgeMs: number")]
pub fn memory_store_touch(slot: u32, id: IdArg, max_age_ms: f64) -> Result<bool> {
    let id = id.0?;
    let max_age_ms = whole_ms("maxAge", max_age_ms)?;
    Ok(STORES.get(slot)?.touch_now(&id, max_age_ms, now_ms())?)
}

#[napi(ts_args_type = "slot: number, id: string")]
pub fn memory_store_destroy(slot: u32, id: IdArg) -> Result<()> {
    let id = id.0?;
    STORES.get(slot)?.destroy_now(&id);
    Ok(())
}

/// Moves the live session of `from` to `to` (regeneration); false when `from` has none.
#[napi(ts_args_type = "slot: number, from: string, to: string")]
pub fn memory_store_rename(slot: u32, from: IdArg, to: IdArg) -> Result<bool> {
    let (from, to) = (from.0?, to.0?);
    Ok(STORES.get(slot)?.rename_now(&from, &to, now_ms()))
}

/// Records held, live or not yet collected.
#[napi]
pub fn memory_store_size(slot: u32) -> Result<u32> {
    Ok(STORES.get(slot)?.len() as u32)
}

/// Removes expired records on a worker thread; resolves with how many went.
#[napi(ts_return_type = "Promise<number>")]
pub fn memory_store_gc(slot: u32) -> Result<AsyncTask<Blocking<u32>>> {
    let store = STORES.get(slot)?;
    Ok(blocking(move || Ok(store.gc_now(now_ms()) as u32)))
}
