//! Promises settled from other threads. Calls finished on the I/O runtime wait in one
//! queue, and one threadsafe-function call wakes the JavaScript thread to settle all that
//! are queued by then; a call on the libuv pool is a napi task.
//! Either way a failure rejects with an Error carrying the package's code and its cause,
//! as synchronous calls throw.

use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use futures_util::FutureExt;
use napi::bindgen_prelude::{AsyncTask, ToNapiValue, TypeName};
use napi::{sys, Env, JsError, Status, Task};

use super::runtime::{runtime, submit};
use super::Result;
use crate::error::{Error, ErrorCode};

/// A store call for the libuv thread pool, off the JS thread.
pub struct Blocking<T> {
    work: Option<Box<dyn FnOnce() -> crate::Result<T> + Send>>,
    failure: Option<ErrorCode>,
}

pub fn blocking<T: ToNapiValue + TypeName + Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> AsyncTask<Blocking<T>> {
    AsyncTask::new(Blocking {
        work: Some(Box::new(work)),
        failure: None,
    })
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Blocking<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let work = self
            .work
            .take()
            .ok_or_else(|| napi::Error::new(Status::GenericFailure, "a store task ran twice"))?;
        work().map_err(|err| {
            self.failure = Some(err.code());
            napi::Error::new(Status::GenericFailure, err.message())
        })
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<T> {
        match self.failure {
            Some(code) => {
                let error =
                    JsError::from(napi::Error::new(code, err.reason.clone())).into_unknown(env);
                Err(napi::Error::from(error))
            }
            None => Err(err),
        }
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
    let (deferred, promise) = new_promise(env)?;
    bridge.started(env);
    let tsfn = bridge.tsfn;
    submit(Box::pin(async move {
        let settle = settlement(work).await;
        tsfn.send(Completion { deferred, settle });
    }));
    Ok(promise)
}

/// Turns a finished call into its promise's value or rejection, on the JavaScript thread.
pub(super) type Settle = Box<
    dyn FnOnce(sys::napi_env) -> std::result::Result<sys::napi_value, (ErrorCode, String)> + Send,
>;

/// Runs `work` and says how to settle its promise; a panic in a call rejects that call
/// and nothing else.
pub(super) async fn settlement<T, F>(work: F) -> Settle
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = crate::Result<T>> + Send,
{
    let result = AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(Error::store("runtime", "the call panicked")));
    Box::new(move |env| match result {
        Ok(value) => unsafe { T::to_napi_value(env, value) }
            .map_err(|e| (ErrorCode::Store, e.reason.clone())),
        Err(err) => Err((err.code(), err.message())),
    })
}

/// A promise for JavaScript and the handle that settles it.
pub(super) fn new_promise(env: &Env) -> Result<(Deferred, JsPromise)> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
    Ok((Deferred(deferred), JsPromise(promise)))
}

struct Completion {
    deferred: Deferred,
    settle: Settle,
}

/// Raw napi handles are plain pointers; each is only ever used on the JavaScript thread.
#[derive(Clone, Copy)]
pub(super) struct Deferred(sys::napi_deferred);
unsafe impl Send for Deferred {}
unsafe impl Sync for Deferred {}

impl Deferred {
    /// Resolves or rejects the promise; on the JavaScript thread, inside a handle scope.
    pub(super) unsafe fn settle(self, env: sys::napi_env, settle: Settle) {
        unsafe {
            match settle(env) {
                Ok(value) => sys::napi_resolve_deferred(env, self.0, value),
                Err((code, message)) => {
                    let error = js_error(env, code, &message);
                    sys::napi_reject_deferred(env, self.0, error)
                }
            };
        }
    }
}

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

/// Calls finished and not yet settled. Only the first one into an empty queue calls the
/// threadsafe function: one wake-up of the JavaScript thread settles all queued by then.
static COMPLETED: Mutex<Vec<Completion>> = Mutex::new(Vec::new());

impl Tsfn {
    /// Queues `completion` for [`settle`] on the JavaScript thread.
    fn send(self, completion: Completion) {
        let closed = TSFN_CLOSED.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return; // no one is left to settle the promise
        }
        let first = {
            let mut completed = COMPLETED.lock().unwrap_or_else(|p| p.into_inner());
            completed.push(completion);
            completed.len() == 1
        };
        if !first {
            return; // the wake-up on its way settles this one too
        }
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                self.0,
                ptr::null_mut(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // The environment is shutting down: no one is left to settle the promises.
            COMPLETED.lock().unwrap_or_else(|p| p.into_inner()).clear();
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

/// On the JavaScript thread: settles the promises of every call finished by now.
unsafe extern "C" fn settle(
    env: sys::napi_env,
    _callback: sys::napi_value,
    _context: *mut c_void,
    _data: *mut c_void,
) {
    let completed = std::mem::take(&mut *COMPLETED.lock().unwrap_or_else(|p| p.into_inner()));
    if env.is_null() {
        return; // the environment is being torn down
    }
    for Completion { deferred, settle } in completed {
        if let Some(Ok(bridge)) = BRIDGE.get() {
            bridge.finished(env);
        }
        unsafe { deferred.settle(env, settle) };
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
