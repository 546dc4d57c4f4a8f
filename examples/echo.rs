//! The endpoints HTTP/1.1 conformance probes expect, so a third-party test
//! suite can exercise heavylift's whole HTTP layer, bodies included (hyper
//! ships the same kind of example):
//!
//! - `/` answers GET, HEAD and OPTIONS with 200, and POST by echoing the
//!   request body (with its `Content-Type`);
//! - `POST /echo` answers with the request's header lines, one per line.
//!
//! Run: `cargo run --release --example echo -- 127.0.0.1:8897` (the default
//! address), then point the probe at it.

use heavylift::{fast, CoreLayout, Response, Router, ServeConfig, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Warn)
        .init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8897".into());
    let router = Router::new()
        .get("/", fast(|_| Response::text(200, "")))
        .options(
            "/",
            fast(|_| Response::text(200, "").with_header("Allow", "GET, HEAD, OPTIONS, POST")),
        )
        .post(
            "/",
            fast(|req| {
                let kind = req
                    .header("content-type")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_else(|| "application/octet-stream".into());
                Response::bytes(200, kind, req.body.to_vec())
            }),
        )
        .post(
            "/echo",
            fast(|req| {
                let mut lines = Vec::new();
                for (name, value) in req.head.headers() {
                    lines.extend_from_slice(name.as_bytes());
                    lines.extend_from_slice(b": ");
                    lines.extend_from_slice(value);
                    lines.push(b'\n');
                }
                Response::text(200, lines)
            }),
        );
    let layout = CoreLayout::resolve(&CoreLayout::usable_cpus(), None, None, None)?;
    let config = ServeConfig::new(listen.parse()?, layout);
    println!("listening on http://{}; Ctrl-C to stop", config.listen);
    Server::run_until_signal(config, router)?;
    Ok(())
}
