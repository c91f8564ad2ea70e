//! The host's event loop, for a store that does its socket I/O on the caller's thread
//! instead of a thread of its own. Node's bindings install one (libuv polls the socket,
//! the JavaScript thread reads it and runs the store's futures); without one (plain Rust,
//! tests, worker threads) the stores use the I/O runtime as before.

use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use crate::error::Result;

/// Watches sockets on the loop of the thread that installed it.
pub trait Reactor: Send + Sync {
    /// Starts reporting `fd`'s readiness to `events` (readable always; writable once
    /// asked for), until the returned watch is dropped. The watch never keeps the host
    /// alive on its own: calls waiting for an answer do.
    fn watch(&self, fd: RawFd, events: Arc<dyn SocketEvents>) -> Result<Box<dyn Watch>>;

    /// Runs `work` on the loop's thread, polled there whoever wakes it (a store's own
    /// work that answers no call, such as a connect).
    fn spawn(&self, work: Pin<Box<dyn Future<Output = ()> + Send>>);

    /// Runs `work` once when the loop is done with its current round of callbacks, before
    /// it waits for I/O again: the writes of every call made in one round go out in one
    /// system call.
    fn defer(&self, work: Arc<dyn DeferredWork>);

    /// True on the loop's own thread, the only one its stores may be used from.
    fn is_current(&self) -> bool;
}

/// A watched socket; dropping it stops the watch (before the socket is closed).
pub trait Watch: Send {
    /// Also report writability, while a write waits for room in the socket's buffer.
    fn want_writable(&mut self, on: bool);
}

/// Work for [`Reactor::defer`].
pub trait DeferredWork: Send + Sync {
    fn run(&self);
}

/// Called on the loop's thread when a watched socket is ready or failed.
pub trait SocketEvents: Send + Sync {
    fn ready(&self, readable: bool, writable: bool, failed: bool);
}

static INSTALLED: OnceLock<&'static dyn Reactor> = OnceLock::new();

/// Installs the host's loop; the first one stays.
pub fn install(reactor: &'static dyn Reactor) {
    let _ = INSTALLED.set(reactor);
}

/// The installed loop when called on its thread.
pub fn current() -> Option<&'static dyn Reactor> {
    INSTALLED.get().copied().filter(|r| r.is_current())
}
