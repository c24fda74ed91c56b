//! Server-side sessions (`AsyncSession`) over real HTTP: uapi's test app, one behaviour suite
//! run against both stores (`MemoryStore`, and `RedisStore` on a `redis-server` of each test's
//! own), plus Redis-only tests of the key layout, corrupt payloads and faults.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http::StatusCode;
use sessions::redis::{
    configure_async_sessions, AsyncRedisSessionStore, AsyncSession, AsyncSessionConfig, RedisStore,
};
use sessions::store::MemoryStore;
use sessions::{handler, App, Created, NoContent, State};
use sessions_tests::{redis_server::RedisServer, TestClient, TestResponse, TestServer};
use tokio::sync::Notify;

// ---------------------------------------------------------------------------------------------
// The app: uapi's test app plus the routes the tests need. Handler names are unit structs, so
// no parameter or local is named like one.

#[handler]
async fn index(session: AsyncSession) -> String {
    session
        .get("user_id")
        .cloned()
        .unwrap_or_else(|| "naughty!".into())
}

#[handler]
async fn login(username: String, mut session: AsyncSession) -> sessions::Result<Created<()>> {
    session.insert("user_id".into(), username.clone());
    session.update_session(Some(&username)).await?;
    Ok(Created(()))
}

#[handler]
async fn logout(mut session: AsyncSession) -> sessions::Result<NoContent> {
    session.clear_session().await?;
    Ok(NoContent)
}

#[handler]
async fn remove_ns(
    namespace: String,
    sessions_handle: State<AsyncRedisSessionStore>,
) -> sessions::Result<NoContent> {
    sessions_handle.remove_namespace(&namespace).await?;
    Ok(NoContent)
}

/// Sets a value without changing the namespace (`update_session(None)`).
#[handler]
async fn set_value(
    key: String,
    value: String,
    mut session: AsyncSession,
) -> sessions::Result<NoContent> {
    session.insert(key, value);
    session.update_session(None).await?;
    Ok(NoContent)
}

#[handler]
async fn get_value(key: String, session: AsyncSession) -> String {
    session.get(&key).cloned().unwrap_or_default()
}

/// `{namespace}|{id}` of the session as loaded (`|` when there is none).
#[handler]
async fn whoami(session: AsyncSession) -> String {
    format!("{}|{}", session.namespace(), session.id().unwrap_or(""))
}

/// Reads `n`, writes `n + 1`, answers the new value.
#[handler]
async fn incr(mut session: AsyncSession) -> sessions::Result<String> {
    let current: u64 = session.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let next = current + 1;
    session.insert("n".into(), next.to_string());
    session.update_session(None).await?;
    Ok(next.to_string())
}

/// Lets a test act while a request holds its session.
#[derive(Default)]
struct Gate {
    loaded: Notify,
    proceed: Notify,
}

/// Loads the session, waits for the test, then updates it; answers `{namespace}|{id}` after.
#[handler]
async fn held_update(
    value: String,
    mut session: AsyncSession,
    gate: State<Arc<Gate>>,
) -> sessions::Result<String> {
    gate.loaded.notify_one();
    gate.proceed.notified().await;
    session.insert("value".into(), value);
    session.update_session(None).await?;
    Ok(format!(
        "{}|{}",
        session.namespace(),
        session.id().unwrap_or("")
    ))
}

/// Removes its own namespace mid-request, then updates; answers `{namespace}|{id}` after.
#[handler]
async fn self_removing_update(
    value: String,
    mut session: AsyncSession,
    sessions_handle: State<AsyncRedisSessionStore>,
) -> sessions::Result<String> {
    let current = session.namespace().to_owned();
    sessions_handle.remove_namespace(&current).await?;
    session.insert("value".into(), value);
    session.update_session(None).await?;
    Ok(format!(
        "{}|{}",
        session.namespace(),
        session.id().unwrap_or("")
    ))
}

#[handler]
async fn index_b(another_session: AsyncSession) -> String {
    another_session
        .get("user_id")
        .cloned()
        .unwrap_or_else(|| "naughty!".into())
}

#[handler]
async fn login_b(
    username: String,
    mut another_session: AsyncSession,
) -> sessions::Result<Created<()>> {
    another_session.insert("user_id".into(), username.clone());
    another_session.update_session(Some(&username)).await?;
    Ok(Created(()))
}

#[handler]
async fn logout_b(mut another_session: AsyncSession) -> sessions::Result<NoContent> {
    another_session.clear_session().await?;
    Ok(NoContent)
}

#[handler]
async fn misspelled(sesion: AsyncSession) -> String {
    format!("{sesion:?}")
}

/// The routes of the test app, without the session configuration.
fn routes(app: &mut App) {
    app.get("/", index)
        .post("/login", login)
        .post("/logout", logout)
        .post("/admin/remove-namespace", remove_ns)
        .post("/set", set_value)
        .get("/get", get_value)
        .get("/id", whoami)
        .post("/incr", incr)
        .post("/held-update", held_update)
        .post("/self-removing-update", self_removing_update);
}

// ---------------------------------------------------------------------------------------------
// Environments: a store kind plus what a test may inspect behind it.

const COOKIE: &str = "session_id";

enum Backend {
    Memory(MemoryStore),
    Redis {
        // Dropped last: the server outlives the connections.
        store: RedisStore,
        probe: redis::aio::MultiplexedConnection,
        server: RedisServer,
    },
}

struct Env {
    backend: Backend,
}

impl Env {
    fn memory() -> Env {
        Env {
            backend: Backend::Memory(MemoryStore::new()),
        }
    }

    async fn redis() -> Env {
        Env::redis_with("", Duration::from_secs(2)).await
    }

    async fn redis_with(prefix: &str, timeout: Duration) -> Env {
        Env::redis_on(RedisServer::start(), prefix, timeout).await
    }

    async fn redis_on(server: RedisServer, prefix: &str, timeout: Duration) -> Env {
        let store = RedisStore::connect(&server.url())
            .await
            .expect("connect to the test's redis-server")
            .with_key_prefix(prefix)
            .with_timeout(timeout);
        let probe = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("probe connection");
        Env {
            backend: Backend::Redis {
                store,
                probe,
                server,
            },
        }
    }

    fn is_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    /// Configures sessions on `app` with this environment's store.
    fn configure(&self, app: &mut App, config: AsyncSessionConfig) -> AsyncRedisSessionStore {
        match &self.backend {
            Backend::Memory(store) => configure_async_sessions(app, store.clone(), config),
            Backend::Redis { store, .. } => configure_async_sessions(app, store.clone(), config),
        }
    }

    /// Configures sessions on `app` with a store of its own: a new `MemoryStore`, or the same
    /// Redis under the key prefix `b:`.
    fn configure_separate(
        &self,
        app: &mut App,
        config: AsyncSessionConfig,
    ) -> AsyncRedisSessionStore {
        match &self.backend {
            Backend::Memory(_) => configure_async_sessions(app, MemoryStore::new(), config),
            Backend::Redis { store, .. } => {
                configure_async_sessions(app, store.clone().with_key_prefix("b:"), config)
            }
        }
    }

    /// uapi's test app on this store, served, with its handle (also added as state).
    async fn serve(&self, config: AsyncSessionConfig) -> (TestServer, AsyncRedisSessionStore) {
        let mut app = App::new();
        routes(&mut app);
        let handle = self.configure(&mut app, config);
        app.add_state(handle.clone());
        app.add_state(Arc::new(Gate::default()));
        (TestServer::start(app).await, handle)
    }

    async fn serve_default(&self) -> (TestServer, AsyncRedisSessionStore) {
        self.serve(AsyncSessionConfig::default()).await
    }

    /// Remaining time to live of a session in a plain namespace, under no key prefix.
    async fn ttl(&self, namespace: &str, id: &str) -> Option<Duration> {
        match &self.backend {
            Backend::Memory(store) => store.time_to_live(namespace, id),
            Backend::Redis { .. } => {
                let pttl: i64 = self
                    .query(redis::cmd("PTTL").arg(format!("{namespace}:s:{id}")))
                    .await;
                u64::try_from(pttl).ok().map(Duration::from_millis)
            }
        }
    }

    fn probe(&self) -> redis::aio::MultiplexedConnection {
        match &self.backend {
            Backend::Redis { probe, .. } => probe.clone(),
            Backend::Memory(_) => panic!("not a Redis environment"),
        }
    }

    fn server(&mut self) -> &mut RedisServer {
        match &mut self.backend {
            Backend::Redis { server, .. } => server,
            Backend::Memory(_) => panic!("not a Redis environment"),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        cmd.query_async(&mut self.probe())
            .await
            .expect("probe query")
    }

    /// Every Redis key matching `pattern`, sorted.
    async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.query(redis::cmd("KEYS").arg(pattern)).await;
        keys.sort();
        keys
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `(namespace, id)` of a cookie value `{namespace}:{id}`, checking the id is 64 lowercase hex.
fn split_cookie(value: &str) -> (&str, &str) {
    let (namespace, id) = value
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("cookie value without `:`: {value:?}"));
    assert_eq!(id.len(), 64, "id of {value:?}");
    assert!(
        id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "id of {value:?} is not lowercase hex"
    );
    (namespace, id)
}

fn session_cookie(client: &TestClient) -> String {
    client
        .cookie(COOKIE)
        .unwrap_or_else(|| panic!("no `{COOKIE}` cookie in the jar"))
}

fn cookie_id(client: &TestClient) -> String {
    split_cookie(&session_cookie(client)).1.to_owned()
}

/// Whether the response deletes the cookie `name`.
fn deletes_cookie(response: &TestResponse, name: &str) -> bool {
    response.set_cookie(name).is_some_and(|cookie| {
        cookie.value().is_empty() && cookie.max_age() == Some(cookie::time::Duration::ZERO)
    })
}

async fn log_in(client: &TestClient, username: &str) {
    let path = format!("/login?username={}", encode(username));
    let response = client.post(&path).send().await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
}

async fn read_user(client: &TestClient) -> String {
    let response = client.get("/").send().await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn load(
    handle: &AsyncRedisSessionStore,
    namespace: &str,
    id: &str,
) -> Option<sessions::store::SessionData> {
    handle.store().load(namespace, id).await.expect("load")
}

// ---------------------------------------------------------------------------------------------
// The suite: each test takes an environment.

async fn login_read_logout(env: Env) {
    let (server, handle) = env.serve_default().await;
    let client = server.client();
    assert_eq!(read_user(&client).await, "naughty!");
    log_in(&client, "alice").await;
    assert_eq!(read_user(&client).await, "alice");
    let id = cookie_id(&client);
    assert!(load(&handle, "alice", &id).await.is_some());

    let response = client.post("/logout").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(deletes_cookie(&response, COOKIE), "{response:?}");
    assert_eq!(client.cookie(COOKIE), None);
    assert_eq!(read_user(&client).await, "naughty!");
    // Gone from the store, index entry included: the old cookie is worthless.
    assert_eq!(load(&handle, "alice", &id).await, None);
    assert!(handle.list_namespace("alice").await.unwrap().is_empty());
    let replayed = server
        .client()
        .get("/")
        .raw_cookie(&format!("{COOKIE}=alice:{id}"))
        .send()
        .await;
    assert_eq!(replayed.body, "naughty!");
}

async fn clients_are_isolated(env: Env) {
    let (server, _handle) = env.serve_default().await;
    let (a, b, c) = (server.client(), server.client(), server.client());
    log_in(&a, "alice").await;
    log_in(&b, "bob").await;
    assert_eq!(read_user(&a).await, "alice");
    assert_eq!(read_user(&b).await, "bob");
    assert_eq!(read_user(&c).await, "naughty!");
    assert_ne!(cookie_id(&a), cookie_id(&b));
    // Two browsers of the same user get two sessions.
    log_in(&c, "alice").await;
    assert_ne!(cookie_id(&a), cookie_id(&c));
    client_logout(&a).await;
    assert_eq!(read_user(&a).await, "naughty!");
    assert_eq!(read_user(&b).await, "bob");
    assert_eq!(read_user(&c).await, "alice");
}

async fn client_logout(client: &TestClient) {
    let response = client.post("/logout").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
}

async fn cookie_value_is_namespace_and_hex_id(env: Env) {
    let (server, _handle) = env.serve_default().await;
    let client = server.client();
    let response = client.post("/login?username=alice").send().await;
    let cookie = response.set_cookie(COOKIE).expect("a session cookie");
    let (namespace, id) = split_cookie(cookie.value());
    assert_eq!(namespace, "alice");
    assert_eq!(cookie.value(), format!("alice:{id}"));
    // uapi's CookieSettings defaults: HttpOnly, Secure, SameSite=Lax, a browser-session cookie.
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(cookie.max_age(), None);
    assert_eq!(client.get("/id").send().await.body, format!("alice|{id}"));
}

async fn login_mints_a_new_id(env: Env) {
    let (server, handle) = env.serve_default().await;
    // The attacker gets an anonymous session and plants its cookie in the victim's browser.
    let attacker = server.client();
    let response = attacker.post("/set?key=cart&value=1").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let planted = session_cookie(&attacker);
    let (namespace, old_id) = split_cookie(&planted);
    assert_eq!(namespace, "");
    let old_id = old_id.to_owned();
    assert!(load(&handle, "", &old_id).await.is_some());

    let victim = server.client();
    victim.set_cookie(COOKIE, &planted);
    assert_eq!(victim.get("/get?key=cart").send().await.body, "1");
    log_in(&victim, "alice").await;
    let new_id = cookie_id(&victim);
    assert_ne!(new_id, old_id, "the login kept the planted id");
    assert_eq!(session_cookie(&victim), format!("alice:{new_id}"));
    // The session's contents moved with it.
    assert_eq!(victim.get("/get?key=cart").send().await.body, "1");
    assert_eq!(read_user(&victim).await, "alice");

    // The planted id no longer loads anything, and its key is gone.
    assert_eq!(read_user(&attacker).await, "naughty!");
    assert_eq!(attacker.get("/id").send().await.body, "|");
    assert_eq!(load(&handle, "", &old_id).await, None);
    if env.is_redis() {
        assert_eq!(
            env.keys("*").await,
            vec!["alice:s".to_owned(), format!("alice:s:{new_id}")]
        );
    }
}

async fn update_without_namespace_change_keeps_the_id(env: Env) {
    let (server, handle) = env.serve_default().await;
    let client = server.client();
    log_in(&client, "alice").await;
    let before = session_cookie(&client);
    for colour in ["red", "green"] {
        let response = client
            .post(&format!("/set?key=colour&value={colour}"))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        assert!(
            response.set_cookie(COOKIE).is_none(),
            "cookie re-sent: {:?}",
            response.set_cookies()
        );
        assert_eq!(session_cookie(&client), before);
        assert_eq!(client.get("/get?key=colour").send().await.body, colour);
    }
    assert_eq!(read_user(&client).await, "alice");
    // Logging in again as the same user keeps the namespace, hence the id.
    log_in(&client, "alice").await;
    assert_eq!(session_cookie(&client), before);
    assert_eq!(
        handle.list_namespace("alice").await.unwrap(),
        vec![split_cookie(&before).1.to_owned()]
    );
}

async fn remove_namespace_logs_out_every_client(env: Env) {
    let (server, handle) = env.serve_default().await;
    let (laptop, phone, other) = (server.client(), server.client(), server.client());
    log_in(&laptop, "alice").await;
    log_in(&phone, "alice").await;
    log_in(&other, "bob").await;
    assert_eq!(handle.list_namespace("alice").await.unwrap().len(), 2);

    let admin = server.client();
    let response = admin
        .post("/admin/remove-namespace?namespace=alice")
        .send()
        .await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert_eq!(read_user(&laptop).await, "naughty!");
    assert_eq!(read_user(&phone).await, "naughty!");
    assert_eq!(read_user(&other).await, "bob");
    assert!(handle.list_namespace("alice").await.unwrap().is_empty());
    if env.is_redis() {
        assert!(env.keys("alice*").await.is_empty());
    }
    // Alice can log in again.
    log_in(&phone, "alice").await;
    assert_eq!(read_user(&phone).await, "alice");
    assert_eq!(read_user(&laptop).await, "naughty!");
}

/// Checks that the namespace is empty and that the response deleted the cookie.
async fn assert_not_written_back(
    env: &Env,
    handle: &AsyncRedisSessionStore,
    client: &TestClient,
    response: &TestResponse,
    id: &str,
) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body, "|", "the session survived its removal");
    assert!(
        deletes_cookie(response, COOKIE),
        "cookie not deleted: {:?}",
        response.set_cookies()
    );
    assert_eq!(client.cookie(COOKIE), None);
    assert_eq!(load(handle, "alice", id).await, None);
    assert!(handle.list_namespace("alice").await.unwrap().is_empty());
    if env.is_redis() {
        assert_eq!(env.keys("*").await, Vec::<String>::new());
    }
    assert_eq!(read_user(client).await, "naughty!");
}

async fn session_removed_while_held_is_not_written_back(env: Env) {
    let gate = Arc::new(Gate::default());
    let mut app = App::new();
    routes(&mut app);
    let handle = env.configure(&mut app, AsyncSessionConfig::default());
    app.add_state(handle.clone());
    app.add_state(gate.clone());
    let server = TestServer::start(app).await;
    let client = server.client();
    log_in(&client, "alice").await;
    let id = cookie_id(&client);

    let request = tokio::spawn({
        let client = client.clone();
        async move { client.post("/held-update?value=x").send().await }
    });
    tokio::time::timeout(Duration::from_secs(5), gate.loaded.notified())
        .await
        .expect("the handler never loaded the session");
    // Log alice out everywhere while the request holds her session.
    assert_eq!(handle.remove_namespace("alice").await.unwrap(), 1);
    gate.proceed.notify_one();
    let response = request.await.unwrap();
    assert_not_written_back(&env, &handle, &client, &response, &id).await;
}

async fn session_removed_by_its_own_request_is_not_written_back(env: Env) {
    let (server, handle) = env.serve_default().await;
    let client = server.client();
    log_in(&client, "alice").await;
    let id = cookie_id(&client);
    let response = client.post("/self-removing-update?value=x").send().await;
    assert_not_written_back(&env, &handle, &client, &response, &id).await;
}

async fn malformed_cookies_are_anonymous(env: Env) {
    let (server, _handle) = env.serve_default().await;
    // A real session, so that an unknown id is not unknown merely because the store is empty.
    let owner = server.client();
    log_in(&owner, "alice").await;
    let real_id = cookie_id(&owner);

    let hex = "0123456789abcdef".repeat(4);
    let values = [
        String::new(),
        "abc".into(),
        "a:b:c".into(),
        ":".into(),
        "ab%:Z".repeat(1700), // 8.5 KB of junk
        "é:ü".into(),
        format!("é:{hex}"),
        format!("alice:{hex}"),   // well formed, unknown
        format!(":{hex}"),        // well formed, unknown, anonymous
        format!("bob:{real_id}"), // a real id under the wrong namespace
        format!("alice:{}", real_id.to_uppercase()),
        format!("alice:{}", &real_id[1..]),
        format!("alice:{real_id}0"),
        format!("%61lice:{real_id}"), // not the canonical encoding of `alice`
        format!("%G1:{real_id}"),
        format!("\"alice:{real_id}\""),
    ];
    for value in &values {
        let client = server.client();
        let header = format!("{COOKIE}={value}");
        let response = client.get("/").raw_cookie(&header).send().await;
        let shown: String = value.chars().take(40).collect();
        assert_eq!(response.status, StatusCode::OK, "cookie {shown:?}");
        assert_eq!(response.body, "naughty!", "cookie {shown:?}");
        assert!(response.set_cookies().is_empty(), "cookie {shown:?}");
        // And the session can be used: a login over a junk cookie works.
        let response = client
            .post("/login?username=carol")
            .raw_cookie(&header)
            .send()
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "cookie {shown:?}");
        let cookie = session_cookie(&client);
        assert_eq!(split_cookie(&cookie).0, "carol", "cookie {shown:?}");
    }
    // A junk cookie under another name does not disturb the session cookie.
    let response = owner
        .get("/")
        .raw_cookie(&format!("other=a:b:c; {COOKIE}=alice:{real_id}; x=%"))
        .send()
        .await;
    assert_eq!(response.body, "alice");
}

async fn special_namespaces_round_trip(env: Env) {
    let (server, handle) = env.serve_default().await;
    for username in ["a:b c;d,é", "50%", "x\"y\\z", "🦀", "a=b"] {
        let client = server.client();
        log_in(&client, username).await;
        assert_eq!(read_user(&client).await, username);
        let cookie = session_cookie(&client);
        assert!(
            cookie
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\')),
            "cookie value {cookie:?} is not a plain cookie-octet string"
        );
        let (_, id) = split_cookie(&cookie);
        assert_eq!(
            client.get("/id").send().await.body,
            format!("{username}|{id}")
        );
        assert_eq!(handle.list_namespace(username).await.unwrap(), vec![id]);
        let response = server
            .client()
            .post(&format!(
                "/admin/remove-namespace?namespace={}",
                encode(username)
            ))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        assert_eq!(read_user(&client).await, "naughty!", "{username:?}");
    }
    if env.is_redis() {
        assert_eq!(env.keys("*").await, Vec::<String>::new());
    }
    // The documented example: uapi's separator inside the namespace.
    let client = server.client();
    log_in(&client, "a:b c;d,é").await;
    assert!(session_cookie(&client).starts_with("a%3Ab%20c%3Bd%2C%C3%A9:"));
}

async fn anonymous_sessions_create_no_index(env: Env) {
    let (server, handle) = env.serve_default().await;
    let client = server.client();
    let response = client.post("/set?key=theme&value=dark").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let cookie = session_cookie(&client);
    let (namespace, id) = split_cookie(&cookie);
    assert_eq!(namespace, "");
    assert_eq!(client.get("/get?key=theme").send().await.body, "dark");
    assert!(load(&handle, "", id).await.is_some());
    assert!(handle.list_namespace("").await.unwrap().is_empty());
    if env.is_redis() {
        assert_eq!(env.keys("*").await, vec![format!(":s:{id}")]);
    }
    // A second anonymous session: still no index.
    let other = server.client();
    other.post("/set?key=theme&value=light").send().await;
    if env.is_redis() {
        assert_eq!(env.keys("*:s").await, Vec::<String>::new());
        assert_eq!(env.keys("*").await.len(), 2);
    }
}

async fn ttl_is_kept_across_updates(env: Env) {
    let max_age = Duration::from_secs(60);
    let (server, _handle) = env
        .serve(AsyncSessionConfig::default().max_age(max_age))
        .await;
    let client = server.client();
    log_in(&client, "alice").await;
    let id = cookie_id(&client);
    let first = env.ttl("alice", &id).await.expect("a TTL");
    assert!(
        first <= max_age && first > max_age - Duration::from_secs(5),
        "{first:?}"
    );
    let mut previous = first;
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let response = client
            .post(&format!("/set?key=round&value={round}"))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        let now = env.ttl("alice", &id).await.expect("a TTL");
        assert!(
            now + Duration::from_millis(300) <= previous,
            "TTL reset by an update: {previous:?} then {now:?}"
        );
        previous = now;
    }
    if env.is_redis() {
        // The index lives at least as long as the session (both read in one MULTI/EXEC).
        let (session_ttl, index_ttl): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("PTTL")
            .arg(format!("alice:s:{id}"))
            .cmd("PTTL")
            .arg("alice:s")
            .query_async(&mut env.probe())
            .await
            .unwrap();
        assert!(
            index_ttl >= session_ttl && session_ttl > 0,
            "index {index_ttl} ms, session {session_ttl} ms"
        );
    }
}

async fn two_configurations_are_independent(env: Env) {
    let mut app = App::new();
    app.get("/", index)
        .post("/login", login)
        .post("/logout", logout)
        .get("/b", index_b)
        .post("/b/login", login_b)
        .post("/b/logout", logout_b);
    let first = env.configure(&mut app, AsyncSessionConfig::default());
    let second = env.configure_separate(
        &mut app,
        AsyncSessionConfig::default()
            .cookie_name("another_id")
            .session_arg_param_name("another_session"),
    );
    let server = TestServer::start(app).await;
    let client = server.client();

    log_in(&client, "alice").await;
    assert_eq!(client.cookie("another_id"), None);
    assert_eq!(client.get("/b").send().await.body, "naughty!");
    let response = client.post("/b/login?username=bob").send().await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert!(response.set_cookie(COOKIE).is_none());
    assert_eq!(read_user(&client).await, "alice");
    assert_eq!(client.get("/b").send().await.body, "bob");

    // A cookie value of one configuration means nothing to the other.
    let swapped = server.client();
    swapped.set_cookie(COOKIE, &client.cookie("another_id").unwrap());
    swapped.set_cookie("another_id", &session_cookie(&client));
    assert_eq!(read_user(&swapped).await, "naughty!");
    assert_eq!(swapped.get("/b").send().await.body, "naughty!");

    // Removing a namespace in one leaves the other alone.
    log_in(&server.client(), "bob").await;
    assert_eq!(first.list_namespace("bob").await.unwrap().len(), 1);
    assert_eq!(first.remove_namespace("bob").await.unwrap(), 1);
    assert_eq!(client.get("/b").send().await.body, "bob");
    assert_eq!(second.list_namespace("bob").await.unwrap().len(), 1);

    // Logging out of one leaves the other.
    client_logout(&client).await;
    assert_eq!(client.cookie(COOKIE), None);
    assert_eq!(read_user(&client).await, "naughty!");
    assert_eq!(client.get("/b").send().await.body, "bob");
    let response = client.post("/b/logout").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/b").send().await.body, "naughty!");
    assert_eq!(client.cookie("another_id"), None);
}

async fn misspelled_session_parameter_fails_the_build(env: Env) {
    let mut app = App::new();
    app.get("/", index).get("/typo", misspelled);
    env.configure(&mut app, AsyncSessionConfig::default());
    let error = app.build().expect_err("a handler asks for `sesion`");
    let message = error.to_string();
    assert!(message.contains("`sesion`"), "{message}");
    assert!(message.contains("misspelled"), "{message}");
    assert!(message.contains("did you mean `session`"), "{message}");
    assert_eq!(error.problems().count(), 1, "{message}");
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Env::memory()).await;
                }
            )*
        }

        mod on_redis {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Env::redis().await).await;
                }
            )*
        }
    };
}

suite!(
    login_read_logout,
    clients_are_isolated,
    cookie_value_is_namespace_and_hex_id,
    login_mints_a_new_id,
    update_without_namespace_change_keeps_the_id,
    remove_namespace_logs_out_every_client,
    session_removed_while_held_is_not_written_back,
    session_removed_by_its_own_request_is_not_written_back,
    malformed_cookies_are_anonymous,
    special_namespaces_round_trip,
    anonymous_sessions_create_no_index,
    ttl_is_kept_across_updates,
    two_configurations_are_independent,
    misspelled_session_parameter_fails_the_build,
);

// ---------------------------------------------------------------------------------------------
// Redis only: layout, corrupt payloads, faults.

#[tokio::test]
async fn redis_corrupt_payload_is_anonymous() {
    let env = Env::redis().await;
    let (server, _handle) = env.serve_default().await;
    let client = server.client();
    for payload in [
        "garbage",
        "",
        "[]",
        "{\"user_id\": 5}",
        "{\"user_id\": \"al",
    ] {
        log_in(&client, "alice").await;
        let id = cookie_id(&client);
        let key = format!("alice:s:{id}");
        let () = env.query(redis::cmd("SET").arg(&key).arg(payload)).await;
        let response = client.get("/").send().await;
        assert_eq!(response.status, StatusCode::OK, "payload {payload:?}");
        assert_eq!(response.body, "naughty!", "payload {payload:?}");
        assert_eq!(client.get("/id").send().await.body, "|");
    }
}

#[tokio::test]
async fn redis_clear_session_honours_the_key_prefix() {
    let env = Env::redis_with("app:", Duration::from_secs(2)).await;
    let (server, _handle) = env.serve_default().await;
    let client = server.client();
    log_in(&client, "alice").await;
    let id = cookie_id(&client);
    // uapi's layout, under the prefix.
    assert_eq!(
        env.keys("*").await,
        vec!["app:alice:s".to_owned(), format!("app:alice:s:{id}")]
    );
    let payload: String = env
        .query(redis::cmd("GET").arg(format!("app:alice:s:{id}")))
        .await;
    assert_eq!(payload, r#"{"user_id":"alice"}"#);
    let members: Vec<String> = env
        .query(redis::cmd("ZRANGE").arg("app:alice:s").arg(0).arg(-1))
        .await;
    assert_eq!(members, vec![id.clone()]);

    client_logout(&client).await;
    assert_eq!(env.keys("app:*").await, Vec::<String>::new());
    assert_eq!(env.keys("*").await, Vec::<String>::new());
}

/// Sends `request` with a hang guard; 5 s is not the expected time.
async fn bounded(request: sessions_tests::RequestBuilder) -> (TestResponse, Duration) {
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), request.send())
        .await
        .expect("the request hung");
    (response, started.elapsed())
}

fn assert_unavailable(response: &TestResponse, what: &str) {
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        response.body
    );
    assert!(
        response.header("retry-after").is_some(),
        "{what}: no Retry-After"
    );
    assert!(
        !response.body.is_empty() && response.body.len() < 100,
        "{what}: body {:?}",
        response.body
    );
}

#[tokio::test]
async fn redis_down_answers_503_then_recovers() {
    let mut env = Env::redis_with("", Duration::from_millis(250)).await;
    let (server, _handle) = env.serve_default().await;
    let client = server.client();
    log_in(&client, "alice").await;
    let cookie = session_cookie(&client);

    env.server().stop();
    for round in 0..3 {
        let (response, took) = bounded(client.get("/")).await;
        assert_unavailable(&response, "GET / with a session");
        eprintln!("round {round}: GET / answered 503 in {took:?}");
        let (response, took) = bounded(server.client().post("/login?username=bob")).await;
        assert_unavailable(&response, "POST /login");
        eprintln!("round {round}: POST /login answered 503 in {took:?}");
        // A 503 does not cost the client its cookie.
        assert_eq!(session_cookie(&client), cookie);
    }
    // A request that needs no store call still works.
    let (response, _) = bounded(server.client().get("/")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, "naughty!");

    env.server().restart();
    let started = Instant::now();
    let fresh = server.client();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (response, _) = bounded(fresh.post("/login?username=bob")).await;
        if response.status == StatusCode::CREATED {
            break;
        }
        assert_unavailable(&response, "POST /login after the restart");
        assert!(attempts < 100, "no recovery after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "recovered after {attempts} attempts, {:?}",
        started.elapsed()
    );
    assert_eq!(read_user(&fresh).await, "bob");
    // The restarted Redis has no persistence: alice's session is gone, not an error.
    assert_eq!(read_user(&client).await, "naughty!");
    log_in(&client, "alice").await;
    assert_eq!(read_user(&client).await, "alice");
}

/// How [`traffic_survives`] disrupts Redis.
#[derive(Debug, Clone, Copy)]
enum Disruption {
    /// `CLIENT PAUSE` for 1.5 s: an unresponsive Redis that keeps its data.
    Pause,
    /// Kill the server, wait 1 s, start it again on its append-only file.
    KillAndRestart,
}

/// Eight clients increment counters in their sessions while Redis is
/// disrupted. While it is out, requests answer 503 with `Retry-After`;
/// afterwards they succeed again; and no increment acknowledged with a 200
/// is lost.
async fn traffic_survives(mut env: Env, disruption: Disruption) {
    const CLIENTS: usize = 8;
    let (server, _handle) = env.serve_default().await;
    let clients: Vec<TestClient> = (0..CLIENTS).map(|_| server.client()).collect();
    for (n, client) in clients.iter().enumerate() {
        log_in(client, &format!("user{n}")).await;
    }

    let started = Instant::now();
    let run_for = Duration::from_millis(3500);
    let workers: Vec<_> = clients
        .iter()
        .cloned()
        .map(|client| {
            tokio::spawn(async move {
                let (mut acked, mut last, mut unavailable, mut after_pause) = (0_u64, 0_u64, 0, 0);
                while started.elapsed() < run_for {
                    let sent = started.elapsed();
                    let (response, _) = bounded(client.post("/incr")).await;
                    match response.status {
                        StatusCode::OK => {
                            let value: u64 = response.body.parse().expect("a number");
                            assert!(value > last, "counter went back: {last} then {value}");
                            acked += 1;
                            last = value;
                            if sent > Duration::from_millis(2600) {
                                after_pause += 1;
                            }
                        }
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert!(response.header("retry-after").is_some());
                            unavailable += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("unexpected {other}: {}", response.body),
                    }
                }
                (acked, last, unavailable, after_pause)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    match disruption {
        Disruption::Pause => {
            let () = env
                .query(redis::cmd("CLIENT").arg("PAUSE").arg(1500).arg("ALL"))
                .await;
        }
        Disruption::KillAndRestart => {
            env.server().stop();
            tokio::time::sleep(Duration::from_millis(1000)).await;
            env.server().restart();
        }
    }
    eprintln!("{disruption:?} done at {:?}", started.elapsed());

    let mut total_unavailable = 0;
    for (n, worker) in workers.into_iter().enumerate() {
        let (acked, last, unavailable, after_pause) = worker.await.unwrap();
        total_unavailable += unavailable;
        let client = &clients[n];
        let stored: u64 = client
            .get("/get?key=n")
            .send()
            .await
            .body
            .parse()
            .expect("a counter");
        eprintln!(
            "client {n}: {acked} acknowledged (last {last}), {unavailable} unavailable, \
             {after_pause} after the disruption, stored {stored}"
        );
        assert!(acked > 0, "client {n} never succeeded");
        assert!(
            after_pause > 0,
            "client {n} did not recover after the disruption"
        );
        // Every acknowledged increment is there; an unacknowledged one may or may not be (a
        // write that timed out can still run when Redis wakes up), never more than those.
        assert!(
            stored >= last,
            "client {n}: stored {stored} < acknowledged {last}"
        );
        assert!(
            stored >= acked,
            "client {n}: stored {stored} < {acked} acknowledged"
        );
        assert!(
            stored <= acked + unavailable,
            "client {n}: stored {stored} > {acked} acknowledged + {unavailable} failed"
        );
        assert_eq!(read_user(client).await, format!("user{n}"));
    }
    assert!(total_unavailable > 0, "no request saw the disruption");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pause_under_traffic_loses_no_acknowledged_write() {
    let env = Env::redis_with("", Duration::from_millis(250)).await;
    traffic_survives(env, Disruption::Pause).await;
}

/// A persistent server (`appendfsync always`) is killed and restarted
/// mid-traffic: what it acknowledged is back after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_traffic_loses_no_acknowledged_write() {
    let server = RedisServer::start_persistent();
    let env = Env::redis_on(server, "", Duration::from_millis(250)).await;
    traffic_survives(env, Disruption::KillAndRestart).await;
}
