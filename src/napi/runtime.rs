//! Where network stores do their I/O when they cannot do it on the JavaScript thread's own
//! loop (`event_loop`: Redis on one server over plain TCP does): one current_thread tokio
//! runtime on a thread of its own, for the db stores and Redis over TLS, Cluster and
//! Sentinel. On napi's multi-thread runtime every socket wake-up crossed threads and cost
//! more than the request (ARCHITECTURE.md, "Performance shape"); here the I/O and its
//! wake-ups stay on one thread, and each finished call crosses back to JavaScript once
//! (see `promise`).
//!
//! Calls reach the I/O thread through a queue. Waking a sleeping thread costs tens of
//! microseconds on a busy machine, about a Redis round trip, so while only a few calls
//! are in flight the thread keeps polling for a short while after its last work instead
//! of sleeping: a request's next call (the write after the read) then finds it awake.
//! With many calls in flight it sleeps between events as usual and the CPU stays with
//! JavaScript and the server. A process allowed only one CPU never polls: there the
//! polling would take the core from the JavaScript thread it waits for.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::error::Error;

/// How long the I/O thread stays awake after its last work while few calls are in flight.
const STAY_AWAKE: Duration = Duration::from_micros(200);
/// Above this many calls in flight, events come often enough to sleep between them.
const STAY_AWAKE_MAX_IN_FLIGHT: usize = 2;

pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

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
pub fn submit(job: Job) {
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
