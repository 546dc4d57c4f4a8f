//! Read deadlines and the shutdown wake-up of one I/O core's connections,
//! without a glommio timer per read.
//!
//! Every connection holds one [`Watch`] for its lifetime. Before each read it
//! arms the watch with the read's deadline (header or idle timeout) and says
//! whether server shutdown may end the wait (only between requests). One
//! sweeper task per core ([`Timeouts::sweep`]) looks at every armed watch each
//! `tick` and wakes the connections whose deadline has passed; when shutdown
//! fires it wakes the idle ones at once. A read is then a race between the
//! socket and [`Watch::expired`].
//!
//! Why not a `glommio::timer::sleep` per read, as before: each one allocated,
//! read the clock three times, and inserted into and removed from glommio's
//! timer maps (a hash map and a B-tree that the reactor also splits on every
//! loop turn): about 3 % of a busy I/O core's time at ~150k requests/s. A
//! watch costs a few `Cell` writes per read. The price is precision: a
//! timeout fires up to one tick late, and the tick is a tenth of the shortest
//! configured read timeout, at most 100 ms.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future;

use super::shutdown::Shutdown;

/// Longest sweep interval, and the shortest.
const MAX_TICK: Duration = Duration::from_millis(100);
const MIN_TICK: Duration = Duration::from_millis(1);

/// Why a watched wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Deadline,
    Shutdown,
}

/// One connection's state, shared by its `Watch` and the sweeper.
#[derive(Default)]
struct Slot {
    /// When the current read times out; `None` while no read is armed.
    deadline: Cell<Option<Instant>>,
    /// Shutdown ends the current wait (the connection is between requests).
    idle: Cell<bool>,
    expired: Cell<Option<Expired>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    fn expire(&self, why: Expired) {
        if self.expired.get().is_none() {
            self.expired.set(Some(why));
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// The watches of one I/O core.
pub struct Timeouts {
    slots: RefCell<Vec<Option<Rc<Slot>>>>,
    free: RefCell<Vec<usize>>,
    shutdown: Rc<Shutdown>,
    tick: Duration,
}

impl Timeouts {
    /// `shortest` is the shortest read timeout the core uses.
    pub fn new(shortest: Duration, shutdown: Rc<Shutdown>) -> Rc<Timeouts> {
        Rc::new(Timeouts {
            slots: RefCell::default(),
            free: RefCell::default(),
            shutdown,
            tick: (shortest / 10).clamp(MIN_TICK, MAX_TICK),
        })
    }

    /// A new watch, unarmed, for one connection.
    pub fn watch(self: &Rc<Timeouts>) -> Watch {
        let slot = Rc::new(Slot::default());
        let mut slots = self.slots.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(index) => {
                slots[index] = Some(slot.clone());
                index
            }
            None => {
                slots.push(Some(slot.clone()));
                slots.len() - 1
            }
        };
        Watch {
            timeouts: self.clone(),
            index,
            slot,
        }
    }

    /// The sweeper: runs for the executor's lifetime (spawn it detached).
    pub async fn sweep(self: Rc<Timeouts>) {
        loop {
            if self.shutdown.is_fired() {
                glommio::timer::sleep(self.tick).await;
            } else {
                // Shutdown wakes idle connections now, not at the next tick.
                future::or(glommio::timer::sleep(self.tick), self.shutdown.wait()).await;
            }
            self.check(Instant::now());
        }
    }

    /// Expires every armed watch whose deadline is at or before `now`, and
    /// every idle one once shutdown has fired.
    fn check(&self, now: Instant) {
        let stopping = self.shutdown.is_fired();
        for slot in self.slots.borrow().iter().flatten() {
            if stopping && slot.idle.get() {
                slot.expire(Expired::Shutdown);
            } else if slot.deadline.get().is_some_and(|at| at <= now) {
                slot.expire(Expired::Deadline);
            }
        }
    }

    /// Watches in use (for tests).
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.slots.borrow().iter().flatten().count()
    }
}

/// One connection's handle on its core's [`Timeouts`]; frees its slot on drop.
pub struct Watch {
    timeouts: Rc<Timeouts>,
    index: usize,
    slot: Rc<Slot>,
}

impl Watch {
    /// Arms the watch for one wait: it expires at `deadline` (within a tick),
    /// or at shutdown when `idle`.
    pub fn arm(&self, deadline: Instant, idle: bool) {
        self.slot.deadline.set(Some(deadline));
        self.slot.idle.set(idle);
        self.slot.expired.set(None);
    }

    /// Ends the wait: the sweeper leaves this connection alone until the next `arm`.
    pub fn disarm(&self) {
        self.slot.deadline.set(None);
        self.slot.idle.set(false);
    }

    /// Runs `work` until it finishes (`Ok`) or this watch expires (`Err`):
    /// armed for `deadline`, and for shutdown when `idle`; disarmed after.
    pub async fn within<T>(
        &self,
        deadline: Instant,
        idle: bool,
        work: impl Future<Output = T>,
    ) -> Result<T, Expired> {
        self.arm(deadline, idle);
        let result = future::or(async { Ok(work.await) }, async {
            Err(self.expired().await)
        })
        .await;
        self.disarm();
        result
    }

    /// Resolves when the armed wait expires.
    pub fn expired(&self) -> ExpiredFuture<'_> {
        ExpiredFuture { watch: self }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.timeouts.slots.borrow_mut()[self.index] = None;
        self.timeouts.free.borrow_mut().push(self.index);
    }
}

/// Future of [`Watch::expired`].
pub struct ExpiredFuture<'a> {
    watch: &'a Watch,
}

impl Future for ExpiredFuture<'_> {
    type Output = Expired;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expired> {
        let slot = &self.watch.slot;
        if let Some(why) = slot.expired.get() {
            return Poll::Ready(why);
        }
        if slot.idle.get() && self.watch.timeouts.shutdown.is_fired() {
            return Poll::Ready(Expired::Shutdown);
        }
        let mut waker = slot.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    fn timeouts() -> Rc<Timeouts> {
        Timeouts::new(Duration::from_secs(1), Rc::new(Shutdown::default()))
    }

    #[test]
    fn tick_is_a_tenth_of_the_shortest_timeout_within_bounds() {
        let shutdown = Rc::new(Shutdown::default());
        let tick = |secs: f64| Timeouts::new(Duration::from_secs_f64(secs), shutdown.clone()).tick;
        assert_eq!(tick(0.5), Duration::from_millis(50));
        assert_eq!(tick(60.0), MAX_TICK);
        assert_eq!(tick(0.001), MIN_TICK);
    }

    #[test]
    fn a_deadline_expires_only_once_passed_and_only_while_armed() {
        let t = timeouts();
        let w = t.watch();
        let now = Instant::now();
        w.arm(now + Duration::from_secs(5), false);
        t.check(now + Duration::from_secs(4));
        assert!(block_on(poll_once(w.expired())).is_none());
        t.check(now + Duration::from_secs(5));
        assert_eq!(block_on(poll_once(w.expired())), Some(Expired::Deadline));
        // Re-arming clears it; a disarmed watch never expires.
        w.arm(now + Duration::from_secs(10), false);
        assert!(block_on(poll_once(w.expired())).is_none());
        w.disarm();
        t.check(now + Duration::from_secs(60));
        assert!(block_on(poll_once(w.expired())).is_none());
    }

    #[test]
    fn shutdown_ends_only_idle_waits() {
        let shutdown = Rc::new(Shutdown::default());
        let t = Timeouts::new(Duration::from_secs(1), shutdown.clone());
        let (idle, busy) = (t.watch(), t.watch());
        let later = Instant::now() + Duration::from_secs(60);
        idle.arm(later, true);
        busy.arm(later, false);
        shutdown.fire();
        assert_eq!(block_on(poll_once(idle.expired())), Some(Expired::Shutdown));
        t.check(Instant::now());
        assert!(block_on(poll_once(busy.expired())).is_none());
        // Armed idle after the fire: expires at once, no sweep needed.
        let late = t.watch();
        late.arm(later, true);
        assert_eq!(block_on(poll_once(late.expired())), Some(Expired::Shutdown));
    }

    #[test]
    fn slots_are_reused_after_drop() {
        let t = timeouts();
        let a = t.watch();
        let b = t.watch();
        assert_eq!(t.in_use(), 2);
        let a_index = a.index;
        drop(a);
        assert_eq!(t.in_use(), 1);
        let c = t.watch();
        assert_eq!(c.index, a_index);
        assert_eq!(t.slots.borrow().len(), 2);
        drop((b, c));
        assert_eq!(t.in_use(), 0);
    }
}
