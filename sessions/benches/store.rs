//! Server-side session stores: one load and one save of a typical session,
//! on Redis (a `redis-server` started on a free loopback port for the run)
//! and in memory; `redis/PING` is one bare round trip on a raw socket, the
//! floor of any Redis call. Without `redis-server` on `PATH` the Redis part
//! is skipped with a message.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sessions::{
    redis::RedisStore,
    store::{MemoryStore, SaveOp, SessionData, SessionStore},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

const NAMESPACE: &str = "bench-user";
const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn data() -> SessionData {
    SessionData::from([("user_id".to_owned(), NAMESPACE.to_owned())])
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bench_store(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &dyn SessionStore,
) {
    let data = data();
    let max_age = Duration::from_secs(3600);
    runtime
        .block_on(store.save(SaveOp {
            namespace: NAMESPACE,
            id: ID,
            data: &data,
            existing: false,
            replaces: None,
            max_age,
        }))
        .expect("the first save");
    assert_eq!(
        runtime.block_on(store.load(NAMESPACE, ID)).expect("a load"),
        Some(data.clone())
    );
    let mut group = c.benchmark_group(name);
    group.bench_function("load", |b| {
        b.to_async(runtime).iter(|| store.load(NAMESPACE, ID));
    });
    group.bench_function("save existing", |b| {
        b.to_async(runtime).iter(|| {
            store.save(SaveOp {
                namespace: NAMESPACE,
                id: ID,
                data: &data,
                existing: true,
                replaces: None,
                max_age,
            })
        });
    });
    group.bench_function("save new (login)", |b| {
        b.to_async(runtime).iter(|| async {
            let id = new_id();
            store
                .save(SaveOp {
                    namespace: NAMESPACE,
                    id: &id,
                    data: &data,
                    existing: false,
                    replaces: None,
                    max_age,
                })
                .await
        });
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    let runtime = support::runtime();
    bench_store(c, &runtime, "memory", &MemoryStore::new());
    let Some(server) = support::RedisServer::start() else {
        println!("redis-server is not on PATH: skipping the Redis benchmarks (apt-get install redis-server)");
        return;
    };
    let store = runtime
        .block_on(RedisStore::connect(&server.url))
        .expect("connects to our redis-server");
    bench_store(c, &runtime, "redis", &store);
    let mut socket = runtime
        .block_on(tokio::net::TcpStream::connect(server.addr))
        .expect("a raw connection");
    c.bench_function("redis/PING (raw socket)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                socket.write_all(b"PING\r\n").await.expect("write");
                let mut reply = [0u8; 7];
                socket.read_exact(&mut reply).await.expect("+PONG\\r\\n");
            });
        });
    });
    drop(server);
}

criterion_group!(benches, stores);
criterion_main!(benches);
