//! `CancelToken`: the one shared word between the request that waits for a
//! job and the compute core that runs it.
//!
//! It is a small state machine, `Queued -> Running -> {Completed, Failed}` or
//! `{Queued, Running} -> {Cancelled, TimedOut}`, moved only by compare-and-swap.
//! Whoever wins the move to a final state counts the job in `/stats`, so every
//! accepted job is counted exactly once however the races between a finishing
//! job, a timeout and a hang-up fall.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Where a job stands. Stored as a `u8` inside the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JobState {
    Queued = 0,
    Running = 1,
    Completed = 2,
    Failed = 3,
    Cancelled = 4,
    TimedOut = 5,
}

impl JobState {
    fn from_u8(v: u8) -> JobState {
        match v {
            0 => JobState::Queued,
            1 => JobState::Running,
            2 => JobState::Completed,
            3 => JobState::Failed,
            4 => JobState::Cancelled,
            _ => JobState::TimedOut,
        }
    }
}

/// Shared between the waiting request (I/O core) and the running job (compute core).
#[derive(Clone)]
pub struct CancelToken(Arc<AtomicU8>);

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CancelToken({:?})", self.state())
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    /// A token for a job that has just been queued.
    pub fn new() -> CancelToken {
        CancelToken(Arc::new(AtomicU8::new(JobState::Queued as u8)))
    }

    /// This job's identity while its token lives (the shared state's
    /// address), never 0.
    pub fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// True once nobody wants the job's result any more (timeout or hang-up).
    /// Jobs check this between steps and stop when it turns true.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.state(), JobState::Cancelled | JobState::TimedOut)
    }

    pub fn state(&self) -> JobState {
        JobState::from_u8(self.0.load(Ordering::Acquire))
    }

    /// Compute side: `Queued -> Running`. False means the job was cancelled
    /// while it waited and must not run.
    pub fn start(&self) -> bool {
        self.transition(&[JobState::Queued], JobState::Running)
    }

    /// Compute side: `Running -> Completed | Failed`. False means a timeout or
    /// hang-up won the race; the result is then discarded.
    pub fn finish(&self, end: JobState) -> bool {
        debug_assert!(matches!(end, JobState::Completed | JobState::Failed));
        self.transition(&[JobState::Running], end)
    }

    /// I/O side: `Queued | Running -> Cancelled | TimedOut`. False means the job
    /// already finished and its outcome is on its way.
    pub fn cancel(&self, why: JobState) -> bool {
        self.cancel_from(why).is_some()
    }

    /// [`CancelToken::cancel`], telling where the job was: `Queued` means it
    /// never ran and never will (its compute core's `start` fails), so its
    /// canceller frees its queue slot; `None` means it had finished.
    pub fn cancel_from(&self, why: JobState) -> Option<JobState> {
        debug_assert!(matches!(why, JobState::Cancelled | JobState::TimedOut));
        [JobState::Queued, JobState::Running]
            .into_iter()
            .find(|&from| self.transition(&[from], why))
    }

    fn transition(&self, from: &[JobState], to: JobState) -> bool {
        from.iter().any(|f| {
            self.0
                .compare_exchange(*f as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path() {
        let t = CancelToken::new();
        assert!(t.start());
        assert!(!t.is_cancelled());
        assert!(t.finish(JobState::Completed));
        assert!(
            !t.cancel(JobState::TimedOut),
            "a finished job cannot time out"
        );
        assert_eq!(t.state(), JobState::Completed);
    }

    #[test]
    fn cancelled_while_queued_never_starts() {
        let t = CancelToken::new();
        assert!(t.cancel(JobState::Cancelled));
        assert!(t.is_cancelled());
        assert!(!t.start());
    }

    #[test]
    fn timeout_while_running_discards_the_result() {
        let t = CancelToken::new();
        let compute = t.clone();
        assert!(compute.start());
        assert!(t.cancel(JobState::TimedOut));
        assert!(compute.is_cancelled());
        assert!(!compute.finish(JobState::Completed));
        assert!(!t.cancel(JobState::Cancelled), "only one final state");
        assert_eq!(t.state(), JobState::TimedOut);
    }
}
