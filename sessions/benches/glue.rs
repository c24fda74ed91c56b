//! The cost of the handler glue: routing, the request context, injecting 0,
//! 1 and 5 parameters, and the response, through `AppService::handle` with
//! an in-memory `http::Request`; against the same function called by hand
//! with its arguments ready (and its output turned into a response).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sessions::{handler, App, Header, IntoResponse, RouteName};

mod support;

#[handler]
fn zero() -> &'static str {
    "ok"
}

#[handler]
fn one(name: String) -> String {
    name
}

#[handler]
fn five(name: String, id: u64, page: Option<u32>, user_agent: Header, route: RouteName) -> String {
    format!("{name} {id} {page:?} {} {}", user_agent.0, route.0)
}

fn glue(c: &mut Criterion) {
    let runtime = support::runtime();
    let mut app = App::new();
    app.get("/zero", zero)
        .get("/one", one)
        .get("/five/{id}", five);
    let service = app.build().expect("the app builds");
    let five_request = || {
        let mut request = support::request("GET", "/five/42?name=bench&page=3", None);
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, "wrk".parse().expect("a header"));
        request
    };
    for (uri, status) in [("/zero", 200), ("/one?name=bench", 200)] {
        let response = runtime
            .block_on(service.handle(support::request("GET", uri, None)))
            .expect("infallible");
        assert_eq!(response.status(), status, "{uri}");
    }
    let response = runtime
        .block_on(service.handle(five_request()))
        .expect("infallible");
    assert_eq!(response.status(), 200);

    let mut group = c.benchmark_group("glue");
    group.bench_function("0 params/handle", |b| {
        b.to_async(&runtime).iter_batched(
            || support::request("GET", "/zero", None),
            |request| service.handle(request),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("0 params/by hand", |b| {
        b.iter(|| black_box(zero()).into_response());
    });
    group.bench_function("1 param/handle", |b| {
        b.to_async(&runtime).iter_batched(
            || support::request("GET", "/one?name=bench", None),
            |request| service.handle(request),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("1 param/by hand", |b| {
        b.iter(|| black_box(one(black_box("bench").to_owned())).into_response());
    });
    group.bench_function("5 params/handle", |b| {
        b.to_async(&runtime).iter_batched(
            five_request,
            |request| service.handle(request),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("5 params/by hand", |b| {
        b.iter(|| {
            black_box(five(
                black_box("bench").to_owned(),
                black_box(42),
                black_box(Some(3)),
                Header(black_box("wrk").to_owned()),
                RouteName(black_box("five")),
            ))
            .into_response()
        });
    });
    group.finish();
}

criterion_group!(benches, glue);
criterion_main!(benches);
