//! A small pool of database connections. sqlx's own pool pings every connection when it is
//! returned, one more round trip per query; this one trusts a connection that finished its
//! query and instead runs the query once more, on a new connection, when a reused one turns
//! out dead (a restarted server, a `KILL`, an idle timeout).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// An idle connection older than this is closed rather than reused: firewalls and servers
/// drop idle connections silently, and a dead one would cost a query its whole timeout.
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// A connection is closed once this old, however busy: server-side state that grows per
/// connection is let go, and a moved server (DNS, failover) is reached anew.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A connection and when it was made.
struct Made<C> {
    conn: C,
    at: Instant,
}

pub struct Pool<C: Connection> {
    options: C::Options,
    /// Idle connections, with when each was last used.
    idle: Mutex<Vec<(Made<C>, Instant)>>,
    /// One permit per connection that may be open at once.
    slots: Semaphore,
    connect_timeout: Duration,
}

impl<C: Connection> Pool<C> {
    pub fn new(options: C::Options, size: usize, connect_timeout: Duration) -> Self {
        Pool {
            options,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size),
            connect_timeout,
        }
    }

    /// A connection for one call, waiting while all are busy. Reused when one is idle.
    pub async fn acquire(&self) -> sqlx::Result<Lease<'_, C>> {
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let (conn, reused) = match self.take_idle() {
            Some(made) => (made, true),
            None => (self.connect().await?, false),
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            reused,
            done: false,
            _slot: slot,
        })
    }

    /// The most recently used idle connection; those idle too long or past their lifetime
    /// are closed.
    fn take_idle(&self) -> Option<Made<C>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(made, since)| {
            since.elapsed() < IDLE_LIMIT && made.at.elapsed() < MAX_LIFETIME
        });
        idle.pop().map(|(made, _)| made)
    }

    /// Closes the pool: calls waiting for a connection and every later call fail, idle
    /// connections are closed, and those lent out close when their call ends.
    pub async fn close(&self) {
        self.slots.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for (made, _) in idle {
            let _ = made.conn.close().await;
        }
    }

    fn forget_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn connect(&self) -> sqlx::Result<Made<C>> {
        match tokio::time::timeout(self.connect_timeout, self.options.connect()).await {
            Ok(result) => result.map(|conn| Made {
                conn,
                at: Instant::now(),
            }),
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "could not connect within the connect timeout of {} ms",
                    self.connect_timeout.as_millis()
                ),
            ))),
        }
    }
}

/// A connection lent to one call. It goes back to the pool only after a query that
/// completed: a call cut off by a timeout leaves it in an unknown state, and it is closed.
pub struct Lease<'a, C: Connection> {
    pool: &'a Pool<C>,
    conn: Option<Made<C>>,
    reused: bool,
    done: bool,
    _slot: SemaphorePermit<'a>,
}

impl<C: Connection> Lease<'_, C> {
    pub fn conn(&mut self) -> &mut C {
        &mut self
            .conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
            .conn
    }

    /// Looks at a query's result: true when the query should run again, on a new
    /// connection, because a reused one was found dead. Every idle connection is dropped
    /// with it: they most likely died together (a restarted server).
    pub async fn retry_after<T>(&mut self, result: &sqlx::Result<T>) -> sqlx::Result<bool> {
        if self.reused && matches!(result, Err(err) if is_connection_lost(err)) {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            self.conn = None;
            self.conn = Some(self.pool.connect().await?);
            self.reused = false;
            return Ok(true);
        }
        self.done = reusable(result);
        Ok(false)
    }
}

impl<C: Connection> Drop for Lease<'_, C> {
    fn drop(&mut self) {
        match self.conn.take() {
            // A closed pool keeps nothing.
            Some(_) if self.pool.slots.is_closed() => {}
            Some(made) if self.done => self
                .pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((made, Instant::now())),
            // A reused connection cut off by the timeout: the others may hang the same way
            // (a dropped network path), so none is trusted again.
            Some(_) if self.reused => self.pool.forget_idle(),
            _ => {}
        }
    }
}

/// Whether a connection that gave this result can serve the next query: yes after a
/// success or an error the server reported about the query itself.
fn reusable<T>(result: &sqlx::Result<T>) -> bool {
    match result {
        Ok(_) => true,
        Err(err) => matches!(err, sqlx::Error::Database(_)) && !is_connection_lost(err),
    }
}

/// The connection is gone: an I/O or protocol failure, or the server saying it ended the
/// session: SQLSTATE class 08, MariaDB's 70100 after `KILL`, PostgreSQL's 57P class but a
/// cancelled statement (57014), MySQL's 4031 (idle timeout), 2006, 2013 and 1927; and a
/// read-only server (a failover left this connection on the old primary: 25006, 1290, 1792).
pub fn is_connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let mysql_number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number());
            matches!(mysql_number, Some(4031 | 2006 | 2013 | 1927 | 1290 | 1792))
                || db.code().is_some_and(|code| {
                    code.starts_with("08")
                        || code == "70100"
                        || code == "25006"
                        || (code.starts_with("57P") && code != "57014")
                })
        }
        _ => false,
    }
}
