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

use std::cell::RefCell;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::UnixStream;
use glommio::Task;

use super::frame::{decode, encode, encode_job, Frame};
use super::spawn::{kill_group, spawn, WorkerCommand};
use super::{WorkerProgram, NOT_THE_WORKERS};
use crate::http::Response;
use crate::jobs::worker::ComputeCore;
use crate::jobs::{Job, JobOutcome, JobState};

/// How often a running job's cancel token is looked at.
pub const CANCEL_POLL: Duration = Duration::from_millis(5);
/// How long a new worker may take to say `Hello`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after the first failed start, doubled per failure up to
/// [`MAX_BACKOFF`], so a worker that cannot start never makes us spin.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A worker that dies idle within this time of its start counts as a failed
/// start (back-off) rather than an ordinary death.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(1);
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

/// What the reader task saw on the worker's socket.
pub enum Event {
    Frame(Frame),
    /// EOF, a read error or bytes that are not a frame (the text says which).
    Closed(String),
}

/// One live worker process.
struct Worker {
    child: Child,
    pid: u32,
    /// Write side of the job socket (its own fd; the reader task has another).
    socket: UnixStream,
    /// The cancel socket of an own-binary worker (`Cancel` frames only, read
    /// by a thread of the worker's own while its main thread runs the job);
    /// `None`: cancels go in band on `socket` (external workers).
    cancels: Option<UnixStream>,
    events: LocalReceiver<Event>,
    /// Set by its `Hello` frame (with the expected routes).
    ready: bool,
    /// When it was started, for [`START_TIMEOUT`].
    started: Instant,
    /// Held so that dropping the worker cancels its reader.
    _reader: Task<()>,
    stderr: Option<Task<()>>,
    stderr_tail: Rc<RefCell<String>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        kill_group(self.pid);
        // After SIGKILL the wait is short; it reaps the zombie.
        let _ = self.child.wait();
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
    /// The worker's reader task reported this (`None`: the reader is gone).
    Event(Option<Event>),
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

    /// Runs one job in the worker; returns the outcome to send back, or
    /// `None` when the job was cancelled (its canceller answered and counted it).
    pub async fn run(&mut self, job: &Job) -> Option<JobOutcome> {
        if !self.ensure_ready(job).await {
            return None;
        }
        if !job.cancel.start() {
            return None;
        }
        let all_stats = self.core.stats.clone();
        let stats = &all_stats.compute[self.core.index];
        stats.running.store(true, Relaxed);
        let started = Instant::now();
        let outcome = self.run_started(job).await;
        let took = started.elapsed();
        stats.record_duration(took.as_secs_f64());
        all_stats
            .estimates
            .finished(self.core.index, job.route, took);
        stats.running.store(false, Relaxed);
        outcome
    }

    async fn run_started(&mut self, job: &Job) -> Option<JobOutcome> {
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
        let mut wire = Vec::with_capacity(job.input.body.len() + 512);
        let queued = Instant::now().saturating_duration_since(job.dispatched);
        encode_job(
            job.id,
            route,
            (self.core.cpu as u32, self.core.shared),
            u64::try_from(queued.as_micros()).unwrap_or(u64::MAX),
            &job.input,
            &mut wire,
        );
        if !self.send_bytes(&wire).await {
            return self.died_during(job, None).await;
        }
        let mut kill_at: Option<Instant> = None;
        loop {
            let Some(worker) = self.worker.as_mut() else {
                return self.died_during(job, None).await;
            };
            let event = future::or(async { Some(worker.events.recv().await) }, async {
                glommio::timer::sleep(CANCEL_POLL).await;
                None
            })
            .await;
            match event {
                Some(Some(Event::Frame(frame))) => match frame {
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
                        return self.died_during(job, Some(why)).await;
                    }
                },
                Some(Some(Event::Closed(why))) => return self.died_during(job, Some(why)).await,
                Some(None) => return self.died_during(job, None).await,
                None => {
                    // Its socket may outlive it (a process it forked holds
                    // it): ask the kernel too, once per tick.
                    let exited = self
                        .worker
                        .as_mut()
                        .is_some_and(|w| matches!(w.child.try_wait(), Ok(Some(_))));
                    if exited {
                        return self.died_during(job, None).await;
                    }
                }
            }
            if !job.cancel.is_cancelled() {
                continue;
            }
            match kill_at {
                None => {
                    kill_at = Some(Instant::now() + self.settings.kill_grace);
                    // A failed send shows up as the worker's death next turn.
                    self.send_cancel(job.id).await;
                }
                Some(at) if Instant::now() >= at => {
                    self.kill_for(job);
                    return None;
                }
                Some(_) => {}
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
        self.worker = None; // Drop kills the group and reaps it.
        stats.worker_restarts.fetch_add(1, Relaxed);
        self.spawn();
    }

    /// The worker ended (or broke the protocol) during `job`: bury it, answer
    /// the job 500 unless its canceller already did, start a replacement.
    async fn died_during(&mut self, job: &Job, protocol: Option<String>) -> Option<JobOutcome> {
        let cause = self.bury(protocol).await;
        self.spawn();
        let stats = &self.core.stats.compute[self.core.index];
        stats.worker_restarts.fetch_add(1, Relaxed);
        job.cancel.finish(JobState::Failed).then(|| {
            stats.failed.fetch_add(1, Relaxed);
            JobOutcome::Panicked(format!("worker died: {}", cause.describe()))
        })
    }

    /// Reaps the current worker and names its cause of death (killing it
    /// first if it is alive but broke the protocol).
    async fn bury(&mut self, protocol: Option<String>) -> DeathCause {
        let Some(mut worker) = self.worker.take() else {
            return DeathCause::Protocol("no worker".into());
        };
        let status = reap(&mut worker.child, Duration::from_millis(500)).await;
        let cause = match status {
            Some(status) => {
                // Let the stderr reader take the last words (the process is
                // gone, so its EOF comes at once unless a child holds it).
                if let Some(task) = worker.stderr.take() {
                    future::or(task, glommio::timer::sleep(Duration::from_millis(200))).await;
                }
                let tail = worker.stderr_tail.borrow().clone();
                let cause = DeathCause::of(status, &tail);
                match self.settings.program.command {
                    WorkerCommand::Shell(_) => cause.through_shell(),
                    WorkerCommand::OwnBinary => cause,
                }
            }
            None => DeathCause::Protocol(
                protocol.unwrap_or_else(|| "closed its job socket while alive".into()),
            ),
        };
        log::warn!(
            "compute core {}: worker {} died: {}; starting another",
            self.core.cpu,
            worker.pid,
            cause.describe()
        );
        self.core.stats.compute[self.core.index].record_worker_death(cause.label());
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
                let idle_event = future::poll_once(worker.events.recv()).await;
                let exited = matches!(worker.child.try_wait(), Ok(Some(_)));
                match idle_event {
                    None if !exited => return true,
                    Some(event) => self.handle_idle(Idle::Event(event)).await,
                    None => self.handle_idle(Idle::Event(None)).await,
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
            let now = Instant::now();
            if self.next_start > now {
                glommio::timer::sleep(self.next_start - now).await;
            }
            return Idle::Start;
        };
        if worker.ready {
            return Idle::Event(worker.events.recv().await);
        }
        let left = (worker.started + START_TIMEOUT).saturating_duration_since(Instant::now());
        future::or(async { Idle::Event(worker.events.recv().await) }, async {
            glommio::timer::sleep(left).await;
            Idle::StartTimeout
        })
        .await
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
        if worker.ready {
            // A worker that dies this soon after its start is not healthy:
            // count it as a failed start, so one that exits right after its
            // Hello is retried with back-off instead of in a loop.
            let short_lived = worker.started.elapsed() < HEALTHY_AFTER;
            let why = match event {
                Idle::Event(Some(Event::Frame(other))) => Some(format!(
                    "unexpected frame {} while idle",
                    frame_name(&other)
                )),
                Idle::Event(Some(Event::Closed(why))) => Some(why),
                Idle::Event(None) => None,
                Idle::Start | Idle::StartTimeout => return,
            };
            self.bury(why).await;
            self.core.stats.compute[self.core.index]
                .worker_restarts
                .fetch_add(1, Relaxed);
            if short_lived {
                self.start_failures += 1;
                self.next_start = Instant::now() + backoff(self.start_failures);
            }
            return;
        }
        let failure = match event {
            Idle::Start => return,
            Idle::StartTimeout => match self.settings.program.command {
                WorkerCommand::OwnBinary => format!(
                    "no Hello within {START_TIMEOUT:?} (does main call heavylift::worker::serve_if_worker first?)"
                ),
                WorkerCommand::Shell(_) => format!("no Hello within {START_TIMEOUT:?}"),
            },
            Idle::Event(Some(Event::Frame(Frame::Hello { version, routes }))) => {
                match hello_mismatch(version, &routes, &self.settings.program.routes) {
                    None => {
                        worker.ready = true;
                        self.start_failures = 0;
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
            Idle::Event(Some(Event::Frame(other))) => {
                format!("sent {} before Hello", frame_name(&other))
            }
            Idle::Event(Some(Event::Closed(why))) => why,
            Idle::Event(None) => "closed its job socket".into(),
        };
        self.start_failed(failure).await;
    }

    async fn start_failed(&mut self, why: String) {
        let pid = self.worker.as_ref().map_or(0, |w| w.pid);
        let cause = self.bury(Some(why.clone())).await;
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

    /// Starts a worker (it says `Hello` later); a failure counts as a failed start.
    fn spawn(&mut self) {
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

    /// Sends `Cancel` on the cancel socket; a failure shows up as the
    /// worker's death on the job socket.
    async fn send_cancel(&mut self, id: u64) {
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        encode(&Frame::Cancel { id }, &mut buf);
        let channel = worker.cancels.as_mut().unwrap_or(&mut worker.socket);
        let _ = channel.write_all(&buf).await;
    }

    /// Writes encoded frames to the job socket; false when it cannot (the
    /// worker is gone).
    async fn send_bytes(&mut self, wire: &[u8]) -> bool {
        let Some(worker) = self.worker.as_mut() else {
            return false;
        };
        worker.socket.write_all(wire).await.is_ok()
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
const RESERVED_FIELDS: [&str; 8] = [
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
    let bad_value = |v: &str| v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
    if bad_value(&r.content_type) {
        return Err("content type has CR, LF or NUL".into());
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
            return Err(format!("header {name} has CR, LF or NUL in its value"));
        }
    }
    Ok(())
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

/// Starts the core's worker program pinned to `cpu` (see `spawn.rs`) and
/// the tasks that read its socket and its stderr.
fn spawn_worker(settings: &ProcessSettings, cpu: usize) -> std::io::Result<Worker> {
    let spawned = spawn(&settings.program.command, Some(cpu), settings.job_memory)?;
    let child = spawned.child;
    let pid = child.id();
    let reader = spawned.jobs.try_clone()?;
    // SAFETY: each fd comes from `into_raw_fd` of a socket we own; the
    // glommio stream takes it over.
    let glommio_stream =
        |s: std::os::unix::net::UnixStream| unsafe { UnixStream::from_raw_fd(s.into_raw_fd()) };
    let socket = glommio_stream(spawned.jobs);
    let reader = glommio_stream(reader);
    let cancels = spawned.cancels.map(glommio_stream);
    let err = glommio_stream(spawned.stderr);
    let (tx, events) = local_channel::new_bounded(4);
    let stderr_tail = Rc::new(RefCell::new(String::new()));
    let reader = glommio::spawn_local(read_events(reader, tx));
    let stderr = glommio::spawn_local(read_stderr(err, cpu, pid, stderr_tail.clone()));
    Ok(Worker {
        child,
        pid,
        socket,
        cancels,
        events,
        ready: false,
        started: Instant::now(),
        _reader: reader,
        stderr: Some(stderr),
        stderr_tail,
    })
}

/// Frames off the worker's socket into `tx`, until EOF or garbage.
async fn read_events(mut socket: UnixStream, tx: LocalSender<Event>) {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        loop {
            match decode(&buf) {
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    if tx.send(Event::Frame(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let _ = tx
                        .send(Event::Closed(format!("sent a bad frame: {err}")))
                        .await;
                    return;
                }
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) => {
                let _ = tx.send(Event::Closed("closed its job socket".into())).await;
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) => {
                let _ = tx.send(Event::Closed(format!("job socket: {err}"))).await;
                return;
            }
        }
    }
}

/// The worker's stderr, logged line by line; the last bytes are kept to
/// name a cause of death (Rust's allocation-failure and stack-overflow
/// messages).
async fn read_stderr(mut err: UnixStream, cpu: usize, pid: u32, tail: Rc<RefCell<String>>) {
    let mut chunk = vec![0u8; 8 << 10];
    let mut line = Vec::new();
    while let Ok(n) = err.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        for &b in &chunk[..n] {
            if b == b'\n' || line.len() >= 1024 {
                let text = String::from_utf8_lossy(&line).into_owned();
                if !text.trim().is_empty() {
                    log::warn!("compute core {cpu}: worker {pid}: {text}");
                }
                let mut t = tail.borrow_mut();
                t.push_str(&text);
                t.push('\n');
                if t.len() > STDERR_TAIL {
                    let cut = t.len() - STDERR_TAIL;
                    let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
                    t.drain(..cut);
                }
                line.clear();
            }
            if b != b'\n' {
                line.push(b);
            }
        }
    }
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
