//! `shutdown_signal`: the handlers are installed when it is called.
//!
//! Its own test binary, because it sends SIGTERM to its own process: with the handler
//! not yet installed, the default action would end every test running beside it.

#![cfg(unix)]

use std::{process::Command, time::Duration};

use sessions::App;

fn sigterm_to_self() {
    let sent = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_before_the_server_first_polls_it_shuts_the_server_down() {
    let service = App::new().build().expect("the app builds");
    let signal = sessions::shutdown_signal();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    // Sent before the server (and so the signal future) has run at all: the process
    // survives it, and the server stops once it looks.
    sigterm_to_self();
    let server = tokio::spawn(service.serve_with_shutdown(listener, signal));
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops after SIGTERM")
        .expect("the server task does not panic")
        .expect("the server ends without an I/O error");
    // And it no longer accepts connections.
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still listening at {addr}");
}
