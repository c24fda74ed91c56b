//! [`RedisStore`]: sessions in one Redis, in uapi's layout; and [`Core`], the store's logic
//! over any connection, shared with the cluster store.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering},
        Arc, LazyLock,
    },
    task::Poll,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use redis::{
    aio::{ConnectionLike, ConnectionManager},
    Cmd, Pipeline, RedisFuture, RedisResult, Script, Value,
};

use crate::redis::keys::{KeyLayout, Keys};
use crate::redis::pipeline::{self, write_command, Answer, AutoPipeline};
use crate::store::{SaveOp, SaveOutcome, SessionData, StoreError};

/// Default for [`RedisStore::with_timeout`].
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// A connection attempt gives up after this long (a reachable Redis answers in milliseconds).
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_millis(500);
/// [`RedisStore::connect`] makes this many attempts, 50, 100, 200, 400 ms apart, so that a
/// Redis starting at the same time as the app is found.
const CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_FIRST_DELAY: Duration = Duration::from_millis(50);

/// Saves a new session (or, with `replaces`, any session) in one atomic step.
///
/// KEYS: the session key; then the index key if `ARGV[5]` is "1"; then, if `ARGV[6]` (the old id)
/// is not "", the old session key and, if `ARGV[7]` is "1", the old index key.
/// ARGV: `[1]` JSON, `[2]` max_age in ms, `[3]` id, `[4]` existing "1"/"0", `[5]` indexed,
/// `[6]` old id or "", `[7]` old indexed, `[8]` the index's TTL in ms when it is set (see
/// [`index_ttl_millis`]).
/// Returns 1 when written, 0 when `existing` and the session is gone (nothing written).
///
/// The index score is the expiry time in Unix seconds, from Redis's own clock (`TIME`), the
/// clock that expires the keys: app servers' clocks never disagree with it. Since Redis 5
/// scripts are replicated by their effects, so `TIME` before a write is allowed.
const SAVE_LUA: &str = r"
local key = KEYS[1]
local n = 2
local index, old_key, old_index
if ARGV[5] == '1' then index = KEYS[n]; n = n + 1 end
if ARGV[6] ~= '' then
  old_key = KEYS[n]; n = n + 1
  if ARGV[7] == '1' then old_index = KEYS[n] end
end
if ARGV[4] == '1' then
  if not redis.call('SET', key, ARGV[1], 'XX', 'KEEPTTL') then return 0 end
else
  local ttl = tonumber(ARGV[2])
  redis.call('SET', key, ARGV[1], 'PX', ttl)
  if index then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    -- -2: no index yet; -1: an index without a TTL (made by uapi, which sets none).
    local pttl = redis.call('PTTL', index)
    redis.call('ZADD', index, now + ttl / 1000, ARGV[3])
    redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
    -- New index, or one that would die before this session: give it a TTL, never shorter.
    -- One without a TTL stays so.
    if pttl == -2 or (pttl >= 0 and pttl < ttl) then
      redis.call('PEXPIRE', index, ARGV[8])
    end
  end
end
if old_key and old_key ~= key then
  redis.call('DEL', old_key)
  if old_index then redis.call('ZREM', old_index, ARGV[6]) end
end
return 1
";

/// Extends an index's TTL if it would die before a new session in it (the follow-up of a
/// pipelined save, see [`Core::save_new_pipelined`]). `KEYS[1]`: the index. `ARGV[1]`: the
/// session's TTL in ms; `ARGV[2]`: the index's new TTL in ms. An index without a TTL (made by
/// uapi) or gone (removed meanwhile) is left alone. Returns 1 when it extended the TTL.
const EXTEND_INDEX_LUA: &str = r"
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 and pttl < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes every session of a namespace and its index; returns how many sessions existed.
///
/// `KEYS[1]`: the index. `ARGV[1]`: the namespace's session key prefix (`{prefix}{ns}:s:`), to
/// which each member is appended. `DEL` takes at most 1000 keys at a time (Lua's `unpack` has
/// a stack limit of a few thousand). Members that already expired count 0 (DEL of a missing
/// key). The script builds the session keys itself: fine on one Redis; a cluster layout must
/// put a namespace's sessions in its index's hash slot (a hash tag on the namespace).
const REMOVE_NAMESPACE_LUA: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local deleted = 0
for i = 1, #ids, 1000 do
  local batch = {}
  for j = i, math.min(i + 999, #ids) do batch[#batch + 1] = ARGV[1] .. ids[j] end
  deleted = deleted + redis.call('DEL', unpack(batch))
end
redis.call('DEL', KEYS[1])
return deleted
";

/// Deletes every session of a namespace and its index, on a cluster: like
/// [`REMOVE_NAMESPACE_LUA`], but every key it deletes is declared, so that Redis Cluster checks
/// them all (a slot being migrated answers `ASK` or `TRYAGAIN`, which the client follows,
/// instead of the script missing sessions that already moved).
///
/// `KEYS[1]`: the index; `KEYS[2..]`: the session keys of the ids the caller read from it.
/// `ARGV[1]`: the namespace's session key prefix. Returns -1, deleting nothing, when the index
/// now holds an id whose key was not declared (a session was added meanwhile): the caller
/// reads the index again.
const REMOVE_LISTED_LUA: &str = r"
local declared = {}
for i = 2, #KEYS do declared[KEYS[i]] = true end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  if not declared[ARGV[1] .. id] then return -1 end
end
local deleted = 0
for i = 2, #KEYS, 1000 do
  deleted = deleted + redis.call('DEL', unpack(KEYS, i, math.min(i + 999, #KEYS)))
end
redis.call('DEL', KEYS[1])
return deleted
";

/// Deletes one session and its index entry; returns how many keys were deleted (0 or 1).
/// `KEYS[1]`: the session; `KEYS[2]`, if given: the index. `ARGV[1]`: the id.
const REMOVE_LUA: &str = r"
local deleted = redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
return deleted
";

/// The live ids of an index, by Redis's clock (see [`SAVE_LUA`]). `KEYS[1]`: the index.
const LIST_NAMESPACE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.6f', now), '+inf')
";

static SAVE: LazyLock<Script> = LazyLock::new(|| Script::new(SAVE_LUA));
static EXTEND_INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_INDEX_LUA));
static REMOVE_NAMESPACE: LazyLock<Script> = LazyLock::new(|| Script::new(REMOVE_NAMESPACE_LUA));
static LIST_NAMESPACE: LazyLock<Script> = LazyLock::new(|| Script::new(LIST_NAMESPACE_LUA));
static REMOVE_LISTED: LazyLock<Script> = LazyLock::new(|| Script::new(REMOVE_LISTED_LUA));
static REMOVE: LazyLock<Script> = LazyLock::new(|| Script::new(REMOVE_LUA));

/// How often the cluster's `remove_namespace` reads the index again when sessions keep being
/// added to it between the read and the delete, before giving up.
const REMOVE_LISTED_ATTEMPTS: usize = 10;

/// A [`SessionStore`](crate::store::SessionStore) in one Redis (uapi's `AsyncRedisSessionStore`), in uapi's key layout so
/// that a Python uapi service can share the sessions.
///
/// - A session is a JSON object of strings at `{prefix}{namespace}:s:{id}` whose TTL is the
///   session's `max_age`, kept across updates. A namespace's index is the sorted set
///   `{prefix}{namespace}:s` of ids scored by expiry time (Unix seconds, by Redis's clock:
///   read in the Lua script, or estimated from the `TIME` that ends some saves, within a
///   round trip). Namespaces that cannot appear raw in a cookie are percent-encoded; plain
///   ones are as uapi writes them. Anonymous sessions (namespace `""`) are not indexed.
/// - An index made here has a TTL, so that it dies with its sessions (uapi's have none, and an
///   index without one is left so): when a new session would outlive it, its TTL becomes the
///   session's lifetime and a quarter more. So a namespace's logins extend it about once a
///   quarter lifetime rather than each time, and it outlives its newest session by at most a
///   quarter lifetime.
/// - Every call is one round trip: a load is a `GET`, an update an atomic `SET … XX KEEPTTL`;
///   a new session (and the deletion of the one a login replaces) is one pipelined batch of
///   plain commands in order, the session first, then its index entry, then the deletion, or
///   a Lua script (a cluster, a user's `ConnectionManager`). Removals are scripts. A new index,
///   and an index whose TTL must grow, take a second round trip. After a Redis restart a
///   script is loaded once more (`NOSCRIPT`, `SCRIPT LOAD`, `EVALSHA`).
/// - Every call is bounded by [`with_timeout`](Self::with_timeout): a Redis that is down or
///   stuck is a [`StoreError`], never a hang.
/// - One connection carries every call, and the calls that are ready at the same moment are
///   written to Redis together, in one `write` (auto-pipelining): Redis then reads and answers
///   a batch at once, which is most of its work per `GET` under load. When the connection
///   breaks, the next call opens a new one. Cloning the store is cheap and shares it.
///
/// Needs a Tokio runtime (with the time driver) and Redis 6.0 or newer (`KEEPTTL`).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use sessions::redis::{configure_async_sessions, AsyncSessionConfig, RedisStore};
/// use sessions::App;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let store = RedisStore::connect("redis://127.0.0.1:6379/")
///         .await?
///         .with_key_prefix("myapp:")
///         .with_timeout(Duration::from_millis(500));
///     let mut app = App::new();
///     let sessions = configure_async_sessions(&mut app, store, AsyncSessionConfig::default());
///     app.add_state(sessions);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    core: Core<StoreConnection>,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `redis+unix:///path/to/socket[?db=N&pass=...]`), speaking RESP2.
    ///
    /// The connection auto-pipelines: the calls that are ready at the same moment (the
    /// requests of one wake-up of the runtime) are written in one `write`, and their replies
    /// read back together. A general-purpose multiplexed connection writes each command as
    /// soon as its task runs; on Tokio's multi-threaded runtime that is one command per write,
    /// and Redis then spends more than twice the CPU per command.
    ///
    /// Each connection attempt times out after 500 ms. When the connection breaks (Redis
    /// restarted, a network error, or no reply for 5 s while calls wait: a peer gone without a
    /// reset), the calls in flight fail, since their command may or may not have run, and the
    /// next call connects again; while Redis is unreachable, calls fail
    /// at once for 50 ms after each failed attempt rather than each trying again. Responses
    /// have no timeout of their own: the store's [`with_timeout`](Self::with_timeout) bounds
    /// every call, including one waiting for a connection. Connecting here makes 5 attempts,
    /// 50 ms to 400 ms apart (about a second when nothing listens), so that a Redis started
    /// along with the app is found.
    ///
    /// For TLS (`rediss://`) or other connection settings, build a [`ConnectionManager`] and
    /// use [`from_connection_manager`](Self::from_connection_manager).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the URL is invalid or Redis cannot be reached now (the
    /// first connection is made before this returns, so a misconfiguration shows at
    /// start-up), or refuses the URL's password or database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let info = client.get_connection_info().clone();
        let mut delay = CONNECT_FIRST_DELAY;
        let mut attempt = 1;
        let connection = loop {
            match AutoPipeline::connect(info.clone(), CONNECTION_TIMEOUT).await {
                Ok(connection) => break connection,
                Err(err) if attempt < CONNECT_ATTEMPTS && is_transient(&err) => {
                    tracing::debug!(attempt, error = %err, "session store: Redis not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(err) => return Err(unavailable(err)),
            }
        };
        let core = Core::new(
            StoreConnection::Pipelined(connection),
            KeyLayout::Uapi,
            false,
        );
        core.pipeline_new_saves().await;
        Ok(Self { core })
    }

    /// A store on a [`ConnectionManager`] you configured yourself (TLS, RESP3, other
    /// reconnection settings). Calls on it are not auto-pipelined and new sessions are saved
    /// by the Lua script (see [`connect`](Self::connect)).
    pub fn from_connection_manager(connection: ConnectionManager) -> Self {
        Self {
            core: Core::new(StoreConnection::Manager(connection), KeyLayout::Uapi, false),
        }
    }

    /// Prefixes every key this store reads or writes (sessions and indexes alike; uapi's
    /// `clear_session` forgot it). Defaults to `""`, as uapi's `redis_key_prefix`.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.core = self.core.with_key_prefix(prefix);
        self
    }

    /// The key layout. Defaults to [`KeyLayout::Uapi`], uapi's layout, so that a Python uapi
    /// service can share the sessions; [`KeyLayout::Cluster`] writes the layout of
    /// [`RedisClusterStore`](crate::redis::RedisClusterStore) into one Redis, for example to
    /// move to a cluster later with `redis-cli --cluster import` (see
    /// [the cluster guide](crate::redis::RedisClusterStore#migrating-from-the-uapi-layout)).
    ///
    /// Sessions written in one layout are not found in the other.
    #[must_use]
    pub fn with_key_layout(mut self, layout: KeyLayout) -> Self {
        self.core = self.core.with_key_layout(layout);
        self
    }

    /// Bounds every call to Redis: a call that takes longer fails with
    /// [`StoreError::Timeout`]. Defaults to 250 ms (uapi has none).
    ///
    /// The bound is on the whole call, all its round trips. Calls on the store's own
    /// connection arm no timer each: their commands carry the call's deadline and the
    /// connection's watchdog task answers the ones still waiting when it passes. Clones with
    /// different timeouts can share one connection.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.core.timeout = timeout;
        self
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the ConnectionManager: its client's connection info may hold a password.
        let mut out = f.debug_struct("RedisStore");
        self.core.debug_fields(&mut out);
        out.finish_non_exhaustive()
    }
}

/// The connection of a [`RedisStore`]: its own auto-pipelining one, or a user's
/// [`ConnectionManager`].
#[derive(Clone)]
enum StoreConnection {
    Pipelined(AutoPipeline),
    Manager(ConnectionManager),
}

impl ConnectionLike for StoreConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pipelined(connection) => connection.req_packed_command(cmd),
            Self::Manager(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pipelined(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Manager(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Pipelined(connection) => connection.get_db(),
            Self::Manager(connection) => connection.get_db(),
        }
    }
}

/// A connection of a [`Core`]: through redis-rs's commands and scripts, and, when it is the
/// store's own [`AutoPipeline`], by writing RESP directly (no `Cmd` to build and pack, the
/// store's hot path).
pub(crate) trait DirectConnection: ConnectionLike + Clone + Send + Sync + 'static {
    /// The store's own connection, if this is it.
    fn direct(&self) -> Option<&AutoPipeline> {
        None
    }
}

impl DirectConnection for StoreConnection {
    fn direct(&self) -> Option<&AutoPipeline> {
        match self {
            Self::Pipelined(connection) => Some(connection),
            Self::Manager(_) => None,
        }
    }
}

/// Whether a failed connection attempt is worth another (nothing listens yet, or it timed
/// out), rather than a configuration Redis refused (a wrong password, say).
fn is_transient(err: &redis::RedisError) -> bool {
    err.is_io_error() || err.is_timeout() || err.is_connection_refusal()
}

/// Implements [`SessionStore`](crate::store::SessionStore) for a store type with a `core: Core<_>` field, by delegation.
macro_rules! session_store_via_core {
    ($store:ty) => {
        impl $crate::store::SessionStore for $store {
            fn load<'a>(
                &'a self,
                namespace: &'a str,
                id: &'a str,
            ) -> $crate::store::BoxFuture<
                'a,
                Result<Option<$crate::store::SessionData>, $crate::store::StoreError>,
            > {
                Box::pin(self.core.load(namespace, id))
            }

            fn save<'a>(
                &'a self,
                op: $crate::store::SaveOp<'a>,
            ) -> $crate::store::BoxFuture<
                'a,
                Result<$crate::store::SaveOutcome, $crate::store::StoreError>,
            > {
                Box::pin(self.core.save(op))
            }

            fn remove<'a>(
                &'a self,
                namespace: &'a str,
                id: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<bool, $crate::store::StoreError>> {
                Box::pin(self.core.remove(namespace, id))
            }

            fn remove_namespace<'a>(
                &'a self,
                namespace: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<u64, $crate::store::StoreError>> {
                Box::pin(self.core.remove_namespace(namespace))
            }

            fn list_namespace<'a>(
                &'a self,
                namespace: &'a str,
            ) -> $crate::store::BoxFuture<'a, Result<Vec<String>, $crate::store::StoreError>> {
                Box::pin(self.core.list_namespace(namespace))
            }
        }
    };
}
pub(crate) use session_store_via_core;

session_store_via_core!(RedisStore);

/// The logic of a Redis session store over any connection: the one Redis of [`RedisStore`]
/// (its [`AutoPipeline`] or a [`ConnectionManager`]) or the cluster of
/// [`RedisClusterStore`](crate::redis::RedisClusterStore). Same semantics, same timeouts; the
/// hot path writes RESP directly on an [`AutoPipeline`] ([`DirectConnection`]).
#[derive(Clone)]
pub(crate) struct Core<C> {
    connection: C,
    keys: Arc<Keys>,
    pub(crate) timeout: Duration,
    /// On a Redis Cluster: a login whose old session is in another hash slot is two steps, and
    /// `remove_namespace` declares every key it deletes.
    cluster: bool,
    /// How new sessions are saved, shared by the clones.
    saves: Arc<NewSaves>,
}

/// How [`Core`] saves new sessions.
///
/// On the store's own connection to one Redis, in a pipelined batch of plain commands
/// ([`Core::save_new_pipelined`]): Redis spends less than half the CPU time of the equivalent
/// Lua script ([`SAVE_LUA`]), whose invocation alone costs more than the commands it runs; a
/// `MULTI`/`EXEC` around the batch cost Redis about 0.6 µs more per login under load (see
/// BENCHMARKS.md), for an isolation that the order of the commands makes unneeded. A batch
/// cannot read Redis's clock before writing the index score, so the store keeps an estimate
/// of Redis's clock from a `TIME` at the end of every [`READ_CLOCK_EVERY`]-th batch (off by at
/// most a round trip). Otherwise (a cluster, a user's `ConnectionManager`), the script.
#[derive(Debug, Default)]
pub(crate) struct NewSaves {
    pipelined: AtomicBool,
    /// Redis's clock minus this machine's, in microseconds, as of the last `TIME`.
    clock_offset_micros: AtomicI64,
    /// New indexed sessions saved so far: every [`TRIM_EVERY`]-th trims its index.
    count: AtomicU32,
    /// Batches so far: every [`READ_CLOCK_EVERY`]-th reads Redis's clock.
    batches: AtomicU32,
}

/// A pipelined save reads Redis's clock (`TIME`) once in this many: clocks drift by
/// microseconds per second, and the estimate only needs to be within a second or so.
const READ_CLOCK_EVERY: u32 = 64;

/// A pipelined save trims the expired ids of its namespace's index once in this many saves
/// (the script does it every time): the index is read by score anyway, so trimming only bounds
/// its size, and an active user's index is trimmed often enough.
const TRIM_EVERY: u32 = 32;

/// Ids whose score (expiry) is this much before Redis's clock, as estimated here, are trimmed:
/// the margin covers the estimate's error, so that no live session leaves its index.
const TRIM_MARGIN_MILLIS: i64 = 1000;

fn unix_micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

impl NewSaves {
    /// Redis's clock, estimated, in Unix milliseconds.
    fn redis_now_millis(&self) -> i64 {
        (unix_micros_now() + self.clock_offset_micros.load(Ordering::Relaxed)) / 1000
    }

    /// Records Redis's clock from a `TIME` reply just received.
    fn observe_time(&self, time: &Value) {
        let Value::Array(parts) = time else { return };
        let field = |i: usize| -> Option<i64> {
            match parts.get(i)? {
                Value::BulkString(digits) => std::str::from_utf8(digits).ok()?.parse().ok(),
                Value::Int(n) => Some(*n),
                _ => None,
            }
        };
        if let (Some(secs), Some(micros)) = (field(0), field(1)) {
            let redis = secs.saturating_mul(1_000_000).saturating_add(micros);
            self.clock_offset_micros
                .store(redis.saturating_sub(unix_micros_now()), Ordering::Relaxed);
        }
    }
}

impl<C: DirectConnection> Core<C> {
    pub(crate) fn new(connection: C, layout: KeyLayout, cluster: bool) -> Self {
        Self {
            connection,
            keys: Arc::new(Keys::with_layout("", layout)),
            timeout: DEFAULT_TIMEOUT,
            cluster,
            saves: Arc::default(),
        }
    }

    /// Saves new sessions in pipelined batches from now on if the connection is the store's
    /// own (one Redis, never a cluster), once it has read Redis's clock. If that fails, the
    /// script.
    pub(crate) async fn pipeline_new_saves(&self) {
        if self.connection.direct().is_none() {
            return;
        }
        let mut connection = self.connection.clone();
        let time = redis::cmd("TIME");
        match self
            .call("clock", time.query_async::<Value>(&mut connection))
            .await
        {
            Ok(time) => {
                self.saves.observe_time(&time);
                self.saves.pipelined.store(true, Ordering::Relaxed);
            }
            Err(err) => tracing::debug!(
                error = %err,
                "session store: Redis's clock unread; saving new sessions with a Lua script"
            ),
        }
    }

    pub(crate) fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.keys = Arc::new(Keys::with_layout(prefix, self.keys.layout()));
        self
    }

    pub(crate) fn with_key_layout(mut self, layout: KeyLayout) -> Self {
        self.keys = Arc::new(Keys::with_layout(self.keys.prefix(), layout));
        self
    }

    /// The fields `Debug` shows: never the connection (its connection info may hold a
    /// password).
    pub(crate) fn debug_fields(&self, out: &mut fmt::DebugStruct<'_, '_>) {
        out.field("key_prefix", &self.keys.prefix())
            .field("key_layout", &self.keys.layout())
            .field("timeout", &self.timeout);
    }

    /// Runs one store call (one or more Redis round trips) under the store's timeout, mapping
    /// its failure to a [`StoreError`].
    fn call<F: Future>(&self, what: &'static str, call: F) -> Timed<F> {
        // A timeout too long for `Instant` (`Duration::MAX` as "never") is a year.
        let now = Instant::now();
        let deadline = now
            .checked_add(self.timeout)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 60 * 60)))
            .unwrap_or(now);
        Timed {
            call,
            deadline,
            fallback: None,
            what,
            timeout: self.timeout,
        }
    }
}

pin_project_lite::pin_project! {
    /// A Redis call under a deadline, its failure mapped to a [`StoreError`] (see
    /// [`Core::call`]).
    ///
    /// Commands sent through the store's own connection carry the deadline, and the
    /// connection's watchdog answers those still waiting when it passes (see
    /// [`pipeline::with_deadline`]): no timer per call. A call that waits on anything else
    /// (a `ConnectionManager`, the Lua script through redis-rs, a connection being opened)
    /// gets a Tokio timer of its own, boxed, as it is rare.
    ///
    /// A future of its own rather than an `async` block, which would hold the call twice (as
    /// captured and as awaited) and double the size of every boxed save.
    struct Timed<F> {
        #[pin]
        call: F,
        deadline: Instant,
        fallback: Option<Pin<Box<tokio::time::Sleep>>>,
        what: &'static str,
        timeout: Duration,
    }
}

impl<F, T> Future for Timed<F>
where
    F: Future<Output = RedisResult<T>>,
{
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (what, timeout) = (*this.what, *this.timeout);
        let timed_out = || {
            tracing::debug!(call = what, ?timeout, "session store: Redis timed out");
            Poll::Ready(Err(StoreError::Timeout(timeout)))
        };
        let (result, carried) = pipeline::with_deadline(*this.deadline, || this.call.poll(cx));
        match result {
            Poll::Ready(Ok(value)) => Poll::Ready(Ok(value)),
            Poll::Ready(Err(err)) if pipeline::is_deadline_error(&err) => timed_out(),
            Poll::Ready(Err(err)) => {
                tracing::debug!(call = what, error = %err, "session store: Redis call failed");
                Poll::Ready(Err(unavailable(err)))
            }
            Poll::Pending => {
                if !carried && this.fallback.is_none() {
                    let deadline = tokio::time::Instant::from_std(*this.deadline);
                    *this.fallback = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
                let expired = this
                    .fallback
                    .as_mut()
                    .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
                if expired {
                    timed_out()
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

/// Unix milliseconds written as seconds with three decimals (`1764115200.123`), an index
/// score, without allocating.
struct Seconds {
    text: [u8; 32],
    len: usize,
}

impl Seconds {
    fn from_millis(millis: i64) -> Self {
        let mut text = [0; 32];
        let mut len = 0;
        let mut push = |bytes: &[u8]| {
            text[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        if millis < 0 {
            push(b"-");
        }
        let millis = millis.unsigned_abs();
        push(itoa::Buffer::new().format(millis / 1000).as_bytes());
        let fraction = millis % 1000;
        push(&[
            b'.',
            b'0' + (fraction / 100) as u8,
            b'0' + (fraction / 10 % 10) as u8,
            b'0' + (fraction % 10) as u8,
        ]);
        Self { text, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

fn unexpected_redis_reply(command: &str, reply: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from Redis",
        format!("{command}: {reply:?}"),
    ))
}

fn unexpected_reply(command: &str, reply: &Value) -> StoreError {
    unavailable(unexpected_redis_reply(command, reply))
}

fn unavailable(err: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

/// The longest TTL, in milliseconds, that Redis accepts without overflowing.
const MAX_TTL_MILLIS: u64 = i64::MAX as u64 / 1000;

/// `max_age` in milliseconds for `PX`/`PEXPIRE`: at least 1 (Redis refuses 0) and at most
/// [`MAX_TTL_MILLIS`].
fn max_age_millis(max_age: Duration) -> u64 {
    u64::try_from(max_age.as_millis())
        .unwrap_or(MAX_TTL_MILLIS)
        .clamp(1, MAX_TTL_MILLIS)
}

/// The TTL an index gets when a new session of `ttl_millis` would outlive it: that and a
/// quarter more, so that the next logins of the namespace, for a quarter of a lifetime, find
/// it long enough and leave it alone (see [`RedisStore`]).
fn index_ttl_millis(ttl_millis: u64) -> u64 {
    ttl_millis
        .saturating_add(ttl_millis / 4)
        .min(MAX_TTL_MILLIS)
}

fn flag(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        "0"
    }
}

impl<C: DirectConnection> Core<C> {
    pub(crate) async fn load(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<SessionData>, StoreError> {
        let key = self.keys.session_key(namespace, id);
        let payload: Option<Vec<u8>> = match self.connection.direct() {
            Some(direct) => {
                // Queued when the call is first polled, so that the command carries the
                // call's deadline.
                let get = async {
                    direct
                        .query(|out| write_command(out, &[b"GET", key.as_bytes()]))
                        .await
                };
                match self.call("load", get).await? {
                    Value::Nil => None,
                    Value::BulkString(payload) => Some(payload),
                    other => return Err(unexpected_reply("GET", &other)),
                }
            }
            None => {
                let mut connection = self.connection.clone();
                let cmd = redis::cmd("GET").arg(&key).clone();
                // Boxed, as the rare paths of `save_json` are: keeps the common path's future
                // small.
                self.call("load", Box::pin(cmd.query_async(&mut connection)))
                    .await?
            }
        };
        let Some(payload) = payload else {
            return Ok(None);
        };
        match crate::store::session_from_json(&payload) {
            Ok(data) => Ok(Some(data)),
            Err(err) => {
                // Never log a whole id: it is the bearer's credential.
                let id_start = id.get(..8).unwrap_or_default();
                tracing::warn!(
                    namespace,
                    id_start,
                    error = %err,
                    "session store: corrupt session payload, treated as no session"
                );
                Ok(None)
            }
        }
    }

    pub(crate) async fn save(&self, op: SaveOp<'_>) -> Result<SaveOutcome, StoreError> {
        let json = serde_json::to_string(op.data).map_err(|e| StoreError::Unavailable(e.into()))?;
        self.call("save", self.save_json(&op, &json)).await
    }

    /// Saves through the common paths (direct RESP: an update in place, or a new session in a
    /// pipelined batch) inline, and through the rare ones (a user's `ConnectionManager`, the Lua
    /// script, a cluster's second step) in futures of their own: an `async fn`'s future is as
    /// large as its largest path, and the rare paths' redis-rs futures made every save's future
    /// 4 KiB, an allocation large enough to make glibc consolidate its free lists each time.
    async fn save_json(&self, op: &SaveOp<'_>, json: &str) -> RedisResult<SaveOutcome> {
        let key = self.keys.session_key(op.namespace, op.id);
        let direct = self.connection.direct();
        if op.existing && op.replaces.is_none() {
            // Update in place: keep the TTL, never recreate a session that is gone.
            let Some(direct) = direct else {
                return Box::pin(self.update_via_manager(&key, json)).await;
            };
            let set = [
                &b"SET"[..],
                key.as_bytes(),
                json.as_bytes(),
                b"XX",
                b"KEEPTTL",
            ];
            let reply = direct.query(|out| write_command(out, &set)).await?;
            return Ok(if reply == Value::Nil {
                SaveOutcome::Gone
            } else {
                SaveOutcome::Saved
            });
        }
        // On a cluster, a script touches one hash slot: an old session in another slot (an
        // anonymous session, another user's) is deleted in a second step, once the new one is
        // written. On one Redis the whole login is one pipelined batch, or one script.
        let (together, apart) = match op.replaces {
            Some((old_namespace, _)) if self.cluster => {
                if self.keys.same_slot(op.namespace, old_namespace) {
                    (op.replaces, None)
                } else {
                    (None, op.replaces)
                }
            }
            replaces => (replaces, None),
        };
        if let Some(direct) =
            direct.filter(|_| !op.existing && self.saves.pipelined.load(Ordering::Relaxed))
        {
            self.save_new_pipelined(direct, op, json, &key, together)
                .await?;
            if apart.is_some() {
                Box::pin(self.remove_apart(op, apart)).await?;
            }
            return Ok(SaveOutcome::Saved);
        }
        Box::pin(self.save_with_script(op, json, &key, together, apart)).await
    }

    /// An update in place through a user's `ConnectionManager`.
    async fn update_via_manager(&self, key: &str, json: &str) -> RedisResult<SaveOutcome> {
        let cmd = redis::cmd("SET")
            .arg(key)
            .arg(json)
            .arg("XX")
            .arg("KEEPTTL")
            .clone();
        let reply: Option<String> = cmd.query_async(&mut self.connection.clone()).await?;
        Ok(if reply.is_some() {
            SaveOutcome::Saved
        } else {
            SaveOutcome::Gone
        })
    }

    /// A save through [`SAVE_LUA`]: any save when the store's clock estimate is missing,
    /// through a user's `ConnectionManager`, or on a cluster.
    async fn save_with_script(
        &self,
        op: &SaveOp<'_>,
        json: &str,
        key: &str,
        together: Option<(&str, &str)>,
        apart: Option<(&str, &str)>,
    ) -> RedisResult<SaveOutcome> {
        let indexed = !op.existing && !op.namespace.is_empty();
        let mut invocation = SAVE.key(key);
        if indexed {
            invocation.key(self.keys.index_key(op.namespace));
        }
        let (old_id, old_indexed) = match together {
            Some((old_namespace, old_id)) => {
                invocation.key(self.keys.session_key(old_namespace, old_id));
                let old_indexed = !old_namespace.is_empty();
                if old_indexed {
                    invocation.key(self.keys.index_key(old_namespace));
                }
                (old_id, old_indexed)
            }
            None => ("", false),
        };
        invocation
            .arg(json)
            .arg(max_age_millis(op.max_age))
            .arg(op.id)
            .arg(flag(op.existing))
            .arg(flag(indexed))
            .arg(old_id)
            .arg(flag(old_indexed))
            .arg(index_ttl_millis(max_age_millis(op.max_age)));
        let written: i64 = invocation
            .invoke_async(&mut self.connection.clone())
            .await?;
        if written != 1 {
            return Ok(SaveOutcome::Gone);
        }
        self.remove_apart(op, apart).await?;
        Ok(SaveOutcome::Saved)
    }

    /// On a cluster, deletes the session a login replaced when it is in another hash slot.
    async fn remove_apart(&self, op: &SaveOp<'_>, apart: Option<(&str, &str)>) -> RedisResult<()> {
        if let Some((old_namespace, old_id)) = apart {
            if (old_namespace, old_id) != (op.namespace, op.id) {
                self.remove_script(old_namespace, old_id).await?;
            }
        }
        Ok(())
    }

    /// Saves a new session (and deletes the one it replaces) in one pipelined batch: what
    /// [`SAVE_LUA`] does for a new session, see [`NewSaves`].
    ///
    /// The commands run in order, without `MULTI`/`EXEC`, and need no isolation: the session
    /// is written first, so that a concurrent `remove_namespace` either finds it in the index
    /// or runs before it is indexed (a login after the removal); if the connection breaks
    /// midway, what ran is at worst a session that no client has the cookie of, which expires,
    /// or an index entry for a session that is not there, which counts for nothing. An error
    /// reply (`WRONGTYPE` on the index, say) fails the save.
    ///
    /// The `PTTL` of the index, read before its `ZADD`, decides the follow-up: a new index
    /// (-2) gets its TTL in a second step, and if that fails it has none, as uapi's indexes;
    /// an index that would die before this session gets a longer TTL from [`EXTEND_INDEX_LUA`],
    /// and if that fails the save fails, since `remove_namespace` could miss the session.
    async fn save_new_pipelined(
        &self,
        direct: &AutoPipeline,
        op: &SaveOp<'_>,
        json: &str,
        key: &str,
        replaces: Option<(&str, &str)>,
    ) -> RedisResult<()> {
        // Queued before the first await, so that nothing it encodes from is kept across it.
        let (answer, read_clock) = self.queue_new_save(direct, op, json, key, replaces);
        let replies = match answer.await? {
            Value::Array(replies) => replies,
            other => return Err(unexpected_redis_reply("the save's pipeline", &other)),
        };
        if read_clock {
            if let Some(time) = replies.last() {
                self.saves.observe_time(time);
            }
        }
        if op.namespace.is_empty() {
            return Ok(());
        }
        let ttl = max_age_millis(op.max_age);
        match replies.get(1) {
            Some(Value::Int(-2)) => {
                let index = self.keys.index_key(op.namespace);
                let mut digits = itoa::Buffer::new();
                let index_ttl = digits.format(index_ttl_millis(ttl)).as_bytes();
                let expire = [&b"PEXPIRE"[..], index.as_bytes(), index_ttl];
                let follow_up = direct.query(|out| write_command(out, &expire));
                if let Err(err) = follow_up.await {
                    tracing::warn!(
                        error = %err,
                        "session store: a new namespace index got no TTL; it stays until removed"
                    );
                }
            }
            Some(&Value::Int(left)) if u64::try_from(left).is_ok_and(|left| left < ttl) => {
                Box::pin(self.extend_index(op.namespace, ttl)).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs [`EXTEND_INDEX_LUA`] on a namespace's index for a new session of `ttl_millis`.
    async fn extend_index(&self, namespace: &str, ttl_millis: u64) -> RedisResult<()> {
        let mut invocation = EXTEND_INDEX.key(self.keys.index_key(namespace));
        invocation.arg(ttl_millis).arg(index_ttl_millis(ttl_millis));
        let _extended: i64 = invocation
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Queues the batch of [`save_new_pipelined`](Self::save_new_pipelined); returns its
    /// answer (every reply, in order) and whether it ends with `TIME`.
    fn queue_new_save(
        &self,
        direct: &AutoPipeline,
        op: &SaveOp<'_>,
        json: &str,
        key: &str,
        replaces: Option<(&str, &str)>,
    ) -> (Answer, bool) {
        let mut digits = itoa::Buffer::new();
        let ttl_millis = max_age_millis(op.max_age);
        let ttl = digits.format(ttl_millis).as_bytes();
        let index =
            (!op.namespace.is_empty()).then(|| self.keys.index_key_in(key, op.namespace, op.id));
        let now = self.saves.redis_now_millis();
        let expiry = Seconds::from_millis(now.saturating_add_unsigned(ttl_millis));
        let trim = index.is_some()
            && self
                .saves
                .count
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(TRIM_EVERY);
        let old =
            replaces
                .filter(|&old| old != (op.namespace, op.id))
                .map(|(old_namespace, old_id)| {
                    let old_index =
                        (!old_namespace.is_empty()).then(|| self.keys.index_key(old_namespace));
                    (
                        self.keys.session_key(old_namespace, old_id),
                        old_index,
                        old_id,
                    )
                });
        let read_clock = self
            .saves
            .batches
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(READ_CLOCK_EVERY);
        // SET, [PTTL, ZADD, [ZREMRANGEBYSCORE]], [DEL, [ZREM]], [TIME]
        let commands = 1
            + usize::from(read_clock)
            + index.as_ref().map_or(0, |_| 2 + usize::from(trim))
            + old
                .as_ref()
                .map_or(0, |(_, old_index, _)| 1 + usize::from(old_index.is_some()));
        let encode = |out: &mut Vec<u8>| {
            write_command(out, &[b"SET", key.as_bytes(), json.as_bytes(), b"PX", ttl]);
            if let Some(index) = &index {
                let index = index.as_bytes();
                write_command(out, &[b"PTTL", index]);
                write_command(out, &[b"ZADD", index, expiry.as_bytes(), op.id.as_bytes()]);
                if trim {
                    let before = Seconds::from_millis(now - TRIM_MARGIN_MILLIS);
                    write_command(
                        out,
                        &[b"ZREMRANGEBYSCORE", index, b"-inf", before.as_bytes()],
                    );
                }
            }
            if let Some((old_key, old_index, old_id)) = &old {
                write_command(out, &[b"DEL", old_key.as_bytes()]);
                if let Some(old_index) = old_index {
                    write_command(out, &[b"ZREM", old_index.as_bytes(), old_id.as_bytes()]);
                }
            }
            if read_clock {
                write_command(out, &[b"TIME"]);
            }
        };
        (direct.query_all(commands, encode), read_clock)
    }

    /// Deletes a session and its index entry in one script (one slot); returns whether the
    /// session existed.
    async fn remove_script(&self, namespace: &str, id: &str) -> RedisResult<bool> {
        let mut connection = self.connection.clone();
        let mut invocation = REMOVE.key(self.keys.session_key(namespace, id));
        if !namespace.is_empty() {
            invocation.key(self.keys.index_key(namespace));
        }
        invocation.arg(id);
        let deleted: u64 = invocation.invoke_async(&mut connection).await?;
        Ok(deleted > 0)
    }

    pub(crate) async fn remove(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        self.call("remove", self.remove_script(namespace, id)).await
    }

    pub(crate) async fn remove_namespace(&self, namespace: &str) -> Result<u64, StoreError> {
        if namespace.is_empty() {
            return Ok(0);
        }
        if self.cluster {
            return self
                .call("remove_namespace", self.remove_listed(namespace))
                .await;
        }
        let mut connection = self.connection.clone();
        let mut invocation = REMOVE_NAMESPACE.key(self.keys.index_key(namespace));
        invocation.arg(self.keys.session_key_prefix(namespace));
        self.call("remove_namespace", invocation.invoke_async(&mut connection))
            .await
    }

    /// `remove_namespace` on a cluster: read the index, then delete the listed sessions and
    /// the index in a script that declares every key (see [`REMOVE_LISTED_LUA`]).
    async fn remove_listed(&self, namespace: &str) -> RedisResult<u64> {
        let index = self.keys.index_key(namespace);
        let prefix = self.keys.session_key_prefix(namespace);
        let mut connection = self.connection.clone();
        for _ in 0..REMOVE_LISTED_ATTEMPTS {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(0)
                .arg(-1)
                .query_async(&mut connection)
                .await?;
            let mut invocation = REMOVE_LISTED.key(&index);
            for id in &ids {
                invocation.key(format!("{prefix}{id}"));
            }
            invocation.arg(&prefix);
            let deleted: i64 = invocation.invoke_async(&mut connection).await?;
            if let Ok(deleted) = u64::try_from(deleted) {
                return Ok(deleted);
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "remove_namespace: sessions kept being added to the namespace",
        )))
    }

    pub(crate) async fn list_namespace(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        if namespace.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let invocation = LIST_NAMESPACE.key(self.keys.index_key(namespace));
        self.call("list_namespace", invocation.invoke_async(&mut connection))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_have_three_decimals() {
        let text = |millis| String::from_utf8(Seconds::from_millis(millis).as_bytes().to_vec());
        assert_eq!(text(1_764_115_200_123).unwrap(), "1764115200.123");
        assert_eq!(text(5).unwrap(), "0.005");
        assert_eq!(text(60_000).unwrap(), "60.000");
        assert_eq!(text(-1_500).unwrap(), "-1.500");
        assert_eq!(text(i64::MIN).unwrap(), "-9223372036854775.808");
    }
}
