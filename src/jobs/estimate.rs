//! Expected run times per route and expected waits per compute core: what
//! admission knows about time (contract: Deadlines and admission).
//!
//! Compute cores report each job's run time for its route; the route's
//! estimate follows the *median* of what it measures (a step of at most an
//! eighth of the estimate towards each new sample), so a route whose jobs
//! range from microseconds to seconds is neither dragged up by its longest
//! jobs (false refusals) nor down by its shortest. Each compute core keeps
//! the estimates of its waiting jobs summed, and the estimate and start of
//! its running one. The I/O core's admission reads these atomics, never
//! waits, and costs a few loads per compute core.
//!
//! With no history (a new route) the estimate is zero: nothing is refused
//! on a guess.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Estimates shared by every core (held in `Stats`).
#[derive(Debug)]
pub struct Estimates {
    /// Per route: expected run time, microseconds (0: no sample yet).
    route_us: Vec<AtomicU64>,
    /// Per compute core: expected run time of its waiting jobs, summed.
    queued_us: Vec<AtomicU64>,
    /// Per compute core: expected run time of the running job (0: idle).
    running_us: Vec<AtomicU64>,
    /// Per compute core: when the running job started, us since `epoch`.
    running_since: Vec<AtomicU64>,
    epoch: Instant,
}

impl Estimates {
    /// Estimates for `routes` routes and `cores` compute cores, all unknown.
    pub fn new(routes: usize, cores: usize) -> Estimates {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Estimates {
            route_us: zeros(routes),
            queued_us: zeros(cores),
            running_us: zeros(cores),
            running_since: zeros(cores),
            epoch: Instant::now(),
        }
    }

    /// The expected run time of a job of `route`.
    pub fn expected(&self, route: usize) -> Duration {
        Duration::from_micros(self.route_us.get(route).map_or(0, |a| a.load(Relaxed)))
    }

    /// A job of `route` was queued on `core`; returns what it added (the
    /// job carries it to `started`).
    pub fn queued(&self, core: usize, route: usize) -> u64 {
        let us = self.route_us.get(route).map_or(0, |a| a.load(Relaxed));
        if let Some(q) = self.queued_us.get(core) {
            q.fetch_add(us, Relaxed);
        }
        us
    }

    /// A job that added `us` when queued on `core` left the queue without
    /// running (cancelled while waiting) or is about to run (`running`).
    pub fn dequeued(&self, core: usize, us: u64, running: bool) {
        if let Some(q) = self.queued_us.get(core) {
            // Saturating: a racing reader may see a moment's excess, never a wrap.
            let _ = q.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(us)));
        }
        if running {
            if let (Some(r), Some(s)) = (self.running_us.get(core), self.running_since.get(core)) {
                r.store(us, Relaxed);
                s.store(self.now_us(), Relaxed);
            }
        }
    }

    /// A job of `route` ran for `took` on `core`: the core is idle and the
    /// route's estimate moves towards the sample.
    pub fn finished(&self, core: usize, route: usize, took: Duration) {
        self.idle(core);
        if let Some(est) = self.route_us.get(route) {
            let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let _ = est.fetch_update(Relaxed, Relaxed, |old| Some(step_towards(old, sample)));
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
        let queued = self.queued_us.get(core).map_or(0, |a| a.load(Relaxed));
        Duration::from_micros(queued) + self.running_left(core)
    }

    /// Expected time until the running job of `core` ends (zero when idle or
    /// past its estimate).
    pub fn running_left(&self, core: usize) -> Duration {
        let expected = self.running_us.get(core).map_or(0, |a| a.load(Relaxed));
        let since = self.running_since.get(core).map_or(0, |a| a.load(Relaxed));
        let ran = self.now_us().saturating_sub(since);
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

/// One step of the median tracker: the first sample is taken whole; then
/// the estimate moves towards each sample by at most an eighth of itself
/// (and at least 1 us), so it settles where half the samples lie above.
fn step_towards(old: u64, sample: u64) -> u64 {
    if old == 0 {
        return sample;
    }
    let step = (old / 8).max(1);
    if sample > old {
        old.saturating_add(step.min(sample - old))
    } else {
        old - step.min(old - sample)
    }
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
    fn the_estimate_follows_the_median_not_the_mean() {
        let mut est = 0;
        // 90 % of the jobs take 10 ms, 10 % take 4 s: the mean is ~410 ms.
        for i in 0..2000u64 {
            est = step_towards(est, if i % 10 == 9 { 4_000_000 } else { 10_000 });
        }
        assert!((8_000..=14_000).contains(&est), "{est}");
        // It follows a shift within a few dozen samples.
        for _ in 0..60 {
            est = step_towards(est, 1_000_000);
        }
        assert!(est > 500_000, "{est}");
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
        e.dequeued(0, a, true);
        let w = e.wait(0);
        assert!(
            w <= Duration::from_secs(1) && w > Duration::from_millis(900),
            "{w:?}"
        );
        e.dequeued(0, b, false);
        assert!(e.wait(0) <= Duration::from_millis(500));
        e.finished(0, 1, Duration::from_millis(500));
        assert_eq!((e.wait(0), e.wait(1)), (Duration::ZERO, Duration::ZERO));
        // Out-of-range indices are ignored, never a panic.
        e.finished(9, 9, Duration::from_secs(1));
        assert_eq!(e.queued(9, 9), 0);
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
