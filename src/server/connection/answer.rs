//! A routed request's answer on a connection: routing a head as it arrives
//! (its check and admission decided before the body), serving a request
//! whose body is whole (a fixed answer, a fast handler, an inline job, or
//! an offloaded one through [`super::jobs`]), encoding answers in request
//! order, and the automatic answers to what cannot be read (400, 408, 413,
//! 414, 431, 505).

use std::time::Duration;

use super::jobs::{admit, caught};
use super::{Closed, Connection, Current, Offloaded, Plan, Step};
use crate::http::{BodyKind, ParseError, RequestHead, Response, Version, MAX_BODY_BYTES};
use crate::jobs::worker::run_caught;
use crate::jobs::{outcome_response, CancelToken, JobContext, JobFn, JobInput, JobOutcome};
use crate::router::{job_input, Request, Resolved, Work};

/// What an error answer ([`Connection::reject`]) knows of its request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering {
    /// A HEAD: the answer carries no content (RFC 9112 section 6.3).
    pub(super) head_only: bool,
    /// Its route, for `/metrics` (`None`: "other").
    pub(super) route: Option<usize>,
}

impl Answering {
    /// What is known of the request `head`, routed to `plan`.
    fn of(head: &RequestHead, plan: &Plan) -> Answering {
        Answering {
            head_only: head.method == "HEAD",
            route: match plan {
                Plan::Route { index, .. } => Some(*index),
                Plan::Answer { route, .. } => *route,
                Plan::Discard => None,
            },
        }
    }
}

impl Connection {
    /// Encodes the automatic answer to a request that cannot be read (see
    /// [`crate::http::ParseError::status`]); the connection then closes.
    /// `reject` for a framing error; a 413 names the route's own limit.
    /// `to`: the request it answers, as far as it is known.
    pub(super) fn reject_parse(&mut self, err: &ParseError, to: Answering) -> Step {
        match err {
            // Any fault in a body that is only discarded (its request was
            // answered when its head came; one running past 1 MiB among
            // them): no second answer, just close.
            _ if self.discarding() => {
                self.current = None;
                Step::Close(Closed::Answered)
            }
            ParseError::BodyTooLarge => {
                let why = format!("request body larger than {} bytes", self.body_limit);
                self.reject(err.status(), &why, to)
            }
            _ => self.reject(err.status(), err.reason(), to),
        }
    }

    /// The request an error answers: the one whose body is being read, or
    /// the head that failed to parse, as far as its method got.
    pub(super) fn answering(&self) -> Answering {
        match &self.current {
            Some(Current { head, plan }) => Answering::of(head, plan),
            None => Answering {
                head_only: self.reader.unparsed_method_is(b"HEAD"),
                route: None,
            },
        }
    }

    /// True while the body being read belongs to a request answered already
    /// (`Plan::Discard`): it is dropped, and nothing more is sent for it.
    pub(super) fn discarding(&self) -> bool {
        matches!(
            self.current,
            Some(Current {
                plan: Plan::Discard,
                ..
            })
        )
    }

    /// Counts and encodes `response`, decided for `head` before its body was
    /// read (or while it was read only to be ignored), and closes after it.
    pub(super) fn answer_and_close(
        &mut self,
        head: &RequestHead,
        route: Option<usize>,
        response: &Response,
    ) -> Step {
        let core = &self.core;
        core.stats.count_request(core.index, route, response.status);
        response.encode_into(&mut self.out, head.version, false, head.method == "HEAD");
        self.answered += 1;
        Step::Close(Closed::Answered)
    }

    /// Counts and encodes the answer to a request that cannot be read or
    /// finished (`status`, `reason` as its body), then closes.
    pub(super) fn reject(&mut self, status: u16, reason: &str, to: Answering) -> Step {
        let response = Response::text(status, reason);
        self.core
            .stats
            .count_request(self.core.index, to.route, response.status);
        response.encode_into(&mut self.out, Version::Http11, false, to.head_only);
        Step::Close(Closed::Answered)
    }

    /// Routes a head as soon as it arrives, before its body: a job route's
    /// check and admission (503) are decided here. A final answer known now
    /// for a request with a body over 1 MiB, or one sent with `Expect:
    /// 100-continue`, is sent at once and the connection closed, so a
    /// refused upload never crosses the network (it replaces the `100`); a
    /// smaller body is read and ignored first, and the connection kept.
    /// Otherwise the body is read under the route's limit (413 past it) and
    /// the request served once it is whole.
    pub(super) fn route_head(&mut self, head: RequestHead) -> Result<(), Step> {
        let core = self.core.clone();
        let (plan, limit, collect) = match core.router.resolve(&head) {
            Resolved::Answer(route, response) => {
                (Plan::Answer { route, response }, MAX_BODY_BYTES, false)
            }
            Resolved::Route {
                index,
                route,
                params,
            } => {
                let request = Request {
                    head: &head,
                    params: &params,
                    body: &[],
                    io_core: core.cpu,
                    stats: &core.stats,
                };
                let plan = match admit(&core, (index, route), &request) {
                    Ok(admitted) => Plan::Route {
                        index,
                        params,
                        admitted,
                    },
                    Err(response) => Plan::Answer {
                        route: Some(index),
                        response,
                    },
                };
                let collect = matches!(plan, Plan::Route { .. });
                (plan, route.handler.max_body, collect)
            }
        };
        let mut limit = limit;
        let mut plan = plan;
        if let Plan::Answer { route, response } = &plan {
            // A body small enough to pass on any route (1 MiB) is read and
            // ignored, as the contract says of bodies, so the connection
            // and any request pipelined behind it live on (nginx does the
            // same). One declared larger, or one the client holds back
            // until told to send it (`Expect: 100-continue`), is not worth
            // reading: the answer goes now, in place of the `100`, and the
            // connection closes (RFC 9110 section 10.1.1).
            let large = matches!(head.body, BodyKind::Length(n) if n > MAX_BODY_BYTES);
            if head.body != BodyKind::Empty && (head.expects_continue || large) {
                return Err(self.answer_and_close(&head, *route, response));
            }
            limit = limit.min(MAX_BODY_BYTES);
        }
        self.body_limit = limit;
        if let Err(err) = self.reader.begin_body(limit, collect) {
            log::debug!("bad request: {err}");
            // A request answered without its body gets that answer, once.
            if let Plan::Answer { route, response } = &plan {
                return Err(self.answer_and_close(&head, *route, response));
            }
            let to = Answering::of(&head, &plan);
            return Err(self.reject_parse(&err, to));
        }
        if head.body != BodyKind::Empty {
            // The answer goes now, before the body is read (the contract's
            // 503 "at once"; nginx answers first and then discards too). A
            // chunked body that then runs past 1 MiB closes the connection
            // (`reject_parse`).
            match std::mem::replace(&mut plan, Plan::Discard) {
                Plan::Answer { route, response } => {
                    if let Step::Close(why) = self.encode_answer(&head, route, response) {
                        return Err(Step::Close(why));
                    }
                }
                other => plan = other,
            }
        }
        self.current = Some(Current { head, plan });
        Ok(())
    }

    /// Serves one request whose body has arrived and encodes its answer,
    /// when that needs no wait: a fixed answer, a fast handler, an inline
    /// job (run here, blocking the core: the `/slow` baseline). An offloaded
    /// job comes back as `Err`, for [`answer_offloaded`]. Fast requests thus
    /// cost no boxed future (one allocation each).
    ///
    /// [`answer_offloaded`]: Connection::answer_offloaded
    // The large `Err` is moved once, into the boxed future that awaits the
    // job; boxing it here would cost every offloaded job one more allocation.
    #[allow(clippy::result_large_err)]
    pub(super) fn answer_now(
        &mut self,
        current: Current,
        body: Vec<u8>,
    ) -> Result<Step, Offloaded> {
        let core = self.core.clone();
        let Current { head, plan } = current;
        let (route, response) = match plan {
            Plan::Answer { route, response } => (route, response),
            // Answered when its head came; its body is now read and dropped.
            Plan::Discard => return Ok(Step::NeedMore),
            Plan::Route {
                index,
                params,
                admitted,
            } => match &core.router.routes()[index].handler.work {
                Work::Fast(handler) => {
                    let request = Request {
                        head: &head,
                        params: &params,
                        body: &body,
                        io_core: core.cpu,
                        stats: &core.stats,
                    };
                    let response = caught(&core, index, || handler(&request));
                    (Some(index), response.unwrap_or_else(|panicked| panicked))
                }
                Work::Inline(job) => {
                    let input = job_input(&head, params, body, core.cpu);
                    (Some(index), self.run_inline(job, &input))
                }
                Work::Offload(job) => {
                    let input = job_input(&head, params, body, core.cpu);
                    return Err(Offloaded {
                        head,
                        route: index,
                        job: job.clone(),
                        input,
                        admitted,
                    });
                }
            },
        };
        Ok(self.encode_answer(&head, route, response))
    }

    /// Sends an offloaded job to a compute core, awaits its outcome and
    /// encodes the answer.
    pub(super) async fn answer_offloaded(&mut self, offloaded: Offloaded) -> Step {
        let Offloaded {
            head,
            route,
            job,
            input,
            admitted,
        } = offloaded;
        match self.offload(route, job, input, admitted).await {
            Some(response) => self.encode_answer(&head, Some(route), response),
            None => Step::Gone(Closed::ClientGone),
        }
    }

    /// Counts and encodes `response` to `head`; `Close` when the
    /// connection ends with it.
    pub(super) fn encode_answer(
        &mut self,
        head: &RequestHead,
        route: Option<usize>,
        response: Response,
    ) -> Step {
        let core = &self.core;
        core.stats.count_request(core.index, route, response.status);
        // HEAD is GET without the body (RFC 9110 section 9.3.2).
        let head_only = head.method == "HEAD";
        let keep_alive = head.keep_alive && !core.shutdown.is_fired();
        response.encode_into(&mut self.out, head.version, keep_alive, head_only);
        self.answered += 1;
        if !keep_alive {
            return Step::Close(if head.keep_alive {
                Closed::Answered
            } else {
                Closed::AsAsked
            });
        }
        Step::NeedMore
    }

    /// Runs a job on this I/O core, blocking it (the `/slow` baseline).
    pub(super) fn run_inline(&self, job: &JobFn, input: &JobInput) -> Response {
        let cancel = CancelToken::new();
        let ctx = JobContext::new(self.core.cpu, &cancel, false, Duration::ZERO);
        match run_caught(|| job(input, &ctx)) {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => Response::text(500, "inline job stopped without being cancelled"),
            Err(msg) => outcome_response(JobOutcome::Panicked(msg)),
        }
    }
}
