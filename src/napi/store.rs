//! The one binding of every store: calls over the [`SessionStore`] trait. Where a call
//! runs follows from the store's [`Runs`]: a store that answers without I/O (memory)
//! answers synchronously, with no thread hop and no promise; a blocking one (files)
//! runs on the libuv pool; a network one on Node's own loop (`event_loop`) or the I/O
//! runtime. Store gc never blocks the JavaScript thread (G7).

use std::ffi::CStr;
use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use futures_util::FutureExt;
use napi::bindgen_prelude::{AsyncTask, ToNapiValue, TypeName};
use napi::{sys, Env, ValueType};
use napi_derive::napi;

use super::args::{IdArg, TextArg};
use super::event_loop;
use super::promise::{blocking, spawn, Blocking, JsPromise};
use super::runtime::runtime;
use super::Result;
use crate::error::Error;
use crate::session::{now_ms, Patch};
use crate::store::{self, options, InlineStore, Loaded, LoadedKey, Runs, SessionStore};

/// The stores opened from JavaScript, named there by their slot (lib/stores.js wraps one
/// in a class). The calls are functions of the slot rather than methods of a `#[napi]`
/// class: napi-rs makes and drops a reference to a method's receiver on every call, which
/// measured 3-4x the cost of the whole call of a function taking a number (ARCHITECTURE.md,
/// "Performance shape"). Stores are made once per configuration and live as long as the
/// process, so a slot hands out a plain `&'static` with no reference count to keep, and
/// finding it takes no lock.
static STORES: [OnceLock<Opened>; MAX_STORES] = [const { OnceLock::new() }; MAX_STORES];
/// How many slots are taken; held while a store is opened.
static TAKEN: Mutex<usize> = Mutex::new(0);
/// Each configuration opens one store: thousands mean options made per request.
const MAX_STORES: usize = 1024;

#[derive(Clone, Copy)]
struct Opened {
    store: &'static dyn SessionStore,
    inline: Option<&'static dyn InlineStore>,
    runs: Runs,
    pending: &'static Pending,
}

/// Calls of one store waiting for their answer, at most `limit` (`maxPending`): past it a
/// call is refused at once with ERR_SESSION_BUSY, so a slow store sheds load instead of
/// letting calls and their memory pile up for the length of the store's timeout.
struct Pending {
    kind: &'static str,
    waiting: AtomicUsize,
    limit: usize,
}

impl Pending {
    fn admit(&'static self) -> Result<Admitted> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            let (store, limit) = (self.kind, self.limit);
            return Err(Error::Busy { store, limit }.into());
        }
        Ok(Admitted(self))
    }
}

/// One admitted call; it stops counting when dropped, answered or not.
struct Admitted(&'static Pending);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

fn opened(slot: u32) -> Result<Opened> {
    let found = STORES.get(slot as usize).and_then(OnceLock::get);
    found.copied().ok_or_else(|| {
        Error::InvalidOption {
            name: "slot",
            reason: format!("no store was opened in slot {slot}"),
        }
        .into()
    })
}

/// Opens the store `kind` ('memory', 'file', 'redis' or 'db') with its options as JSON
/// text (the option names of the store's JS peer) and returns its slot. Nothing connects
/// until the first call.
#[napi]
pub fn store_open(env: Env, kind: String, options: String) -> Result<u32> {
    // Stores with connections make them inside the I/O runtime that drives them, or on
    // this thread's event loop where they can.
    let _runtime = runtime()?.enter();
    event_loop::install(&env);
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    if *taken == MAX_STORES {
        return Err(Error::InvalidOption {
            name: "kind",
            reason: format!(
                "{MAX_STORES} stores are open already: each set of store options opens one, so build the options once, not per request"
            ),
        }
        .into());
    }
    let (options, limit) = options::take_max_pending(&options)?;
    let store: &'static dyn SessionStore = Box::leak(store::open(&kind, &options)?);
    let kind = match kind.as_str() {
        "file" => "file",
        "redis" => "redis",
        "db" => "db",
        _ => "session",
    };
    let opened = Opened {
        store,
        inline: store.inline(),
        runs: store.runs(),
        pending: Box::leak(Box::new(Pending {
            kind,
            waiting: AtomicUsize::new(0),
            limit,
        })),
    };
    let slot = *taken;
    // Only this thread, holding TAKEN, sets a slot: it is empty.
    let _ = STORES[slot].set(opened);
    *taken += 1;
    Ok(slot as u32)
}

/// True when every call of the store but gc answers synchronously (the memory store).
#[napi]
pub fn store_is_sync(slot: u32) -> Result<bool> {
    Ok(opened(slot)?.inline.is_some())
}

/// Sessions the store holds, live or not yet collected, where it can tell at no cost.
#[napi]
pub fn store_size(slot: u32) -> Result<Option<u32>> {
    let size = opened(slot)?.store.size();
    Ok(size.map(|n| n.min(u32::MAX as usize) as u32))
}

/// The live session's data (JSON text), and whether the read also moved the expiry
/// forward (less than `autoUpdateRate` of the lifetime was left); null when none.
#[napi(
    ts_args_type = "slot: number, id: string, autoUpdateRate: number",
    ts_return_type = "Loaded | null | Promise<Loaded | null>"
)]
pub fn store_load(
    env: Env,
    slot: u32,
    id: IdArg,
    auto_update_rate: f64,
) -> Result<Answer<Option<Loaded>>> {
    let (id, opened) = (id.0?, opened(slot)?);
    if let Some(store) = opened.inline {
        let loaded = store.load_data_now(&id, now_ms(), auto_update_rate)?;
        return Ok(Answer::Now(loaded));
    }
    if let Some(loaded) = opened
        .store
        .load_data_cached(&id, now_ms(), auto_update_rate)
    {
        return Ok(Answer::Now(loaded?));
    }
    off_thread(&env, opened, move |store| async move {
        store.load_data(&id, now_ms(), auto_update_rate).await
    })
}

/// One key of the live session: its value (JSON text, or null when the session has no
/// such key) and whether the read moved the expiry forward; null when there is no live
/// session. A store that keeps keys apart (memory) reads nothing else.
#[napi(
    ts_args_type = "slot: number, id: string, name: string, autoUpdateRate: number",
    ts_return_type = "LoadedKey | null | Promise<LoadedKey | null>"
)]
pub fn store_load_key(
    env: Env,
    slot: u32,
    id: IdArg,
    name: TextArg,
    auto_update_rate: f64,
) -> Result<Answer<Option<LoadedKey>>> {
    let (id, name, opened) = (id.0?, name.0?, opened(slot)?);
    if let Some(store) = opened.inline {
        let loaded = store.load_key_now(&id, &name, now_ms(), auto_update_rate)?;
        return Ok(Answer::Now(loaded));
    }
    let cached = opened
        .store
        .load_key_cached(&id, &name, now_ms(), auto_update_rate);
    if let Some(loaded) = cached {
        return Ok(Answer::Now(loaded?));
    }
    off_thread(&env, opened, move |store| async move {
        store.load_key(&id, &name, now_ms(), auto_update_rate).await
    })
}

/// Sets key `name` to `value` (JSON text; `"null"` removes the key) and the expiry to now
/// + `maxAgeMs`, creating the session when missing; a null `name` only sets the expiry.
/// Done when the store has it (G1), merged into what others wrote (G2).
#[napi(
    ts_args_type = "slot: number, id: string, name: string | null, value: string | null, maxAgeMs: number",
    ts_return_type = "void | Promise<void>"
)]
pub fn store_apply(
    env: Env,
    slot: u32,
    id: IdArg,
    name: Option<TextArg>,
    value: Option<TextArg>,
    max_age_ms: f64,
) -> Result<Answer<()>> {
    let id = id.0?;
    let mut patch = Patch::new(options::lifetime_ms("maxAge", max_age_ms)?)?;
    if let Some(name) = name {
        let value = value.ok_or_else(|| {
            Error::InvalidValue("a name needs a value: JSON text, or null to remove the key".into())
        })?;
        patch.set(name.0?, value.0?)?;
    }
    let opened = opened(slot)?;
    if let Some(store) = opened.inline {
        return Ok(Answer::Now(store.apply_patch_now(&id, &patch, now_ms())?));
    }
    off_thread(&env, opened, move |store| async move {
        store.apply_patch(&id, &patch, now_ms()).await
    })
}

/// Moves the expiry of a live session to now + `maxAgeMs`, creating nothing; false when
/// there is none (a read-only request's refresh must not bring back a session moved or
/// cleared meanwhile).
#[napi(
    ts_args_type = "slot: number, id: string, maxAgeMs: number",
    ts_return_type = "boolean | Promise<boolean>"
)]
pub fn store_touch(env: Env, slot: u32, id: IdArg, max_age_ms: f64) -> Result<Answer<bool>> {
    let id = id.0?;
    let max_age_ms = options::lifetime_ms("maxAge", max_age_ms)?;
    let opened = opened(slot)?;
    if let Some(store) = opened.inline {
        return Ok(Answer::Now(store.touch_now(&id, max_age_ms, now_ms())?));
    }
    off_thread(&env, opened, move |store| async move {
        store.touch(&id, max_age_ms, now_ms()).await
    })
}

#[napi(
    ts_args_type = "slot: number, id: string",
    ts_return_type = "void | Promise<void>"
)]
pub fn store_destroy(env: Env, slot: u32, id: IdArg) -> Result<Answer<()>> {
    let (id, opened) = (id.0?, opened(slot)?);
    if let Some(store) = opened.inline {
        return Ok(Answer::Now(store.destroy_now(&id)?));
    }
    off_thread(&env, opened, move |store| async move {
        store.destroy(&id).await
    })
}

/// Moves the live session of `from` to `to` (regeneration); false when `from` has none.
#[napi(
    ts_args_type = "slot: number, from: string, to: string",
    ts_return_type = "boolean | Promise<boolean>"
)]
pub fn store_rename(env: Env, slot: u32, from: IdArg, to: IdArg) -> Result<Answer<bool>> {
    let (from, to, opened) = (from.0?, to.0?, opened(slot)?);
    if let Some(store) = opened.inline {
        return Ok(Answer::Now(store.rename_now(&from, &to, now_ms())?));
    }
    off_thread(&env, opened, move |store| async move {
        store.rename(&from, &to, now_ms()).await
    })
}

/// Removes expired sessions off the JavaScript thread (G7); resolves with how many went.
#[napi(ts_return_type = "Promise<number>")]
pub fn store_gc(env: Env, slot: u32) -> Result<Answer<f64>> {
    upkeep(&env, opened(slot)?, |store| async move {
        Ok(store.gc(now_ms()).await? as f64)
    })
}

/// Closes the store's connections (a database pool); every later call fails.
#[napi(ts_return_type = "Promise<void>")]
pub fn store_close(env: Env, slot: u32) -> Result<Answer<()>> {
    upkeep(
        &env,
        opened(slot)?,
        |store| async move { store.close().await },
    )
}

/// Runs a request's call off the JavaScript thread and answers with a promise, once the
/// store's `maxPending` admits it (a store without I/O answers its calls at once: see the
/// `inline` branch of each call).
fn off_thread<T, F, Fut>(env: &Env, opened: Opened, work: F) -> Result<Answer<T>>
where
    T: ToNapiValue + TypeName + Send + 'static,
    F: FnOnce(&'static dyn SessionStore) -> Fut + Send + 'static,
    Fut: Future<Output = crate::Result<T>> + Send + 'static,
{
    run_off_thread(env, opened, Some(opened.pending.admit()?), work)
}

/// As [`off_thread`], for the store's own upkeep (gc, close), which `maxPending` does not
/// count; the gc of a store without I/O goes off the thread too (G7).
fn upkeep<T, F, Fut>(env: &Env, opened: Opened, work: F) -> Result<Answer<T>>
where
    T: ToNapiValue + TypeName + Send + 'static,
    F: FnOnce(&'static dyn SessionStore) -> Fut + Send + 'static,
    Fut: Future<Output = crate::Result<T>> + Send + 'static,
{
    run_off_thread(env, opened, None, work)
}

fn run_off_thread<T, F, Fut>(
    env: &Env,
    opened: Opened,
    admitted: Option<Admitted>,
    work: F,
) -> Result<Answer<T>>
where
    T: ToNapiValue + TypeName + Send + 'static,
    F: FnOnce(&'static dyn SessionStore) -> Fut + Send + 'static,
    Fut: Future<Output = crate::Result<T>> + Send + 'static,
{
    let store = opened.store;
    Ok(match opened.runs {
        Runs::Io => Answer::Io(spawn(env, async move {
            let _admitted = admitted;
            work(store).await
        })?),
        Runs::Loop => Answer::Io(event_loop::spawn_local(env, async move {
            let _admitted = admitted;
            work(store).await
        })?),
        Runs::Inline | Runs::Blocking => Answer::Pool(blocking(move || {
            let _admitted = admitted;
            at_once(work(store))
        })),
    })
}

/// The result of a call of a store that never waits on anything but its own work.
fn at_once<T>(future: impl Future<Output = crate::Result<T>>) -> crate::Result<T> {
    future.now_or_never().unwrap_or_else(|| {
        Err(Error::store(
            "runtime",
            "a store that runs without I/O waited on something; report this as a bug",
        ))
    })
}

/// What a store call hands JavaScript: the value itself, or a promise of it.
pub enum Answer<T: ToNapiValue + TypeName + Send + 'static> {
    Now(T),
    Pool(AsyncTask<Blocking<T>>),
    Io(JsPromise),
}

impl<T: ToNapiValue + TypeName + Send + 'static> ToNapiValue for Answer<T> {
    unsafe fn to_napi_value(env: sys::napi_env, answer: Self) -> napi::Result<sys::napi_value> {
        unsafe {
            match answer {
                Answer::Now(value) => T::to_napi_value(env, value),
                Answer::Pool(task) => AsyncTask::to_napi_value(env, task),
                Answer::Io(promise) => JsPromise::to_napi_value(env, promise),
            }
        }
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> TypeName for Answer<T> {
    fn type_name() -> &'static str {
        T::type_name()
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl TypeName for Loaded {
    fn type_name() -> &'static str {
        "Loaded"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl TypeName for LoadedKey {
    fn type_name() -> &'static str {
        "LoadedKey"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

/// `{ data, refreshed }` (typed in lib/types.d.ts).
impl ToNapiValue for Loaded {
    unsafe fn to_napi_value(env: sys::napi_env, loaded: Self) -> napi::Result<sys::napi_value> {
        unsafe { answer_object(env, c"data", Some(&loaded.data), loaded.refreshed) }
    }
}

/// `{ value, refreshed }`, value null for a missing key (typed in lib/types.d.ts).
impl ToNapiValue for LoadedKey {
    unsafe fn to_napi_value(env: sys::napi_env, loaded: Self) -> napi::Result<sys::napi_value> {
        unsafe { answer_object(env, c"value", loaded.value.as_deref(), loaded.refreshed) }
    }
}

/// An object of JSON text (or null) under `name`, and `refreshed`.
unsafe fn answer_object(
    env: sys::napi_env,
    name: &CStr,
    text: Option<&str>,
    refreshed: bool,
) -> napi::Result<sys::napi_value> {
    let mut object = ptr::null_mut();
    let mut value = ptr::null_mut();
    let mut flag = ptr::null_mut();
    unsafe {
        check(sys::napi_create_object(env, &mut object))?;
        check(match text {
            // Session data is mostly ASCII, which V8 takes as Latin-1 with a plain copy
            // instead of decoding UTF-8.
            Some(text) if text.is_ascii() => sys::napi_create_string_latin1(
                env,
                text.as_ptr().cast(),
                text.len() as isize,
                &mut value,
            ),
            Some(text) => sys::napi_create_string_utf8(
                env,
                text.as_ptr().cast(),
                text.len() as isize,
                &mut value,
            ),
            None => sys::napi_get_null(env, &mut value),
        })?;
        check(sys::napi_get_boolean(env, refreshed, &mut flag))?;
        check(sys::napi_set_named_property(
            env,
            object,
            name.as_ptr(),
            value,
        ))?;
        check(sys::napi_set_named_property(
            env,
            object,
            c"refreshed".as_ptr(),
            flag,
        ))?;
    }
    Ok(object)
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        other => Err(napi::Error::new(
            napi::Status::from(other),
            "could not hand the session to JavaScript",
        )),
    }
}
