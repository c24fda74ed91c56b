//! The ceiling: hyper 1 answering the three routes with no sessions and no
//! framework. `GET /` answers `naughty!`, `POST /login` 201, `POST /logout`
//! 204.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming, server::conn::http1, service::service_fn, Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => (StatusCode::OK, "naughty!"),
        (&Method::POST, "/login") => (StatusCode::CREATED, ""),
        (&Method::POST, "/logout") => (StatusCode::NO_CONTENT, ""),
        _ => (StatusCode::NOT_FOUND, "not found"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = peers::args();
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    peers::announce(listener.local_addr()?.port());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
