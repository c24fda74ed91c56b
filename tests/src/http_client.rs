//! [`TestServer`] and [`TestClient`].

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use sessions::{App, AppService};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// An app served on a free loopback port for the length of a test.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Builds `app` and serves it on `127.0.0.1:0`.
    ///
    /// # Panics
    ///
    /// If the app does not build (the message lists the problems) or no
    /// port can be bound.
    pub async fn start(app: App) -> Self {
        let service = app.build().unwrap_or_else(|error| panic!("{error}"));
        Self::serve(service).await
    }

    /// Serves an already built app.
    ///
    /// # Panics
    ///
    /// If no port can be bound.
    pub async fn serve(service: AppService) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve_with_shutdown(listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new client with an empty cookie jar (a new browser).
    pub fn client(&self) -> TestClient {
        TestClient::new(self.addr, Version::HTTP_11)
    }

    /// A new client speaking HTTP/2 (prior knowledge).
    pub fn http2_client(&self) -> TestClient {
        TestClient::new(self.addr, Version::HTTP_2)
    }

    /// Stops accepting and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP client with a cookie jar, like one browser.
#[derive(Debug, Clone)]
pub struct TestClient {
    addr: SocketAddr,
    version: Version,
    http: Client<HttpConnector, Full<Bytes>>,
    jar: Arc<Mutex<BTreeMap<String, String>>>,
}

impl TestClient {
    /// A client with an empty cookie jar for a server at `addr` (one that
    /// runs in another process, say).
    pub fn connect(addr: SocketAddr) -> Self {
        Self::new(addr, Version::HTTP_11)
    }

    fn new(addr: SocketAddr, version: Version) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        if version == Version::HTTP_2 {
            builder.http2_only(true);
        }
        TestClient {
            addr,
            version,
            http: builder.build_http(),
            jar: Arc::default(),
        }
    }

    /// A `GET` request.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A `POST` request.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A request with any method.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            use_jar: true,
        }
    }

    /// The cookie `name` in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    /// Sets a cookie in the jar, as a browser would keep it.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .insert(name.to_owned(), value.to_owned());
    }

    /// Empties the jar.
    pub fn clear_cookies(&self) {
        self.jar.lock().expect("jar").clear();
    }

    fn cookie_header(&self) -> Option<HeaderValue> {
        let jar = self.jar.lock().expect("jar");
        if jar.is_empty() {
            return None;
        }
        let text: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        HeaderValue::from_str(&text.join("; ")).ok()
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().expect("jar");
        for value in headers.get_all(header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let Ok(cookie) = cookie::Cookie::parse(text.to_owned()) else {
                continue;
            };
            let expired = cookie.max_age().is_some_and(|age| age.whole_seconds() <= 0)
                || cookie
                    .expires_datetime()
                    .is_some_and(|at| at <= cookie::time::OffsetDateTime::now_utc());
            if expired {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }
}

/// A request being built.
#[derive(Debug)]
pub struct RequestBuilder {
    client: TestClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    use_jar: bool,
}

impl RequestBuilder {
    /// Adds a header.
    ///
    /// # Panics
    ///
    /// On an invalid name or value.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            http::HeaderName::try_from(name).expect("header name"),
            HeaderValue::try_from(value).expect("header value"),
        );
        self
    }

    /// Sends a raw `Cookie` header instead of the jar's cookies.
    pub fn raw_cookie(mut self, value: &str) -> Self {
        self.use_jar = false;
        self.header("cookie", value)
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    ///
    /// # Panics
    ///
    /// If `value` does not serialize.
    pub fn json<T: serde::Serialize>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("serialize");
        self.header("content-type", "application/json").body(body)
    }

    /// An urlencoded form body.
    pub fn form(self, body: &str) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    }

    /// Sends the request and reads the whole response.
    ///
    /// # Panics
    ///
    /// If the request fails at the HTTP level (connection refused, …).
    pub async fn send(self) -> TestResponse {
        self.try_send().await.expect("request failed")
    }

    /// Sends the request; an error when the connection fails.
    ///
    /// # Errors
    ///
    /// The client's error, as text.
    pub async fn try_send(self) -> Result<TestResponse, String> {
        let uri = format!("http://{}{}", self.client.addr, self.path);
        let mut request = Request::builder()
            .method(self.method)
            .uri(uri)
            .version(self.client.version)
            .body(Full::new(self.body))
            .map_err(|e| e.to_string())?;
        *request.headers_mut() = self.headers;
        if self.use_jar {
            if let Some(cookies) = self.client.cookie_header() {
                request.headers_mut().insert(header::COOKIE, cookies);
            }
        }
        let response = self
            .client
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        self.client.store_cookies(&parts.headers);
        Ok(TestResponse {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// A whole response.
#[derive(Debug)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl TestResponse {
    /// Every `Set-Cookie` header, as text.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Set-Cookie` for `name`, parsed.
    pub fn set_cookie(&self, name: &str) -> Option<cookie::Cookie<'static>> {
        self.set_cookies()
            .into_iter()
            .filter_map(|text| cookie::Cookie::parse(text).ok())
            .find(|c| c.name() == name)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
