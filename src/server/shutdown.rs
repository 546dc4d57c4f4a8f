//! Stopping: the process-wide stop flag and each I/O core's local signal.
//!
//! `ServerHandle::stop` (called on SIGINT/SIGTERM, or by tests) sets one
//! `AtomicBool`; a small task on every I/O core notices it within
//! [`STOP_POLL`] and fires that core's [`Shutdown`], which wakes the accept loop
//! and every idle connection on the core. Everything after that is core-local.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// How often each I/O core looks at the stop flag: a stop is noticed within
/// this long. Each look wakes the core and costs its spin before parking
/// (`server::SPIN_BEFORE_PARK`); at 10 ms (until 2026-11-30) that was about
/// 2% of a CPU for an idle server. The wake-up is also a safety net for a
/// cross-core notification glommio might miss (see `jobs::worker::WAKE_TICK`).
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// A core-local, fire-once broadcast.
#[derive(Default)]
pub struct Shutdown {
    fired: Cell<bool>,
    next_key: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl Shutdown {
    pub fn fire(&self) {
        self.fired.set(true);
        for (_, waker) in self.waiters.borrow_mut().drain() {
            waker.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Resolves once `fire` has been called.
    pub fn wait(&self) -> WaitShutdown<'_> {
        WaitShutdown {
            shutdown: self,
            key: None,
        }
    }
}

/// Future of [`Shutdown::wait`]; removes its waker when dropped.
pub struct WaitShutdown<'a> {
    shutdown: &'a Shutdown,
    key: Option<u64>,
}

impl Future for WaitShutdown<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shutdown.is_fired() {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = self.shutdown.next_key.get();
                self.shutdown.next_key.set(k + 1);
                self.key = Some(k);
                k
            }
        };
        self.shutdown
            .waiters
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for WaitShutdown<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.shutdown.waiters.borrow_mut().remove(&key);
        }
    }
}

/// Waits (on a glommio timer) until the process-wide stop flag is set.
pub async fn wait_for_stop(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        glommio::timer::sleep(STOP_POLL).await;
    }
}

/// Fires `local` once `stop` is set.
pub async fn relay_stop(stop: Arc<AtomicBool>, local: Rc<Shutdown>) {
    wait_for_stop(&stop).await;
    local.fire();
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn fire_wakes_waiters_and_drop_cleans_up() {
        let s = Shutdown::default();
        {
            let mut w = s.wait();
            assert!(future::block_on(future::poll_once(&mut w)).is_none());
            assert_eq!(s.waiters.borrow().len(), 1);
        }
        assert_eq!(
            s.waiters.borrow().len(),
            0,
            "a dropped waiter leaves nothing behind"
        );
        let mut w = s.wait();
        assert!(future::block_on(future::poll_once(&mut w)).is_none());
        s.fire();
        assert!(future::block_on(future::poll_once(&mut w)).is_some());
        assert!(s.is_fired());
    }
}
