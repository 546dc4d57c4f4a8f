//! I/O side of the job path: admit a job to the least loaded compute core, or
//! reject it at once.
//!
//! Admission is a per-compute-core counter (`ComputeCoreStats::in_flight`:
//! waiting jobs plus the running one, a cancelled job no longer counted)
//! checked against `--queue-depth` + 1; the mesh channels are sized so an admitted job
//! always fits, and a failed `try_send_to` hands the job back so the next core
//! is tried. No core has room -> a `Refusal`, and the caller answers 503.
//! Nothing here ever waits.
//!
//! Admission happens when a request's head arrives. For a request whose
//! body is still to come it also takes a place in one core's queue (a
//! [`Slot`]), held while the body is read: the contract decides the 503 at
//! the head so that a refused body is never uploaded, and a body that was
//! let in is then not refused for a queue that filled while it arrived (an
//! audit found that: `100 Continue`, the upload, then 503). At most
//! [`hold_budget`] places per core are held that way, so slow uploads
//! cannot lock a queue. Dispatch sends the job into the place it holds, or
//! takes one then.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::Senders;
use glommio::{GlommioError, ResourceType};

use super::estimate::retry_after_secs;
use super::pending::Pending;
use super::{CancelToken, InputSlot, Job, JobFn, JobInput, JobState};
use crate::http::Response;
use crate::stats::Stats;

/// How many cancelled jobs (hang-ups, deadlines) may be on their way to
/// one compute core, out of its queue but not yet skipped by it: a busy
/// thread-isolation core skips them only once its running job returns.
/// Four times the queue (at least 64), so a burst of hang-ups behind one
/// long job does not lock the queue: past it, 503 even with the queue
/// empty (an audit hit that at `--queue-depth` + 1, the first bound). The
/// jobs channels have room for the queue and this many
/// (`Server::start`); each such husk holds no input, about 100 bytes.
pub fn husk_room(queue_depth: usize) -> usize {
    (4 * (queue_depth + 1)).max(64)
}

/// How many places of one compute core's queue admission may hold for
/// bodies still arriving ([`Slot`]): half the queue, at least one. A body's
/// deadline grows by a second per `--body-min-rate` bytes (hours for a
/// 16 MiB body trickled at the default 1 KiB/s), so without a bound a few
/// slow uploads could hold every place while no job waits (a review found
/// that); past it an upload is admitted without a held place, as before
/// places were held.
pub fn hold_budget(queue_depth: usize) -> usize {
    (queue_depth / 2).max(1)
}

/// Why admission refused a job (503); indexes `IoCoreStats::refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every compute queue was full.
    QueuesFull = 0,
    /// The measured work ahead would not let it start before its deadline.
    Deadline = 1,
    /// Its route already has its share of every compute queue waiting
    /// (`Handler::queue_share`).
    RouteShare = 2,
}

/// `Refusal` names as `/metrics` labels them, in index order.
pub const REFUSAL_REASONS: [&str; 3] = ["queues_full", "deadline", "route_share"];

/// A route's limit in admission: its index and, when it has a queue share,
/// the most of its jobs that may wait per compute core.
#[derive(Debug, Clone, Copy)]
pub struct RouteLimit {
    pub route: usize,
    pub cap: Option<usize>,
}

/// A dispatched job, as the request that waits for it holds it: enough to
/// cancel it and, if it never started, to free its queue slot at once
/// ([`Dispatcher::cancel`]).
pub struct Ticket {
    /// The job's id in this I/O core's pending table.
    pub id: u64,
    pub cancel: CancelToken,
    /// The compute core (index in `Stats::compute`) whose queue it is in.
    core: usize,
    route: usize,
    /// What it added to that core's expected wait.
    expected: super::estimate::Expected,
    input: InputSlot,
}

/// A place in one compute core's queue, taken at admission and held until
/// the job is dispatched into it ([`Dispatcher::dispatch`]) or the request
/// ends first (a 413, a timed-out or abandoned body, a hang-up): dropping
/// it gives the place back. It counts in the core's `in_flight` (so the
/// queue bound and the least-loaded choice see it), in its route's share,
/// and in the expected wait that deadline admission reads; not in
/// `/stats` `queued`, since no job waits there yet.
pub struct Slot {
    stats: Arc<Stats>,
    core: usize,
    route: usize,
    expected: super::estimate::Expected,
    /// False once dispatch has handed the place to its job.
    held: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let core = &self.stats.compute[self.core];
        core.route_in_flight[self.route].fetch_sub(1, AcqRel);
        core.in_flight.fetch_sub(1, AcqRel);
        core.reserved.fetch_sub(1, AcqRel);
        self.stats
            .estimates
            .dequeued(self.core, self.expected, None);
    }
}

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
    /// times (`jobs::estimate`), could start it in time (its optimistic
    /// wait, see the module docs of `estimate`). Otherwise the 503 to send
    /// (counted as rejected), with `Retry-After` from the same estimates;
    /// the job never runs.
    ///
    /// With `body` (a body is still to arrive), the place is taken now, on
    /// the qualifying core with the shortest expected wait (then the fewest
    /// jobs, ties rotating), and held by the returned [`Slot`] until
    /// dispatch, so the upload is not refused once it is in. A core holds
    /// at most [`hold_budget`] such places: past it, and for a request
    /// with no body (dispatched at once), `Ok(None)`, and dispatch takes a
    /// place then, as it did before places were held.
    pub fn admit(
        &self,
        route: RouteLimit,
        deadline: Duration,
        body: bool,
    ) -> Result<Option<Slot>, Response> {
        let estimates = &self.stats.estimates;
        let compute = &self.stats.compute;
        let n = compute.len();
        let spin = self.next_id.get() as usize % n.max(1);
        let now = estimates.now();
        let mut full = true;
        // (expected wait, jobs, rotated index, core, optimistic wait) per core
        // with room for this route.
        let mut candidates: Vec<(Duration, usize, usize, usize, Duration)> = (0..n)
            .filter(|&c| self.has_room(&compute[c]))
            .filter(|&c| {
                full = false;
                route_has_room(&compute[c], route)
            })
            .map(|c| {
                let (optimistic, expected) = estimates.waits(c, now);
                let load = compute[c].in_flight.load(Relaxed);
                (expected, load, (c + n - spin) % n, c, optimistic)
            })
            .collect();
        if candidates.is_empty() {
            return Err(self.refuse_now(if full {
                Refusal::QueuesFull
            } else {
                Refusal::RouteShare
            }));
        }
        let shortest = candidates.iter().map(|c| c.0).min().unwrap_or_default();
        // Refused only when even the optimistic wait misses the deadline
        // (`jobs::estimate`); Retry-After is from the expected wait.
        candidates.retain(|&(.., optimistic)| optimistic <= deadline);
        if candidates.is_empty() {
            return Err(self.refuse(Refusal::Deadline, shortest.saturating_sub(deadline)));
        }
        if !body {
            return Ok(None);
        }
        candidates.sort_unstable();
        let budget = hold_budget(self.queue_depth);
        for &(_, _, _, c, _) in &candidates {
            if compute[c].reserved.load(Relaxed) >= budget {
                continue;
            }
            // Another I/O core may have taken the place since it was read.
            if let Ok(slot) = self.reserve(c, route) {
                return Ok(Some(slot));
            }
        }
        // Every qualifying core holds its budget of places (or lost its last
        // place to another I/O core just now): admitted without one.
        Ok(None)
    }

    /// Takes a place for `route`'s job in compute core `c`'s queue, or
    /// says why there is none (the queue, its husks or the route's share
    /// are full).
    fn reserve(&self, c: usize, route: RouteLimit) -> Result<Slot, Refusal> {
        let core = &self.stats.compute[c];
        // Counted as held first, so that `/stats` never shows the place as a
        // waiting job (`ComputeCoreStats::queued`).
        core.reserved.fetch_add(1, AcqRel);
        let in_flight = &core.in_flight;
        // The running job does not count against the depth.
        if in_flight.fetch_add(1, AcqRel) > self.queue_depth
            || core.skipped_ahead.load(Relaxed) > husk_room(self.queue_depth)
        {
            in_flight.fetch_sub(1, AcqRel);
            core.reserved.fetch_sub(1, AcqRel);
            return Err(Refusal::QueuesFull);
        }
        let of_route = &core.route_in_flight[route.route];
        if of_route.fetch_add(1, AcqRel) > route.cap.unwrap_or(usize::MAX - 1) {
            of_route.fetch_sub(1, AcqRel);
            in_flight.fetch_sub(1, AcqRel);
            core.reserved.fetch_sub(1, AcqRel);
            return Err(Refusal::RouteShare);
        }
        Ok(Slot {
            stats: self.stats.clone(),
            core: c,
            route: route.route,
            expected: self.stats.estimates.queued(c, route.route),
            held: true,
        })
    }

    /// A place for `route`'s job on the compute core with the fewest jobs
    /// that has room (ties rotating), other than `skip`; why none has one
    /// otherwise.
    fn place(&self, route: RouteLimit, skip: Option<usize>) -> Result<Slot, Refusal> {
        let compute = &self.stats.compute;
        let n = compute.len();
        let spin = self.next_id.get() as usize % n.max(1);
        let mut order: Vec<(usize, usize, usize)> = (0..n)
            .filter(|&c| Some(c) != skip)
            .map(|c| (compute[c].in_flight.load(Relaxed), (c + n - spin) % n, c))
            .collect();
        order.sort_unstable();
        let mut why = Refusal::QueuesFull;
        for (_, _, c) in order {
            match self.reserve(c, route) {
                Ok(slot) => return Ok(slot),
                Err(refusal) => why = refusal,
            }
        }
        Err(why)
    }

    /// Queues `route`'s job, `run` with `input`: in the place `slot` holds
    /// (from [`Dispatcher::admit`]), or, without one, on the compute core
    /// with the fewest jobs that has room. Returns the job id (registered
    /// in `pending`) and its token. Should the held core's channel be full
    /// after all (more cancelled jobs on their way to it than
    /// [`husk_room`]), another core with room takes the job. With none,
    /// why (`QueuesFull` or `RouteShare`): the job never runs; answer it
    /// with [`Dispatcher::refuse_now`], which counts it.
    pub fn dispatch(
        &self,
        slot: Option<Slot>,
        route: RouteLimit,
        run: JobFn,
        input: JobInput,
    ) -> Result<Ticket, Refusal> {
        debug_assert!(slot.as_ref().is_none_or(|s| s.route == route.route));
        let mut slot = match slot {
            Some(slot) => slot,
            None => self.place(route, None)?,
        };
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let cancel = CancelToken::new();
        let input = InputSlot::new(input);
        let mut job = Job {
            id,
            reply_to: self.reply_to,
            cancel: cancel.clone(),
            route: route.route,
            run,
            input: input.clone(),
            dispatched: std::time::Instant::now(),
            expected: slot.expected,
        };
        let mut tried_after = None;
        loop {
            job.expected = slot.expected;
            match self.senders.try_send_to(slot.core, job) {
                Ok(()) => {
                    // The place is the job's now: the compute core gives
                    // it back when the job ends or is skipped.
                    slot.held = false;
                    self.stats.compute[slot.core].reserved.fetch_sub(1, AcqRel);
                    self.pending.register(id);
                    self.stats.io[self.io_index].accepted.fetch_add(1, Relaxed);
                    return Ok(Ticket {
                        id,
                        cancel,
                        core: slot.core,
                        route: route.route,
                        expected: slot.expected,
                        input,
                    });
                }
                Err(err) => match take_back(err) {
                    Some(back) => job = back,
                    None => return Err(Refusal::QueuesFull),
                },
            }
            // That core's channel is full: once, any other core with room.
            if tried_after.is_some() {
                return Err(Refusal::QueuesFull);
            }
            tried_after = Some(slot.core);
            drop(slot);
            slot = self.place(route, tried_after)?;
        }
    }

    /// Cancels a dispatched job (`why`: `Cancelled` or `TimedOut`); false
    /// when it had already finished (its outcome is on its way). A job
    /// still waiting gives back its place at once: its compute core's
    /// count (`--queue-depth`, `/stats` `queued`), its route's share and
    /// its part of the expected wait that deadline admission reads, and
    /// its input is dropped. Its compute core, which may be busy with a
    /// job that ignores its cancel, later skips what is left of it
    /// (`CancelToken::start` fails) without counting it again.
    pub fn cancel(&self, ticket: &Ticket, why: JobState) -> bool {
        let core = &self.stats.compute[ticket.core];
        // Counted before the token moves: the compute core takes it back
        // as soon as it sees the move, which must never find it at zero.
        core.skipped_ahead.fetch_add(1, AcqRel);
        let from = ticket.cancel.cancel_from(why);
        if from != Some(JobState::Queued) {
            core.skipped_ahead.fetch_sub(1, AcqRel);
        }
        match from {
            Some(JobState::Queued) => {
                core.in_flight.fetch_sub(1, AcqRel);
                core.route_in_flight[ticket.route].fetch_sub(1, AcqRel);
                self.stats
                    .estimates
                    .dequeued(ticket.core, ticket.expected, None);
                ticket.input.clear();
                true
            }
            Some(_) => {
                // Running: it stops within the stop bound, if one is known.
                self.stats
                    .estimates
                    .stopping(ticket.core, ticket.cancel.key());
                true
            }
            None => false,
        }
    }

    /// Whether compute core `core` can take one more job: fewer than
    /// `--queue-depth` waiting, and no more than [`husk_room`] cancelled
    /// jobs still on their way to it.
    fn has_room(&self, core: &crate::stats::ComputeCoreStats) -> bool {
        core.in_flight.load(Relaxed) <= self.queue_depth
            && core.skipped_ahead.load(Relaxed) <= husk_room(self.queue_depth)
    }

    /// Counts a refused job and returns its 503: `Retry-After` is `wait`
    /// in whole seconds (1 to 60), the body names the reason.
    pub fn refuse(&self, why: Refusal, wait: Duration) -> Response {
        self.stats.io[self.io_index].rejected.fetch_add(1, Relaxed);
        self.stats.io[self.io_index].refused[why as usize].fetch_add(1, Relaxed);
        log::debug!("job refused ({why:?}, 503)");
        let body = match why {
            Refusal::QueuesFull => "every compute queue is full; retry later",
            Refusal::RouteShare => {
                "this route has its share of every compute queue waiting already; retry later"
            }
            Refusal::Deadline => {
                "the job could not start before its deadline (the work queued ahead is longer); retry later"
            }
        };
        Response::text(503, body).with_header("Retry-After", retry_after_secs(wait).to_string())
    }

    /// `refuse(why, ..)` for a job that found no room (`QueuesFull`, or
    /// `RouteShare`: its route's jobs fill their share of every queue), at
    /// admission or at dispatch: a slot frees when a job starts, at the
    /// earliest when a running job ends, so that is the wait.
    pub fn refuse_now(&self, why: Refusal) -> Response {
        self.refuse(why, self.until_a_job_ends())
    }

    /// When some compute core's running job is expected to end.
    fn until_a_job_ends(&self) -> Duration {
        let estimates = &self.stats.estimates;
        (0..self.stats.compute.len())
            .map(|c| estimates.running_left(c))
            .min()
            .unwrap_or_default()
    }

    /// Closes this core's job channels (at shutdown), so compute cores can finish.
    pub fn close(&self) {
        self.senders.close();
    }
}

/// True when `route` may add a job to compute core `core`: it has no share
/// of its own, or its jobs there are within the share (plus the running one).
fn route_has_room(core: &crate::stats::ComputeCoreStats, route: RouteLimit) -> bool {
    route
        .cap
        .is_none_or(|cap| core.route_in_flight[route.route].load(Relaxed) <= cap)
}

/// A failed `try_send_to` hands the job back unless the channel itself is broken.
fn take_back(err: GlommioError<Job>) -> Option<Job> {
    match err {
        GlommioError::WouldBlock(ResourceType::Channel(job)) => Some(job),
        GlommioError::Closed(ResourceType::Channel(job)) => Some(job),
        _ => None,
    }
}
