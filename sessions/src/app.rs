//! [`App`]: routes, state and configurations; built once into an
//! [`AppService`] that serves on hyper or sits behind tower.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    io,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{header, Method, Request, StatusCode};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpListener;

use crate::{
    body::BoxError,
    drain::Drain,
    handler::{Call, Handler, HandlerInfo},
    inject::{Problem, Registry, Resolver},
    routing::{self, Match, Router},
    store::BoxFuture,
    Body, IntoResponse, Response,
};

/// Largest body that `Json<T>`, `Form<T>` and `Bytes` parameters read, by
/// default: 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How long [`AppService::serve_with_shutdown`] waits for open connections
/// after the shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

type Bind = Box<dyn FnOnce(&mut Resolver<'_>) -> Option<Endpoint> + Send>;

struct PendingRoute {
    method: Method,
    path: String,
    handler: &'static HandlerInfo,
    bind: Bind,
}

/// An app under construction: routes, state, by-name providers and session
/// configurations. [`build`](App::build) checks that every handler parameter
/// has a provider and freezes it into an [`AppService`].
///
/// # Examples
///
/// ```no_run
/// use sessions::{handler, App};
///
/// #[handler]
/// async fn hello(name: Option<String>) -> String {
///     format!("hello, {}", name.as_deref().unwrap_or("world"))
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), sessions::ServeError> {
///     let mut app = App::new();
///     app.get("/", hello);
///     app.serve("127.0.0.1:8000".parse().unwrap()).await
/// }
/// ```
#[derive(Default)]
pub struct App {
    routes: Vec<PendingRoute>,
    pub(crate) registry: Registry,
    problems: Vec<Problem>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>(),
            )
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

macro_rules! method_routes {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name<H>(&mut self, path: &str, handler: H) -> &mut Self
        where
            H: Handler,
            H::Output: IntoResponse,
        {
            self.route(Method::$method, path, handler)
        }
    )*};
}

impl App {
    /// An empty app.
    pub fn new() -> Self {
        App::default()
    }

    /// Routes `method` and `path` to `handler`. Paths take `{name}`
    /// parameters and a final `{*name}` catch-all.
    ///
    /// Invalid or conflicting paths are reported by [`build`](App::build),
    /// with every other problem.
    pub fn route<H>(&mut self, method: Method, path: &str, handler: H) -> &mut Self
    where
        H: Handler,
        H::Output: IntoResponse,
    {
        let info = handler.info();
        self.routes.push(PendingRoute {
            method,
            path: path.to_owned(),
            handler: info,
            bind: Box::new(move |resolver| {
                let call = resolver.bind_handler(&handler)?;
                Some(Arc::new(RouteEndpoint {
                    call,
                    route_name: info.route_name,
                }) as Endpoint)
            }),
        });
        self
    }

    method_routes! {
        /// Routes `GET path` (and `HEAD`) to `handler`.
        get => GET;
        /// Routes `POST path` to `handler`.
        post => POST;
        /// Routes `PUT path` to `handler`.
        put => PUT;
        /// Routes `PATCH path` to `handler`.
        patch => PATCH;
        /// Routes `DELETE path` to `handler`.
        delete => DELETE;
        /// Routes `OPTIONS path` to `handler`.
        options => OPTIONS;
    }

    /// Adds shared state, injected into `State<T>` parameters by type.
    /// Adding a second value of one type replaces the first.
    pub fn add_state<T: Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.registry.add_state(value);
        self
    }

    /// Registers `provider` under a parameter name (uapi's
    /// `register_by_name`): every handler parameter with this name and the
    /// provider's return type gets the value it returns. The provider is
    /// itself a `#[handler(provider)]` function and its parameters are
    /// injected too, so it can read the session, a header, a path
    /// parameter, …
    ///
    /// A by-name provider wins over the type's own injection.
    ///
    /// # Examples
    ///
    /// ```
    /// use sessions::{handler, App, Header};
    ///
    /// #[handler(provider)]
    /// fn provide_client(x_client: Option<Header>) -> String {
    ///     x_client.map_or_else(|| "anonymous".to_owned(), |h| h.0)
    /// }
    ///
    /// #[handler]
    /// fn whoami(client: String) -> String {
    ///     client
    /// }
    ///
    /// let mut app = App::new();
    /// app.register_by_name("client", provide_client).get("/", whoami);
    /// assert!(app.build().is_ok());
    /// ```
    pub fn register_by_name<H: Handler>(&mut self, name: &str, provider: H) -> &mut Self {
        self.registry.add_handler_by_name(name.to_owned(), provider);
        self
    }

    /// Sets the largest body, in bytes, that `Json<T>`, `Form<T>` and
    /// `Bytes` parameters read; larger bodies are a 413. Defaults to
    /// [`DEFAULT_BODY_LIMIT`] (2 MiB).
    pub fn body_limit(&mut self, bytes: usize) -> &mut Self {
        self.registry.body_limit = Some(bytes);
        self
    }

    /// Records an app-wide problem (a configuration mistake), reported by
    /// `build`.
    pub(crate) fn add_problem(&mut self, what: &str, message: String, fix: Option<String>) {
        self.problems.push(Problem {
            route: what.to_owned(),
            handler: "-",
            param: None,
            message,
            fix,
        });
    }

    /// Resolves every parameter of every route and builds the service.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] listing every problem: a parameter nothing provides
    /// (with the route, handler, parameter, the fix, and the nearest name
    /// that would work), a path parameter no handler parameter takes, an
    /// invalid or conflicting path, a configuration mistake.
    pub fn build(self) -> Result<AppService, BuildError> {
        let App {
            routes,
            registry,
            mut problems,
        } = self;
        let mut router = Router::default();
        for route in routes {
            let names = routing::param_names(&route.path);
            let description = format!("{} {}", route.method, route.path);
            if let Some(twice) = names
                .iter()
                .enumerate()
                .find(|(i, n)| names[..*i].contains(n))
            {
                problems.push(Problem {
                    route: description,
                    handler: route.handler.name,
                    param: None,
                    message: format!("path parameter `{}` appears twice in the route", twice.1),
                    fix: Some("give each path parameter its own name".into()),
                });
                continue;
            }
            let mut resolver = Resolver::new(&registry, &description, &names);
            let endpoint = (route.bind)(&mut resolver);
            problems.extend(resolver.finish());
            if let Some(endpoint) = endpoint {
                if let Err(message) = router.insert(route.method, &route.path, endpoint) {
                    problems.push(Problem {
                        route: description,
                        handler: route.handler.name,
                        param: None,
                        message,
                        fix: None,
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(AppService {
                inner: Arc::new(Inner { router }),
            })
        } else {
            Err(BuildError { problems })
        }
    }

    /// Builds the app and serves it on `addr` until Ctrl-C (or, on Unix,
    /// SIGTERM), then shuts down gracefully: see [`shutdown_signal`]. See
    /// [`AppService::serve_with_shutdown`] for control over the listener and
    /// the signal.
    ///
    /// # Errors
    ///
    /// [`ServeError::Build`] when the app does not build, [`ServeError::Io`]
    /// when the address cannot be bound.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), ServeError> {
        let service = self.build()?;
        // Installed before the first connection can be accepted.
        let signal = shutdown_signal();
        let listener = TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving");
        service.serve_with_shutdown(listener, signal).await?;
        Ok(())
    }
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the shutdown signal of
/// [`App::serve`], for [`AppService::serve_with_shutdown`].
///
/// On Unix the handlers are installed when this is called, not when the future is
/// first polled, so call it before the server starts: `serve_with_shutdown` polls
/// the signal beside the listener, and a request can be answered (on another worker
/// thread) before that first poll; a signal sent in between would otherwise end the
/// process with the default action, without the graceful shutdown. A signal whose
/// handler cannot be installed is not waited for; with neither, the future never
/// completes (the server runs until killed). Elsewhere it waits for Tokio's
/// `ctrl_c`, whose handler is installed when the future is first polled.
///
/// # Panics
///
/// Outside a Tokio runtime (Tokio's signal handling needs its I/O driver).
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// # let service = sessions::App::new().build().expect("builds");
/// let signal = sessions::shutdown_signal();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// service.serve_with_shutdown(listener, signal).await
/// # }
/// ```
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}

/// Every problem found while building an app; the app does not start.
#[derive(Debug)]
pub struct BuildError {
    problems: Vec<Problem>,
}

impl BuildError {
    /// Each problem as one message (route, handler, parameter, what is wrong
    /// and the fix).
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        self.problems.iter().map(ToString::to_string)
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "the app cannot start: {count} problem{}",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// Why [`App::serve`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The app did not build.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Binding or accepting failed.
    #[error("cannot serve: {0}")]
    Io(#[from] io::Error),
}

type Endpoint = Arc<dyn ErasedEndpoint>;

trait ErasedEndpoint: Send + Sync + 'static {
    fn route_name(&self) -> &'static str;
    fn call(self: Arc<Self>, cx: crate::RequestContext) -> BoxFuture<'static, Response>;
}

struct RouteEndpoint<C> {
    call: C,
    route_name: &'static str,
}

impl<C> ErasedEndpoint for RouteEndpoint<C>
where
    C: Call,
    C::Output: IntoResponse,
{
    fn route_name(&self) -> &'static str {
        self.route_name
    }

    fn call(self: Arc<Self>, mut cx: crate::RequestContext) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let mut response = match self.call.call(&mut cx).await {
                // The request's header map, which the handler is done with, for the
                // response's headers: two allocations less for a text or JSON response.
                Ok(output) => output.into_response_reusing(cx.request_headers_for_reuse()),
                Err(rejection) => rejection.into_response(),
            };
            cx.finish(&mut response);
            response
        })
    }
}

struct Inner {
    router: Router<Endpoint>,
}

/// A built app: cheap to clone, and a service for hyper
/// ([`hyper::service::Service`]) and tower ([`tower_service::Service`]),
/// so it can run behind your own server or tower layers.
///
/// # Examples
///
/// ```no_run
/// use sessions::{handler, App};
/// use tokio::net::TcpListener;
///
/// #[handler]
/// fn index() -> &'static str {
///     "hi"
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut app = App::new();
///     app.get("/", index);
///     let service = app.build()?;
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
///     let server = tokio::spawn(service.serve_with_shutdown(listener, async move {
///         let _ = stopped.await;
///     }));
///     // ... later:
///     let _ = stop.send(());
///     server.await??;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct AppService {
    inner: Arc<Inner>,
}

impl fmt::Debug for AppService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppService").finish_non_exhaustive()
    }
}

fn status(status: StatusCode, message: &'static str) -> Response {
    let mut response = message.into_response();
    *response.status_mut() = status;
    response
}

impl AppService {
    /// Handles one request.
    pub fn handle(&self, request: Request<Body>) -> ResponseFuture {
        let (parts, body) = request.into_parts();
        let future = match self.inner.router.find(&parts.method, parts.uri.path()) {
            Match::Found(endpoint, params) => {
                let route_name = endpoint.route_name();
                let cx = crate::RequestContext::new(parts, body, params, route_name);
                endpoint.clone().call(cx)
            }
            Match::MethodNotAllowed(allow) => {
                let mut response = status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                response.headers_mut().insert(header::ALLOW, allow.clone());
                Box::pin(std::future::ready(response))
            }
            Match::NotFound => Box::pin(std::future::ready(status(
                StatusCode::NOT_FOUND,
                "not found",
            ))),
            Match::BadPath => Box::pin(std::future::ready(status(
                StatusCode::BAD_REQUEST,
                "invalid path",
            ))),
        };
        ResponseFuture { inner: future }
    }

    /// Serves on `listener` (HTTP/1.1 and HTTP/2) until `signal` completes,
    /// then stops accepting and waits up to 10 s for open connections.
    ///
    /// A handler runs to completion even if the client closes its side of the
    /// connection first (HTTP/1 half-close): the response is still sent.
    ///
    /// # Errors
    ///
    /// Only if the listener's address cannot be read; accept errors are
    /// logged and retried.
    pub async fn serve_with_shutdown<F>(self, listener: TcpListener, signal: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A request in flight is finished even when the client shuts its side early: hyper
        // then does not watch the socket for EOF while a handler awaits (a read and, since
        // the request's headers still share the read buffer, a fresh 8 KiB buffer per
        // request that awaits a store), and a login whose client went away completes instead
        // of being dropped halfway.
        //
        // Responses are written flattened: the body is copied behind the head and the whole
        // goes out in one `send`, instead of hyper's queue of buffers for `writev`. For the
        // small bodies of a session app that queue cost more than the copy: in callgrind,
        // 420 instructions less per request (a signed-cookie `GET /`: 15271 -> 14826). A
        // large body is copied once more in user space, through hyper's write buffer (at
        // most about 400 KiB at a time).
        builder.http1().half_close(true).writev(false);
        let drain = Drain::default();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), self.clone())
                        .into_owned();
                    let connection = drain.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                    });
                }
                () = &mut signal => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(GRACE, drain.shutdown()).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing");
        }
        Ok(())
    }
}

/// The future of one response. A panicking handler is caught here and
/// answered with a 500; the server keeps serving.
#[must_use = "futures do nothing unless awaited"]
pub struct ResponseFuture {
    inner: BoxFuture<'static, Response>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(Ok(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("<non-string panic>");
                tracing::error!(panic = message, "a handler panicked; answering 500");
                self.inner = Box::pin(std::future::pending());
                Poll::Ready(Ok(status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error",
                )))
            }
        }
    }
}

impl<B> hyper::service::Service<Request<B>> for AppService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> ResponseFuture {
        self.handle(request.map(Body::new))
    }
}

impl<B> tower_service::Service<Request<B>> for AppService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        self.handle(request.map(Body::new))
    }
}
