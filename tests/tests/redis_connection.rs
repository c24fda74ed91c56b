//! The connection of `RedisStore::connect`: concurrent calls share writes (auto-pipelining),
//! the URL's password and database are used, and a Redis restarted between calls costs no
//! failed call.

use std::time::Duration;

use sessions::redis::RedisStore;
use sessions::store::{SaveOp, SaveOutcome, SessionData, SessionStore, StoreError};
use sessions_tests::redis_server::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);
const ID: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn probe(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("probe connection")
}

/// Fields of Redis's `INFO stats`, from one `INFO` (which counts in the next one).
async fn stats<const N: usize>(
    probe: &mut redis::aio::MultiplexedConnection,
    names: [&str; N],
) -> [u64; N] {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(probe)
        .await
        .unwrap();
    names.map(|name| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats"))
    })
}

/// Redis's counts of read events and of commands processed.
async fn reads_and_commands(probe: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
    let [reads, commands] =
        stats(probe, ["total_reads_processed", "total_commands_processed"]).await;
    (reads, commands)
}

/// Loads a session until the store answers (up to `tries` times, `pause` apart): for a
/// store finding its way back to a Redis that was down or frozen.
async fn load_when_back(
    store: &RedisStore,
    namespace: &str,
    tries: usize,
    pause: Duration,
) -> Result<Option<SessionData>, StoreError> {
    let mut outcome = store.load(namespace, ID).await;
    for _ in 0..tries {
        if outcome.is_ok() {
            break;
        }
        tokio::time::sleep(pause).await;
        outcome = store.load(namespace, ID).await;
    }
    outcome
}

/// A test server that requires `password` (set after it starts, through `CONFIG SET`).
async fn server_with_password(password: &str) -> RedisServer {
    let server = RedisServer::start();
    let mut admin = probe(&server.url()).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async(&mut admin)
        .await
        .unwrap();
    server
}

fn data(user: &str) -> SessionData {
    SessionData::from([("user_id".to_owned(), user.to_owned())])
}

async fn save_new(store: &RedisStore, namespace: &str, data: &SessionData) -> SaveOutcome {
    store
        .save(SaveOp {
            namespace,
            id: ID,
            data,
            existing: false,
            replaces: None,
            max_age: MINUTE,
        })
        .await
        .expect("save")
}

/// The loads of many request tasks that are ready at once reach Redis in a few writes, not one
/// each: Redis counts one read event per batch. On Tokio's multi-threaded runtime (one worker, as
/// a server pinned to a core runs) a connection that flushes as soon as its task runs sends one
/// command per write.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn concurrent_loads_are_written_together() {
    const TASKS: u64 = 256;
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let mut probe = probe(&server.url()).await;
    let alice = data("alice");
    assert_eq!(save_new(&store, "alice", &alice).await, SaveOutcome::Saved);

    let (reads_before, commands_before) = reads_and_commands(&mut probe).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.load("alice", ID).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), Some(alice.clone()));
    }
    let (reads_after, commands_after) = reads_and_commands(&mut probe).await;
    // Less the first INFO, counted in the second.
    let reads = reads_after - reads_before - 1;
    let commands = commands_after - commands_before - 1;
    assert_eq!(commands, TASKS, "one GET per load");
    assert!(
        reads <= TASKS / 8,
        "{TASKS} concurrent loads took {reads} reads by Redis: they were not pipelined"
    );
}

/// `redis://:password@host:port/db`: the store authenticates and selects the database.
#[tokio::test]
async fn password_and_database_come_from_the_url() {
    let server = server_with_password("s3cret").await;
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port());
    let store = RedisStore::connect(&url)
        .await
        .expect("connect with password");
    let bob = data("bob");
    assert_eq!(save_new(&store, "bob", &bob).await, SaveOutcome::Saved);
    assert_eq!(store.load("bob", ID).await.unwrap(), Some(bob));

    let mut db3 = probe(&url).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("bob:s:{ID}"))
        .query_async(&mut db3)
        .await
        .unwrap();
    assert!(exists, "the session is in database 3");
    let mut db0 = probe(&format!("redis://:s3cret@127.0.0.1:{}/0", server.port())).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut db0)
        .await
        .unwrap();
    assert!(keys.is_empty(), "database 0 holds {keys:?}");
}

#[tokio::test]
async fn a_wrong_password_fails_connect() {
    let server = server_with_password("s3cret").await;
    let url = format!("redis://:wrong@127.0.0.1:{}/", server.port());
    let err = RedisStore::connect(&url)
        .await
        .expect_err("a wrong password is refused");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("WRONGPASS") || message.contains("invalid"),
        "the error says why: {message}"
    );
}

/// The connection notices that Redis went away while no call was in flight, so the first call
/// after a restart opens a new connection instead of failing on the dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_call_after_a_restart_succeeds() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let carol = data("carol");
    assert_eq!(save_new(&store, "carol", &carol).await, SaveOutcome::Saved);
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    // The restarted server is empty: the session is gone, and the call itself succeeds.
    assert_eq!(store.load("carol", ID).await.unwrap(), None);
    assert_eq!(save_new(&store, "carol", &carol).await, SaveOutcome::Saved);
    assert_eq!(store.load("carol", ID).await.unwrap(), Some(carol));
    drop(server);
}

/// While Redis is down calls fail with an error (a 503 for a request), and once it is back the
/// store works again without being recreated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_while_redis_is_down_and_work_when_it_is_back() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let dave = data("dave");
    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let err = store.load("dave", ID).await.expect_err("Redis is down");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    // The last failed attempt may hold new attempts back for a moment (50 ms).
    let outcome = load_when_back(&store, "dave", 20, Duration::from_millis(25)).await;
    assert_eq!(outcome.expect("Redis is back"), None);
    assert_eq!(save_new(&store, "dave", &dave).await, SaveOutcome::Saved);
    assert_eq!(store.load("dave", ID).await.unwrap(), Some(dave));
    drop(server);
}

/// A Redis that stops answering without closing the connection (a partition, a frozen host):
/// once calls have waited 5 s with no reply at all, the connection is dropped and the next call
/// opens a new one, so the store recovers when Redis answers again instead of waiting on the
/// dead connection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_replaced() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let erin = data("erin");
    assert_eq!(save_new(&store, "erin", &erin).await, SaveOutcome::Saved);
    let mut probe = probe(&server.url()).await;
    let [before] = stats(&mut probe, ["total_connections_received"]).await;

    server.freeze();
    let err = store
        .load("erin", ID)
        .await
        .expect_err("a frozen Redis answers nothing");
    assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
    // The connection's watchdog fails it once a call has waited 5 s with no reply; a second
    // more leaves room for a busy machine to run the watchdog late.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    // So this call opens a new connection, which the kernel accepts but Redis, still frozen,
    // does not answer either.
    assert!(store.load("erin", ID).await.is_err());
    server.thaw();

    let outcome = load_when_back(&store, "erin", 40, Duration::from_millis(50)).await;
    assert_eq!(outcome.expect("Redis answers again"), Some(erin));
    let [after] = stats(&mut probe, ["total_connections_received"]).await;
    assert!(after > before, "the store opened a new connection");
}

/// `err` is the timeout of a store with a `timeout_ms` timeout, and it came after `elapsed`
/// within `window_ms`.
fn assert_timed_out(
    err: &StoreError,
    timeout_ms: u64,
    elapsed: Duration,
    window_ms: std::ops::Range<u64>,
) {
    assert!(
        matches!(err, StoreError::Timeout(t) if *t == Duration::from_millis(timeout_ms)),
        "{err:?}"
    );
    let window = Duration::from_millis(window_ms.start)..Duration::from_millis(window_ms.end);
    assert!(window.contains(&elapsed), "{elapsed:?} not in {window:?}");
}

/// A store call gives up at its store's timeout even though no timer of its own is armed:
/// the connection's watchdog answers it at its deadline. Two clones of one store share the
/// connection with different timeouts; the shorter one, queued while the watchdog sleeps
/// until the longer one's deadline, wakes it and gives up first, at its own deadline. The
/// bounds are loose (a busy machine runs the watchdog late), but each call fails neither
/// before its timeout nor at the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_give_up_at_their_own_timeout() {
    let server = RedisServer::start();
    let patient = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(3_000));
    let hasty = patient.clone().with_timeout(Duration::from_millis(200));
    let erin = data("erin");
    assert_eq!(save_new(&patient, "erin", &erin).await, SaveOutcome::Saved);

    server.freeze();
    let started = std::time::Instant::now();
    let slow = tokio::spawn(async move {
        let result = patient.load("erin", ID).await;
        (result, started.elapsed())
    });
    // Past the watchdog's idle wake-up (every second): it now sleeps until the 3 s deadline.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let err = hasty
        .load("erin", ID)
        .await
        .expect_err("a frozen Redis answers nothing");
    assert_timed_out(&err, 200, started.elapsed(), 1_400..2_500);
    assert!(
        !slow.is_finished(),
        "the 3 s call gave up with the 200 ms one"
    );

    let (result, patient_after) = slow.await.unwrap();
    let err = result.expect_err("a frozen Redis answers nothing");
    assert_timed_out(&err, 3_000, patient_after, 3_000..4_800);

    // The replies of the abandoned calls, when Redis answers again, go to nobody; the next
    // call gets its own.
    server.thaw();
    let outcome = load_when_back(&hasty, "erin", 40, Duration::from_millis(50)).await;
    assert_eq!(outcome.expect("Redis answers again"), Some(erin));
}

/// `redis+unix:///path?db=N`: the store connects over a Unix socket.
#[tokio::test]
async fn a_unix_socket_url_works() {
    let server = RedisServer::start();
    let url = format!("redis+unix://{}?db=2", server.unix_socket().display());
    let store = RedisStore::connect(&url)
        .await
        .expect("connect over the Unix socket");
    let fay = data("fay");
    assert_eq!(save_new(&store, "fay", &fay).await, SaveOutcome::Saved);
    assert_eq!(store.load("fay", ID).await.unwrap(), Some(fay));
    let mut db2 = probe(&format!("redis://127.0.0.1:{}/2", server.port())).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("fay:s:{ID}"))
        .query_async(&mut db2)
        .await
        .unwrap();
    assert!(
        exists,
        "the session is in database 2, written through the socket"
    );
}

/// A pipelined save that fails on the data (an index key holding a string: `WRONGTYPE`) fails
/// that save only: the next is pipelined too, not sent to the slower Lua script, and no save
/// needs `MULTI`.
#[tokio::test]
async fn a_data_error_fails_only_that_save() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut probe = probe(&server.url()).await;
    let () = redis::cmd("SET")
        .arg("gus:s")
        .arg("not a sorted set")
        .query_async(&mut probe)
        .await
        .unwrap();
    let gus = data("gus");
    let err = store
        .save(SaveOp {
            namespace: "gus",
            id: ID,
            data: &gus,
            existing: false,
            replaces: None,
            max_age: MINUTE,
        })
        .await
        .expect_err("the index key has the wrong type");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let hal = data("hal");
    assert_eq!(save_new(&store, "hal", &hal).await, SaveOutcome::Saved);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut probe)
        .await
        .unwrap();
    let calls = |command: &str| -> u64 {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(calls("zadd"), 2, "both saves were pipelined: {stats}");
    assert_eq!(calls("multi"), 0, "no save was a transaction: {stats}");
    assert_eq!(calls("evalsha"), 0, "no save went to the script: {stats}");
}

async fn index_ttl(probe: &mut redis::aio::MultiplexedConnection) -> i64 {
    redis::cmd("PTTL")
        .arg("ida:s")
        .query_async(probe)
        .await
        .unwrap()
}

/// When a new session would outlive its index and extending the index fails (here: scripts
/// denied to the store's user by an ACL), the save fails, rather than leave a session that
/// `remove_namespace` could miss once the index expires; once scripts work again, the next
/// save extends the index.
#[tokio::test]
async fn a_failed_index_extension_fails_the_save() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut probe = probe(&server.url()).await;
    let ida = data("ida");
    let save = |id: &'static str| {
        store.save(SaveOp {
            namespace: "ida",
            id,
            data: &ida,
            existing: false,
            replaces: None,
            max_age: MINUTE,
        })
    };
    assert_eq!(save(ID).await.unwrap(), SaveOutcome::Saved);
    let ttl = index_ttl(&mut probe).await;
    assert!((70_000..=75_000).contains(&ttl), "new index PTTL {ttl}");

    let () = redis::cmd("PEXPIRE")
        .arg("ida:s")
        .arg(5_000)
        .query_async(&mut probe)
        .await
        .unwrap();
    let acl = |rules: &[&str]| {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg("default").arg(rules);
        cmd
    };
    let () = acl(&["-evalsha", "-eval"])
        .query_async(&mut probe)
        .await
        .unwrap();
    let second = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let err = save(second)
        .await
        .expect_err("the index could not be extended");
    assert!(err.to_string().contains("no permissions"), "{err}");
    assert!(index_ttl(&mut probe).await <= 5_000);

    let () = acl(&["+@all"]).query_async(&mut probe).await.unwrap();
    let third = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_eq!(save(third).await.unwrap(), SaveOutcome::Saved);
    let ttl = index_ttl(&mut probe).await;
    assert!(
        (70_000..=75_000).contains(&ttl),
        "extended index PTTL {ttl}"
    );
}
