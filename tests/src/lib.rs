//! Test support for the `sessions` workspace: a server on `127.0.0.1:0`
//! and a client with a cookie jar, so tests make real HTTP round trips.

mod http_client;
pub mod redis_cluster;
pub mod redis_server;
pub mod webdriver;

pub use http_client::{RequestBuilder, TestClient, TestResponse, TestServer};
