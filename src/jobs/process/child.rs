//! The worker process's side: [`serve_if_worker`], the hook a binary calls
//! first thing in `main`.
//!
//! The supervisor starts a worker by re-executing the server's own binary
//! (`/proc/self/exe`, same arguments) with [`WORKER_ENV`] set and its ends
//! of the job socket on fd 3 and the cancel socket on fd 4. In that process
//! the hook builds the router (the same routes in the same order as the
//! server's, so a route index means the same job on both sides), says
//! `Hello` with its routes (the supervisor checks them against the
//! server's), and then reads and runs one job at a time on its main thread:
//! `Job` in, `Done`/`Error`/`Stopped` out. A second socket (fd 4) carries
//! `Cancel` frames to a thread of their own, so a cancel reaches the running
//! job's token while it runs. When the socket closes (the server is gone)
//! the worker returns; if the server dies first, the kernel kills the worker
//! (PR_SET_PDEATHSIG, set before exec).

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use super::frame::{decode, encode, Frame};
use crate::jobs::worker::{install_panic_hook, run_caught};
use crate::jobs::{mark_worker, CancelToken, JobContext, JobInput, JobState};
use crate::router::{Router, Work};

/// Set in a worker's environment to the fd numbers of its job socket and
/// its cancel socket, e.g. `3,4`.
pub const WORKER_ENV: &str = "HEAVYLIFT_WORKER_FDS";
/// Set to the `--job-memory` byte count when there is one.
pub const MEMORY_ENV: &str = "HEAVYLIFT_WORKER_MEMORY";

/// In a worker process (started by a server under `--isolation process`),
/// serves jobs from `make_router()`'s routes until the server goes away and
/// returns the exit code; anywhere else returns `None` at once without
/// calling `make_router`. Call it first in `main`, before any thread starts:
///
/// ```no_run
/// # fn my_router() -> heavylift::Router { heavylift::Router::new() }
/// fn main() -> std::process::ExitCode {
///     if let Some(code) = heavylift::worker::serve_if_worker(my_router) {
///         return code;
///     }
///     // ... parse flags, Server::start(config, my_router()), wait ...
///     std::process::ExitCode::SUCCESS
/// }
/// ```
///
/// The router must register the same routes in the same order as the one
/// given to `Server::start` (checks and body limits do not matter here:
/// they run on the server's I/O cores).
pub fn serve_if_worker(make_router: impl FnOnce() -> Router) -> Option<ExitCode> {
    let fds = std::env::var(WORKER_ENV).ok()?;
    let (jobs_fd, cancel_fd) = fds.split_once(',')?;
    let (jobs_fd, cancel_fd): (i32, i32) = (jobs_fd.parse().ok()?, cancel_fd.parse().ok()?);
    let memory = std::env::var(MEMORY_ENV)
        .ok()
        .and_then(|m| m.parse::<u64>().ok());
    // Not inherited by anything a job starts.
    std::env::remove_var(WORKER_ENV);
    std::env::remove_var(MEMORY_ENV);
    // SAFETY: the supervisor put the two sockets on these fds for this
    // process alone (dup2 before exec); nothing else in the process owns them.
    let (jobs, cancels) = unsafe {
        (
            UnixStream::from_raw_fd(jobs_fd),
            UnixStream::from_raw_fd(cancel_fd),
        )
    };
    Some(serve(jobs, cancels, make_router(), memory))
}

/// The job that runs now, and a cancel that arrived before it started.
#[derive(Default)]
struct Current {
    running: Option<(u64, CancelToken)>,
    cancelled: Option<u64>,
}

fn serve(socket: UnixStream, cancels: UnixStream, router: Router, memory: Option<u64>) -> ExitCode {
    mark_worker();
    install_panic_hook();
    // `ps` shows "hl-worker" rather than "exe" (from /proc/self/exe).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hl-worker".as_ptr()) };
    // Before anything else maps memory: the cap covers the reader thread's
    // stack too, so a cap too small to run in fails the start (and the
    // supervisor backs off) instead of the first job.
    if let Some(bytes) = memory {
        let cap = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit on a local struct.
        unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) };
    }
    let current = Arc::new(Mutex::new(Current::default()));
    let watching = current.clone();
    let spawned = std::thread::Builder::new()
        .name("hl-worker-cancel".into())
        .spawn(move || watch_cancels(FrameReader::new(cancels), &watching));
    if let Err(err) = spawned {
        eprintln!("heavylift worker: cannot start its cancel thread: {err}");
        return ExitCode::from(1);
    }
    let mut jobs = FrameReader::new(socket);
    let Ok(mut out) = jobs.socket.try_clone() else {
        return ExitCode::from(1);
    };
    let hello = Frame::Hello {
        version: super::PROTOCOL_VERSION,
        routes: super::route_names(&router),
    };
    if send(&mut out, &hello).is_err() {
        return ExitCode::from(1);
    }
    // Jobs are read and run on this thread: no hand-off on the job path.
    while let Some(frame) = jobs.next() {
        let Frame::Job {
            id,
            route,
            compute_core,
            shared_core,
            queued_micros,
            input,
        } = frame
        else {
            return ExitCode::from(1);
        };
        let token = CancelToken::new();
        token.start();
        {
            let mut cur = lock(&current);
            if cur.cancelled == Some(id) {
                token.cancel(JobState::Cancelled);
            }
            cur.running = Some((id, token.clone()));
        }
        let ctx = JobContext::new(
            compute_core as usize,
            &token,
            shared_core,
            std::time::Duration::from_micros(queued_micros),
        );
        let frame = run(&router, id, route, &input, &ctx);
        lock(&current).running = None;
        if send(&mut out, &frame).is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// Runs job `id` of route `route` on `input`: its answer as a frame.
fn run(router: &Router, id: u64, route: u32, input: &JobInput, ctx: &JobContext<'_>) -> Frame {
    let work = router.routes().get(route as usize).map(|r| &r.handler.work);
    let (Some(Work::Offload(run)) | Some(Work::Inline(run))) = work else {
        return Frame::Error {
            id,
            message: format!(
                "route {route} is not a job in the worker's router (does the worker hook build the server's router?)"
            ),
        };
    };
    match run_caught(|| run(input, ctx)) {
        Ok(Ok(response)) => Frame::Done { id, response },
        Ok(Err(_cancelled)) => Frame::Stopped { id },
        Err(message) => Frame::Error { id, message },
    }
}

fn lock(m: &Mutex<Current>) -> std::sync::MutexGuard<'_, Current> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn send(out: &mut UnixStream, frame: &Frame) -> std::io::Result<()> {
    let mut buf = Vec::new();
    encode(frame, &mut buf);
    out.write_all(&buf)
}

/// The cancel thread: each `Cancel` sets the running job's token (or is
/// kept for a job about to start). Returns when the socket closes or
/// carries anything else.
fn watch_cancels(mut cancels: FrameReader, current: &Mutex<Current>) {
    while let Some(Frame::Cancel { id }) = cancels.next() {
        let mut cur = lock(current);
        match &cur.running {
            Some((running, token)) if *running == id => {
                token.cancel(JobState::Cancelled);
            }
            _ => cur.cancelled = Some(id),
        }
    }
}

/// Blocking frame reader over one socket.
struct FrameReader {
    socket: UnixStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl FrameReader {
    fn new(socket: UnixStream) -> FrameReader {
        FrameReader {
            socket,
            buf: Vec::new(),
            chunk: vec![0; 64 << 10],
        }
    }

    /// The next frame; `None` at EOF, on a read error or on bytes that are
    /// not a frame (the supervisor is gone or broken: stop).
    fn next(&mut self) -> Option<Frame> {
        loop {
            match decode(&self.buf) {
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    return Some(frame);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            match self.socket.read(&mut self.chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}
