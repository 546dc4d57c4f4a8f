//! I/O side of the job path: admit a job to the least loaded compute core, or
//! reject it at once.
//!
//! Admission is a per-compute-core counter (`ComputeCoreStats::in_flight`:
//! waiting jobs plus the running one) checked against `--queue-depth` + 1; the mesh channels are sized so an admitted job
//! always fits, and a failed `try_send_to` hands the job back so the next core
//! is tried. No core has room -> `None`, and the caller answers 503. Nothing
//! here ever waits.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::Senders;
use glommio::{GlommioError, ResourceType};

use super::estimate::retry_after_secs;
use super::pending::Pending;
use super::{CancelToken, Job, JobFn, JobInput};
use crate::http::Response;
use crate::stats::Stats;

/// Why admission refused a job (503); indexes `IoCoreStats::refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every compute queue was full.
    QueuesFull = 0,
    /// The measured work ahead would not let it start before its deadline.
    Deadline = 1,
}

/// `Refusal` names as `/metrics` labels them, in index order.
pub const REFUSAL_REASONS: [&str; 2] = ["queues_full", "deadline"];

/// One per I/O core.
pub struct Dispatcher {
    /// Index of this I/O core in `Stats::io`.
    pub io_index: usize,
    /// This core's consumer index in the results mesh.
    reply_to: usize,
    senders: Senders<Job>,
    pub pending: Rc<Pending>,
    stats: Arc<Stats>,
    queue_depth: usize,
    next_id: Cell<u64>,
}

impl Dispatcher {
    pub fn new(
        io_index: usize,
        reply_to: usize,
        senders: Senders<Job>,
        stats: Arc<Stats>,
        queue_depth: usize,
    ) -> Dispatcher {
        Dispatcher {
            io_index,
            reply_to,
            senders,
            pending: Rc::new(Pending::default()),
            stats,
            queue_depth,
            next_id: Cell::new(0),
        }
    }

    /// Admission when a head arrives, before its body is read: a job of
    /// `route` that must start within `deadline` (its job timeout) is
    /// admitted if some compute core has room and, by the measured run
    /// times (`jobs::estimate`), could start it in time. Otherwise the 503
    /// to send (counted as rejected), with `Retry-After` from the same
    /// estimates; the job never runs.
    pub fn admit(&self, deadline: Duration) -> Result<(), Response> {
        let estimates = &self.stats.estimates;
        let with_room = (0..self.stats.compute.len())
            .filter(|&c| self.stats.compute[c].in_flight.load(Relaxed) <= self.queue_depth);
        let Some(best) = with_room.map(|c| estimates.wait(c)).min() else {
            return Err(self.refuse_full());
        };
        if best > deadline {
            return Err(self.refuse(Refusal::Deadline, best - deadline));
        }
        Ok(())
    }

    /// Queues route `route`'s job `run` with `input` on the compute core
    /// with the fewest jobs that has room. Returns the job id (registered in
    /// `pending`) and its token, or `None` when every queue is full (the
    /// job never runs; answer it with [`Dispatcher::refuse_full`], which
    /// counts it).
    pub fn dispatch(
        &self,
        route: usize,
        run: JobFn,
        input: JobInput,
    ) -> Option<(u64, CancelToken)> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let n = self.stats.compute.len();
        let spin = id as usize % n.max(1);
        let mut order: Vec<(usize, usize, usize)> = (0..n)
            .map(|c| {
                let s = &self.stats.compute[c];
                let load = s.in_flight.load(Relaxed);
                // Rotate ties so equally loaded cores share the work.
                (load, (c + n - spin) % n, c)
            })
            .collect();
        order.sort_unstable();
        let cancel = CancelToken::new();
        let estimates = &self.stats.estimates;
        let mut job = Job {
            id,
            reply_to: self.reply_to,
            cancel: cancel.clone(),
            route,
            run,
            input,
            dispatched: std::time::Instant::now(),
            expected_us: 0,
        };
        for (_, _, c) in order {
            // The running job does not count against the depth.
            let in_flight = &self.stats.compute[c].in_flight;
            if in_flight.fetch_add(1, AcqRel) > self.queue_depth {
                in_flight.fetch_sub(1, AcqRel);
                continue;
            }
            job.expected_us = estimates.queued(c, route);
            let added = job.expected_us;
            match self.senders.try_send_to(c, job) {
                Ok(()) => {
                    self.pending.register(id);
                    self.stats.io[self.io_index].accepted.fetch_add(1, Relaxed);
                    return Some((id, cancel));
                }
                Err(err) => {
                    in_flight.fetch_sub(1, AcqRel);
                    estimates.dequeued(c, added, false);
                    match take_back(err) {
                        Some(back) => job = back,
                        None => break,
                    }
                }
            }
        }
        None
    }

    /// Counts a refused job and returns its 503: `Retry-After` is `wait`
    /// in whole seconds (1 to 60), the body names the reason.
    pub fn refuse(&self, why: Refusal, wait: Duration) -> Response {
        self.stats.io[self.io_index].rejected.fetch_add(1, Relaxed);
        self.stats.io[self.io_index].refused[why as usize].fetch_add(1, Relaxed);
        log::debug!("job refused ({why:?}, 503)");
        let body = match why {
            Refusal::QueuesFull => "every compute queue is full; retry later",
            Refusal::Deadline => {
                "the job could not start before its deadline (the work queued ahead is longer); retry later"
            }
        };
        Response::text(503, body).with_header("Retry-After", retry_after_secs(wait).to_string())
    }

    /// `refuse(QueuesFull, ..)` with the wait until a slot frees: when some
    /// compute core's running job is expected to end.
    pub fn refuse_full(&self) -> Response {
        let estimates = &self.stats.estimates;
        let soonest = (0..self.stats.compute.len())
            .map(|c| estimates.running_left(c))
            .min()
            .unwrap_or_default();
        self.refuse(Refusal::QueuesFull, soonest)
    }

    /// Closes this core's job channels (at shutdown), so compute cores can finish.
    pub fn close(&self) {
        self.senders.close();
    }
}

/// A failed `try_send_to` hands the job back unless the channel itself is broken.
fn take_back(err: GlommioError<Job>) -> Option<Job> {
    match err {
        GlommioError::WouldBlock(ResourceType::Channel(job)) => Some(job),
        GlommioError::Closed(ResourceType::Channel(job)) => Some(job),
        _ => None,
    }
}
