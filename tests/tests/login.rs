//! `sessions::login` over HTTP: uapi.login's behaviour on both id types.

use http::StatusCode;
use sessions::login::{configure_async_login, AsyncLoginManager, AsyncLoginSession, LoginConfig};
use sessions::redis::{configure_async_sessions, AsyncSessionConfig};
use sessions::store::MemoryStore;
use sessions::{handler, App, IntoResponse, NoContent, State};
use sessions_tests::TestServer;

#[handler]
async fn me(current_user_id: u64) -> String {
    format!("user {current_user_id}")
}

#[handler]
async fn maybe_me(current_user_id: Option<u64>) -> String {
    format!("{current_user_id:?}")
}

#[handler]
async fn log_in(id: u64, login_session: AsyncLoginSession<u64>) -> sessions::Result<NoContent> {
    login_session.login_and_return(id).await?;
    Ok(NoContent)
}

#[handler]
async fn log_out(login_session: AsyncLoginSession<u64>) -> sessions::Result<NoContent> {
    login_session.logout_and_return().await?;
    Ok(NoContent)
}

#[handler]
async fn log_out_everywhere(
    current_user_id: u64,
    manager: State<AsyncLoginManager<u64>>,
) -> sessions::Result<String> {
    let ended = manager.logout(&current_user_id).await?;
    Ok(ended.to_string())
}

#[handler]
async fn session_count(
    current_user_id: u64,
    manager: State<AsyncLoginManager<u64>>,
) -> sessions::Result<String> {
    Ok(manager.sessions(&current_user_id).await?.len().to_string())
}

fn app(config: LoginConfig) -> App {
    let mut app = App::new();
    app.get("/me", me)
        .get("/maybe", maybe_me)
        .post("/login", log_in)
        .post("/logout", log_out)
        .post("/logout-everywhere", log_out_everywhere)
        .get("/sessions", session_count);
    let sessions =
        configure_async_sessions(&mut app, MemoryStore::new(), AsyncSessionConfig::default());
    let manager = configure_async_login::<u64>(&mut app, &sessions, config);
    app.add_state(manager);
    app
}

#[tokio::test]
async fn without_a_login_current_user_is_403_and_optional_is_none() {
    let server = TestServer::start(app(LoginConfig::default())).await;
    let client = server.client();
    assert_eq!(client.get("/me").send().await.status, StatusCode::FORBIDDEN);
    assert_eq!(client.get("/maybe").send().await.body, "None");
}

#[tokio::test]
async fn login_round_trips_the_integer_id_with_a_new_session_id() {
    let server = TestServer::start(app(LoginConfig::default())).await;
    let client = server.client();
    assert_eq!(
        client.post("/login?id=7").send().await.status,
        StatusCode::NO_CONTENT
    );
    let first = client.cookie("session_id").expect("session cookie");
    assert!(first.starts_with("7:"), "{first}");
    assert_eq!(client.get("/me").send().await.body, "user 7");
    assert_eq!(client.get("/maybe").send().await.body, "Some(7)");
    // Logging in again (as another user) mints another id.
    client.post("/login?id=8").send().await;
    let second = client.cookie("session_id").unwrap();
    assert!(second.starts_with("8:"));
    assert_ne!(first[2..], second[2..]);
    // The first session is gone: its cookie no longer logs anyone in.
    let stale = server.client();
    stale.set_cookie("session_id", &first);
    assert_eq!(stale.get("/me").send().await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_ends_this_session_only() {
    let server = TestServer::start(app(LoginConfig::default())).await;
    let (a, b) = (server.client(), server.client());
    a.post("/login?id=1").send().await;
    b.post("/login?id=1").send().await;
    assert_eq!(a.get("/sessions").send().await.body, "2");
    assert_eq!(
        a.post("/logout").send().await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(a.get("/me").send().await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/me").send().await.body, "user 1");
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user() {
    let server = TestServer::start(app(LoginConfig::default())).await;
    let (a, b, other) = (server.client(), server.client(), server.client());
    a.post("/login?id=1").send().await;
    b.post("/login?id=1").send().await;
    other.post("/login?id=2").send().await;
    assert_eq!(a.post("/logout-everywhere").send().await.body, "2");
    assert_eq!(a.get("/me").send().await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/me").send().await.status, StatusCode::FORBIDDEN);
    assert_eq!(other.get("/me").send().await.body, "user 2");
}

#[tokio::test]
async fn the_forbidden_response_is_configurable() {
    let config = LoginConfig::default().forbidden_response(|| {
        let mut response = "log in first".into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
    });
    let server = TestServer::start(app(config)).await;
    let response = server.client().get("/me").send().await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.body, "log in first");
}

#[handler]
async fn whoami(user: String) -> String {
    user
}

#[handler]
async fn sign_in(name: String, auth: AsyncLoginSession<String>) -> sessions::Result<NoContent> {
    auth.login_and_return(name).await?;
    Ok(NoContent)
}

#[tokio::test]
async fn string_ids_and_custom_parameter_names() {
    let mut app = App::new();
    app.get("/", whoami).post("/login", sign_in);
    let sessions =
        configure_async_sessions(&mut app, MemoryStore::new(), AsyncSessionConfig::default());
    configure_async_login::<String>(
        &mut app,
        &sessions,
        LoginConfig::default()
            .current_user_param("user")
            .login_session_param("auth"),
    );
    let server = TestServer::start(app).await;
    let client = server.client();
    assert_eq!(client.get("/").send().await.status, StatusCode::FORBIDDEN);
    client.post("/login?name=al%3Aice%20b").send().await;
    assert_eq!(client.get("/").send().await.body, "al:ice b");
}

#[test]
fn a_login_session_without_login_configured_fails_the_build() {
    let mut app = App::new();
    app.post("/login", log_in);
    let error = app.build().unwrap_err().to_string();
    assert!(error.contains("no login is configured"), "{error}");
}
