//! The worker process's side: [`serve_if_worker`], the hook a binary calls
//! first thing in `main`.
//!
//! The supervisor starts a worker by re-executing the server's own binary
//! (`/proc/self/exe`, same arguments) with [`WORKER_ENV`] set and its end of
//! the job socket on fd 3. In that process the hook builds the router (the
//! same routes in the same order as the server's, so a route index means the
//! same job on both sides), says `Ready`, and then runs one job at a time on
//! its main thread: `Job` in, `Done`/`Panicked`/`Stopped` out. A reader
//! thread takes frames off the socket, so a `Cancel` reaches the running
//! job's token while it runs. When the socket closes (the server is gone)
//! the worker returns; if the server dies first, the kernel kills the worker
//! (PR_SET_PDEATHSIG, set before exec).

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};

use super::frame::{decode, encode, Frame};
use crate::jobs::worker::{install_panic_hook, run_caught};
use crate::jobs::{mark_worker, CancelToken, JobContext, JobInput, JobState};
use crate::router::{Router, Work};

/// Set (to the job socket's fd number) in a worker's environment.
pub const WORKER_ENV: &str = "HEAVYLIFT_WORKER_FD";
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
    let fd: i32 = std::env::var(WORKER_ENV).ok()?.parse().ok()?;
    let memory = std::env::var(MEMORY_ENV)
        .ok()
        .and_then(|m| m.parse::<u64>().ok());
    // Not inherited by anything a job starts.
    std::env::remove_var(WORKER_ENV);
    std::env::remove_var(MEMORY_ENV);
    // SAFETY: the supervisor put the job socket on this fd for this process
    // alone (dup2 before exec); nothing else in the process owns it.
    let socket = unsafe { UnixStream::from_raw_fd(fd) };
    Some(serve(socket, make_router(), memory))
}

/// The job that runs now, and a cancel that arrived before it started.
#[derive(Default)]
struct Current {
    running: Option<(u64, CancelToken)>,
    cancelled: Option<u64>,
}

struct JobMsg {
    id: u64,
    route: u32,
    compute_core: u32,
    shared_core: bool,
    input: JobInput,
}

fn serve(socket: UnixStream, router: Router, memory: Option<u64>) -> ExitCode {
    mark_worker();
    install_panic_hook();
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
    let Ok(reader) = socket.try_clone() else {
        return ExitCode::from(1);
    };
    let current = Arc::new(Mutex::new(Current::default()));
    let (jobs_tx, jobs_rx) = mpsc::channel::<JobMsg>();
    let reading = current.clone();
    let spawned = std::thread::Builder::new()
        .name("hl-worker-rx".into())
        .spawn(move || read_frames(reader, jobs_tx, &reading));
    if spawned.is_err() {
        return ExitCode::from(1);
    }
    let mut out = socket;
    let ready = Frame::Ready {
        pid: std::process::id(),
        routes: router.routes().len() as u32,
    };
    if send(&mut out, &ready).is_err() {
        return ExitCode::from(1);
    }
    for job in jobs_rx {
        let token = CancelToken::new();
        token.start();
        {
            let mut cur = lock(&current);
            if cur.cancelled == Some(job.id) {
                token.cancel(JobState::Cancelled);
            }
            cur.running = Some((job.id, token.clone()));
        }
        let frame = run(&router, &job, &token);
        lock(&current).running = None;
        if send(&mut out, &frame).is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn run(router: &Router, job: &JobMsg, token: &CancelToken) -> Frame {
    let id = job.id;
    let work = router
        .routes()
        .get(job.route as usize)
        .map(|r| &r.handler.work);
    let (Some(Work::Offload(run)) | Some(Work::Inline(run))) = work else {
        return Frame::Panicked {
            id,
            message: format!(
                "route {} is not a job in the worker's router (does the worker hook build the server's router?)",
                job.route
            ),
        };
    };
    let ctx = JobContext {
        compute_core: job.compute_core as usize,
        cancel: token,
        shared_core: job.shared_core,
    };
    match run_caught(|| run(&job.input, &ctx)) {
        Ok(Ok(response)) => Frame::Done { id, response },
        Ok(Err(_cancelled)) => Frame::Stopped { id },
        Err(message) => Frame::Panicked { id, message },
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

/// The reader thread: jobs to the main thread, cancels to the running
/// job's token. Returns (dropping `jobs`, which ends the main loop) when the
/// socket closes or carries something that is not a supervisor's frame.
fn read_frames(mut socket: UnixStream, jobs: mpsc::Sender<JobMsg>, current: &Mutex<Current>) {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        loop {
            match decode(&buf) {
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    match frame {
                        Frame::Job {
                            id,
                            route,
                            compute_core,
                            shared_core,
                            input,
                        } => {
                            let msg = JobMsg {
                                id,
                                route,
                                compute_core,
                                shared_core,
                                input,
                            };
                            if jobs.send(msg).is_err() {
                                return;
                            }
                        }
                        Frame::Cancel { id } => {
                            let mut cur = lock(current);
                            match &cur.running {
                                Some((running, token)) if *running == id => {
                                    token.cancel(JobState::Cancelled);
                                }
                                _ => cur.cancelled = Some(id),
                            }
                        }
                        _ => return,
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        match socket.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
