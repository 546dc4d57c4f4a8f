//! Heavy jobs: what they are, how they travel, and how their ends are answered.
//!
//! A job route registers a [`JobFn`]; for each request the I/O core copies
//! the request into a [`JobInput`] (plain, owned data: method, path,
//! parameters, query, headers, body) and `dispatch` sends both, with the
//! route's index, to the least loaded compute core through the jobs mesh.
//! `worker` runs the job there under `catch_unwind`, and the outcome travels
//! back through the results mesh to the `pending` table of the I/O core that
//! asked. Because the input is plain data and the route is named by index,
//! the same message can cross a process boundary to a worker that built the
//! same router. [`outcome_response`] is the one place a [`JobOutcome`]
//! becomes a status code (200/500/503/504).

pub mod cancel;
pub(crate) mod dispatch;
pub mod estimate;
#[cfg(feature = "gzip")]
pub mod gzip;
#[cfg(feature = "seed")]
pub mod heavy;
pub(crate) mod pending;
pub mod process;
pub(crate) mod worker;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cancel::{CancelToken, JobState};

use crate::http::Response;

/// A job stopped because its `should_stop` check said so, before the step it
/// was asked about. Every job's pure core returns it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("job cancelled between steps")
    }
}

impl std::error::Error for Cancelled {}

/// What a job can see while it runs.
pub struct JobContext<'a> {
    /// CPU number of the core running the job (the I/O core's for inline jobs).
    pub compute_core: usize,
    /// Set when the job's result is no longer wanted.
    pub cancel: &'a CancelToken,
    /// True when the compute executor shares its CPU with an I/O executor.
    pub shared_core: bool,
    /// Time from dispatch to the job's start (zero for inline jobs).
    pub queued: Duration,
    /// When the job last offered its CPU, in ns since [`offer_epoch`]; 0
    /// until its first step.
    offered_at: AtomicU64,
}

impl<'a> JobContext<'a> {
    /// The context of a job about to start.
    pub fn new(
        compute_core: usize,
        cancel: &'a CancelToken,
        shared_core: bool,
        queued: Duration,
    ) -> JobContext<'a> {
        JobContext {
            compute_core,
            cancel,
            shared_core,
            queued,
            offered_at: AtomicU64::new(0),
        }
    }

    /// Call between steps: returns true when the job must stop. On a shared
    /// core it also lets the I/O thread run first, so fast requests keep
    /// flowing; otherwise (a compute core of its own, or the I/O core for
    /// an inline `/slow` job) it offers the CPU to anything else runnable
    /// there once [`OFFER_CPU_EVERY`] has passed since its last offer.
    pub fn should_stop(&self) -> bool {
        if self.shared_core {
            std::thread::yield_now();
        } else {
            self.offer_cpu();
        }
        self.cancel.is_cancelled()
    }

    /// Offers the CPU (`sched_yield`) when [`OFFER_CPU_EVERY`] has passed
    /// since the job's last offer; its first step only starts the clock (an
    /// offer there, when the client that just sent the job is still
    /// runnable on this CPU, added 80 us to a one-step job's round trip).
    fn offer_cpu(&self) {
        let now = offer_clock();
        let last = self.offered_at.load(Ordering::Relaxed);
        if last == 0 || offer_due(last, now) {
            if last != 0 {
                std::thread::yield_now();
            }
            self.offered_at.store(now, Ordering::Relaxed);
        }
    }
}

/// Shortest time between two offers of a job's CPU (`sched_yield(2)`) to
/// whatever else is runnable there; offers happen at steps, so a step that
/// runs longer (a heavy job's step k costs O(k) bignum work: about 2 ms at
/// k=20000) delays the next one. A CPU-bound thread is otherwise switched
/// out only at the scheduler's tick (4 ms at HZ=250), so a latency-sensitive
/// neighbour on a compute core's CPU (a proxy, a sidecar, the load generator
/// of `scripts/bench.sh`'s shared layout) waited that long. Measured on the
/// 2-CPU VM, `/fast` with wrk -c32 on the compute CPU while wrk -c2 kept
/// `/slow_threaded` busy (scenario b), without offers: p99 5.1-5.3 ms, fast
/// 39k req/s, 32-35 jobs/s done meanwhile. Offering every 500 us: 1.5-2.2
/// ms, 62-67k, 22-25 jobs/s; every 250 us: 0.9-2.1 ms, 64-92k, 16-19;
/// every 100 us: 0.69-1.41 ms, 71-93k, 16-19 (`--compute-priority low`:
/// 16 jobs/s). The job gets its fair share instead of whole ticks. With
/// nothing else runnable the call returns at once: jobs/s alone 48-51
/// without, 52-53 with.
pub const OFFER_CPU_EVERY: Duration = Duration::from_micros(100);

/// The instant [`offer_clock`] counts from.
fn offer_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`offer_epoch`], at least 1 (0 means "never").
fn offer_clock() -> u64 {
    let ns = Instant::now()
        .saturating_duration_since(offer_epoch())
        .as_nanos();
    u64::try_from(ns).unwrap_or(u64::MAX).max(1)
}

/// Whether a job whose last offer was at `last` (ns, [`offer_clock`])
/// offers its CPU at `now`.
fn offer_due(last: u64, now: u64) -> bool {
    now.saturating_sub(last) >= OFFER_CPU_EVERY.as_nanos() as u64
}

/// CPU time of the calling thread (user + system), from its CPU clock
/// (`CLOCK_THREAD_CPUTIME_ID`). A compute core runs one job at a time, so the
/// difference across a job is that job's own CPU time, exactly; zero if the
/// clock cannot be read.
pub fn thread_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(Duration::ZERO)
}

/// The time of CPU clock `clock` (a thread's, or another process's from
/// `clock_getcpuclockid`); `None` if it cannot be read (the process is gone).
pub fn cpu_clock(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    match (ok, u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (true, Ok(secs), Ok(nanos)) => Some(Duration::new(secs, nanos)),
        _ => None,
    }
}

/// A heavy job as a route registers it: runs once per request, on a compute
/// core, with the request as plain data, and builds the whole response.
/// Return `Err(Cancelled)` when `ctx.should_stop()` said so.
pub type JobFn =
    Arc<dyn Fn(&JobInput, &JobContext<'_>) -> Result<Response, Cancelled> + Send + Sync + 'static>;

/// What a job gets of its request: plain, owned data, moved (not copied)
/// from the I/O core to the compute core, and the shape a worker process
/// will receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInput {
    /// As sent, e.g. "POST" (HEAD for a HEAD on a GET route).
    pub method: String,
    /// The request path (absolute-form targets reduced to it), not decoded.
    pub path: String,
    /// Path parameters, percent-decoded, in pattern order.
    pub params: Vec<(String, String)>,
    /// The raw query string (after `?`), "" if none.
    pub query: String,
    /// Every request header, names lower-cased, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request body, whole (at most the route's body limit).
    pub body: Vec<u8>,
    /// CPU number of the I/O core that read the request.
    pub io_core: usize,
}

impl JobInput {
    /// The first value of header `name` (give it in lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The decoded path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query value `name`, decoded as a form value (`%XX` and `+`):
    /// `None` when absent, `Some(Err(why))` for a bad escape or a value
    /// that is not UTF-8 (see [`crate::http::query::query_value`]).
    pub fn query_value(&self, name: &str) -> Option<Result<Cow<'_, str>, &'static str>> {
        crate::http::query::query_value(&self.query, name)
    }

    /// True when some `Accept` header names application/json.
    pub fn accepts_json(&self) -> bool {
        const JSON: &[u8] = b"application/json";
        self.headers.iter().any(|(n, v)| {
            n == "accept" && v.windows(JSON.len()).any(|w| w.eq_ignore_ascii_case(JSON))
        })
    }
}

/// The message on the jobs mesh (I/O core -> compute core).
pub struct Job {
    /// Unique per I/O core; keys the origin's pending table.
    pub id: u64,
    /// Results-mesh consumer index of the I/O core that waits.
    pub reply_to: usize,
    /// Decides, once, how the job ended; shared with the waiting request.
    pub cancel: CancelToken,
    /// The route's index in its router (`Router::routes`).
    pub route: usize,
    /// The route's job.
    pub run: JobFn,
    /// The request, as plain data: taken by the compute core when the job
    /// starts, dropped by its canceller if it is cancelled while it waits.
    pub input: InputSlot,
    /// When the I/O core queued it (for `JobContext::queued`).
    pub dispatched: std::time::Instant,
    /// The route's expected run time and its variance when it was queued
    /// (what it added to its core's expected wait; `jobs::estimate`).
    pub expected: estimate::Expected,
}

/// A queued job's input, shared by the job on its way to a compute core and
/// the request that waits for it. A job cancelled while it waits never runs
/// but stays in its channel until its compute core gets to it (which may
/// be busy with a job that ignores its cancel); its canceller empties this
/// slot at once, so that what stays holds no request body (up to
/// `--max-job-body`). Never contended: the token's one winning transition
/// decides who touches it (`start` -> the compute core takes it;
/// `cancel_from` returning `Queued` -> the canceller empties it).
#[derive(Clone, Default)]
pub struct InputSlot(Arc<std::sync::Mutex<Option<JobInput>>>);

impl InputSlot {
    pub fn new(input: JobInput) -> InputSlot {
        InputSlot(Arc::new(std::sync::Mutex::new(Some(input))))
    }

    /// The input, once; `None` if it was taken or dropped.
    pub fn take(&self) -> Option<JobInput> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Drops the input now (the job will never run).
    pub fn clear(&self) {
        drop(self.take());
    }
}

/// The message on the results mesh (compute core -> I/O core).
pub struct Done {
    /// The job's id, as the `Job` carried it.
    pub id: u64,
    /// How it ended.
    pub outcome: JobOutcome,
}

/// How a job ended, as far as the waiting request is concerned.
#[derive(Debug)]
pub enum JobOutcome {
    /// The job finished; here is its response.
    Done(Response),
    /// The job panicked; the text is the panic message.
    Panicked(String),
    /// Every compute queue was full; the job never ran.
    Rejected,
    /// The job ran past the job timeout and was cancelled.
    TimedOut(Duration),
}

/// The one mapping from a job's end to what the client sees.
pub fn outcome_response(outcome: JobOutcome) -> Response {
    match outcome {
        JobOutcome::Done(response) => response,
        JobOutcome::Panicked(msg) => Response::text(500, format!("Caught an exception: {msg}")),
        JobOutcome::Rejected => Response::text(503, "every compute queue is full; retry later")
            .with_header("Retry-After", "1"),
        JobOutcome::TimedOut(limit) => Response::text(
            504,
            format!(
                "job ran past the job timeout of {:.3} s and was cancelled",
                limit.as_secs_f64()
            ),
        ),
    }
}

static IN_WORKER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True in a worker process (process isolation), where a job may end its
/// own process without taking the server with it.
pub fn in_worker() -> bool {
    IN_WORKER.load(std::sync::atomic::Ordering::Relaxed)
}

/// Marks this process as a worker; see [`in_worker`].
pub(crate) fn mark_worker() {
    IN_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Caps this process's address space (RLIMIT_AS) at its current size plus
/// `extra` bytes, unless a cap is already set (`--job-memory`): so a job
/// that allocates without bound fails its allocation instead of waking the
/// kernel's OOM killer. Only for worker processes.
pub fn cap_memory_if_unlimited(extra: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_AS, &mut lim) != 0 || lim.rlim_cur != libc::RLIM_INFINITY {
            return;
        }
    }
    let size = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        // SAFETY: sysconf has no preconditions.
        * u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let cap = libc::rlimit {
        rlim_cur: size + extra,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) };
}

/// Text of a panic payload (`&str` or `String`; anything else is named as such).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "job panicked with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_offers_its_cpu_once_per_interval_and_not_at_its_first_step() {
        let every = OFFER_CPU_EVERY.as_nanos() as u64;
        let t0 = 1_000_000;
        assert!(!offer_due(t0, t0 + every / 2));
        assert!(offer_due(t0, t0 + every));
        assert!(offer_due(t0, t0 + 10 * every));
        assert!(
            !offer_due(t0 + every, t0),
            "a clock read out of order never offers"
        );

        let token = CancelToken::new();
        let ctx = JobContext::new(0, &token, false, Duration::ZERO);
        assert_eq!(ctx.offered_at.load(Ordering::Relaxed), 0);
        assert!(!ctx.should_stop());
        let first = ctx.offered_at.load(Ordering::Relaxed);
        assert_ne!(first, 0, "the first step starts the clock");
        std::thread::sleep(OFFER_CPU_EVERY * 2);
        assert!(!ctx.should_stop());
        assert!(
            ctx.offered_at.load(Ordering::Relaxed) > first,
            "a later step offers and restarts it"
        );
    }

    #[test]
    fn outcomes_map_to_statuses() {
        assert_eq!(
            outcome_response(JobOutcome::Done(Response::text(200, "ok"))).status,
            200
        );
        let r = outcome_response(JobOutcome::Panicked("boom".into()));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (500, &b"Caught an exception: boom"[..])
        );
        let r = outcome_response(JobOutcome::Rejected);
        assert_eq!(r.status, 503);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Retry-After" && v == "1"));
        assert_eq!(
            outcome_response(JobOutcome::TimedOut(Duration::from_secs(1))).status,
            504
        );
    }

    #[test]
    fn panic_payloads_become_text() {
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "static");
        let p = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 42");
    }
}
