use sessions::{handler, App, RouteName};

#[handler(name = "home")]
async fn index(route: RouteName) -> &'static str {
    route.0
}

#[handler(crate = ::sessions)]
async fn explicit_crate() {}

#[handler(provider)]
fn provide_user(x_user: Option<sessions::Header>) -> Option<String> {
    x_user.map(|h| h.0)
}

#[handler]
async fn greet(user: Option<String>) -> String {
    user.unwrap_or_default()
}

fn main() {
    let mut app = App::new();
    app.get("/", index)
        .get("/c", explicit_crate)
        .get("/g", greet)
        .register_by_name("user", provide_user);
    app.build().unwrap();
}
