use std::path::PathBuf;

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use super::{
    blocking, format_option, loaded_string, patch_of, whole_count, whole_ms, Blocking, IdArg,
    Result, Slots, TextArg,
};
use crate::session::now_ms;
use crate::store::file::{self, FileOptions, FileStore, Layout};
use crate::store::Format;

static STORES: Slots<FileStore> = Slots::new();

#[napi(object)]
pub struct FileStoreOptions {
    /// The folder of the session files; an absolute path.
    pub session_path: String,
    /// 'thinkjs3' (think-session-file's layout, the default) or 'thinkjs2'.
    pub format: Option<String>,
    /// With 'thinkjs2': how many leading characters of the id become folders. Default 1.
    pub path_depth: Option<f64>,
    /// Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB.
    pub max_bytes: Option<f64>,
}

/// Creates a store of one file per session and returns its slot. Every call on it runs
/// on the libuv thread pool and resolves once the file system has the change.
#[napi]
pub fn file_store_create(options: FileStoreOptions) -> Result<u32> {
    let layout = match format_option(options.format.as_deref())? {
        Format::ThinkJs3 => Layout::ThinkJs3,
        Format::ThinkJs2 => Layout::ThinkJs2 {
            depth: whole_count("pathDepth", options.path_depth, 1)?,
        },
    };
    Ok(STORES.insert(FileStore::new(FileOptions {
        root: PathBuf::from(options.session_path),
        layout,
        max_bytes: whole_count("maxBytes", options.max_bytes, file::DEFAULT_MAX_BYTES)?,
    })?))
}

/// The data of the live session as JSON text, or null; as memoryStoreLoad, a leading
/// space marks a read that also refreshed the expiry.
#[napi(
    ts_args_type = "slot: number, id: string, autoUpdateRate: number",
    ts_return_type = "Promise<string | null>"
)]
pub fn file_store_load(
    slot: u32,
    id: IdArg,
    auto_update_rate: f64,
) -> Result<AsyncTask<Blocking<Option<String>>>> {
    let store = STORES.get(slot)?;
    let id = id.0?;
    Ok(blocking(move || {
        let loaded = store.load_data_blocking(&id, now_ms(), auto_update_rate)?;
        Ok(loaded_string(loaded))
    }))
}

/// As memoryStoreApply, on the session file under the store's lock.
#[napi(
    ts_args_type = "slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number",
    ts_return_type = "Promise<void>"
)]
pub fn file_store_apply(
    slot: u32,
    id: IdArg,
    name: Option<TextArg>,
    value: Option<TextArg>,
    max_age_ms: f64,
) -> Result<AsyncTask<Blocking<()>>> {
    let store = STORES.get(slot)?;
    let id = id.0?;
    let patch = patch_of(name, value, max_age_ms)?;
    Ok(blocking(move || {
        store.apply_patch_blocking(&id, &patch, now_ms())
    }))
}

/// As memoryStoreTouch, on the session file under the store's lock.
#[napi(
    ts_args_type = "slot: number, id: string, maxAgeMs: number",
    ts_return_type = "Promise<boolean>"
)]
pub fn file_store_touch(
    slot: u32,
    id: IdArg,
    max_age_ms: f64,
) -> Result<AsyncTask<Blocking<bool>>> {
    let store = STORES.get(slot)?;
    let id = id.0?;
    let max_age_ms = whole_ms("maxAge", max_age_ms)?;
    Ok(blocking(move || {
        store.touch_blocking(&id, max_age_ms, now_ms())
    }))
}

#[napi(
    ts_args_type = "slot: number, id: string",
    ts_return_type = "Promise<void>"
)]
pub fn file_store_destroy(slot: u32, id: IdArg) -> Result<AsyncTask<Blocking<()>>> {
    let store = STORES.get(slot)?;
    let id = id.0?;
    Ok(blocking(move || store.destroy_blocking(&id)))
}

/// Moves the live session of `from` to `to` (regeneration) with one rename(2);
/// resolves with false when `from` has none.
#[napi(
    ts_args_type = "slot: number, from: string, to: string",
    ts_return_type = "Promise<boolean>"
)]
pub fn file_store_rename(slot: u32, from: IdArg, to: IdArg) -> Result<AsyncTask<Blocking<bool>>> {
    let store = STORES.get(slot)?;
    let (from, to) = (from.0?, to.0?);
    Ok(blocking(move || {
        store.rename_blocking(&from, &to, now_ms())
    }))
}

/// Removes expired and unreadable session files on a worker thread; resolves with how many went.
#[napi(ts_return_type = "Promise<number>")]
pub fn file_store_gc(slot: u32) -> Result<AsyncTask<Blocking<u32>>> {
    let store = STORES.get(slot)?;
    Ok(blocking(move || Ok(store.gc_blocking(now_ms())? as u32)))
}
