//! actix-web 4 + actix-session 0.11: `actix_peer cookie|redis [--port P]
//! [--redis-url URL]`. The cookie store signs (HMAC-SHA256) rather than
//! encrypts, like sessions' signed cookies; the Redis store is
//! `RedisSessionStore` (one multiplexed connection manager).

use actix_session::{
    config::CookieContentSecurity,
    storage::{CookieSessionStore, RedisSessionStore, SessionStore},
    Session, SessionMiddleware,
};
use actix_web::{cookie::Key, web, App, HttpResponse, HttpServer};
use serde::Deserialize;

async fn index(session: Session) -> String {
    session
        .get::<String>("user_id")
        .ok()
        .flatten()
        .unwrap_or_else(|| "naughty!".into())
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

/// Logs in: a new id (against fixation, as sessions does), the user stored;
/// the middleware writes the session before answering.
async fn login(session: Session, login: web::Query<Login>) -> HttpResponse {
    session.renew();
    match session.insert("user_id", &login.username) {
        Ok(()) => HttpResponse::Created().finish(),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::NoContent().finish()
}

fn middleware<S: SessionStore + 'static>(store: S, key: &Key) -> SessionMiddleware<S> {
    SessionMiddleware::builder(store, key.clone())
        .cookie_secure(false)
        .cookie_content_security(CookieContentSecurity::Signed)
        .build()
}

async fn serve<S, F>(store: F, port: u16) -> std::io::Result<()>
where
    S: SessionStore + 'static,
    F: Fn() -> S + Send + Clone + 'static,
{
    let key = Key::from(&[7u8; 64]);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware(store(), &key))
            .route("/", web::get().to(index))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
    })
    .workers(1)
    .bind(("127.0.0.1", port))?;
    peers::announce(server.addrs()[0].port());
    server.run().await
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = peers::args();
    match args.flavour.as_deref() {
        Some("cookie") | None => serve(CookieSessionStore::default, args.port).await,
        Some("redis") => {
            let store = RedisSessionStore::new(args.redis_url.clone())
                .await
                .map_err(|error| std::io::Error::other(error.to_string()))?;
            serve(move || store.clone(), args.port).await
        }
        Some(other) => Err(std::io::Error::other(format!(
            "unknown flavour `{other}`: cookie or redis"
        ))),
    }
}
