//! One behaviour suite for every `SessionStore`, run against `MemoryStore`, `RedisStore` (its own
//! connection with pipelined saves, and on a `ConnectionManager` with the Lua script; each
//! Redis test on a `redis-server` of its own) and `RedisClusterStore` (each test on a 3-master
//! Redis Cluster of its own), plus Redis-only tests of the key layout, faults and concurrency.

use std::time::{Duration, Instant};

use sessions::redis::{KeyLayout, RedisClusterStore, RedisStore};
use sessions::store::{MemoryStore, SaveOp, SaveOutcome, SessionData, SessionStore};
use sessions_tests::redis_cluster::RedisCluster;
use sessions_tests::redis_server::RedisServer;

// ---------------------------------------------------------------------------------------------
// Harnesses: a store plus what a test may inspect beyond the trait.

/// A store under test and a way to look behind it.
trait Harness {
    type Store: SessionStore;

    fn store(&self) -> &Self::Store;

    /// Remaining time to live of a session in a plain namespace (Redis `PTTL`).
    async fn ttl(&self, namespace: &str, id: &str) -> Option<Duration>;

    /// Whether a plain namespace has an index (Redis: the sorted set exists).
    async fn has_index(&self, namespace: &str) -> bool;
}

struct MemoryHarness {
    store: MemoryStore,
}

fn memory_harness() -> MemoryHarness {
    MemoryHarness {
        store: MemoryStore::new(),
    }
}

impl Harness for MemoryHarness {
    type Store = MemoryStore;

    fn store(&self) -> &MemoryStore {
        &self.store
    }

    async fn ttl(&self, namespace: &str, id: &str) -> Option<Duration> {
        self.store.time_to_live(namespace, id)
    }

    async fn has_index(&self, namespace: &str) -> bool {
        !self
            .store
            .list_namespace(namespace)
            .await
            .unwrap()
            .is_empty()
    }
}

struct RedisHarness {
    // Dropped last: the server outlives the connections.
    store: RedisStore,
    probe: redis::aio::MultiplexedConnection,
    server: RedisServer,
}

async fn redis_harness() -> RedisHarness {
    redis_harness_with_prefix("").await
}

async fn redis_harness_with_prefix(prefix: &str) -> RedisHarness {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect to the test's redis-server")
        .with_key_prefix(prefix)
        // Generous for a loaded CI machine; the fault test sets its own.
        .with_timeout(Duration::from_secs(2));
    let probe = probe(&server).await;
    RedisHarness {
        store,
        probe,
        server,
    }
}

/// `RedisStore::from_connection_manager`: redis-rs's connection, and the Lua script for new
/// sessions, where `connect` uses its own connection and pipelined batches.
async fn redis_manager_harness() -> RedisHarness {
    let server = RedisServer::start();
    let manager = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .expect("connection manager");
    let store = RedisStore::from_connection_manager(manager).with_timeout(Duration::from_secs(2));
    let probe = probe(&server).await;
    RedisHarness {
        store,
        probe,
        server,
    }
}

async fn probe(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("probe connection")
}

impl RedisHarness {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        cmd.query_async(&mut self.probe.clone())
            .await
            .expect("probe query")
    }

    /// Every key on the server, sorted.
    async fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.query(redis::cmd("KEYS").arg("*")).await;
        keys.sort();
        keys
    }

    async fn pttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key)).await
    }

    /// Redis's clock, in Unix seconds.
    async fn redis_now(&self) -> f64 {
        let (secs, micros): (u64, u64) = self.query(&mut redis::cmd("TIME")).await;
        secs as f64 + micros as f64 / 1e6
    }
}

impl Harness for RedisHarness {
    type Store = RedisStore;

    fn store(&self) -> &RedisStore {
        &self.store
    }

    async fn ttl(&self, namespace: &str, id: &str) -> Option<Duration> {
        let pttl = self.pttl(&format!("{namespace}:s:{id}")).await;
        u64::try_from(pttl).ok().map(Duration::from_millis)
    }

    async fn has_index(&self, namespace: &str) -> bool {
        self.query::<bool>(redis::cmd("EXISTS").arg(format!("{namespace}:s")))
            .await
    }
}

struct ClusterHarness {
    // Dropped last: the cluster outlives the connections.
    store: RedisClusterStore,
    probe: redis::cluster_async::ClusterConnection,
    _cluster: RedisCluster,
}

async fn cluster_harness() -> ClusterHarness {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("start a Redis Cluster");
    let store = RedisClusterStore::connect(cluster.urls(), KeyLayout::Cluster)
        .await
        .expect("connect to the test's cluster")
        .with_timeout(Duration::from_secs(2));
    let probe = redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .expect("probe connection");
    ClusterHarness {
        store,
        probe,
        _cluster: cluster,
    }
}

impl Harness for ClusterHarness {
    type Store = RedisClusterStore;

    fn store(&self) -> &RedisClusterStore {
        &self.store
    }

    async fn ttl(&self, namespace: &str, id: &str) -> Option<Duration> {
        let key = if namespace.is_empty() {
            format!(":s:{{{id}}}")
        } else {
            format!("{{{namespace}}}:s:{id}")
        };
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.probe.clone())
            .await
            .expect("probe PTTL");
        u64::try_from(pttl).ok().map(Duration::from_millis)
    }

    async fn has_index(&self, namespace: &str) -> bool {
        let mut exists = false;
        for key in [format!("{{{namespace}}}:s"), format!("{namespace}:s")] {
            let found: bool = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut self.probe.clone())
                .await
                .expect("probe EXISTS");
            exists |= found;
        }
        exists
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const MINUTE: Duration = Duration::from_secs(60);

/// A valid, recognisable session id: the byte `n` 32 times, as hex.
fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn data(pairs: &[(&str, &str)]) -> SessionData {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn new_op<'a>(
    namespace: &'a str,
    id: &'a str,
    data: &'a SessionData,
    max_age: Duration,
) -> SaveOp<'a> {
    SaveOp {
        namespace,
        id,
        data,
        existing: false,
        replaces: None,
        max_age,
    }
}

fn update_op<'a>(namespace: &'a str, id: &'a str, data: &'a SessionData) -> SaveOp<'a> {
    SaveOp {
        namespace,
        id,
        data,
        existing: true,
        replaces: None,
        max_age: MINUTE,
    }
}

async fn save<S: SessionStore>(store: &S, op: SaveOp<'_>) -> SaveOutcome {
    store.save(op).await.expect("save")
}

async fn load<S: SessionStore>(store: &S, namespace: &str, id: &str) -> Option<SessionData> {
    store.load(namespace, id).await.expect("load")
}

async fn list<S: SessionStore>(store: &S, namespace: &str) -> Vec<String> {
    let mut ids = store
        .list_namespace(namespace)
        .await
        .expect("list_namespace");
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// The suite: each test is generic over the harness.

async fn new_session_saves_and_loads(h: impl Harness) {
    let s = h.store();
    let (a, d) = (id(1), data(&[("user_id", "42"), ("theme", "dark")]));
    assert_eq!(load(s, "", &a).await, None);
    assert_eq!(
        save(s, new_op("", &a, &d, MINUTE)).await,
        SaveOutcome::Saved
    );
    assert_eq!(load(s, "", &a).await, Some(d.clone()));
    // The same id in another namespace is another session.
    assert_eq!(load(s, "alice", &a).await, None);
    let empty = SessionData::new();
    save(s, new_op("alice", &a, &empty, MINUTE)).await;
    assert_eq!(load(s, "alice", &a).await, Some(empty));
    assert_eq!(load(s, "", &a).await, Some(d));
}

async fn update_keeps_ttl(h: impl Harness) {
    let s = h.store();
    let a = id(2);
    save(s, new_op("alice", &a, &data(&[("n", "1")]), MINUTE)).await;
    let first = h.ttl("alice", &a).await.expect("ttl after save");
    assert!(
        first <= MINUTE && first > MINUTE - Duration::from_secs(5),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d2 = data(&[("n", "2")]);
    assert_eq!(
        save(s, update_op("alice", &a, &d2)).await,
        SaveOutcome::Saved
    );
    let second = h.ttl("alice", &a).await.expect("ttl after update");
    assert!(
        second + Duration::from_millis(250) <= first,
        "ttl was reset: {first:?} then {second:?}"
    );
    assert_eq!(load(s, "alice", &a).await, Some(d2));
}

async fn updated_session_still_expires_max_age_after_first_save(h: impl Harness) {
    let s = h.store();
    let a = id(3);
    let max_age = Duration::from_millis(1500);
    save(s, new_op("", &a, &data(&[("n", "1")]), max_age)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        save(s, update_op("", &a, &data(&[("n", "2")]))).await,
        SaveOutcome::Saved
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        load(s, "", &a).await,
        None,
        "an update must not extend the session's life"
    );
}

async fn existing_save_of_removed_session_is_gone(h: impl Harness) {
    let s = h.store();
    let (a, d) = (id(4), data(&[("k", "v")]));
    // Never saved.
    assert_eq!(save(s, update_op("alice", &a, &d)).await, SaveOutcome::Gone);
    assert_eq!(load(s, "alice", &a).await, None);
    // Saved, then removed (a logout elsewhere) before this request saves.
    save(s, new_op("alice", &a, &d, MINUTE)).await;
    assert!(s.remove("alice", &a).await.unwrap());
    assert!(
        !s.remove("alice", &a).await.unwrap(),
        "remove reports whether it existed"
    );
    assert_eq!(
        save(s, update_op("alice", &a, &data(&[("k", "v2")]))).await,
        SaveOutcome::Gone
    );
    assert_eq!(
        load(s, "alice", &a).await,
        None,
        "a gone session must not be recreated"
    );
    assert!(list(s, "alice").await.is_empty());
    assert!(!h.has_index("alice").await, "an empty index is no index");
}

async fn remove_deletes_session_and_index_entry(h: impl Harness) {
    let s = h.store();
    let (a, b, d) = (id(5), id(6), data(&[("k", "v")]));
    save(s, new_op("alice", &a, &d, MINUTE)).await;
    save(s, new_op("alice", &b, &d, MINUTE)).await;
    save(s, new_op("", &a, &d, MINUTE)).await;
    assert!(s.remove("alice", &a).await.unwrap());
    assert_eq!(load(s, "alice", &a).await, None);
    assert_eq!(list(s, "alice").await, vec![b.clone()]);
    assert_eq!(
        load(s, "", &a).await,
        Some(d.clone()),
        "other namespaces untouched"
    );
    assert!(s.remove("", &a).await.unwrap());
    assert_eq!(load(s, "", &a).await, None);
}

async fn replaces_deletes_the_old_session(h: impl Harness) {
    let s = h.store();
    let (anon, alice, bob) = (id(7), id(8), id(9));
    let d = data(&[("cart", "3 items")]);
    save(s, new_op("", &anon, &d, MINUTE)).await;
    // Login: a new id in the user's namespace; the anonymous session goes in the same step.
    let login = SaveOp {
        replaces: Some(("", anon.as_str())),
        ..new_op("alice", &alice, &d, MINUTE)
    };
    assert_eq!(save(s, login).await, SaveOutcome::Saved);
    assert_eq!(load(s, "", &anon).await, None);
    assert_eq!(load(s, "alice", &alice).await, Some(d.clone()));
    assert_eq!(list(s, "alice").await, vec![alice.clone()]);
    // Switching user: the old one leaves its namespace's index too.
    let switch = SaveOp {
        replaces: Some(("alice", alice.as_str())),
        ..new_op("bob", &bob, &d, MINUTE)
    };
    assert_eq!(save(s, switch).await, SaveOutcome::Saved);
    assert_eq!(load(s, "alice", &alice).await, None);
    assert!(list(s, "alice").await.is_empty());
    assert_eq!(list(s, "bob").await, vec![bob.clone()]);
    // Replacing a session that is already gone is fine.
    let again = SaveOp {
        replaces: Some(("", anon.as_str())),
        ..new_op("bob", &bob, &d, MINUTE)
    };
    assert_eq!(save(s, again).await, SaveOutcome::Saved);
    // An existing session that is gone is not written, and nothing is deleted.
    let gone = SaveOp {
        existing: true,
        replaces: Some(("bob", bob.as_str())),
        ..new_op("carol", &anon, &d, MINUTE)
    };
    assert_eq!(save(s, gone).await, SaveOutcome::Gone);
    assert_eq!(load(s, "carol", &anon).await, None);
    assert_eq!(load(s, "bob", &bob).await, Some(d));
}

async fn remove_namespace_removes_its_sessions_only(h: impl Harness) {
    let s = h.store();
    let d = data(&[("k", "v")]);
    let ids: Vec<String> = (10..13).map(id).collect();
    for i in &ids {
        save(s, new_op("alice", i, &d, MINUTE)).await;
    }
    let (bob, anon) = (id(13), id(14));
    save(s, new_op("bob", &bob, &d, MINUTE)).await;
    save(s, new_op("", &anon, &d, MINUTE)).await;
    assert!(h.has_index("alice").await);

    assert_eq!(s.remove_namespace("alice").await.unwrap(), 3);
    for i in &ids {
        assert_eq!(load(s, "alice", i).await, None);
        assert_eq!(
            save(s, update_op("alice", i, &d)).await,
            SaveOutcome::Gone,
            "logged out"
        );
    }
    assert!(list(s, "alice").await.is_empty());
    assert!(!h.has_index("alice").await, "the index goes too");
    assert_eq!(load(s, "bob", &bob).await, Some(d.clone()));
    assert_eq!(list(s, "bob").await, vec![bob.clone()]);
    assert_eq!(load(s, "", &anon).await, Some(d.clone()));

    assert_eq!(s.remove_namespace("alice").await.unwrap(), 0);
    assert_eq!(
        s.remove_namespace("").await.unwrap(),
        0,
        "anonymous sessions have no index"
    );
    assert_eq!(load(s, "", &anon).await, Some(d));
}

async fn anonymous_sessions_are_not_indexed(h: impl Harness) {
    let s = h.store();
    let d = data(&[("k", "v")]);
    save(s, new_op("", &id(15), &d, MINUTE)).await;
    save(s, new_op("", &id(16), &d, MINUTE)).await;
    assert!(!h.has_index("").await);
    assert!(list(s, "").await.is_empty());
}

async fn list_namespace_lists_live_sessions(h: impl Harness) {
    let s = h.store();
    let d = data(&[("k", "v")]);
    let (a, b, c) = (id(17), id(18), id(19));
    assert!(list(s, "alice").await.is_empty());
    save(s, new_op("alice", &a, &d, Duration::from_millis(600))).await;
    save(s, new_op("alice", &b, &d, MINUTE)).await;
    save(s, new_op("bob", &c, &d, MINUTE)).await;
    assert_eq!(list(s, "alice").await, vec![a.clone(), b.clone()]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        list(s, "alice").await,
        vec![b.clone()],
        "expired ids are not listed"
    );
    assert_eq!(list(s, "bob").await, vec![c]);
}

async fn sessions_expire_after_max_age(h: impl Harness) {
    let s = h.store();
    let (a, b, d) = (id(20), id(21), data(&[("k", "v")]));
    save(s, new_op("alice", &a, &d, Duration::from_secs(1))).await;
    save(s, new_op("", &b, &d, Duration::from_secs(1))).await;
    assert!(load(s, "alice", &a).await.is_some());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(load(s, "alice", &a).await, None);
    assert_eq!(load(s, "", &b).await, None);
    assert!(list(s, "alice").await.is_empty());
    assert_eq!(save(s, update_op("alice", &a, &d)).await, SaveOutcome::Gone);
    assert!(!s.remove("", &b).await.unwrap());
    assert_eq!(s.remove_namespace("alice").await.unwrap(), 0);
}

async fn encoded_namespaces_round_trip(h: impl Harness) {
    let s = h.store();
    let d = data(&[("k", "v")]);
    let namespaces = [
        "a:b",
        "x y;z,\"q\"\\",
        "ünïcødé",
        "100%",
        "%3A",
        "tab\there",
        "{tag}",
    ];
    for (n, namespace) in (30..).zip(namespaces) {
        let i = id(n);
        save(s, new_op(namespace, &i, &d, MINUTE)).await;
        assert_eq!(
            load(s, namespace, &i).await,
            Some(d.clone()),
            "{namespace:?}"
        );
        assert_eq!(list(s, namespace).await, vec![i.clone()], "{namespace:?}");
    }
    // Distinct namespaces stay distinct ("%3A" is not ":").
    assert!(list(s, ":").await.is_empty());
    for namespace in namespaces {
        assert_eq!(
            s.remove_namespace(namespace).await.unwrap(),
            1,
            "{namespace:?}"
        );
        assert!(list(s, namespace).await.is_empty(), "{namespace:?}");
    }
}

/// Instantiates every test of the suite for one harness.
macro_rules! store_suite {
    ($module:ident, $harness:expr) => {
        store_suite!(@tests $module, $harness,
            new_session_saves_and_loads,
            update_keeps_ttl,
            updated_session_still_expires_max_age_after_first_save,
            existing_save_of_removed_session_is_gone,
            remove_deletes_session_and_index_entry,
            replaces_deletes_the_old_session,
            remove_namespace_removes_its_sessions_only,
            anonymous_sessions_are_not_indexed,
            list_namespace_lists_live_sessions,
            sessions_expire_after_max_age,
            encoded_namespaces_round_trip,
        );
    };
    (@tests $module:ident, $harness:expr, $($test:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($harness).await;
                }
            )*
        }
    };
}

store_suite!(memory_store, super::memory_harness());
store_suite!(redis_store, super::redis_harness().await);
store_suite!(redis_manager_store, super::redis_manager_harness().await);
store_suite!(cluster_store, super::cluster_harness().await);

// ---------------------------------------------------------------------------------------------
// Redis only: the actual keys, compatibility with uapi, faults, concurrency.

/// uapi's layout, byte for byte, under a prefix that every operation honours.
#[tokio::test]
async fn redis_key_prefix_and_uapi_layout() {
    let h = redis_harness_with_prefix("app:").await;
    let s = h.store();
    let (a, anon, d) = (id(40), id(41), data(&[("user_id", "42")]));
    let max_age = Duration::from_secs(100);

    save(s, new_op("alice", &a, &d, max_age)).await;
    let session_key = format!("app:alice:s:{a}");
    assert_eq!(
        h.all_keys().await,
        vec!["app:alice:s".to_owned(), session_key.clone()]
    );
    let payload: String = h.query(redis::cmd("GET").arg(&session_key)).await;
    assert_eq!(payload, r#"{"user_id":"42"}"#);
    let pttl = h.pttl(&session_key).await;
    assert!((95_000..=100_000).contains(&pttl), "session PTTL {pttl}");
    // The index outlives its newest session by a quarter lifetime at most.
    let index_pttl = h.pttl("app:alice:s").await;
    assert!(
        (120_000..=125_000).contains(&index_pttl),
        "index PTTL {index_pttl}"
    );
    let score: f64 = h
        .query(redis::cmd("ZSCORE").arg("app:alice:s").arg(&a))
        .await;
    let expected = h.redis_now().await + 100.0;
    assert!(
        (score - expected).abs() < 5.0,
        "score {score}, expected about {expected}"
    );

    // Update: PTTL keeps counting down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    save(s, update_op("alice", &a, &data(&[("user_id", "43")]))).await;
    let after = h.pttl(&session_key).await;
    assert!(
        after > 0 && after <= pttl - 250,
        "PTTL reset by update: {pttl} then {after}"
    );
    assert_eq!(load(s, "alice", &a).await, Some(data(&[("user_id", "43")])));
    assert_eq!(list(s, "alice").await, vec![a.clone()]);

    // Anonymous: `app::s:{id}` and no index.
    save(s, new_op("", &anon, &d, max_age)).await;
    assert!(h.all_keys().await.contains(&format!("app::s:{anon}")));
    assert!(!h.all_keys().await.contains(&"app::s".to_owned()));

    // Login with replaces, remove, remove_namespace: all under the prefix.
    let b = id(42);
    let login = SaveOp {
        replaces: Some(("", anon.as_str())),
        ..new_op("alice", &b, &d, max_age)
    };
    save(s, login).await;
    assert_eq!(
        h.all_keys().await,
        vec![
            "app:alice:s".to_owned(),
            session_key.clone(),
            format!("app:alice:s:{b}")
        ]
    );
    assert!(s.remove("alice", &b).await.unwrap());
    let members: Vec<String> = h
        .query(redis::cmd("ZRANGE").arg("app:alice:s").arg(0).arg(-1))
        .await;
    assert_eq!(members, vec![a.clone()]);
    assert_eq!(s.remove_namespace("alice").await.unwrap(), 1);
    assert!(h.all_keys().await.is_empty(), "{:?}", h.all_keys().await);

    // An unprefixed store on the same server does not see prefixed sessions.
    save(s, new_op("alice", &a, &d, max_age)).await;
    let plain = RedisStore::connect(&h.server.url()).await.unwrap();
    assert_eq!(load(&plain, "alice", &a).await, None);
    assert!(list(&plain, "alice").await.is_empty());
    assert_eq!(plain.remove_namespace("alice").await.unwrap(), 0);
    assert_eq!(load(s, "alice", &a).await, Some(d));
}

#[tokio::test]
async fn redis_encoded_namespaces_use_percent_encoded_keys() {
    let h = redis_harness().await;
    let s = h.store();
    let (a, d) = (id(43), data(&[("k", "v")]));
    save(s, new_op("a:b c", &a, &d, MINUTE)).await;
    assert_eq!(
        h.all_keys().await,
        vec!["a%3Ab%20c:s".to_owned(), format!("a%3Ab%20c:s:{a}")]
    );
    save(s, new_op("é", &a, &d, MINUTE)).await;
    assert!(h.all_keys().await.contains(&format!("%C3%A9:s:{a}")));
}

#[tokio::test]
async fn redis_corrupt_payload_is_no_session() {
    let h = redis_harness().await;
    let s = h.store();
    let a = id(44);
    for garbage in [
        "not json",
        "[]",
        r#"{"a":1}"#,
        r#"{"a":null}"#,
        "\u{0}\u{1}",
        "",
    ] {
        let _: () = h
            .query(redis::cmd("SET").arg(format!("alice:s:{a}")).arg(garbage))
            .await;
        assert_eq!(load(s, "alice", &a).await, None, "{garbage:?}");
    }
    let _: () = h
        .query(
            redis::cmd("SET")
                .arg(format!("alice:s:{a}"))
                .arg(vec![0xFF_u8, 0xFE]),
        )
        .await;
    assert_eq!(load(s, "alice", &a).await, None, "not UTF-8");
}

/// A session written by Python uapi (`json.dumps`: spaces after separators, `\u` escapes, and an
/// index without a TTL) is read, listed and removed.
#[tokio::test]
async fn redis_reads_sessions_written_by_uapi() {
    let h = redis_harness().await;
    let s = h.store();
    let a = id(45);
    let now = h.redis_now().await;
    let _: () = h
        .query(
            redis::cmd("SET")
                .arg(format!("alice:s:{a}"))
                .arg(r#"{"user_id": "42", "name": "J\u00fcrgen"}"#)
                .arg("EX")
                .arg(60),
        )
        .await;
    let _: () = h
        .query(redis::cmd("ZADD").arg("alice:s").arg(now + 60.0).arg(&a))
        .await;
    assert_eq!(
        load(s, "alice", &a).await,
        Some(data(&[("user_id", "42"), ("name", "Jürgen")]))
    );
    assert_eq!(list(s, "alice").await, vec![a.clone()]);
    // Our new session in the same namespace leaves uapi's TTL-less index without a TTL.
    save(s, new_op("alice", &id(46), &data(&[]), MINUTE)).await;
    assert_eq!(h.pttl("alice:s").await, -1);
    assert_eq!(s.remove_namespace("alice").await.unwrap(), 2);
    assert!(h.all_keys().await.is_empty());
}

/// An index whose TTL is shorter than a new session's lifetime gets a longer one (the
/// session's and a quarter more); one that already outlives the session is left alone; one
/// without a TTL stays so. On both paths: the store's pipelined batch and follow-up, and the
/// Lua script.
async fn index_ttl_grows_only_when_needed(h: RedisHarness) {
    const MAX_AGE: Duration = Duration::from_secs(100);
    /// Gives the index the TTL `before` (`None`: no TTL), saves a new session of 100 s in
    /// it, and returns the index's TTL after.
    async fn index_pttl_after_save(h: &RedisHarness, before: Option<i64>, n: u8) -> i64 {
        let mut set_ttl = match before {
            Some(millis) => redis::cmd("PEXPIRE").arg("bob:s").arg(millis).clone(),
            None => redis::cmd("PERSIST").arg("bob:s").clone(),
        };
        let _: i64 = h.query(&mut set_ttl).await;
        save(h.store(), new_op("bob", &id(n), &data(&[]), MAX_AGE)).await;
        h.pttl("bob:s").await
    }
    save(h.store(), new_op("bob", &id(60), &data(&[]), MAX_AGE)).await;
    // Shorter than 100 s: extended to 125 s.
    let pttl = index_pttl_after_save(&h, Some(10_000), 61).await;
    assert!(
        (120_000..=125_000).contains(&pttl),
        "extended index PTTL {pttl}"
    );
    // Already longer than 100 s: left as it is.
    let pttl = index_pttl_after_save(&h, Some(110_000), 62).await;
    assert!(
        (105_000..=110_000).contains(&pttl),
        "index PTTL {pttl}, left alone"
    );
    // Much longer (another configuration's): never shortened.
    assert!(index_pttl_after_save(&h, Some(1_000_000), 63).await > 990_000);
    // No TTL (uapi's): none added.
    assert_eq!(index_pttl_after_save(&h, None, 64).await, -1);
    assert_eq!(list(h.store(), "bob").await.len(), 5);
}

#[tokio::test]
async fn redis_index_ttl_grows_only_when_needed() {
    index_ttl_grows_only_when_needed(redis_harness().await).await;
}

#[tokio::test]
async fn redis_manager_index_ttl_grows_only_when_needed() {
    index_ttl_grows_only_when_needed(redis_manager_harness().await).await;
}

#[tokio::test]
async fn redis_remove_namespace_handles_large_indexes() {
    let h = redis_harness().await;
    let s = h.store();
    // More members than one DEL batch and than Lua's unpack limit.
    let expiry = h.redis_now().await + 60.0;
    let mut pipe = redis::pipe();
    for n in 0..2500_u32 {
        let i = format!("{n:064x}");
        pipe.cmd("SET")
            .arg(format!("big:s:{i}"))
            .arg("{}")
            .arg("EX")
            .arg(60)
            .ignore();
        pipe.cmd("ZADD").arg("big:s").arg(expiry).arg(&i).ignore();
    }
    let _: () = pipe.query_async(&mut h.probe.clone()).await.unwrap();
    assert_eq!(list(s, "big").await.len(), 2500);
    assert_eq!(s.remove_namespace("big").await.unwrap(), 2500);
    assert!(h.all_keys().await.is_empty());
}

/// Redis down: every call fails (fast, not a hang). Redis back: calls succeed again, on the
/// same store, after a reconnection.
#[tokio::test]
async fn redis_down_fails_fast_then_recovers() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(250);
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(timeout);
    let (a, d) = (id(47), data(&[("k", "v")]));
    save(&store, new_op("alice", &a, &d, MINUTE)).await;

    server.stop();
    // Each call must end with an error; 5 s is a hang detector, not the expected time.
    let bound = Duration::from_secs(5);
    for round in 0..3 {
        let started = Instant::now();
        let results = [
            tokio::time::timeout(bound, store.load("alice", &a))
                .await
                .map(|r| r.err()),
            tokio::time::timeout(bound, store.save(new_op("alice", &a, &d, MINUTE)))
                .await
                .map(|r| r.err()),
            tokio::time::timeout(bound, store.save(update_op("alice", &a, &d)))
                .await
                .map(|r| r.err()),
            tokio::time::timeout(bound, store.remove("alice", &a))
                .await
                .map(|r| r.err()),
            tokio::time::timeout(bound, store.remove_namespace("alice"))
                .await
                .map(|r| r.err()),
            tokio::time::timeout(bound, store.list_namespace("alice"))
                .await
                .map(|r| r.err()),
        ];
        for (call, result) in results.into_iter().enumerate() {
            let err = result.unwrap_or_else(|_| panic!("round {round}, call {call}: hung"));
            let err = err
                .unwrap_or_else(|| panic!("round {round}, call {call}: succeeded with Redis down"));
            eprintln!("round {round}, call {call}: {err}");
        }
        eprintln!(
            "round {round}: 6 failing calls took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match store.save(new_op("alice", &a, &d, MINUTE)).await {
            Ok(outcome) => {
                assert_eq!(outcome, SaveOutcome::Saved);
                break;
            }
            Err(err) if attempts < 100 => {
                eprintln!("attempt {attempts} after restart: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!(
                "no recovery after {attempts} attempts ({:?}): {err}",
                started.elapsed()
            ),
        }
    }
    eprintln!(
        "recovered after {attempts} attempts, {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow recovery: {:?}",
        started.elapsed()
    );
    // Everything works again, scripts included (the new server had to load them).
    assert_eq!(load(&store, "alice", &a).await, Some(d.clone()));
    assert_eq!(list(&store, "alice").await, vec![a.clone()]);
    assert_eq!(store.remove_namespace("alice").await.unwrap(), 1);
}

/// A restart while the store is idle: the dead connection is noticed on the next call, and the
/// calls after it succeed.
#[tokio::test]
async fn redis_restart_while_idle_recovers() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let (a, d) = (id(48), data(&[("k", "v")]));
    save(&store, new_op("alice", &a, &d, MINUTE)).await;
    server.restart();
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        match store.save(new_op("alice", &a, &d, MINUTE)).await {
            Ok(outcome) => break outcome,
            Err(err) if attempts < 100 => {
                eprintln!("attempt {attempts} after restart: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("no recovery after {attempts} attempts: {err}"),
        }
    };
    assert_eq!(outcome, SaveOutcome::Saved);
    eprintln!("recovered after {attempts} attempts");
    assert_eq!(list(&store, "alice").await, vec![a]);
}

/// Redis not there at all: connect fails, quickly.
#[tokio::test]
async fn redis_connect_to_nothing_fails() {
    let mut server = RedisServer::start();
    server.stop();
    let started = Instant::now();
    let result =
        tokio::time::timeout(Duration::from_secs(10), RedisStore::connect(&server.url())).await;
    let err = result
        .expect("connect must not hang")
        .expect_err("nothing listens there");
    eprintln!("connect failed after {:?}: {err}", started.elapsed());
}

/// 200 concurrent saves on one store (one multiplexed connection) all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_saves_pipeline_on_one_connection() {
    let h = redis_harness().await;
    let store = h.store().clone();
    let tasks: Vec<_> = (0..200_u32)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let i = format!("{n:064x}");
                let d = data(&[("n", &n.to_string())]);
                let namespace = if n % 2 == 0 { "alice" } else { "" };
                store.save(new_op(namespace, &i, &d, MINUTE)).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().expect("concurrent save"),
            SaveOutcome::Saved
        );
    }
    assert_eq!(list(&store, "alice").await.len(), 100);
    assert_eq!(h.all_keys().await.len(), 201);
    let clients: String = h.query(redis::cmd("CLIENT").arg("LIST")).await;
    // The store's one connection plus the probe.
    assert_eq!(clients.lines().count(), 2, "{clients}");
}
