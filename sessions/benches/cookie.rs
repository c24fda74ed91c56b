//! Signed-cookie sessions: signing (`POST /login`, `update_session`) and
//! verifying (`GET /` with a valid cookie) a typical session cookie,
//! `{"user_id": "bench-user"}`, with HMAC-SHA1 (uapi's) and HMAC-SHA256
//! (the default), through `AppService::handle`; `baseline` is the same
//! route with no session, so the difference is the session's cost.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sessions::{
    configure_secure_sessions, handler, App, AppService, Created, Digest, SecureSessionConfig,
    Session,
};

mod support;

#[handler]
async fn index(session: Session) -> String {
    session
        .get("user_id")
        .cloned()
        .unwrap_or_else(|| "naughty!".into())
}

#[handler]
async fn login(username: String, mut session: Session) -> sessions::Result<Created<()>> {
    session.insert("user_id".into(), username);
    session.update_session()?;
    Ok(Created(()))
}

#[handler]
async fn plain() -> &'static str {
    "naughty!"
}

fn service(digest: Digest) -> AppService {
    let mut app = App::new();
    app.get("/", index)
        .post("/login", login)
        .get("/plain", plain);
    configure_secure_sessions(
        &mut app,
        SecureSessionConfig::new("a benchmark secret key of at least 32 bytes").digest(digest),
    );
    app.build().expect("the app builds")
}

fn cookie(c: &mut Criterion) {
    let runtime = support::runtime();
    let mut group = c.benchmark_group("cookie");
    for (name, digest) in [("sha1", Digest::Sha1), ("sha256", Digest::Sha256)] {
        let service = service(digest);
        let cookie = support::cookie_of(&runtime, &service, "/login?username=bench-user");
        // The session is really read back.
        let response = runtime
            .block_on(service.handle(support::request("GET", "/", Some(&cookie))))
            .expect("infallible");
        assert_eq!(response.status(), 200);
        group.bench_function(format!("verify/{name}"), |b| {
            b.to_async(&runtime).iter_batched(
                || support::request("GET", "/", Some(&cookie)),
                |request| service.handle(request),
                BatchSize::SmallInput,
            );
        });
        group.bench_function(format!("sign/{name}"), |b| {
            b.to_async(&runtime).iter_batched(
                || support::request("POST", "/login?username=bench-user", None),
                |request| service.handle(request),
                BatchSize::SmallInput,
            );
        });
        if digest == Digest::Sha1 {
            group.bench_function("baseline", |b| {
                b.to_async(&runtime).iter_batched(
                    || support::request("GET", "/plain", Some(&cookie)),
                    |request| service.handle(request),
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, cookie);
criterion_main!(benches);
