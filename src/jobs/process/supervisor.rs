//! The compute executor's side of process isolation: one [`Supervisor`] per
//! compute core owns that core's worker process, hands it each job, watches
//! the job's cancel token, and turns every way a worker can end into exactly
//! one outcome.
//!
//! Per job: make sure a worker is up and has said `Ready` (starting one,
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
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::UnixStream;
use glommio::Task;

use super::child::{MEMORY_ENV, WORKER_ENV};
use super::frame::{decode, encode, encode_job, Frame};
use crate::jobs::worker::ComputeCore;
use crate::jobs::{Job, JobOutcome, JobState};

/// How often a running job's cancel token is looked at.
pub const CANCEL_POLL: Duration = Duration::from_millis(5);
/// How long a new worker may take to say `Ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after the first failed start, doubled per failure up to
/// [`MAX_BACKOFF`], so a worker that cannot start never makes us spin.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bytes of a worker's stderr kept to name its cause of death.
const STDERR_TAIL: usize = 4096;
/// The fds the job socket and the cancel socket get in the worker.
const WORKER_FD: i32 = 3;
const CANCEL_FD: i32 = 4;

/// Process-isolation settings of a compute core (from `ServeConfig`).
#[derive(Debug, Clone, Copy)]
pub struct ProcessSettings {
    pub kill_grace: Duration,
    pub job_memory: Option<u64>,
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

    fn of(status: ExitStatus, stderr_tail: &str) -> DeathCause {
        if stderr_tail.contains("memory allocation of") {
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
enum Event {
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
    /// The cancel socket (`Cancel` frames only, read by a thread of the
    /// worker's own while its main thread runs the job).
    cancels: UnixStream,
    events: LocalReceiver<Event>,
    /// Set by its `Ready` frame.
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

/// SIGKILL to the worker's process group (it leads one), so anything a job
/// forked goes with it.
fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: plain kill(2) on a process group we created.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// One compute core's worker supervision; see the module docs.
pub struct Supervisor {
    core: ComputeCore,
    settings: ProcessSettings,
    worker: Option<Worker>,
    /// Failed starts in a row (reset by a `Ready`), for the back-off.
    start_failures: u32,
}

impl Supervisor {
    pub fn new(core: ComputeCore, settings: ProcessSettings) -> Supervisor {
        Supervisor {
            core,
            settings,
            worker: None,
            start_failures: 0,
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
        let mut wire = Vec::with_capacity(job.input.body.len() + 512);
        let queued = Instant::now().saturating_duration_since(job.dispatched);
        encode_job(
            job.id,
            job.route as u32,
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
                        return job.cancel.finish(JobState::Completed).then(|| {
                            stats.completed.fetch_add(1, Relaxed);
                            JobOutcome::Done(response)
                        });
                    }
                    Frame::Panicked { id, message } if id == job.id => {
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
                DeathCause::of(status, &tail)
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

    /// Makes sure a worker has said `Ready`; false if `job` was cancelled
    /// while it waited for one.
    async fn ensure_ready(&mut self, job: &Job) -> bool {
        loop {
            if job.cancel.is_cancelled() {
                return false;
            }
            let Some(worker) = self.worker.as_mut() else {
                if self.start_failures > 0 {
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << (self.start_failures - 1).min(10))
                        .min(MAX_BACKOFF);
                    glommio::timer::sleep(backoff).await;
                }
                self.spawn();
                continue;
            };
            if worker.ready {
                // A worker that died (or spoke) while idle is replaced now.
                let idle_event = future::poll_once(worker.events.recv()).await;
                let exited = matches!(worker.child.try_wait(), Ok(Some(_)));
                match idle_event {
                    None if !exited => return true,
                    Some(Some(Event::Frame(other))) => {
                        let why = format!("unexpected frame {} while idle", frame_name(&other));
                        self.bury(Some(why)).await;
                    }
                    Some(Some(Event::Closed(why))) => {
                        self.bury(Some(why)).await;
                    }
                    _ => {
                        self.bury(None).await;
                    }
                }
                self.core.stats.compute[self.core.index]
                    .worker_restarts
                    .fetch_add(1, Relaxed);
                continue;
            }
            let deadline = worker.started + START_TIMEOUT;
            let event = future::or(async { Some(worker.events.recv().await) }, async {
                glommio::timer::sleep(CANCEL_POLL.max(Duration::from_millis(20))).await;
                None
            })
            .await;
            let failure = match event {
                None if Instant::now() < deadline => continue,
                None => format!(
                    "no Ready within {START_TIMEOUT:?} (does main call heavylift::worker::serve_if_worker first?)"
                ),
                Some(Some(Event::Frame(Frame::Ready { pid, routes }))) => {
                    worker.ready = true;
                    self.start_failures = 0;
                    log::debug!(
                        "compute core {}: worker {pid} ready with {routes} routes",
                        self.core.cpu
                    );
                    continue;
                }
                Some(Some(Event::Frame(other))) => {
                    format!("sent {} before Ready", frame_name(&other))
                }
                Some(Some(Event::Closed(why))) => why,
                Some(None) => "closed its job socket".into(),
            };
            self.start_failed(failure).await;
        }
    }

    async fn start_failed(&mut self, why: String) {
        let pid = self.worker.as_ref().map_or(0, |w| w.pid);
        let cause = self.bury(Some(why.clone())).await;
        self.start_failures += 1;
        let stats = &self.core.stats.compute[self.core.index];
        stats.worker_start_failures.fetch_add(1, Relaxed);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.start_failures - 1).min(10))
            .min(MAX_BACKOFF);
        log::error!(
            "compute core {}: worker {pid} failed to start ({why}; {}); {} failures in a row, next try in {backoff:?}",
            self.core.cpu,
            cause.describe(),
            self.start_failures,
        );
    }

    /// Starts a worker (it says `Ready` later); a failure counts as a failed start.
    fn spawn(&mut self) {
        self.core.stats.compute[self.core.index]
            .worker_pid
            .store(0, Relaxed);
        match spawn_worker(self.core.cpu, self.settings.job_memory) {
            Ok(worker) => {
                self.core.stats.compute[self.core.index]
                    .worker_pid
                    .store(worker.pid, Relaxed);
                self.worker = Some(worker);
            }
            Err(err) => {
                self.start_failures += 1;
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
        let _ = worker.cancels.write_all(&buf).await;
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

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Job { .. } => "Job",
        Frame::Cancel { .. } => "Cancel",
        Frame::Ready { .. } => "Ready",
        Frame::Done { .. } => "Done",
        Frame::Panicked { .. } => "Panicked",
        Frame::Stopped { .. } => "Stopped",
    }
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

/// Starts `/proc/self/exe` with our own arguments as a worker pinned to
/// `cpu`: job socket on fd 3, stderr to a socket we read, its own process
/// group, SIGKILL when this thread dies. `std::process::Command` forks and
/// at once execs; only async-signal-safe calls run in between.
fn spawn_worker(cpu: usize, job_memory: Option<u64>) -> std::io::Result<Worker> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let (cancel_ours, cancel_theirs) = std::os::unix::net::UnixStream::pair()?;
    let (err_ours, err_theirs) = std::os::unix::net::UnixStream::pair()?;
    let ours_reader = ours.try_clone()?;
    let theirs_fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    let cancel_fd = std::os::fd::AsRawFd::as_raw_fd(&cancel_theirs);
    let parent = std::process::id() as libc::pid_t;
    let mut args = std::env::args_os();
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args)
        .env(WORKER_ENV, format!("{WORKER_FD},{CANCEL_FD}"))
        .stdin(Stdio::null())
        .stderr(Stdio::from(OwnedFd::from(err_theirs)));
    match job_memory {
        Some(bytes) => cmd.env(MEMORY_ENV, bytes.to_string()),
        None => cmd.env_remove(MEMORY_ENV),
    };
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe system calls on values captured by copy.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server died before the prctl: do not outlive it.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("server gone"));
            }
            libc::setpgid(0, 0);
            // Each fd is first moved above the targets (fcntl F_DUPFD), so
            // one dup2 cannot close the other's source.
            let high_jobs = libc::fcntl(theirs_fd, libc::F_DUPFD, 10);
            let high_cancel = libc::fcntl(cancel_fd, libc::F_DUPFD, 10);
            if high_jobs < 0
                || high_cancel < 0
                || libc::dup2(high_jobs, WORKER_FD) < 0
                || libc::dup2(high_cancel, CANCEL_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(high_jobs);
            libc::close(high_cancel);
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    drop(cancel_theirs);
    let pid = child.id();
    // SAFETY: each fd comes from `into_raw_fd` of a socket we own; the
    // glommio stream takes it over.
    let (socket, reader, cancels, err) = unsafe {
        (
            UnixStream::from_raw_fd(ours.into_raw_fd()),
            UnixStream::from_raw_fd(ours_reader.into_raw_fd()),
            UnixStream::from_raw_fd(cancel_ours.into_raw_fd()),
            UnixStream::from_raw_fd(err_ours.into_raw_fd()),
        )
    };
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
    }
}
