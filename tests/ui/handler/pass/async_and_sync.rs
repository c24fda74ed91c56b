use sessions::{handler, App};

#[handler]
async fn asynchronous(name: String) -> String {
    name
}

#[handler]
fn synchronous() -> &'static str {
    "sync"
}

#[handler]
fn unit() {}

#[tokio::main]
async fn main() {
    assert_eq!(asynchronous("direct".into()).await, "direct");
    assert_eq!(synchronous(), "sync");
    unit();
    let mut app = App::new();
    app.get("/a", asynchronous).get("/b", synchronous).get("/c", unit);
    app.build().unwrap();
}
