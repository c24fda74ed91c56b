//! Logins on top of server-side sessions: uapi's `uapi.login`.
//!
//! [`configure_async_login`] makes three parameters injectable, by name:
//!
//! - `current_user_id: U`: the logged-in user's id; without a logged-in
//!   user the request is answered with a 403 (or the configured response);
//! - `current_user_id: Option<U>`: `None` instead of the 403;
//! - `login_session: AsyncLoginSession<U>`: logs in and out.
//!
//! A login stores the user id in the session under `user_id` and moves the
//! session into the user's namespace, with a new session id (uapi's
//! layout); [`AsyncLoginManager::logout`] ends every session of a user,
//! from anywhere.
//!
//! # Examples
//!
//! ```
//! use sessions::login::{configure_async_login, AsyncLoginSession, LoginConfig};
//! use sessions::redis::{configure_async_sessions, AsyncSessionConfig};
//! use sessions::store::MemoryStore;
//! use sessions::{handler, App, NoContent};
//!
//! #[handler]
//! async fn me(current_user_id: u64) -> String {
//!     format!("user {current_user_id}")
//! }
//!
//! #[handler]
//! async fn log_in(id: u64, login_session: AsyncLoginSession<u64>) -> sessions::Result<NoContent> {
//!     login_session.login_and_return(id).await?;
//!     Ok(NoContent)
//! }
//!
//! let mut app = App::new();
//! app.get("/me", me).post("/login", log_in);
//! let sessions = configure_async_sessions(&mut app, MemoryStore::new(), AsyncSessionConfig::default());
//! let logins = configure_async_login::<u64>(&mut app, &sessions, LoginConfig::default());
//! app.add_state(logins); // for a "log out everywhere" handler
//! assert!(app.build().is_ok());
//! ```

use std::{fmt, marker::PhantomData, str::FromStr, sync::Arc};

use crate::{
    inject::{Inject, Param, Provider, ResolveError, Resolver},
    redis::{session_provider, AsyncRedisSessionStore, AsyncSession},
    store::StoreError,
    App, Rejection, Response,
};

/// The session key holding the user id, as uapi's.
const USER_ID: &str = "user_id";

/// What a user id must be: parsed from and printed to the session.
pub trait UserId: FromStr + fmt::Display + Clone + Send + Sync + 'static {}

impl<T: FromStr + fmt::Display + Clone + Send + Sync + 'static> UserId for T {}

type Forbidden = Arc<dyn Fn() -> Response + Send + Sync>;

/// The login configuration: parameter names and the response for requests
/// without a logged-in user.
#[derive(Clone)]
pub struct LoginConfig {
    current_user_param: String,
    login_session_param: String,
    forbidden: Option<Forbidden>,
}

impl fmt::Debug for LoginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginConfig")
            .field("current_user_param", &self.current_user_param)
            .field("login_session_param", &self.login_session_param)
            .field("custom_forbidden", &self.forbidden.is_some())
            .finish()
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            current_user_param: "current_user_id".into(),
            login_session_param: "login_session".into(),
            forbidden: None,
        }
    }
}

impl LoginConfig {
    /// The parameter name of the current user's id. Defaults to
    /// `current_user_id`, as uapi's.
    #[must_use]
    pub fn current_user_param(mut self, name: impl Into<String>) -> Self {
        self.current_user_param = name.into();
        self
    }

    /// The parameter name of the [`AsyncLoginSession`]. Defaults to
    /// `login_session`, as uapi's.
    #[must_use]
    pub fn login_session_param(mut self, name: impl Into<String>) -> Self {
        self.login_session_param = name.into();
        self
    }

    /// The response for a request without a logged-in user, made fresh
    /// each time (uapi's `forbidden_response`). Defaults to a plain 403.
    #[must_use]
    pub fn forbidden_response<F>(mut self, response: F) -> Self
    where
        F: Fn() -> Response + Send + Sync + 'static,
    {
        self.forbidden = Some(Arc::new(response));
        self
    }
}

/// Logs users out from anywhere (uapi's `AsyncLoginManager`). Cheap to clone.
pub struct AsyncLoginManager<U> {
    store: AsyncRedisSessionStore,
    user: PhantomData<fn() -> U>,
}

impl<U> Clone for AsyncLoginManager<U> {
    fn clone(&self) -> Self {
        AsyncLoginManager {
            store: self.store.clone(),
            user: PhantomData,
        }
    }
}

impl<U> fmt::Debug for AsyncLoginManager<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLoginManager")
            .field("store", &self.store)
            .finish()
    }
}

impl<U: UserId> AsyncLoginManager<U> {
    /// Ends every session of `user_id`, in every browser (uapi's
    /// `logout`); returns how many there were.
    ///
    /// # Errors
    ///
    /// The store's error, when it is down or slow.
    pub async fn logout(&self, user_id: &U) -> Result<u64, StoreError> {
        self.store.remove_namespace(&user_id.to_string()).await
    }

    /// The ids of the live sessions of `user_id`, one per browser.
    ///
    /// # Errors
    ///
    /// The store's error, when it is down or slow.
    pub async fn sessions(&self, user_id: &U) -> Result<Vec<String>, StoreError> {
        self.store.list_namespace(&user_id.to_string()).await
    }
}

/// The login state of a request (uapi's `AsyncLoginSession`).
pub struct AsyncLoginSession<U> {
    session: AsyncSession,
    user_id: Option<U>,
}

impl<U: fmt::Debug> fmt::Debug for AsyncLoginSession<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLoginSession")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl<U: UserId> AsyncLoginSession<U> {
    /// The logged-in user, if any.
    pub fn user_id(&self) -> Option<&U> {
        self.user_id.as_ref()
    }

    /// The underlying session, e.g. to keep more than the user id in it.
    pub fn session(&mut self) -> &mut AsyncSession {
        &mut self.session
    }

    /// Logs `user_id` in: stores it in the session and moves the session
    /// into the user's namespace with a new session id (uapi's
    /// `login_and_return`; the cookie is attached to the response).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store is down or slow.
    pub async fn login_and_return(mut self, user_id: U) -> crate::Result<()> {
        let namespace = user_id.to_string();
        self.session.insert(USER_ID.into(), namespace.clone());
        self.session.update_session(Some(&namespace)).await
    }

    /// Logs out this session (uapi's `logout_and_return`): clears it and
    /// deletes its cookie. Other sessions of the user stay; see
    /// [`AsyncLoginManager::logout`].
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store is down or slow.
    pub async fn logout_and_return(mut self) -> crate::Result<()> {
        self.session.clear_session().await
    }
}

fn user_id_of<U: UserId>(session: &AsyncSession) -> Option<U> {
    // Only a session in the user's namespace counts, so a session whose
    // `user_id` was set without a login is not a login.
    let raw = session.get(USER_ID)?;
    if session.namespace() != raw {
        return None;
    }
    raw.parse().ok()
}

/// Makes `current_user_id: U`, `current_user_id: Option<U>` and
/// `login_session: AsyncLoginSession<U>` injectable (by the names in
/// `config`), on top of the server-side sessions of `sessions` (uapi's
/// `configure_async_login`), and returns the manager.
///
/// `U` is the user id type: any type that parses from and prints to a
/// string, such as `u64`, `String` or a newtype. A newtype must also
/// implement [`Inject`] and
/// [`InjectOptional`](crate::inject::InjectOptional) with their default methods
/// (`impl Inject for UserId {}`), which makes it injectable by name only.
pub fn configure_async_login<U: UserId>(
    app: &mut App,
    sessions: &AsyncRedisSessionStore,
    config: LoginConfig,
) -> AsyncLoginManager<U> {
    let store = sessions.clone();
    let forbidden = config.forbidden.clone();
    app.registry.add_by_name::<U, _>(
        config.current_user_param.clone(),
        move |_: &mut Resolver<'_>| {
            let forbidden = forbidden.clone();
            Some(session_provider(store.clone()).map(move |session| {
                user_id_of(&session).ok_or_else(|| match &forbidden {
                    Some(response) => Rejection::Response(Box::new(response())),
                    None => Rejection::Forbidden,
                })
            }))
        },
    );
    let store = sessions.clone();
    app.registry.add_by_name::<Option<U>, _>(
        config.current_user_param.clone(),
        move |_: &mut Resolver<'_>| {
            Some(session_provider(store.clone()).map(|session| Ok(user_id_of(&session))))
        },
    );
    let store = sessions.clone();
    app.registry.add_by_name::<AsyncLoginSession<U>, _>(
        config.login_session_param,
        move |_: &mut Resolver<'_>| {
            Some(session_provider(store.clone()).map(|session| {
                Ok(AsyncLoginSession {
                    user_id: user_id_of(&session),
                    session,
                })
            }))
        },
    );
    AsyncLoginManager {
        store: sessions.clone(),
        user: PhantomData,
    }
}

impl<U: UserId> Inject for AsyncLoginSession<U> {
    fn resolve(param: Param, _: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        Err(ResolveError::new(format!(
            "no login is configured for the parameter name `{}`",
            param.name
        ))
        .with_fix("call `configure_async_login(&mut app, &sessions, LoginConfig::default())`, or name the parameter as configured"))
    }
}
