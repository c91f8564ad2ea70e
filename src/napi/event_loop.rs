//! Store calls run on the JavaScript thread itself, their sockets watched by Node's own
//! libuv loop: a request's command is written from the call that makes it, and its answer
//! read, parsed and settled in the loop's callback, with no other thread woken on the way
//! (ARCHITECTURE.md, "Performance shape"). A call is a future polled here; it is woken by
//! its socket's readiness or, from another thread (a timer or a connect on the I/O
//! runtime), through one `uv_async_t`.
//!
//! libuv's functions are looked up in the running process (Node exports them) rather
//! than linked, so a host without them simply keeps the I/O runtime.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;

use futures_util::FutureExt;
use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env};

use super::promise::{new_promise, settlement, Deferred, JsPromise, Settle};
use super::runtime::runtime;
use super::Result;
use crate::error::Error;
use crate::store::reactor::{self, DeferredWork, Reactor, SocketEvents, Watch};

type Handle = c_void;
type PollCallback = unsafe extern "C" fn(*mut Handle, c_int, c_int);
type HandleCallback = unsafe extern "C" fn(*mut Handle);

/// `uv_handle_type` and `uv_poll_event` values, stable across libuv 1.x.
const UV_ASYNC: c_int = 1;
const UV_CHECK: c_int = 2;
const UV_POLL: c_int = 8;
const UV_PREPARE: c_int = 9;
const UV_READABLE: c_int = 1;
const UV_WRITABLE: c_int = 2;

/// The libuv functions used, from the running Node.
struct Uv {
    handle_size: unsafe extern "C" fn(c_int) -> usize,
    poll_init: unsafe extern "C" fn(*mut c_void, *mut Handle, c_int) -> c_int,
    poll_start: unsafe extern "C" fn(*mut Handle, c_int, PollCallback) -> c_int,
    poll_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
    close: unsafe extern "C" fn(*mut Handle, Option<HandleCallback>),
    async_init: unsafe extern "C" fn(*mut c_void, *mut Handle, HandleCallback) -> c_int,
    async_send: unsafe extern "C" fn(*mut Handle) -> c_int,
    ref_handle: unsafe extern "C" fn(*mut Handle),
    unref_handle: unsafe extern "C" fn(*mut Handle),
    prepare_init: unsafe extern "C" fn(*mut c_void, *mut Handle) -> c_int,
    prepare_start: unsafe extern "C" fn(*mut Handle, HandleCallback) -> c_int,
    check_init: unsafe extern "C" fn(*mut c_void, *mut Handle) -> c_int,
    check_start: unsafe extern "C" fn(*mut Handle, HandleCallback) -> c_int,
}

impl Uv {
    fn find() -> Option<Uv> {
        unsafe fn symbol<F: Copy>(name: &CStr) -> Option<F> {
            let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            // SAFETY: `F` is the C signature libuv declares for `name`.
            (!found.is_null()).then(|| unsafe { std::mem::transmute_copy(&found) })
        }
        unsafe {
            Some(Uv {
                handle_size: symbol(c"uv_handle_size")?,
                poll_init: symbol(c"uv_poll_init")?,
                poll_start: symbol(c"uv_poll_start")?,
                poll_stop: symbol(c"uv_poll_stop")?,
                close: symbol(c"uv_close")?,
                async_init: symbol(c"uv_async_init")?,
                async_send: symbol(c"uv_async_send")?,
                ref_handle: symbol(c"uv_ref")?,
                unref_handle: symbol(c"uv_unref")?,
                prepare_init: symbol(c"uv_prepare_init")?,
                prepare_start: symbol(c"uv_prepare_start")?,
                check_init: symbol(c"uv_check_init")?,
                check_start: symbol(c"uv_check_start")?,
            })
        }
    }
}

/// A zeroed libuv handle of `kind`; its first field is libuv's `void *data`.
fn handle_layout(uv: &Uv, kind: c_int) -> Layout {
    let size = unsafe { (uv.handle_size)(kind) };
    Layout::from_size_align(size.max(64), 16).expect("a handle's layout")
}

fn alloc_handle(layout: Layout) -> *mut Handle {
    let handle = unsafe { alloc_zeroed(layout) }.cast::<Handle>();
    if handle.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    handle
}

fn new_handle(uv: &Uv, kind: c_int) -> *mut Handle {
    alloc_handle(handle_layout(uv, kind))
}

unsafe fn set_data(handle: *mut Handle, data: *mut c_void) {
    unsafe { *handle.cast::<*mut c_void>() = data };
}

unsafe fn data(handle: *mut Handle) -> *mut c_void {
    unsafe { *handle.cast::<*mut c_void>() }
}

/// The JavaScript thread's loop, set up by the first store that uses it.
pub struct Driver {
    uv: Uv,
    env: sys::napi_env,
    event_loop: *mut c_void,
    thread: ThreadId,
    /// Wakes the loop for calls woken on another thread; referenced (keeping Node
    /// running) while any call is unsettled.
    wake: *mut Handle,
    context: sys::napi_async_context,
    poll_layout: Layout,
}

// Raw handles are used on the JavaScript thread only, but `uv_async_send`, which libuv
// allows from any thread.
unsafe impl Send for Driver {}
unsafe impl Sync for Driver {}

static DRIVER: OnceLock<Option<Driver>> = OnceLock::new();
/// Set when Node tears the environment down: from then on no callback touches it.
static TORN_DOWN: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn on_env_cleanup(_arg: *mut c_void) {
    TORN_DOWN.store(true, Ordering::SeqCst);
}

/// Sets the loop up on the first call and installs it for the stores; false when this
/// Node offers no libuv to use (the stores then keep the I/O runtime).
pub fn install(env: &Env) -> bool {
    // Node's main thread only: a worker thread's loop ends with the worker, and stores
    // live as long as the process.
    if unsafe { libc::gettid() != libc::getpid() } {
        return false;
    }
    let driver = DRIVER.get_or_init(|| Driver::new(env));
    if let Some(driver) = driver {
        reactor::install(driver);
    }
    driver.is_some()
}

/// The loop's driver while its environment lives.
fn driver() -> Option<&'static Driver> {
    if TORN_DOWN.load(Ordering::SeqCst) {
        return None;
    }
    DRIVER.get().and_then(Option::as_ref)
}

impl Driver {
    fn new(env: &Env) -> Option<Driver> {
        let uv = Uv::find()?;
        let env = env.raw();
        let mut event_loop = ptr::null_mut();
        unsafe {
            if sys::napi_get_uv_event_loop(env, &mut event_loop) != sys::Status::napi_ok {
                return None;
            }
            let wake = new_handle(&uv, UV_ASYNC);
            if (uv.async_init)(event_loop.cast(), wake, on_wake) != 0 {
                return None;
            }
            (uv.unref_handle)(wake);
            // Deferred work runs after each round of I/O callbacks (check) and before the
            // loop waits (prepare), so none waits for the next round.
            let check = new_handle(&uv, UV_CHECK);
            let prepare = new_handle(&uv, UV_PREPARE);
            if (uv.check_init)(event_loop.cast(), check) != 0
                || (uv.check_start)(check, on_turn) != 0
                || (uv.prepare_init)(event_loop.cast(), prepare) != 0
                || (uv.prepare_start)(prepare, on_turn) != 0
            {
                return None;
            }
            (uv.unref_handle)(check);
            (uv.unref_handle)(prepare);
            let mut name = ptr::null_mut();
            let label = "think-session-native";
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            );
            let mut resource = ptr::null_mut();
            sys::napi_create_object(env, &mut resource);
            let mut context = ptr::null_mut();
            if sys::napi_async_init(env, resource, name, &mut context) != sys::Status::napi_ok {
                return None;
            }
            sys::napi_add_env_cleanup_hook(env, Some(on_env_cleanup), ptr::null_mut());
            let poll_layout = handle_layout(&uv, UV_POLL);
            Some(Driver {
                uv,
                env,
                event_loop: event_loop.cast(),
                thread: std::thread::current().id(),
                wake,
                context,
                poll_layout,
            })
        }
    }

    /// Polls the calls woken since the last run until none is, settling those that
    /// finish.
    fn run_ready(&self, first: Vec<Arc<Call>>) {
        let _runtime = runtime().map(|r| r.enter());
        let mut woken = first;
        while !woken.is_empty() {
            for call in std::mem::take(&mut woken) {
                call.queued.store(false, Ordering::Release);
                self.poll(&call);
            }
            woken = std::mem::take(&mut *lock(&READY));
        }
    }

    fn poll(&self, call: &Arc<Call>) {
        let mut future = lock(&call.future);
        let Some(running) = future.as_mut() else {
            return; // settled already; a late wake
        };
        let waker = Waker::from(call.clone());
        let settled = match running.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(settled) => settled,
            Poll::Pending => return,
        };
        *future = None;
        drop(future);
        if let (Some(deferred), Some(settle)) = (call.deferred, settled) {
            unsafe { deferred.settle(self.env, settle) };
        }
        if UNSETTLED.fetch_sub(1, Ordering::AcqRel) == 1 {
            unsafe { (self.uv.unref_handle)(self.wake) };
        }
    }

    fn start(&self, call: Arc<Call>) {
        if UNSETTLED.fetch_add(1, Ordering::AcqRel) == 0 {
            unsafe { (self.uv.ref_handle)(self.wake) };
        }
        call.queued.store(true, Ordering::Release);
        lock(&READY).push(call);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

type Running = Pin<Box<dyn Future<Output = Option<Settle>> + Send>>;

/// One call (or the store's own work, with no promise) polled on the JavaScript thread.
struct Call {
    future: Mutex<Option<Running>>,
    deferred: Option<Deferred>,
    /// In [`READY`] already.
    queued: AtomicBool,
}

/// Calls woken and waiting to be polled.
static READY: Mutex<Vec<Arc<Call>>> = Mutex::new(Vec::new());
/// Calls not settled yet.
static UNSETTLED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while the JavaScript thread is about to run the woken calls anyway.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

impl Wake for Call {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&READY).push(self.clone());
        if !RUNNING.with(Cell::get) {
            if let Some(driver) = driver() {
                unsafe { (driver.uv.async_send)(driver.wake) };
            }
        }
    }
}

/// Runs `f` with woken calls collected rather than signalled, then runs them. `in_call`:
/// inside a call from JavaScript, whose scope settles promises; from a libuv callback, a
/// callback scope of our own runs the promise reactions when it closes, by which time
/// a call they make is run at once again.
fn running<R>(driver: &Driver, in_call: bool, f: impl FnOnce() -> R) -> R {
    if RUNNING.with(|r| r.replace(true)) {
        return f(); // the outer run polls what this wakes
    }
    let result = f();
    // Taken before deciding on scopes: a call woken from another thread meanwhile is
    // polled by the next run, never here without a scope.
    let woken = std::mem::take(&mut *lock(&READY));
    if in_call || woken.is_empty() {
        driver.run_ready(woken);
        RUNNING.with(|r| r.set(false));
        return result;
    }
    let env = driver.env;
    let (mut handle_scope, mut callback_scope) = (ptr::null_mut(), ptr::null_mut());
    unsafe {
        sys::napi_open_handle_scope(env, &mut handle_scope);
        let mut resource = ptr::null_mut();
        sys::napi_create_object(env, &mut resource);
        sys::napi_open_callback_scope(env, resource, driver.context, &mut callback_scope);
    }
    driver.run_ready(woken);
    RUNNING.with(|r| r.set(false));
    unsafe {
        sys::napi_close_callback_scope(env, callback_scope);
        sys::napi_close_handle_scope(env, handle_scope);
    }
    result
}

/// Work deferred to the end of the loop's round.
static DEFERRED: Mutex<Vec<Arc<dyn DeferredWork>>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_turn(_handle: *mut Handle) {
    let due = std::mem::take(&mut *lock(&DEFERRED));
    if due.is_empty() {
        return;
    }
    if let Some(driver) = driver() {
        running(driver, false, || due.iter().for_each(|work| work.run()));
    }
}

unsafe extern "C" fn on_wake(_handle: *mut Handle) {
    if let Some(driver) = driver() {
        running(driver, false, || ());
    }
}

/// Runs `work` on the JavaScript thread and returns a promise of its result (settled
/// already when the work needed no I/O); a failure rejects with an Error carrying the
/// package's code, as synchronous calls throw.
pub fn spawn_local<T, F>(env: &Env, work: F) -> Result<JsPromise>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = crate::Result<T>> + Send + 'static,
{
    let driver = driver()
        .filter(|d| d.env == env.raw())
        .ok_or_else(|| Error::store("runtime", "the event loop is not set up on this thread"))?;
    let (deferred, promise) = new_promise(env)?;
    let call = Arc::new(Call {
        future: Mutex::new(Some(Box::pin(settlement(work).map(Some)))),
        deferred: Some(deferred),
        queued: AtomicBool::new(false),
    });
    running(driver, true, || driver.start(call));
    Ok(promise)
}

/// Runs a store's own work (a connect) on the JavaScript thread, answering no one.
fn spawn_detached(driver: &Driver, work: impl Future<Output = ()> + Send + 'static) {
    let call = Arc::new(Call {
        future: Mutex::new(Some(Box::pin(work.map(|()| None)))),
        deferred: None,
        queued: AtomicBool::new(false),
    });
    running(driver, true, || driver.start(call));
}

impl Reactor for Driver {
    fn watch(&self, fd: RawFd, events: Arc<dyn SocketEvents>) -> crate::Result<Box<dyn Watch>> {
        let layout = self.poll_layout;
        let handle = alloc_handle(layout);
        let started = unsafe {
            let status = (self.uv.poll_init)(self.event_loop, handle, fd);
            if status == 0 {
                set_data(handle, Box::into_raw(Box::new(events)).cast());
                (self.uv.unref_handle)(handle);
                (self.uv.poll_start)(handle, UV_READABLE, on_poll)
            } else {
                dealloc(handle.cast(), layout);
                return Err(Error::store(
                    "runtime",
                    format!("libuv cannot watch the socket (error {status})"),
                ));
            }
        };
        let watched = Watched {
            handle,
            writable: false,
        };
        if started != 0 {
            return Err(Error::store(
                "runtime",
                format!("libuv cannot watch the socket (error {started})"),
            ));
        }
        Ok(Box::new(watched))
    }

    fn is_current(&self) -> bool {
        std::thread::current().id() == self.thread
    }

    fn defer(&self, work: Arc<dyn DeferredWork>) {
        lock(&DEFERRED).push(work);
    }

    fn spawn(&self, work: Pin<Box<dyn Future<Output = ()> + Send>>) {
        spawn_detached(self, work);
    }
}

/// A socket under a `uv_poll_t`.
struct Watched {
    handle: *mut Handle,
    writable: bool,
}

unsafe impl Send for Watched {}

impl Watch for Watched {
    fn want_writable(&mut self, on: bool) {
        if self.writable == on {
            return;
        }
        self.writable = on;
        let events = if on {
            UV_READABLE | UV_WRITABLE
        } else {
            UV_READABLE
        };
        if let Some(driver) = driver() {
            unsafe { (driver.uv.poll_start)(self.handle, events, on_poll) };
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(driver) = driver() {
            unsafe {
                (driver.uv.poll_stop)(self.handle);
                (driver.uv.close)(self.handle, Some(on_poll_closed));
            }
        }
    }
}

unsafe extern "C" fn on_poll_closed(handle: *mut Handle) {
    unsafe {
        drop(Box::from_raw(data(handle).cast::<Arc<dyn SocketEvents>>()));
        if let Some(driver) = driver() {
            dealloc(handle.cast(), driver.poll_layout);
        }
    }
}

unsafe extern "C" fn on_poll(handle: *mut Handle, status: c_int, events: c_int) {
    let Some(driver) = driver() else { return };
    // The box lives until the handle's close callback, after any poll callback.
    let sink = unsafe { &*data(handle).cast::<Arc<dyn SocketEvents>>() }.clone();
    running(driver, false, || {
        sink.ready(
            events & UV_READABLE != 0,
            events & UV_WRITABLE != 0,
            status < 0,
        )
    });
}
