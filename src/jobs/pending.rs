//! The I/O core's table of jobs it waits for, keyed by job id.
//!
//! Outcomes come back from compute cores through the results mesh; a drainer
//! task per compute core calls `complete`, which stores the outcome and wakes
//! the waiting connection. Everything here is core-local (`Rc`, `RefCell`): no
//! waker ever crosses a thread. An outcome whose waiter is gone (timed out,
//! hung up) is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::JobOutcome;

enum Slot {
    Waiting(Option<Waker>),
    Ready(JobOutcome),
}

/// Jobs this I/O core has dispatched and not yet answered.
#[derive(Default)]
pub struct Pending {
    slots: RefCell<HashMap<u64, Slot>>,
}

impl Pending {
    pub fn register(&self, id: u64) {
        self.slots.borrow_mut().insert(id, Slot::Waiting(None));
    }

    /// Delivers an outcome; ignored when nobody waits for `id` any more.
    pub fn complete(&self, id: u64, outcome: JobOutcome) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(&id) {
            if let Slot::Waiting(Some(waker)) = std::mem::replace(slot, Slot::Ready(outcome)) {
                waker.wake();
            }
        }
    }

    /// Forgets `id`; a later outcome for it is dropped.
    pub fn remove(&self, id: u64) -> bool {
        self.slots.borrow_mut().remove(&id).is_some()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves with the outcome of `id` (and forgets it).
    pub fn wait(&self, id: u64) -> WaitOutcome<'_> {
        WaitOutcome { pending: self, id }
    }
}

/// Future returned by [`Pending::wait`]. Pending forever if `id` is unknown.
pub struct WaitOutcome<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Future for WaitOutcome<'_> {
    type Output = JobOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JobOutcome> {
        let mut slots = self.pending.slots.borrow_mut();
        match slots.remove(&self.id) {
            Some(Slot::Ready(outcome)) => Poll::Ready(outcome),
            Some(Slot::Waiting(_)) => {
                slots.insert(self.id, Slot::Waiting(Some(cx.waker().clone())));
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;
    use futures_lite::future;

    #[test]
    fn outcome_reaches_its_waiter_once() {
        let p = Pending::default();
        p.register(7);
        assert!(future::block_on(future::poll_once(p.wait(7))).is_none());
        p.complete(7, JobOutcome::Done(Response::text(200, "x")));
        let got = future::block_on(p.wait(7));
        assert!(matches!(got, JobOutcome::Done(r) if r.body == b"x"));
        assert!(p.is_empty());
    }

    #[test]
    fn late_outcome_is_dropped() {
        let p = Pending::default();
        p.register(1);
        assert!(p.remove(1));
        p.complete(1, JobOutcome::Panicked("late".into()));
        assert!(p.is_empty());
    }
}
