//! The smallest app: `GET /?name=you` answers `hello, you`.

use sessions::{handler, App};

/// Greets `name` (a query parameter, by its name and type).
#[handler]
async fn hello(name: Option<String>) -> String {
    format!("hello, {}", name.as_deref().unwrap_or("world"))
}

#[tokio::main]
async fn main() -> Result<(), sessions::ServeError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut app = App::new();
    app.get("/", hello);
    app.serve(([127, 0, 0, 1], 8000).into()).await
}
