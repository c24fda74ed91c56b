use serde::Deserialize;
use sessions::{
    configure_secure_sessions, handler, App, Cookie, Form, Header, Json, RouteName,
    SecureSessionConfig, Session, State,
};

#[derive(Deserialize)]
struct Body {
    _text: String,
}

struct Config;

#[handler]
async fn path_and_query(id: u64, page: Option<u32>, ratio: f64, flag: bool, name: Option<String>) {
    let _ = (id, page, ratio, flag, name);
}

#[handler]
async fn headers_and_cookies(user_agent: Header, x_n: Option<Header<u8>>, theme: Cookie, other: Option<Cookie<i32>>) {
    let _ = (user_agent, x_n, theme, other);
}

#[handler]
async fn bodies(json: Json<Body>) {
    let _ = json;
}

#[handler]
async fn with_form(body: Form<Body>) {
    let _ = body;
}

#[handler]
async fn request(method: http::Method, uri: http::Uri, headers: http::HeaderMap, route: RouteName, parts: http::request::Parts, state: State<Config>) {
    let _ = (method, uri, headers, route, parts, state);
}

#[handler]
async fn with_session(session: Session) {
    let _ = session;
}

fn main() {
    let mut app = App::new();
    app.get("/p/{id}", path_and_query)
        .get("/h", headers_and_cookies)
        .post("/j", bodies)
        .post("/f", with_form)
        .get("/r", request)
        .get("/s", with_session)
        .add_state(Config);
    configure_secure_sessions(&mut app, SecureSessionConfig::new([7u8; 32]));
    app.build().unwrap();
}
