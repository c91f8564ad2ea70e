//! A connection to one Redis server driven by the host's event loop ([`reactor`]): a
//! command is written to the socket by the call that makes it, on the caller's thread,
//! and the loop reports the answer, which is parsed and handed to the waiting call in
//! order. Commands of concurrent calls are pipelined on the one connection, as the
//! multiplexed connection of the `redis` crate does on the I/O runtime; only the connect
//! runs there. After a failure or a call given up on (its timeout), the connection is
//! dropped and the next call connects again, so a reply is never matched to the wrong
//! call.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::oneshot;

use crate::store::reactor::{DeferredWork, Reactor, SocketEvents, Watch};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Clone)]
pub struct LoopConnection {
    link: Arc<Link>,
    db: i64,
}

struct Link {
    reactor: &'static dyn Reactor,
    runtime: tokio::runtime::Handle,
    /// Host and port.
    address: (String, u16),
    /// AUTH and SELECT, sent first on every connection.
    hello: Vec<u8>,
    hello_replies: usize,
    connect_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    socket: Option<(TcpStream, Box<dyn Watch>)>,
    connecting: bool,
    /// A flush is deferred to the end of the loop's round already.
    flush_due: bool,
    /// Connections made so far: which one a command went on.
    connects: u64,
    /// Written to the socket once it takes them.
    unsent: Vec<u8>,
    /// Read and not yet parsed.
    unparsed: Vec<u8>,
    /// The calls waiting for replies, in the order their commands were written.
    waiting: VecDeque<Waiting>,
    /// Hears what Redis pushes (RESP3) and each drop of the connection.
    listener: Option<std::sync::Weak<dyn Listener>>,
}

/// What a connection tells besides the answers to its calls.
pub trait Listener: Send + Sync {
    /// A message Redis pushed (RESP3), in line with the answers around it. Called on the
    /// loop's thread with the connection's state held: it must not use the connection.
    fn pushed(&self, value: Value);
    /// The connection was dropped (what it was told to do on the server is gone with it).
    /// As `pushed`, it must not use the connection.
    fn dropped(&self);
}

struct Waiting {
    /// Replies to collect; the first `skip` are dropped (a transaction's MULTI and
    /// QUEUED), the rest go to the call.
    replies: usize,
    skip: usize,
    values: Vec<Value>,
    /// None for the connection's own AUTH and SELECT.
    answer: Option<oneshot::Sender<RedisResult<Vec<Value>>>>,
}

impl LoopConnection {
    /// A connection to `address`, made on first use, with `hello` (packed commands,
    /// `hello_replies` answers) sent first.
    pub fn new(
        reactor: &'static dyn Reactor,
        address: (String, u16),
        hello: Vec<u8>,
        hello_replies: usize,
        db: i64,
        connect_timeout: Duration,
    ) -> crate::Result<LoopConnection> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            crate::Error::store("redis", format!("no I/O runtime to connect from: {e}"))
        })?;
        Ok(LoopConnection {
            link: Arc::new(Link {
                reactor,
                runtime,
                address,
                hello,
                hello_replies,
                connect_timeout,
                state: Mutex::new(State::default()),
            }),
            db,
        })
    }

    /// How many connections were made so far; a command sent between two reads of it that
    /// agree went on the connection of both.
    pub fn generation(&self) -> u64 {
        self.link.state().connects
    }

    /// Tells `listener` what arrives unasked and when the connection drops.
    pub fn listen(&self, listener: std::sync::Weak<dyn Listener>) {
        self.link.state().listener = Some(listener);
    }

    /// Reads what has arrived already, without waiting (so a message sent before some
    /// other event is heard before it is acted on).
    pub fn receive_now(&self) {
        if !self.link.reactor.is_current() {
            return;
        }
        self.link.receive(&mut self.link.state());
    }

    /// True while the connection of `generation` is up: a command sent now goes on it.
    pub fn is_on(&self, generation: u64) -> bool {
        let state = self.link.state();
        state.socket.is_some() && state.connects == generation
    }

    /// Writes `packed` and waits for its `skip + take` replies; the first error Redis
    /// answered fails the call.
    async fn request(&self, packed: Vec<u8>, skip: usize, take: usize) -> RedisResult<Vec<Value>> {
        let values = self.send(packed, skip, take).await?;
        values.into_iter().map(Value::extract_error).collect()
    }

    /// Writes `packed` and waits for its `skip + take` replies, the last `take` as Redis
    /// gave them (errors included). Written on the current connection, or the next one.
    pub async fn send(&self, packed: Vec<u8>, skip: usize, take: usize) -> RedisResult<Vec<Value>> {
        if !self.link.reactor.is_current() {
            return Err(failure(
                "a Redis store made on the JavaScript thread is used from another thread",
            ));
        }
        let (answer, reply) = oneshot::channel();
        {
            let mut state = self.link.state();
            if state.socket.is_none() && !state.connecting {
                self.link.connect(&mut state);
            }
            state.unsent.extend_from_slice(&packed);
            state.waiting.push_back(Waiting {
                replies: skip + take,
                skip,
                values: Vec::with_capacity(skip + take),
                answer: Some(answer),
            });
            // Written when the loop's round ends, with the commands of the other calls
            // made in it.
            if state.socket.is_some() && !state.flush_due {
                state.flush_due = true;
                self.link.reactor.defer(self.link.clone());
            }
        }
        let mut pending = GivenUp(Some(&self.link));
        let result = reply
            .await
            .unwrap_or_else(|_| Err(failure("the connection to Redis closed")));
        pending.0 = None;
        result
    }
}

/// Drops the connection when a call stops waiting before its reply (its timeout): the
/// server is not answering, and a connection that may still answer it later is not
/// reused.
struct GivenUp<'a>(Option<&'a Arc<Link>>);

impl Drop for GivenUp<'_> {
    fn drop(&mut self) {
        if let Some(link) = self.0 {
            link.reset(
                &mut link.state(),
                "an earlier command got no answer in time",
            );
        }
    }
}

impl Link {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts connecting on the I/O runtime; the connection's AUTH and SELECT go first.
    fn connect(self: &Arc<Self>, state: &mut State) {
        state.connecting = true;
        self.hello_first(state);
        let (address, timeout) = (self.address.clone(), self.connect_timeout);
        let connecting = self.runtime.spawn(async move {
            let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
                .await
                .map_err(|_| {
                    format!(
                        "no connection within the connect timeout of {} ms",
                        timeout.as_millis()
                    )
                })?
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream.into_std().map_err(|e| e.to_string())
        });
        let link = self.clone();
        self.reactor.spawn(Box::pin(async move {
            let connected = connecting
                .await
                .unwrap_or_else(|e| Err(format!("the connect task failed: {e}")));
            link.connected(connected);
        }));
    }

    fn connected(self: &Arc<Self>, connected: Result<TcpStream, String>) {
        let mut state = self.state();
        if !state.connecting {
            return;
        }
        state.connecting = false;
        let stream = match connected {
            Ok(stream) => stream,
            Err(cause) => return self.reset(&mut state, &cause),
        };
        let events: Arc<dyn SocketEvents> = Arc::new(Events(Arc::downgrade(self)));
        match self.reactor.watch(stream.as_raw_fd(), events) {
            Ok(watch) => {
                state.socket = Some((stream, watch));
                state.connects += 1;
                self.flush(&mut state);
            }
            Err(err) => self.reset(&mut state, &err.to_string()),
        }
    }

    /// Writes what the socket takes now, and asks to hear when it takes more.
    fn flush(&self, state: &mut State) {
        let Some((stream, _)) = &state.socket else {
            return;
        };
        let mut stream = stream;
        let mut written = 0;
        let result = loop {
            if written == state.unsent.len() {
                break Ok(());
            }
            match stream.write(&state.unsent[written..]) {
                Ok(0) => break Err("Redis stopped taking data".to_string()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e.to_string()),
            }
        };
        state.unsent.drain(..written);
        if let Err(cause) = result {
            return self.reset(state, &cause);
        }
        let more = !state.unsent.is_empty();
        if let Some((_, watch)) = &mut state.socket {
            watch.want_writable(more);
        }
    }

    /// Reads what arrived and hands each complete reply to its call.
    fn receive(&self, state: &mut State) {
        let Some((stream, _)) = &state.socket else {
            return;
        };
        let mut stream = stream;
        let closed = loop {
            let start = state.unparsed.len();
            state.unparsed.resize(start + READ_CHUNK, 0);
            match stream.read(&mut state.unparsed[start..]) {
                Ok(0) => {
                    state.unparsed.truncate(start);
                    break Some("Redis closed the connection".to_string());
                }
                Ok(n) => {
                    state.unparsed.truncate(start + n);
                    if n < READ_CHUNK {
                        break None;
                    }
                }
                Err(e) => {
                    state.unparsed.truncate(start);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break None,
                        io::ErrorKind::Interrupted => {}
                        _ => break Some(e.to_string()),
                    }
                }
            }
        };
        let mut parsed = 0;
        while parsed < state.unparsed.len() {
            let length = match frame_length(&state.unparsed[parsed..]) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(()) => return self.reset(state, "Redis sent something that is not RESP"),
            };
            let frame = &state.unparsed[parsed..parsed + length];
            parsed += length;
            let value = match redis::parse_redis_value(frame) {
                Ok(value) => value,
                Err(err) => return self.reset(state, &err.to_string()),
            };
            if let Err(cause) = deliver(state, value) {
                return self.reset(state, &cause);
            }
        }
        state.unparsed.drain(..parsed);
        if let Some(cause) = closed {
            self.reset(state, &cause);
        }
    }

    /// Puts AUTH and SELECT first in line on a connection to be made (nothing is queued).
    fn hello_first(&self, state: &mut State) {
        state.unsent = self.hello.clone();
        state.waiting.clear();
        if self.hello_replies > 0 {
            state.waiting.push_back(Waiting {
                replies: self.hello_replies,
                skip: 0,
                values: Vec::new(),
                answer: None,
            });
        }
    }

    /// Drops the connection, failing every call waiting on it; a connect under way goes
    /// on for the calls made after.
    fn reset(&self, state: &mut State, cause: &str) {
        let socket = state.socket.take();
        let waiting = std::mem::take(&mut state.waiting);
        state.unsent.clear();
        state.unparsed.clear();
        if state.connecting {
            self.hello_first(state); // the connect under way sends them first still
        }
        for call in waiting {
            if let Some(answer) = call.answer {
                let _ = answer.send(Err(failure(cause)));
            }
        }
        if socket.is_some() {
            if let Some(listener) = state.listener.as_ref().and_then(|l| l.upgrade()) {
                listener.dropped();
            }
        }
        // The watch stops before the socket closes.
        if let Some((stream, watch)) = socket {
            drop(watch);
            drop(stream);
        }
    }
}

impl DeferredWork for Link {
    fn run(&self) {
        let mut state = self.state();
        state.flush_due = false;
        self.flush(&mut state);
    }
}

/// Hands a reply to the call waiting for it, once all its replies are in.
fn deliver(state: &mut State, value: Value) -> Result<(), String> {
    if let Value::Push { .. } = value {
        if let Some(listener) = state.listener.as_ref().and_then(|l| l.upgrade()) {
            listener.pushed(value);
        }
        return Ok(());
    }
    let call = state
        .waiting
        .front_mut()
        .ok_or("Redis sent a reply no command asked for")?;
    call.values.push(value);
    if call.values.len() < call.replies {
        return Ok(());
    }
    let call = state.waiting.pop_front().expect("the call just answered");
    let Some(answer) = call.answer else {
        // AUTH or SELECT refused: no command on this connection can succeed.
        for value in call.values {
            value
                .extract_error()
                .map_err(|e| format!("connecting: {e}"))?;
        }
        return Ok(());
    };
    let _ = answer.send(Ok(call.values.into_iter().skip(call.skip).collect()));
    Ok(())
}

/// The socket's events, for the link while it lives.
struct Events(std::sync::Weak<Link>);

impl SocketEvents for Events {
    fn ready(&self, readable: bool, writable: bool, failed: bool) {
        let Some(link) = self.0.upgrade() else { return };
        let mut state = link.state();
        if failed {
            return link.reset(&mut state, "the socket failed");
        }
        if readable {
            link.receive(&mut state);
        }
        if writable {
            link.flush(&mut state);
        }
    }
}

pub(super) fn failure(cause: &str) -> RedisError {
    io::Error::new(io::ErrorKind::ConnectionReset, cause.to_owned()).into()
}

/// The length of the RESP frame `buf` starts with; none while it is incomplete.
fn frame_length(buf: &[u8]) -> Result<Option<usize>, ()> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = end + 2;
    let number = || -> Result<i64, ()> {
        std::str::from_utf8(&buf[1..end])
            .map_err(|_| ())?
            .parse()
            .map_err(|_| ())
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(line)),
        b'$' | b'!' | b'=' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(line));
            }
            let total = line + n as usize + 2;
            Ok((buf.len() >= total).then_some(total))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(line));
            }
            let items = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut at = line;
            for _ in 0..items {
                match frame_length(&buf[at..])? {
                    Some(length) => at += length,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        _ => Err(()),
    }
}

impl ConnectionLike for LoopConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut values = self.request(cmd.get_packed_command(), 0, 1).await?;
            Ok(values.pop().unwrap_or(Value::Nil))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.request(pipeline.get_packed_pipeline(), offset, count))
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

#[cfg(test)]
mod tests {
    use super::frame_length;

    #[test]
    fn finds_where_each_reply_ends() {
        assert_eq!(frame_length(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(frame_length(b"+OK\r"), Ok(None));
        assert_eq!(frame_length(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_length(b"$3\r\nabc\r\n+"), Ok(Some(9)));
        assert_eq!(frame_length(b"$3\r\nab"), Ok(None));
        assert_eq!(frame_length(b"*2\r\n$1\r\na\r\n:5\r\n"), Ok(Some(15)));
        assert_eq!(frame_length(b"*2\r\n$1\r\na\r\n"), Ok(None));
        assert_eq!(frame_length(b"*-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_length(b"?x\r\n"), Err(()));
        assert_eq!(frame_length(b"$x\r\n"), Err(()));
    }
}
