//! Server-side sessions: [`AsyncSession`] and [`configure_async_sessions`],
//! uapi's `uapi.sessions.redis`, on Redis ([`RedisStore`], feature `redis`),
//! on Redis Cluster ([`RedisClusterStore`]) or in memory
//! ([`MemoryStore`](crate::store::MemoryStore)).
//!
//! The cookie holds only `{namespace}:{id}`; the session lives in the store
//! with a TTL, in uapi's Redis layout so a Python uapi service and this one
//! can share a Redis. Beyond uapi: a login (a namespace change) mints a new
//! id and deletes the old session (no fixation), updates are atomic and keep
//! the TTL, a session removed by `remove_namespace` while a request holds it
//! is not written back, malformed cookies are anonymous sessions, and a
//! store that is down or slow is a 503, never a hang.

#[cfg(feature = "redis")]
mod cluster;
pub(crate) mod keys;
#[cfg(feature = "redis")]
mod pipeline;
#[cfg(feature = "redis")]
mod store;

use std::{
    collections::HashMap,
    fmt,
    ops::{Deref, DerefMut},
    sync::Arc,
    time::Duration,
};

#[cfg(feature = "redis")]
pub use self::cluster::{ClusterStoreError, RedisClusterStore};
pub use self::keys::KeyLayout;
#[cfg(feature = "redis")]
pub use self::store::RedisStore;
use crate::{
    cookies::SetCookieTemplate,
    inject::{unconfigured_session, Inject, Param, Provider, ResolveError, Resolver},
    store::{SaveOp, SaveOutcome, SessionData, SessionStore, StoreError},
    App, CookieSettings, Rejection, ResponseCookies,
};

/// uapi's default session lifetime: 14 days.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// A server-side session configuration: uapi's `configure_async_sessions`
/// arguments, with its defaults. The key prefix (uapi's
/// `redis_key_prefix`) belongs to the store:
/// [`RedisStore::with_key_prefix`].
#[derive(Debug, Clone)]
pub struct AsyncSessionConfig {
    max_age: Duration,
    cookie_name: String,
    cookie_settings: CookieSettings,
    param_name: String,
}

impl Default for AsyncSessionConfig {
    fn default() -> Self {
        AsyncSessionConfig {
            max_age: DEFAULT_MAX_AGE,
            cookie_name: "session_id".into(),
            cookie_settings: CookieSettings::default(),
            param_name: "session".into(),
        }
    }
}

impl AsyncSessionConfig {
    /// How long a session lives in the store, from its first save (updates
    /// keep the remaining time). Defaults to 14 days, as uapi's `max_age`.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The cookie name. Defaults to `session_id`, as uapi's `cookie_name`.
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// The cookie attributes. Defaults to [`CookieSettings::default`] (a
    /// browser-session cookie), as uapi's `cookie_settings`.
    #[must_use]
    pub fn cookie_settings(mut self, settings: CookieSettings) -> Self {
        self.cookie_settings = settings;
        self
    }

    /// The handler parameter name the session is injected by. Defaults to
    /// `session`, as uapi's `session_arg_param_name`.
    #[must_use]
    pub fn session_arg_param_name(mut self, name: impl Into<String>) -> Self {
        self.param_name = name.into();
        self
    }
}

struct Inner {
    store: Box<dyn SessionStore>,
    /// The session cookie (its name, its settings), and its `Set-Cookie` value but for the
    /// `namespace:id` value.
    set_cookie: Arc<SetCookieTemplate>,
    max_age: Duration,
}

/// The handle to a configuration's sessions, returned by
/// [`configure_async_sessions`] (uapi's `AsyncRedisSessionStore`). Cheap to
/// clone; works outside requests, e.g. to log a user out everywhere.
#[derive(Clone)]
pub struct AsyncRedisSessionStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for AsyncRedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisSessionStore")
            .field("store", &self.inner.store)
            .field("cookie_name", &self.inner.set_cookie.name())
            .field("max_age", &self.inner.max_age)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisSessionStore {
    /// Deletes every session of `namespace` (uapi's `remove_namespace`),
    /// returning how many there were. Requests holding one of them will not
    /// write it back.
    ///
    /// # Errors
    ///
    /// The store's error, when it is down or slow.
    pub async fn remove_namespace(&self, namespace: &str) -> Result<u64, StoreError> {
        self.inner.store.remove_namespace(namespace).await
    }

    /// The ids of the live sessions of `namespace`, e.g. a user's sessions
    /// in each browser.
    ///
    /// # Errors
    ///
    /// The store's error, when it is down or slow.
    pub async fn list_namespace(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.inner.store.list_namespace(namespace).await
    }

    /// Deletes one session; returns whether it existed.
    ///
    /// # Errors
    ///
    /// The store's error, when it is down or slow.
    pub async fn remove_session(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.store.remove(namespace, id).await
    }

    /// The underlying store.
    pub fn store(&self) -> &dyn SessionStore {
        &*self.inner.store
    }
}

#[derive(Default)]
struct AsyncConfigs {
    by_param: HashMap<String, AsyncRedisSessionStore>,
}

/// Adds a server-side session configuration to `app`, injected into
/// `AsyncSession` parameters named after
/// [`session_arg_param_name`](AsyncSessionConfig::session_arg_param_name),
/// and returns its handle (uapi's `configure_async_sessions`).
///
/// Two configurations with the same parameter name or cookie name are
/// reported when the app is built.
///
/// # Examples
///
/// ```
/// use sessions::{handler, App};
/// use sessions::redis::{configure_async_sessions, AsyncSession, AsyncSessionConfig};
/// use sessions::store::MemoryStore;
///
/// #[handler]
/// async fn index(session: AsyncSession) -> String {
///     session.get("user_id").cloned().unwrap_or_else(|| "naughty!".into())
/// }
///
/// let mut app = App::new();
/// app.get("/", index);
/// let store = configure_async_sessions(&mut app, MemoryStore::new(), AsyncSessionConfig::default());
/// app.add_state(store); // for handlers that call `remove_namespace`
/// assert!(app.build().is_ok());
/// ```
pub fn configure_async_sessions(
    app: &mut App,
    store: impl SessionStore,
    config: AsyncSessionConfig,
) -> AsyncRedisSessionStore {
    let handle = AsyncRedisSessionStore {
        inner: Arc::new(Inner {
            store: Box::new(store),
            set_cookie: Arc::new(SetCookieTemplate::new(
                &config.cookie_settings,
                &config.cookie_name,
            )),
            max_age: config.max_age,
        }),
    };
    let what = format!("server-side sessions `{}`", config.param_name);
    let configs = app.registry.config_mut::<AsyncConfigs>();
    let mut problems = Vec::new();
    if configs.by_param.contains_key(&config.param_name) {
        problems.push((
            format!(
                "the parameter name `{}` is configured twice",
                config.param_name
            ),
            "give each configuration its own `session_arg_param_name`",
        ));
    }
    if configs
        .by_param
        .values()
        .any(|other| other.inner.set_cookie.name() == handle.inner.set_cookie.name())
    {
        problems.push((
            format!(
                "the cookie name `{}` is used by two configurations",
                handle.inner.set_cookie.name()
            ),
            "give each configuration its own `cookie_name`",
        ));
    }
    configs
        .by_param
        .entry(config.param_name)
        .or_insert_with(|| handle.clone());
    for (message, fix) in problems {
        app.add_problem(&what, message, Some(fix.to_owned()));
    }
    handle
}

/// A server-side session: a map of `String` to `String` (uapi's
/// `AsyncSession`), loaded from the store in one round trip before the
/// handler runs.
///
/// # Examples
///
/// ```
/// use sessions::{handler, Created, NoContent};
/// use sessions::redis::AsyncSession;
///
/// #[handler]
/// async fn login(username: String, mut session: AsyncSession) -> sessions::Result<Created<()>> {
///     session.insert("user_id".into(), username.clone());
///     session.update_session(Some(&username)).await?; // namespace = the user
///     Ok(Created(()))
/// }
///
/// #[handler]
/// async fn logout(mut session: AsyncSession) -> sessions::Result<NoContent> {
///     session.clear_session().await?;
///     Ok(NoContent)
/// }
/// ```
pub struct AsyncSession {
    data: SessionData,
    namespace: String,
    id: Option<String>,
    store: AsyncRedisSessionStore,
    cookies: ResponseCookies,
}

impl fmt::Debug for AsyncSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSession")
            .field("namespace", &self.namespace)
            .field("stored", &self.id.is_some())
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Deref for AsyncSession {
    type Target = SessionData;

    fn deref(&self) -> &SessionData {
        &self.data
    }
}

impl DerefMut for AsyncSession {
    fn deref_mut(&mut self) -> &mut SessionData {
        &mut self.data
    }
}

impl AsyncSession {
    /// The session's namespace: `""` for an anonymous session, the user
    /// after a login.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The session id, once the session is stored.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Persists the current contents (uapi's `update_session`), in one
    /// atomic round trip that keeps the session's remaining TTL.
    ///
    /// `namespace: Some(user)` moves the session into that namespace (a
    /// login): it gets a new id and the old session is deleted, so an id
    /// planted before the login is worthless. `None` keeps the current
    /// namespace. A new id queues the `Set-Cookie` for the response.
    ///
    /// If the session was removed meanwhile (by `remove_namespace`, a
    /// logout everywhere), nothing is written back: the session becomes
    /// empty and its cookie is deleted. An empty session is cleared.
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store is down or slow
    /// (a 503 when returned from a handler).
    pub async fn update_session(&mut self, namespace: Option<&str>) -> crate::Result<()> {
        if self.data.is_empty() {
            return self.clear_session().await;
        }
        let inner = &self.store.inner;
        let namespace = namespace.unwrap_or(&self.namespace).to_owned();
        match &self.id {
            Some(id) if namespace == self.namespace => {
                let outcome = inner
                    .store
                    .save(SaveOp {
                        namespace: &namespace,
                        id,
                        data: &self.data,
                        existing: true,
                        replaces: None,
                        max_age: inner.max_age,
                    })
                    .await?;
                if outcome == SaveOutcome::Gone {
                    tracing::info!("session removed while the request held it; not written back");
                    self.forget();
                }
            }
            previous => {
                let id = keys::new_session_id();
                let replaces = previous
                    .as_deref()
                    .map(|old| (self.namespace.as_str(), old));
                inner
                    .store
                    .save(SaveOp {
                        namespace: &namespace,
                        id: &id,
                        data: &self.data,
                        existing: false,
                        replaces,
                        max_age: inner.max_age,
                    })
                    .await?;
                self.cookies.set_templated(
                    &inner.set_cookie,
                    &keys::cookie_value_pieces(&namespace, &id),
                );
                self.namespace = namespace;
                self.id = Some(id);
            }
        }
        Ok(())
    }

    /// Empties the session, deletes it from the store (under the key prefix,
    /// unlike uapi) and deletes its cookie (uapi's `clear_session`).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store is down or slow.
    pub async fn clear_session(&mut self) -> crate::Result<()> {
        if let Some(id) = &self.id {
            self.store.inner.store.remove(&self.namespace, id).await?;
        }
        self.forget();
        Ok(())
    }

    fn forget(&mut self) {
        let inner = &self.store.inner;
        self.data.clear();
        self.id = None;
        self.namespace.clear();
        self.cookies.set(inner.set_cookie.removal());
    }
}

impl Inject for AsyncSession {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        let configs = resolver.config::<AsyncConfigs>();
        let Some(store) = configs.and_then(|c| c.by_param.get(param.name)).cloned() else {
            let names: Vec<String> = configs
                .map(|c| c.by_param.keys().cloned().collect())
                .unwrap_or_default();
            return Err(unconfigured_session(
                "server-side session",
                "configure_async_sessions(&mut app, store, AsyncSessionConfig::default(){name})",
                param,
                names,
            ));
        };
        Ok(session_provider(store))
    }
}

/// The provider of the sessions of `store`: one store round trip when the
/// request has a well-formed session cookie, none otherwise.
pub(crate) fn session_provider(store: AsyncRedisSessionStore) -> Provider<AsyncSession> {
    Provider::from_async(move |cx| {
        let store = store.clone();
        Box::pin(async move {
            let cookies = cx.response_cookies();
            let parsed = cx
                .cookie(store.inner.set_cookie.name())
                .and_then(keys::parse_cookie_value);
            let mut session = AsyncSession {
                data: SessionData::new(),
                namespace: String::new(),
                id: None,
                store,
                cookies,
            };
            if let Some((namespace, id)) = parsed {
                let loaded = session
                    .store
                    .inner
                    .store
                    .load(&namespace, &id)
                    .await
                    .map_err(Rejection::StoreUnavailable)?;
                if let Some(data) = loaded {
                    session.data = data;
                    session.namespace = namespace;
                    session.id = Some(id);
                }
            }
            Ok(session)
        })
    })
}
