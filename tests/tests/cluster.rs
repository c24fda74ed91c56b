//! `RedisClusterStore` on a real Redis Cluster: the key layout's slots, logins across slots,
//! the start-up error of the uapi layout, and steady traffic through a slot migration and a
//! master failover with no acknowledged write lost. (The behaviour suite runs on a cluster in
//! `store_suite.rs`.)

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sessions::redis::{
    configure_async_sessions, AsyncSessionConfig, ClusterStoreError, KeyLayout, RedisClusterStore,
};
use sessions::store::{SaveOp, SaveOutcome, SessionData, SessionStore};
use sessions::App;
use sessions_tests::redis_cluster::RedisCluster;

const MINUTE: Duration = Duration::from_secs(60);

fn data(n: u64) -> SessionData {
    SessionData::from([("n".to_owned(), n.to_string())])
}

fn new_op<'a>(namespace: &'a str, id: &'a str, data: &'a SessionData) -> SaveOp<'a> {
    SaveOp {
        namespace,
        id,
        data,
        existing: false,
        replaces: None,
        max_age: MINUTE,
    }
}

/// A fresh session id (the store only needs 64 lowercase hex characters).
fn fresh_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Mix the counter so that ids (and so anonymous sessions' slots) spread.
    format!("{:032x}{n:032x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn start(masters: usize, replicas: usize) -> RedisCluster {
    tokio::task::spawn_blocking(move || RedisCluster::start(masters, replicas))
        .await
        .expect("start a Redis Cluster")
}

#[tokio::test]
async fn uapi_layout_on_a_cluster_is_a_startup_error() {
    let err = RedisClusterStore::connect(["redis://127.0.0.1:1/"], KeyLayout::Uapi)
        .await
        .expect_err("the uapi layout is refused");
    assert!(matches!(err, ClusterStoreError::UapiLayoutOnCluster));
    let message = err.to_string();
    assert!(message.contains("KeyLayout::Cluster"), "{message}");
}

/// A namespace's sessions and index share its slot; anonymous sessions spread; a login moves a
/// session across slots and deletes the old one; the store plugs into
/// `configure_async_sessions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_layout_keeps_a_namespace_in_one_slot() {
    let cluster = start(3, 0).await;
    let store = RedisClusterStore::connect(cluster.urls(), KeyLayout::Cluster)
        .await
        .unwrap()
        .with_key_prefix("app:")
        .with_timeout(Duration::from_secs(2));

    let d = data(1);
    let alice: Vec<String> = (0..5).map(|_| fresh_id()).collect();
    for id in &alice {
        store.save(new_op("alice", id, &d)).await.unwrap();
    }
    let anonymous: Vec<String> = (0..30).map(|_| fresh_id()).collect();
    for id in &anonymous {
        store.save(new_op("", id, &d)).await.unwrap();
    }
    let index_slot = cluster.key_slot("app:{alice}:s");
    for id in &alice {
        assert_eq!(
            cluster.key_slot(&format!("app:{{alice}}:s:{id}")),
            index_slot
        );
    }
    let masters: HashSet<String> = anonymous
        .iter()
        .map(|id| {
            let slot = cluster.key_slot(&format!("app::s:{{{id}}}"));
            cluster.master_of_slot(slot).id
        })
        .collect();
    assert_eq!(
        masters.len(),
        3,
        "anonymous sessions spread over every master"
    );

    // A login: the anonymous session (another slot) goes, the new one is in alice's slot.
    let (anon, login_id) = (&anonymous[0], fresh_id());
    assert_ne!(cluster.key_slot(&format!("app::s:{{{anon}}}")), index_slot);
    let login = SaveOp {
        replaces: Some(("", anon.as_str())),
        ..new_op("alice", &login_id, &d)
    };
    assert_eq!(store.save(login).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(store.load("", anon).await.unwrap(), None);
    assert_eq!(
        store.load("alice", &login_id).await.unwrap(),
        Some(d.clone())
    );
    // Switching user: bob's slot gets the session, alice's index loses it.
    let bob_id = fresh_id();
    let switch = SaveOp {
        replaces: Some(("alice", login_id.as_str())),
        ..new_op("bob", &bob_id, &d)
    };
    assert_eq!(store.save(switch).await.unwrap(), SaveOutcome::Saved);
    assert_eq!(store.load("alice", &login_id).await.unwrap(), None);
    assert_eq!(store.list_namespace("alice").await.unwrap().len(), 5);

    // Through the framework's handle: listing, single removal, remove_namespace.
    let mut app = App::new();
    let handle = configure_async_sessions(&mut app, store.clone(), AsyncSessionConfig::default());
    assert!(handle.remove_session("alice", &alice[0]).await.unwrap());
    assert_eq!(handle.list_namespace("alice").await.unwrap().len(), 4);
    assert_eq!(handle.remove_namespace("alice").await.unwrap(), 4);
    assert!(handle.list_namespace("alice").await.unwrap().is_empty());
    assert_eq!(handle.remove_namespace("bob").await.unwrap(), 1);
    for id in &anonymous[1..] {
        assert_eq!(store.load("", id).await.unwrap(), Some(d.clone()));
    }
}

/// What one traffic task did to one session.
#[derive(Debug, Clone)]
struct Tracked {
    namespace: String,
    id: String,
    /// The last value a save acknowledged (0: none yet).
    acked: u64,
    /// The last value a save was attempted with (a failed save may or may not have landed).
    attempted: u64,
}

#[derive(Debug, Default)]
struct Counters {
    acked: AtomicU64,
    failed: AtomicU64,
    logins: AtomicU64,
}

/// One traffic task: saves (new, then updates) and loads its sessions in turn, and now and
/// then logs an anonymous session into `hot` (a save across slots).
async fn traffic(
    store: RedisClusterStore,
    task: usize,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Vec<Tracked> {
    let namespaces = ["hot", "hot", "", "", &format!("user{task}")];
    let mut sessions: Vec<Tracked> = namespaces
        .iter()
        .map(|ns| Tracked {
            namespace: (*ns).to_owned(),
            id: fresh_id(),
            acked: 0,
            attempted: 0,
        })
        .collect();
    let mut round = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        for s in &mut sessions {
            let n = s.attempted + 1;
            s.attempted = n;
            let d = data(n);
            let op = SaveOp {
                existing: s.acked > 0,
                ..new_op(&s.namespace, &s.id, &d)
            };
            match store.save(op).await {
                Ok(outcome) => {
                    assert_eq!(
                        outcome,
                        SaveOutcome::Saved,
                        "{s:?}: acknowledged session gone"
                    );
                    s.acked = n;
                    counters.acked.fetch_add(1, Ordering::Relaxed);
                    match store.load(&s.namespace, &s.id).await {
                        Ok(loaded) => {
                            assert_eq!(loaded, Some(d), "{s:?}: read after acknowledged write");
                        }
                        Err(err) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("task {task}: load failed: {err}");
                        }
                    }
                }
                Err(err) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("task {task}: save failed: {err}");
                }
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        if round.is_multiple_of(10) {
            // A login: a new anonymous session, moved into `hot`.
            let (anon, id) = (fresh_id(), fresh_id());
            let d = data(1);
            if store.save(new_op("", &anon, &d)).await.is_ok() {
                let login = SaveOp {
                    replaces: Some(("", anon.as_str())),
                    ..new_op("hot", &id, &d)
                };
                let result = store.save(login).await;
                let ok = matches!(result, Ok(SaveOutcome::Saved));
                sessions.push(Tracked {
                    namespace: "hot".into(),
                    id,
                    acked: u64::from(ok),
                    attempted: 1,
                });
                if ok {
                    counters.logins.fetch_add(1, Ordering::Relaxed);
                    if let Ok(old) = store.load("", &anon).await {
                        assert_eq!(old, None, "the anonymous session outlived its login");
                    }
                }
            }
        }
    }
    sessions
}

/// Steady traffic while the slot of a busy namespace migrates key by key to another master
/// (clients get ASK, TRYAGAIN and then MOVED) and that master then fails over to its replica:
/// every save that returned `Ok` is readable afterwards with its last acknowledged value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_through_migration_and_failover() {
    let started = Instant::now();
    let cluster = Arc::new(start(3, 1).await);
    eprintln!("cluster of 6 up in {:?}", started.elapsed());
    let store = RedisClusterStore::connect(cluster.urls(), KeyLayout::Cluster)
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(3));

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let tasks: Vec<_> = (0..6)
        .map(|task| tokio::spawn(traffic(store.clone(), task, stop.clone(), counters.clone())))
        .collect();

    let events = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            thread_sleep(Duration::from_millis(800));
            let slot = cluster.key_slot("{hot}:s");
            let from = cluster.master_of_slot(slot);
            let to = cluster
                .nodes()
                .into_iter()
                .find(|n| n.is_master() && n.id != from.id)
                .expect("another master");
            let t = Instant::now();
            let moved = cluster.migrate_slot(slot, &to, Duration::from_millis(25));
            eprintln!(
                "slot {slot}: {moved} keys moved {} -> {} in {:?}",
                from.port,
                to.port,
                t.elapsed()
            );
            thread_sleep(Duration::from_millis(600));
            let t = Instant::now();
            let new_master = cluster.failover(&cluster.master_of_slot(slot));
            eprintln!(
                "failover of slot {slot}'s master {} -> {} in {:?}",
                to.port,
                new_master.port,
                t.elapsed()
            );
            thread_sleep(Duration::from_millis(800));
            moved
        })
    };
    let moved = events.await.expect("migration and failover");
    stop.store(true, Ordering::Relaxed);
    let mut sessions = Vec::new();
    for task in tasks {
        sessions.extend(task.await.expect("traffic task"));
    }
    let acked = counters.acked.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    let logins = counters.logins.load(Ordering::Relaxed);
    eprintln!("{acked} acknowledged saves, {failed} failed calls, {logins} logins");
    assert!(moved > 0, "the slot held keys");
    assert!(acked > 200, "too little traffic: {acked}");
    assert!(logins > 0);

    // Every acknowledged write is there, with its last acknowledged value (or a later
    // attempted one: a save that failed on the client side may have landed).
    let mut hot = HashSet::new();
    for s in &sessions {
        let loaded = store.load(&s.namespace, &s.id).await.expect("load after");
        match loaded.as_ref().and_then(|d| d.get("n")) {
            Some(n) => {
                let n: u64 = n.parse().unwrap();
                assert!(
                    s.acked <= n && n <= s.attempted,
                    "{s:?}: holds {n}, acknowledged {}",
                    s.acked
                );
            }
            None => assert_eq!(s.acked, 0, "{s:?}: acknowledged session lost"),
        }
        if s.namespace == "hot" && loaded.is_some() {
            hot.insert(s.id.clone());
        }
    }
    let listed: HashSet<String> = store
        .list_namespace("hot")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(listed.is_superset(&hot), "listed {listed:?}, live {hot:?}");

    let stats = cluster.error_stats();
    eprintln!("error replies seen by the cluster: {stats:?}");
    let count = |kind: &str| stats.get(kind).copied().unwrap_or(0);
    assert!(count("MOVED") > 0, "no MOVED: {stats:?}");
    assert!(
        count("ASK") + count("TRYAGAIN") > 0,
        "no ASK nor TRYAGAIN: {stats:?}"
    );

    // The namespace is still one slot's work, on its new master.
    let removed = store.remove_namespace("hot").await.unwrap();
    assert_eq!(removed, listed.len() as u64);
    for id in &hot {
        assert_eq!(store.load("hot", id).await.unwrap(), None);
    }
    eprintln!("whole test: {:?}", started.elapsed());
}

fn thread_sleep(duration: Duration) {
    std::thread::sleep(duration);
}
