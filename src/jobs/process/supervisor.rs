//! The compute executor's side of process isolation: one [`Supervisor`] per
//! compute core owns that core's worker process, hands it each job, watches
//! the job's cancel token, and turns every way a worker can end into exactly
//! one outcome.
//!
//! Per job: make sure a worker is up and has said `Hello` (starting one,
//! with back-off after failed starts) -> `CancelToken::start` -> `Job` frame
//! -> wait for the answer frame, the worker's death, or the token turning
//! cancelled (checked every [`CANCEL_POLL`] while a job runs; nothing ticks
//! while idle). On a cancel the worker gets a `Cancel` frame (its job's
//! `should_stop` turns true); a job still running `kill_grace` later gets its
//! worker's process group SIGKILLed and a new worker started. A death during
//! a job answers it 500 `worker died: <cause>`; jobs queued behind it wait
//! for the replacement. Counters: the token decides who counts the job
//! (here: completed or failed; the I/O core: timed out or cancelled).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::UnixStream;

use super::frame::{decode, encode, encode_job, Frame};
use super::spawn::{kill_group, spawn, WorkerCommand};
use super::{WorkerProgram, NOT_THE_WORKERS};
use crate::http::Response;
use crate::jobs::worker::ComputeCore;
use crate::jobs::{cpu_clock, Job, JobInput, JobOutcome, JobState};
use crate::server::COMPUTE_SPIN_BEFORE_PARK;

/// How often a running job's cancel token is looked at.
pub const CANCEL_POLL: Duration = Duration::from_millis(5);
/// How long a new worker may take to say `Hello`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after the first failed start, doubled per failure up to
/// [`MAX_BACKOFF`], so a worker that cannot start never makes us spin.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A worker that dies idle within this time of its start, before it has
/// finished a job, counts as a failed start (back-off) rather than an
/// ordinary death.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(1);
/// How long a worker whose socket ended is given to exit before it counts
/// as alive (and a protocol breaker): its exit status names the cause.
pub const EXIT_GRACE: Duration = Duration::from_millis(500);
/// The same for a worker that spoke out of protocol (bytes that are not a
/// frame, a frame it must not send): most likely alive, so it is killed
/// soon, and the jobs queued behind it wait this long instead of
/// [`EXIT_GRACE`] (measured on the 2-core VM: a `/garbage` job of
/// `tests/workers/faulty_worker.py` answered in 508 ms before, 25-31 ms
/// after). One crashing as it wrote still gets this long to report its
/// signal.
pub const BREAKER_GRACE: Duration = Duration::from_millis(20);
/// Bytes of a worker's stderr kept to name its cause of death.
const STDERR_TAIL: usize = 4096;
/// What a worker writes to stderr when an allocation fails and it exits
/// (the Python module does; `docs/worker-protocol.md`).
pub const OUT_OF_MEMORY_LINE: &str = "heavylift-worker: out of memory";

/// Process-isolation settings of a compute core (from `ServeConfig`).
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    pub kill_grace: Duration,
    pub job_memory: Option<u64>,
    /// What runs in the worker process.
    pub program: WorkerProgram,
}

/// Why a worker is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeathCause {
    /// An allocation failed (the allocator's error aborts the process).
    OutOfMemory,
    /// The job overflowed its stack.
    StackOverflow,
    /// Killed by this signal.
    Signal(i32),
    /// Exited with this status.
    Exit(i32),
    /// Broke the protocol (garbage, an unexpected frame, a closed socket).
    Protocol(String),
}

impl DeathCause {
    /// The text after `worker died: `.
    pub fn describe(&self) -> String {
        match self {
            DeathCause::OutOfMemory => "out of memory".into(),
            DeathCause::StackOverflow => "stack overflow (SIGABRT)".into(),
            DeathCause::Signal(s) => signal_name(*s),
            DeathCause::Exit(code) => format!("exit status {code}"),
            DeathCause::Protocol(why) => format!("protocol error: {why}"),
        }
    }

    /// The `cause` label of `heavylift_worker_deaths_total`.
    pub fn label(&self) -> &'static str {
        match self {
            DeathCause::OutOfMemory => "out_of_memory",
            DeathCause::StackOverflow => "stack_overflow",
            DeathCause::Signal(libc::SIGABRT) => "SIGABRT",
            DeathCause::Signal(libc::SIGSEGV) => "SIGSEGV",
            DeathCause::Signal(libc::SIGBUS) => "SIGBUS",
            DeathCause::Signal(libc::SIGKILL) => "SIGKILL",
            DeathCause::Signal(_) => "other_signal",
            DeathCause::Exit(_) => "exit",
            DeathCause::Protocol(_) => "protocol",
        }
    }

    /// The cause of a worker run through `/bin/sh -c`: a shell that did not
    /// exec its command exits 128 + N when the command died of signal N
    /// (POSIX, Shell Command Language 2.8.2), so that reads as the signal.
    pub fn through_shell(self) -> DeathCause {
        match self {
            DeathCause::Exit(code @ 129..=192) => DeathCause::Signal(code - 128),
            other => other,
        }
    }

    /// [`DeathCause::of`] for a worker run as `command`: through
    /// [`DeathCause::through_shell`] when a shell stays between.
    pub fn of_command(
        status: ExitStatus,
        stderr_tail: &str,
        command: &WorkerCommand,
    ) -> DeathCause {
        let cause = DeathCause::of(status, stderr_tail);
        if command.shell_stays() {
            cause.through_shell()
        } else {
            cause
        }
    }

    /// The cause from a worker's exit status and the last lines of its stderr.
    pub fn of(status: ExitStatus, stderr_tail: &str) -> DeathCause {
        if stderr_tail.contains("memory allocation of") || stderr_tail.contains(OUT_OF_MEMORY_LINE)
        {
            return DeathCause::OutOfMemory;
        }
        if stderr_tail.contains("has overflowed its stack") {
            return DeathCause::StackOverflow;
        }
        match (status.signal(), status.code()) {
            (Some(sig), _) => DeathCause::Signal(sig),
            (None, Some(code)) => DeathCause::Exit(code),
            (None, None) => DeathCause::Protocol("ended without a status".into()),
        }
    }
}

/// `SIGSEGV` and friends; other numbers as `signal N`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}

/// What the supervisor read from its worker's socket.
pub enum Event {
    Frame(Frame),
    /// EOF or a read error (the text says which).
    Closed(String),
    /// Bytes that are not a frame (the text says how).
    Broke(String),
}

/// How long a worker that ends with `event` (`None`: it exited, its socket
/// still open elsewhere) gets to exit by itself before it is killed: one
/// that sent something it must not (a frame out of turn, bytes that are not
/// a frame) is most likely alive, [`BREAKER_GRACE`]; one whose socket ended
/// is most likely exiting, [`EXIT_GRACE`].
fn exit_grace(event: Option<&Event>) -> Duration {
    match event {
        Some(Event::Frame(_) | Event::Broke(_)) => BREAKER_GRACE,
        Some(Event::Closed(_)) | None => EXIT_GRACE,
    }
}

/// One live worker process. Its sockets are read and written by the
/// supervisor itself, non-blocking, with poll(2) while a job runs: the
/// compute executor has nothing else to do then, and a wait in poll(2)
/// leaves the CPU to the worker with two syscalls per hand-off, where the
/// io_uring path cost about 30 us more per job (measured on the 2-core VM).
/// Between jobs glommio watches the sockets (`peek`), so an idle worker costs
/// nothing and its death or stderr is seen at once.
struct Worker {
    child: Child,
    pid: u32,
    /// Our end of the job socket (non-blocking).
    socket: std::os::unix::net::UnixStream,
    /// The cancel socket of an own-binary worker (`Cancel` frames only, read
    /// by a thread of the worker's own while its main thread runs the job);
    /// `None`: cancels go in band on `socket` (external workers).
    cancels: Option<std::os::unix::net::UnixStream>,
    /// The worker's stderr (non-blocking); `None` once it reached EOF.
    stderr: Option<std::os::unix::net::UnixStream>,
    /// Dups of `socket` and `stderr` for glommio, only to await them while idle.
    socket_watch: UnixStream,
    stderr_watch: UnixStream,
    /// Bytes read from `socket`, not yet a whole frame.
    inbuf: Vec<u8>,
    /// The stderr line being read, and the last [`STDERR_TAIL`] bytes.
    stderr_line: Vec<u8>,
    stderr_tail: String,
    /// Set by its `Hello` frame (with the expected routes).
    ready: bool,
    /// It finished a job and stayed: a death afterwards, however soon after
    /// its start, is not a failed start and gets no back-off.
    proven: bool,
    /// When it was started, for [`START_TIMEOUT`].
    started: Instant,
    /// Its compute core's CPU, for the log.
    cpu: usize,
    /// Its process CPU clock (`clock_getcpuclockid`), for jobs' CPU time.
    cpu_clock: Option<libc::clockid_t>,
}

impl Worker {
    /// The next frame, without waiting: `None` when no whole frame is in.
    fn poll_event(&mut self) -> Option<Event> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match decode(&self.inbuf) {
                Ok(Some((frame, used))) => {
                    self.inbuf.drain(..used);
                    return Some(Event::Frame(frame));
                }
                Ok(None) => {}
                Err(err) => return Some(Event::Broke(format!("sent a bad frame: {err}"))),
            }
            match (&self.socket).read(&mut chunk) {
                Ok(0) => return Some(Event::Closed("closed its job socket".into())),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Some(Event::Closed(format!("job socket: {err}"))),
            }
        }
    }

    /// Blocks this thread in poll(2) for at most `limit` until the job
    /// socket is readable (or writable, with `write`) or the worker wrote to
    /// stderr (which is read and logged here). True when the job socket is
    /// ready.
    fn wait(&mut self, write: bool, limit: Duration) -> bool {
        let mut fds = [
            libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN | if write { libc::POLLOUT } else { 0 },
                revents: 0,
            },
            libc::pollfd {
                fd: self.stderr.as_ref().map_or(-1, |e| e.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let millis = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: poll(2) on two pollfd structs we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
        if n <= 0 {
            return false;
        }
        if fds[1].revents != 0 {
            self.read_stderr();
        }
        fds[0].revents != 0
    }

    /// Reads what the worker wrote to stderr, logging it line by line and
    /// keeping the last bytes to name a cause of death (Rust's allocation
    /// failure and stack overflow messages, the Python module's out of
    /// memory line).
    fn read_stderr(&mut self) {
        let mut chunk = [0u8; 8 << 10];
        while let Some(err) = self.stderr.as_ref() {
            let n = match (&*err).read(&mut chunk) {
                Ok(0) => {
                    self.stderr = None;
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.stderr = None;
                    0
                }
            };
            for &b in &chunk[..n] {
                if b == b'\n' || self.stderr_line.len() >= 1024 {
                    self.end_stderr_line();
                }
                if b != b'\n' {
                    self.stderr_line.push(b);
                }
            }
        }
        if !self.stderr_line.is_empty() {
            self.end_stderr_line();
        }
    }

    fn end_stderr_line(&mut self) {
        let text = String::from_utf8_lossy(&self.stderr_line).into_owned();
        self.stderr_line.clear();
        if !text.trim().is_empty() {
            log::warn!("compute core {}: worker {}: {text}", self.cpu, self.pid);
        }
        let t = &mut self.stderr_tail;
        t.push_str(&text);
        t.push('\n');
        if t.len() > STDERR_TAIL {
            let cut = t.len() - STDERR_TAIL;
            let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
            t.drain(..cut);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        kill_group(self.pid);
        // After SIGKILL the wait is short; it reaps the zombie.
        let _ = self.child.wait();
    }
}

/// While it lives, the compute executor parks at once when it has nothing
/// to do, leaving the CPU to its worker (they share it); when it drops, the
/// executor spins [`COMPUTE_SPIN_BEFORE_PARK`] again before parking, as thread-mode
/// compute executors do, so a job that comes while the worker is idle finds
/// the executor awake. Measured on the 2-core VM: a woken idle vCPU costs
/// 20-40 us per cross-CPU hand-off (a socketpair ping-pong between CPUs has
/// a p50 of 51 us against 12 us on one CPU).
struct SpinOff {
    /// The executor was built without a spin (its CPU is shared with I/O).
    never_spins: bool,
}

impl SpinOff {
    fn new(never_spins: bool) -> SpinOff {
        glommio::executor().set_spin_before_park(None);
        SpinOff { never_spins }
    }
}

impl Drop for SpinOff {
    fn drop(&mut self) {
        if !self.never_spins {
            glommio::executor().set_spin_before_park(Some(COMPUTE_SPIN_BEFORE_PARK));
        }
    }
}

/// One compute core's worker supervision; see the module docs.
pub struct Supervisor {
    core: ComputeCore,
    settings: ProcessSettings,
    worker: Option<Worker>,
    /// Failed starts in a row (reset by a good `Hello`), for the back-off.
    start_failures: u32,
    /// No worker starts before this (the back-off after a failed start).
    next_start: Instant,
}

/// What [`Supervisor::watch`] saw.
pub enum Idle {
    /// No worker, and the back-off (if any) is over: start one.
    Start,
    /// The starting worker said nothing within [`START_TIMEOUT`].
    StartTimeout,
    /// The worker's job socket has bytes (or EOF) to read.
    Readable,
    /// The worker wrote to stderr (or closed it).
    Stderr,
}

/// The back-off after `failures` failed starts in a row: [`FIRST_BACKOFF`]
/// doubled per failure, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

impl Supervisor {
    pub fn new(core: ComputeCore, settings: ProcessSettings) -> Supervisor {
        Supervisor {
            core,
            settings,
            worker: None,
            start_failures: 0,
            next_start: Instant::now(),
        }
    }

    /// Starts the first worker now, so the first job does not wait for it.
    pub fn prestart(&mut self) {
        self.spawn();
    }

    /// Runs one job in the worker. `None` when it never started: it was
    /// cancelled while it waited, and its canceller gave back its slot.
    /// Otherwise the outcome to send back, `None` when the job was
    /// cancelled while it ran (its canceller answered and counted it).
    pub async fn run(&mut self, job: &Job) -> Option<Option<JobOutcome>> {
        if !self.ensure_ready(job).await || !job.cancel.start() {
            return None;
        }
        self.core
            .stats
            .estimates
            .dequeued(self.core.index, job.expected, Some(job.cancel.key()));
        let input = job.input.take().unwrap_or_default();
        let all_stats = self.core.stats.clone();
        let stats = &all_stats.compute[self.core.index];
        stats.running.store(true, Relaxed);
        let started = Instant::now();
        let queued = started.saturating_duration_since(job.dispatched);
        let (clock, cpu_before) = self.worker_cpu();
        let outcome = self.run_started(job, &input).await;
        if let Some(worker) = self.worker.as_mut().filter(|w| w.ready) {
            // The worker that took the job is still there: healthy.
            worker.proven = true;
            self.start_failures = 0;
        }
        let took = started.elapsed();
        // The same worker from start to end, or no CPU figure.
        let cpu = match (clock, self.worker_cpu()) {
            (Some(before), (Some(after), _)) if before == after => cpu_clock(after)
                .zip(cpu_before)
                .map(|(a, b)| a.saturating_sub(b)),
            _ => None,
        };
        all_stats.record_job(job.route, queued, took, cpu);
        stats.record_duration(took);
        all_stats
            .estimates
            .finished(self.core.index, job.route, took);
        stats.running.store(false, Relaxed);
        Some(outcome)
    }

    /// The current worker's CPU clock and its reading now.
    fn worker_cpu(&self) -> (Option<libc::clockid_t>, Option<Duration>) {
        let clock = self.worker.as_ref().and_then(|w| w.cpu_clock);
        (clock, clock.and_then(cpu_clock))
    }

    async fn run_started(&mut self, job: &Job, input: &JobInput) -> Option<JobOutcome> {
        let _parks = SpinOff::new(self.core.shared);
        let all_stats = self.core.stats.clone();
        let stats = &all_stats.compute[self.core.index];
        let route = self
            .settings
            .program
            .route_of
            .get(job.route)
            .copied()
            .unwrap_or(NOT_THE_WORKERS);
        if route == NOT_THE_WORKERS {
            return job.cancel.finish(JobState::Failed).then(|| {
                stats.failed.fetch_add(1, Relaxed);
                JobOutcome::Panicked(format!("route {} has no job in the worker", job.route))
            });
        }
        let mut wire = Vec::with_capacity(input.body.len() + 512);
        // From here until the answer the executor parks (in poll(2)) rather
        // than spinning: the worker needs this CPU.
        let queued = Instant::now().saturating_duration_since(job.dispatched);
        encode_job(
            job.id,
            route,
            (self.core.cpu as u32, self.core.shared),
            u64::try_from(queued.as_micros()).unwrap_or(u64::MAX),
            input,
            &mut wire,
        );
        let mut sent = 0;
        let mut kill_at: Option<Instant> = None;
        let mut cancel_sent = false;
        loop {
            let Some(worker) = self.worker.as_mut() else {
                return self.died_during(job, None, EXIT_GRACE).await;
            };
            while sent < wire.len() {
                match (&worker.socket).write(&wire[sent..]) {
                    Ok(n) => sent += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return self.died_during(job, None, EXIT_GRACE).await,
                }
            }
            let mut event = worker.poll_event();
            if event.is_none() && worker.wait(sent < wire.len(), CANCEL_POLL) {
                event = worker.poll_event();
            }
            match event {
                Some(Event::Frame(frame)) => match frame {
                    Frame::Done { id, response } if id == job.id => {
                        if let Err(why) = check_response(&response) {
                            return job.cancel.finish(JobState::Failed).then(|| {
                                stats.failed.fetch_add(1, Relaxed);
                                log::warn!(
                                    "compute core {}: worker sent a bad response to job {id}: {why}",
                                    self.core.cpu
                                );
                                JobOutcome::Panicked(format!("worker sent a bad response: {why}"))
                            });
                        }
                        return job.cancel.finish(JobState::Completed).then(|| {
                            stats.completed.fetch_add(1, Relaxed);
                            JobOutcome::Done(response)
                        });
                    }
                    Frame::Error { id, message } if id == job.id => {
                        return job.cancel.finish(JobState::Failed).then(|| {
                            stats.failed.fetch_add(1, Relaxed);
                            log::warn!("job failed on compute core {}: {message}", self.core.cpu);
                            JobOutcome::Panicked(message)
                        });
                    }
                    Frame::Stopped { id } if id == job.id && job.cancel.is_cancelled() => {
                        return None;
                    }
                    Frame::Stopped { id } if id == job.id => {
                        return job.cancel.finish(JobState::Failed).then(|| {
                            stats.failed.fetch_add(1, Relaxed);
                            JobOutcome::Panicked("job stopped without being cancelled".into())
                        });
                    }
                    other => {
                        let why = format!("unexpected frame {}", frame_name(&other));
                        return self.died_during(job, Some(why), BREAKER_GRACE).await;
                    }
                },
                Some(Event::Closed(why)) => {
                    return self.died_during(job, Some(why), EXIT_GRACE).await
                }
                Some(Event::Broke(why)) => {
                    return self.died_during(job, Some(why), BREAKER_GRACE).await
                }
                None => {
                    // Its socket may outlive it (a process it forked holds
                    // it): ask the kernel too.
                    if matches!(worker.child.try_wait(), Ok(Some(_))) {
                        return self.died_during(job, None, EXIT_GRACE).await;
                    }
                    // Let the executor's other tasks (the job forwarders,
                    // its timers) have a turn between two waits.
                    glommio::executor().yield_now().await;
                }
            }
            if !job.cancel.is_cancelled() {
                continue;
            }
            if kill_at.is_none() {
                kill_at = Some(Instant::now() + self.settings.kill_grace);
            }
            // The server is stopping and this job's request was answered
            // (504, or its client left): no grace, since nobody waits for the
            // job and the stop should not wait `--kill-grace` for it.
            if self.core.stats.io_stopped() {
                kill_at = Some(Instant::now());
            }
            // Only after the whole Job frame: a Cancel in band must not land
            // inside it (it goes out on the first turn after the frame is
            // done). A worker that has not read its job by the end of the
            // grace is killed all the same.
            if !cancel_sent && sent == wire.len() {
                cancel_sent = true;
                if !self.send_cancel(job.id) {
                    kill_at = Some(Instant::now());
                }
            }
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                self.kill_for(job);
                return None;
            }
        }
    }

    /// The grace is over and the job still runs: SIGKILL, count, replace.
    fn kill_for(&mut self, job: &Job) {
        let all_stats = self.core.stats.clone();
        let stats = &all_stats.compute[self.core.index];
        let reason = match job.cancel.state() {
            JobState::TimedOut => "timeout",
            _ => "hangup",
        };
        let pid = self.worker.as_ref().map_or(0, |w| w.pid);
        log::warn!(
            "compute core {}: job {} still running {:?} after its {reason}: killing worker {pid}",
            self.core.cpu,
            job.id,
            self.settings.kill_grace
        );
        stats.record_worker_kill(reason);
        // Dropping the worker kills its group and reaps it. No replacement
        // (nor its count) for a server that is stopping.
        self.worker = None;
        if !all_stats.io_stopped() {
            stats.worker_restarts.fetch_add(1, Relaxed);
            self.spawn();
        }
    }

    /// The worker ended (or broke the protocol) during `job`: bury it, answer
    /// the job 500 unless its canceller already did, start a replacement.
    async fn died_during(
        &mut self,
        job: &Job,
        protocol: Option<String>,
        grace: Duration,
    ) -> Option<JobOutcome> {
        let cause = self.bury(protocol, grace).await;
        self.spawn();
        let stats = &self.core.stats.compute[self.core.index];
        stats.worker_restarts.fetch_add(1, Relaxed);
        job.cancel.finish(JobState::Failed).then(|| {
            stats.failed.fetch_add(1, Relaxed);
            JobOutcome::Panicked(format!("worker died: {}", cause.describe()))
        })
    }

    /// Reaps the current worker and names its cause of death (killing it
    /// first if it is still alive `grace` later: then it broke the protocol).
    async fn bury(&mut self, protocol: Option<String>, grace: Duration) -> DeathCause {
        self.bury_quietly(protocol, grace, false).await
    }

    /// [`Supervisor::bury`]; `quiet` leaves the log line to the caller (a
    /// failed start logs its own, with the cause).
    async fn bury_quietly(
        &mut self,
        protocol: Option<String>,
        grace: Duration,
        quiet: bool,
    ) -> DeathCause {
        let Some(mut worker) = self.worker.take() else {
            return DeathCause::Protocol("no worker".into());
        };
        let status = reap(&mut worker.child, grace).await;
        let cause = match status {
            Some(status) => {
                // Its last words (the process is gone: what it wrote is all
                // in the socket now).
                worker.read_stderr();
                DeathCause::of_command(status, &worker.stderr_tail, &self.settings.program.command)
            }
            None => DeathCause::Protocol(
                protocol.unwrap_or_else(|| "closed its job socket while alive".into()),
            ),
        };
        if !quiet {
            log::warn!(
                "compute core {}: worker {} died: {}; starting another",
                self.core.cpu,
                worker.pid,
                cause.describe()
            );
        }
        let stats = &self.core.stats.compute[self.core.index];
        stats.record_worker_death(cause.label());
        // No live worker until the next start (`/stats` shows null).
        stats.worker_pid.store(0, Relaxed);
        drop(worker); // kills the group if it still lives, reaps
        cause
    }

    /// Makes sure a worker has said `Hello`; false if `job` was cancelled
    /// while it waited for one.
    async fn ensure_ready(&mut self, job: &Job) -> bool {
        loop {
            if job.cancel.is_cancelled() {
                return false;
            }
            if let Some(worker) = self.worker.as_mut().filter(|w| w.ready) {
                // A worker that died (or spoke) while idle is replaced now.
                let idle_event = worker.poll_event();
                let exited = matches!(worker.child.try_wait(), Ok(Some(_)));
                match idle_event {
                    None if !exited => return true,
                    event => self.idle_event(event).await,
                }
                continue;
            }
            let event = future::or(async { Some(self.watch().await) }, async {
                glommio::timer::sleep(CANCEL_POLL.max(Duration::from_millis(20))).await;
                None
            })
            .await;
            if let Some(event) = event {
                self.handle_idle(event).await;
            }
        }
    }

    /// Waits for what needs the supervisor while no job runs: time to start
    /// a worker (after the back-off), a starting worker's `Hello` or its
    /// start timeout, an idle worker's death or stray frame. Only awaits,
    /// changes nothing, so it may be dropped at any point (a job came); the
    /// caller passes what it returns to [`Supervisor::handle_idle`].
    pub async fn watch(&self) -> Idle {
        let Some(worker) = &self.worker else {
            // A stopping server starts no worker (`spawn`): nothing to wait
            // for here, and a ready `Start` would turn the caller's loop
            // into a spin that starves the tasks that end it.
            if self.core.stats.io_stopped() {
                future::pending::<()>().await;
            }
            let now = Instant::now();
            if self.next_start > now {
                glommio::timer::sleep(self.next_start - now).await;
            }
            return Idle::Start;
        };
        // A frame already read (one that came with the last answer) is
        // news now; a part of one waits for the rest on the socket.
        if !matches!(decode(&worker.inbuf), Ok(None)) {
            return Idle::Readable;
        }
        let readable = async {
            let _ = worker.socket_watch.peek(&mut [0u8; 1]).await;
            Idle::Readable
        };
        let stderr = async {
            if worker.stderr.is_none() {
                future::pending::<()>().await;
            }
            let _ = worker.stderr_watch.peek(&mut [0u8; 1]).await;
            Idle::Stderr
        };
        let start_timeout = async {
            if worker.ready {
                future::pending::<()>().await;
            }
            let left = (worker.started + START_TIMEOUT).saturating_duration_since(Instant::now());
            glommio::timer::sleep(left).await;
            Idle::StartTimeout
        };
        future::or(future::or(readable, stderr), start_timeout).await
    }

    /// Acts on what [`Supervisor::watch`] saw: start a worker, accept or
    /// refuse a `Hello`, bury a worker that died or broke the protocol
    /// while idle (a replacement starts at the next `watch`).
    pub async fn handle_idle(&mut self, event: Idle) {
        let Some(worker) = self.worker.as_mut() else {
            if matches!(event, Idle::Start) {
                self.spawn();
            }
            return;
        };
        match event {
            Idle::Start => {}
            Idle::Stderr => worker.read_stderr(),
            Idle::Readable => {
                if let Some(event) = worker.poll_event() {
                    self.idle_event(Some(event)).await;
                }
            }
            Idle::StartTimeout if !worker.ready => {
                let why = match self.settings.program.command {
                    WorkerCommand::OwnBinary => format!(
                        "no Hello within {START_TIMEOUT:?} (does main call heavylift::worker::serve_if_worker first?)"
                    ),
                    WorkerCommand::Shell(_) => format!("no Hello within {START_TIMEOUT:?}"),
                };
                self.start_failed(why, BREAKER_GRACE).await;
            }
            Idle::StartTimeout => {}
        }
    }

    /// A frame or the end of the socket while no job runs (`None`: the
    /// process exited but its socket is still open elsewhere).
    async fn idle_event(&mut self, event: Option<Event>) {
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        if worker.ready {
            // A worker that dies this soon after its start, before it has
            // done a job, is not healthy: count it as a failed start, so one
            // that exits right after its Hello is retried with back-off
            // instead of in a loop.
            let short_lived = !worker.proven && worker.started.elapsed() < HEALTHY_AFTER;
            let grace = exit_grace(event.as_ref());
            let why = match event {
                Some(Event::Frame(other)) => Some(format!(
                    "unexpected frame {} while idle",
                    frame_name(&other)
                )),
                Some(Event::Broke(why) | Event::Closed(why)) => Some(why),
                None => None,
            };
            self.bury(why, grace).await;
            self.core.stats.compute[self.core.index]
                .worker_restarts
                .fetch_add(1, Relaxed);
            if short_lived {
                // docs/worker-protocol.md: a failed start, counted as one.
                self.core.stats.compute[self.core.index]
                    .worker_start_failures
                    .fetch_add(1, Relaxed);
                self.start_failures += 1;
                self.next_start = Instant::now() + backoff(self.start_failures);
                log::warn!(
                    "compute core {}: the worker died within {HEALTHY_AFTER:?} of its start; next start in {:?}",
                    self.core.cpu,
                    backoff(self.start_failures)
                );
            } else {
                self.start_failures = 0;
            }
            return;
        }
        let grace = exit_grace(event.as_ref());
        let failure = match event {
            Some(Event::Frame(Frame::Hello { version, routes })) => {
                match hello_mismatch(version, &routes, &self.settings.program.routes) {
                    None => {
                        // The failure count is reset once it proves healthy
                        // (a job done, or a second alive), not at its Hello:
                        // one that dies right after must back off.
                        worker.ready = true;
                        // How long a replacement takes, for admission.
                        self.core
                            .stats
                            .estimates
                            .worker_started_in(worker.started.elapsed());
                        log::debug!(
                            "compute core {}: worker {} ready with {} routes",
                            self.core.cpu,
                            worker.pid,
                            routes.len()
                        );
                        return;
                    }
                    Some(why) => why,
                }
            }
            Some(Event::Frame(other)) => format!("sent {} before Hello", frame_name(&other)),
            Some(Event::Broke(why) | Event::Closed(why)) => why,
            None => "exited".into(),
        };
        self.start_failed(failure, grace).await;
    }

    async fn start_failed(&mut self, why: String, grace: Duration) {
        let pid = self.worker.as_ref().map_or(0, |w| w.pid);
        let cause = self.bury_quietly(Some(why.clone()), grace, true).await;
        self.start_failures += 1;
        let stats = &self.core.stats.compute[self.core.index];
        stats.worker_start_failures.fetch_add(1, Relaxed);
        let backoff = backoff(self.start_failures);
        self.next_start = Instant::now() + backoff;
        log::error!(
            "compute core {}: worker {pid} failed to start ({why}; {}); {} failures in a row, next try in {backoff:?}",
            self.core.cpu,
            cause.describe(),
            self.start_failures,
        );
    }

    /// Starts a worker (it says `Hello` later); a failure counts as a failed
    /// start. Nothing once the server is stopping (every I/O core is done).
    fn spawn(&mut self) {
        if self.core.stats.io_stopped() {
            return;
        }
        self.core.stats.compute[self.core.index]
            .worker_pid
            .store(0, Relaxed);
        match spawn_worker(&self.settings, self.core.cpu) {
            Ok(worker) => {
                self.core.stats.compute[self.core.index]
                    .worker_pid
                    .store(worker.pid, Relaxed);
                self.worker = Some(worker);
            }
            Err(err) => {
                self.start_failures += 1;
                self.next_start = Instant::now() + backoff(self.start_failures);
                self.core.stats.compute[self.core.index]
                    .worker_start_failures
                    .fetch_add(1, Relaxed);
                log::error!(
                    "compute core {}: cannot start a worker process: {err}",
                    self.core.cpu
                );
            }
        }
    }

    /// Sends `Cancel` (on the cancel socket, or in band); false if it could
    /// not be written whole (a full socket: the worker is not reading).
    fn send_cancel(&mut self, id: u64) -> bool {
        let Some(worker) = self.worker.as_mut() else {
            return false;
        };
        let mut buf = Vec::new();
        encode(&Frame::Cancel { id }, &mut buf);
        let channel = worker.cancels.as_ref().unwrap_or(&worker.socket);
        matches!((&*channel).write(&buf), Ok(n) if n == buf.len())
    }
}

pub(crate) fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Job { .. } => "Job",
        Frame::Cancel { .. } => "Cancel",
        Frame::Hello { .. } => "Hello",
        Frame::Done { .. } => "Done",
        Frame::Error { .. } => "Error",
        Frame::Stopped { .. } => "Stopped",
    }
}

/// Why a worker's `Hello` is not the one expected, if it is not.
fn hello_mismatch(version: u32, routes: &[String], expected: &[String]) -> Option<String> {
    if version != super::PROTOCOL_VERSION {
        return Some(format!(
            "its Hello speaks protocol version {version}, not {}",
            super::PROTOCOL_VERSION
        ));
    }
    if routes != expected {
        let show = |r: &[String]| {
            let mut s = r.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            if r.len() > 8 {
                s.push_str(", ...");
            }
            s
        };
        return Some(format!(
            "its Hello announces routes [{}], not the server's [{}]",
            show(routes),
            show(expected)
        ));
    }
    None
}

/// Header fields a worker may not set: framing and connection management
/// are the server's (RFC 9112 section 6; RFC 9110 section 7.6.1), and the
/// content type has its own field.
const RESERVED_FIELDS: [&str; 10] = [
    "date",
    "server",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "content-type",
];

/// A worker's response must be one this server can send as is: a final
/// status 200..=599 (no body on 204 or 304, RFC 9110 sections 15.3.5 and
/// 15.4.5), header names that are tokens and values without CR, LF or NUL
/// (RFC 9110 section 5.5), none of [`RESERVED_FIELDS`].
pub fn check_response(r: &Response) -> Result<(), String> {
    if !(200..=599).contains(&r.status) {
        return Err(format!("status {} is not 200..=599", r.status));
    }
    if matches!(r.status, 204 | 304) && !r.body.is_empty() {
        return Err(format!("status {} cannot have a body", r.status));
    }
    // RFC 9110 section 5.5: visible characters, spaces and tabs only.
    let bad_value = |v: &str| v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
    if bad_value(&r.content_type) {
        return Err("content type has a control character".into());
    }
    for (name, value) in &r.headers {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(format!("header name {name:?} is not a token"));
        }
        if RESERVED_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            return Err(format!("header {name} is the server's to write"));
        }
        if bad_value(value) {
            return Err(format!(
                "header {name} has a control character in its value"
            ));
        }
    }
    Ok(())
}

/// Process `pid`'s CPU clock (all its threads), readable with clock_gettime.
fn process_cpu_clock(pid: u32) -> Option<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock_getcpuclockid writes one clockid_t we own.
    let rc = unsafe { libc::clock_getcpuclockid(i32::try_from(pid).ok()?, &mut clock) };
    (rc == 0).then_some(clock)
}

/// Waits up to `limit` for `child` to exit; `None` if it still runs.
async fn reap(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                glommio::timer::sleep(Duration::from_millis(2)).await
            }
            _ => return None,
        }
    }
}

/// Starts the core's worker program pinned to `cpu` (see `spawn.rs`).
fn spawn_worker(settings: &ProcessSettings, cpu: usize) -> std::io::Result<Worker> {
    let spawned = spawn(&settings.program.command, Some(cpu), settings.job_memory)?;
    let mut child = spawned.child;
    let pid = child.id();
    let watches = (|| -> std::io::Result<(UnixStream, UnixStream)> {
        for s in [
            Some(&spawned.jobs),
            spawned.cancels.as_ref(),
            Some(&spawned.stderr),
        ]
        .into_iter()
        .flatten()
        {
            s.set_nonblocking(true)?;
        }
        // SAFETY: each fd comes from `into_raw_fd` of a socket we own (a
        // dup of ours); the glommio stream takes it over.
        let watch = |s: &std::os::unix::net::UnixStream| -> std::io::Result<UnixStream> {
            Ok(unsafe { UnixStream::from_raw_fd(s.try_clone()?.into_raw_fd()) })
        };
        Ok((watch(&spawned.jobs)?, watch(&spawned.stderr)?))
    })();
    // A worker we cannot watch (no fds left, say) is not left running.
    let (socket_watch, stderr_watch) = match watches {
        Ok(watches) => watches,
        Err(err) => {
            kill_group(pid);
            let _ = child.wait();
            return Err(err);
        }
    };
    Ok(Worker {
        socket_watch,
        stderr_watch,
        child,
        pid,
        socket: spawned.jobs,
        cancels: spawned.cancels,
        stderr: Some(spawned.stderr),
        inbuf: Vec::new(),
        stderr_line: Vec::new(),
        stderr_tail: String::new(),
        ready: false,
        proven: false,
        started: Instant::now(),
        cpu,
        // A shell between us and the worker would time only itself.
        cpu_clock: if settings.program.command.shell_stays() {
            None
        } else {
            process_cpu_clock(pid)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_named() {
        let signalled = |sig| ExitStatus::from_raw(sig);
        let exited = |code| ExitStatus::from_raw(code << 8);
        assert_eq!(
            DeathCause::of(signalled(libc::SIGSEGV), "").describe(),
            "SIGSEGV"
        );
        assert_eq!(
            DeathCause::of(signalled(libc::SIGABRT), "").describe(),
            "SIGABRT"
        );
        assert_eq!(DeathCause::of(exited(3), "").describe(), "exit status 3");
        let oom = "memory allocation of 67108864 bytes failed\n";
        assert_eq!(
            DeathCause::of(signalled(libc::SIGABRT), oom),
            DeathCause::OutOfMemory
        );
        assert_eq!(DeathCause::OutOfMemory.describe(), "out of memory");
        let stack =
            "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n";
        assert_eq!(
            DeathCause::of(signalled(libc::SIGABRT), stack).label(),
            "stack_overflow"
        );
        assert_eq!(signal_name(64), "signal 64");
        // sh -c reports a command's signal as 128 + N.
        assert_eq!(
            DeathCause::of(exited(134), "").through_shell().describe(),
            "SIGABRT"
        );
        assert_eq!(
            DeathCause::of(exited(3), "").through_shell().describe(),
            "exit status 3"
        );
    }
}
