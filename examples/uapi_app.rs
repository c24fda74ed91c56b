//! uapi's session test app, in Rust: the same three routes, over signed
//! cookies or server-side sessions, so that scripts and browsers can drive
//! it like the Python one.
//!
//! - `GET /` answers the session's `user_id`, or `naughty!` without one.
//! - `POST /login?username=NAME` stores `user_id` and answers 201.
//! - `POST /logout` clears the session and answers 204.
//! - `redis` flavour only: `POST /admin/remove-namespace?namespace=NAME`
//!   deletes every session of `NAME` (uapi's `remove_namespace`, a logout
//!   everywhere) and answers 204.
//!
//! # Usage
//!
//! ```text
//! uapi_app cookie [--port 8000] [--secret-key KEY] [--max-age SECONDS]
//!                 [--cookie-max-age SECONDS] [--same-site lax|strict|none]
//!                 [--cookie-path PATH]
//! uapi_app redis  [--port 8000] [--redis-url URL | --redis-cluster URL[,URL…]]
//!                 [--key-prefix PREFIX]
//!                 [--max-age SECONDS] [--cookie-max-age SECONDS]
//!                 [--same-site lax|strict|none] [--cookie-path PATH]
//! ```
//!
//! For example `cargo run -p examples --bin uapi_app -- cookie --port 0`.
//!
//! - `cookie`: signed-cookie sessions signed with HMAC-SHA1, uapi's (and
//!   itsdangerous') digest, so that a cookie made by a Python uapi app with
//!   the same secret key passes here and the other way round. `--max-age`
//!   is the server-side age limit (default 31 days), `--cookie-max-age` the
//!   cookie's `Max-Age` (default 31 days, as uapi's). Without
//!   `--secret-key` a fixed development key is used, with a warning.
//! - `redis`: server-side sessions in uapi's Redis layout at `--redis-url`
//!   (keys under `--key-prefix`, default none), or in this process's memory
//!   without `--redis-url`. `--max-age` is the session's lifetime (default
//!   14 days), `--cookie-max-age` the cookie's `Max-Age` (default none: a
//!   browser-session cookie, as uapi's).
//!
//! `--port 0` picks a free port. An empty `--cookie-path` or
//! `--cookie-max-age` means no such attribute. Cookies are not `Secure`:
//! the app serves plain HTTP on 127.0.0.1, for local use.
//!
//! Once it accepts connections the app prints one line to stdout,
//! `listening on http://127.0.0.1:PORT`, so that scripts can read the port;
//! it serves until Ctrl-C or SIGTERM. Logs go to stderr (`RUST_LOG`). A bad
//! argument prints the usage to stderr and exits with status 2; a failure to
//! start (Redis unreachable, port taken) exits with status 1.

use std::{
    io::{IsTerminal, Write},
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use sessions::{
    configure_secure_sessions, redis::RedisStore, store::MemoryStore, App, CookieSettings, Digest,
    SameSite, SecureSessionConfig,
};
use tokio::net::TcpListener;

const USAGE: &str = "\
usage: uapi_app cookie|redis [OPTIONS]

options:
  --port PORT                 port on 127.0.0.1 (default 8000; 0 picks a free one)
  --max-age SECONDS           session lifetime, checked on the server
                              (default: cookie 31 days, redis 14 days)
  --cookie-max-age SECONDS    the cookie's Max-Age; empty for none
                              (default: cookie 31 days, redis none)
  --same-site lax|strict|none the cookie's SameSite (default lax)
  --cookie-path PATH          the cookie's Path; empty for none (default none)
  --secret-key KEY            cookie: the signing key (default: a development key)
  --redis-url URL             redis: the Redis to use (default: in memory)
  --redis-cluster URL[,URL…]  redis: a Redis Cluster instead, by some of its
                              nodes (cluster-safe key layout)
  --key-prefix PREFIX         redis: the Redis key prefix (default none)
  -h, --help                  this help";

/// The development key used without `--secret-key`.
const DEVELOPMENT_SECRET_KEY: &str =
    "uapi_app development key: local use only, never in production";

/// uapi's `configure_secure_sessions` cookie `Max-Age`: 31 days.
const SECURE_COOKIE_MAX_AGE: Duration = Duration::from_secs(2_678_400);

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// Signed cookies (`sessions::Session`).
    Cookie,
    /// Server-side sessions (`sessions::redis::AsyncSession`).
    Redis,
}

/// The parsed command line.
#[derive(Debug)]
struct Options {
    flavour: Flavour,
    port: u16,
    max_age: Option<Duration>,
    /// `None`: the flavour's default; `Some(None)`: no `Max-Age`.
    cookie_max_age: Option<Option<Duration>>,
    same_site: SameSite,
    cookie_path: Option<String>,
    secret_key: Option<String>,
    redis_url: Option<String>,
    redis_cluster: Vec<String>,
    key_prefix: String,
}

/// Why the command line was refused, or `--help`.
#[derive(Debug)]
enum ArgsError {
    Help,
    Bad(String),
}

fn seconds(flag: &str, value: &str) -> Result<Duration, ArgsError> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| ArgsError::Bad(format!("{flag}: `{value}` is not a number of seconds")))
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, ArgsError> {
        let flavour = match args.next().as_deref() {
            Some("cookie") => Flavour::Cookie,
            Some("redis") => Flavour::Redis,
            Some("-h" | "--help") => return Err(ArgsError::Help),
            Some(other) => {
                return Err(ArgsError::Bad(format!(
                    "unknown flavour `{other}`; expected `cookie` or `redis`"
                )))
            }
            None => {
                return Err(ArgsError::Bad(
                    "missing the flavour: `cookie` or `redis`".into(),
                ))
            }
        };
        let mut options = Options {
            flavour,
            port: 8000,
            max_age: None,
            cookie_max_age: None,
            same_site: SameSite::Lax,
            cookie_path: None,
            secret_key: None,
            redis_url: None,
            redis_cluster: Vec::new(),
            key_prefix: String::new(),
        };
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Err(ArgsError::Help);
            }
            // `--flag value` or `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ArgsError::Bad(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--port" => {
                    let text = value()?;
                    options.port = text
                        .parse()
                        .map_err(|_| ArgsError::Bad(format!("--port: `{text}` is not a port")))?;
                }
                "--max-age" => options.max_age = Some(seconds(&flag, &value()?)?),
                "--cookie-max-age" => {
                    let text = value()?;
                    options.cookie_max_age = Some(if text.is_empty() {
                        None
                    } else {
                        Some(seconds(&flag, &text)?)
                    });
                }
                "--same-site" => {
                    options.same_site = value()?
                        .parse()
                        .map_err(|message| ArgsError::Bad(format!("--same-site: {message}")))?;
                }
                "--cookie-path" => options.cookie_path = Some(value()?).filter(|p| !p.is_empty()),
                "--secret-key" => options.secret_key = Some(value()?),
                "--redis-url" => options.redis_url = Some(value()?),
                "--redis-cluster" => {
                    options.redis_cluster = value()?
                        .split(',')
                        .map(str::trim)
                        .filter(|url| !url.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "--key-prefix" => options.key_prefix = value()?,
                _ => return Err(ArgsError::Bad(format!("unknown argument `{flag}`"))),
            }
        }
        if options.redis_url.is_some() && !options.redis_cluster.is_empty() {
            return Err(ArgsError::Bad(
                "give --redis-url or --redis-cluster, not both".into(),
            ));
        }
        Ok(options)
    }

    /// The cookie attributes: uapi's, except `Secure` (plain HTTP here).
    fn cookie_settings(&self, default_max_age: Option<Duration>) -> CookieSettings {
        CookieSettings {
            max_age: self.cookie_max_age.unwrap_or(default_max_age),
            secure: false,
            path: self.cookie_path.clone(),
            same_site: self.same_site,
            ..CookieSettings::default()
        }
    }
}

/// The signed-cookie flavour: uapi's `configure_secure_sessions`.
mod signed {
    use sessions::{handler, Created, NoContent, Session};

    /// `GET /`: the logged-in user, or `naughty!`.
    #[handler]
    pub(crate) async fn index(session: Session) -> String {
        session
            .get("user_id")
            .cloned()
            .unwrap_or_else(|| "naughty!".into())
    }

    /// `POST /login?username=NAME`: stores the user in the cookie.
    #[handler]
    pub(crate) async fn login(
        username: String,
        mut session: Session,
    ) -> sessions::Result<Created<()>> {
        session.insert("user_id".into(), username);
        session.update_session()?;
        Ok(Created(()))
    }

    /// `POST /logout`: deletes the cookie.
    #[handler]
    pub(crate) async fn logout(mut session: Session) -> NoContent {
        session.clear_session();
        NoContent
    }
}

/// The server-side flavour: uapi's `configure_async_sessions`.
mod server_side {
    use sessions::{
        handler,
        redis::{AsyncRedisSessionStore, AsyncSession},
        Created, NoContent, State,
    };

    /// `GET /`: the logged-in user, or `naughty!`.
    #[handler]
    pub(crate) async fn index(session: AsyncSession) -> String {
        session
            .get("user_id")
            .cloned()
            .unwrap_or_else(|| "naughty!".into())
    }

    /// `POST /login?username=NAME`: stores the user in a new session in the
    /// user's namespace.
    #[handler]
    pub(crate) async fn login(
        username: String,
        mut session: AsyncSession,
    ) -> sessions::Result<Created<()>> {
        session.insert("user_id".into(), username.clone());
        session.update_session(Some(&username)).await?;
        Ok(Created(()))
    }

    /// `POST /logout`: deletes the session and its cookie.
    #[handler]
    pub(crate) async fn logout(mut session: AsyncSession) -> sessions::Result<NoContent> {
        session.clear_session().await?;
        Ok(NoContent)
    }

    /// `POST /admin/remove-namespace?namespace=NAME`: logs `NAME` out
    /// everywhere.
    #[handler]
    pub(crate) async fn remove_namespace(
        namespace: String,
        store: State<AsyncRedisSessionStore>,
    ) -> sessions::Result<NoContent> {
        let removed = store.remove_namespace(&namespace).await?;
        tracing::info!(%namespace, removed, "namespace removed");
        Ok(NoContent)
    }
}

/// Builds the app of `options`.
async fn app(options: &Options) -> Result<App, String> {
    if options.same_site == SameSite::None {
        eprintln!(
            "warning: browsers drop `SameSite=None` cookies without `Secure`, \
             and this app serves plain HTTP"
        );
    }
    let mut app = App::new();
    match options.flavour {
        Flavour::Cookie => {
            let secret = options.secret_key.clone().unwrap_or_else(|| {
                eprintln!(
                    "warning: no --secret-key, signing with a fixed development key: \
                     for local use only"
                );
                DEVELOPMENT_SECRET_KEY.to_owned()
            });
            let mut config = SecureSessionConfig::new(secret)
                .digest(Digest::Sha1)
                .settings(options.cookie_settings(Some(SECURE_COOKIE_MAX_AGE)));
            if let Some(max_age) = options.max_age {
                config = config.max_age(max_age);
            }
            configure_secure_sessions(&mut app, config);
            app.get("/", signed::index)
                .post("/login", signed::login)
                .post("/logout", signed::logout);
        }
        Flavour::Redis => {
            use sessions::redis::{
                configure_async_sessions, AsyncSessionConfig, KeyLayout, RedisClusterStore,
            };

            let mut config =
                AsyncSessionConfig::default().cookie_settings(options.cookie_settings(None));
            if let Some(max_age) = options.max_age {
                config = config.max_age(max_age);
            }
            let handle = if !options.redis_cluster.is_empty() {
                let nodes = options.redis_cluster.join(",");
                let store = RedisClusterStore::connect(&options.redis_cluster, KeyLayout::Cluster)
                    .await
                    .map_err(|error| {
                        format!("cannot connect to the Redis Cluster at {nodes}: {error}")
                    })?
                    .with_key_prefix(options.key_prefix.clone());
                configure_async_sessions(&mut app, store, config)
            } else if let Some(url) = &options.redis_url {
                let store = RedisStore::connect(url)
                    .await
                    .map_err(|error| format!("cannot connect to Redis at {url}: {error}"))?
                    .with_key_prefix(options.key_prefix.clone());
                configure_async_sessions(&mut app, store, config)
            } else {
                eprintln!(
                    "no --redis-url: sessions are kept in this process's memory \
                     and lost when it stops"
                );
                configure_async_sessions(&mut app, MemoryStore::new(), config)
            };
            app.add_state(handle)
                .get("/", server_side::index)
                .post("/login", server_side::login)
                .post("/logout", server_side::logout)
                .post("/admin/remove-namespace", server_side::remove_namespace);
        }
    }
    Ok(app)
}

async fn run(options: Options) -> Result<(), String> {
    let service = app(&options)
        .await?
        .build()
        .map_err(|error| error.to_string())?;
    // Installed before "listening on" is printed: a script may stop the server any time
    // after that line (see `shutdown_signal`).
    let signal = sessions::shutdown_signal();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    let port = listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://127.0.0.1:{port}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("cannot write to stdout: {error}"))?;
    drop(stdout);
    service
        .serve_with_shutdown(listener, signal)
        .await
        .map_err(|error| error.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Bad(message)) => {
            eprintln!("uapi_app: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("uapi_app: {message}");
            ExitCode::FAILURE
        }
    }
}
