//! The binary's routes, registered through the public [`Router`] API: the
//! seed's `/fast`, `/slow` (inline, the blocking baseline), `/slow_threaded`
//! (offloaded) and `/fail` (a job that panics on purpose), `POST /gzip`
//! (an upload in, binary bytes out), and the two jobs that cannot be trusted:
//! `/spin` (busy, never looks at its cancel flag) and `/crash` (kills its own
//! process; served only under process isolation).

use std::time::{Duration, Instant};

use crate::config::Isolation;
use crate::http::query::{parse_id, parse_n, query_value};
use crate::http::Response;
use crate::jobs::gzip::{gzip, parse_level};
use crate::jobs::heavy::{heavy_lifting, HeavyReport};
use crate::jobs::{thread_cpu_time, Cancelled, JobContext, JobInput};
use crate::router::{fast, inline, offload, Request, Router};

/// The router the `heavylift` binary serves under thread isolation;
/// `max_job_body` is the body limit of `POST /gzip` (`--max-job-body`).
pub fn seed_router(max_job_body: u64) -> Router {
    seed_router_for(max_job_body, Isolation::Thread)
}

/// The router the `heavylift` binary serves under `isolation`. The routes
/// and their order are the same in every mode (a worker process builds the
/// same table, so route indices match); only `/crash`'s check differs.
pub fn seed_router_for(max_job_body: u64, isolation: Isolation) -> Router {
    fast_router()
        .get("/slow", inline(heavy_job).check(check_heavy))
        .get("/slow_threaded", offload(heavy_job).check(check_heavy))
        .get("/fail", offload(failing_job).check(check_id))
        .post(
            "/gzip",
            offload(gzip_job)
                .check(|req| match parse_level(req.query()) {
                    Ok(_) => Ok(()),
                    Err(why) => Err(Response::text(400, why)),
                })
                .max_body(max_job_body),
        )
        .get("/spin", offload(spin_job).check(check_spin))
        .get(
            "/crash",
            offload(crash_job).check(move |req| check_crash(req, isolation)),
        )
}

/// Only `/fast`: what the binary serves besides an external worker's routes
/// (`--worker-cmd`).
pub fn fast_router() -> Router {
    Router::new().get(
        "/fast",
        fast(|req| match parse_id(req.query()) {
            Ok(id) => Response::text(200, format!("fast result {id}")),
            Err(why) => Response::text(400, why),
        }),
    )
}

/// Longest `/spin` in seconds.
pub const MAX_SPIN_SECS: f64 = 60.0;

/// `secs` of `/spin`: a number of seconds, 0 < S <= 60, fractions allowed.
pub fn parse_spin_secs(query: &str) -> Result<f64, String> {
    let raw = query_value(query, "secs")
        .ok_or("missing secs: use ?secs=S (0 < S <= 60)")?
        .map_err(|why| format!("bad secs: {why}"))?;
    let secs = raw
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_SPIN_SECS)
        .filter(|_| raw.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    secs.ok_or_else(|| format!("bad secs {raw:?}: must be a number of seconds, 0 < S <= 60"))
}

fn check_spin(req: &Request<'_>) -> Result<(), Response> {
    check_id(req)?;
    parse_spin_secs(req.query()).map_err(|why| Response::text(400, why))?;
    Ok(())
}

/// `/spin?id=X&secs=S`: burns the CPU for S seconds and never looks at its
/// cancel flag, like a C library call or a regex that cannot be interrupted.
fn spin_job(input: &JobInput, ctx: &JobContext<'_>) -> Result<Response, Cancelled> {
    let (Ok(id), Ok(secs)) = (parse_id(&input.query), parse_spin_secs(&input.query)) else {
        return Ok(Response::text(400, "bad id or secs"));
    };
    let cpu_start = thread_cpu_time();
    let started = Instant::now();
    let until = Duration::from_secs_f64(secs);
    let mut x = 0u64;
    while started.elapsed() < until {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    std::hint::black_box(x);
    let took = started.elapsed().as_secs_f64();
    if input.accepts_json() {
        // The contract's text line, or (Accept: application/json) the same
        // fields as the heavy job's JSON: where it ran and where time went.
        let cpu = thread_cpu_time().saturating_sub(cpu_start).as_secs_f64();
        let id = serde_json::Value::from(id);
        return Ok(Response::json(
            200,
            format!(
                "{{\"id\": {id}, \"seconds\": {took:.3}, \"io_core\": {}, \"compute_core\": {}, \"queued_seconds\": {:.6}, \"cpu_seconds\": {cpu:.6}}}",
                input.io_core,
                ctx.compute_core,
                ctx.queued.as_secs_f64()
            ),
        ));
    }
    Ok(Response::text(
        200,
        format!("spin result {id} <--- {took:.3} s"),
    ))
}

/// How `/crash` kills its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashHow {
    /// `abort()`: SIGABRT.
    Abort,
    /// A write to an unmapped address: SIGSEGV.
    Segv,
    /// Unbounded recursion until the stack guard page is hit.
    Stack,
    /// Allocates until allocation fails (the allocation error aborts).
    Oom,
    /// `exit(3)`.
    Exit,
}

/// `how` of `/crash`.
pub fn parse_crash_how(query: &str) -> Result<CrashHow, String> {
    let raw = query_value(query, "how")
        .ok_or("missing how: use ?how=abort|segv|stack|oom|exit")?
        .map_err(|why| format!("bad how: {why}"))?;
    Ok(match &*raw {
        "abort" => CrashHow::Abort,
        "segv" => CrashHow::Segv,
        "stack" => CrashHow::Stack,
        "oom" => CrashHow::Oom,
        "exit" => CrashHow::Exit,
        other => {
            return Err(format!(
                "bad how {other:?}: use abort, segv, stack, oom or exit"
            ))
        }
    })
}

fn check_crash(req: &Request<'_>, isolation: Isolation) -> Result<(), Response> {
    check_id(req)?;
    parse_crash_how(req.query()).map_err(|why| Response::text(400, why))?;
    if isolation != Isolation::Process {
        return Err(Response::text(
            400,
            "/crash kills its own process: it runs only with --isolation process",
        ));
    }
    Ok(())
}

/// `/crash?id=X&how=H`: ends the process it runs in. Refuses (400) outside a
/// worker process, so a router built for the wrong mode cannot take a server
/// down with it.
fn crash_job(input: &JobInput, _ctx: &JobContext<'_>) -> Result<Response, Cancelled> {
    let Ok(how) = parse_crash_how(&input.query) else {
        return Ok(Response::text(400, "bad how"));
    };
    if !crate::jobs::in_worker() {
        return Ok(Response::text(
            400,
            "/crash kills its own process: it runs only with --isolation process",
        ));
    }
    crash(how)
}

fn crash(how: CrashHow) -> ! {
    match how {
        CrashHow::Abort => std::process::abort(),
        CrashHow::Segv => {
            // SAFETY: none; this is the point. Address 16 is never mapped on
            // Linux (mmap_min_addr), so the write faults with SIGSEGV.
            unsafe { std::ptr::write_volatile(std::hint::black_box(16usize) as *mut u8, 1) };
            // SAFETY: plain raise, in case the write did not fault.
            unsafe { libc::raise(libc::SIGSEGV) };
            std::process::abort()
        }
        CrashHow::Stack => {
            fn deeper(depth: u64) -> u64 {
                let frame = std::hint::black_box([depth; 64]);
                if std::hint::black_box(depth) == u64::MAX {
                    return 0;
                }
                deeper(depth + 1).wrapping_add(frame[7])
            }
            std::hint::black_box(deeper(0));
            std::process::abort()
        }
        CrashHow::Oom => {
            crate::jobs::cap_memory_if_unlimited(1 << 30);
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut chunk = Vec::<u8>::with_capacity(64 << 20);
                chunk.push(1);
                hoard.push(std::hint::black_box(chunk));
            }
        }
        CrashHow::Exit => std::process::exit(3),
    }
}

/// `POST /gzip[?level=L]`: the body, gzip-compressed (RFC 1952), checking
/// the cancel flag every 64 KiB of input.
fn gzip_job(input: &JobInput, ctx: &JobContext<'_>) -> Result<Response, Cancelled> {
    let level = parse_level(&input.query).unwrap_or(crate::jobs::gzip::DEFAULT_LEVEL);
    let compressed = gzip(&input.body, level, || ctx.should_stop())?;
    Ok(Response::bytes(200, "application/gzip", compressed))
}

/// `id` and `n` as the seed's routes take them, checked when the head arrives.
pub fn check_heavy(req: &Request<'_>) -> Result<(), Response> {
    check_id(req)?;
    parse_n(req.query()).map_err(|why| Response::text(400, why))?;
    Ok(())
}

fn check_id(req: &Request<'_>) -> Result<(), Response> {
    parse_id(req.query()).map_err(|why| Response::text(400, why))?;
    Ok(())
}

/// The seed's `heavy_lifting` job; `id` and `n` were checked on arrival.
pub fn heavy_job(input: &JobInput, ctx: &JobContext<'_>) -> Result<Response, Cancelled> {
    let (Ok(id), Ok(n)) = (parse_id(&input.query), parse_n(&input.query)) else {
        return Ok(Response::text(400, "bad id or n"));
    };
    let cpu_start = thread_cpu_time();
    let report = heavy_lifting(n, || ctx.should_stop())?;
    let timing = JobTiming {
        queued: ctx.queued,
        cpu: thread_cpu_time().saturating_sub(cpu_start),
    };
    Ok(render_heavy(
        &id,
        &report,
        input.accepts_json(),
        input.io_core,
        ctx.compute_core,
        timing,
    ))
}

fn failing_job(input: &JobInput, _ctx: &JobContext<'_>) -> Result<Response, Cancelled> {
    let id = parse_id(&input.query).unwrap_or_default();
    panic!("heavy_lifting failed on purpose for id {id}")
}

/// Where a job's time went: waiting in its queue, and on the CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobTiming {
    /// From dispatch to start.
    pub queued: std::time::Duration,
    /// The job's own CPU time (the compute thread's CPU clock).
    pub cpu: std::time::Duration,
}

/// `slow result X <--- S.SSS s`, or the contract's JSON document (with
/// `queued_seconds` and `cpu_seconds`, six decimals).
pub fn render_heavy(
    id: &str,
    r: &HeavyReport,
    json: bool,
    io_core: usize,
    compute_core: usize,
    timing: JobTiming,
) -> Response {
    if json {
        let id = serde_json::Value::from(id);
        Response::json(
            200,
            format!(
                "{{\"id\": {id}, \"n\": {}, \"seconds\": {:.3}, \"digits\": {}, \"io_core\": {io_core}, \"compute_core\": {compute_core}, \"queued_seconds\": {:.6}, \"cpu_seconds\": {:.6}}}",
                r.n,
                r.seconds,
                r.digits,
                timing.queued.as_secs_f64(),
                timing.cpu.as_secs_f64()
            ),
        )
    } else {
        Response::text(200, format!("slow result {id} <--- {:.3} s", r.seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_and_crash_parameters() {
        assert_eq!(parse_spin_secs("secs=0.25"), Ok(0.25));
        assert_eq!(parse_spin_secs("id=a&secs=60"), Ok(60.0));
        for bad in [
            "",
            "secs=",
            "secs=0",
            "secs=60.5",
            "secs=-1",
            "secs=inf",
            "secs=1e1",
            "secs=NaN",
        ] {
            assert!(parse_spin_secs(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_crash_how("how=segv"), Ok(CrashHow::Segv));
        assert_eq!(parse_crash_how("id=1&how=exit"), Ok(CrashHow::Exit));
        assert!(parse_crash_how("how=kill").is_err());
        assert!(parse_crash_how("").is_err());
    }

    #[test]
    fn crash_refuses_outside_a_worker() {
        let input = JobInput {
            query: "id=1&how=abort".into(),
            ..JobInput::default()
        };
        let token = crate::jobs::CancelToken::new();
        let ctx = JobContext::new(0, &token, false, std::time::Duration::ZERO);
        let r = crash_job(&input, &ctx).unwrap();
        assert_eq!(r.status, 400);
    }

    #[test]
    fn heavy_renders_text_and_json() {
        let r = HeavyReport {
            n: 10,
            digits: 6,
            seconds: 0.0123,
        };
        let timing = JobTiming {
            queued: std::time::Duration::from_micros(1500),
            cpu: std::time::Duration::from_millis(12),
        };
        let text = render_heavy("a b", &r, false, 0, 1, timing);
        assert_eq!(text.body, b"slow result a b <--- 0.012 s");
        let json = render_heavy("q\"", &r, true, 0, 1, timing);
        let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(v["id"], "q\"");
        assert_eq!(v["n"], 10);
        assert_eq!(v["digits"], 6);
        assert_eq!(v["io_core"], 0);
        assert_eq!(v["compute_core"], 1);
        assert!((v["seconds"].as_f64().unwrap() - 0.012).abs() < 1e-9);
        assert!((v["queued_seconds"].as_f64().unwrap() - 0.0015).abs() < 1e-9);
        assert!((v["cpu_seconds"].as_f64().unwrap() - 0.012).abs() < 1e-9);
    }
}
