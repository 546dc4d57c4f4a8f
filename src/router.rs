//! The public way to add routes: fast handlers that answer on the I/O core,
//! and heavy jobs that run on a compute core (or, deliberately, inline).
//!
//! ```
//! use heavylift::router::{fast, offload, Router};
//! use heavylift::{JobInput, Response};
//!
//! let router = Router::new()
//!     .get("/hello/{name}", fast(|req| Response::text(200, format!("hi {}", req.param("name").unwrap_or("")))))
//!     .post("/files/{*path}", offload(|input: &JobInput, _ctx: &heavylift::JobContext<'_>| {
//!         Ok(Response::bytes(200, "application/octet-stream", input.body.clone()))
//!     }).max_body(4 << 20));
//! assert!(router.error().is_none());
//! ```
//!
//! Paths are matched by `matchit` (axum's router): static segments,
//! `{name}` parameters (one segment) and `{*rest}` catch-alls (the rest of
//! the path), static first. Parameters are percent-decoded (a bad escape or
//! invalid UTF-8 is a 400). Each path takes the methods registered on it;
//! HEAD rides on GET (answered as GET without the body, RFC 9110 section
//! 9.3.2). Before any handler runs, [`Router::resolve`] answers what every
//! router answers alike: 404 for an unknown path, 405 with `Allow` naming
//! the path's methods, 200 with `Allow` for `OPTIONS *`. Registering the same
//! method and path twice, or paths that `matchit` finds ambiguous, is an
//! error that [`Router::error`] reports and `Server::start` refuses.
//!
//! The `heavylift` binary registers the seed's routes (`routes.rs`) through
//! exactly this API. Every router also answers GET `/stats`, `/metrics` and
//! `/healthz`.

use std::borrow::Cow;
use std::sync::Arc;

use crate::http::query::{normalize_unreserved, percent_decode_path};
use crate::http::target::TargetForm;
use crate::http::{RequestHead, Response, MAX_BODY_BYTES};
use crate::jobs::{Cancelled, JobContext, JobFn, JobInput};
use crate::stats::Stats;

/// The methods a route can take. HEAD is not one: every GET route answers
/// it (RFC 9110 section 9.1: a general-purpose server supports GET and HEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// GET (RFC 9110 section 9.3.1), and HEAD with it.
    Get,
    /// POST (9.3.3): an upload for the route to process.
    Post,
    /// PUT (9.3.4).
    Put,
    /// DELETE (9.3.5).
    Delete,
    /// PATCH (RFC 5789).
    Patch,
    /// OPTIONS on a path (9.3.7); `OPTIONS *` is every router's.
    Options,
}

impl Method {
    /// The method token as sent on the wire, e.g. "POST".
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
        }
    }

    /// The route method a request method is served by: HEAD by GET.
    /// Methods are case-sensitive (RFC 9110 section 9.1).
    pub fn of_request(method: &str) -> Option<Method> {
        Some(match method {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }
}

/// What a handler sees of a request.
pub struct Request<'a> {
    /// The parsed head: method, target, version, header fields.
    pub head: &'a RequestHead,
    /// Path parameters, percent-decoded, in pattern order.
    pub params: &'a [(String, String)],
    /// The request body (empty for a check run when the head arrives, since
    /// checks decide before any body byte is read).
    pub body: &'a [u8],
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

    /// The decoded path parameter `name`, e.g. `id` of `/users/{id}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of request header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(name)
    }

    /// The query value `name`, decoded as a form value (`%XX` and `+`), as
    /// the built-in routes read `id`: `None` when absent, `Some(Err(why))`
    /// for a bad escape or a value that is not UTF-8 (see
    /// [`crate::http::query::query_value`]).
    pub fn query_value(&self, name: &str) -> Option<Result<Cow<'_, str>, &'static str>> {
        crate::http::query::query_value(self.head.query(), name)
    }
}

/// A job's input: the request as plain, owned data; `params` and `body` are
/// moved in, not copied.
pub fn job_input(
    head: &RequestHead,
    params: Vec<(String, String)>,
    body: Vec<u8>,
    io_core: usize,
) -> JobInput {
    JobInput {
        method: head.method.to_string(),
        path: head.path().to_owned(),
        params,
        query: head.query().to_owned(),
        headers: head
            .headers()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec()))
            .collect(),
        body,
        io_core,
    }
}

/// A fast handler: sync, cheap, run on the I/O core that read the request.
/// A panic in it (or in a [`CheckFn`]) is caught and answered 500 like a
/// job's; the core serves on.
pub type FastFn = Arc<dyn Fn(&Request<'_>) -> Response + Send + Sync + 'static>;
/// A check run on the I/O core when the head arrives, before the body is
/// read and before the job is queued: an `Err` response (e.g. 400) is sent
/// as is and the job never runs.
pub type CheckFn = Arc<dyn Fn(&Request<'_>) -> Result<(), Response> + Send + Sync + 'static>;

/// Where a route's work runs.
#[derive(Clone)]
pub enum Work {
    /// On the I/O core, now (must be quick).
    Fast(FastFn),
    /// On the least loaded compute core (503 when every queue is full, 504
    /// past `--job-timeout`, 500 if it panics).
    Offload(JobFn),
    /// Right here, blocking the I/O core: only for the `/slow` baseline
    /// that shows the problem heavylift removes.
    Inline(JobFn),
}

/// One route's handler and policy; build it with [`fast`], [`offload`] or
/// [`inline`].
#[derive(Clone)]
pub struct Handler {
    /// What runs, and where.
    pub work: Work,
    /// Checked when the head arrives (on every kind of route); see
    /// [`CheckFn`].
    pub check: Option<CheckFn>,
    /// Most request body bytes, framing included (413 past it). Default is
    /// 1 MiB ([`MAX_BODY_BYTES`]).
    pub max_body: u64,
    /// This route's job timeout (offloaded jobs), instead of the server's
    /// `--job-timeout`; the caller's `x-envoy-expected-rq-timeout-ms` still
    /// shortens it. Default is `None` (the server's).
    pub job_timeout: Option<std::time::Duration>,
    /// The most of each compute core's queue this route's waiting jobs may
    /// take, as a fraction in (0, 1] of `--queue-depth` (at least one job);
    /// past it the request gets 503, so one slow endpoint cannot fill every
    /// queue and starve the others. Default is `None` (the whole queue).
    pub queue_share: Option<f64>,
}

/// A handler answered on the I/O core.
pub fn fast(f: impl Fn(&Request<'_>) -> Response + Send + Sync + 'static) -> Handler {
    Handler::new(Work::Fast(Arc::new(f)))
}

/// A job run on a compute core.
pub fn offload(
    job: impl Fn(&JobInput, &JobContext<'_>) -> Result<Response, Cancelled> + Send + Sync + 'static,
) -> Handler {
    Handler::new(Work::Offload(Arc::new(job)))
}

/// A job run inline on the I/O core, blocking it (the `/slow` baseline).
pub fn inline(
    job: impl Fn(&JobInput, &JobContext<'_>) -> Result<Response, Cancelled> + Send + Sync + 'static,
) -> Handler {
    Handler::new(Work::Inline(Arc::new(job)))
}

impl Handler {
    fn new(work: Work) -> Handler {
        Handler {
            work,
            check: None,
            max_body: MAX_BODY_BYTES,
            job_timeout: None,
            queue_share: None,
        }
    }

    /// Adds a check run when the head arrives; see [`CheckFn`].
    pub fn check(
        mut self,
        f: impl Fn(&Request<'_>) -> Result<(), Response> + Send + Sync + 'static,
    ) -> Handler {
        self.check = Some(Arc::new(f));
        self
    }

    /// Sets the most request body bytes this route reads (413 past it).
    pub fn max_body(mut self, bytes: u64) -> Handler {
        self.max_body = bytes;
        self
    }

    /// Sets this route's job timeout (see [`Handler::job_timeout`]); a zero
    /// duration is taken as 1 ms.
    pub fn job_timeout(mut self, timeout: std::time::Duration) -> Handler {
        self.job_timeout = Some(timeout.max(std::time::Duration::from_millis(1)));
        self
    }

    /// Sets this route's share of each compute core's queue (see
    /// [`Handler::queue_share`]): `fraction` is clamped to (0, 1]; NaN or
    /// anything not above 0 means the least share, one waiting job per core.
    pub fn queue_share(mut self, fraction: f64) -> Handler {
        let f = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self.queue_share = Some(f);
        self
    }

    /// The most jobs of this route that may wait in one compute core's queue
    /// of `queue_depth`, or `None` when the route has no share of its own.
    pub fn queue_cap(&self, queue_depth: usize) -> Option<usize> {
        self.queue_share
            .map(|f| ((f * queue_depth as f64).floor() as usize).clamp(1, queue_depth.max(1)))
    }
}

/// One registered route.
#[derive(Clone)]
pub struct Route {
    /// The method it answers (GET also answers HEAD).
    pub method: Method,
    /// The pattern as registered, e.g. `/users/{id}`.
    pub path: String,
    /// Its work and policy.
    pub handler: Handler,
}

/// What [`Router::resolve`] found for a request head.
pub enum Resolved<'a> {
    /// Answer this without calling a handler (404, 405, `OPTIONS *`); the
    /// index of a route on the matched path, when there is one (for metrics).
    Answer(Option<usize>, Response),
    /// This route serves the request; `index` is its registration order.
    Route {
        /// Registration order, the index of `Router::routes` and of metrics.
        index: usize,
        /// The route itself.
        route: &'a Route,
        /// Path parameters, percent-decoded, in pattern order.
        params: Vec<(String, String)>,
    },
}

/// Paths, their methods and handlers; see the module docs.
#[derive(Clone)]
pub struct Router {
    routes: Vec<Route>,
    /// Pattern -> index in `paths`.
    matcher: matchit::Router<usize>,
    /// Per pattern: the pattern and the indices of its routes in `routes`.
    paths: Vec<(String, Vec<usize>)>,
    /// The first registration error, reported by `error()`.
    error: Option<String>,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// A router with the built-in GET `/stats`, `/metrics` and `/healthz`.
    pub fn new() -> Router {
        Router {
            routes: Vec::new(),
            matcher: matchit::Router::new(),
            paths: Vec::new(),
            error: None,
        }
        .get(
            "/stats",
            fast(|req| Response::json(200, req.stats.render_json())),
        )
        .get(
            "/metrics",
            fast(|req| {
                Response::text(200, req.stats.render_metrics())
                    .with_content_type("text/plain; version=0.0.4; charset=utf-8")
            }),
        )
        .get("/healthz", fast(|_| Response::text(200, "ok")))
    }

    /// Adds `handler` for `method` on `path` (a matchit pattern). The same
    /// method and path twice, or an ambiguous pattern, is recorded as the
    /// router's [`error`](Router::error) and the route is not added.
    pub fn route(mut self, method: Method, path: &str, handler: Handler) -> Router {
        if self.error.is_some() {
            return self;
        }
        let existing = self.paths.iter().position(|(p, _)| p == path);
        let path_index = match existing {
            Some(p) => p,
            None if repeated_parameter(path).is_some() => {
                let name = repeated_parameter(path).unwrap_or_default();
                self.error = Some(format!(
                    "route {} {path}: parameter {name:?} appears twice",
                    method.as_str()
                ));
                return self;
            }
            None => match self.matcher.insert(path, self.paths.len()) {
                Ok(()) => {
                    self.paths.push((path.to_owned(), Vec::new()));
                    self.paths.len() - 1
                }
                Err(e) => {
                    self.error = Some(format!("route {} {path}: {e}", method.as_str()));
                    return self;
                }
            },
        };
        let taken = self.paths[path_index]
            .1
            .iter()
            .any(|&i| self.routes[i].method == method);
        if taken {
            self.error = Some(format!(
                "route {} {path} is registered twice",
                method.as_str()
            ));
            return self;
        }
        self.paths[path_index].1.push(self.routes.len());
        self.routes.push(Route {
            method,
            path: path.to_owned(),
            handler,
        });
        self
    }

    /// `route(Method::Get, ..)`: also answers HEAD.
    pub fn get(self, path: &str, handler: Handler) -> Router {
        self.route(Method::Get, path, handler)
    }

    /// `route(Method::Post, ..)`.
    pub fn post(self, path: &str, handler: Handler) -> Router {
        self.route(Method::Post, path, handler)
    }

    /// `route(Method::Put, ..)`.
    pub fn put(self, path: &str, handler: Handler) -> Router {
        self.route(Method::Put, path, handler)
    }

    /// `route(Method::Delete, ..)`.
    pub fn delete(self, path: &str, handler: Handler) -> Router {
        self.route(Method::Delete, path, handler)
    }

    /// `route(Method::Patch, ..)`.
    pub fn patch(self, path: &str, handler: Handler) -> Router {
        self.route(Method::Patch, path, handler)
    }

    /// `route(Method::Options, ..)`: `OPTIONS` on this path (`OPTIONS *`
    /// is answered by every router).
    pub fn options(self, path: &str, handler: Handler) -> Router {
        self.route(Method::Options, path, handler)
    }

    /// The first registration error (a conflict), if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Every route, in registration order (the index `resolve` reports).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Decides what answers `head`; see the module docs.
    pub fn resolve(&self, head: &RequestHead) -> Resolved<'_> {
        if head.form == TargetForm::Asterisk {
            let response = Response::text(200, "").with_header("Allow", self.server_methods());
            return Resolved::Answer(None, response);
        }
        let path = normalize_unreserved(head.path());
        let Ok(found) = self.matcher.at(&path) else {
            return Resolved::Answer(None, Response::text(404, "not found"));
        };
        let on_path = &self.paths[*found.value].1;
        let wanted = Method::of_request(&head.method);
        let Some(&index) = on_path
            .iter()
            .find(|&&i| Some(self.routes[i].method) == wanted)
        else {
            let allow = allow_header(on_path.iter().map(|&i| self.routes[i].method));
            let response = Response::text(405, format!("method not allowed: use {allow}"))
                .with_header("Allow", allow);
            return Resolved::Answer(on_path.first().copied(), response);
        };
        let mut params = Vec::with_capacity(found.params.len());
        for (name, raw) in found.params.iter() {
            match percent_decode_path(raw) {
                Some(value) => params.push((name.to_owned(), value.into_owned())),
                None => {
                    let why = format!("bad path parameter {name}: invalid percent-encoding");
                    return Resolved::Answer(Some(index), Response::text(400, why));
                }
            }
        }
        Resolved::Route {
            index,
            route: &self.routes[index],
            params,
        }
    }

    /// `Allow` of `OPTIONS *`: every method some route takes, HEAD and OPTIONS.
    fn server_methods(&self) -> String {
        let all = self.routes.iter().map(|r| r.method);
        allow_header(all.chain([Method::Options]))
    }

    /// Metric labels in route order: the path without its leading `/`,
    /// followed by the method when it is not GET (`gzip POST`).
    pub fn labels(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| {
                let path = r.path.trim_start_matches('/');
                match r.method {
                    Method::Get => path.to_owned(),
                    m => format!("{path} {}", m.as_str()),
                }
            })
            .collect()
    }
}

/// `Allow` for a set of route methods: GET brings HEAD; sorted, no repeats.
fn allow_header(methods: impl Iterator<Item = Method>) -> String {
    let mut methods: Vec<Method> = methods.collect();
    methods.sort_unstable();
    methods.dedup();
    let mut names = Vec::new();
    for m in methods {
        names.push(m.as_str());
        if m == Method::Get {
            names.push("HEAD");
        }
    }
    names.join(", ")
}

/// The first `{name}` (or `{*name}`) parameter named twice in the matchit
/// pattern `path`, if any: its value could only be one of the two
/// segments. `{{` and `}}` are literal braces.
fn repeated_parameter(path: &str) -> Option<&str> {
    let mut names: Vec<&str> = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        if rest[open..].starts_with("{{") {
            rest = &rest[open + 2..];
            continue;
        }
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = after[..close].trim_start_matches('*');
        if names.contains(&name) {
            return Some(name);
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    None
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_queue_share_is_at_least_one_job_and_at_most_the_queue() {
        let h = || offload(|_, _| Ok(Response::text(200, "")));
        assert_eq!(h().queue_cap(64), None);
        assert_eq!(h().queue_share(0.5).queue_cap(64), Some(32));
        assert_eq!(h().queue_share(0.5).queue_cap(3), Some(1));
        assert_eq!(h().queue_share(0.0).queue_cap(64), Some(1));
        assert_eq!(h().queue_share(f64::NAN).queue_cap(64), Some(1));
        assert_eq!(h().queue_share(7.0).queue_cap(64), Some(64));
        assert_eq!(
            h().job_timeout(std::time::Duration::ZERO).job_timeout,
            Some(std::time::Duration::from_millis(1))
        );
    }
    use super::*;

    fn head(text: &str) -> RequestHead {
        let raw = format!("{text} HTTP/1.1\r\nHost: t\r\n\r\n");
        match RequestHead::parse(raw.as_bytes()) {
            Ok(Some((head, _))) => head,
            other => panic!("{text}: {other:?}"),
        }
    }

    /// A request's fate in a few words: the route's label and parameters,
    /// or the status and Allow of the answer.
    fn fate(router: &Router, request: &str) -> String {
        match router.resolve(&head(request)) {
            Resolved::Route { index, params, .. } => {
                let params: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
                format!("{} {}", router.labels()[index], params.join("&"))
                    .trim_end()
                    .to_owned()
            }
            Resolved::Answer(_, r) => {
                let allow = r.headers.iter().find(|(n, _)| n == "Allow");
                format!("{} {}", r.status, allow.map_or("", |(_, v)| v.as_str()))
                    .trim_end()
                    .to_owned()
            }
        }
    }

    fn ok(_: &Request<'_>) -> Response {
        Response::text(200, "")
    }

    #[test]
    fn methods_params_and_allow() {
        let router = Router::new()
            .get("/users/{id}/report", fast(ok))
            .post("/users/{id}/report", fast(ok))
            .delete("/users/{id}/report", fast(ok))
            .get("/files/{*path}", fast(ok))
            .put("/files/static", fast(ok));
        assert!(router.error().is_none(), "{:?}", router.error());
        for (request, want) in [
            ("GET /users/42/report", "users/{id}/report id=42"),
            ("HEAD /users/42/report?x=1", "users/{id}/report id=42"),
            ("POST /users/a%20b/report", "users/{id}/report POST id=a b"),
            (
                "DELETE /users/%C3%A9/report",
                "users/{id}/report DELETE id=é",
            ),
            ("PUT /users/1/report", "405 GET, HEAD, POST, DELETE"),
            ("PATCH /users/1/report", "405 GET, HEAD, POST, DELETE"),
            ("get /users/1/report", "405 GET, HEAD, POST, DELETE"),
            ("GET /users/%ZZ/report", "400"),
            ("GET /users/%FF/report", "400"),
            ("GET /users/1", "404"),
            ("GET /files/a/b/c.txt", "files/{*path} path=a/b/c.txt"),
            ("PUT /files/static", "files/static PUT"),
            ("GET /files/static", "405 PUT"),
            ("GET /healthz", "healthz"),
            ("POST /healthz", "405 GET, HEAD"),
            ("GET /nowhere", "404"),
            ("OPTIONS *", "200 GET, HEAD, POST, PUT, DELETE, OPTIONS"),
            // RFC 3986 6.2.2.2: an escaped unreserved character is that
            // character; any other escape stays inside its segment.
            ("GET /%68ealth%7A", "healthz"),
            ("GET /users/4%32/report", "users/{id}/report id=42"),
            ("GET /%66iles/static", "405 PUT"),
            ("GET /users/a%2Fb/report", "users/{id}/report id=a/b"),
            ("GET /users%2F1/report", "404"),
            ("GET /users/%2/report", "400"),
        ] {
            assert_eq!(fate(&router, request), want, "{request}");
        }
    }

    #[test]
    fn conflicts_are_errors_not_overwrites() {
        let twice = Router::new().get("/a", fast(ok)).get("/a", fast(ok));
        assert_eq!(twice.error(), Some("route GET /a is registered twice"));
        let builtin = Router::new().get("/healthz", fast(ok));
        assert!(builtin.error().is_some_and(|e| e.contains("twice")));
        let ambiguous = Router::new()
            .get("/u/{id}", fast(ok))
            .get("/u/{name}", fast(ok));
        assert!(
            ambiguous.error().is_some_and(|e| e.contains("/u/{name}")),
            "{:?}",
            ambiguous.error()
        );
        let fine = Router::new().get("/a", fast(ok)).post("/a", fast(ok));
        assert!(fine.error().is_none());
        // A parameter named twice: one name, two segments.
        for path in ["/a/{x}/{x}", "/a/{x}/b/{*x}"] {
            let twice = Router::new().get(path, fast(ok));
            assert!(
                twice
                    .error()
                    .is_some_and(|e| e.contains("\"x\" appears twice")),
                "{path}: {:?}",
                twice.error()
            );
        }
        let distinct = Router::new().get("/a/{x}/{y}/{{x}}", fast(ok));
        assert!(distinct.error().is_none(), "{:?}", distinct.error());
        // After an error, later routes are not added either.
        assert_eq!(twice.post("/b", fast(ok)).routes().len(), 4);
    }
}
