//! A read cache for the string formats on Node's loop (`cache: { maxEntries }`), kept
//! coherent by Redis: client-side caching (`CLIENT TRACKING ON`) on the committer's
//! connection, which speaks RESP3 so that Redis pushes its invalidations on it, in line with
//! the answers: a message about a change made before a command ran arrives before that
//! command's answer. The cache's reads and every write go on that connection. Its own
//! writes are reported too (no `NOLOOP`: under it Redis also stays silent about keys it
//! evicts or expires while running this connection's commands); each write's push arrives
//! before its `EXEC` answer, after which the written text is kept, and an `EXISTS` after
//! each `SET` keeps the key tracked (Redis forgets a key's readers when it changes).
//!
//! Redis queues an invalidation before it answers the write that caused it, so a request
//! that follows that answer (a redirect after a login on another worker) finds the message
//! on the connection already: each cached read first reads what waits there. A read whose
//! key is invalidated while its answer is on the way is not kept. When the connection
//! drops, the cache empties and is not used until tracking is on again. Redis 7 or later:
//! 6.x may push an invalidation inside another reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use redis::{Pipeline, PushKind, Value};

use super::commit::read_answer;
use super::on_loop::{failure, Listener, LoopConnection};
use crate::store::reactor::Reactor;

/// A key's text as Redis held it, and when its TTL runs out (`i64::MIN`: not read).
#[derive(Clone)]
pub struct Cached {
    pub text: String,
    pub ttl_ends_ms: i64,
}

pub struct ReadCache {
    /// The committer's: the reads and writes Redis tracks, and its invalidations.
    data: LoopConnection,
    reactor: &'static dyn Reactor,
    inner: Mutex<Inner>,
}

struct Inner {
    tracking: Tracking,
    entries: lru::LruCache<String, Cached>,
    /// Reads and writes on their way, by key: an invalidation meanwhile spoils them.
    pending: HashMap<String, Pending>,
}

#[derive(Clone, PartialEq)]
enum Tracking {
    Off,
    Starting,
    /// On for the data connection as it is (a drop turns it off).
    On,
    /// The server cannot track (too old, or the command is not allowed): why.
    Refused(String),
}

#[derive(Default)]
struct Pending {
    count: u32,
    spoiled: bool,
}

/// A read of a key whose answer may be kept; see [`ReadCache::expect`]. Dropped without
/// an answer (a call given up on), it keeps nothing.
pub struct Ticket {
    key: String,
    cache: Weak<ReadCache>,
    answer: Option<Cached>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            cache.settle(&self.key, self.answer.take());
        }
    }
}

impl ReadCache {
    pub fn new(
        data: LoopConnection,
        reactor: &'static dyn Reactor,
        max_entries: usize,
    ) -> Arc<ReadCache> {
        let capacity = std::num::NonZeroUsize::new(max_entries.max(1)).expect("at least 1");
        let cache = Arc::new(ReadCache {
            data,
            reactor,
            inner: Mutex::new(Inner {
                tracking: Tracking::Off,
                entries: lru::LruCache::new(capacity),
                pending: HashMap::new(),
            }),
        });
        let listener: Weak<dyn Listener> = Arc::downgrade(&(cache.clone() as Arc<dyn Listener>));
        cache.data.listen(listener);
        cache
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key as last read or written, when tracking vouches for it. Reads what waits on
    /// the connection first.
    pub fn get(&self, key: &str) -> Option<Cached> {
        if !matches!(self.inner().tracking, Tracking::On) {
            return None;
        }
        self.data.receive_now();
        let mut inner = self.inner();
        match inner.tracking {
            Tracking::On => inner.entries.get(key).cloned(),
            _ => None,
        }
    }

    /// Before a read of `key` is sent on the data connection: a ticket when its answer may
    /// be kept (tracking is on), after starting tracking when it is off. An error when the
    /// server refused to track.
    fn expect(self: &Arc<Self>, key: &str) -> redis::RedisResult<Option<Ticket>> {
        {
            let mut inner = self.inner();
            match &inner.tracking {
                Tracking::On => {
                    inner.pending.entry(key.to_owned()).or_default().count += 1;
                    return Ok(Some(Ticket {
                        key: key.to_owned(),
                        cache: Arc::downgrade(self),
                        answer: None,
                    }));
                }
                Tracking::Starting => return Ok(None),
                Tracking::Refused(why) => return Err(failure(why)),
                Tracking::Off => inner.tracking = Tracking::Starting,
            }
        }
        let cache = self.clone();
        self.reactor
            .spawn(Box::pin(async move { cache.start().await }));
        Ok(None)
    }

    /// Reads `key` (and its PTTL, `with_ttl`) on the data connection, keeping what it
    /// holds when tracking vouches for it.
    pub async fn read(
        self: &Arc<Self>,
        key: &str,
        with_ttl: bool,
        now_ms: i64,
    ) -> redis::RedisResult<(Option<String>, i64)> {
        let ticket = self.expect(key)?;
        let mut read = Pipeline::new();
        read.get(key);
        if with_ttl {
            read.pttl(key);
        }
        let answers = self
            .data
            .send(read.get_packed_pipeline(), 0, read.len())
            .await?;
        let answer = read_answer(&answers);
        let (text, pttl) = answer?;
        if let Some(mut ticket) = ticket {
            ticket.answer = text.clone().map(|text| Cached {
                text,
                ttl_ends_ms: if pttl > 0 { now_ms + pttl } else { i64::MIN },
            });
        }
        Ok((text, pttl))
    }

    /// The answer of a ticket's read: kept when nothing changed the key since (`None`: the
    /// key does not exist, or the read failed).
    fn settle(&self, key: &str, value: Option<Cached>) {
        let mut inner = self.inner();
        let Some(pending) = inner.pending.get_mut(key) else {
            return;
        };
        pending.count -= 1;
        let spoiled = pending.spoiled;
        if pending.count == 0 {
            inner.pending.remove(key);
        }
        let on = matches!(inner.tracking, Tracking::On);
        match value {
            Some(value) if on && !spoiled => {
                inner.entries.put(key.to_owned(), value);
            }
            _ => {
                inner.entries.pop(key);
            }
        }
    }

    /// What a write made of `key`, its answer in: kept while tracking is on (any change by
    /// another client after it is pushed after that answer; its own push came before).
    pub fn written(&self, key: &str, value: Option<Cached>) {
        let mut inner = self.inner();
        match value {
            Some(value) if matches!(inner.tracking, Tracking::On) => {
                inner.entries.put(key.to_owned(), value);
            }
            _ => {
                inner.entries.pop(key);
            }
        }
    }

    /// Drops the key (this process deleted or moved it): reads on their way are not kept.
    pub fn forget(&self, key: &str) {
        let mut inner = self.inner();
        inner.entries.pop(key);
        if let Some(pending) = inner.pending.get_mut(key) {
            pending.spoiled = true;
        }
    }

    /// Turns tracking on for the data connection.
    async fn start(self: Arc<Self>) {
        let tracking = match self.turn_on().await {
            Ok(tracking) => tracking,
            // A server that cannot track (too old, or not allowed to); anything else
            // (a busy script, a dropped connection) is tried again on a later read.
            Err(err)
                if err.code() == Some("NOPERM")
                    || ["unknown command", "unknown subcommand", "Redis 7"]
                        .iter()
                        .any(|cause| err.to_string().contains(cause)) =>
            {
                Tracking::Refused(format!(
                    "Redis refused client-side caching ({err}): the cache needs Redis 7 or later with CLIENT TRACKING allowed; remove `cache` or use such a server"
                ))
            }
            Err(_) => Tracking::Off,
        };
        let mut inner = self.inner();
        if inner.tracking == Tracking::Starting {
            inner.tracking = tracking;
        }
    }

    async fn turn_on(&self) -> redis::RedisResult<Tracking> {
        let mut track = Pipeline::new();
        track.cmd("INFO").arg("server");
        track.cmd("CLIENT").arg("TRACKING").arg("ON");
        let answers = self.data.send(track.get_packed_pipeline(), 0, 2).await?;
        let data = self.data.generation();
        let mut answers = answers.into_iter().map(Value::extract_error);
        let info: String =
            redis::from_redis_value(answers.next().transpose()?.unwrap_or(Value::Nil))?;
        let major = info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .and_then(|version| version.split('.').next()?.trim().parse::<u32>().ok());
        if major.is_some_and(|major| major < 7) {
            return Err(failure(&format!(
                "this server is Redis {}, not Redis 7 or later",
                major.unwrap_or(0)
            )));
        }
        answers.next().transpose()?;
        if self.data.is_on(data) {
            Ok(Tracking::On)
        } else {
            Ok(Tracking::Off)
        }
    }

    /// Empties the cache and spoils what is on its way.
    fn clear(inner: &mut Inner) {
        inner.entries.clear();
        for pending in inner.pending.values_mut() {
            pending.spoiled = true;
        }
    }
}

impl Listener for ReadCache {
    fn pushed(&self, value: Value) {
        // invalidate [keys], or invalidate nil: everything (FLUSHALL, or Redis dropped its
        // tracking table).
        let Value::Push {
            kind: PushKind::Invalidate,
            data,
        } = value
        else {
            return;
        };
        let mut inner = self.inner();
        match data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    if let Value::BulkString(key) = key {
                        let key = String::from_utf8_lossy(key);
                        inner.entries.pop(key.as_ref());
                        if let Some(pending) = inner.pending.get_mut(key.as_ref()) {
                            pending.spoiled = true;
                        }
                    }
                }
            }
            Some(Value::Nil) => ReadCache::clear(&mut inner),
            _ => {}
        }
    }

    fn dropped(&self) {
        let mut inner = self.inner();
        if inner.tracking != Tracking::Starting {
            inner.tracking = Tracking::Off;
        }
        ReadCache::clear(&mut inner);
    }
}
