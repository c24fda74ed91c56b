//! A small login web app on `sessions::login`: an HTML login form, a page
//! that greets the logged-in user and lists that user's sessions (one per
//! browser), a "log out" button and a "log out everywhere" button.
//!
//! ```text
//! login [--port 8000] [--redis-url redis://127.0.0.1:6379/]
//! ```
//!
//! Sessions live in this process's memory unless `--redis-url` is given.
//! `--port 0` picks a free port; once it accepts connections the app prints
//! `listening on http://127.0.0.1:PORT`.
//!
//! Every form post is protected against cross-site request forgery twice:
//! the session cookie is `SameSite=Lax` (browsers do not send it on
//! cross-site posts), and each form carries a token kept in the session,
//! compared in constant time. There are no passwords: this demonstrates
//! sessions, not authentication.

use std::{net::SocketAddr, process::ExitCode};

use serde::Deserialize;
use sessions::{
    handler,
    login::{configure_async_login, AsyncLoginManager, AsyncLoginSession, LoginConfig},
    redis::{configure_async_sessions, AsyncSessionConfig, RedisStore},
    store::MemoryStore,
    App, CookieSettings, Forbidden, Form, IntoResponse, IntoResponseExt, Response, SeeOther, State,
};
use tokio::net::TcpListener;

const CSRF: &str = "csrf";

/// A new CSRF token: 32 random bytes as hex.
fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two tokens in constant time.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn html(body: &str) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sessions login</title></head>\
         <body>{body}</body></html>"
    );
    page.with_header("content-type", "text/html; charset=utf-8")
        .into_response()
}

/// The page: the login form, or the greeting with the user's sessions.
#[handler]
async fn index(
    mut login_session: AsyncLoginSession<String>,
    manager: State<AsyncLoginManager<String>>,
) -> sessions::Result<Response> {
    // Every visitor gets a session holding a CSRF token for the forms.
    let token = match login_session.session().get(CSRF) {
        Some(token) => token.clone(),
        None => {
            let token = new_token();
            let session = login_session.session();
            session.insert(CSRF.into(), token.clone());
            session.update_session(None).await?;
            token
        }
    };
    let csrf = format!("<input type=\"hidden\" name=\"csrf\" value=\"{token}\">");
    let Some(user) = login_session.user_id().cloned() else {
        return Ok(html(&format!(
            "<h1>Log in</h1>\
             <form method=\"post\" action=\"/login\">{csrf}\
             <label>Name <input name=\"username\" autofocus required></label> \
             <button id=\"login\" type=\"submit\">Log in</button></form>"
        )));
    };
    let this = login_session.session().id().unwrap_or_default().to_owned();
    let items: String = manager
        .sessions(&user)
        .await?
        .iter()
        .map(|id| {
            let mark = if *id == this { " (this browser)" } else { "" };
            format!(
                "<li class=\"session\">{}…{mark}</li>",
                &id[..8.min(id.len())]
            )
        })
        .collect();
    Ok(html(&format!(
        "<h1 id=\"greeting\">Hello, {}!</h1>\
         <p>Your sessions:</p><ul id=\"sessions\">{items}</ul>\
         <form method=\"post\" action=\"/logout\">{csrf}<button id=\"logout\" type=\"submit\">Log out</button></form>\
         <form method=\"post\" action=\"/logout-everywhere\">{csrf}\
         <button id=\"logout-everywhere\" type=\"submit\">Log out everywhere</button></form>",
        escape(&user)
    )))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    csrf: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

fn checked(
    login_session: &mut AsyncLoginSession<String>,
    sent: &str,
) -> Result<(), Forbidden<&'static str>> {
    match login_session.session().get(CSRF) {
        Some(token) if same_token(token, sent) => Ok(()),
        _ => Err(Forbidden("invalid or missing CSRF token; reload the page")),
    }
}

/// Logs in as the posted name.
#[handler]
async fn login(
    form: Form<LoginForm>,
    mut login_session: AsyncLoginSession<String>,
) -> sessions::Result<Result<SeeOther, Forbidden<&'static str>>> {
    if let Err(refused) = checked(&mut login_session, &form.0.csrf) {
        return Ok(Err(refused));
    }
    let username = form.0.username.trim().to_owned();
    if !username.is_empty() {
        login_session.login_and_return(username).await?;
    }
    Ok(Ok(SeeOther("/".into())))
}

/// Logs out this browser.
#[handler]
async fn logout(
    form: Form<CsrfForm>,
    mut login_session: AsyncLoginSession<String>,
) -> sessions::Result<Result<SeeOther, Forbidden<&'static str>>> {
    if let Err(refused) = checked(&mut login_session, &form.0.csrf) {
        return Ok(Err(refused));
    }
    login_session.logout_and_return().await?;
    Ok(Ok(SeeOther("/".into())))
}

/// Logs the user out of every browser.
#[handler]
async fn logout_everywhere(
    form: Form<CsrfForm>,
    mut login_session: AsyncLoginSession<String>,
    manager: State<AsyncLoginManager<String>>,
) -> sessions::Result<Result<SeeOther, Forbidden<&'static str>>> {
    if let Err(refused) = checked(&mut login_session, &form.0.csrf) {
        return Ok(Err(refused));
    }
    if let Some(user) = login_session.user_id() {
        manager.logout(user).await?;
    }
    Ok(Ok(SeeOther("/".into())))
}

struct Args {
    port: u16,
    redis_url: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 8000,
        redis_url: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--redis-url" => args.redis_url = Some(value()?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}\nusage: login [--port 8000] [--redis-url URL]");
            return ExitCode::from(2);
        }
    };
    let mut app = App::new();
    app.get("/", index)
        .post("/login", login)
        .post("/logout", logout)
        .post("/logout-everywhere", logout_everywhere);
    let config = AsyncSessionConfig::default().cookie_settings(CookieSettings {
        // Plain HTTP on 127.0.0.1; behind TLS keep the default (`Secure`).
        secure: false,
        ..CookieSettings::default()
    });
    let sessions = match &args.redis_url {
        Some(url) => match RedisStore::connect(url).await {
            Ok(store) => configure_async_sessions(&mut app, store, config),
            Err(error) => {
                eprintln!("cannot connect to Redis at {url}: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            eprintln!("sessions are kept in memory (give --redis-url to use Redis)");
            configure_async_sessions(&mut app, MemoryStore::new(), config)
        }
    };
    let manager = configure_async_login::<String>(&mut app, &sessions, LoginConfig::default());
    app.add_state(manager);
    let service = match app.build() {
        Ok(service) => service,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let stop = sessions::shutdown_signal();
    let listener = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on port {}: {error}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map_or(args.port, |a| a.port());
    println!("listening on http://127.0.0.1:{port}");
    match service.serve_with_shutdown(listener, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
