//! A web handler framework whose heart is sessions: a `#[handler]` declares
//! `session: Session` (a signed cookie) or `session: AsyncSession` (on the
//! server, in Redis or memory) and gets a ready session, injected by the
//! parameter's name and type. It is the Rust counterpart of Python's
//! `uapi.sessions` and `uapi.login`.
//!
//! # Quickstart
//!
//! ```no_run
//! use sessions::{handler, App, Created, Header};
//!
//! #[handler]
//! async fn hello(name: Option<String>, user_agent: Option<Header>) -> String {
//!     let name = name.as_deref().unwrap_or("world");
//!     let agent = user_agent.map_or_else(String::new, |h| h.0);
//!     format!("hello, {name} ({agent})")
//! }
//!
//! #[handler]
//! async fn make(id: u64) -> Created<String> {
//!     Created(format!("made {id}"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), sessions::ServeError> {
//!     let mut app = App::new();
//!     app.get("/", hello).post("/things/{id}", make);
//!     app.serve("127.0.0.1:8000".parse().unwrap()).await
//! }
//! ```
//!
//! `name` is a query parameter because of its name and type; `id` is a path
//! parameter because the route has `{id}`. A parameter nothing can provide
//! is an error when the app is built, naming the route, the handler, the
//! parameter and the fix.
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod app;
mod body;
mod cookies;
mod drain;
mod error;
mod handler;
pub mod inject;
pub mod login;
pub mod redis;
mod request;
mod response;
mod secure;
pub mod store;

/// Turns a function into a handler an [`App`] can route.
///
/// The function becomes a unit struct of the same name that implements
/// [`Handler`]: `app.get("/", index)` routes it, and `index(...)` still calls
/// the function (the struct dereferences to it; an `async fn` is then
/// called through a boxed future), so handlers stay easy to unit test.
///
/// Every parameter is injected by its name and type, resolved once when the
/// app is built: plain types (`String`, numbers, `bool`, `Option`s of them)
/// are path parameters when the route has `{name}` and query parameters
/// otherwise; [`Header<T>`] reads the header named after the parameter
/// (`_` becomes `-`), [`Cookie<T>`] the cookie of that exact name;
/// [`Session`] and [`redis::AsyncSession`] are the sessions configured
/// under that parameter name. One leading underscore is ignored, so
/// `_session: Session` is still the session. See [`inject`] for the rules.
///
/// # Arguments
///
/// - `#[handler(name = "home")]`: the route name ([`RouteName`]); defaults
///   to the function's name, as uapi names routes.
/// - `#[handler(provider)]`: the function provides a value for
///   [`App::register_by_name`] instead of a response, so its return type
///   need not be a response.
/// - `#[handler(crate = path)]`: where the `sessions` crate is, when it is
///   re-exported under another name.
///
/// # Compile errors
///
/// Each points at the offending token: a pattern instead of a name
/// (`_: T`, `(a, b): T`), `self`, generics, a borrowed or `impl Trait`
/// parameter type, a return type that is not a response (or
/// `impl Trait`), duplicate parameter names, `unsafe`/`const`/`extern`
/// functions, and unknown or duplicate arguments. A type that cannot be
/// injected is rustc's E0277 on the parameter's type, saying what can.
///
/// # A naming rule
///
/// Because `index` is a unit struct, no parameter or `let` binding in the
/// same module may be named `index` (rustc: "interpreted as a unit struct,
/// not a new binding"). Rename one of them, e.g. `provide_theme` for a
/// by-name provider of `theme`.
///
/// # Examples
///
/// ```
/// use sessions::{handler, App, Header, NotFound};
///
/// #[handler]
/// async fn user(id: u64, verbose: Option<bool>, user_agent: Header) -> Result<String, NotFound> {
///     if id == 0 {
///         return Err(NotFound(()));
///     }
///     Ok(format!("user {id} ({verbose:?}, {})", user_agent.0))
/// }
///
/// #[handler]
/// fn health() -> &'static str {
///     "ok"
/// }
///
/// let mut app = App::new();
/// app.get("/users/{id}", user).get("/health", health);
/// assert!(app.build().is_ok());
/// assert_eq!(health(), "ok"); // still a function
/// ```
///
/// ```compile_fail
/// use sessions::handler;
///
/// #[handler]
/// async fn index(_: String) {} // parameters are injected by name
/// ```
pub use sessions_macros::handler;

pub use crate::{
    app::{
        shutdown_signal, App, AppService, BuildError, ResponseFuture, ServeError,
        DEFAULT_BODY_LIMIT,
    },
    body::{Body, BoxError},
    cookies::{CookieSettings, SameSite},
    error::{Error, Rejection, Result},
    handler::{Call, Handler, HandlerInfo, ParamInfo},
    inject::{Cookie, Form, Header, Inject, RouteName, State},
    request::{RequestContext, ResponseCookies},
    response::{
        BadRequest, Conflict, Created, Forbidden, Found, InternalServerError, IntoResponse,
        IntoResponseExt, Json, NoContent, NotFound, PermanentRedirect, Response, SeeOther,
        TemporaryRedirect, Unauthorized, WithHeaders,
    },
    secure::{configure_secure_sessions, Digest, SecureSessionConfig, Session, MAX_COOKIE_SIZE},
};

/// uapi's status shorthands, all of them, including [`responses::Ok`]
/// (not at the crate root, where it would shadow `Result::Ok`).
pub mod responses {
    pub use crate::response::{
        BadRequest, Conflict, Created, Forbidden, Found, InternalServerError, NoContent, NotFound,
        Ok, PermanentRedirect, SeeOther, TemporaryRedirect, Unauthorized,
    };
}

mod routing;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What the code generated by `#[handler]` uses. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::{
        handler::{Call, Handler, HandlerInfo, ParamInfo},
        inject::{Provider, Resolver},
        store::BoxFuture,
        Rejection, RequestContext,
    };

    /// Fails to compile, on the handler's return type, unless it is a response.
    pub fn assert_response<T: crate::IntoResponse>() {}
}
