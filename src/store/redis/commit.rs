//! Writes of the string formats without a script, on a connection of their own on the
//! event loop. Writes wait in a queue; each round takes all of them (a group) and
//! 1. WATCHes their keys and reads them (GET, and PTTL where the format lives by it),
//! 2. merges each write in Rust into what Redis answered, in the order the writes came
//!    (several writes to one session become one SET), and
//! 3. sends MULTI, one SET per changed key, EXEC (and WAIT with `replicas`).
//!
//! EXEC runs nothing if any watched key changed since the WATCH: the round starts over
//! from step 1 with fresh reads, so no write overwrites another's keys (G2). Redis does a
//! GET and a SET per write, as for think-session-redis, whatever the session's size: a
//! script's arguments and results are copied into Lua and back, which costs it more than
//! the write itself once a session holds kilobytes.
//!
//! A WATCH belongs to a connection, and EXEC clears every WATCH made on it: so the rounds
//! run one at a time on a connection nothing else uses, and step 3 goes out only on the
//! connection that step 1 went on.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use redis::{Pipeline, RedisError, Value};
use tokio::sync::oneshot;

use super::cache::{Cached, ReadCache};
use super::on_loop::{failure, LoopConnection};
use crate::error::Error;
use crate::store::reactor::Reactor;

/// What a write makes of a key's text and PTTL (ms; 0 when not read): the new text and
/// its lifetime in ms, or none to leave the key as it is.
pub type Change =
    Box<dyn Fn(Option<&str>, i64) -> crate::Result<Option<(String, i64)>> + Send + Sync>;

/// Why a write failed.
pub enum Failure {
    /// Redis refused or the connection failed.
    Redis(RedisError),
    /// The write itself refused what the session holds (over `maxBytes`, say).
    Change(Error),
    /// No answer within the command timeout.
    TimedOut,
    /// Written, but fewer replicas than `replicas` confirmed it in `wait_ms`.
    Unconfirmed { confirmed: usize, wait_ms: u64 },
}

pub struct Committer {
    connection: LoopConnection,
    reactor: &'static dyn Reactor,
    /// Each round (both steps) fails past it.
    timeout: Duration,
    /// Replicas that must confirm a round's SETs; 0: none asked.
    replicas: usize,
    /// Reads the keys' PTTL too (ThinkJS 2's records live by it alone).
    with_ttl: bool,
    /// Keeps what each round writes (`cache`).
    cache: Option<Arc<ReadCache>>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Write>,
    /// A round is under way; it takes what waits when it ends.
    running: bool,
    /// A round read and wrote nothing: its WATCH is still on the connection.
    watching: bool,
}

struct Write {
    key: String,
    change: Change,
    /// True when the key was written, false when the change left it as it was.
    done: oneshot::Sender<Result<bool, Failure>>,
}

/// What one attempt at a round came to.
enum Round {
    /// Each write's outcome, in the group's order.
    Settled(Vec<Result<bool, Failure>>),
    /// A watched key changed, or the connection was replaced: read again.
    Again,
}

impl Committer {
    pub fn new(
        connection: LoopConnection,
        reactor: &'static dyn Reactor,
        timeout: Duration,
        replicas: usize,
        with_ttl: bool,
        cache: Option<Arc<ReadCache>>,
    ) -> Arc<Committer> {
        Arc::new(Committer {
            connection,
            reactor,
            timeout,
            replicas,
            with_ttl,
            cache,
            queue: Mutex::new(Queue::default()),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a write of `key` and waits for its round.
    pub async fn write(self: &Arc<Self>, key: String, change: Change) -> Result<bool, Failure> {
        let (done, outcome) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.waiting.push(Write { key, change, done });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let committer = self.clone();
            self.reactor
                .spawn(Box::pin(async move { committer.run().await }));
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(Failure::Redis(failure("the write was dropped"))))
    }

    /// Runs rounds while writes wait.
    async fn run(self: Arc<Self>) {
        loop {
            let group = {
                let mut queue = self.queue();
                if queue.waiting.is_empty() {
                    queue.running = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            // A write's change that panics fails its round's writes (their answers are
            // dropped), not every later write.
            let _ = AssertUnwindSafe(self.commit(group)).catch_unwind().await;
        }
    }

    /// Settles every write of `group`, reading again as long as a watched key changes and
    /// someone still waits.
    async fn commit(&self, mut group: Vec<Write>) {
        loop {
            // A caller past its own timeout no longer waits: its write is not made.
            group.retain(|write| !write.done.is_closed());
            if group.is_empty() {
                return;
            }
            let outcomes = match tokio::time::timeout(self.timeout, self.attempt(&group)).await {
                Ok(Ok(Round::Again)) => continue,
                Ok(Ok(Round::Settled(outcomes))) => outcomes,
                Ok(Err(err)) => group
                    .iter()
                    .map(|_| Err(Failure::Redis(err.clone())))
                    .collect(),
                Err(_) => group.iter().map(|_| Err(Failure::TimedOut)).collect(),
            };
            for (write, outcome) in group.into_iter().zip(outcomes) {
                let _ = write.done.send(outcome);
            }
            return;
        }
    }

    async fn attempt(&self, group: &[Write]) -> redis::RedisResult<Round> {
        // The group's keys in first-come order, and which key each write is of.
        let mut keys: Vec<&str> = Vec::new();
        let slots: Vec<usize> = group
            .iter()
            .map(|write| match keys.iter().position(|k| *k == write.key) {
                Some(slot) => slot,
                None => {
                    keys.push(&write.key);
                    keys.len() - 1
                }
            })
            .collect();
        let with_ttl = self.with_ttl;

        // 1. WATCH and read. A key the read cache vouches for is not read again: Redis
        // pushes an invalidation on this connection ahead of the answers to later
        // commands, so if the cache still holds the key once the WATCH is answered, it
        // holds what Redis had when it watched.
        let cache = self.cache.as_ref();
        let cached: Vec<bool> = keys
            .iter()
            .map(|key| cache.is_some_and(|cache| cache.get(key).is_some()))
            .collect();
        let mut read = Pipeline::new();
        let stale_watch = std::mem::take(&mut self.queue().watching);
        if stale_watch {
            read.cmd("UNWATCH");
        }
        read.cmd("WATCH").arg(&keys);
        for (key, _) in keys.iter().zip(&cached).filter(|(_, cached)| !**cached) {
            read.get(key);
            if with_ttl {
                read.pttl(key);
            }
        }
        let skip = usize::from(stale_watch) + 1;
        let per_key = if with_ttl { 2 } else { 1 };
        let mut answers = self
            .connection
            .send(read.get_packed_pipeline(), 0, read.len())
            .await?;
        let generation = self.connection.generation();
        // A WATCH refused (by an ACL, say) would leave the writes unguarded.
        for answer in answers.drain(..skip) {
            answer.extract_error()?;
        }

        // 2. Merge each write into what its key holds.
        let now_ms = crate::session::now_ms();
        let mut answers = answers.chunks(per_key);
        let mut seen = Vec::with_capacity(keys.len());
        for (key, cached) in keys.iter().zip(&cached) {
            if !cached {
                seen.push(read_answer(answers.next().unwrap_or(&[])));
                continue;
            }
            match cache.and_then(|cache| cache.get(key)) {
                Some(value) => {
                    let pttl = if with_ttl && value.ttl_ends_ms > now_ms {
                        value.ttl_ends_ms - now_ms
                    } else {
                        0
                    };
                    seen.push(Ok((Some(value.text), pttl)));
                }
                // Invalidated meanwhile: read it this time (the WATCH stays until then).
                None => {
                    self.queue().watching = true;
                    return Ok(Round::Again);
                }
            }
        }
        let mut changed = vec![false; keys.len()];
        let outcomes: Vec<Result<bool, Failure>> = group
            .iter()
            .zip(&slots)
            .map(|(write, &slot)| {
                let (text, pttl) = match &seen[slot] {
                    Ok(current) => current,
                    Err(err) => return Err(Failure::Redis(err.clone())),
                };
                match (write.change)(text.as_deref(), *pttl) {
                    Ok(Some(written)) => {
                        seen[slot] = Ok((Some(written.0), written.1));
                        changed[slot] = true;
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(err) => Err(Failure::Change(err)),
                }
            })
            .collect();
        if !changed.contains(&true) {
            self.queue().watching = true;
            return Ok(Round::Settled(outcomes));
        }

        // 3. Write them in one transaction, on the connection that watched.
        let mut transaction = Pipeline::new();
        transaction.cmd("MULTI");
        let mut queued = 0;
        let mut kept = Vec::new();
        for (slot, key) in keys.iter().enumerate() {
            if let (true, Ok((Some(text), max_age_ms))) = (changed[slot], &seen[slot]) {
                transaction.set(key, text).arg("PX").arg(*max_age_ms);
                queued += 1;
                if cache.is_some() {
                    // Read again in the transaction: the key stays tracked.
                    transaction.exists(key);
                    queued += 1;
                    kept.push(slot);
                }
            }
        }
        transaction.cmd("EXEC");
        let wait_ms = (self.timeout.as_millis() * 3 / 4).max(1) as u64;
        if self.replicas > 0 {
            transaction.cmd("WAIT").arg(self.replicas).arg(wait_ms);
        }
        if !self.connection.is_on(generation) {
            return Ok(Round::Again);
        }
        let sent = self
            .connection
            .send(
                transaction.get_packed_pipeline(),
                1 + queued,
                1 + usize::from(self.replicas > 0),
            )
            .await;
        let written = match &sent {
            Ok(answers) => match &answers[0] {
                Value::Array(results) => {
                    results.iter().all(|r| !matches!(r, Value::ServerError(_)))
                }
                _ => false,
            },
            Err(_) => false,
        };
        if let Some(cache) = cache {
            for slot in kept {
                let value = match (written, &seen[slot]) {
                    (true, Ok((Some(text), max_age_ms))) => Some(Cached {
                        text: text.clone(),
                        ttl_ends_ms: now_ms + max_age_ms,
                    }),
                    _ => None,
                };
                cache.written(keys[slot], value);
            }
        }
        let answers = sent?;
        let results = match &answers[0] {
            Value::Nil => return Ok(Round::Again),
            Value::Array(results) => results,
            other => {
                // EXECABORT: a SET was refused when queued (nothing ran).
                other.clone().extract_error()?;
                return Err(failure(&format!("unexpected answer to EXEC: {other:?}")));
            }
        };
        // A SET refused when run (out of memory, say) fails that round's writes.
        for result in results {
            result.clone().extract_error()?;
        }
        let confirmed = match answers.get(1) {
            Some(Value::Int(n)) => Some(*n as usize),
            _ => None,
        };
        Ok(Round::Settled(
            outcomes
                .into_iter()
                .map(|outcome| match (outcome, confirmed) {
                    (Ok(true), Some(confirmed)) if confirmed < self.replicas => {
                        Err(Failure::Unconfirmed { confirmed, wait_ms })
                    }
                    (outcome, _) => outcome,
                })
                .collect(),
        ))
    }
}

/// A key's text and PTTL (0 when not asked) from the answers to its GET (and PTTL).
pub(super) fn read_answer(answer: &[Value]) -> Result<(Option<String>, i64), RedisError> {
    let text = match answer.first() {
        Some(Value::Nil) => None,
        Some(Value::BulkString(bytes)) => Some(
            String::from_utf8(bytes.clone())
                .map_err(|_| failure("a session key holds text that is not UTF-8"))?,
        ),
        other => {
            return Err(other
                .and_then(|v| v.clone().extract_error().err())
                .unwrap_or_else(|| failure(&format!("unexpected answer to GET: {other:?}"))))
        }
    };
    let pttl = match answer.get(1) {
        Some(Value::Int(pttl)) => *pttl,
        _ => 0,
    };
    Ok((text, pttl))
}
