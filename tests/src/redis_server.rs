//! A `redis-server` process of the test's own, on a free loopback port.
//!
//! Tests that need Redis start their own server so that they can stop and restart it and run
//! side by side, never touching a Redis that is already running on the machine. Each server
//! runs without persistence (or, from [`RedisServer::start_persistent`], with an fsynced
//! append-only file), with its working directory and log in a fresh temporary
//! directory that is removed when the server is dropped.
//!
//! ```no_run
//! # use sessions_tests::redis_server::RedisServer;
//! let mut server = RedisServer::start();
//! let url = server.url(); // redis://127.0.0.1:PORT/
//! server.stop();
//! server.restart();
//! # drop(url);
//! ```

use std::{
    fs,
    io::{self, BufRead, BufReader, ErrorKind, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// How long a fresh server gets to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting a server on a fresh port before giving up (another process may take a
/// free port between our probe and Redis binding it).
const START_ATTEMPTS: u32 = 5;
/// Attempts at starting a server again on its old port (the port may be briefly unavailable).
const RESTART_ATTEMPTS: u32 = 20;

const NOT_FOUND: &str = "redis-server not found on PATH: these tests start their own Redis. \
     Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)";

/// A running `redis-server` owned by a test. Dropping it kills the server and removes its
/// directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistent: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH` (the message says how to install it), or no server
    /// could be started.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Starts a server that writes every change to its append-only file
    /// before acknowledging it (`appendfsync always`), so that
    /// [`restart`](Self::restart) brings back everything it acknowledged,
    /// even after a kill.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_persistent() -> RedisServer {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> RedisServer {
        let dir = fresh_dir("redis");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match spawn_ready(port, &dir, &persistence(persistent)) {
                Ok(child) => {
                    return RedisServer {
                        port,
                        dir,
                        persistent,
                        child: Some(child),
                    }
                }
                Err(err) => last_error = err,
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("could not start redis-server after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// The server's URL: `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Unix socket the server also listens on (in its temporary directory).
    pub fn unix_socket(&self) -> PathBuf {
        socket_path(&self.dir, self.port)
    }

    /// Freezes the server (`SIGSTOP`): its connections stay open, but it reads and answers
    /// nothing until [`thaw`](Self::thaw), as a Redis behind a network partition.
    ///
    /// # Panics
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a [frozen](Self::freeze) server (`SIGCONT`).
    ///
    /// # Panics
    ///
    /// As [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the server and waits for it to exit. Does nothing if it is already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts a new one on the same port and waits until
    /// it answers: with empty data, or for a [persistent](Self::start_persistent) server with
    /// everything it acknowledged.
    ///
    /// # Panics
    ///
    /// If the server cannot be started again on its port.
    pub fn restart(&mut self) {
        self.stop();
        let mut last_error = String::new();
        for _ in 0..RESTART_ATTEMPTS {
            match spawn_ready(self.port, &self.dir, &persistence(self.persistent)) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(err) => {
                    last_error = err;
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!(
            "could not restart redis-server on port {}: {last_error}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A new empty directory for a server's (or a cluster's) files, under the system's temporary
/// directory.
pub(crate) fn fresh_dir(kind: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("sessions-tests-{kind}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// The arguments that choose a server's persistence.
fn persistence(persistent: bool) -> Vec<String> {
    let args: &[&str] = if persistent {
        &["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &["--appendonly", "no"]
    };
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// Where the server of `port` listens for Unix socket connections.
fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("redis-{port}.sock"))
}

/// Starts `redis-server` on `port`, with its files in `dir` and `extra` arguments, and waits
/// until it answers as itself (the pid must match). On failure the process is killed and the
/// error says why, with the end of the server's log.
pub(crate) fn spawn_ready(port: u16, dir: &Path, extra: &[String]) -> Result<Child, String> {
    let log_path = dir.join(format!("redis-{port}.log"));
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create log file: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot clone log file handle: {e}"))?;
    let socket = socket_path(dir, port);
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--unixsocket")
        .arg(&socket)
        .args(["--unixsocketperm", "700"])
        .args(["--save", ""])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let _ = fs::remove_dir_all(dir);
            panic!("{NOT_FOUND}");
        }
        Err(e) => return Err(format!("cannot run redis-server: {e}")),
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited ({status}): {}",
                log_tail(&log_path)
            ));
        }
        match server_pid(port) {
            Ok(pid) if pid == child.id() => return Ok(child),
            Ok(pid) => {
                // Another process (another test's server) took the port first.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "port {port} is served by another redis-server (pid {pid})"
                ));
            }
            Err(_) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server did not answer within {READY_TIMEOUT:?}: {}",
                log_tail(&log_path)
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asks the server on `port` for its process id (`INFO server`), which tells our server from
/// another one that took the port.
fn server_pid(port: u16) -> io::Result<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"INFO server\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let len: usize = header
        .strip_prefix('$')
        .and_then(|n| n.trim_end().parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected reply {header:?}")))?;
    let mut body = vec![0_u8; len];
    reader.read_exact(&mut body)?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no process_id in INFO server"))
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
