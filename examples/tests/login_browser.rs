//! The login example in a real browser: headless Chromium, driven through
//! chromedriver, logs in, reloads, logs in from a second browser profile,
//! and "log out everywhere" from one logs the other out too.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use sessions_tests::webdriver::ChromeDriver;

/// The login app as a child process, killed on drop.
struct LoginApp {
    child: Child,
    url: String,
}

impl LoginApp {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_login"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the login example");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        LoginApp { child, url }
    }
}

impl Drop for LoginApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn eventually_contains(
    browser: &sessions_tests::webdriver::Browser<'_>,
    text: &str,
) -> String {
    let mut page = String::new();
    for _ in 0..50 {
        page = browser.text().await;
        if page.contains(text) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page never showed {text:?}; it shows:\n{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_reload_second_browser_and_log_out_everywhere() {
    let app = LoginApp::start();
    let driver = ChromeDriver::start().await;

    let first = driver.browser().await;
    first.goto(&app.url).await;
    eventually_contains(&first, "Log in").await;
    first.type_into("input[name=username]", "alice").await;
    first.click("#login").await;
    eventually_contains(&first, "Hello, alice!").await;

    first.refresh().await;
    let page = eventually_contains(&first, "Hello, alice!").await;
    assert_eq!(page.matches("(this browser)").count(), 1, "{page}");

    let second = driver.browser().await;
    second.goto(&app.url).await;
    eventually_contains(&second, "Log in").await;
    second.type_into("input[name=username]", "alice").await;
    second.click("#login").await;
    let page = eventually_contains(&second, "Hello, alice!").await;
    assert_eq!(page.matches('…').count(), 2, "two sessions listed:\n{page}");

    first.refresh().await;
    eventually_contains(&first, "Hello, alice!").await;
    first.click("#logout-everywhere").await;
    eventually_contains(&first, "Log in").await;

    second.refresh().await;
    eventually_contains(&second, "Log in").await;

    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn form_posts_need_the_session_csrf_token() {
    use sessions_tests::TestClient;

    let app = LoginApp::start();
    let addr = app
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let client = TestClient::connect(addr);

    // No token at all: the form does not even parse.
    let response = client.post("/login").form("username=mallory").send().await;
    assert_eq!(response.status, 400, "{}", response.body);
    // A made-up token is refused.
    let response = client
        .post("/login")
        .form("username=mallory&csrf=0000")
        .send()
        .await;
    assert_eq!(response.status, 403, "{}", response.body);

    // The page puts the session's token in the form; posting it works.
    let page = client.get("/").send().await.body;
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    assert_eq!(token.len(), 64);
    let response = client
        .post("/login")
        .form(&format!("username=alice&csrf={token}"))
        .send()
        .await;
    assert_eq!(response.status, 303, "{}", response.body);
    assert!(client.get("/").send().await.body.contains("Hello, alice!"));

    // Another browser's token is not this browser's.
    let other = TestClient::connect(addr);
    other.get("/").send().await;
    let response = other
        .post("/logout-everywhere")
        .form(&format!("csrf={token}"))
        .send()
        .await;
    assert_eq!(response.status, 403);
    assert!(client.get("/").send().await.body.contains("Hello, alice!"));
}
