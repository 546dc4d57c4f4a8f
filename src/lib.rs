//! heavylift: a thread-per-core HTTP/1.1 server on io_uring (glommio) whose
//! I/O cores never run heavy work, plus the client that proves it.
//!
//! Every I/O core runs one pinned executor with its own SO_REUSEPORT listener;
//! reserved compute cores each run one pinned executor that only runs jobs.
//! Jobs go I/O -> compute and outcomes come back through two glommio partial
//! channel meshes, so an I/O core never blocks on heavy work.
//!
//! ```text
//!   client ──TCP──▶ I/O core 0 ─┐ jobs mesh (bounded, --queue-depth) ┌─▶ compute core 2
//!   client ──TCP──▶ I/O core 1 ─┤──────────────────────────────────────┤
//!                               └◀──────── results mesh ──────────────┴── compute core 3
//! ```
//!
//! # From a request to a job, in a service of your own
//!
//! ```no_run
//! use heavylift::{fast, offload, CoreLayout, Response, Router, ServeConfig, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new()
//!     // Answered on the I/O core that read the request: keep it quick.
//!     .get("/hello/{name}", fast(|req| {
//!         Response::text(200, format!("hello {}", req.param("name").unwrap_or("")))
//!     }))
//!     // Run on a compute core: the job gets the request as plain data.
//!     .post("/reverse", offload(|input, ctx| {
//!         let mut out = Vec::with_capacity(input.body.len());
//!         for chunk in input.body.rchunks(64 * 1024) {
//!             if ctx.should_stop() {
//!                 return Err(heavylift::Cancelled); // timed out, or the client left
//!             }
//!             out.extend(chunk.iter().rev());
//!         }
//!         Ok(Response::bytes(200, "application/octet-stream", out))
//!     })
//!     .check(|req| match req.header("content-type") {
//!         Some(_) => Ok(()),
//!         None => Err(Response::text(415, "send a Content-Type")),
//!     })
//!     .max_body(8 << 20));
//! let layout = CoreLayout::resolve(&CoreLayout::usable_cpus(), None, None, None)?;
//! // Serves until SIGINT or SIGTERM, then stops gracefully. (`Server::start`
//! // returns a handle instead: call its `stop`, then `join`.)
//! Server::run_until_signal(ServeConfig::new("127.0.0.1:8080".parse()?, layout), router)?;
//! # Ok(())
//! # }
//! ```
//!
//! What happens to `POST /reverse`:
//! 1. An I/O core reads the head and [`Router::resolve`]s it: 404, 405 (with
//!    `Allow`) or this route. The route's `check` runs now, and admission:
//!    if every compute queue is full the answer is 503 with `Retry-After`.
//!    Either refusal is sent before the body is read (instead of `100
//!    Continue` when the client asked for one).
//! 2. The body is read under the route's limit (413 past it; chunked or
//!    `Content-Length`, every framing byte counted) into one buffer.
//! 3. The request becomes a [`JobInput`] and moves, without another copy,
//!    to the least loaded compute core, which runs the job under
//!    `catch_unwind` (a panic is a 500).
//! 4. The I/O core waits without blocking: the job timeout answers 504, a
//!    client that hangs up cancels the job; [`JobContext::should_stop`] turns
//!    both into `Err(Cancelled)` at the job's next check.
//! 5. The [`Response`] comes back and is written in request order.
//!
//! # Layout
//! - Request path: `server::io_core` accepts -> `server::connection` reads and
//!   parses (`http`) -> `router` picks a handler (`routes` holds the seed's) ->
//!   the answer is encoded (`http::response`) and written in request order.
//! - Job path: the head of a request to an `offload` route is checked and
//!   admitted (or answered 503) when it arrives; its body is collected under
//!   the route's limit; the request becomes a `jobs::JobInput` (plain data)
//!   that `jobs::dispatch` moves, with the route's index and job, to the least
//!   loaded compute core -> `jobs::worker` runs it under `catch_unwind` -> the
//!   outcome returns to the I/O core's `jobs::pending` table ->
//!   `jobs::outcome_response` maps it to 200/500/504.
//!   `jobs::cancel::CancelToken` decides, once, how each job ended.
//!   Under `--isolation process` the compute executor hands the job (route
//!   index + input) to its supervised worker process instead
//!   (`jobs::process`: frames, supervisor, the worker's side).
//! - Who owns what: each executor owns its sockets, pending table and shutdown
//!   signal (`Rc`, never shared); `stats::Stats` holds one atomic slot per core,
//!   written only by that core and read by `/stats` and `/metrics`.
//! - Start-up: `cli` (raw flags) -> `config` (validated, `cores` layout) ->
//!   `server::Server::start`. The client side (`load`, `bench`) is `client`.

//!
//! # Features
//! The library alone is the server engine. What only the `heavylift` binary
//! needs sits behind cargo features, all on by default:
//! - `cli`: the binary's raw command-line flags (`heavylift::cli`, clap) and what its
//!   `main` uses (env_logger, anyhow);
//! - `client`: `heavylift load` and `heavylift bench` (`heavylift::client`,
//!   hdrhistogram; implies `cli`, whose flags it takes);
//! - `seed`: the seed's routes (`heavylift::routes`) and its bignum job
//!   (`jobs::heavy`, dashu);
//! - `gzip`: the gzip job's core (`jobs::gzip`, flate2).
//!
//! A service that depends on heavylift with `default-features = false`
//! builds none of them.

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod cores;
mod error;
pub mod http;
pub mod jobs;
pub mod router;
#[cfg(feature = "seed")]
pub mod routes;
mod server;
pub mod stats;
/// The worker-process hook of process isolation (`jobs::process`).
pub mod worker {
    pub use crate::jobs::process::child::{serve_if_worker, MEMORY_ENV, WORKER_ENV};
    pub use crate::jobs::process::external::{
        check_own_worker, check_routes, ExternalWorker, MAX_ROUTES,
    };
    pub use crate::jobs::process::PROTOCOL_VERSION;
}

pub use config::{Isolation, ServeConfig, MAX_QUEUE_DEPTH};
pub use cores::{ComputePriority, CoreLayout, CpuList, MAX_CPU};
pub use error::{Error, Result};
pub use http::{RequestHead, Response};
pub use jobs::{Cancelled, JobContext, JobFn, JobInput};
pub use router::{fast, inline, offload, Handler, Method, Request, Router};
pub use server::{Server, ServerHandle};
