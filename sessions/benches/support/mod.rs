//! What the benchmarks share: requests through `AppService::handle` and a
//! throw-away `redis-server`. Included with `#[path]` by each bench.

#![allow(dead_code, unreachable_pub, missing_docs)] // each bench uses a part

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sessions::{AppService, Body};

/// A request with no body.
pub fn request(method: &str, uri: &str, cookie: Option<&str>) -> http::Request<Body> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(http::header::COOKIE, cookie);
    }
    builder.body(Body::empty()).expect("a valid request")
}

/// Sends one request and returns the `name=value` of its first
/// `Set-Cookie`, to replay as a `Cookie` header.
pub fn cookie_of(runtime: &tokio::runtime::Runtime, service: &AppService, uri: &str) -> String {
    let response = runtime
        .block_on(service.handle(request("POST", uri, None)))
        .expect("infallible");
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    let set_cookie = response
        .headers()
        .get(http::header::SET_COOKIE)
        .expect("a Set-Cookie")
        .to_str()
        .expect("ASCII");
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// A single-threaded runtime, as a server pinned to one core has.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A `redis-server` of our own on a free loopback port, stopped on drop.
pub struct RedisServer {
    child: Child,
    pub url: String,
    pub addr: SocketAddr,
}

impl RedisServer {
    /// Starts one, or `None` when `redis-server` is not installed.
    ///
    /// # Panics
    ///
    /// When it is installed but does not start within 10 s.
    pub fn start() -> Option<RedisServer> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = match Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => panic!("cannot start redis-server: {error}"),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
