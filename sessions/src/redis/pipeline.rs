//! [`AutoPipeline`]: one connection to one Redis on which concurrent calls are written
//! together.
//!
//! Every call appends its encoded command to a shared output buffer and the in-flight queue,
//! under one lock, and wakes the writer task. The writer first yields to the scheduler, so that
//! the other tasks that are ready to run (the other requests of the same wake-up) queue their
//! commands too, and then writes everything queued in one `write`. Redis answers a batch with
//! one `read` and one `write` instead of one each per command, which is most of its CPU time
//! per `GET`. The reader task parses the replies and hands them, in order, to the calls waiting
//! at the head of the in-flight queue.
//!
//! A general multiplexed connection flushes as soon as its task runs; on Tokio's multi-threaded
//! runtime the task woken by a call runs right after it (the "LIFO slot"), so it writes one
//! command at a time. That is why this exists.
//!
//! The connection speaks RESP2. When it breaks (Redis restarted, a network error, or no reply
//! for [`STALL_LIMIT`] while calls wait), the calls in flight fail (their command may or may not
//! have run) and the next call opens a new connection; a failed connection attempt makes the
//! calls of the next [`RECONNECT_PAUSE`] fail at once instead of each trying again.
//!
//! A command queued while a store call is polled carries that call's deadline (see
//! [`with_deadline`]); the connection's watchdog task answers the commands still waiting when
//! their deadline passes, so that calls arm no timer of their own.

use std::{
    cell::Cell,
    collections::VecDeque,
    fmt,
    future::Future,
    io, mem,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use bytes::{Buf, BytesMut};
use redis::{
    aio::ConnectionLike, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisError,
    RedisFuture, RedisResult, Value,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{oneshot, Notify},
};

/// After a failed connection attempt, calls fail at once for this long (with that attempt's
/// error) instead of each attempting again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// The output buffer keeps at most this much capacity between batches.
const MAX_IDLE_BUFFER: usize = 256 * 1024;

/// A connection that has calls in flight and has received nothing for this long is dead (a
/// peer gone without a reset: a network partition, a frozen Redis): the calls in flight fail
/// and the next call opens a new connection. Longer than any command of the store takes.
const STALL_LIMIT: Duration = Duration::from_secs(5);

/// An auto-pipelining connection to one Redis: cheap to clone, and every clone shares the
/// connection.
#[derive(Clone)]
pub(crate) struct AutoPipeline {
    shared: Arc<Shared>,
}

struct Shared {
    info: ConnectionInfo,
    connect_timeout: Duration,
    state: Mutex<Connection>,
    /// Serializes connection attempts.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Connection {
    link: Option<Arc<Link>>,
    /// The last failed connection attempt: when, and why.
    failed: Option<(Instant, String)>,
}

/// One open connection and its tasks.
struct Link {
    state: Mutex<LinkState>,
    wake_writer: Notify,
    /// Tells [`watch_loop`] that a call came with a deadline earlier than it planned to wake.
    wake_watch: Notify,
}

#[derive(Default)]
struct LinkState {
    /// Commands encoded and not yet written.
    out: Vec<u8>,
    /// The calls whose replies are awaited, in the order their commands were queued.
    in_flight: VecDeque<InFlight>,
    /// Why the connection is no longer usable, once it is not.
    broken: Option<String>,
    /// The last reply received, or the moment a call was queued with none in flight.
    last_progress: Option<Instant>,
    /// When [`watch_loop`] wakes next, as far as calls know.
    watch_at: Option<Instant>,
}

/// A call in flight, and the moment it gives up waiting.
struct InFlight {
    pending: Pending,
    /// Taken (`None`) once the call has been answered that its deadline passed.
    deadline: Option<Instant>,
}

impl Pending {
    fn reply(&mut self) -> &mut Reply {
        let (Pending::One(reply) | Pending::Many { reply, .. }) = self;
        reply
    }

    fn into_reply(self) -> Reply {
        let (Pending::One(reply) | Pending::Many { reply, .. }) = self;
        reply
    }
}

thread_local! {
    /// The deadline of the store call being polled on this thread, if any, and whether a call
    /// queued during that poll took it; see [`with_deadline`].
    static CALL_DEADLINE: Cell<(Option<Instant>, bool)> = const { Cell::new((None, false)) };
}

/// Polls a store call (`poll`) with `deadline` as the deadline of every command it queues on
/// an [`AutoPipeline`] meanwhile; returns `poll`'s result and whether a command was queued.
///
/// A command past its deadline is answered with an error that [`is_deadline_error`] tells
/// apart, by the connection's watchdog task: a store call needs no timer of its own for the
/// commands it sends here (a Tokio timer per call was 1.5 % of a Redis login's instructions
/// and 3 % of a load's, in callgrind). Its reply, when it comes, is dropped.
pub(crate) fn with_deadline<T>(deadline: Instant, poll: impl FnOnce() -> T) -> (T, bool) {
    /// Puts the outer call's deadline back, even if `poll` panics.
    struct Restore((Option<Instant>, bool));
    impl Drop for Restore {
        fn drop(&mut self) {
            CALL_DEADLINE.set(self.0);
        }
    }
    let restore = Restore(CALL_DEADLINE.replace((Some(deadline), false)));
    let result = poll();
    let (_, queued) = CALL_DEADLINE.get();
    drop(restore);
    (result, queued)
}

/// The deadline of the store call being polled, marked as taken by a command.
fn take_call_deadline() -> Option<Instant> {
    let (deadline, _) = CALL_DEADLINE.get();
    if deadline.is_some() {
        CALL_DEADLINE.set((deadline, true));
    }
    deadline
}

/// What a command whose deadline passed is answered with.
const DEADLINE_PASSED: &str = "no reply from Redis before the call's deadline";

/// Whether `err` is the answer to a command whose deadline passed (see [`with_deadline`]).
pub(crate) fn is_deadline_error(err: &RedisError) -> bool {
    err.is_timeout() && err.to_string().contains(DEADLINE_PASSED)
}

/// How often [`watch_loop`] looks at a connection with nothing in flight.
const IDLE_WATCH: Duration = Duration::from_secs(1);

/// A call waiting for its reply.
enum Pending {
    /// One command.
    One(Reply),
    /// A pipeline: `skip` replies are dropped, then `keep` are answered as an array; any
    /// error reply among them fails the call.
    Many {
        skip: usize,
        keep: usize,
        values: Vec<Value>,
        error: Option<RedisError>,
        reply: Reply,
    },
}

type Reply = oneshot::Sender<RedisResult<Value>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks panics midway; a poisoned lock still holds consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(kind: io::ErrorKind, message: impl Into<String>) -> RedisError {
    RedisError::from(io::Error::new(kind, message.into()))
}

fn lost(why: &str) -> RedisError {
    io_error(
        io::ErrorKind::ConnectionAborted,
        format!("connection to Redis lost ({why}); the command may or may not have run"),
    )
}

impl AutoPipeline {
    /// Opens the connection described by `info` (one attempt, bounded by `connect_timeout`).
    pub(crate) async fn connect(
        info: ConnectionInfo,
        connect_timeout: Duration,
    ) -> RedisResult<Self> {
        let link = open(&info, connect_timeout).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                info,
                connect_timeout,
                state: Mutex::new(Connection {
                    link: Some(link),
                    failed: None,
                }),
                connecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Connects again, or fails at once within [`RECONNECT_PAUSE`] of a failed attempt.
    async fn reconnect(&self) -> RedisResult<Arc<Link>> {
        let _connecting = self.shared.connecting.lock().await;
        if let Some(link) = self.shared.usable() {
            return Ok(link);
        }
        if let Some((when, why)) = &lock(&self.shared.state).failed {
            if when.elapsed() < RECONNECT_PAUSE {
                return Err(io_error(
                    io::ErrorKind::NotConnected,
                    format!("Redis unreachable: {why}"),
                ));
            }
        }
        match open(&self.shared.info, self.shared.connect_timeout).await {
            Ok(link) => {
                let mut state = lock(&self.shared.state);
                state.link = Some(Arc::clone(&link));
                state.failed = None;
                Ok(link)
            }
            Err(err) => {
                lock(&self.shared.state).failed = Some((Instant::now(), err.to_string()));
                Err(err)
            }
        }
    }

    /// Sends the one command that `encode` writes (with [`write_command`]); the answer is its
    /// reply, an error reply being an `Err`.
    ///
    /// The command is queued before this returns (`encode` runs now), so the answer is a small
    /// future that borrows nothing: a caller's future holds a channel, not the call.
    pub(crate) fn query(&self, encode: impl FnOnce(&mut Vec<u8>)) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.start(encode, Pending::One(reply), answer)
    }

    /// Sends the `commands` commands that `encode` writes; the answer is an array of their
    /// replies, in order; an error reply to any of them is an `Err`.
    pub(crate) fn query_all(&self, commands: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Answer {
        self.query_many(0, commands, encode)
    }

    /// Sends the commands that `encode` writes; the answer drops the first `skip` replies and
    /// gives the next `keep` as an array.
    fn query_many(&self, skip: usize, keep: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Answer {
        if skip + keep == 0 {
            return Answer::ready(Ok(Value::Array(Vec::new())));
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Many {
            skip,
            keep,
            values: Vec::with_capacity(keep),
            error: None,
            reply,
        };
        self.start(encode, pending, answer)
    }

    /// Queues `pending` with its command on the current connection; when there is none
    /// usable, encodes the command now and queues it once a new connection is open.
    fn start(
        &self,
        encode: impl FnOnce(&mut Vec<u8>),
        pending: Pending,
        answer: oneshot::Receiver<RedisResult<Value>>,
    ) -> Answer {
        if let Some(link) = self.shared.usable() {
            return match link.queue(encode, pending) {
                Ok(()) => Answer(AnswerState::Waiting(answer)),
                Err(err) => Answer::ready(Err(err)),
            };
        }
        let mut command = Vec::new();
        encode(&mut command);
        let this = self.clone();
        let connecting = async move {
            let link = this.reconnect().await?;
            link.queue(|out| out.extend_from_slice(&command), pending)?;
            answer
                .await
                .unwrap_or_else(|_| Err(lost("the connection closed")))
        };
        Answer(AnswerState::Connecting(Box::pin(connecting)))
    }
}

/// The reply to a call on an [`AutoPipeline`], once it arrives.
pub(crate) struct Answer(AnswerState);

enum AnswerState {
    Ready(Option<RedisResult<Value>>),
    Waiting(oneshot::Receiver<RedisResult<Value>>),
    /// Waiting for a new connection first (rare, so boxed).
    Connecting(Pin<Box<dyn Future<Output = RedisResult<Value>> + Send>>),
}

impl Answer {
    fn ready(result: RedisResult<Value>) -> Self {
        Answer(AnswerState::Ready(Some(result)))
    }
}

impl Future for Answer {
    type Output = RedisResult<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match &mut self.0 {
            AnswerState::Ready(result) => result
                .take()
                .unwrap_or_else(|| Err(lost("the answer was already taken"))),
            AnswerState::Waiting(answer) => match ready!(Pin::new(answer).poll(cx)) {
                Ok(result) => result,
                Err(_) => Err(lost("the connection closed")),
            },
            AnswerState::Connecting(connecting) => ready!(connecting.as_mut().poll(cx)),
        })
    }
}

impl Shared {
    /// The current connection, unless it broke (a stalled one is failed by [`watch_loop`]).
    fn usable(&self) -> Option<Arc<Link>> {
        let link = lock(&self.state).link.clone()?;
        let broken = lock(&link.state).broken.is_some();
        (!broken).then_some(link)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: close the connection, which ends both tasks.
        if let Some(link) = lock(&self.state).link.take() {
            link.fail("the store was dropped");
        }
    }
}

impl Link {
    /// Queues `pending` with its encoded command (written by `encode`) and wakes the writer.
    fn queue(&self, encode: impl FnOnce(&mut Vec<u8>), pending: Pending) -> RedisResult<()> {
        {
            let mut state = lock(&self.state);
            if let Some(why) = &state.broken {
                // Broke since it was found usable: nothing was sent.
                return Err(io_error(
                    io::ErrorKind::NotConnected,
                    format!("connection to Redis lost ({why}); the command was not sent"),
                ));
            }
            encode(&mut state.out);
            if state.in_flight.is_empty() {
                state.last_progress = Some(Instant::now());
            }
            let deadline = take_call_deadline();
            // Under load the watchdog already sleeps until an earlier deadline; only a call
            // that must give up before that wakes it.
            let earlier = deadline.filter(|&at| state.watch_at.is_none_or(|watch| at < watch));
            if earlier.is_some() {
                state.watch_at = earlier;
            }
            state.in_flight.push_back(InFlight { pending, deadline });
            drop(state);
            if earlier.is_some() {
                self.wake_watch.notify_one();
            }
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Answers every call in flight whose deadline is at or before `now` with
    /// [`DEADLINE_PASSED`] (keeping its place, for its reply to be dropped when it comes);
    /// returns the earliest deadline still ahead.
    fn expire(state: &mut LinkState, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for call in &mut state.in_flight {
            match call.deadline {
                Some(at) if at <= now => {
                    call.deadline = None;
                    // The reply, when it comes, goes to a channel nobody listens to.
                    let (closed, _) = oneshot::channel();
                    let reply = mem::replace(call.pending.reply(), closed);
                    let _ = reply.send(Err(io_error(io::ErrorKind::TimedOut, DEADLINE_PASSED)));
                }
                Some(at) => next = Some(next.map_or(at, |next| next.min(at))),
                None => {}
            }
        }
        next
    }

    /// Marks the connection broken, fails every call in flight and stops the writer.
    fn fail(&self, why: &str) {
        let in_flight = {
            let mut state = lock(&self.state);
            if state.broken.is_none() {
                state.broken = Some(why.to_owned());
            }
            state.out = Vec::new();
            mem::take(&mut state.in_flight)
        };
        for call in in_flight {
            let _ = call.pending.into_reply().send(Err(lost(why)));
        }
        self.wake_writer.notify_one();
        self.wake_watch.notify_one();
    }

    /// Hands parsed replies (an error reply as `Err`) to the calls at the head of the queue.
    fn deliver(&self, replies: &mut Vec<RedisResult<Value>>) -> Result<(), &'static str> {
        let mut state = lock(&self.state);
        if !replies.is_empty() {
            state.last_progress = Some(Instant::now());
        }
        // A caller may have given up (timeout): its reply is dropped.
        for value in replies.drain(..) {
            let Some(front) = state.in_flight.front_mut() else {
                return Err("a reply arrived for no command");
            };
            let answer = match &mut front.pending {
                Pending::One(_) => Some(value),
                Pending::Many {
                    skip,
                    keep,
                    values,
                    error,
                    ..
                } => {
                    let value = value.unwrap_or_else(|err| {
                        error.get_or_insert(err);
                        Value::Nil
                    });
                    if *skip > 0 {
                        *skip -= 1;
                        None
                    } else {
                        values.push(value);
                        (values.len() == *keep).then(|| {
                            error
                                .take()
                                .map_or_else(|| Ok(Value::Array(mem::take(values))), Err)
                        })
                    }
                }
            };
            if let Some(answer) = answer {
                if let Some(call) = state.in_flight.pop_front() {
                    let _ = call.pending.into_reply().send(answer);
                }
            }
        }
        Ok(())
    }
}

/// Opens a connection, authenticates and selects the database, and starts its tasks.
async fn open(info: &ConnectionInfo, connect_timeout: Duration) -> RedisResult<Arc<Link>> {
    let timed_out = || {
        io_error(
            io::ErrorKind::TimedOut,
            format!("connecting to Redis timed out after {connect_timeout:?}"),
        )
    };
    let connect = async {
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                let (reader, writer) = stream.into_split();
                ready(info, reader, writer).await
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let (reader, writer) = tokio::net::UnixStream::connect(path).await?.into_split();
                ready(info, reader, writer).await
            }
            other => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "this address needs a connection the store does not open itself (TLS?): \
                 build a ConnectionManager and use RedisStore::from_connection_manager",
                format!("{other}"),
            ))),
        }
    };
    tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| timed_out())?
}

/// Authenticates and selects the database on a new connection, then starts its tasks.
async fn ready<R, W>(info: &ConnectionInfo, mut reader: R, mut writer: W) -> RedisResult<Arc<Link>>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    handshake(info, &mut reader, &mut writer).await?;
    Ok(start(reader, writer))
}

/// `AUTH` and `SELECT` as the URL asks, one reply each, before the connection is shared.
async fn handshake(
    info: &ConnectionInfo,
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
) -> RedisResult<()> {
    let settings = info.redis_settings();
    let mut commands = Vec::new();
    if let Some(password) = settings.password() {
        let mut auth = redis::cmd("AUTH");
        if let Some(username) = settings.username() {
            auth.arg(username);
        }
        auth.arg(password);
        commands.push(auth);
    }
    if settings.db() != 0 {
        commands.push(redis::cmd("SELECT").arg(settings.db()).clone());
    }
    if commands.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    for command in &commands {
        command.write_packed_command(&mut out);
    }
    writer.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(256);
    let mut answered = 0;
    while answered < commands.len() {
        match frame_len(&buf) {
            Ok(Some(len)) => {
                let frame = buf.split_to(len);
                read_reply(&frame)??;
                answered += 1;
            }
            Ok(None) => {
                if reader.read_buf(&mut buf).await? == 0 {
                    return Err(lost("closed by Redis while connecting"));
                }
            }
            Err(why) => return Err(io_error(io::ErrorKind::InvalidData, why)),
        }
    }
    Ok(())
}

fn start<R, W>(reader: R, writer: W) -> Arc<Link>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let link = Arc::new(Link {
        state: Mutex::new(LinkState::default()),
        wake_writer: Notify::new(),
        wake_watch: Notify::new(),
    });
    tokio::spawn(write_loop(Arc::clone(&link), writer));
    tokio::spawn(read_loop(Arc::clone(&link), reader));
    tokio::spawn(watch_loop(Arc::clone(&link)));
    link
}

/// The connection's watchdog: answers the calls whose deadline passed (see
/// [`with_deadline`]), and fails the connection once calls have waited [`STALL_LIMIT`] with no
/// reply: a peer gone without a reset (a partition, a frozen host) keeps TCP up, and no error
/// would ever come. One task and one timer per connection, asleep until the earliest deadline
/// or until the oldest call could have stalled (or for [`IDLE_WATCH`] when nothing is in
/// flight), so that calls never arm a timer or read the clock for this.
async fn watch_loop(link: Arc<Link>) {
    let sleep = tokio::time::sleep(IDLE_WATCH);
    tokio::pin!(sleep);
    loop {
        let wake_at = {
            let mut state = lock(&link.state);
            if state.broken.is_some() {
                return;
            }
            let now = Instant::now();
            let deadline = Link::expire(&mut state, now);
            let wake_at = match state.last_progress.filter(|_| !state.in_flight.is_empty()) {
                Some(last) if now.saturating_duration_since(last) > STALL_LIMIT => None,
                Some(last) => Some(last + STALL_LIMIT + Duration::from_millis(1)),
                None => Some(now + IDLE_WATCH),
            }
            .map(|at| deadline.map_or(at, |deadline| deadline.min(at)));
            state.watch_at = wake_at;
            wake_at
        };
        let Some(at) = wake_at else {
            tracing::warn!(
                "session store: Redis has not answered for {STALL_LIMIT:?}; reconnecting"
            );
            link.fail(&format!("no reply for {STALL_LIMIT:?}"));
            return;
        };
        sleep.as_mut().reset(at.into());
        tokio::select! {
            () = &mut sleep => {}
            () = link.wake_watch.notified() => {}
        }
    }
}

async fn write_loop(link: Arc<Link>, mut writer: impl AsyncWrite + Unpin) {
    let mut batch = Vec::new();
    loop {
        link.wake_writer.notified().await;
        // Let the other tasks that are ready now queue their commands: one write for all.
        tokio::task::yield_now().await;
        {
            let mut state = lock(&link.state);
            if state.broken.is_some() {
                break;
            }
            mem::swap(&mut state.out, &mut batch);
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(err) = writer.write_all(&batch).await {
            link.fail(&format!("write failed: {err}"));
            break;
        }
        batch.clear();
        if batch.capacity() > MAX_IDLE_BUFFER {
            batch = Vec::new();
        }
    }
    // Dropping the write half shuts the connection down for writing; Redis then closes it,
    // which ends the reader.
}

async fn read_loop(link: Arc<Link>, mut reader: impl AsyncRead + Unpin) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut scanner = Scanner::default();
    let mut replies = Vec::new();
    loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                link.fail("closed by Redis");
                return;
            }
            Ok(_) => {}
            Err(err) => {
                link.fail(&format!("read failed: {err}"));
                return;
            }
        }
        // Parse in place and drop the parsed bytes once: splitting each frame off would turn
        // the buffer into a shared one, reallocated at the next read.
        let mut at = 0;
        loop {
            // A whole reply is read in one pass. One that is not all here yet (or holds an
            // error, which redis-rs reads) goes to the scanner, which finds its end across
            // reads without starting over at each.
            if scanner.is_idle() {
                let mut end = 0;
                if let Ok(value) = parse_value(&buf[at..], &mut end) {
                    replies.push(Ok(value));
                    at += end;
                    continue;
                }
            }
            match scanner.scan(&buf[at..]) {
                Ok(Some(len)) => {
                    match read_reply(&buf[at..at + len]) {
                        Ok(reply) => replies.push(reply),
                        Err(err) => {
                            link.fail(&format!("unreadable reply: {err}"));
                            return;
                        }
                    }
                    at += len;
                }
                Ok(None) => break,
                Err(why) => {
                    link.fail(why);
                    return;
                }
            }
        }
        buf.advance(at);
        if let Err(why) = link.deliver(&mut replies) {
            link.fail(why);
            return;
        }
        if buf.is_empty() && buf.capacity() > MAX_IDLE_BUFFER {
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
}

/// Writes one command, its name and arguments, in RESP.
pub(crate) fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    // Room for the whole command at once (each length prefix takes at most 24 bytes), so
    // that the pieces below never grow the buffer.
    out.reserve(24 + args.iter().map(|arg| arg.len() + 24).sum::<usize>());
    write_len(out, b'*', args.len());
    for arg in args {
        write_len(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// `*` or `$`, a length and CRLF. Lengths under 100 (almost all of them: arguments are
/// keys, ids, TTLs and small sessions) are written as one fixed-size piece, which the
/// compiler copies inline; a call to `memcpy` per piece cost more than the copying.
fn write_len(out: &mut Vec<u8>, kind: u8, len: usize) {
    // Both casts are of a digit, below 10.
    #[allow(clippy::cast_possible_truncation)]
    let digit = |n: usize| b'0' + (n % 10) as u8;
    match len {
        0..10 => out.extend_from_slice(&[kind, digit(len), b'\r', b'\n']),
        10..100 => out.extend_from_slice(&[kind, digit(len / 10), digit(len), b'\r', b'\n']),
        _ => {
            out.push(kind);
            out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The length of the complete RESP2 reply at the start of `buf`, `None` if more bytes are
/// needed, or why the bytes are not RESP2.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    Scanner::default().scan(buf)
}

/// Finds where a RESP2 reply ends, resuming where the last call stopped: a reply that arrives
/// in many reads (a long list of ids, say) is scanned once, not once per read.
#[derive(Debug)]
struct Scanner {
    /// Bytes of the reply scanned so far: whole elements only.
    at: usize,
    /// Elements still to read at the current depth: one reply at the top.
    remaining: usize,
    /// `remaining` of each enclosing array.
    open_arrays: Vec<usize>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            at: 0,
            remaining: 1,
            open_arrays: Vec::new(),
        }
    }
}

impl Scanner {
    /// Whether no reply is half scanned.
    fn is_idle(&self) -> bool {
        self.at == 0 && self.remaining == 1 && self.open_arrays.is_empty()
    }

    /// Scans on from where the last call stopped, `buf` starting where the reply starts.
    /// `Some(len)` when the reply is whole; the scanner is then ready for the next reply.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, &'static str> {
        loop {
            while self.remaining == 0 {
                match self.open_arrays.pop() {
                    Some(outer) => self.remaining = outer,
                    None => {
                        // Ready for the next reply; `open_arrays` (empty now) keeps its
                        // allocation, which every array reply would redo.
                        let len = self.at;
                        self.at = 0;
                        self.remaining = 1;
                        return Ok(Some(len));
                    }
                }
            }
            let at = self.at;
            let Some(&kind) = buf.get(at) else {
                return Ok(None);
            };
            let Some(line_end) = find_crlf(&buf[at..]) else {
                return Ok(None);
            };
            // A CRLF at the very start (no type byte) is no reply: not sliced, refused.
            let line = buf
                .get(at + 1..at + line_end)
                .ok_or("a reply of an unknown type (not RESP2)")?;
            let mut next = at + line_end + 2;
            match kind {
                b'+' | b'-' | b':' => {}
                b'$' => {
                    if let Some(len) = parse_len(line)? {
                        // Checked: a length near `usize::MAX` would wrap around.
                        let end = next
                            .checked_add(len)
                            .and_then(|end| end.checked_add(2))
                            .ok_or("a malformed length")?;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err("a bulk string without its CRLF");
                        }
                        next = end;
                    }
                }
                b'*' => {
                    if let Some(count) = parse_len(line)? {
                        if count > 0 {
                            self.open_arrays.push(self.remaining - 1);
                            self.remaining = count.checked_add(1).ok_or("a malformed length")?;
                        }
                    }
                }
                _ => return Err("a reply of an unknown type (not RESP2)"),
            }
            self.at = next;
            self.remaining -= 1;
        }
    }
}

/// Reads one whole RESP2 reply, as [`frame_len`] delimited it: `Err` when it cannot be read,
/// `Ok(Err(_))` for a reply that is or holds an error. Those go through redis-rs's parser,
/// which makes its `ServerError`s (they are rare), as does anything this crate's parser
/// cannot read (redis-rs then says what is wrong). Only redis-rs's values go through
/// `extract_error`, which rebuilds every array: this crate's parser reads no error.
fn read_reply(frame: &[u8]) -> RedisResult<RedisResult<Value>> {
    let mut at = 0;
    match parse_value(frame, &mut at) {
        Ok(value) => Ok(Ok(value)),
        Err(_) => redis::parse_redis_value(frame).map(Value::extract_error),
    }
}

/// Parses the reply at `at` in `frame` and moves `at` past it. Bytes that stop short of a
/// whole reply are an error, as are error replies (which redis-rs reads): the read loop then
/// hands the reply to the [`Scanner`].
fn parse_value(frame: &[u8], at: &mut usize) -> Result<Value, &'static str> {
    let kind = *frame.get(*at).ok_or("truncated")?;
    let line_len = find_crlf(&frame[*at..]).ok_or("truncated")?;
    let line = frame
        .get(*at + 1..*at + line_len)
        .ok_or("a reply of an unknown type (not RESP2)")?;
    *at += line_len + 2;
    match kind {
        b'+' if line == b"OK" => Ok(Value::Okay),
        b'+' => Ok(Value::SimpleString(
            String::from_utf8(line.to_vec()).map_err(|_| "a status that is not UTF-8")?,
        )),
        b':' => parse_int(line).map(Value::Int).ok_or("a malformed integer"),
        b'$' => match parse_len(line)? {
            None => Ok(Value::Nil),
            Some(len) => {
                let end = at.checked_add(len).ok_or("a malformed length")?;
                let bytes = frame.get(*at..end).ok_or("truncated")?;
                if frame.get(end..end.saturating_add(2)) != Some(b"\r\n") {
                    return Err("truncated, or a bulk string without its CRLF");
                }
                *at = end + 2;
                Ok(Value::BulkString(bytes.to_vec()))
            }
        },
        b'*' => match parse_len(line)? {
            None => Ok(Value::Nil),
            Some(count) => {
                // At most what the bytes at hand can hold: an element takes three at least.
                let mut items = Vec::with_capacity(count.min((frame.len() - *at) / 3));
                for _ in 0..count {
                    items.push(parse_value(frame, at)?);
                }
                Ok(Value::Array(items))
            }
        },
        b'-' => Err("an error reply"),
        _ => Err("a reply of an unknown type (not RESP2)"),
    }
}

/// Where the first `\r\n` of `buf` starts. A reply's lines are short: a loop for `\r`,
/// then a look at the byte after it (pairs of bytes compared in turn cost twice as much).
fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let cr = from + buf[from..].iter().position(|&b| b == b'\r')?;
        if buf.get(cr + 1) == Some(&b'\n') {
            return Some(cr);
        }
        from = cr + 1;
    }
}

/// A length of a bulk string or array: `None` for -1 (nil).
fn parse_len(line: &[u8]) -> Result<Option<usize>, &'static str> {
    if line == b"-1" {
        return Ok(None);
    }
    parse_digits(line)
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or("a malformed length")
}

/// Decimal digits, at least one, as a number; `None` on anything else or on overflow. By
/// hand: `str::parse` after a UTF-8 check cost several times as much on these short lines.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |n, &digit| {
        let value = digit.wrapping_sub(b'0');
        if value > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(value))
    })
}

/// A RESP integer: digits with an optional `-`.
fn parse_int(line: &[u8]) -> Option<i64> {
    match line.split_first() {
        Some((b'-', digits)) => 0_i64.checked_sub_unsigned(parse_digits(digits)?),
        _ => i64::try_from(parse_digits(line)?).ok(),
    }
}

impl ConnectionLike for AutoPipeline {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.query(|out| cmd.write_packed_command(out)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let answer = self.query_many(offset, count, |out| {
            out.extend_from_slice(&pipeline.get_packed_pipeline());
        });
        Box::pin(async move {
            match answer.await? {
                Value::Array(values) => Ok(values),
                other => Ok(vec![other]),
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.info.redis_settings().db()
    }
}

impl fmt::Debug for AutoPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection info: it may hold a password.
        f.debug_struct("AutoPipeline").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply's value as it is, error replies included (what [`read_reply`] reads before
    /// `extract_error`), to compare with redis-rs's parser.
    fn parse_reply(frame: &[u8]) -> RedisResult<Value> {
        let mut at = 0;
        parse_value(frame, &mut at).or_else(|_| redis::parse_redis_value(frame))
    }

    #[test]
    fn frame_len_finds_whole_replies() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR wrong\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n:1\r\n",
            b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n$3\r\nabc\r\n",
            b"*3\r\n*0\r\n$-1\r\n+x\r\n",
            b"*2\r\n-ERR x\r\n:1\r\n",
            b"*3\r\n+OK\r\n+QUEUED\r\n*2\r\n$10\r\n1764115200\r\n$6\r\n123456\r\n",
        ];
        for reply in replies {
            let mut joined = reply.to_vec();
            joined.extend_from_slice(b":7\r\n");
            assert_eq!(frame_len(&joined), Ok(Some(reply.len())), "{reply:?}");
            for cut in 0..reply.len() {
                assert_eq!(frame_len(&reply[..cut]), Ok(None), "{reply:?} cut at {cut}");
                // The one-pass parser never reads a cut reply as a whole one.
                assert!(
                    parse_value(&reply[..cut], &mut 0).is_err(),
                    "{reply:?} cut at {cut}"
                );
            }
            // And it stops where the scanner says the reply ends.
            let mut end = 0;
            if parse_value(&joined, &mut end).is_ok() {
                assert_eq!(end, reply.len(), "{reply:?}");
            }
            assert_eq!(
                parse_reply(reply).ok(),
                redis::parse_redis_value(reply).ok(),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn write_command_writes_what_redis_rs_writes() {
        let mut ours = Vec::new();
        write_command(&mut ours, &[b"SET", b"key", b"", b"v\r\n1", b"PX", b"1000"]);
        let theirs = redis::cmd("SET")
            .arg("key")
            .arg("")
            .arg("v\r\n1")
            .arg("PX")
            .arg(1000)
            .get_packed_command();
        assert_eq!(ours, theirs);
    }

    proptest::proptest! {
        /// Any arguments, with lengths on both sides of each written form's limits.
        #[test]
        fn write_command_agrees_with_redis_rs(
            args in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..150),
                1..12,
            ),
        ) {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut ours = Vec::new();
            write_command(&mut ours, &args);
            // redis-rs packs a command's name as an argument like the others.
            let mut theirs = redis::Cmd::new();
            for arg in &args {
                theirs.arg(*arg);
            }
            proptest::prop_assert_eq!(ours, theirs.get_packed_command());
        }

        /// Integers and lengths read by hand agree with `str::parse` (which also takes a
        /// leading `+`, which RESP never sends).
        #[test]
        fn numbers_agree_with_str_parse(line in "-?[0-9]{0,21}|[0-9a -]{0,4}") {
            let text = line.as_str();
            proptest::prop_assert_eq!(parse_int(line.as_bytes()), text.parse::<i64>().ok());
            let len = if text == "-1" { Ok(None) } else { text.parse::<usize>().map(Some).map_err(|_| ()) };
            proptest::prop_assert_eq!(parse_len(line.as_bytes()).map_err(|_| ()), len);
        }

        /// On any bytes, the one-pass parser reads a reply only where the scanner finds a
        /// whole one, ends where it ends, and reads what redis-rs reads.
        #[test]
        fn the_one_pass_parser_agrees_with_the_scanner(bytes in proptest::collection::vec(
            proptest::sample::select(b"+-:$*0123\r\nab".to_vec()), 0..30,
        )) {
            // Neither panics on any bytes.
            let scanned = frame_len(&bytes);
            let mut end = 0;
            if let Ok(value) = parse_value(&bytes, &mut end) {
                proptest::prop_assert_eq!(scanned, Ok(Some(end)));
                let theirs = redis::parse_redis_value(&bytes[..end]).ok();
                proptest::prop_assert_eq!(Some(value), theirs);
            }
        }

        /// The line end is the first CRLF, whatever comes before it.
        #[test]
        fn find_crlf_finds_the_first_crlf(bytes in proptest::collection::vec(
            proptest::sample::select(b"ab\r\n".to_vec()), 0..12,
        )) {
            proptest::prop_assert_eq!(
                find_crlf(&bytes),
                bytes.windows(2).position(|pair| pair == b"\r\n")
            );
        }
    }

    #[test]
    fn integer_limits_are_read() {
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-9223372036854775809"), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b""), None);
    }

    #[test]
    fn the_scanner_resumes_across_reads() {
        let reply: &[u8] = b"*3\r\n*2\r\n:1\r\n$3\r\nabc\r\n$-1\r\n*1\r\n+OK\r\n:9\r\n";
        let first = reply.len() - 4;
        for step in 1..=reply.len() {
            let mut scanner = Scanner::default();
            let mut found = None;
            let mut end = 0;
            while found.is_none() && end < reply.len() {
                end = (end + step).min(reply.len());
                found = scanner.scan(&reply[..end]).unwrap();
            }
            assert_eq!(found, Some(first), "reads of {step} bytes");
            // Ready for the next reply.
            assert_eq!(scanner.scan(&reply[first..]).unwrap(), Some(4));
        }
    }

    #[test]
    fn frame_len_refuses_what_is_not_resp2() {
        assert!(frame_len(b"?what\r\n").is_err());
        assert!(frame_len(b"$x\r\n").is_err());
        assert!(frame_len(b"$2\r\nabcd\r\n").is_err());
        assert!(frame_len(b"*2\r\n:1\r\n!\r\n").is_err());
        // Lengths near `usize::MAX`: refused or waited on, never an overflow.
        for reply in [
            &b"$18446744073709551612\r\nab\r\n"[..],
            b"$18446744073709551615\r\n",
            b"*18446744073709551615\r\n:1\r\n",
            b"$99999999999999999999999\r\n",
        ] {
            assert_ne!(frame_len(reply), Ok(Some(reply.len())), "{reply:?}");
            assert!(parse_value(reply, &mut 0).is_err(), "{reply:?}");
        }
        // No type byte before the CRLF: refused (this once panicked on a slice).
        assert!(frame_len(b"\r\n").is_err());
        assert!(frame_len(b"*1\r\n\r\n").is_err());
        assert!(parse_value(b"\r\n", &mut 0).is_err());
    }
}
