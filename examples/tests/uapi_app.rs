//! The `uapi_app` binary end to end: started on a free port, driven over
//! real HTTP by clients with their own cookie jars, its Redis inspected
//! directly.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, TcpStream},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use sessions_tests::redis_server::RedisServer;
use sha1::{Digest as _, Sha1};

/// How long the app gets to print its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A token made by the real itsdangerous 2.2.0 for uapi's cookie sessions:
/// secret key `test`, salt `cookie-session`, SHA-1, payload
/// `{"user_id": "MyCoolUsername"}`, signed at 1763999900
/// (sessions/tests/vectors/itsdangerous.json).
const ITSDANGEROUS_TOKEN: &str =
    "eyJ1c2VyX2lkIjoiTXlDb29sVXNlcm5hbWUifQ.aSSAnA.Brr6dRk2yhHoCbddPW5F350L47g";

/// A running `uapi_app`; dropping it kills the process (and prints its log
/// if the test is failing).
struct AppProcess {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl AppProcess {
    /// Starts `uapi_app ARGS --port 0` and waits for its `listening on`
    /// line.
    fn start(args: &[&str]) -> AppProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uapi_app"))
            .args(args)
            .args(["--port", "0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn uapi_app");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send(line);
            // Keep draining so the app never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut process = AppProcess {
            child,
            port: 0,
            log,
        };
        let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
        process.port = line
            .trim_end()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                let status = process.child.try_wait();
                panic!(
                    "uapi_app {args:?} did not print its port (printed {line:?}, status {status:?}); log:\n{}",
                    process.log()
                )
            });
        process
    }

    /// A new client with an empty cookie jar.
    fn browser(&self) -> Browser {
        Browser {
            port: self.port,
            jar: BTreeMap::new(),
        }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- uapi_app log ---\n{}", self.log());
        }
    }
}

/// One response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    /// The `Set-Cookie` headers for `name`, parsed.
    fn set_cookie(&self, name: &str) -> Option<cookie::Cookie<'static>> {
        self.headers
            .iter()
            .filter(|(key, _)| key == "set-cookie")
            .filter_map(|(_, value)| cookie::Cookie::parse(value.clone()).ok())
            .find(|c| c.name() == name)
    }

    /// The raw `Set-Cookie` header for `name`.
    fn set_cookie_text(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key == "set-cookie")
            .map(|(_, value)| value.as_str())
            .find(|value| value.starts_with(&format!("{name}=")))
    }
}

/// An HTTP/1.1 client with a cookie jar: one browser.
struct Browser {
    port: u16,
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path)
    }

    fn post(&mut self, path: &str) -> Reply {
        self.send("POST", path)
    }

    /// Sends a request with the jar's cookies and keeps the cookies set.
    fn send(&mut self, method: &str, path: &str) -> Reply {
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let cookies = (!cookies.is_empty()).then(|| cookies.join("; "));
        let reply = request(self.port, method, path, cookies.as_deref());
        for (key, value) in &reply.headers {
            if key != "set-cookie" {
                continue;
            }
            let cookie = cookie::Cookie::parse(value.clone()).expect("a valid Set-Cookie");
            if cookie.max_age().is_some_and(|age| age.is_zero()) {
                self.jar.remove(cookie.name());
            } else {
                self.jar
                    .insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        reply
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }
}

/// One request on its own connection (`Connection: close`).
fn request(port: u16, method: &str, path: &str, cookies: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to uapi_app");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(cookies) = cookies {
        head.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "unexpected chunked response"
    );
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// itsdangerous' key for `secret` under uapi's salt: SHA-1("cookie-session"
/// + "signer" + secret), as an HMAC-SHA1.
fn uapi_mac(secret: &str) -> Hmac<Sha1> {
    let key = Sha1::new()
        .chain_update(b"cookie-session")
        .chain_update(b"signer")
        .chain_update(secret.as_bytes())
        .finalize();
    <Hmac<Sha1> as Mac>::new_from_slice(&key).expect("any key length")
}

/// A token as Python's uapi (itsdangerous `URLSafeTimedSerializer`) signs
/// it, built independently of the `sessions` crate.
fn uapi_token(secret: &str, json: &str, timestamp: u64) -> String {
    let bytes = timestamp.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json),
        URL_SAFE_NO_PAD.encode(&bytes[first..])
    );
    let mut mac = uapi_mac(secret);
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

fn redis_connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .expect("redis url")
        .get_connection()
        .expect("connect to the test's Redis")
}

/// The `{namespace}:{id}` of a server-side session cookie, checked.
fn session_id<'a>(browser: &'a Browser, namespace: &str) -> &'a str {
    let value = browser.cookie("session_id").expect("a session_id cookie");
    let id = value
        .strip_prefix(namespace)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or_else(|| panic!("cookie {value:?} is not `{namespace}:ID`"));
    assert_eq!(id.len(), 64, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    id
}

// ---------------------------------------------------------------- cookie

#[test]
fn cookie_login_shows_the_user_and_logout_forgets_it() {
    let app = AppProcess::start(&["cookie", "--secret-key", "test"]);
    let mut browser = app.browser();
    assert_eq!(browser.get("/").body, "naughty!");

    let login = browser.post("/login?username=alice");
    assert_eq!(login.status, 201);
    let set = login.set_cookie_text("session").expect("a session cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(set.contains("Max-Age=2678400"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP, so not Secure: {set}");

    let index = browser.get("/");
    assert_eq!((index.status, index.body.as_str()), (200, "alice"));

    let logout = browser.post("/logout");
    assert_eq!(logout.status, 204);
    let removal = logout.set_cookie("session").expect("a removal cookie");
    assert_eq!(removal.value(), "");
    assert!(browser.cookie("session").is_none());
    assert_eq!(browser.get("/").body, "naughty!");
}

#[test]
fn cookie_clients_are_isolated() {
    let app = AppProcess::start(&["cookie", "--secret-key", "test"]);
    let (mut alice, mut bob) = (app.browser(), app.browser());
    assert_eq!(alice.post("/login?username=alice").status, 201);
    assert_eq!(bob.get("/").body, "naughty!");
    assert_eq!(bob.post("/login?username=bob").status, 201);
    assert_eq!(alice.get("/").body, "alice");
    assert_eq!(bob.get("/").body, "bob");
    assert_eq!(alice.post("/logout").status, 204);
    assert_eq!(alice.get("/").body, "naughty!");
    assert_eq!(bob.get("/").body, "bob");
}

#[test]
fn cookie_older_than_max_age_is_refused_by_the_server() {
    let app = AppProcess::start(&["cookie", "--secret-key", "test", "--max-age", "1"]);
    let mut browser = app.browser();
    assert_eq!(browser.post("/login?username=alice").status, 201);
    assert_eq!(browser.get("/").body, "alice");
    thread::sleep(Duration::from_millis(2200));
    // The browser still sends it (Max-Age is 31 days); the server refuses it.
    assert!(browser.cookie("session").is_some());
    let index = browser.get("/");
    assert_eq!((index.status, index.body.as_str()), (200, "naughty!"));
}

#[test]
fn cookie_is_in_the_python_uapi_format() {
    let app = AppProcess::start(&["cookie", "--secret-key", "test"]);
    let mut browser = app.browser();
    let before = now();
    assert_eq!(browser.post("/login?username=alice").status, 201);
    let token = browser
        .cookie("session")
        .expect("a session cookie")
        .to_owned();

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let payload = URL_SAFE_NO_PAD.decode(parts[0]).expect("base64url payload");
    assert_eq!(payload, br#"{"user_id":"alice"}"#);
    let stamp = URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("base64url timestamp");
    assert!(stamp.len() <= 8 && stamp.first() != Some(&0), "{stamp:?}");
    let signed_at = stamp.iter().fold(0_u64, |n, &b| n << 8 | u64::from(b));
    assert!(
        (before..=now()).contains(&signed_at),
        "{signed_at} not in {before}.."
    );
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .expect("base64url signature");
    let mut mac = uapi_mac("test");
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&signature)
        .expect("HMAC-SHA1 under itsdangerous' derived key");

    // The other way round: a token signed as uapi signs it is accepted.
    let mut python = app.browser();
    python.jar.insert(
        "session".into(),
        uapi_token("test", r#"{"user_id":"from-python"}"#, now()),
    );
    assert_eq!(python.get("/").body, "from-python");
    // ... but not under another secret.
    python.jar.insert(
        "session".into(),
        uapi_token("other", r#"{"user_id":"from-python"}"#, now()),
    );
    assert_eq!(python.get("/").body, "naughty!");
}

#[test]
fn cookie_made_by_itsdangerous_is_accepted() {
    // The vector is old; allow ten years so that only the signature counts.
    let app = AppProcess::start(&["cookie", "--secret-key", "test", "--max-age", "315360000"]);
    let reply = request(
        app.port,
        "GET",
        "/",
        Some(&format!("session={ITSDANGEROUS_TOKEN}")),
    );
    assert_eq!((reply.status, reply.body.as_str()), (200, "MyCoolUsername"));
}

#[test]
fn cookie_settings_follow_the_flags() {
    let app = AppProcess::start(&[
        "cookie",
        "--secret-key",
        "test",
        "--same-site",
        "strict",
        "--cookie-path",
        "/app",
        "--cookie-max-age",
        "",
    ]);
    let mut browser = app.browser();
    let login = browser.post("/login?username=alice");
    let set = login.set_cookie_text("session").expect("a session cookie");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/app"), "{set}");
    assert!(!set.contains("Max-Age"), "{set}");
    let logout = browser.post("/logout");
    let removal = logout.set_cookie_text("session").expect("a removal cookie");
    assert!(removal.contains("Path=/app"), "{removal}");
}

#[test]
fn bad_arguments_print_the_usage_and_exit_2() {
    for args in [
        &[][..],
        &["memcached"],
        &["cookie", "--bogus"],
        &["cookie", "--port", "http"],
        &["redis", "--same-site", "sideways"],
        &["cookie", "--max-age"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_uapi_app"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run uapi_app");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("usage: uapi_app"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

// ----------------------------------------------------------------- redis

#[test]
fn redis_sessions_use_uapis_layout() {
    let redis_server = RedisServer::start();
    let url = redis_server.url();
    let app = AppProcess::start(&["redis", "--redis-url", &url, "--key-prefix", "test:"]);
    let mut redis = redis_connection(&redis_server);
    let (mut alice, mut bob) = (app.browser(), app.browser());
    assert_eq!(alice.get("/").body, "naughty!");

    let login = alice.post("/login?username=alice");
    assert_eq!(login.status, 201);
    let set = login
        .set_cookie_text("session_id")
        .expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(
        !set.contains("Max-Age"),
        "uapi's default: a browser-session cookie: {set}"
    );
    let alice_id = session_id(&alice, "alice").to_owned();
    assert_eq!(bob.post("/login?username=bob").status, 201);
    let bob_id = session_id(&bob, "bob").to_owned();
    assert_ne!(alice_id, bob_id);

    assert_eq!(alice.get("/").body, "alice");
    assert_eq!(bob.get("/").body, "bob");

    let key = format!("test:alice:s:{alice_id}");
    let stored: Option<String> = redis::cmd("GET").arg(&key).query(&mut redis).expect("GET");
    assert_eq!(stored.as_deref(), Some(r#"{"user_id":"alice"}"#));
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut redis).expect("TTL");
    assert!(ttl > 13 * 24 * 3600 && ttl <= 14 * 24 * 3600, "{ttl}");
    let index: Vec<String> = redis::cmd("ZRANGE")
        .arg("test:alice:s")
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .expect("ZRANGE");
    assert_eq!(index, [alice_id.as_str()]);
    let score: f64 = redis::cmd("ZSCORE")
        .arg("test:alice:s")
        .arg(&alice_id)
        .query(&mut redis)
        .expect("ZSCORE");
    #[allow(clippy::cast_precision_loss, reason = "Unix seconds fit an f64")]
    let expected = (now() + 14 * 24 * 3600) as f64;
    assert!((score - expected).abs() < 30.0, "{score} vs {expected}");

    assert_eq!(alice.post("/logout").status, 204);
    assert!(alice.cookie("session_id").is_none());
    assert_eq!(alice.get("/").body, "naughty!");
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query(&mut redis)
        .expect("EXISTS");
    assert!(!exists, "the session is deleted under the prefix");
    assert_eq!(bob.get("/").body, "bob");
}

#[test]
fn redis_remove_namespace_logs_the_user_out_everywhere() {
    let redis_server = RedisServer::start();
    let url = redis_server.url();
    let app = AppProcess::start(&["redis", "--redis-url", &url, "--key-prefix", "test:"]);
    let mut redis = redis_connection(&redis_server);
    let (mut laptop, mut phone, mut bob) = (app.browser(), app.browser(), app.browser());
    assert_eq!(laptop.post("/login?username=alice").status, 201);
    assert_eq!(phone.post("/login?username=alice").status, 201);
    assert_eq!(bob.post("/login?username=bob").status, 201);
    assert_ne!(session_id(&laptop, "alice"), session_id(&phone, "alice"));
    let count: usize = redis::cmd("ZCARD")
        .arg("test:alice:s")
        .query(&mut redis)
        .expect("ZCARD");
    assert_eq!(count, 2);

    let removed = laptop.post("/admin/remove-namespace?namespace=alice");
    assert_eq!(removed.status, 204);
    assert_eq!(laptop.get("/").body, "naughty!");
    assert_eq!(phone.get("/").body, "naughty!");
    assert_eq!(bob.get("/").body, "bob");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("test:alice*")
        .query(&mut redis)
        .expect("KEYS");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn memory_sessions_without_redis_url() {
    let app = AppProcess::start(&["redis"]);
    let (mut laptop, mut phone, mut bob) = (app.browser(), app.browser(), app.browser());
    assert_eq!(laptop.get("/").body, "naughty!");
    assert_eq!(laptop.post("/login?username=alice").status, 201);
    assert_eq!(phone.post("/login?username=alice").status, 201);
    assert_eq!(bob.post("/login?username=bob").status, 201);
    session_id(&laptop, "alice");
    assert_eq!(laptop.get("/").body, "alice");
    assert_eq!(bob.get("/").body, "bob");

    assert_eq!(phone.post("/logout").status, 204);
    assert_eq!(phone.get("/").body, "naughty!");
    assert_eq!(laptop.get("/").body, "alice");

    assert_eq!(phone.post("/login?username=alice").status, 201);
    let removed = bob.post("/admin/remove-namespace?namespace=alice");
    assert_eq!(removed.status, 204);
    assert_eq!(laptop.get("/").body, "naughty!");
    assert_eq!(phone.get("/").body, "naughty!");
    assert_eq!(bob.get("/").body, "bob");
    assert!(app.log().contains("memory"), "{}", app.log());
}

#[test]
fn unreachable_redis_fails_to_start_with_status_1() {
    // Port 1 on loopback: nothing listens there.
    let output = Command::new(env!("CARGO_BIN_EXE_uapi_app"))
        .args([
            "redis",
            "--port",
            "0",
            "--redis-url",
            "redis://127.0.0.1:1/",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run uapi_app");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to Redis"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_app_cleanly() {
    let mut app = AppProcess::start(&["cookie", "--secret-key", "test"]);
    assert_eq!(app.browser().get("/").body, "naughty!");
    let sent = Command::new("kill")
        .args(["-TERM", &app.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = app.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // The log is read by another thread: give it a moment to reach the end.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !app.log().contains("shutting down") && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(app.log().contains("shutting down"), "{}", app.log());
}

#[test]
fn redis_cluster_serves_the_same_behaviour_with_the_cluster_layout() {
    let cluster = sessions_tests::redis_cluster::RedisCluster::start(3, 0);
    let nodes = cluster.urls().join(",");
    let app = AppProcess::start(&["redis", "--redis-cluster", &nodes, "--key-prefix", "test:"]);
    let (mut laptop, mut phone, mut bob) = (app.browser(), app.browser(), app.browser());
    assert_eq!(laptop.get("/").body, "naughty!");
    assert_eq!(laptop.post("/login?username=alice").status, 201);
    assert_eq!(phone.post("/login?username=alice").status, 201);
    assert_eq!(bob.post("/login?username=bob").status, 201);
    // The cookie value is the same as on one Redis; the keys carry a hash tag.
    let id = session_id(&laptop, "alice").to_owned();
    let key = format!("test:{{alice}}:s:{id}");
    let owner = cluster.master_of_slot(cluster.key_slot(&key));
    let stored = cluster.cli(owner.port, &["GET", &key]);
    // redis-cli escapes the quotes it prints.
    assert_eq!(stored.trim().replace('\\', ""), r#"{"user_id":"alice"}"#);
    assert_eq!(laptop.get("/").body, "alice");
    assert_eq!(bob.get("/").body, "bob");

    assert_eq!(phone.post("/logout").status, 204);
    assert_eq!(phone.get("/").body, "naughty!");
    assert_eq!(laptop.get("/").body, "alice");
    assert_eq!(
        laptop
            .post("/admin/remove-namespace?namespace=alice")
            .status,
        204
    );
    assert_eq!(laptop.get("/").body, "naughty!");
    assert_eq!(bob.get("/").body, "bob");
}
