//! A job route on a connection: admission when its head arrives (the
//! route's check, the caller's deadline header, a queue place for a body
//! still to come) and the wait for an offloaded job's outcome, its timeout
//! or its client's hang-up. `Connection` (the parent module) calls
//! [`admit`] from `route_head` and [`Connection::offload`] once the body is
//! whole.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::{read_some, Connection};
use crate::http::{BodyKind, RequestHead, Response};
use crate::jobs::dispatch::{RouteLimit, Slot, Ticket};
use crate::jobs::worker::run_caught;
use crate::jobs::{outcome_response, JobFn, JobInput, JobOutcome, JobState};
use crate::router::{Request, Route, Work};
use crate::server::io_core::IoCore;

/// How often a connection waiting on a job with a full read buffer checks
/// whether its client hung up.
const HANGUP_POLL: Duration = Duration::from_millis(100);

/// An offloaded request let in when its head arrived: its job timeout and,
/// when its body was still to come, the queue place held for it meanwhile
/// (`None`: dispatch takes one; see `Dispatcher::admit`).
pub(super) struct Admitted {
    pub(super) timeout: Duration,
    pub(super) slot: Option<Slot>,
}

impl Connection {
    /// Sends a job to a compute core and waits for its outcome, the job
    /// timeout, or the client hanging up (`None`: the job is cancelled).
    pub(super) async fn offload(
        &mut self,
        route: usize,
        job: JobFn,
        input: JobInput,
        admitted: Option<Admitted>,
    ) -> Option<Response> {
        // Answers already encoded should not wait behind the job.
        if self.flush().await.is_err() {
            return None;
        }
        let core = self.core.clone();
        let limit = RouteLimit {
            route,
            cap: core.router.routes()[route]
                .handler
                .queue_cap(core.config.queue_depth),
        };
        // Admitted when its head came (`route_head` does that for every
        // offloaded route): its timeout, and its place if one was held.
        let Admitted { timeout, slot } = admitted.unwrap_or_else(|| Admitted {
            timeout: route_timeout(&core, &core.router.routes()[route]),
            slot: None,
        });
        let ticket = match core.dispatcher.dispatch(slot, limit, job, input) {
            Ok(dispatched) => dispatched,
            Err(why) => {
                // No place was held (a request without a body, or a core
                // past its hold budget) and the queues filled meanwhile, or
                // the held core's channel was full of cancelled jobs and no
                // other core had room.
                log::debug!(
                    "I/O core {}: job rejected at dispatch, {why:?} (503)",
                    core.cpu
                );
                return Some(core.dispatcher.refuse_now(why));
            }
        };
        let id = ticket.id;
        let _guard = WaitGuard {
            core: &core,
            ticket: &ticket,
        };
        // Decided at admission: the route's job timeout (or the server's),
        // shortened by the caller's deadline.
        let deadline = Instant::now() + timeout;
        let mut timer_armed = true;
        loop {
            let pending = &core.dispatcher.pending;
            let stream = &mut self.stream;
            let spare = self.reader.spare();
            let room = !spare.is_empty();
            let event = future::or(
                async { Waited::Outcome(pending.wait(id).await) },
                future::or(
                    async {
                        if !timer_armed {
                            future::pending::<()>().await;
                        }
                        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()))
                            .await;
                        Waited::TimedOut
                    },
                    async {
                        if !room {
                            // The buffer is full of pipelined bytes, so no
                            // read can see a hang-up: ask the socket instead.
                            loop {
                                glommio::timer::sleep(HANGUP_POLL).await;
                                if peer_gone(stream.as_raw_fd()) {
                                    return Waited::Read(Ok(0));
                                }
                            }
                        }
                        Waited::Read(read_some(stream, spare).await)
                    },
                ),
            )
            .await;
            match event {
                Waited::Outcome(outcome) => return Some(outcome_response(outcome)),
                Waited::TimedOut => {
                    if core.dispatcher.cancel(&ticket, JobState::TimedOut) {
                        pending.remove(id);
                        core.stats.io[core.index].timed_out.fetch_add(1, Relaxed);
                        log::warn!(
                            "I/O core {}: job {id} ran past the job timeout of {timeout:?} (504)",
                            core.cpu
                        );
                        return Some(outcome_response(JobOutcome::TimedOut(timeout)));
                    }
                    // The job finished at the same moment: its outcome is on the way.
                    timer_armed = false;
                }
                Waited::Read(Ok(0)) | Waited::Read(Err(_)) => {
                    log::debug!(
                        "I/O core {}: client hung up while job {id} was pending",
                        core.cpu
                    );
                    return None; // the guard cancels and counts the job
                }
                Waited::Read(Ok(n)) => self.reader.filled(n),
            }
        }
    }
}

/// What a job route decides when the head arrives, in order: its check
/// (400 and the like), the caller's deadline header (400 when bad), then
/// admission (503: queues full, the route's share full, or the work ahead
/// past the deadline). `Ok` carries an offloaded job's admission: its
/// timeout (the route's own or `--job-timeout`, shortened by the caller's
/// deadline) and its queue place, held while the body arrives; fast routes
/// are always admitted.
pub(super) fn admit(
    core: &IoCore,
    (index, route): (usize, &Route),
    request: &Request<'_>,
) -> Result<Option<Admitted>, Response> {
    if let Some(check) = &route.handler.check {
        caught(core, index, || check(request))??;
    }
    if !matches!(route.handler.work, Work::Offload(_)) {
        return Ok(None);
    }
    let caller = expected_timeout(request.head)?;
    let route_timeout = route_timeout(core, route);
    let timeout = caller.map_or(route_timeout, |t| t.min(route_timeout));
    let limit = RouteLimit {
        route: index,
        cap: route.handler.queue_cap(core.config.queue_depth),
    };
    let body = request.head.body != BodyKind::Empty;
    let slot = core.dispatcher.admit(limit, timeout, body)?;
    Ok(Some(Admitted { timeout, slot }))
}

/// A job route's own timeout (`Handler::job_timeout`), or `--job-timeout`.
fn route_timeout(core: &IoCore, route: &Route) -> Duration {
    route.handler.job_timeout.unwrap_or(core.config.job_timeout)
}

/// Runs a route's own code on the I/O core (a fast handler, a check) with
/// its panics caught: a panic is answered 500 as a job's is (`Caught an
/// exception: ...`) and logged, instead of unwinding through the I/O
/// executor, which would end the core and leave every connection on it
/// unanswered (found by a newcomer using the library).
pub(super) fn caught<R>(
    core: &IoCore,
    route: usize,
    code: impl FnOnce() -> R,
) -> Result<R, Response> {
    run_caught(code).map_err(|msg| {
        if let Some(r) = core.router.routes().get(route) {
            log::error!(
                "I/O core {}: route {} {} panicked: {msg}",
                core.cpu,
                r.method.as_str(),
                r.path
            );
        }
        outcome_response(JobOutcome::Panicked(msg))
    })
}

/// The header Envoy sends upstream with the time the caller will wait.
const EXPECTED_TIMEOUT: &str = "x-envoy-expected-rq-timeout-ms";

/// `x-envoy-expected-rq-timeout-ms: MS` of an offloaded request: the job
/// timeout becomes min(MS, `--job-timeout`). Absent: `None`. Anything but a
/// positive whole number of milliseconds, including the field sent twice
/// (RFC 9110 5.3: two lines mean one comma-joined value, which is no
/// number): a 400 to send instead.
fn expected_timeout(head: &RequestHead) -> Result<Option<Duration>, Response> {
    let mut lines = head
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case(EXPECTED_TIMEOUT));
    let Some((_, value)) = lines.next() else {
        return Ok(None);
    };
    let once = lines.next().is_none();
    match crate::http::query::decimal(value) {
        Some(ms) if ms > 0 && once => Ok(Some(Duration::from_millis(ms))),
        _ => Err(Response::text(
            400,
            format!("bad {EXPECTED_TIMEOUT}: expected a positive whole number of milliseconds"),
        )),
    }
}

/// True when the peer has closed its side or reset the connection, even with
/// unread bytes still queued in front of the FIN.
fn peer_gone(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd; timeout 0 never blocks.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

enum Waited {
    Outcome(JobOutcome),
    TimedOut,
    Read(std::io::Result<usize>),
}

/// Dropped when a request stops waiting for its job, however that happens. If
/// the job is still pending, it is cancelled and counted as cancelled.
struct WaitGuard<'a> {
    core: &'a IoCore,
    ticket: &'a Ticket,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let dispatcher = &self.core.dispatcher;
        if dispatcher.pending.remove(self.ticket.id)
            && dispatcher.cancel(self.ticket, JobState::Cancelled)
        {
            self.core.stats.io[self.core.index]
                .cancelled
                .fetch_add(1, Relaxed);
        }
    }
}
