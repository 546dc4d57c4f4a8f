//! One I/O executor: its SO_REUSEPORT listener, the accept loop, the
//! connection cap, and the drain on shutdown.
//!
//! `IoCore` is the core's shared context (`Rc`, never leaves its thread):
//! config, router, counters, the job dispatcher and the shutdown signal. Each
//! accepted connection becomes a task in the core's `Gate`, so shutdown can wait
//! for in-flight requests, bounded by the job timeout.
//!
//! On shutdown the listener is taken out of LISTEN with a plain `shutdown(2)`
//! before it is dropped: glommio's accept in flight holds a reference to the
//! socket until the ring cancels it, which after an exit happens in the
//! kernel's ring teardown, later. Without it a restart right after a SIGTERM
//! could still find the old listener on the port.

use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;

use super::connection;
use super::shutdown::Shutdown;
use super::timeouts::Timeouts;
use crate::config::ServeConfig;
use crate::jobs::dispatch::Dispatcher;
use crate::router::Router;
use crate::stats::Stats;

/// Everything a connection on this core may use.
pub struct IoCore {
    /// Index in `Stats::io`.
    pub index: usize,
    /// CPU number this executor is pinned to (reported as `io_core`).
    pub cpu: usize,
    pub config: ServeConfig,
    pub router: Arc<Router>,
    pub stats: Arc<Stats>,
    pub dispatcher: Dispatcher,
    pub shutdown: Rc<Shutdown>,
    /// Read deadlines of this core's connections (one sweeper, no timer per read).
    pub timeouts: Rc<Timeouts>,
    /// Open connections over all I/O cores, for `--max-connections`.
    pub open_total: Arc<AtomicUsize>,
    /// This core's connections that hold their request state (not parked;
    /// see `connection::serve`).
    pub warm: std::cell::Cell<usize>,
}

/// Holds one slot of the connection cap; gives it back on drop, whatever
/// way the connection ends.
struct ConnectionSlot(Rc<IoCore>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open_total.fetch_sub(1, Ordering::AcqRel);
        self.0.stats.io[self.0.index]
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionSlot {
    fn try_take(core: &Rc<IoCore>) -> Option<ConnectionSlot> {
        if core.open_total.fetch_add(1, Ordering::AcqRel) >= core.config.max_connections {
            core.open_total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        core.stats.io[core.index]
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot(core.clone()))
    }
}

/// Accepts until shutdown, then waits for open connections to finish their
/// in-flight requests (at most the job timeout plus a grace second).
/// `listen_fd` is `listener`'s descriptor (glommio does not expose it).
pub async fn run(core: Rc<IoCore>, listener: TcpListener, listen_fd: RawFd) {
    let gate = Gate::new();
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        // Shutdown first, so an accept that fails at once every time
        // cannot keep the loop from seeing it. This loop is the only taker
        // of its SO_REUSEPORT listener's queue: glommio (patch 6) tries a
        // non-blocking accept4 first and only then the ring's accept, which
        // nothing else can then race for a connection.
        let accepted = future::or(
            async {
                core.shutdown.wait().await;
                None
            },
            async { Some(listener.accept().await) },
        )
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                admit(&core, &gate, stream);
                // One accept per turn, as nginx does by default: while
                // connections keep arriving the accept completes at once and
                // this loop would not yield, so those it admits wait unserved.
                // Behind them in the run queue, each new connection gets its
                // request read and answered first (a saturated core, wrk -t4
                // -c64 churn on both CPUs: max latency 121 -> 34 ms, mean
                // 4.5 -> 3.7 ms).
                future::yield_now().await;
            }
            Some(Err(err)) if concerns_one_connection(&err) => {
                // That one connection failed (reset before the accept, say):
                // the next may not.
                log::debug!("I/O core {}: accept failed: {err}", core.cpu);
            }
            Some(Err(err)) => {
                // EMFILE and friends: back off instead of spinning, warn once a second.
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    log::warn!("I/O core {}: accept failed: {err}", core.cpu);
                    last_warning = Some(std::time::Instant::now());
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stop_listening(listen_fd, core.cpu);
    drop(listener);
    let bound = core.config.job_timeout + Duration::from_secs(1);
    let drained = future::or(async { gate.close().await.is_ok() }, async {
        glommio::timer::sleep(bound).await;
        false
    })
    .await;
    if !drained {
        log::warn!(
            "I/O core {}: connections still open after {bound:?}; closing them",
            core.cpu
        );
    }
}

/// Whether an accept failed for that one connection (accept(2)'s
/// ECONNABORTED, EPERM from a firewall rule, EPROTO, EINTR), so the next
/// accept may well succeed at once; anything else (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM, a listener gone bad) backs the loop off and warns.
fn concerns_one_connection(err: &glommio::GlommioError<()>) -> bool {
    match err {
        glommio::GlommioError::IoError(io) => matches!(
            io.raw_os_error(),
            Some(libc::ECONNABORTED | libc::EPERM | libc::EPROTO | libc::EINTR)
        ),
        _ => false,
    }
}

/// Takes the listener out of LISTEN at once, whoever else still holds a
/// reference to it (an io_uring accept), so the port is free for a new
/// server as soon as this one has exited. Connections still in the backlog,
/// never accepted, are reset.
fn stop_listening(listen_fd: RawFd, cpu: usize) {
    // SAFETY: `listen_fd` is the open listener's descriptor; shutdown(2)
    // neither closes nor invalidates it.
    if unsafe { libc::shutdown(listen_fd, libc::SHUT_RDWR) } != 0 {
        let err = std::io::Error::last_os_error();
        log::warn!("I/O core {cpu}: shutting the listener down failed: {err}");
    }
}

fn admit(core: &Rc<IoCore>, gate: &Gate, stream: TcpStream) {
    let Some(slot) = ConnectionSlot::try_take(core) else {
        log::debug!(
            "I/O core {}: --max-connections reached, closing a new connection",
            core.cpu
        );
        return; // dropping the stream closes it
    };
    // A pass of the gate rather than `Gate::spawn`, whose wrapper future
    // would hold a second copy of the connection's future (measured: a
    // 1.1 KiB task instead of one of about 550 B).
    let pass = match gate.enter() {
        Ok(pass) => pass,
        Err(err) => {
            log::debug!(
                "I/O core {}: not admitting a connection while stopping: {err}",
                core.cpu
            );
            return;
        }
    };
    let conn = connection::open(core.clone(), stream);
    glommio::spawn_local(async move {
        let _held = (slot, pass);
        connection::serve(conn).await;
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> glommio::GlommioError<()> {
        glommio::GlommioError::IoError(std::io::Error::from_raw_os_error(code))
    }

    #[test]
    fn only_an_error_of_one_connection_lets_the_accept_loop_go_on_at_once() {
        for code in [libc::ECONNABORTED, libc::EPERM, libc::EPROTO, libc::EINTR] {
            assert!(concerns_one_connection(&os(code)), "{code}");
        }
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EINVAL,
        ] {
            assert!(!concerns_one_connection(&os(code)), "{code}");
        }
    }
}
