//! Starting and stopping a server: listeners, meshes, pinned executors.
//!
//! `Server::start` binds every I/O core's SO_REUSEPORT listener on the calling
//! thread first (so "address in use" and port 0 are settled once, before any
//! executor exists), builds the two partial meshes (jobs I/O -> compute,
//! results compute -> I/O), then spawns one pinned glommio executor per core
//! and waits until all of them have joined the meshes. `ServerHandle::stop`
//! and `join` end it: listeners close, in-flight requests finish (bounded by
//! the job timeout), compute cores exit once every job channel is closed.

pub mod connection;
mod fd_limit;
pub mod io_core;
mod port_holders;
pub mod shutdown;
pub mod timeouts;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::channels::channel_mesh::{MeshBuilder, Partial, Receivers, Role, Senders};
use glommio::net::TcpListener;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use socket2::{Domain, Socket, Type};

use crate::config::{Isolation, ServeConfig};
use crate::cores::ComputePriority;
use crate::error::{Error, Result};
use crate::jobs::dispatch::Dispatcher;
use crate::jobs::process::{ProcessSettings, WorkerProgram};
use crate::jobs::worker::{install_panic_hook, run_compute_core, ComputeCore};
use crate::jobs::{Done, Job};
use crate::router::Router;
use crate::stats::Stats;
use io_core::IoCore;
use port_holders::PortUse;
use shutdown::{relay_stop, wait_for_stop, Shutdown};
use timeouts::Timeouts;

/// Listen backlog of each I/O core's listener (further capped by somaxconn).
const BACKLOG: i32 = 1024;
/// How often executors check their share of the preemption budget: low, so a
/// busy core still notices channel messages and timers within a millisecond.
/// Compute cores (and both roles on a shared core) use it.
const PREEMPT_TIMER: Duration = Duration::from_millis(1);
/// Preempt timer of I/O cores on a layout with reserved compute cores. Their
/// tasks are short, so the timer never has to cut one off; it is only re-armed
/// on every loop turn. Longer than the kernel tick (4 ms at HZ=250), re-arming
/// it stops reprogramming the CPU's timer each turn: the offload round trip at
/// one connection went from ~90 to ~63 us at p50 (bench-results/, issue #7).
const IO_PREEMPT_TIMER: Duration = Duration::from_millis(5);
/// How long an idle executor keeps polling before it parks, when I/O and
/// compute have CPUs of their own. A job (or its result) arriving within that
/// window skips the eventfd wake-up and the membarrier of parking (when the
/// spin came in, on a quieter VM: the offload round trip went from ~100 to
/// ~25 us at p50). While it polls, an executor yields its CPU to any thread
/// that wants it, and parks once another thread keeps it (glommio patch
/// 18), so a spin does not hold off a thread sharing the CPU. Idle cost:
/// an I/O core wakes each `shutdown::STOP_POLL` (50 ms) and each timeout
/// sweep (at most 100 ms), a compute core each `WAKE_TICK` (100 ms), and
/// each then polls this long (a compute core's longer spin also follows
/// each job). Never on a shared core, where polling would take the CPU
/// from the other role.
pub(crate) const SPIN_BEFORE_PARK: Duration = Duration::from_micros(100);
/// A compute executor's spin before parking: longer than an I/O core's, so
/// that at one connection it is still awake when the next job comes (one
/// round trip through the client later); a parked one takes ~60 us to wake
/// on the 2-core VM. With the spin's yield and no per-turn throughput timer
/// (glommio patch 18) the offload round trip at one connection went from a
/// p50 of 101 us to 43 us (medians of 6 runs; `vendor/glommio/HEAVYLIFT.md`
/// item 18).
pub(crate) const COMPUTE_SPIN_BEFORE_PARK: Duration = Duration::from_micros(200);
/// Registered buffer memory per executor; the network path does not use it,
/// and the default (10 MiB x 3 rings) trips RLIMIT_MEMLOCK for normal users.
const IO_MEMORY: usize = 64 << 10;
/// How long start-up may take before it is reported as failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry point of the library: see the module docs.
pub struct Server;

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    executors: Vec<(String, ExecutorJoinHandle<()>)>,
    /// How long `join` waits for the executors after `stop`.
    join_bound: Duration,
    /// Whether a compute executor stuck in a job nobody waits for may be
    /// left behind (thread isolation; in process isolation the supervisor
    /// kills the job's worker within `--kill-grace`, and must, so that no
    /// worker process outlives the server).
    may_leave_jobs: bool,
}

/// Extra time `join` allows beyond the drain bound (job timeout + 1 s).
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// True when every executor in `waiting` is a compute executor whose
/// core is inside a job: once the I/O executors are gone, such a job's
/// request has been answered (see [`ServerHandle::join`]).
fn only_abandoned_jobs_left(stats: &Stats, waiting: &[String]) -> bool {
    waiting.iter().all(|name| {
        name.strip_prefix("hl-compute-")
            .and_then(|cpu| cpu.parse::<usize>().ok())
            .is_some_and(|cpu| {
                stats.compute.iter().any(|c| {
                    c.cpu.load(Ordering::Relaxed) == cpu && c.running.load(Ordering::Relaxed)
                })
            })
    })
}

/// How long `join` waits for a compute executor still inside a job once
/// every I/O executor has stopped: a cancelled job that checks its token
/// stops at its next step (milliseconds; a `/slow_threaded` step of
/// n=20000 is about 2 ms); one that ignores it never will.
const ABANDONED_JOB_GRACE: Duration = Duration::from_secs(1);

impl Server {
    /// Starts every executor of `config.layout` serving `router`, and returns
    /// once all of them are ready. Errors (address in use, bad CPU, memlock)
    /// are reported here.
    pub fn start(config: ServeConfig, router: Router) -> Result<ServerHandle> {
        Server::start_unless(config, router, None)
    }

    /// [`Server::start`] that gives up while it waits for a busy port to be
    /// released (up to 5 s) once `stop()` says so: a `Bind` error of kind
    /// `Interrupted`.
    fn start_unless(
        mut config: ServeConfig,
        router: Router,
        stop: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<ServerHandle> {
        if let Some(conflict) = router.error() {
            return Err(Error::Config(format!("bad router: {conflict}")));
        }
        // The CLI's rule for --queue-depth, for a library's config too: the
        // jobs channels are sized from it, up front.
        if !(1..=crate::config::MAX_QUEUE_DEPTH).contains(&config.queue_depth) {
            return Err(Error::Config(format!(
                "queue_depth {} must be between 1 and {}",
                config.queue_depth,
                crate::config::MAX_QUEUE_DEPTH
            )));
        }
        let process = match (config.isolation, &config.external) {
            (Isolation::Thread, None) => None,
            (Isolation::Thread, Some(_)) => {
                return Err(Error::Config(
                    "an external worker needs Isolation::Process".into(),
                ))
            }
            (Isolation::Process, external) => {
                let program = match external {
                    Some(worker) => WorkerProgram::external(worker, &router)
                        .map_err(|why| Error::Config(format!("bad router: {why}")))?,
                    None => WorkerProgram::own(&router),
                };
                Some(ProcessSettings {
                    kill_grace: config.kill_grace,
                    job_memory: config.job_memory,
                    program,
                })
            }
        };
        config.max_connections = fd_limit::fit_connections(config.max_connections);
        install_panic_hook();
        let layout = config.layout.clone();
        if layout.shared {
            log::warn!(
                "no CPU is reserved for compute: jobs share CPU {} with I/O, so fast requests slow down while jobs run",
                layout.compute[0]
            );
        }
        let (addr, fds) = bind_listeners(config.listen, layout.io.len(), stop)?;
        let stats = Arc::new(Stats::new(&layout.io, &layout.compute, router.labels()));
        if config.isolation == Isolation::Process {
            // A cancelled job's worker is killed `--kill-grace` later.
            stats.estimates.set_stop_bound(config.kill_grace);
        }
        let n_io = layout.io.len();
        let n_compute = layout.compute.len();
        // Room for the waiting jobs and the one the compute core has not yet
        // taken off the channel, so an admitted job always fits, and for
        // `husk_room` more: a job cancelled while it waits frees its place
        // in the queue at once but stays in the channel, without its input,
        // until its compute core skips it (`Dispatcher::cancel`). Admission
        // refuses past that many such husks.
        let jobs_cap =
            (config.queue_depth + 1 + crate::jobs::dispatch::husk_room(config.queue_depth))
                .next_power_of_two();
        let results_cap = (config.queue_depth + 1).next_power_of_two().max(16);
        let jobs = MeshBuilder::<Job, Partial>::partial(n_io + n_compute, jobs_cap);
        let results = MeshBuilder::<Done, Partial>::partial(n_io + n_compute, results_cap);
        let stop = Arc::new(AtomicBool::new(false));
        let open_total = Arc::new(AtomicUsize::new(0));
        let router = Arc::new(router);
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let mut executors = Vec::new();
        let mut spawn_errors = Vec::new();
        // What every executor gets its own handle to. Mesh builders are cloned
        // here, on the main thread, never inside executors (GLOMMIO.md §3).
        let per_core = || {
            let ready = ready_tx.clone();
            (
                jobs.clone(),
                results.clone(),
                stop.clone(),
                stats.clone(),
                ready,
            )
        };

        for &cpu in &layout.compute {
            let (jobs, results, stop, stats, ready) = per_core();
            let shared = layout.shared;
            let priority = config.compute_priority;
            let process = process.clone();
            let name = format!("hl-compute-{cpu}");
            // Under process isolation the worker shares this CPU: the
            // supervisor turns the spin off while its worker runs a job
            // (`SpinOff`) and the executor spins only while it waits for jobs.
            let spawned =
                builder(cpu, &name, CoreRole::Compute, shared).spawn(move || async move {
                    if let Err(err) = priority.apply_to_current_thread() {
                        log::warn!("compute core {cpu}: --compute-priority {priority:?} not applied: {err}");
                    }
                    let joined =
                        join_meshes(jobs, results, (Role::Consumer, Role::Producer), &stop);
                    let Some(((_, jobs_rx), (results_tx, _))) = joined.await else {
                        let _ = ready.send(Err(format!(
                            "compute core {cpu} could not join the job meshes"
                        )));
                        return;
                    };
                    let Some(index) = jobs_rx.consumer_id() else {
                        let _ = ready.send(Err(format!("compute core {cpu} has no consumer id")));
                        return;
                    };
                    stats.compute[index].cpu.store(cpu, Ordering::Relaxed);
                    let _ = ready.send(Ok(()));
                    let core = ComputeCore {
                        index,
                        cpu,
                        shared,
                        stats,
                    };
                    run_compute_core(core, jobs_rx, results_tx, process).await;
                });
            match spawned {
                Ok(handle) => executors.push((name, handle)),
                Err(err) => spawn_errors.push(format!("{name}: {err}")),
            }
        }

        for (index, (&cpu, fd)) in layout.io.iter().zip(fds).enumerate() {
            let (jobs, results, stop, stats, ready) = per_core();
            let (config, router, open_total) = (config.clone(), router.clone(), open_total.clone());
            let name = format!("hl-io-{cpu}");
            let spawned =
                builder(cpu, &name, CoreRole::Io, layout.shared).spawn(move || async move {
                    // SAFETY: `fd` is a listening socket created by `bind_listeners`
                    // for this executor alone; ownership moves into the listener.
                    let listener = unsafe { TcpListener::from_raw_fd(fd) };
                    let joined =
                        join_meshes(jobs, results, (Role::Producer, Role::Consumer), &stop);
                    let Some(((jobs_tx, _), (_, mut results_rx))) = joined.await else {
                        let _ = ready
                            .send(Err(format!("I/O core {cpu} could not join the job meshes")));
                        return;
                    };
                    let Some(reply_to) = results_rx.consumer_id() else {
                        let _ = ready.send(Err(format!("I/O core {cpu} has no consumer id")));
                        return;
                    };
                    let dispatcher = Dispatcher::new(
                        index,
                        reply_to,
                        jobs_tx,
                        stats.clone(),
                        config.queue_depth,
                    );
                    let shutdown = Rc::new(Shutdown::default());
                    let timeouts = Timeouts::new(
                        config.header_timeout.min(config.idle_timeout),
                        shutdown.clone(),
                    );
                    glommio::spawn_local(timeouts.clone().sweep()).detach();
                    let core = Rc::new(IoCore {
                        index,
                        cpu,
                        config,
                        router,
                        stats,
                        dispatcher,
                        shutdown,
                        timeouts,
                        open_total,
                        warm: Default::default(),
                    });
                    for (_, stream) in results_rx.streams() {
                        let pending = core.dispatcher.pending.clone();
                        glommio::spawn_local(async move {
                            while let Some(done) = stream.recv().await {
                                pending.complete(done.id, done.outcome);
                            }
                        })
                        .detach();
                    }
                    glommio::spawn_local(relay_stop(stop, core.shutdown.clone())).detach();
                    let _ = ready.send(Ok(()));
                    io_core::run(core.clone(), listener, fd).await;
                    core.dispatcher.close();
                    core.stats.io_core_stopped();
                });
            match spawned {
                Ok(handle) => executors.push((name, handle)),
                Err(err) => {
                    // SAFETY: the closure never ran, so the fd is still ours to close.
                    drop(unsafe { StdListener::from_raw_fd(fd) });
                    spawn_errors.push(format!("{name}: {err}"));
                }
            }
        }
        drop(ready_tx);

        let handle = ServerHandle {
            addr,
            stop,
            stats,
            executors,
            // In process isolation a job past its timeout is killed
            // `--kill-grace` later, and its compute executor stops then.
            join_bound: config.job_timeout
                + JOIN_GRACE
                + match config.isolation {
                    Isolation::Thread => Duration::ZERO,
                    Isolation::Process => config.kill_grace,
                },
            may_leave_jobs: config.isolation == Isolation::Thread,
        };
        if !spawn_errors.is_empty() {
            handle.abort();
            return Err(Error::Executor(spawn_errors.join("; ")));
        }
        for _ in 0..(n_io + n_compute) {
            match ready_rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    handle.abort();
                    return Err(Error::Executor(why));
                }
                Err(_) => {
                    let why = handle.abort();
                    return Err(Error::Executor(if why.is_empty() {
                        "executors did not become ready (is RLIMIT_MEMLOCK at least 512 KiB?)"
                            .into()
                    } else {
                        why
                    }));
                }
            }
        }
        log::info!(
            "heavylift listening on http://{addr} (I/O cores {:?}, compute cores {:?}{}{})",
            layout.io,
            layout.compute,
            if layout.shared { ", shared" } else { "" },
            match config.compute_priority {
                ComputePriority::Normal => "",
                ComputePriority::Low => ", compute at nice 19",
                ComputePriority::Idle => ", compute at SCHED_IDLE",
            }
        );
        Ok(handle)
    }
}

type Joined<T> = (Senders<T>, Receivers<T>);

/// Joins both meshes at once (joining one after the other deadlocks against
/// an executor that joins in the other order); gives up if the server stops
/// first, as it does when another executor failed to start.
async fn join_meshes(
    jobs: MeshBuilder<Job, Partial>,
    results: MeshBuilder<Done, Partial>,
    (jobs_role, results_role): (Role, Role),
    stop: &AtomicBool,
) -> Option<(Joined<Job>, Joined<Done>)> {
    let both = async { Some(future::zip(jobs.join(jobs_role), results.join(results_role)).await) };
    let stopped = async {
        wait_for_stop(stop).await;
        None
    };
    match future::or(both, stopped).await? {
        (Ok(jobs), Ok(results)) => Some((jobs, results)),
        _ => None,
    }
}

/// What an executor runs, for its scheduler settings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CoreRole {
    Io,
    Compute,
}

/// One pinned executor; `shared` is true when something else needs its CPU
/// (`CoreLayout::shared`: I/O and compute on one CPU; or a compute core's
/// worker process), where the executor may not poll.
fn builder(cpu: usize, name: &str, role: CoreRole, shared: bool) -> LocalExecutorBuilder {
    let preempt = match role {
        CoreRole::Io if !shared => IO_PREEMPT_TIMER,
        _ => PREEMPT_TIMER,
    };
    let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(IO_MEMORY)
        .preempt_timer(preempt);
    match (shared, role) {
        (true, _) => builder,
        (false, CoreRole::Io) => builder.spin_before_park(SPIN_BEFORE_PARK),
        (false, CoreRole::Compute) => builder.spin_before_park(COMPUTE_SPIN_BEFORE_PARK),
    }
}

/// Binds `count` SO_REUSEPORT listeners with TCP_NODELAY (inherited by
/// their connections) on one address. A plain bind first
/// checks that nobody (another heavylift included) holds the address, and
/// settles port 0 to one real port for every listener.
fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    stop: Option<&mut dyn FnMut() -> bool>,
) -> Result<(SocketAddr, Vec<RawFd>)> {
    let bind_err = |source: std::io::Error| Error::Bind {
        addr: addr.to_string(),
        source,
    };
    let domain = Domain::for_address(addr);
    let probe = bind_probe(addr, stop).map_err(bind_err)?;
    let resolved = probe
        .local_addr()
        .map_err(bind_err)?
        .as_socket()
        .ok_or_else(|| bind_err(std::io::Error::other("not an IP address")))?;
    drop(probe);
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(domain, Type::STREAM, None).map_err(bind_err)?;
        socket.set_reuse_address(true).map_err(bind_err)?;
        socket.set_reuse_port(true).map_err(bind_err)?;
        // Linux copies TCP_NODELAY from a listener to every connection it
        // accepts, so this one setsockopt replaces one per connection.
        socket.set_nodelay(true).map_err(bind_err)?;
        socket.bind(&resolved.into()).map_err(bind_err)?;
        socket.listen(BACKLOG).map_err(bind_err)?;
        fds.push(StdListener::from(socket).into_raw_fd());
    }
    Ok((resolved, fds))
}

/// How long start-up waits for a listener that no process holds any more
/// (a server that just exited, its io_uring ring still being torn down) or
/// for whatever else made the port busy without listening on it.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often the probe bind is retried meanwhile.
const PORT_RETRY_EVERY: Duration = Duration::from_millis(50);

/// The plain (no SO_REUSEPORT) bind that proves the address free. "In use"
/// is final when a process listens there; otherwise (a dying listener, a
/// socket that only uses the port) it is retried for [`PORT_RELEASE_WAIT`],
/// unless `stop()` says so meanwhile (an `Interrupted` error).
fn bind_probe(
    addr: SocketAddr,
    mut stop: Option<&mut dyn FnMut() -> bool>,
) -> std::io::Result<Socket> {
    let deadline = Instant::now() + PORT_RELEASE_WAIT;
    loop {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        probe.set_reuse_address(true)?;
        let err = match probe.bind(&addr.into()) {
            Ok(()) => return Ok(probe),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => err,
            Err(err) => return Err(err),
        };
        let holder = port_holders::port_use(addr);
        if holder == PortUse::Live || Instant::now() >= deadline {
            return Err(err);
        }
        if stop.as_mut().is_some_and(|stop| stop()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "stopped while waiting for the port",
            ));
        }
        log::debug!("{addr} is busy without a live listener ({holder:?}); retrying");
        std::thread::sleep(PORT_RETRY_EVERY);
    }
}

impl Server {
    /// What a service's `main` does: starts serving `router`, blocks until
    /// SIGINT or SIGTERM, then stops gracefully (listeners close, in-flight
    /// requests finish within the job timeout) and returns. Errors: those of
    /// [`Server::start`] and [`ServerHandle::join`], or signal handlers that
    /// cannot be installed.
    pub fn run_until_signal(config: ServeConfig, router: Router) -> Result<()> {
        let signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
            .map_err(|e| Error::Executor(format!("cannot install signal handlers: {e}")))?;
        Server::run_until(config, router, signals)
    }

    /// [`Server::run_until_signal`] with the signals to stop on already
    /// caught, for a `main` that has work to do before it serves (checking
    /// a worker command) and must not lose a signal meanwhile: one that
    /// came already stops the server as soon as it has started.
    pub fn run_until(
        config: ServeConfig,
        router: Router,
        mut signals: signal_hook::iterator::Signals,
    ) -> Result<()> {
        // A signal already caught: stop before serving (nothing to drain).
        if let Some(signal) = signals.pending().next() {
            log::info!("signal {signal} received before the server started: stopped");
            return Ok(());
        }
        // One that comes while start-up waits for a busy port ends the wait.
        let mut signalled = || signals.pending().next().is_some();
        let server = match Server::start_unless(config, router, Some(&mut signalled)) {
            Err(Error::Bind { source, .. }) if source.kind() == std::io::ErrorKind::Interrupted => {
                log::info!("signal received while waiting for the port: stopped");
                return Ok(());
            }
            started => started?,
        };
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal} received: closing listeners, finishing in-flight requests");
        }
        server.stop();
        server.join()
    }
}

impl ServerHandle {
    /// The address every I/O core listens on (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every core's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Asks every core to stop: listeners close, in-flight requests finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for every executor to exit (call `stop` first), at most the job
    /// timeout plus a few seconds: in-flight requests are drained within the
    /// job timeout, and an executor that still has not exited by then (seen
    /// before glommio patch 13, when an executor parked with a runnable task
    /// and slept through its wake-up timers) is abandoned and reported, so a
    /// stop never hangs. A compute executor still inside a job once every
    /// I/O executor has stopped (every request answered) runs a job nobody
    /// waits for that ignores its cancel; in thread isolation, which cannot
    /// stop it (process isolation kills its worker within `--kill-grace`):
    /// after `ABANDONED_JOB_GRACE` (1 s) it is left behind with a warning, and
    /// the stop is still clean (the contract's exit 0).
    pub fn join(self) -> Result<()> {
        let (done_tx, done_rx) = mpsc::channel();
        let mut waiting = Vec::new();
        for (name, handle) in self.executors {
            let done = done_tx.clone();
            let joiner = std::thread::Builder::new()
                .name(format!("join-{name}"))
                .spawn({
                    let name = name.clone();
                    move || {
                        let result = handle.join().map_err(|err| err.to_string());
                        let _ = done.send((name, result));
                    }
                });
            match joiner {
                Ok(_) => waiting.push(name),
                Err(err) => return Err(Error::Stop(format!("cannot wait for {name}: {err}"))),
            }
        }
        drop(done_tx);
        let deadline = std::time::Instant::now() + self.join_bound;
        let mut failures = Vec::new();
        // Set once only compute executors inside a job are left (below).
        let mut grace_until = None;
        while !waiting.is_empty() {
            let stuck = self.may_leave_jobs && only_abandoned_jobs_left(&self.stats, &waiting);
            if stuck && grace_until.is_none() {
                grace_until = Some(std::time::Instant::now() + ABANDONED_JOB_GRACE);
            }
            let until = grace_until.map_or(deadline, |g: std::time::Instant| g.min(deadline));
            let left = until.saturating_duration_since(std::time::Instant::now());
            match done_rx.recv_timeout(left) {
                Ok((name, result)) => {
                    waiting.retain(|n| *n != name);
                    if let Err(err) = result {
                        failures.push(format!("{name}: {err}"));
                    }
                }
                Err(_)
                    if self.may_leave_jobs && only_abandoned_jobs_left(&self.stats, &waiting) =>
                {
                    // Every I/O core has stopped, so every request has its
                    // answer: what these still run is a job nobody waits
                    // for (timed out or hung up on) that ignores its
                    // cancel, which a thread cannot be made to drop. The
                    // process exits without it.
                    log::warn!(
                        "{} still run a job that ignores its cancel (its request was answered); stopping without waiting for it",
                        waiting.join(", ")
                    );
                    break;
                }
                Err(_) => {
                    log::warn!(
                        "executors {waiting:?} did not stop within {:?}; abandoning them",
                        self.join_bound
                    );
                    failures.push(format!(
                        "{} did not stop within {:?}",
                        waiting.join(", "),
                        self.join_bound
                    ));
                    break;
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Stop(failures.join("; ")))
        }
    }

    /// Stops whatever did start, after a failed start; returns the executors' errors.
    fn abort(self) -> String {
        self.stop();
        match self.join() {
            Ok(()) => String::new(),
            Err(err) => err.to_string(),
        }
    }
}
