//! External workers (`--worker-cmd`): a program in any language that speaks
//! the frame protocol on its stdin/stdout (`docs/worker-protocol.md`).
//!
//! At start-up [`ExternalWorker::probe`] runs the command once, waits (at
//! most `supervisor::START_TIMEOUT`) for its `Hello`
//! and keeps the routes it announces; [`ExternalWorker::add_routes`] makes
//! each an offloaded GET and POST route. From then on each compute core's
//! supervisor runs its own copy of the command, which must announce the
//! same routes.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::{decode, Frame};
use super::spawn::{kill_group, spawn, WorkerCommand};
use super::supervisor::{DeathCause, START_TIMEOUT};
use crate::http::Response;
use crate::router::{offload, Router};

/// Most routes a worker may announce.
pub const MAX_ROUTES: usize = 1024;
/// Bytes of the probe's stderr shown in a start-up error.
const STDERR_SHOWN: usize = 2048;
/// How often a check that may be stopped (`probe_until`) looks at its flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// An external worker command and the routes it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalWorker {
    /// The shell command line (run with `/bin/sh -c`).
    pub command: String,
    /// The announced route paths, in `Hello` order.
    pub routes: Vec<String>,
}

impl ExternalWorker {
    /// Runs `command` once, reads its `Hello` (within 10 s), checks the
    /// routes and stops it. `job_memory` is applied as it will be to the
    /// real workers, so a cap too small to start in is found here.
    ///
    /// Errors: a one-paragraph reason (no `Hello` in time, an exit, bytes
    /// that are not a `Hello`, bad routes), with the tail of the command's
    /// stderr when it wrote any.
    ///
    /// It runs as a worker will: pinned to `cpu` (give the first compute
    /// core) with `HEAVYLIFT_COMPUTE_CORE` set, under `job_memory`.
    pub fn probe(
        command: &str,
        job_memory: Option<u64>,
        cpu: Option<usize>,
    ) -> Result<ExternalWorker, String> {
        Self::probe_within(command, job_memory, cpu, START_TIMEOUT, None)
            .map(|probed| probed.expect("no stop flag, so never stopped"))
    }

    /// [`ExternalWorker::probe`] that gives up when `stop` turns true (a
    /// signal came while the command was checked): `Ok(None)`, with the
    /// checked command's process group killed as after any check. `stop`
    /// is looked at every 50 ms while the Hello is awaited.
    pub fn probe_until(
        command: &str,
        job_memory: Option<u64>,
        cpu: Option<usize>,
        stop: &AtomicBool,
    ) -> Result<Option<ExternalWorker>, String> {
        Self::probe_within(command, job_memory, cpu, START_TIMEOUT, Some(stop))
    }

    fn probe_within(
        command: &str,
        job_memory: Option<u64>,
        cpu: Option<usize>,
        limit: Duration,
        stop: Option<&AtomicBool>,
    ) -> Result<Option<ExternalWorker>, String> {
        if command.trim().is_empty() {
            return Err("--worker-cmd is empty".into());
        }
        let program = WorkerCommand::Shell(command.to_owned());
        let name = format!("worker command {command:?}");
        let Some(routes) = probe_program(&program, &name, job_memory, cpu, limit, stop)? else {
            return Ok(None);
        };
        check_routes(&routes).map_err(|why| format!("{name}: {why}"))?;
        Ok(Some(ExternalWorker {
            command: command.to_owned(),
            routes,
        }))
    }

    /// `router` plus, for each announced path, an offloaded GET and POST
    /// route (bodies up to `max_body` bytes) whose job runs in the worker.
    /// A path the router already has shows up in [`Router::error`].
    pub fn add_routes(&self, mut router: Router, max_body: u64) -> Router {
        for path in &self.routes {
            // Never run in this process: under an external worker every
            // offloaded job goes to the worker (see `WorkerProgram`).
            let handler = offload(|_, _| {
                Ok(Response::text(
                    500,
                    "this route's job runs in the external worker",
                ))
            })
            .max_body(max_body);
            router = router.get(path, handler.clone()).post(path, handler);
        }
        router
    }
}

/// Checks that this binary starts as a worker (`--isolation process`
/// without `--worker-cmd`) under `job_memory` on `cpu`, as each compute
/// core's worker will: `Ok(true)` once it said `Hello`, `Ok(false)` when
/// `stop` turned true first. Errors: why it did not start (a cap too small
/// to start in, typically), as [`ExternalWorker::probe`] gives them.
pub fn check_own_worker(
    job_memory: Option<u64>,
    cpu: Option<usize>,
    stop: &AtomicBool,
) -> Result<bool, String> {
    let name = "a worker process (this binary, --isolation process)";
    probe_program(
        &WorkerCommand::OwnBinary,
        name,
        job_memory,
        cpu,
        START_TIMEOUT,
        Some(stop),
    )
    .map(|routes| routes.is_some())
}

/// Starts `program` once as a compute core's worker would run (pinned to
/// `cpu`, under `job_memory`), reads its `Hello` within `limit`, and stops
/// it (its whole process group). `Ok(Some(routes))`: the routes it
/// announced; `Ok(None)`: `stop` turned true first. Errors name the
/// program as `name` and give the reason (no `Hello` in time, an exit with
/// its cause, bytes that are not a `Hello`), a hint when `job_memory` was
/// set, and the tail of its stderr.
pub(crate) fn probe_program(
    program: &WorkerCommand,
    name: &str,
    job_memory: Option<u64>,
    cpu: Option<usize>,
    limit: Duration,
    stop: Option<&AtomicBool>,
) -> Result<Option<Vec<String>>, String> {
    let spawned =
        spawn(program, cpu, job_memory).map_err(|err| format!("cannot start {name}: {err}"))?;
    let mut child = spawned.child;
    let pid = child.id();
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let (collected, collector_done) = std::sync::mpsc::channel::<()>();
    {
        let tail = tail.clone();
        let mut stderr = spawned.stderr;
        std::thread::spawn(move || {
            let _done = collected;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.extend_from_slice(&chunk[..n]);
                if t.len() > STDERR_SHOWN {
                    let cut = t.len() - STDERR_SHOWN;
                    t.drain(..cut);
                }
            }
        });
    }
    let outcome = read_hello(spawned.jobs, limit, stop);
    // Give an exiting command a moment to be reaped with its status.
    let status = {
        let until = Instant::now() + Duration::from_millis(200);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if outcome.is_err() && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => break None,
            }
        }
    };
    kill_group(pid);
    let _ = child.wait();
    // The pipe closes once every process of the group is gone; a
    // process that left the group (setsid) may hold it open: then do not
    // wait for it.
    let _ = collector_done.recv_timeout(Duration::from_secs(1));
    let routes = match outcome {
        Ok(Some(routes)) => routes,
        Ok(None) => return Ok(None),
        Err(why) => {
            let why = match status {
                Some(status) => format!(
                    "{why} (it ended: {})",
                    DeathCause::of_command(status, "", program).describe()
                ),
                None => why,
            };
            let why = match job_memory {
                Some(bytes) => {
                    format!("{why}; it ran under --job-memory {bytes} bytes: is that too small?")
                }
                None => why,
            };
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            let tail = String::from_utf8_lossy(&tail);
            let tail = tail.trim_end();
            return Err(if tail.is_empty() {
                format!("{name}: {why}; it wrote nothing to stderr")
            } else {
                format!("{name}: {why}; its stderr ends:\n{tail}")
            });
        }
    };
    Ok(Some(routes))
}

/// Reads frames until a whole `Hello` is in, for at most `limit`; `None`
/// once `stop` is set.
fn read_hello(
    mut socket: std::os::unix::net::UnixStream,
    limit: Duration,
    stop: Option<&AtomicBool>,
) -> Result<Option<Vec<String>>, String> {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match decode(&buf) {
            Ok(Some((Frame::Hello { version, routes }, _))) => {
                if version != super::PROTOCOL_VERSION {
                    return Err(format!(
                        "its Hello speaks protocol version {version}; this server speaks {}",
                        super::PROTOCOL_VERSION
                    ));
                }
                return Ok(Some(routes));
            }
            Ok(Some((other, _))) => {
                return Err(format!(
                    "it sent a {} frame before its Hello",
                    super::supervisor::frame_name(&other)
                ))
            }
            Ok(None) => {}
            Err(err) => {
                let shown = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
                return Err(format!(
                    "it wrote bytes that are not a Hello frame ({err}: {shown:?}; does it print to stdout?)"
                ));
            }
        }
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no Hello within {} s", limit.as_secs_f64()));
        }
        let wait = match stop {
            Some(_) => left.min(STOP_POLL),
            None => left,
        };
        socket
            .set_read_timeout(Some(wait))
            .map_err(|err| format!("socket: {err}"))?;
        match socket.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err("it closed its stdout before its Hello".into()),
            Ok(0) => {
                let shown = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
                return Err(format!(
                    "it wrote {} bytes that are not a Hello frame ({shown:?}; does it print to stdout?) and closed its stdout",
                    buf.len()
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            // The loop tells a stop (checked first) from the deadline.
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(format!("reading its Hello: {err}")),
        }
    }
}

/// The announced routes must be 1..=[`MAX_ROUTES`] distinct absolute paths
/// of visible ASCII without `?` or `#` (requests are matched on their raw,
/// still percent-encoded path, so a route must be written as clients send
/// it), at most 1024 bytes each.
pub fn check_routes(routes: &[String]) -> Result<(), String> {
    if routes.is_empty() {
        return Err("its Hello announces no routes".into());
    }
    if routes.len() > MAX_ROUTES {
        return Err(format!(
            "its Hello announces {} routes; at most {MAX_ROUTES}",
            routes.len()
        ));
    }
    for (i, r) in routes.iter().enumerate() {
        let bad = |b: u8| !b.is_ascii_graphic() || b == b'?' || b == b'#';
        if !r.starts_with('/') || r.bytes().any(bad) || r.len() > 1024 {
            return Err(format!(
                "route {r:?} is not an absolute path of at most 1024 bytes of visible ASCII without ? or # (percent-encode others as clients send them)"
            ));
        }
        if routes[..i].contains(r) {
            return Err(format!("route {r:?} is announced twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_checked() {
        let ok = |v: &[&str]| check_routes(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&["/a", "/users/{id}"]).is_ok());
        assert!(ok(&[]).unwrap_err().contains("no routes"));
        assert!(ok(&["a"]).unwrap_err().contains("absolute path"));
        assert!(ok(&["/a b"]).unwrap_err().contains("absolute path"));
        for bad in ["/a?b", "/a#b", "/\u{e9}", "/a\u{7f}"] {
            assert!(ok(&[bad]).unwrap_err().contains("visible ASCII"), "{bad}");
        }
        assert!(ok(&["/caf%C3%A9/{id}"]).is_ok());
        assert!(ok(&["/a", "/a"]).unwrap_err().contains("twice"));
    }

    #[test]
    fn a_probe_reads_the_hello_or_says_why_not() {
        // A Hello written by printf: len 19, kind 3, version 1, one route "/hello".
        let hello = r"printf '\023\000\000\000\003\001\000\000\000\001\000\000\000\006\000\000\000/hello'; sleep 5";
        let w = ExternalWorker::probe_within(hello, None, None, Duration::from_secs(10), None)
            .unwrap()
            .unwrap();
        assert_eq!(w.routes, vec!["/hello".to_string()]);

        let err = ExternalWorker::probe_within(
            "echo oops >&2; exit 4",
            None,
            None,
            Duration::from_secs(10),
            None,
        )
        .unwrap_err();
        assert!(err.contains("exit status 4"), "{err}");
        assert!(err.contains("oops"), "{err}");

        // Stopped while it waits for a Hello that never comes: no answer,
        // well before the 10 s limit.
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let probed = std::thread::scope(|scope| {
            let probe = scope.spawn(|| {
                ExternalWorker::probe_within(
                    "sleep 30",
                    None,
                    None,
                    Duration::from_secs(10),
                    Some(&stop),
                )
            });
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            probe.join().unwrap()
        });
        assert!(
            matches!(probed, Ok(None)),
            "{:?}",
            probed.map(|w| w.map(|w| w.routes))
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let err = ExternalWorker::probe_within(
            "echo hello there",
            None,
            None,
            Duration::from_secs(10),
            None,
        )
        .unwrap_err();
        assert!(err.contains("not a Hello"), "{err}");

        let started = Instant::now();
        let err =
            ExternalWorker::probe_within("sleep 30", None, None, Duration::from_millis(300), None)
                .unwrap_err();
        assert!(err.contains("no Hello within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let err = ExternalWorker::probe_within("   ", None, None, Duration::from_secs(1), None)
            .unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }
}
