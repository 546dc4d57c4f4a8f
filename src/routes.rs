//! The binary's routes, registered through the public [`Router`] API: the
//! seed's `/fast`, `/slow` (inline, the blocking baseline), `/slow_threaded`
//! (offloaded) and `/fail` (a job that panics on purpose), and `POST /gzip`
//! (an upload in, binary bytes out).

use crate::http::query::{parse_id, parse_n};
use crate::http::Response;
use crate::jobs::gzip::{gzip, parse_level};
use crate::jobs::heavy::{heavy_lifting, HeavyReport};
use crate::jobs::{thread_cpu_time, Cancelled, JobContext, JobInput};
use crate::router::{fast, inline, offload, Request, Router};

/// The router the `heavylift` binary serves; `max_job_body` is the body
/// limit of `POST /gzip` (`--max-job-body`).
pub fn seed_router(max_job_body: u64) -> Router {
    Router::new()
        .get(
            "/fast",
            fast(|req| match parse_id(req.query()) {
                Ok(id) => Response::text(200, format!("fast result {id}")),
                Err(why) => Response::text(400, why),
            }),
        )
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
