//! The public way to add routes: fast handlers that answer on the I/O core,
//! and heavy jobs that run on a compute core (or, deliberately, inline).
//!
//! The `heavylift` binary registers the seed's routes (`routes.rs`) through
//! exactly this API; `examples/custom_job.rs` adds its own job the same way.
//! Every router also answers `/stats`, `/metrics` and `/healthz`. Only GET
//! and HEAD (GET without the body, RFC 9110 section 9.3.2) are routed: other
//! methods on a known path get 405 with `Allow: GET, HEAD`, unknown paths
//! 404, and `OPTIONS *` 200 with `Allow`, before any handler runs
//! ([`Router::resolve`]).

use std::sync::Arc;

use crate::http::target::TargetForm;
use crate::http::{RequestHead, Response};
use crate::jobs::JobFn;
use crate::stats::Stats;

/// What a handler sees of a request.
pub struct Request<'a> {
    pub head: &'a RequestHead,
    /// CPU number of the I/O core that read the request.
    pub io_core: usize,
    /// Every core's counters (for `/stats`-like handlers).
    pub stats: &'a Stats,
}

impl Request<'_> {
    /// The raw query string (after `?`), "" if none.
    pub fn query(&self) -> &str {
        self.head.query()
    }

    /// True when the client asked for `Accept: application/json`.
    pub fn accepts_json(&self) -> bool {
        self.head.accepts_json
    }
}

/// What a handler decides to do with a request.
pub enum Action {
    /// Answer now, on the I/O core (must be quick).
    Respond(Response),
    /// Run this job on the least loaded compute core (503 when all are full,
    /// 504 past `--job-timeout`, 500 if it panics).
    Offload(JobFn),
    /// Run this job right here, blocking the I/O core: only for the `/slow`
    /// baseline that shows the problem heavylift removes.
    Inline(JobFn),
}

/// What [`Router::resolve`] found for a request head.
pub enum Resolved<'a> {
    /// Answer this without calling a handler (404, 405, `OPTIONS *`); the
    /// route's index when the path matched one.
    Answer(Option<usize>, Response),
    /// Call this handler; the route's index is for metrics.
    Handler(usize, &'a Handler),
}

/// `Allow` of the routes (every route takes GET and HEAD).
pub const ROUTE_METHODS: &str = "GET, HEAD";
/// `Allow` of `OPTIONS *`: the methods the server as a whole supports.
pub const SERVER_METHODS: &str = "GET, HEAD, OPTIONS";

/// A route handler: sync, cheap, and shared by every I/O core.
pub type Handler = Arc<dyn Fn(&Request<'_>) -> Action + Send + Sync + 'static>;

/// Paths and their handlers, matched exactly on the path (query ignored).
#[derive(Clone)]
pub struct Router {
    routes: Vec<(String, Handler)>,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// A router with the built-in `/stats`, `/metrics` and `/healthz`.
    pub fn new() -> Router {
        Router { routes: Vec::new() }
            .fast("/stats", |req| Response::json(200, req.stats.render_json()))
            .fast("/metrics", |req| {
                Response::text(200, req.stats.render_metrics())
                    .with_content_type("text/plain; version=0.0.4; charset=utf-8")
            })
            .fast("/healthz", |_| Response::text(200, "ok"))
    }

    /// Adds a route with a full [`Handler`]. A path registered twice keeps the later handler.
    pub fn route(mut self, path: &str, handler: Handler) -> Router {
        match self.routes.iter_mut().find(|(p, _)| p == path) {
            Some(slot) => slot.1 = handler,
            None => self.routes.push((path.to_string(), handler)),
        }
        self
    }

    /// Adds a handler that answers on the I/O core.
    pub fn fast(
        self,
        path: &str,
        f: impl Fn(&Request<'_>) -> Response + Send + Sync + 'static,
    ) -> Router {
        self.route(path, Arc::new(move |req| Action::Respond(f(req))))
    }

    /// Adds a heavy job run on a compute core. `make` runs on the I/O core: it
    /// validates the request (an `Err` response, e.g. 400, is sent as is) and
    /// builds the job.
    pub fn offload(
        self,
        path: &str,
        make: impl Fn(&Request<'_>) -> Result<JobFn, Response> + Send + Sync + 'static,
    ) -> Router {
        self.route(
            path,
            Arc::new(move |req| make(req).map_or_else(Action::Respond, Action::Offload)),
        )
    }

    /// Adds a heavy job run inline on the I/O core (blocking it).
    pub fn inline(
        self,
        path: &str,
        make: impl Fn(&Request<'_>) -> Result<JobFn, Response> + Send + Sync + 'static,
    ) -> Router {
        self.route(
            path,
            Arc::new(move |req| make(req).map_or_else(Action::Respond, Action::Inline)),
        )
    }

    /// Decides what answers `head`: its route's handler, or one of the
    /// answers every router gives alike (404 for an unknown path, 405 with
    /// `Allow` for a method other than GET and HEAD, 200 for `OPTIONS *`).
    pub fn resolve(&self, head: &RequestHead) -> Resolved<'_> {
        if head.form == TargetForm::Asterisk {
            let response = Response::text(200, "").with_header("Allow", SERVER_METHODS);
            return Resolved::Answer(None, response);
        }
        match self.find(head.path()) {
            None => Resolved::Answer(None, Response::text(404, "not found")),
            Some((index, _)) if head.method != "GET" && head.method != "HEAD" => {
                let response = Response::text(405, "method not allowed: use GET or HEAD")
                    .with_header("Allow", ROUTE_METHODS);
                Resolved::Answer(Some(index), response)
            }
            Some((index, handler)) => Resolved::Handler(index, handler),
        }
    }

    /// The index and handler for `path`.
    pub fn find(&self, path: &str) -> Option<(usize, &Handler)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, (p, _))| p == path)
            .map(|(i, (_, h))| (i, h))
    }

    /// Metric labels: each path without its leading `/`.
    pub fn labels(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|(p, _)| p.trim_start_matches('/').to_string())
            .collect()
    }
}
