//! An upload service a team would recognise: `POST /archive/{name}` takes a
//! file of up to 64 MiB, compresses it on a compute core, and answers the
//! `.gz` as a download; `GET /health` answers on the I/O core. Uploads that
//! are too large are refused before they are sent (413 instead of `100
//! Continue`), a full server says 503 at once, and a client that gives up
//! cancels its job.
//!
//! Run: `cargo run --release --example upload`, then
//! `curl -sS -o README.md.gz --data-binary @README.md http://127.0.0.1:8898/archive/README.md`
//!
//! The same service in axum + `spawn_blocking`, for comparison (it has no
//! queue bound, no cancellation, no CPU reserved for the work, and reads the
//! whole 64 MiB before it can refuse it):
//!
//! ```ignore
//! async fn archive(Path(name): Path<String>, body: Bytes) -> Result<impl IntoResponse, StatusCode> {
//!     let gz = tokio::task::spawn_blocking(move || {
//!         let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
//!         e.write_all(&body).map(|_| e.finish())
//!     }).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
//!       .and_then(|r| r).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
//!     let disposition = format!("attachment; filename=\"{name}.gz\"");
//!     Ok(([(CONTENT_TYPE, "application/gzip".to_string()), (CONTENT_DISPOSITION, disposition)], gz))
//! }
//! let app = Router::new()
//!     .route("/archive/{name}", post(archive))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(DefaultBodyLimit::max(64 << 20));
//! ```
//!
//! heavylift's route (in `main` below) is as long, and the job is the same
//! plain function it would be anywhere.

use heavylift::jobs::gzip::gzip;
use heavylift::{fast, offload, CoreLayout, Response, Router, ServeConfig, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .init();
    let router = Router::new()
        .post(
            "/archive/{name}",
            offload(|input, ctx| {
                let gz = gzip(&input.body, 6, || ctx.should_stop())?;
                let name = input.param("name").unwrap_or("upload").replace('"', "");
                let disposition = format!("attachment; filename=\"{name}.gz\"");
                Ok(Response::bytes(200, "application/gzip", gz)
                    .with_header("Content-Disposition", disposition))
            })
            .max_body(64 << 20),
        )
        .get("/health", fast(|_| Response::text(200, "ok")));
    let layout = CoreLayout::resolve(&CoreLayout::usable_cpus(), None, None, None)?;
    let config = ServeConfig::new("127.0.0.1:8898".parse()?, layout);
    println!("listening on http://{}; Ctrl-C to stop", config.listen);
    Server::run_until_signal(config, router)?;
    Ok(())
}
