//! Signed-cookie sessions over real HTTP: the round trip, the cookie's
//! attributes, every kind of bad cookie (always an anonymous session, never
//! an error), key rotation, the size limit, two configurations side by side,
//! start-up checks, and a property test over arbitrary cookies.

use std::{
    io::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use http::StatusCode;
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestRunner},
};
use sessions::{
    configure_secure_sessions, handler, App, CookieSettings, Created, Digest, NoContent,
    SecureSessionConfig, Session, MAX_COOKIE_SIZE,
};
use sessions_tests::{TestClient, TestServer};
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const KEY_A: &str = "key A: a secret of at least thirty-two bytes";
const KEY_B: &str = "key B: another secret, also thirty-two bytes+";

// ------------------------------------------------------------- handlers

/// The logged-in user, or `naughty!`.
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

/// Adds one entry to the session and persists it.
#[handler]
async fn put(key: String, value: String, mut session: Session) -> sessions::Result<NoContent> {
    session.insert(key, value);
    session.update_session()?;
    Ok(NoContent)
}

/// The whole session as JSON.
#[handler]
async fn dump(session: Session) -> String {
    serde_json::to_string(&*session).expect("a map of strings serializes")
}

/// Removes the user and persists what is left (possibly nothing).
#[handler]
async fn forget(mut session: Session) -> sessions::Result<NoContent> {
    session.remove("user_id");
    session.update_session()?;
    Ok(NoContent)
}

#[handler]
async fn logout(mut session: Session) -> NoContent {
    session.clear_session();
    NoContent
}

/// Stores `size` bytes of noise in the session: over the cookie limit, an
/// error.
#[handler]
async fn oversize(size: usize, mut session: Session) -> sessions::Result<NoContent> {
    session.insert("blob".into(), noise(size));
    session.update_session()?;
    Ok(NoContent)
}

/// Both sessions of an app with two configurations.
#[handler]
async fn both(session: Session, another_session: Session) -> String {
    let user = |s: &Session| {
        s.get("user_id")
            .cloned()
            .unwrap_or_else(|| "naughty!".into())
    };
    format!("{}|{}", user(&session), user(&another_session))
}

#[handler]
async fn login_another(
    username: String,
    mut another_session: Session,
) -> sessions::Result<Created<()>> {
    another_session.insert("user_id".into(), username);
    another_session.update_session()?;
    Ok(Created(()))
}

/// A typo in the parameter name.
#[handler]
async fn typo(sesion: Session) -> String {
    format!("{}", sesion.len())
}

// -------------------------------------------------------------- helpers

/// `len` characters that zlib cannot shrink much (the signer compresses
/// when it helps), from a fixed xorshift sequence.
fn noise(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[usize::try_from(state % 64).expect("small")])
        })
        .collect()
}

fn app(config: SecureSessionConfig) -> App {
    let mut app = App::new();
    app.get("/", index)
        .post("/login", login)
        .post("/put", put)
        .get("/dump", dump)
        .post("/forget", forget)
        .post("/logout", logout)
        .post("/oversize", oversize);
    configure_secure_sessions(&mut app, config);
    app
}

async fn serve(config: SecureSessionConfig) -> TestServer {
    TestServer::start(app(config)).await
}

/// A SHA-1 configuration, so that tests can sign tokens by hand.
fn sha1_config() -> SecureSessionConfig {
    SecureSessionConfig::new(KEY_A).digest(Digest::Sha1)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the signature of `signed` as itsdangerous computes it (SHA-1,
/// key `SHA1(salt + "signer" + secret)`), independently of the crate.
fn sign_text(secret: &str, salt: &str, signed: &str) -> String {
    let key = Sha1::new()
        .chain_update(salt.as_bytes())
        .chain_update(b"signer")
        .chain_update(secret.as_bytes())
        .finalize();
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(mac.finalize().into_bytes()))
}

/// The timestamp part: big-endian, leading zero bytes stripped.
fn b64_timestamp(timestamp: u64) -> String {
    let bytes = timestamp.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    b64(&bytes[first..])
}

/// A token as itsdangerous signs it under uapi's salt: `payload_segment`
/// is the first part, already encoded (`b64(json)`, or `.` + `b64(zlib)`).
fn sign_segment(secret: &str, payload_segment: &str, timestamp: u64) -> String {
    let signed = format!("{payload_segment}.{}", b64_timestamp(timestamp));
    sign_text(secret, "cookie-session", &signed)
}

/// A hand-signed token of `json`.
fn sign(secret: &str, json: &str, timestamp: u64) -> String {
    sign_segment(secret, &b64(json), timestamp)
}

/// `GET /` with only `session=value`.
async fn index_with(client: &TestClient, value: &str) -> (StatusCode, String) {
    let response = client
        .get("/")
        .raw_cookie(&format!("session={value}"))
        .send()
        .await;
    (response.status, response.body)
}

/// Asserts that each value is an anonymous session, answered with 200.
async fn assert_anonymous(client: &TestClient, what: &str, values: &[String]) {
    for value in values {
        let (status, body) = index_with(client, value).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "naughty!"),
            "{what} cookie {value:?}"
        );
    }
}

/// Logs `username` in on `client` and returns the session cookie.
async fn logged_in(client: &TestClient, username: &str) -> String {
    let response = client
        .post(&format!("/login?username={username}"))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    client.cookie("session").expect("a session cookie")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn login_update_and_clear_round_trip() {
    let server = serve(SecureSessionConfig::new(KEY_A)).await;
    let client = server.client();
    assert_eq!(client.get("/").send().await.body, "naughty!");

    let first = logged_in(&client, "alice").await;
    assert_eq!(client.get("/").send().await.body, "alice");
    // Reading does not rewrite the cookie.
    assert!(client.get("/").send().await.set_cookies().is_empty());

    let update = client.post("/put?key=theme&value=dark").send().await;
    assert_eq!(update.status, StatusCode::NO_CONTENT);
    let second = client.cookie("session").expect("a session cookie");
    assert_ne!(first, second, "the update writes a new cookie");
    assert_eq!(
        client.get("/dump").send().await.body,
        r#"{"theme":"dark","user_id":"alice"}"#
    );

    let response = client.post("/logout").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let removal = response.set_cookie("session").expect("a removal cookie");
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    assert!(client.cookie("session").is_none());
    assert_eq!(client.get("/").send().await.body, "naughty!");
    assert_eq!(client.get("/dump").send().await.body, "{}");
}

#[tokio::test]
async fn updating_an_empty_session_deletes_the_cookie() {
    let server = serve(SecureSessionConfig::new(KEY_A)).await;
    let client = server.client();
    logged_in(&client, "alice").await;
    let response = client.post("/forget").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let removal = response.set_cookie("session").expect("a removal cookie");
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    assert!(client.cookie("session").is_none());
    assert_eq!(client.get("/").send().await.body, "naughty!");

    // An anonymous session saved empty also answers with a deletion.
    let anonymous = server.client().post("/forget").send().await;
    let removal = anonymous.set_cookie("session").expect("a removal cookie");
    assert_eq!(removal.value(), "");
}

#[tokio::test]
async fn cookie_attributes_default_to_uapis() {
    let server = serve(SecureSessionConfig::new(KEY_A)).await;
    let response = server.client().post("/login?username=alice").send().await;
    let set_cookies = response.set_cookies();
    assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
    let text = &set_cookies[0];
    let attributes: Vec<&str> = text.split("; ").skip(1).collect();
    let mut sorted = attributes.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["HttpOnly", "Max-Age=2678400", "SameSite=Lax", "Secure"],
        "{text}"
    );
    assert!(text.starts_with("session="), "{text}");
}

#[tokio::test]
async fn deletion_cookie_carries_the_configured_path_and_domain() {
    let settings = CookieSettings {
        path: Some("/app".into()),
        domain: Some("example.com".into()),
        ..CookieSettings::default()
    };
    let server = serve(SecureSessionConfig::new(KEY_A).settings(settings)).await;
    let client = server.client();
    let response = client.post("/login?username=alice").send().await;
    let set = response.set_cookie("session").expect("a session cookie");
    assert_eq!(set.path(), Some("/app"));
    assert_eq!(set.domain(), Some("example.com"));

    for route in ["/logout", "/forget"] {
        let token = logged_in(&client, "alice").await;
        let response = client
            .post(route)
            .raw_cookie(&format!("session={token}"))
            .send()
            .await;
        let removal = response.set_cookie("session").expect("a removal cookie");
        assert_eq!(removal.value(), "", "{route}");
        assert_eq!(removal.path(), Some("/app"), "{route}");
        assert_eq!(removal.domain(), Some("example.com"), "{route}");
        assert_eq!(
            removal.max_age(),
            Some(cookie::time::Duration::ZERO),
            "{route}"
        );
    }
}

#[tokio::test]
async fn hand_signed_token_is_accepted() {
    // The control for the bad-cookie tests below: a token signed by hand the
    // way itsdangerous signs it is a session.
    let server = serve(sha1_config()).await;
    let token = sign(KEY_A, r#"{"user_id":"alice"}"#, now());
    assert_eq!(
        index_with(&server.client(), &token).await,
        (StatusCode::OK, "alice".to_owned())
    );
}

#[tokio::test]
async fn tampered_cookie_is_no_session() {
    let server = serve(sha1_config()).await;
    let client = server.client();
    let token = sign(KEY_A, r#"{"user_id":"alice"}"#, now());
    let (_, rest) = token.split_once('.').expect("three parts");
    let (timestamp, signature) = rest.split_once('.').expect("three parts");
    let mut flipped = signature.to_owned().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ASCII");
    assert_anonymous(
        &client,
        "tampered",
        &[
            // Another payload under the original signature.
            format!("{}.{timestamp}.{signature}", b64(r#"{"user_id":"admin"}"#)),
            // Another timestamp under the original signature.
            format!(
                "{}.{}.{signature}",
                b64(r#"{"user_id":"alice"}"#),
                b64([0xff, 0xff, 0xff, 0xff])
            ),
            // One character of the signature changed.
            format!("{}.{timestamp}.{flipped}", b64(r#"{"user_id":"alice"}"#)),
            // Claimed compressed.
            format!(".{token}"),
        ],
    )
    .await;
}

#[tokio::test]
async fn truncated_cookie_is_no_session() {
    let server = serve(sha1_config()).await;
    let client = server.client();
    let token = sign(KEY_A, r#"{"user_id":"alice"}"#, now());
    let (signed, _) = token.rsplit_once('.').expect("a signature");
    let values: Vec<String> = vec![
        token[..token.len() - 1].to_owned(),
        token[..token.len() - 5].to_owned(),
        format!("{signed}."),
        signed.to_owned(),
        token[..10].to_owned(),
        token[1..].to_owned(),
    ];
    assert_anonymous(&client, "truncated", &values).await;
}

#[tokio::test]
async fn wrongly_keyed_cookie_is_no_session() {
    let server = serve(sha1_config()).await;
    let client = server.client();
    let json = r#"{"user_id":"alice"}"#;
    // The right key under another salt.
    let other_salt = sign_text(
        KEY_A,
        "another-salt",
        &format!("{}.{}", b64(json), b64_timestamp(now())),
    );
    assert_anonymous(
        &client,
        "wrongly keyed",
        &[sign(KEY_B, json, now()), sign("", json, now()), other_salt],
    )
    .await;

    // A SHA-256 cookie of the same key is refused by a SHA-1 configuration.
    let sha256 = serve(SecureSessionConfig::new(KEY_A)).await;
    let token = logged_in(&sha256.client(), "alice").await;
    assert_anonymous(&client, "other digest", &[token]).await;
}

#[tokio::test]
async fn expired_cookie_is_no_session() {
    let config = sha1_config().max_age(Duration::from_secs(60));
    let server = serve(config).await;
    let client = server.client();
    let json = r#"{"user_id":"alice"}"#;
    assert_eq!(
        index_with(&client, &sign(KEY_A, json, now() - 30)).await,
        (StatusCode::OK, "alice".to_owned()),
        "younger than max_age"
    );
    assert_anonymous(
        &client,
        "expired",
        &[
            sign(KEY_A, json, now() - 120),
            sign(KEY_A, json, 1_000_000_000),
            sign(KEY_A, json, 1),
            // Signed in the future (a stolen key or a broken clock).
            sign(KEY_A, json, now() + 3600),
        ],
    )
    .await;
}

#[tokio::test]
async fn cookie_older_than_max_age_is_refused_after_a_wait() {
    // Through the app only: a cookie it signed itself ages out.
    let server = serve(SecureSessionConfig::new(KEY_A).max_age(Duration::from_secs(1))).await;
    let client = server.client();
    logged_in(&client, "alice").await;
    assert_eq!(client.get("/").send().await.body, "alice");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = client.get("/").send().await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (StatusCode::OK, "naughty!")
    );
}

#[tokio::test]
async fn malformed_cookie_is_no_session() {
    let server = serve(sha1_config()).await;
    let client = server.client();
    let t = now();
    let values: Vec<String> = vec![
        String::new(),
        "abc".into(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "e30".into(),
        "e30..".into(),
        "%%%.$$$.***".into(),
        "\"quoted\"".into(),
        "=====".into(),
        // Validly signed, but not a JSON object of strings.
        sign(KEY_A, "not json", t),
        sign(KEY_A, r#"["user_id","alice"]"#, t),
        sign(KEY_A, r#"{"user_id":1}"#, t),
        sign(KEY_A, r#"{"user_id":null}"#, t),
        sign(KEY_A, r#"{"user_id":"alice""#, t),
        sign(KEY_A, "", t),
        // Validly signed, claimed compressed, but not zlib.
        sign_segment(KEY_A, &format!(".{}", b64("not zlib at all")), t),
        // Validly signed, payload not base64url.
        sign_segment(KEY_A, "not*base64", t),
        // Validly signed, but no timestamp.
        sign_text(KEY_A, "cookie-session", &b64(r#"{"user_id":"alice"}"#)),
        // Validly signed, a timestamp that is not base64url.
        sign_text(KEY_A, "cookie-session", "e30.***"),
        // Validly signed, a timestamp longer than eight bytes.
        sign_text(
            KEY_A,
            "cookie-session",
            &format!("{}.{}", b64(r#"{"user_id":"alice"}"#), b64([1_u8; 9])),
        ),
        // Validly signed, an empty timestamp.
        sign_text(KEY_A, "cookie-session", "e30."),
    ];
    assert_anonymous(&client, "malformed", &values).await;
}

#[tokio::test]
async fn garbage_and_non_utf8_cookies_are_no_session() {
    let server = serve(sha1_config()).await;
    let client = server.client();
    // Non-ASCII text (sent as UTF-8 bytes, obs-text to HTTP).
    assert_anonymous(
        &client,
        "garbage",
        &[
            "héllo ☃ 😀".into(),
            "\u{80}\u{ff}".into(),
            format!("{}é", sign(KEY_A, r#"{"user_id":"alice"}"#, now())),
        ],
    )
    .await;

    // Bytes that are not UTF-8 at all, on a raw connection.
    for garbage in [
        &b"\xff\xfe\xfd"[..],
        b"\x80abc.\xc3\x28.def",
        b"e30.\xff.\xff",
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let mut request = Vec::new();
        request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        request.extend_from_slice(b"Cookie: session=");
        request.extend_from_slice(garbage);
        request.extend_from_slice(b"\r\n\r\n");
        stream.write_all(&request).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 200 "),
            "{garbage:?}: {response}"
        );
        assert!(response.ends_with("naughty!"), "{garbage:?}: {response}");
    }
}

#[tokio::test]
async fn oversized_cookie_is_no_session() {
    let server = serve(sha1_config()).await;
    let client = server.client();
    // Validly signed, but larger than browsers keep: refused all the same.
    let mut json = String::from(r#"{"user_id":"alice","blob":""#);
    json.push_str(&"x".repeat(MAX_COOKIE_SIZE));
    json.push_str(r#""}"#);
    let big = sign(KEY_A, &json, now());
    assert!(big.len() > MAX_COOKIE_SIZE);
    assert_anonymous(
        &client,
        "oversized",
        &[big, "a".repeat(MAX_COOKIE_SIZE + 1), "a.b.c".repeat(2000)],
    )
    .await;
    // Just under the limit, it is a session.
    let mut json = String::from(r#"{"user_id":"alice","blob":""#);
    json.push_str(&"x".repeat(2000));
    json.push_str(r#""}"#);
    assert_eq!(
        index_with(&client, &sign(KEY_A, &json, now())).await,
        (StatusCode::OK, "alice".to_owned())
    );
}

#[tokio::test]
async fn rotated_key_still_verifies_and_new_cookies_use_the_current_key() {
    let only_a = serve(SecureSessionConfig::new(KEY_A)).await;
    let only_b = serve(SecureSessionConfig::new(KEY_B)).await;
    let rotated = serve(SecureSessionConfig::new(KEY_B).fallback_keys([KEY_A])).await;

    let signed_by_a = logged_in(&only_a.client(), "alice").await;
    assert_eq!(
        index_with(&rotated.client(), &signed_by_a).await,
        (StatusCode::OK, "alice".to_owned()),
        "the fallback key verifies"
    );
    assert_eq!(
        index_with(&only_b.client(), &signed_by_a).await.1,
        "naughty!",
        "B alone does not verify A's cookie"
    );

    // A request of the rotated app writes a cookie under B.
    let client = rotated.client();
    client.set_cookie("session", &signed_by_a);
    let response = client.post("/put?key=theme&value=dark").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let signed_by_b = client.cookie("session").expect("a new cookie");
    assert_ne!(signed_by_b, signed_by_a);
    assert_eq!(
        index_with(&only_b.client(), &signed_by_b).await,
        (StatusCode::OK, "alice".to_owned()),
        "the new cookie verifies under B alone"
    );
    assert_eq!(
        index_with(&only_a.client(), &signed_by_b).await.1,
        "naughty!",
        "the new cookie is not signed with A"
    );
}

#[tokio::test]
async fn update_over_the_cookie_limit_is_a_500_without_set_cookie() {
    let server = serve(SecureSessionConfig::new(KEY_A)).await;
    let client = server.client();
    let token = logged_in(&client, "alice").await;

    let response = client
        .post(&format!("/oversize?size={MAX_COOKIE_SIZE}"))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.set_cookies().is_empty(), "{:?}", response.headers);
    assert!(
        !response.body.contains("4096"),
        "details are logged, not sent: {}",
        response.body
    );
    // The old cookie is untouched and still works.
    assert_eq!(client.cookie("session"), Some(token));
    assert_eq!(client.get("/").send().await.body, "alice");

    // The limit counts the whole Set-Cookie; a value that fits is fine.
    let response = client.post("/oversize?size=1000").send().await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let set = response.set_cookies();
    assert_eq!(set.len(), 1);
    assert!(set[0].len() <= MAX_COOKIE_SIZE);
}

fn two_configurations() -> App {
    let mut app = App::new();
    app.get("/both", both)
        .post("/login", login)
        .post("/login-another", login_another)
        .post("/logout", logout);
    configure_secure_sessions(&mut app, SecureSessionConfig::new(KEY_A));
    configure_secure_sessions(
        &mut app,
        SecureSessionConfig::new(KEY_A)
            .salt("another-salt")
            .cookie_name("another")
            .session_arg_param_name("another_session"),
    );
    app
}

#[tokio::test]
async fn two_configurations_are_independent() {
    let server = TestServer::start(two_configurations()).await;
    let client = server.client();
    assert_eq!(client.get("/both").send().await.body, "naughty!|naughty!");

    let response = client.post("/login?username=alice").send().await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.set_cookies().len(), 1);
    assert!(response.set_cookie("session").is_some());
    assert_eq!(client.get("/both").send().await.body, "alice|naughty!");

    let response = client.post("/login-another?username=bob").send().await;
    assert!(response.set_cookie("another").is_some());
    assert!(response.set_cookie("session").is_none());
    assert_eq!(client.get("/both").send().await.body, "alice|bob");

    // One configuration's cookie does not pass as the other's.
    let session = client.cookie("session").expect("session");
    let another = client.cookie("another").expect("another");
    let swapped = client
        .get("/both")
        .raw_cookie(&format!("session={another}; another={session}"))
        .send()
        .await;
    assert_eq!(swapped.body, "naughty!|naughty!");

    let response = client.post("/logout").send().await;
    assert!(response.set_cookie("another").is_none());
    assert_eq!(client.get("/both").send().await.body, "naughty!|bob");
}

#[test]
fn configurations_sharing_secret_and_salt_do_not_build() {
    let mut app = App::new();
    app.get("/both", both);
    configure_secure_sessions(&mut app, SecureSessionConfig::new(KEY_A));
    configure_secure_sessions(
        &mut app,
        SecureSessionConfig::new(KEY_A)
            .cookie_name("another")
            .session_arg_param_name("another_session"),
    );
    let error = app.build().expect_err("two look-alike configurations");
    let message = error.to_string();
    assert!(message.contains("share a secret key and salt"), "{message}");

    // A fallback key counts too.
    let mut app = App::new();
    app.get("/both", both);
    configure_secure_sessions(&mut app, SecureSessionConfig::new(KEY_A));
    configure_secure_sessions(
        &mut app,
        SecureSessionConfig::new(KEY_B)
            .fallback_keys([KEY_A])
            .cookie_name("another")
            .session_arg_param_name("another_session"),
    );
    let message = app.build().expect_err("a shared fallback").to_string();
    assert!(message.contains("share a secret key and salt"), "{message}");

    // Another salt is fine.
    assert!(two_configurations().build().is_ok());
}

#[test]
fn misspelled_session_parameter_does_not_build_and_suggests_the_name() {
    let mut app = App::new();
    app.get("/", typo);
    configure_secure_sessions(&mut app, SecureSessionConfig::new(KEY_A));
    let message = app.build().expect_err("no `sesion`").to_string();
    assert!(message.contains("`typo`"), "names the handler: {message}");
    assert!(message.contains("sesion"), "names the parameter: {message}");
    assert!(
        message.contains("did you mean `session`?"),
        "suggests the name: {message}"
    );
}

// ------------------------------------------------------------- property

/// A change to a valid token.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

/// Bytes a mutation writes: the token alphabet and a few other cookie
/// characters, never ones the cookie parser trims or splits on (space,
/// `;`, `"`), which could leave the token intact.
fn token_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/!%~".to_vec(),
    )
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), token_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), token_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(token: &str, mutations: &[Mutation]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for mutation in mutations {
        match mutation {
            Mutation::Replace(i, b) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = i.index(bytes.len() + 1);
                bytes.insert(i, *b);
            }
            Mutation::Delete(i) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes.remove(i);
            }
            Mutation::Truncate(i) => {
                let i = i.index(bytes.len() + 1);
                bytes.truncate(i);
            }
            _ => {}
        }
    }
    String::from_utf8(bytes).expect("ASCII stays ASCII")
}

/// A cookie value to send: arbitrary text, or a mutated valid token.
#[derive(Debug, Clone)]
enum Candidate {
    Arbitrary(String),
    Mutated(Vec<Mutation>),
}

fn candidate() -> impl Strategy<Value = Candidate> {
    prop_oneof![
        // Any printable text (non-ASCII goes out as obs-text bytes).
        1 => "\\PC{0,300}".prop_map(Candidate::Arbitrary),
        // Token-shaped text.
        1 => "\\.?[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,10}\\.[A-Za-z0-9_-]{0,50}"
            .prop_map(Candidate::Arbitrary),
        // Around the size limit.
        1 => "[A-Za-z0-9_.-]{4000,4200}".prop_map(Candidate::Arbitrary),
        3 => prop::collection::vec(mutation(), 1..4).prop_map(Candidate::Mutated),
    ]
}

#[test]
fn arbitrary_and_mutated_cookies_are_anonymous_sessions() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let server = runtime.block_on(serve(SecureSessionConfig::new(KEY_A)));
    let client = server.client();
    let token = runtime.block_on(logged_in(&client, "alice"));
    assert_eq!(
        runtime.block_on(index_with(&client, &token)),
        (StatusCode::OK, "alice".to_owned()),
        "the untouched token is a session"
    );
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&candidate(), |candidate| {
        let value = match &candidate {
            Candidate::Arbitrary(text) => text.clone(),
            Candidate::Mutated(mutations) => mutate(&token, mutations),
        };
        let (status, body) = runtime.block_on(index_with(&client, &value));
        prop_assert_eq!(status, StatusCode::OK, "cookie {:?}", value);
        let expected = if value == token { "alice" } else { "naughty!" };
        prop_assert_eq!(body.as_str(), expected, "cookie {:?}", value);
        Ok(())
    });
    if let Err(error) = result {
        let _ = std::io::stderr().flush();
        panic!("{error}");
    }
    runtime.block_on(server.shutdown());
}
