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

use glommio::channels::channel_mesh::Senders;
use glommio::{GlommioError, ResourceType};

use super::pending::Pending;
use super::{CancelToken, Job, JobFn, JobInput};
use crate::stats::Stats;

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

    /// True when some compute core has room for one more job: the
    /// admission decision made when a head arrives, before its body is read.
    pub fn has_room(&self) -> bool {
        self.stats
            .compute
            .iter()
            .any(|c| c.in_flight.load(Relaxed) <= self.queue_depth)
    }

    /// Queues route `route`'s job `run` with `input` on the compute core
    /// with the fewest jobs that has room. Returns the job id (registered in
    /// `pending`) and its token, or `None` when every queue is full (counted
    /// as rejected; the job never runs).
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
        let mut job = Job {
            id,
            reply_to: self.reply_to,
            cancel: cancel.clone(),
            route,
            run,
            input,
            dispatched: std::time::Instant::now(),
        };
        for (_, _, c) in order {
            // The running job does not count against the depth.
            let in_flight = &self.stats.compute[c].in_flight;
            if in_flight.fetch_add(1, AcqRel) > self.queue_depth {
                in_flight.fetch_sub(1, AcqRel);
                continue;
            }
            match self.senders.try_send_to(c, job) {
                Ok(()) => {
                    self.pending.register(id);
                    self.stats.io[self.io_index].accepted.fetch_add(1, Relaxed);
                    return Some((id, cancel));
                }
                Err(err) => {
                    in_flight.fetch_sub(1, AcqRel);
                    match take_back(err) {
                        Some(back) => job = back,
                        None => break,
                    }
                }
            }
        }
        self.stats.io[self.io_index].rejected.fetch_add(1, Relaxed);
        None
    }

    /// Counts a job refused when its head arrived (every queue full) and
    /// returns its 503: the job never runs.
    pub fn refuse(&self) -> crate::http::Response {
        self.stats.io[self.io_index].rejected.fetch_add(1, Relaxed);
        log::warn!("job refused on arrival, every compute queue is full (503)");
        super::outcome_response(super::JobOutcome::Rejected)
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
