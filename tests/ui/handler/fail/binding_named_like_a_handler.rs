// A handler is a unit struct of the same name (so `app.get("/", index)`
// works and `index(...)` still calls the function); like any unit struct it
// cannot be shadowed by a binding in the same module. Name the binding or
// the handler differently.
use sessions::handler;

#[handler]
async fn theme() -> &'static str {
    "dark"
}

#[handler]
async fn page(theme: String) -> String {
    theme
}

fn main() {}
