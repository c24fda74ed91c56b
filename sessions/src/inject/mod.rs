//! Injection by name and type: the [`Inject`] trait, [`Provider`]s, and the
//! [`Resolver`] that picks one provider per parameter when the app is built.
//!
//! A parameter `name: T` is resolved once, at build time:
//!
//! 1. a provider registered under `name` for type `T`
//!    ([`App::register_by_name`](crate::App::register_by_name)) wins;
//! 2. otherwise `T`'s own [`Inject::resolve`] decides, and may look at the
//!    name (plain types are path parameters when the route has `{name}`,
//!    query parameters otherwise; a [`Header<T>`] reads header `name`, …).
//!
//! What cannot be resolved is a start-up error naming the route, the
//! handler, the parameter and the fix; nothing is looked up per request.

mod cookie;
mod form;
mod header;
mod json;
mod params;
mod request;
mod state;

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

pub use self::{cookie::Cookie, form::Form, header::Header, request::RouteName, state::State};
use crate::{
    handler::{Call, Handler, HandlerInfo},
    store::BoxFuture,
    Rejection, RequestContext,
};

/// A type that can be a handler parameter.
///
/// Implement it for your own types to inject them by type; the default
/// `resolve` accepts the type only where a provider is registered for the
/// parameter's name ([`App::register_by_name`](crate::App::register_by_name)),
/// so `impl Inject for UserId {}` is enough for by-name injection.
///
/// # Examples
///
/// ```
/// use sessions::inject::{Inject, Param, Provider, ResolveError, Resolver};
///
/// /// The `User-Agent`, or `"unknown"`.
/// struct Agent(String);
///
/// impl Inject for Agent {
///     fn resolve(_: Param, _: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
///         Ok(Provider::from_fn(|cx| {
///             let agent = cx.headers().get(http::header::USER_AGENT);
///             let agent = agent.and_then(|v| v.to_str().ok()).unwrap_or("unknown");
///             Ok(Agent(agent.to_owned()))
///         }))
///     }
/// }
/// # let _ = Agent(String::new()).0;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be injected into a handler",
    label = "no provider for this type",
    note = "injectable: `String`, numbers, `bool` and `Option`s of them (path or query parameters by name), `Header<T>`, `Cookie<T>`, `Json<T>`, `Form<T>`, `State<T>`, `Session`, `AsyncSession`, `http::Method`, `RouteName`, …",
    note = "to inject your own type, implement `sessions::Inject` for it, or register a provider by name with `App::register_by_name`"
)]
pub trait Inject: Sized + Send + 'static {
    /// Picks the provider for parameter `param`, once, when the app is built.
    ///
    /// # Errors
    ///
    /// A [`ResolveError`] saying why nothing provides the parameter and how
    /// to fix it; the app refuses to start.
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        let _ = resolver;
        Err(ResolveError::new(format!(
            "nothing provides `{}` under the name `{}`",
            param.type_name, param.name
        ))
        .with_fix("register a provider for this name with `App::register_by_name`"))
    }
}

/// A type whose absence can be injected as `None`: `Option<T>` is
/// injectable for every `T: InjectOptional`.
#[diagnostic::on_unimplemented(
    message = "`Option<{Self}>` cannot be injected into a handler",
    label = "no optional provider for this type",
    note = "`Option<T>` works for plain types, `Header<T>`, `Cookie<T>` and types implementing `sessions::inject::InjectOptional`"
)]
pub trait InjectOptional: Sized + Send + 'static {
    /// Picks the provider for `Option<Self>`.
    ///
    /// # Errors
    ///
    /// As [`Inject::resolve`]; by default only by-name providers give
    /// `Option<Self>`.
    fn resolve_optional(
        param: Param,
        resolver: &mut Resolver<'_>,
    ) -> Result<Provider<Option<Self>>, ResolveError> {
        let _ = resolver;
        Err(ResolveError::new(format!(
            "nothing provides `{}` under the name `{}`",
            param.type_name, param.name
        ))
        .with_fix("register a provider for this name with `App::register_by_name`"))
    }
}

impl<T: InjectOptional> Inject for Option<T> {
    fn resolve(param: Param, resolver: &mut Resolver<'_>) -> Result<Provider<Self>, ResolveError> {
        T::resolve_optional(param, resolver)
    }
}

/// The parameter being resolved: its name and type as written.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The name it is injected by.
    pub name: &'static str,
    /// The type as written.
    pub type_name: &'static str,
}

/// Why a parameter cannot be provided: the message, the fix and the names
/// that would have worked (for "did you mean" suggestions).
#[derive(Debug, Clone)]
pub struct ResolveError {
    message: String,
    fix: Option<String>,
    candidates: Vec<String>,
}

impl ResolveError {
    /// A new error with its message.
    pub fn new(message: impl Into<String>) -> Self {
        ResolveError {
            message: message.into(),
            fix: None,
            candidates: Vec::new(),
        }
    }

    /// Says how to fix it.
    #[must_use]
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Names that would have been provided; the nearest to the parameter's
    /// name is suggested.
    #[must_use]
    pub fn with_candidates<I, S>(mut self, candidates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.candidates
            .extend(candidates.into_iter().map(Into::into));
        self
    }
}

/// Supplies one parameter's value for each request. Built once per route
/// parameter by [`Inject::resolve`].
pub struct Provider<T>(ProviderKind<T>);

type SyncProvide<T> = dyn Fn(&mut RequestContext) -> Result<T, Rejection> + Send + Sync;

enum ProviderKind<T> {
    Sync(Arc<SyncProvide<T>>),
    Async(Arc<dyn AsyncProvide<T>>),
}

impl<T> Clone for Provider<T> {
    fn clone(&self) -> Self {
        Provider(match &self.0 {
            ProviderKind::Sync(f) => ProviderKind::Sync(f.clone()),
            ProviderKind::Async(f) => ProviderKind::Async(f.clone()),
        })
    }
}

impl<T> fmt::Debug for Provider<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            ProviderKind::Sync(_) => "Provider(sync)",
            ProviderKind::Async(_) => "Provider(async)",
        })
    }
}

trait AsyncProvide<T>: Send + Sync + 'static {
    fn provide<'a>(&'a self, cx: &'a mut RequestContext) -> BoxFuture<'a, Result<T, Rejection>>;
}

struct AsyncFn<F>(F);

impl<T, F> AsyncProvide<T> for AsyncFn<F>
where
    F: for<'a> Fn(&'a mut RequestContext) -> BoxFuture<'a, Result<T, Rejection>>
        + Send
        + Sync
        + 'static,
{
    fn provide<'a>(&'a self, cx: &'a mut RequestContext) -> BoxFuture<'a, Result<T, Rejection>> {
        (self.0)(cx)
    }
}

struct CallProvider<C>(C);

impl<C> AsyncProvide<C::Output> for CallProvider<C>
where
    C: Call,
{
    fn provide<'a>(
        &'a self,
        cx: &'a mut RequestContext,
    ) -> BoxFuture<'a, Result<C::Output, Rejection>> {
        Box::pin(self.0.call(cx))
    }
}

impl<T: Send + 'static> Provider<T> {
    /// A provider that computes the value from the request without waiting.
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn(&mut RequestContext) -> Result<T, Rejection> + Send + Sync + 'static,
    {
        Provider(ProviderKind::Sync(Arc::new(f)))
    }

    /// A provider that waits, e.g. for a store or the body.
    pub fn from_async<F>(f: F) -> Self
    where
        F: for<'a> Fn(&'a mut RequestContext) -> BoxFuture<'a, Result<T, Rejection>>
            + Send
            + Sync
            + 'static,
    {
        Provider(ProviderKind::Async(Arc::new(AsyncFn(f))))
    }

    pub(crate) fn from_call<C: Call<Output = T>>(call: C) -> Self {
        Provider(ProviderKind::Async(Arc::new(CallProvider(call))))
    }

    /// A provider of `f(value)`; `f` may reject.
    pub fn map<U, F>(self, f: F) -> Provider<U>
    where
        U: Send + 'static,
        F: Fn(T) -> Result<U, Rejection> + Send + Sync + 'static,
    {
        match self.0 {
            ProviderKind::Sync(inner) => Provider::from_fn(move |cx| inner(cx).and_then(&f)),
            ProviderKind::Async(inner) => {
                let f = Arc::new(f);
                Provider::from_async(move |cx| {
                    let inner = inner.clone();
                    let f = f.clone();
                    Box::pin(async move { inner.provide(cx).await.and_then(|v| f(v)) })
                })
            }
        }
    }

    /// Supplies the value for one request at once, if this provider does not
    /// wait ([`from_fn`](Self::from_fn), or [`map`](Self::map) of one);
    /// `None` for one that does, which [`provide`](Self::provide) supplies.
    ///
    /// The handler glue tries this first: a value returned from here goes
    /// straight into the handler's arguments, without a future around it.
    pub fn provide_ready(&self, cx: &mut RequestContext) -> Option<Result<T, Rejection>> {
        match &self.0 {
            ProviderKind::Sync(f) => Some(f(cx)),
            ProviderKind::Async(_) => None,
        }
    }

    /// Supplies the value for one request.
    pub fn provide<'a>(&'a self, cx: &'a mut RequestContext) -> Provide<'a, T> {
        Provide(match &self.0 {
            ProviderKind::Sync(f) => ProvideKind::Ready(Some(f(cx))),
            ProviderKind::Async(f) => ProvideKind::Boxed(f.provide(cx)),
        })
    }
}

/// The future of [`Provider::provide`]: ready at once for synchronous
/// providers, without allocating.
#[must_use = "futures do nothing unless awaited"]
pub struct Provide<'a, T>(ProvideKind<'a, T>);

enum ProvideKind<'a, T> {
    Ready(Option<Result<T, Rejection>>),
    Boxed(BoxFuture<'a, Result<T, Rejection>>),
}

impl<T> fmt::Debug for Provide<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Provide")
    }
}

// The value is never pinned in place: it is moved out once ready.
impl<T> Unpin for Provide<'_, T> {}

impl<T> Future for Provide<'_, T> {
    type Output = Result<T, Rejection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            ProvideKind::Ready(value) => match value.take() {
                Some(value) => Poll::Ready(value),
                None => Poll::Ready(Err(Rejection::Custom {
                    status: http::StatusCode::INTERNAL_SERVER_ERROR,
                    message: "a provider was polled after it finished".into(),
                })),
            },
            ProvideKind::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

type BindByName = Arc<dyn Fn(&mut Resolver<'_>) -> Option<Box<dyn Any + Send>> + Send + Sync>;

struct ByName {
    type_id: TypeId,
    type_name: &'static str,
    bind: BindByName,
}

/// App-wide injection data: state, by-name providers and configurations.
#[derive(Default)]
pub(crate) struct Registry {
    states: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    by_name: HashMap<String, Vec<ByName>>,
    configs: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    pub(crate) body_limit: Option<usize>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("states", &self.states.len())
            .field("by_name", &self.by_name.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn add_state<T: Send + Sync + 'static>(&mut self, value: T) {
        self.states.insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub(crate) fn add_by_name<T, F>(&mut self, name: String, bind: F)
    where
        T: Send + 'static,
        F: Fn(&mut Resolver<'_>) -> Option<Provider<T>> + Send + Sync + 'static,
    {
        let entries = self.by_name.entry(name).or_default();
        entries.retain(|entry| entry.type_id != TypeId::of::<T>());
        entries.push(ByName {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            bind: Arc::new(move |resolver| {
                bind(resolver).map(|provider| Box::new(provider) as Box<dyn Any + Send>)
            }),
        });
    }

    pub(crate) fn add_handler_by_name<H: Handler>(&mut self, name: String, handler: H) {
        let handler = Arc::new(handler);
        self.add_by_name::<H::Output, _>(name, move |resolver| {
            resolver.bind_handler(&*handler).map(Provider::from_call)
        });
    }

    pub(crate) fn config<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.configs
            .get(&TypeId::of::<T>())
            .and_then(|config| config.downcast_ref())
    }

    pub(crate) fn config_mut<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.configs
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .unwrap_or_else(|| unreachable!("configs are keyed by their TypeId"))
    }
}

/// One problem found while building an app.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub(crate) route: String,
    pub(crate) handler: &'static str,
    pub(crate) param: Option<(&'static str, &'static str)>,
    pub(crate) message: String,
    pub(crate) fix: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: handler `{}`", self.route, self.handler)?;
        if let Some((name, type_name)) = self.param {
            write!(f, ", parameter `{name}: {type_name}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n    fix: {fix}")?;
        }
        Ok(())
    }
}

/// Picks the providers of one route's handler when the app is built.
///
/// [`Inject::resolve`] implementations ask it for the route's path
/// parameters, the app's state and the configurations of the app.
pub struct Resolver<'a> {
    registry: &'a Registry,
    route: &'a str,
    path_params: &'a [String],
    used_path_params: Vec<bool>,
    stack: Vec<&'static HandlerInfo>,
    root: Option<&'static HandlerInfo>,
    body_taken_by: Option<&'static str>,
    problems: Vec<Problem>,
}

impl fmt::Debug for Resolver<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("route", &self.route)
            .field("path_params", &self.path_params)
            .finish_non_exhaustive()
    }
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(registry: &'a Registry, route: &'a str, path_params: &'a [String]) -> Self {
        Resolver {
            registry,
            route,
            path_params,
            used_path_params: vec![false; path_params.len()],
            stack: Vec::new(),
            root: None,
            body_taken_by: None,
            problems: Vec::new(),
        }
    }

    /// The index of path parameter `name` in the route (`{name}`), marking
    /// it as used.
    pub fn path_param(&mut self, name: &str) -> Option<usize> {
        let index = self.path_params.iter().position(|p| p == name)?;
        self.used_path_params[index] = true;
        Some(index)
    }

    /// The app's state of type `T`, added with
    /// [`App::add_state`](crate::App::add_state).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.registry
            .states
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|state| state.downcast().ok())
    }

    /// Claims the request body for `param`: a request has one body, so a
    /// second parameter reading it (`Json<T>` and `Form<T>`, say) is a
    /// start-up error rather than a failure at request time.
    ///
    /// # Errors
    ///
    /// When another parameter of the route already reads the body.
    pub fn take_body(&mut self, param: Param) -> Result<(), ResolveError> {
        match self.body_taken_by {
            Some(other) => Err(ResolveError::new(format!(
                "the request body is already read by parameter `{other}`"
            ))
            .with_fix("read the body once: take one `Json<T>`, `Form<T>` or `Bytes` parameter")),
            None => {
                self.body_taken_by = Some(param.name);
                Ok(())
            }
        }
    }

    /// The largest request body, in bytes, that body parameters read.
    pub fn body_limit(&self) -> usize {
        self.registry
            .body_limit
            .unwrap_or(crate::app::DEFAULT_BODY_LIMIT)
    }

    pub(crate) fn config<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.registry.config()
    }

    /// Resolves parameter `index` of the handler being bound. Called by the
    /// code `#[handler]` generates.
    pub fn resolve<T: Inject>(&mut self, index: usize) -> Option<Provider<T>> {
        let info = *self.stack.last()?;
        let param_info = info.params.get(index)?;
        let param = Param {
            name: param_info.name,
            type_name: param_info.type_name,
        };
        let by_name = self
            .registry
            .by_name
            .get(param.name)
            .and_then(|entries| entries.iter().find(|e| e.type_id == TypeId::of::<T>()))
            .map(|entry| entry.bind.clone());
        if let Some(bind) = by_name {
            if self.stack.len() > 16 {
                self.problem(
                    param,
                    ResolveError::new("by-name providers depend on each other in a cycle")
                        .with_fix("break the cycle: a provider cannot need its own name"),
                );
                return None;
            }
            return bind(self).and_then(|any| any.downcast::<Provider<T>>().ok().map(|p| *p));
        }
        match T::resolve(param, self) {
            Ok(provider) => Some(provider),
            Err(mut error) => {
                error.candidates.extend(self.names_providing::<T>());
                self.problem(param, error);
                None
            }
        }
    }

    fn names_providing<T: 'static>(&self) -> impl Iterator<Item = String> + '_ {
        self.registry
            .by_name
            .iter()
            .filter(|(_, entries)| entries.iter().any(|e| e.type_id == TypeId::of::<T>()))
            .map(|(name, _)| name.clone())
    }

    fn problem(&mut self, param: Param, error: ResolveError) {
        let handler = self.stack.last().map_or("?", |info| info.name);
        let mut message = error.message;
        if let Some(near) = nearest(param.name, &error.candidates) {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
        let by_name: Vec<_> = self
            .registry
            .by_name
            .get(param.name)
            .map(|entries| entries.iter().map(|e| e.type_name).collect())
            .unwrap_or_default();
        if !by_name.is_empty() {
            message.push_str(&format!(
                " (the name `{}` is registered for {}, not for this type)",
                param.name,
                by_name.join(", ")
            ));
        }
        self.problems.push(Problem {
            route: self.route.to_owned(),
            handler,
            param: Some((param.name, param.type_name)),
            message,
            fix: error.fix,
        });
    }

    /// Binds a handler's parameters (a route's, or a by-name provider's).
    pub(crate) fn bind_handler<H: Handler>(
        &mut self,
        handler: &H,
    ) -> Option<impl Call<Output = H::Output> + use<H>> {
        let info = handler.info();
        if self
            .stack
            .iter()
            .any(|on_stack| std::ptr::eq(*on_stack, info))
        {
            self.problems.push(Problem {
                route: self.route.to_owned(),
                handler: info.name,
                param: None,
                message: "this by-name provider needs itself (a cycle)".into(),
                fix: Some("break the cycle: a provider cannot need its own name".into()),
            });
            return None;
        }
        if self.stack.is_empty() {
            self.root = Some(info);
        }
        self.stack.push(info);
        let bound = handler.bind(self);
        self.stack.pop();
        bound
    }

    /// Path parameters of the route that no parameter took, and every problem.
    pub(crate) fn finish(mut self) -> Vec<Problem> {
        let handler = self.root.map_or("?", |info| info.name);
        for (index, used) in self.used_path_params.iter().enumerate() {
            if !used {
                let name = &self.path_params[index];
                let mut message =
                    format!("the route has path parameter `{name}` but no parameter takes it");
                let params: Vec<String> = self
                    .root
                    .map(|info| info.params.iter().map(|p| p.name.to_owned()).collect())
                    .unwrap_or_default();
                if let Some(near) = nearest(name, &params) {
                    message.push_str(&format!(
                        "; did you mean to name parameter `{near}` `{name}`?"
                    ));
                }
                self.problems.push(Problem {
                    route: self.route.to_owned(),
                    handler,
                    param: None,
                    message,
                    fix: Some(format!(
                        "add a parameter `{name}: String` (or another plain type), or `_{name}: String` to ignore it"
                    )),
                });
            }
        }
        self.problems
    }
}

/// The error of a session parameter whose name no configuration has:
/// names the configuring call (with the parameter name when it is not the
/// default `session`) and offers the configured names as candidates.
pub(crate) fn unconfigured_session(
    kind: &str,
    configure: &str,
    param: Param,
    configured: Vec<String>,
) -> ResolveError {
    let name = if param.name == "session" {
        String::new()
    } else {
        format!(".session_arg_param_name(\"{}\")", param.name)
    };
    ResolveError::new(format!(
        "no {kind} is configured for the parameter name `{}`",
        param.name
    ))
    .with_fix(format!(
        "call `{}` before building the app",
        configure.replace("{name}", &name)
    ))
    .with_candidates(configured)
}

/// The candidate nearest to `name`, if one is near enough to be a typo.
pub(crate) fn nearest<'c>(name: &str, candidates: &'c [String]) -> Option<&'c str> {
    candidates
        .iter()
        .filter(|c| c.as_str() != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}

/// Reads the whole body, up to `limit` bytes.
pub(crate) async fn read_body(
    cx: &mut RequestContext,
    limit: usize,
) -> Result<bytes::Bytes, Rejection> {
    use http_body_util::BodyExt;

    let body = cx.take_body().ok_or(Rejection::BodyAlreadyTaken)?;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::PayloadTooLarge { limit })
        }
        Err(_) => Err(Rejection::BodyRead),
    }
}

/// Whether the request's `Content-Type` is `expected` or, for JSON, any
/// `application/*+json`.
pub(crate) fn has_content_type(cx: &RequestContext, expected: &str) -> bool {
    let Some(value) = cx.headers().get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(expected)
        || (expected == "application/json"
            && essence.len() > "application/+json".len()
            && essence[..12].eq_ignore_ascii_case("application/")
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext {
        let (parts, ()) = http::Request::builder()
            .uri("/")
            .body(())
            .expect("a valid request")
            .into_parts();
        RequestContext::new(parts, crate::Body::empty(), Vec::new(), "test")
    }

    #[test]
    fn only_a_provider_that_does_not_wait_is_ready() {
        let mut cx = context();
        let ready = Provider::from_fn(|_| Ok(7u32)).map(|n| Ok(n + 1));
        assert!(matches!(ready.provide_ready(&mut cx), Some(Ok(8))));
        let waits = Provider::from_async(|_| Box::pin(async { Ok(7u32) }));
        assert!(waits.provide_ready(&mut cx).is_none());
        let waits = waits.map(|n| Ok(n + 1));
        assert!(waits.provide_ready(&mut cx).is_none());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        assert_eq!(runtime.block_on(waits.provide(&mut cx)).ok(), Some(8));
    }
}
