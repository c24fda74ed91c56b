//! What the peers share: the command line.
//!
//! Every peer takes `[FLAVOUR] [--port P] [--redis-url URL]` and prints
//! `listening on http://127.0.0.1:PORT` once it accepts connections, like
//! `uapi_app`, so that `scripts/bench.sh` drives them all alike.

/// The parsed command line.
#[derive(Debug)]
pub struct Args {
    /// The first positional argument (`memory`, `redis`, `cookie`), if any.
    pub flavour: Option<String>,
    /// `--port`, default 0 (a free port).
    pub port: u16,
    /// `--redis-url`, default `redis://127.0.0.1:6379`.
    pub redis_url: String,
}

/// Parses `std::env::args()`; exits with status 2 on a bad argument.
pub fn args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        flavour: None,
        port: 0,
        redis_url: "redis://127.0.0.1:6379".into(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                parsed.port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| bad("--port needs a port"));
            }
            "--redis-url" => {
                parsed.redis_url = args
                    .next()
                    .unwrap_or_else(|| bad("--redis-url needs a URL"));
            }
            flag if flag.starts_with('-') => bad(&format!("unknown argument `{flag}`")),
            _ => parsed.flavour = Some(arg),
        }
    }
    parsed
}

fn bad(message: &str) -> ! {
    eprintln!("{message}\nusage: PEER [FLAVOUR] [--port P] [--redis-url URL]");
    std::process::exit(2)
}

/// Prints the line scripts wait for.
pub fn announce(port: u16) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://127.0.0.1:{port}");
    let _ = out.flush();
}
