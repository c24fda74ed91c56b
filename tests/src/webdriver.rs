//! A minimal WebDriver client for browser tests: starts `chromedriver` on a
//! free loopback port and drives headless Chromium through the W3C
//! WebDriver protocol (JSON over HTTP), with no browser-automation crate.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A running `chromedriver`, killed on drop.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ChromeDriver {
    /// Starts `chromedriver` on a free port and waits until it is ready.
    ///
    /// # Panics
    ///
    /// If Chromium or ChromeDriver is not installed (the message says how to
    /// install them), or chromedriver does not become ready in 20 s.
    pub async fn start() -> Self {
        let install = "browser tests need Chromium and ChromeDriver; install them \
                       (Debian: apt-get install chromium chromium-driver)";
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("Chromium not found on PATH: {install}"));
        let driver = find_program(&["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found on PATH: {install}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = ChromeDriver {
            child,
            port,
            chromium,
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = driver.call(Method::GET, "/status", None).await {
                if status["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.port))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("WebDriver {path}: {status} {}", value["value"]))
        }
    }

    /// Opens a new headless browser with its own empty profile (a second
    /// call gives a second, independent browser).
    ///
    /// # Panics
    ///
    /// If Chromium cannot start; the message carries chromedriver's reason.
    pub async fn browser(&self) -> Browser<'_> {
        let profile = std::env::temp_dir().join(format!(
            "sessions-browser-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(rand_u64())
        ));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": self.chromium,
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-background-networking",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            format!("--user-data-dir={}", profile.display()),
                        ]
                    }
                }
            }
        });
        let session = self
            .call(Method::POST, "/session", Some(capabilities))
            .await
            .unwrap_or_else(|error| panic!("Chromium did not start: {error}"));
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"))
            .to_owned();
        Browser {
            driver: self,
            id,
            profile,
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (a WebDriver session with its own profile).
#[derive(Debug)]
pub struct Browser<'d> {
    driver: &'d ChromeDriver,
    id: String,
    profile: PathBuf,
}

impl Browser<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver
            .call(method, &path, body)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.call(Method::POST, "/refresh", Some(json!({}))).await;
    }

    /// The visible text of the page, read in one script call so that no element handle can
    /// go stale in between. While the page navigates (after a form post, say) the driver may
    /// still answer with an error (a missing body, a destroyed execution context, a node that
    /// no longer belongs to the document): then it asks again, for up to about two seconds,
    /// and panics with the last error if the page never settles.
    pub async fn text(&self) -> String {
        const ATTEMPTS: usize = 40;
        let mut attempt = 1;
        loop {
            match self.try_text().await {
                Ok(text) => return text,
                Err(_) if attempt < ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the page text could not be read: {error}"),
            }
        }
    }

    async fn try_text(&self) -> Result<String, String> {
        let script = json!({
            "script": "return document.body ? document.body.innerText : null;",
            "args": [],
        });
        let value = self
            .driver
            .call(
                Method::POST,
                &format!("/session/{}/execute/sync", self.id),
                Some(script),
            )
            .await?;
        value["value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the page has no body yet: {value}"))
    }

    async fn find(&self, css: &str) -> String {
        let value = self
            .call(
                Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        value["value"][ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`"))
            .to_owned()
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Closes the browser and removes its profile.
    pub async fn close(self) {
        let path = format!("/session/{}", self.id);
        let _ = self.driver.call(Method::DELETE, &path, None).await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
