//! Deadlines from the caller (contract: Deadlines and admission):
//! `x-envoy-expected-rq-timeout-ms` shortens an offloaded job's timeout,
//! never lengthens it, and a bad value is a 400 before anything runs.

use std::time::{Duration, Instant};

use crate::util::*;

const LONG: &str = "/slow_threaded?id=d&n=20000";

#[test]
fn the_callers_deadline_shortens_the_job_timeout() {
    let server = TestServer::start_with(|c| c.job_timeout = Duration::from_secs(20));
    let started = Instant::now();
    let reply = get(
        server.addr,
        LONG,
        &[("x-envoy-expected-rq-timeout-ms", "300")],
    );
    let took = started.elapsed();
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(reply.text().contains("0.300 s"), "{}", reply.text());
    assert!(
        took < Duration::from_secs(10),
        "504 at the caller's 0.3 s, not 20 s: {took:?}"
    );
    let stats = wait_for_stats(&server, 10, |s| s["jobs"]["timed_out"] == 1);
    assert_eq!(stats["jobs"]["timed_out"], 1, "{stats}");
}

#[test]
fn the_callers_deadline_never_lengthens_it() {
    let server = TestServer::start_with(|c| c.job_timeout = Duration::from_millis(400));
    let reply = get(
        server.addr,
        LONG,
        &[("X-Envoy-Expected-Rq-Timeout-Ms", "600000")],
    );
    assert_eq!(reply.status, 504);
    assert!(reply.text().contains("0.400 s"), "{}", reply.text());
}

#[test]
fn a_bad_deadline_is_400_and_nothing_runs() {
    let server = TestServer::start();
    for bad in ["0", "-5", "1.5", "abc", "", "10ms", "1 2"] {
        let reply = get(
            server.addr,
            LONG,
            &[("x-envoy-expected-rq-timeout-ms", bad)],
        );
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.text());
        assert!(reply.text().contains("x-envoy-expected-rq-timeout-ms"));
    }
    // A fast route ignores it; a generous one lets the job finish.
    let fast = get(
        server.addr,
        "/fast?id=1",
        &[("x-envoy-expected-rq-timeout-ms", "x")],
    );
    assert_eq!(fast.status, 200);
    let ok = get(
        server.addr,
        "/slow_threaded?id=ok&n=50",
        &[("x-envoy-expected-rq-timeout-ms", "60000")],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let stats = server.stats();
    assert_eq!(
        stats["jobs"]["accepted"], 1,
        "only the good one ran: {stats}"
    );
}

/// Per-job accounting in the JSON answer: `queued_seconds` (dispatch to
/// start) and `cpu_seconds` (the compute thread's CPU clock).
#[test]
fn answers_say_how_long_the_job_queued_and_its_cpu_time() {
    let server = TestServer::start();
    let json = [("Accept", "application/json")];
    let first = std::thread::spawn({
        let addr = server.addr;
        move || get(addr, "/slow_threaded?id=a&n=12000", &json)
    });
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["running"] == true);
    let second = get(server.addr, "/slow_threaded?id=b&n=200", &json);
    let first = first.join().expect("first request");
    let doc = |r: &Reply| -> serde_json::Value { serde_json::from_slice(&r.body).expect("JSON") };
    let (a, b) = (doc(&first), doc(&second));
    let secs =
        |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    // The job's CPU time is real and never more than its own wall time.
    assert!(secs(&a, "cpu_seconds") > 0.0, "{a}");
    assert!(secs(&a, "cpu_seconds") <= secs(&a, "seconds") + 0.01, "{a}");
    // The second waited behind the first: most of the first's run time.
    assert!(secs(&a, "queued_seconds") < 1.0, "{a}");
    assert!(
        secs(&b, "queued_seconds") >= secs(&a, "seconds") * 0.3,
        "queued {b} behind {a}"
    );
}
