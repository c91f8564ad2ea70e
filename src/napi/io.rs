//! Where network stores do their I/O: one current_thread tokio runtime on a thread of its
//! own. On napi's multi-thread runtime every socket wake-up crossed threads and cost more
//! than the request (design section 6); here the I/O and its wake-ups stay on one thread,
//! and each finished call crosses back to JavaScript once, through one threadsafe
//! function shared by all calls, to settle its promise.
//!
//! Calls reach the I/O thread through a queue. Waking a sleeping thread costs tens of
//! microseconds on a busy machine, about a Redis round trip, so while only a few calls
//! are in flight the thread keeps polling for a short while after its last work instead
//! of sleeping: a request's next call (the write after the read) then finds it awake.
//! With many calls in flight it sleeps between events as usual and the CPU stays with
//! JavaScript and the server. A process allowed only one CPU never polls: there the
//! polling would take the core from the JavaScript thread it waits for.

use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::Result;
use crate::error::{Error, ErrorCode};

/// How long the I/O thread stays awake after its last work while few calls are in flight.
const STAY_AWAKE: Duration = Duration::from_micros(200);
/// Above this many calls in flight, events come often enough to sleep between them.
const STAY_AWAKE_MAX_IN_FLIGHT: usize = 2;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

static QUEUE: Mutex<Vec<Job>> = Mutex::new(Vec::new());
static ASLEEP: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// The runtime's handle (clients are made inside it); the thread driving it lives as
/// long as the process.
pub fn runtime() -> crate::Result<&'static Handle> {
    static RUNTIME: OnceLock<std::result::Result<Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("think-session-io".into())
                .spawn(move || runtime.block_on(take_jobs()))
                .map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .as_ref()
        .map_err(|e| Error::store("runtime", format!("cannot start the I/O thread: {e}")))
}

fn queue() -> std::sync::MutexGuard<'static, Vec<Job>> {
    QUEUE.lock().unwrap_or_else(|p| p.into_inner())
}

/// From the JavaScript thread: queues a call, waking the I/O thread only if it sleeps.
fn submit(job: Job) {
    queue().push(job);
    // SeqCst on both sides: either this sees ASLEEP, or the I/O thread sees the job. The
    // first call after it fell asleep wakes it; the calls behind that one need not.
    if ASLEEP.swap(false, Ordering::SeqCst) {
        WAKE.notify_one();
    }
}

/// Counts a call out of [`IN_FLIGHT`] however its task ends.
struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The I/O thread's main task: starts queued calls as tasks of their own.
async fn take_jobs() {
    let stay_awake = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let mut last_work = Instant::now();
    loop {
        let jobs = std::mem::take(&mut *queue());
        let in_flight = IN_FLIGHT.load(Ordering::SeqCst);
        if !jobs.is_empty() || in_flight > 0 {
            last_work = Instant::now();
        }
        for job in jobs {
            IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _counted = InFlight;
                job.await;
            });
        }
        if stay_awake && in_flight <= STAY_AWAKE_MAX_IN_FLIGHT && last_work.elapsed() < STAY_AWAKE {
            tokio::task::yield_now().await; // lets the calls and the reactor run, then looks again
            continue;
        }
        ASLEEP.store(true, Ordering::SeqCst);
        if queue().is_empty() {
            WAKE.notified().await; // the calls in flight go on meanwhile
        }
        ASLEEP.store(false, Ordering::SeqCst);
        last_work = Instant::now();
    }
}

/// A promise made by [`spawn`], handed to JavaScript as it is.
pub struct JsPromise(sys::napi_value);

impl ToNapiValue for JsPromise {
    unsafe fn to_napi_value(_env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        Ok(value.0)
    }
}

/// Runs `work` on the I/O runtime and returns a promise of its result; a failure
/// rejects with an Error carrying the package's code, as synchronous calls throw.
pub fn spawn<T, F>(env: &Env, work: F) -> Result<JsPromise>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = crate::Result<T>> + Send + 'static,
{
    runtime()?;
    let bridge = Bridge::get(env)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
    bridge.started(env);
    let deferred = Deferred(deferred);
    let tsfn = bridge.tsfn;
    submit(Box::pin(async move {
        // A panic in a call rejects that call and nothing else.
        let result = AssertUnwindSafe(work)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Error::store("runtime", "the call panicked")));
        let completion = Box::new(Completion {
            deferred,
            settle: Box::new(move |env| match result {
                Ok(value) => unsafe { T::to_napi_value(env, value) }
                    .map_err(|e| (ErrorCode::Store, e.reason.clone())),
                Err(err) => Err((err.code(), err.to_string())),
            }),
        });
        tsfn.send(completion);
    }));
    Ok(JsPromise(promise))
}

type Settle = Box<
    dyn FnOnce(sys::napi_env) -> std::result::Result<sys::napi_value, (ErrorCode, String)> + Send,
>;

struct Completion {
    deferred: Deferred,
    settle: Settle,
}

/// Raw napi handles are plain pointers; each is only ever used on the JavaScript thread.
#[derive(Clone, Copy)]
struct Deferred(sys::napi_deferred);
unsafe impl Send for Deferred {}

#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);
unsafe impl Send for Tsfn {}
unsafe impl Sync for Tsfn {}

/// Set when Node finalizes the threadsafe function (the environment is going away); it
/// must not be called after that. Held while calling it, so the two cannot interleave.
static TSFN_CLOSED: Mutex<bool> = Mutex::new(false);

unsafe extern "C" fn tsfn_finalized(_env: sys::napi_env, _data: *mut c_void, _hint: *mut c_void) {
    *TSFN_CLOSED.lock().unwrap_or_else(|p| p.into_inner()) = true;
}

impl Tsfn {
    /// Queues `completion` for [`settle`] on the JavaScript thread.
    fn send(self, completion: Box<Completion>) {
        let closed = TSFN_CLOSED.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return; // no one is left to settle the promise
        }
        let data = Box::into_raw(completion).cast::<c_void>();
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                self.0,
                data,
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // The environment is shutting down: no one is left to settle the promise.
            drop(unsafe { Box::from_raw(data.cast::<Completion>()) });
        }
    }
}

/// The one threadsafe function that settles promises, and how many are unsettled: while
/// any is, it keeps the event loop alive, so `await store.load(…)` in a script that does
/// nothing else still gets its answer.
static BRIDGE: OnceLock<std::result::Result<Bridge, String>> = OnceLock::new();

struct Bridge {
    tsfn: Tsfn,
    env: usize,
    pending: AtomicUsize,
}

impl Bridge {
    fn get(env: &Env) -> Result<&'static Bridge> {
        let bridge = BRIDGE
            .get_or_init(|| Bridge::create(env))
            .as_ref()
            .map_err(|e| Error::store("runtime", e.clone()))?;
        if bridge.env != env.raw() as usize {
            return Err(Error::store(
                "runtime",
                "network stores work on the main JavaScript thread only, not in worker threads",
            )
            .into());
        }
        Ok(bridge)
    }

    fn create(env: &Env) -> std::result::Result<Bridge, String> {
        let mut name = ptr::null_mut();
        let label = "think-session-native";
        let mut tsfn = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_string_utf8(
                env.raw(),
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(format!(
                "cannot name the completion callback (napi status {status})"
            ));
        }
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                env.raw(),
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                Some(tsfn_finalized),
                ptr::null_mut(),
                Some(settle),
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(format!(
                "cannot create the completion callback (napi status {status})"
            ));
        }
        unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
        Ok(Bridge {
            tsfn: Tsfn(tsfn),
            env: env.raw() as usize,
            pending: AtomicUsize::new(0),
        })
    }

    fn started(&self, env: &Env) {
        if self.pending.fetch_add(1, Ordering::Relaxed) == 0 {
            unsafe { sys::napi_ref_threadsafe_function(env.raw(), self.tsfn.0) };
        }
    }

    fn finished(&self, env: sys::napi_env) {
        if self.pending.fetch_sub(1, Ordering::Relaxed) == 1 {
            unsafe { sys::napi_unref_threadsafe_function(env, self.tsfn.0) };
        }
    }
}

/// On the JavaScript thread: settles one call's promise.
unsafe extern "C" fn settle(
    env: sys::napi_env,
    _callback: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    let completion = unsafe { Box::from_raw(data.cast::<Completion>()) };
    if env.is_null() {
        return; // the environment is being torn down
    }
    if let Some(Ok(bridge)) = BRIDGE.get() {
        bridge.finished(env);
    }
    let Completion { deferred, settle } = *completion;
    unsafe {
        match settle(env) {
            Ok(value) => sys::napi_resolve_deferred(env, deferred.0, value),
            Err((code, message)) => {
                let error = js_error(env, code, &message);
                sys::napi_reject_deferred(env, deferred.0, error)
            }
        };
    }
}

unsafe fn js_error(env: sys::napi_env, code: ErrorCode, message: &str) -> sys::napi_value {
    let mut code_value = ptr::null_mut();
    let mut message_value = ptr::null_mut();
    let mut error = ptr::null_mut();
    let code = code.as_ref();
    unsafe {
        sys::napi_create_string_utf8(
            env,
            code.as_ptr().cast(),
            code.len() as isize,
            &mut code_value,
        );
        sys::napi_create_string_utf8(
            env,
            message.as_ptr().cast(),
            message.len() as isize,
            &mut message_value,
        );
        sys::napi_create_error(env, code_value, message_value, &mut error);
    }
    error
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::store("runtime", format!("napi call failed with status {status}")).into())
    }
}

/// The calls of a store whose work is I/O, the same for each such store: checked on the JS
/// thread (a bad id or value throws there), run on the I/O thread.
pub mod calls {
    use napi::Env;

    use super::{spawn, JsPromise};
    use crate::napi::{loaded_string, patch_of, whole_ms, IdArg, Result, TextArg};
    use crate::session::now_ms;
    use crate::store::SessionStore;

    pub fn load<S: SessionStore>(
        env: &Env,
        store: &'static S,
        id: IdArg,
        auto_update_rate: f64,
    ) -> Result<JsPromise> {
        let id = id.0?;
        spawn(env, async move {
            let loaded = store.load_data(&id, now_ms(), auto_update_rate).await?;
            Ok(loaded_string(loaded))
        })
    }

    pub fn apply<S: SessionStore>(
        env: &Env,
        store: &'static S,
        id: IdArg,
        name: Option<TextArg>,
        value: Option<TextArg>,
        max_age_ms: f64,
    ) -> Result<JsPromise> {
        let id = id.0?;
        let patch = patch_of(name, value, max_age_ms)?;
        spawn(env, async move {
            store.apply_patch(&id, &patch, now_ms()).await
        })
    }

    pub fn touch<S: SessionStore>(
        env: &Env,
        store: &'static S,
        id: IdArg,
        max_age_ms: f64,
    ) -> Result<JsPromise> {
        let id = id.0?;
        let max_age_ms = whole_ms("maxAge", max_age_ms)?;
        spawn(
            env,
            async move { store.touch(&id, max_age_ms, now_ms()).await },
        )
    }

    pub fn destroy<S: SessionStore>(env: &Env, store: &'static S, id: IdArg) -> Result<JsPromise> {
        let id = id.0?;
        spawn(env, async move { store.destroy(&id).await })
    }

    pub fn rename<S: SessionStore>(
        env: &Env,
        store: &'static S,
        from: IdArg,
        to: IdArg,
    ) -> Result<JsPromise> {
        let (from, to) = (from.0?, to.0?);
        spawn(env, async move { store.rename(&from, &to, now_ms()).await })
    }

    pub fn gc<S: SessionStore>(env: &Env, store: &'static S) -> Result<JsPromise> {
        spawn(env, async move { Ok(store.gc(now_ms()).await? as f64) })
    }
}
