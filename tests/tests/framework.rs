//! The framework over real HTTP: routing, every injectable, every rejection,
//! responses, start-up validation.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sessions::{
    handler, responses, App, BadRequest, Cookie, Created, Forbidden, Form, Header, IntoResponseExt,
    Json, NoContent, NotFound, Rejection, RouteName, SeeOther, State,
};
use sessions_tests::TestServer;

#[handler]
async fn hello(name: Option<String>) -> String {
    format!("hello, {}", name.as_deref().unwrap_or("world"))
}

#[handler]
fn sync_hello() -> &'static str {
    "sync"
}

#[handler]
async fn user(id: u64, verbose: bool) -> String {
    format!("user {id} verbose={verbose}")
}

#[handler]
async fn two(org: String, repo: String, page: Option<u32>) -> String {
    format!("{org}/{repo} page {}", page.unwrap_or(1))
}

#[handler]
async fn numbers(a: i64, b: f64, c: Option<u8>) -> String {
    format!("{a} {b} {c:?}")
}

#[handler]
async fn headers(user_agent: Header, x_count: Option<Header<u32>>) -> String {
    format!("{} {:?}", user_agent.0, x_count.map(|h| h.0))
}

#[handler]
async fn cookies(theme: Cookie, visits: Option<Cookie<u32>>) -> String {
    format!("{} {:?}", theme.0, visits.map(|c| c.0))
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Note {
    text: String,
    stars: u8,
}

#[handler]
async fn json_echo(note: Json<Note>) -> Json<Note> {
    Json(Note {
        text: note.0.text.to_uppercase(),
        stars: note.0.stars,
    })
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

#[handler]
async fn form(login: Form<Login>) -> Created<String> {
    Created(login.0.username)
}

struct Counter(AtomicUsize);

#[handler]
async fn count(counter: State<Counter>) -> String {
    (counter.0 .0.fetch_add(1, Ordering::SeqCst) + 1).to_string()
}

#[handler]
async fn request_bits(
    method: Method,
    route: RouteName,
    uri: http::Uri,
    parts: http::request::Parts,
) -> String {
    format!(
        "{method} {} {} {}",
        route.0,
        uri.path(),
        !parts.headers.is_empty()
    )
}

#[handler(name = "renamed")]
async fn named_route(route: RouteName) -> &'static str {
    route.0
}

#[handler]
async fn statuses(kind: String) -> sessions::Response {
    use sessions::IntoResponse;
    match kind.as_str() {
        "ok" => responses::Ok("fine").into_response(),
        "created" => Created(()).with_header("location", "/x").into_response(),
        "nocontent" => NoContent.into_response(),
        "bad" => BadRequest("bad").into_response(),
        "forbidden" => Forbidden(()).into_response(),
        "notfound" => NotFound("nope").into_response(),
        "redirect" => SeeOther("/elsewhere".into()).into_response(),
        _ => http::Response::builder()
            .status(418)
            .body("raw")
            .unwrap()
            .into_response(),
    }
}

#[handler]
async fn fallible(fail: bool) -> Result<String, BadRequest<&'static str>> {
    if fail {
        Err(BadRequest("failed"))
    } else {
        Ok("fine".into())
    }
}

#[handler]
async fn panics() -> String {
    panic!("boom")
}

#[handler]
async fn raw_body(bytes: bytes::Bytes) -> String {
    bytes.len().to_string()
}

#[handler(provider)]
fn provide_client_name(x_client: Option<Header>) -> String {
    x_client.map_or_else(|| "anonymous".to_owned(), |h| h.0)
}

#[handler]
async fn whoami(client_name: String) -> String {
    client_name
}

#[handler]
async fn slow(counter: State<Counter>) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let done = counter.0 .0.fetch_add(1, Ordering::SeqCst) + 1;
    format!("finished {done}")
}

fn app() -> App {
    let mut app = App::new();
    app.get("/", hello)
        .post("/slow", slow)
        .get("/sync", sync_hello)
        .get("/users/{id}", user)
        .get("/repos/{org}/{repo}", two)
        .get("/numbers", numbers)
        .get("/headers", headers)
        .get("/cookies", cookies)
        .post("/json", json_echo)
        .post("/form", form)
        .post("/count", count)
        .route(Method::PUT, "/request/{path}", request_bits_wrapper)
        .get("/named", named_route)
        .get("/status/{kind}", statuses)
        .get("/fallible", fallible)
        .get("/panic", panics)
        .post("/body", raw_body)
        .get("/whoami", whoami)
        .register_by_name("client_name", provide_client_name)
        .add_state(Counter(AtomicUsize::new(0)))
        .body_limit(1024);
    app
}

#[handler]
async fn request_bits_wrapper(
    method: Method,
    route: RouteName,
    _path: String,
    uri: http::Uri,
) -> String {
    format!("{method} {} {}", route.0, uri.path())
}

#[tokio::test]
async fn query_parameters_by_name() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let response = client.get("/?name=bob").send().await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, "hello, bob");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(client.get("/").send().await.body, "hello, world");
    assert_eq!(
        client.get("/?name=a%20b%26c").send().await.body,
        "hello, a b&c"
    );
    assert_eq!(client.get("/sync").send().await.body, "sync");
}

#[tokio::test]
async fn path_parameters_by_name() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    assert_eq!(
        client.get("/users/42?verbose=true").send().await.body,
        "user 42 verbose=true"
    );
    assert_eq!(
        client
            .get("/repos/rust%20lang/cargo?page=3")
            .send()
            .await
            .body,
        "rust lang/cargo page 3"
    );
}

#[tokio::test]
async fn missing_and_invalid_parameters_are_400s() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let missing = client.get("/users/42").send().await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body, "missing query parameter `verbose`");
    let invalid = client.get("/users/abc?verbose=true").send().await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(
        invalid.body.starts_with("invalid parameter `id`"),
        "{}",
        invalid.body
    );
    let invalid_optional = client.get("/numbers?a=1&b=2.5&c=300").send().await;
    assert_eq!(invalid_optional.status, StatusCode::BAD_REQUEST);
    assert!(invalid_optional.body.contains("`c`"));
    assert_eq!(
        client.get("/numbers?a=-1&b=2.5").send().await.body,
        "-1 2.5 None"
    );
    assert_eq!(
        client.get("/numbers?a=-1&b=2.5&c=7").send().await.body,
        "-1 2.5 Some(7)"
    );
    let bad_path = client.get("/users/%FF?verbose=true").send().await;
    assert_eq!(bad_path.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn headers_by_name_with_dashes() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let response = client
        .get("/headers")
        .header("user-agent", "test/1")
        .header("x-count", "5")
        .send()
        .await;
    assert_eq!(response.body, "test/1 Some(5)");
    let missing = client.get("/headers").send().await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body, "missing header `user-agent`");
    let invalid = client
        .get("/headers")
        .header("user-agent", "t")
        .header("x-count", "many")
        .send()
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(invalid.body.starts_with("invalid header `x-count`"));
}

#[tokio::test]
async fn cookies_by_exact_name() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let response = client
        .get("/cookies")
        .raw_cookie("theme=dark; visits=3")
        .send()
        .await;
    assert_eq!(response.body, "dark Some(3)");
    let missing = client.get("/cookies").raw_cookie("other=1").send().await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body, "missing cookie `theme`");
    let invalid = client
        .get("/cookies")
        .raw_cookie("theme=x; visits=lots")
        .send()
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn json_bodies() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let note = Note {
        text: "hi".into(),
        stars: 3,
    };
    let response = client.post("/json").json(&note).send().await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let back: Note = serde_json::from_str(&response.body).unwrap();
    assert_eq!(
        back,
        Note {
            text: "HI".into(),
            stars: 3
        }
    );

    let wrong_type = client
        .post("/json")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let no_type = client.post("/json").body("{}").send().await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bad = client
        .post("/json")
        .header("content-type", "application/json")
        .body("{\"text\": 1}")
        .send()
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.starts_with("invalid JSON body"), "{}", bad.body);
    let suffix = client
        .post("/json")
        .header("content-type", "application/vnd.api+json; charset=utf-8")
        .body("{\"text\":\"a\",\"stars\":1}")
        .send()
        .await;
    assert_eq!(suffix.status, StatusCode::OK);
}

#[tokio::test]
async fn form_bodies() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let response = client.post("/form").form("username=al%20ice").send().await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.body, "al ice");
    let wrong = client.post("/form").json(&"x").send().await;
    assert_eq!(wrong.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let missing_field = client.post("/form").form("other=1").send().await;
    assert_eq!(missing_field.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    assert_eq!(
        client
            .post("/body")
            .body(vec![b'x'; 1000])
            .send()
            .await
            .body,
        "1000"
    );
    let too_big = client.post("/body").body(vec![b'x'; 5000]).send().await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn state_is_shared_by_type() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    assert_eq!(client.post("/count").send().await.body, "1");
    assert_eq!(client.post("/count").send().await.body, "2");
}

#[tokio::test]
async fn method_route_name_and_uri() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let response = client.request(Method::PUT, "/request/x").send().await;
    assert_eq!(response.body, "PUT request_bits_wrapper /request/x");
    assert_eq!(client.get("/named").send().await.body, "renamed");
}

#[tokio::test]
async fn status_shorthands_and_raw_responses() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    for (kind, status, body) in [
        ("ok", 200, "fine"),
        ("created", 201, ""),
        ("nocontent", 204, ""),
        ("bad", 400, "bad"),
        ("forbidden", 403, ""),
        ("notfound", 404, "nope"),
        ("redirect", 303, ""),
        ("raw", 418, "raw"),
    ] {
        let response = client.get(&format!("/status/{kind}")).send().await;
        assert_eq!(response.status.as_u16(), status, "{kind}");
        assert_eq!(response.body, body, "{kind}");
    }
    let created = client.get("/status/created").send().await;
    assert_eq!(created.header("location"), Some("/x"));
    let redirect = client.get("/status/redirect").send().await;
    assert_eq!(redirect.header("location"), Some("/elsewhere"));
}

#[tokio::test]
async fn result_of_responses() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    assert_eq!(client.get("/fallible?fail=false").send().await.body, "fine");
    let failed = client.get("/fallible?fail=true").send().await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST);
    assert_eq!(failed.body, "failed");
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let missing = client.get("/nowhere").send().await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let wrong = client.request(Method::DELETE, "/json").send().await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.header("allow"), Some("POST"));
    let head = client.request(Method::HEAD, "/").send().await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.body, "");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let response = client.get("/panic").send().await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(client.get("/?name=after").send().await.body, "hello, after");
}

/// A client that shuts its writing side right after its request (HTTP/1 half-close) still
/// gets the response, and the handler, which awaits, runs to completion.
#[tokio::test]
async fn a_half_closed_client_gets_its_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start(app()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n")
        .await
        .expect("write the request");
    stream.shutdown().await.expect("half-close");
    let mut response = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the server answers within 5 s")
    .expect("read the response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("finished 1"), "{response}");
}

#[tokio::test]
async fn by_name_providers_take_injected_parameters() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    assert_eq!(client.get("/whoami").send().await.body, "anonymous");
    assert_eq!(
        client
            .get("/whoami")
            .header("x-client", "cli")
            .send()
            .await
            .body,
        "cli"
    );
}

#[tokio::test]
async fn http2_is_served() {
    let server = TestServer::start(app()).await;
    let client = server.http2_client();
    let response = client.get("/?name=h2").send().await;
    assert_eq!(response.body, "hello, h2");
}

#[tokio::test]
async fn concurrent_requests_are_served() {
    let server = TestServer::start(app()).await;
    let client = server.client();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get(&format!("/?name={i}")).send().await.body })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), format!("hello, {i}"));
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() {
    let server = TestServer::start(app()).await;
    let addr = server.addr();
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A handler that tells the test it started, then waits for the test to let it finish.
#[derive(Default)]
struct Gate {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[handler]
async fn gated(gate: State<std::sync::Arc<Gate>>) -> &'static str {
    gate.0.entered.notify_one();
    gate.0.release.notified().await;
    "finished"
}

/// Serves `app` on a free port; returns the address, the stop switch and the server task.
async fn serve(
    app: App,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = app.build().unwrap();
    let task = tokio::spawn(service.serve_with_shutdown(listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let gate = std::sync::Arc::new(Gate::default());
    let mut app = App::new();
    app.add_state(gate.clone()).get("/gated", gated);
    let (addr, stop, task) = serve(app).await;
    let client = sessions_tests::TestClient::connect(addr);
    let request = tokio::spawn(async move { client.get("/gated").send().await });
    gate.entered.notified().await;
    stop.send(()).unwrap();
    // The server waits for the handler: it has not stopped while the request is in flight.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !task.is_finished(),
        "the server stopped with a request in flight"
    );
    gate.release.notify_one();
    let response = request.await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, "finished");
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the server stops once the request is answered")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_keep_alive_connections_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, stop, task) = serve(app()).await;
    // Two kept-alive connections, each idle after one answered request.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /?name=idle HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"hello, idle") {
            let mut chunk = [0; 512];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before answering: {:?}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&chunk[..n]);
        }
        idle.push(stream);
    }
    stop.send(()).unwrap();
    // Well within the 10 s grace period: idle connections do not hold the shutdown up.
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the server stops without waiting for idle connections")
        .unwrap()
        .unwrap();
    for mut stream in idle {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut rest),
        )
        .await
        .expect("the server closes the idle connection");
        assert!(
            read.is_ok_and(|n| n == 0),
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

#[tokio::test]
async fn the_app_is_a_tower_service() {
    use tower_like::call;
    let mut app = App::new();
    app.get("/", hello);
    let service = app.build().unwrap();
    let response = call(service, "/?name=tower").await;
    assert_eq!(response, "hello, tower");
}

mod tower_like {
    use bytes::Bytes;
    use http_body_util::Full;
    use sessions::AppService;

    pub(super) async fn call(mut service: AppService, uri: &str) -> String {
        use std::future::poll_fn;
        use tower_service::Service;
        poll_fn(|cx| Service::<http::Request<Full<Bytes>>>::poll_ready(&mut service, cx))
            .await
            .unwrap();
        let request = http::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = Service::call(&mut service, request).await.unwrap();
        let body = response.into_body().collect().await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

// ---- start-up validation ----

#[handler]
async fn wants_state(_counter: State<Counter>) {}

#[handler]
async fn wants_path(user_id: u64) -> String {
    user_id.to_string()
}

#[handler]
async fn wants_by_name(sesion: Custom) -> String {
    sesion.0
}

struct Custom(String);
impl sessions::Inject for Custom {}

#[test]
fn missing_state_fails_the_build_with_the_fix() {
    let mut app = App::new();
    app.get("/", wants_state);
    let error = app.build().unwrap_err().to_string();
    assert!(
        error.contains("GET /: handler `wants_state`, parameter `counter: State<Counter>`"),
        "{error}"
    );
    assert!(error.contains("app.add_state"), "{error}");
}

#[test]
fn unused_path_parameter_fails_the_build_and_suggests_the_parameter() {
    let mut app = App::new();
    app.get("/users/{userid}", wants_path);
    let error = app.build().unwrap_err().to_string();
    assert!(error.contains("path parameter `userid`"), "{error}");
    assert!(
        error.contains("did you mean to name parameter `user_id` `userid`?"),
        "{error}"
    );
}

#[test]
fn near_miss_names_are_suggested() {
    #[handler(provider)]
    fn session_value() -> Custom {
        Custom("x".into())
    }
    let mut app = App::new();
    app.register_by_name("session", session_value);
    app.get("/", wants_by_name);
    let error = app.build().unwrap_err().to_string();
    assert!(error.contains("parameter `sesion: Custom`"), "{error}");
    assert!(error.contains("did you mean `session`?"), "{error}");
}

#[test]
fn invalid_and_duplicate_routes_fail_the_build() {
    let mut app = App::new();
    app.get("/", hello).get("/", hello).get("/{a}/{a}", hello);
    let error = app.build().unwrap_err();
    assert_eq!(error.problems().count(), 2, "{error}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut app = App::new();
    app.get("/a", wants_state).get("/b/{x}", wants_path);
    let error = app.build().unwrap_err();
    assert_eq!(error.problems().count(), 2, "{error}");
}

#[tokio::test]
async fn handlers_stay_callable_directly() {
    assert_eq!(hello(Some("unit".into())).await, "hello, unit");
    assert_eq!(sync_hello(), "sync");
    assert_eq!(user(7, false).await, "user 7 verbose=false");
}

#[test]
fn rejections_know_their_status() {
    assert_eq!(
        Rejection::MissingQueryParameter("x").status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(Rejection::Forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        Rejection::UnsupportedMediaType {
            expected: "application/json"
        }
        .status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn a_non_utf8_cookie_does_not_hide_the_others() {
    use std::io::{Read, Write};
    let server = TestServer::start(app()).await;
    let addr = server.addr();
    let body = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let mut request = b"GET /cookies HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: junk=\xff\xfe; theme=dark; visits=2\r\n\r\n".to_vec();
        stream.write_all(&request).unwrap();
        request.clear();
        stream.read_to_end(&mut request).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("dark Some(2)"), "{body}");
}

#[handler]
async fn two_bodies(note: Json<Note>, raw: bytes::Bytes) -> String {
    format!("{} {}", note.0.text, raw.len())
}

#[test]
fn two_body_parameters_fail_the_build() {
    let mut app = App::new();
    app.post("/", two_bodies);
    let error = app.build().unwrap_err().to_string();
    assert!(error.contains("parameter `raw: bytes::Bytes`"), "{error}");
    assert!(
        error.contains("already read by parameter `note`"),
        "{error}"
    );
}
