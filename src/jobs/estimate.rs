//! Expected run times per route and expected waits per compute core: what
//! admission knows about time (contract: Deadlines and admission).
//!
//! Compute cores report each job's run time for its route; the route's
//! estimate is the *mean* of what it measures, as a moving average (each
//! sample moves it an eighth of the way). A wait is a sum of the jobs
//! ahead, and the expected value of a sum is the sum of the means: a median
//! (tried first) is far below the mean for a route whose jobs range from
//! microseconds to seconds, and under such a mix it admitted 55 % of the
//! jobs past their deadline and refused none (`scripts/bench-admission.py`,
//! n from 1 to 20000). Each route also tracks the mean of its squared run
//! times, so its variance is known; each compute core keeps the means and
//! the variances of its waiting jobs summed, and the estimate and start of
//! its running one.
//!
//! Admission refuses a job only when even an optimistic wait, the expected
//! wait less one standard deviation of the work ahead
//! ([`Estimates::waits`]), is past its deadline: with a wide mix
//! and few jobs ahead the deviation is large and little is refused (a job
//! refused is a job lost, one admitted in vain costs a queue slot); with
//! many jobs ahead the sum concentrates near its mean and the bound bites. The I/O core's admission reads these atomics, never
//! waits, and costs a few loads per compute core.
//!
//! With no history (a new route) the estimate is zero: nothing is refused
//! on a guess.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

/// Estimates shared by every core (held in `Stats`).
#[derive(Debug)]
pub struct Estimates {
    /// Per route: expected run time, microseconds (0: no sample yet).
    route_us: Vec<AtomicU64>,
    /// Per route: the moving mean of squared run times, us^2 (saturating:
    /// exact for jobs up to 71 minutes).
    route_sq_us2: Vec<AtomicU64>,
    /// Per compute core: expected run time of its waiting jobs, summed.
    queued_us: Vec<AtomicU64>,
    /// Per compute core: variance of its waiting jobs' run times, summed, us^2.
    queued_var_us2: Vec<AtomicU64>,
    /// Per compute core: expected run time of the running job (0: idle).
    running_us: Vec<AtomicU64>,
    /// Per compute core: when the running job started, us since `epoch`.
    running_since: Vec<AtomicU64>,
    /// Per compute core: the running job's key (`CancelToken::key`).
    running_key: Vec<AtomicUsize>,
    /// How long a running job that was cancelled may still hold its core,
    /// us (`u64::MAX`: unknown, as in thread isolation, where a job that
    /// ignores its cancel runs on; process isolation kills it after
    /// `--kill-grace`).
    stop_bound_us: AtomicU64,
    /// How long a worker process takes from its start to its `Hello`, us
    /// (moving mean; 0 until one has started): added to the stop bound,
    /// since a killed worker's job waits for its replacement.
    restart_us: AtomicU64,
    epoch: Instant,
}

impl Estimates {
    /// Estimates for `routes` routes and `cores` compute cores, all unknown.
    pub fn new(routes: usize, cores: usize) -> Estimates {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Estimates {
            route_us: zeros(routes),
            route_sq_us2: zeros(routes),
            queued_us: zeros(cores),
            queued_var_us2: zeros(cores),
            running_us: zeros(cores),
            running_since: zeros(cores),
            running_key: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
            stop_bound_us: AtomicU64::new(u64::MAX),
            restart_us: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The expected run time of a job of `route`.
    pub fn expected(&self, route: usize) -> Duration {
        Duration::from_micros(self.route_us.get(route).map_or(0, |a| a.load(Relaxed)))
    }

    /// The variance of `route`'s run times, us^2 (0 with under one sample).
    fn variance_us2(&self, route: usize) -> u64 {
        let mean = self.route_us.get(route).map_or(0, |a| a.load(Relaxed));
        let sq = self.route_sq_us2.get(route).map_or(0, |a| a.load(Relaxed));
        sq.saturating_sub(mean.saturating_mul(mean))
    }

    /// A job of `route` was queued on `core`; returns what it added (the
    /// job carries it to `dequeued`): its expected run time (us) and its
    /// variance (us^2).
    pub fn queued(&self, core: usize, route: usize) -> Expected {
        let us = self.route_us.get(route).map_or(0, |a| a.load(Relaxed));
        let var_us2 = self.variance_us2(route);
        if let (Some(q), Some(v)) = (self.queued_us.get(core), self.queued_var_us2.get(core)) {
            q.fetch_add(us, Relaxed);
            let _ = v.fetch_update(Relaxed, Relaxed, |x| Some(x.saturating_add(var_us2)));
        }
        Expected { us, var_us2 }
    }

    /// Sets how long a cancelled running job may still hold its core at
    /// most (process isolation: `--kill-grace`); see [`Estimates::stopping`].
    pub fn set_stop_bound(&self, bound: Duration) {
        let us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        self.stop_bound_us.store(us, Relaxed);
    }

    /// A worker process said `Hello` `took` after it was started.
    pub fn worker_started_in(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .restart_us
            .fetch_update(Relaxed, Relaxed, |old| Some(moving_mean(old, us)));
    }

    /// The running job of `core` with key `key` was cancelled (timeout or
    /// hang-up): it holds its core at most the stop bound longer (plus a
    /// worker's start, [`Estimates::worker_started_in`]), so the expected
    /// wait behind it shrinks to that (a request right after a 504 is not
    /// refused for the cancelled job's whole estimate). No change when no
    /// bound is set, or `core` already runs another job. (The key check and
    /// the update are two steps: a job that starts on `core` in between may
    /// have its estimate cut too, which only makes one admission optimistic.)
    pub fn stopping(&self, core: usize, key: usize) {
        let stop_bound = self.stop_bound_us.load(Relaxed);
        let (Some(r), Some(s), Some(k)) = (
            self.running_us.get(core),
            self.running_since.get(core),
            self.running_key.get(core),
        ) else {
            return;
        };
        if stop_bound == u64::MAX || k.load(Relaxed) != key {
            return;
        }
        let bound = stop_bound.saturating_add(self.restart_us.load(Relaxed));
        let ran = self.now_us().saturating_sub(s.load(Relaxed));
        let _ = r.fetch_update(Relaxed, Relaxed, |us| {
            // 0 means idle: it stays so; else never below 1 (running).
            (us != 0).then(|| us.min(ran.saturating_add(bound)).max(1))
        });
    }

    /// A job that added `added` when queued on `core` left the queue
    /// without running (cancelled while waiting: `running` is `None`) or is
    /// about to run (`Some(key)`, its `CancelToken::key`).
    pub fn dequeued(&self, core: usize, added: Expected, running: Option<usize>) {
        let us = added.us;
        // Saturating: a racing reader may see a moment's excess, never a wrap.
        if let Some(q) = self.queued_us.get(core) {
            let _ = q.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(us)));
        }
        if let Some(q) = self.queued_var_us2.get(core) {
            let _ = q.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(added.var_us2)));
        }
        if let Some(key) = running {
            if let (Some(r), Some(s), Some(k)) = (
                self.running_us.get(core),
                self.running_since.get(core),
                self.running_key.get(core),
            ) {
                k.store(key, Relaxed);
                s.store(self.now_us(), Relaxed);
                r.store(us, Relaxed);
            }
        }
    }

    /// A job of `route` ran for `took` on `core`: the core is idle and the
    /// route's estimate moves towards the sample.
    pub fn finished(&self, core: usize, route: usize, took: Duration) {
        self.idle(core);
        if let Some(est) = self.route_us.get(route) {
            let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let _ = est.fetch_update(Relaxed, Relaxed, |old| Some(moving_mean(old, sample)));
        }
        if let Some(sq) = self.route_sq_us2.get(route) {
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            let sample = us.saturating_mul(us);
            let _ = sq.fetch_update(Relaxed, Relaxed, |old| Some(moving_mean(old, sample)));
        }
    }

    /// `core` runs nothing now (a job ended, or was skipped as cancelled).
    pub fn idle(&self, core: usize) {
        if let Some(r) = self.running_us.get(core) {
            r.store(0, Relaxed);
        }
    }

    /// Expected time until a job queued on `core` now would start.
    pub fn wait(&self, core: usize) -> Duration {
        self.waits(core, self.now()).1
    }

    /// Now, for [`Estimates::waits`]: one clock read for all cores.
    pub fn now(&self) -> u64 {
        self.now_us()
    }

    /// `core`'s (optimistic, expected) waits at `now` (from
    /// [`Estimates::now`]): what admission reads per compute core. The
    /// optimistic one is the expected less one standard deviation of the
    /// work queued there, what admission compares with a deadline (see the
    /// module docs).
    pub fn waits(&self, core: usize, now: u64) -> (Duration, Duration) {
        let queued = self.queued_us.get(core).map_or(0, |a| a.load(Relaxed));
        let var_us2 = self.queued_var_us2.get(core).map_or(0, |a| a.load(Relaxed));
        let expected = Duration::from_micros(queued) + self.running_left_at(core, now);
        let sd = if var_us2 == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros((var_us2 as f64).sqrt() as u64)
        };
        (expected.saturating_sub(sd), expected)
    }

    /// Expected time until the running job of `core` ends (zero when idle or
    /// past its estimate).
    pub fn running_left(&self, core: usize) -> Duration {
        self.running_left_at(core, self.now_us())
    }

    fn running_left_at(&self, core: usize, now: u64) -> Duration {
        let expected = self.running_us.get(core).map_or(0, |a| a.load(Relaxed));
        let since = self.running_since.get(core).map_or(0, |a| a.load(Relaxed));
        let ran = now.saturating_sub(since);
        Duration::from_micros(if expected == 0 {
            0
        } else {
            expected.saturating_sub(ran)
        })
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What a queued job added to its core's expected wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    /// Expected run time, us.
    pub us: u64,
    /// Variance of the run time, us^2.
    pub var_us2: u64,
}

/// One step of the moving mean: the first sample is taken whole; then the
/// estimate moves an eighth of the way to each sample (an exponentially
/// weighted mean over about the last 8 jobs, so it follows a change within
/// a few dozen), never to 0 (0 means "no history").
fn moving_mean(old: u64, sample: u64) -> u64 {
    if old == 0 {
        return sample;
    }
    if sample > old {
        old.saturating_add((sample - old) / 8)
    } else {
        old - (old - sample) / 8
    }
    .max(1)
}

/// `Retry-After` in whole seconds for an expected `wait`: rounded up, at
/// least 1 and at most 60 (the contract's bounds).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_mean() {
        // 90 % of the jobs take 10 ms, 10 % take 4 s: the mean is 409 ms,
        // what ten of them queued ahead take on average.
        let mut seen = Vec::new();
        let mut est = 0;
        for i in 0..2000u64 {
            est = moving_mean(est, if i % 10 == 9 { 4_000_000 } else { 10_000 });
            seen.push(est);
        }
        // Averaged over the last cycles it is the mean; between long jobs it
        // sags, right after one it jumps.
        let avg = seen[1000..].iter().sum::<u64>() / 1000;
        assert!((300_000..=520_000).contains(&avg), "{avg}");
        // It follows a shift within a few dozen samples.
        for _ in 0..40 {
            est = moving_mean(est, 1_000_000);
        }
        assert!((950_000..=1_050_000).contains(&est), "{est}");
        assert_eq!(moving_mean(0, 7), 7);
        assert_eq!(moving_mean(8, 0), 7);
        assert_eq!(moving_mean(1, 0), 1, "never back to no history");
    }

    #[test]
    fn waits_add_up_and_drain() {
        let e = Estimates::new(2, 2);
        assert_eq!(e.wait(0), Duration::ZERO, "no history: no wait");
        e.finished(0, 1, Duration::from_millis(500));
        assert_eq!(e.expected(1), Duration::from_millis(500));
        let a = e.queued(0, 1);
        let b = e.queued(0, 1);
        assert_eq!(e.wait(0), Duration::from_secs(1));
        e.dequeued(0, a, Some(1));
        let w = e.wait(0);
        assert!(
            w <= Duration::from_secs(1) && w > Duration::from_millis(900),
            "{w:?}"
        );
        e.dequeued(0, b, None);
        assert!(e.wait(0) <= Duration::from_millis(500));
        e.finished(0, 1, Duration::from_millis(500));
        assert_eq!((e.wait(0), e.wait(1)), (Duration::ZERO, Duration::ZERO));
        // Out-of-range indices are ignored, never a panic.
        e.finished(9, 9, Duration::from_secs(1));
        assert_eq!(e.queued(9, 9), Expected::default());
    }

    #[test]
    fn a_cancelled_running_job_counts_only_until_its_stop_bound() {
        let e = Estimates::new(1, 1);
        e.finished(0, 0, Duration::from_secs(10));
        let a = e.queued(0, 0);
        e.dequeued(0, a, Some(7));
        // No bound (thread isolation): the estimate stands.
        e.stopping(0, 7);
        assert!(e.wait(0) > Duration::from_secs(9), "{:?}", e.wait(0));
        e.set_stop_bound(Duration::from_millis(500));
        // Another job's key: not the running one, no change.
        e.stopping(0, 8);
        assert!(e.wait(0) > Duration::from_secs(9), "{:?}", e.wait(0));
        e.stopping(0, 7);
        let w = e.wait(0);
        assert!(
            w <= Duration::from_millis(500) && w > Duration::ZERO,
            "{w:?}"
        );
        // A worker's start is added: the job after waits for the replacement.
        e.dequeued(0, a, Some(9));
        e.worker_started_in(Duration::from_millis(300));
        e.stopping(0, 9);
        let w = e.wait(0);
        assert!(
            w <= Duration::from_millis(800) && w > Duration::from_millis(500),
            "{w:?}"
        );
        // An idle core stays idle.
        e.idle(0);
        e.stopping(0, 7);
        assert_eq!(e.wait(0), Duration::ZERO);
    }

    #[test]
    fn a_steady_route_has_no_spread_and_a_mixed_one_has_its_own() {
        let e = Estimates::new(2, 1);
        // 100 us every time: no deviation, so 700 queued are 70 ms flat.
        for _ in 0..50 {
            e.finished(0, 0, Duration::from_micros(100));
        }
        for _ in 0..700 {
            e.queued(0, 0);
        }
        let (optimistic, expected) = e.waits(0, e.now());
        assert_eq!(expected, Duration::from_millis(70));
        assert_eq!(optimistic, expected, "a steady route has no spread");
        // Alternating 10 ms and 30 ms: mean ~20 ms, deviation ~10 ms.
        for i in 0..400 {
            e.finished(
                0,
                1,
                Duration::from_millis(if i % 2 == 0 { 10 } else { 30 }),
            );
        }
        let added = e.queued(0, 1);
        assert!((15_000..=25_000).contains(&added.us), "{added:?}");
        let sd = (added.var_us2 as f64).sqrt();
        assert!((7_000.0..=13_000.0).contains(&sd), "{sd}");
    }

    #[test]
    fn retry_after_is_whole_seconds_from_1_to_60() {
        let s = |ms| retry_after_secs(Duration::from_millis(ms));
        assert_eq!(
            [s(0), s(1), s(1000), s(1001), s(7500), s(3_600_000)],
            [1, 1, 1, 2, 8, 60]
        );
    }
}
