//! Signed-cookie sessions: [`Session`] and [`configure_secure_sessions`],
//! uapi's `uapi.sessions` with its cookie format, and hardened.

mod b64;
mod mac;
pub(crate) mod signer;

use std::{
    cell::Cell,
    collections::HashMap,
    fmt,
    ops::{Deref, DerefMut},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub use self::signer::Digest;
use self::signer::Signer;
use crate::{
    cookies::SetCookieTemplate,
    inject::{unconfigured_session, Inject, Param, Provider, ResolveError, Resolver},
    store::SessionData,
    App, CookieSettings, Error, RequestContext, ResponseCookies,
};

/// The largest cookie (name, value and attributes) a session writes: 4096
/// bytes, what browsers keep. Larger is an [`Error::CookieTooLarge`].
pub const MAX_COOKIE_SIZE: usize = 4096;

/// uapi's default server-side age limit and cookie `Max-Age`: 31 days.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(2_678_400);

/// A signed-cookie session configuration: uapi's
/// `configure_secure_sessions` arguments, with its defaults, and more.
///
/// # Examples
///
/// ```
/// use sessions::{configure_secure_sessions, App, Digest, SecureSessionConfig};
///
/// let mut app = App::new();
/// configure_secure_sessions(
///     &mut app,
///     SecureSessionConfig::new("a secret key of at least 32 bytes!")
///         .digest(Digest::Sha1) // to share cookies with a Python uapi/Flask app
///         .fallback_keys(["the previous secret key, still accepted"]),
/// );
/// ```
#[derive(Clone)]
pub struct SecureSessionConfig {
    secret_key: Vec<u8>,
    fallback_keys: Vec<Vec<u8>>,
    cookie_name: String,
    salt: String,
    settings: CookieSettings,
    max_age: Duration,
    digest: Digest,
    param_name: String,
}

impl fmt::Debug for SecureSessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureSessionConfig")
            .field("secret_key", &"<redacted>")
            .field("fallback_keys", &self.fallback_keys.len())
            .field("cookie_name", &self.cookie_name)
            .field("salt", &self.salt)
            .field("settings", &self.settings)
            .field("max_age", &self.max_age)
            .field("digest", &self.digest)
            .field("param_name", &self.param_name)
            .finish()
    }
}

impl SecureSessionConfig {
    /// A configuration signing with `secret_key` and uapi's defaults:
    /// cookie `session`, salt `cookie-session`, cookie settings with a
    /// `Max-Age` of 31 days, parameter name `session`.
    ///
    /// Use at least 32 random bytes; a shorter key logs a warning when the
    /// sessions are configured.
    pub fn new(secret_key: impl AsRef<[u8]>) -> Self {
        SecureSessionConfig {
            secret_key: secret_key.as_ref().to_vec(),
            fallback_keys: Vec::new(),
            cookie_name: "session".into(),
            salt: "cookie-session".into(),
            settings: CookieSettings {
                max_age: Some(DEFAULT_MAX_AGE),
                ..CookieSettings::default()
            },
            max_age: DEFAULT_MAX_AGE,
            digest: Digest::default(),
            param_name: "session".into(),
        }
    }

    /// Older keys that still verify, newest first, for key rotation: new
    /// cookies are always signed with the current key. Defaults to none
    /// (uapi has no rotation).
    #[must_use]
    pub fn fallback_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        self.fallback_keys = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        self
    }

    /// The cookie name. Defaults to `session`, as uapi's `cookie_name`.
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// The signing salt. Defaults to `cookie-session`, as uapi's `salt`
    /// (and Flask's).
    #[must_use]
    pub fn salt(mut self, salt: impl Into<String>) -> Self {
        self.salt = salt.into();
        self
    }

    /// The cookie attributes. Defaults to [`CookieSettings::default`] with
    /// a `Max-Age` of 31 days, as uapi's `settings`. The settings given
    /// replace all of these, `Max-Age` included (as in uapi): set
    /// `max_age` in them to keep a persistent cookie.
    #[must_use]
    pub fn settings(mut self, settings: CookieSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The oldest a cookie may be, checked on the server from its signed
    /// timestamp whatever the browser does (uapi never checks). Defaults to
    /// 31 days.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The HMAC digest. Defaults to [`Digest::Sha256`]; choose
    /// [`Digest::Sha1`] to share cookies with a Python uapi or Flask app.
    #[must_use]
    pub fn digest(mut self, digest: Digest) -> Self {
        self.digest = digest;
        self
    }

    /// The handler parameter name the session is injected by. Defaults to
    /// `session`, as uapi's `session_arg_param_name`. Two configurations
    /// with two names (and two cookie names) can live in one app.
    #[must_use]
    pub fn session_arg_param_name(mut self, name: impl Into<String>) -> Self {
        self.param_name = name.into();
        self
    }
}

/// One configuration, ready to sign and verify.
struct Secure {
    signer: Signer,
    /// The session cookie (its name, its settings), and its `Set-Cookie` value but for the
    /// token.
    set_cookie: Arc<SetCookieTemplate>,
    max_age: u64,
}

/// The configurations of an app, by parameter name.
#[derive(Default)]
struct SecureConfigs {
    by_param: HashMap<String, Arc<Secure>>,
    /// (secret, salt, digest) of each configuration, to refuse look-alikes.
    keys: Vec<(Vec<u8>, String, String)>,
}

/// Adds a signed-cookie session configuration to `app`, injected into
/// `Session` parameters named after
/// [`session_arg_param_name`](SecureSessionConfig::session_arg_param_name)
/// (uapi's `configure_secure_sessions`).
///
/// These mistakes are reported when the app is built, so it does not
/// start: two configurations with the same parameter name or cookie name,
/// or sharing a secret key and salt (a cookie of one would pass as the
/// other). A key shorter than 32 bytes logs a warning now.
///
/// # Examples
///
/// ```
/// use sessions::{configure_secure_sessions, handler, App, SecureSessionConfig, Session};
///
/// #[handler]
/// async fn index(session: Session) -> String {
///     session.get("user_id").cloned().unwrap_or_else(|| "naughty!".into())
/// }
///
/// let mut app = App::new();
/// app.get("/", index);
/// configure_secure_sessions(&mut app, SecureSessionConfig::new("a secret key of at least 32 bytes!"));
/// assert!(app.build().is_ok());
/// ```
pub fn configure_secure_sessions(app: &mut App, config: SecureSessionConfig) {
    let what = format!("signed-cookie sessions `{}`", config.param_name);
    if config.secret_key.len() < 32 {
        tracing::warn!(
            param = %config.param_name,
            len = config.secret_key.len(),
            "the secret key of signed-cookie sessions is shorter than 32 bytes; use at least 32 random bytes"
        );
    }
    let mut problems = Vec::new();
    {
        let configs = app.registry.config_mut::<SecureConfigs>();
        if configs.by_param.contains_key(&config.param_name) {
            problems.push((
                format!(
                    "the parameter name `{}` is configured twice",
                    config.param_name
                ),
                "give each configuration its own `session_arg_param_name`".to_owned(),
            ));
        }
        if configs
            .by_param
            .values()
            .any(|c| c.set_cookie.name() == config.cookie_name)
        {
            problems.push((
                format!(
                    "the cookie name `{}` is used by two configurations",
                    config.cookie_name
                ),
                "give each configuration its own `cookie_name`".to_owned(),
            ));
        }
        let mut all_keys = vec![config.secret_key.clone()];
        all_keys.extend(config.fallback_keys.iter().cloned());
        let shares = configs
            .keys
            .iter()
            .any(|(key, salt, _)| *salt == config.salt && all_keys.iter().any(|k| k == key));
        if shares {
            problems.push((
                "two configurations share a secret key and salt, so a cookie of one would pass as the other".to_owned(),
                "give each configuration its own `salt` (or secret key)".to_owned(),
            ));
        }
        for key in all_keys {
            configs
                .keys
                .push((key, config.salt.clone(), config.param_name.clone()));
        }
        let fallbacks: Vec<&[u8]> = config.fallback_keys.iter().map(Vec::as_slice).collect();
        let secure = Secure {
            signer: Signer::new(
                config.digest,
                config.salt.as_bytes(),
                &config.secret_key,
                &fallbacks,
            ),
            set_cookie: Arc::new(SetCookieTemplate::new(
                &config.settings,
                &config.cookie_name,
            )),
            max_age: config.max_age.as_secs(),
        };
        configs
            .by_param
            .entry(config.param_name)
            .or_insert_with(|| Arc::new(secure));
    }
    for (message, fix) in problems {
        app.add_problem(&what, message, Some(fix));
    }
}

/// A signed-cookie session: a map of `String` to `String` (uapi's
/// `Session`), read from the request's cookie and written back by
/// [`update_session`](Session::update_session).
///
/// A missing, tampered, truncated, wrongly keyed, expired, malformed or
/// oversized cookie is an empty (anonymous) session, logged with the reason;
/// never an error response.
///
/// # Examples
///
/// ```
/// use sessions::{handler, Created, Session};
///
/// #[handler]
/// async fn login(username: String, mut session: Session) -> sessions::Result<Created<()>> {
///     session.insert("user_id".into(), username);
///     session.update_session()?;
///     Ok(Created(()))
/// }
/// ```
pub struct Session {
    data: SessionData,
    config: Arc<Secure>,
    cookies: ResponseCookies,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("cookie", &self.config.set_cookie.name())
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Deref for Session {
    type Target = SessionData;

    fn deref(&self) -> &SessionData {
        &self.data
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut SessionData {
        &mut self.data
    }
}

thread_local! {
    /// The JSON of the session being signed, reused from one `update_session` to the next
    /// on a thread: the JSON is only the signer's input, and a fresh vector for it was one
    /// allocation and one free per login.
    static JSON_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The most of [`JSON_BUFFER`]'s capacity kept between calls: a session's JSON larger than
/// a cookie can hold is refused anyway, and one such session should not hold memory.
const JSON_BUFFER_KEPT: usize = 2 * MAX_COOKIE_SIZE;

/// Runs `write` on an empty buffer: the thread's [`JSON_BUFFER`], taken out for the call
/// (so a nested call would just get a fresh one), or a fresh one during the thread's
/// teardown.
fn with_json_buffer<R>(write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buffer = JSON_BUFFER.try_with(Cell::take).unwrap_or_default();
    buffer.clear();
    let result = write(&mut buffer);
    if buffer.capacity() <= JSON_BUFFER_KEPT {
        let _ = JSON_BUFFER.try_with(|cell| cell.set(buffer));
    }
    result
}

/// Unix seconds, exactly: what a cookie's age is checked against.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds, cheaply: Linux's coarse real-time clock (the time of the last timer tick, a
/// few milliseconds behind at most), which the vDSO reads without the timestamp counter:
/// 4 ns against `SystemTime::now`'s 28 here (through libc). Behind [`now`] by at most a
/// second, never ahead. It timestamps the tokens being signed (a token may look up to a
/// second older than it is, never younger, so it never fails the "not from the future"
/// check), and it is the first clock a token's age is checked on, [`now`] being read only
/// when it cannot decide (see `Signer::verify_with`). Elsewhere, [`now`].
fn coarse_now() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let coarse = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        if let Ok(seconds) = u64::try_from(coarse.tv_sec) {
            return seconds;
        }
    }
    now()
}

impl Session {
    /// Persists the current contents: queues a `Set-Cookie` with the signed
    /// session, which is attached to the handler's response. An empty
    /// session deletes the cookie instead.
    ///
    /// # Errors
    ///
    /// [`Error::CookieTooLarge`] when the cookie would be over
    /// [`MAX_COOKIE_SIZE`] bytes, which browsers silently drop.
    pub fn update_session(&self) -> crate::Result<()> {
        if self.data.is_empty() {
            self.cookies.set(self.config.set_cookie.removal());
            return Ok(());
        }
        let template = &self.config.set_cookie;
        // Signed straight into the `Set-Cookie` value, which becomes the header value as it
        // is: no token string to allocate, check as UTF-8 and copy again.
        let formatted = with_json_buffer(|json| {
            serde_json::to_writer(&mut *json, &self.data)?;
            Ok::<_, serde_json::Error>(self.config.signer.sign_framed(
                json,
                coarse_now(),
                template.prefix().as_bytes(),
                template.attributes().as_bytes(),
            ))
        })?;
        if formatted.len() > MAX_COOKIE_SIZE {
            return Err(Error::CookieTooLarge {
                name: template.name().to_owned(),
                size: formatted.len(),
                limit: MAX_COOKIE_SIZE,
            });
        }
        self.cookies.set_formatted(template, formatted);
        Ok(())
    }

    /// Empties the session and deletes its cookie (with the configured
    /// `Path` and `Domain`).
    pub fn clear_session(&mut self) {
        self.data.clear();
        self.cookies.set(self.config.set_cookie.removal());
    }

    fn load(config: &Secure, cx: &RequestContext) -> SessionData {
        let Some(value) = cx.cookie(config.set_cookie.name()) else {
            return SessionData::new();
        };
        if value.len() > MAX_COOKIE_SIZE {
            tracing::info!(
                cookie = config.set_cookie.name(),
                len = value.len(),
                "session cookie refused: oversized"
            );
            return SessionData::new();
        }
        let verified = config.signer.verify_with(
            value,
            coarse_now(),
            now,
            Some(config.max_age),
            crate::store::session_from_json,
        );
        match verified {
            Ok(Ok(data)) => data,
            Ok(Err(error)) => {
                tracing::info!(cookie = config.set_cookie.name(), %error, "session cookie refused: not a JSON object of strings");
                SessionData::new()
            }
            Err(reason) => {
                tracing::info!(cookie = config.set_cookie.name(), %reason, "session cookie refused");
                SessionData::new()
            }
        }
    }
}

impl Inject for Session {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        let configs = resolver.config::<SecureConfigs>();
        let Some(config) = configs.and_then(|c| c.by_param.get(param.name)).cloned() else {
            let names: Vec<String> = configs
                .map(|c| c.by_param.keys().cloned().collect())
                .unwrap_or_default();
            return Err(unconfigured_session(
                "signed-cookie session",
                "configure_secure_sessions(&mut app, SecureSessionConfig::new(secret_key){name})",
                param,
                names,
            ));
        };
        Ok(Provider::from_fn(move |cx| {
            let data = Session::load(&config, cx);
            Ok(Session {
                data,
                config: config.clone(),
                cookies: cx.response_cookies(),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_never_ahead_and_at_most_a_second_behind() {
        for _ in 0..1000 {
            let before = now();
            let coarse = coarse_now();
            let after = now();
            assert!(
                before.saturating_sub(1) <= coarse && coarse <= after,
                "{before} <= {coarse} <= {after}"
            );
        }
    }

    #[test]
    fn the_json_buffer_is_empty_each_time_and_not_kept_when_large() {
        with_json_buffer(|outer| {
            outer.extend_from_slice(b"outer");
            // A nested call gets a buffer of its own, empty.
            with_json_buffer(|inner| {
                assert!(inner.is_empty());
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(outer, b"outer");
        });
        with_json_buffer(|buffer| {
            assert!(buffer.is_empty());
            buffer.resize(JSON_BUFFER_KEPT + 1, b'x');
        });
        let kept = JSON_BUFFER.with(|cell| {
            let buffer = cell.take();
            let capacity = buffer.capacity();
            cell.set(buffer);
            capacity
        });
        assert!(kept <= JSON_BUFFER_KEPT, "kept {kept} bytes");
        with_json_buffer(|buffer| assert!(buffer.is_empty()));
    }
}
