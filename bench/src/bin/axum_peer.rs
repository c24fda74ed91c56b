//! axum 0.8 + tower-sessions 0.14: `axum_peer memory|redis [--port P]
//! [--redis-url URL]`. The Redis store is tower-sessions-redis-store (fred),
//! one connection (fred pipelines on it).

use axum::{
    extract::Query,
    http::StatusCode,
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::{
    fred::prelude::{ClientLike, Config, Pool},
    RedisStore,
};

async fn index(session: Session) -> String {
    session
        .get::<String>("user_id")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "naughty!".into())
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

/// Logs in: a new id (against fixation, as sessions does), the user stored;
/// the middleware writes the session to the store before answering.
async fn login(session: Session, Query(login): Query<Login>) -> StatusCode {
    if session.cycle_id().await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match session.insert("user_id", login.username).await {
        Ok(()) => StatusCode::CREATED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn logout(session: Session) -> StatusCode {
    match session.flush().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn app<S: SessionStore + Clone>(store: S) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = peers::args();
    let router = match args.flavour.as_deref() {
        Some("memory") | None => app(MemoryStore::default()),
        Some("redis") => {
            let pool = Pool::new(Config::from_url(&args.redis_url)?, None, None, None, 1)?;
            let _connection = pool.connect();
            pool.wait_for_connect().await?;
            app(RedisStore::new(pool))
        }
        Some(other) => return Err(format!("unknown flavour `{other}`: memory or redis").into()),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    peers::announce(listener.local_addr()?.port());
    axum::serve(listener, router).await?;
    Ok(())
}
