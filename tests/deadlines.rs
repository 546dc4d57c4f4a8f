//! Deadlines from the caller (contract: Deadlines and admission):
//! `x-envoy-expected-rq-timeout-ms` shortens an offloaded job's timeout,
//! never lengthens it, and a bad value is a 400 before anything runs.

use std::time::{Duration, Instant};

use heavylift::ServeConfig;

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
    // Sent twice (RFC 9110 5.3: one comma-joined value), whichever is bad.
    for pair in [
        ["5000", "abc"],
        ["abc", "5000"],
        ["300", "5000"],
        ["300", "300"],
    ] {
        let reply = get(
            server.addr,
            LONG,
            &[
                ("x-envoy-expected-rq-timeout-ms", pair[0]),
                ("X-Envoy-Expected-Rq-Timeout-Ms", pair[1]),
            ],
        );
        assert_eq!(reply.status, 400, "{pair:?}: {}", reply.text());
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

/// CPU time is the job's own: a job that spins has about its run time of
/// CPU, one that sleeps almost none; `/metrics` has queue wait, run time and
/// CPU time per route as histograms.
#[test]
fn cpu_time_is_the_jobs_own_and_metrics_show_it_per_route() {
    let router = heavylift::routes::seed_router(1 << 20).get(
        "/nap",
        heavylift::offload(|_, _| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(heavylift::Response::text(200, "rested"))
        }),
    );
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
    let server = TestServer::start_router(config, router);
    let r = get(
        server.addr,
        "/spin?id=c&secs=1",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let (secs, cpu) = (
        v["seconds"].as_f64().unwrap(),
        v["cpu_seconds"].as_f64().unwrap(),
    );
    // Spinning: CPU time up to its wall time (on a quiet machine about all
    // of it; on a loaded one other processes take their part).
    assert!(secs >= 1.0, "{v}");
    assert!(cpu <= secs + 0.01 && cpu > 0.02, "{v}");
    assert_eq!(server.get("/nap").text(), "rested");

    let m = server.get("/metrics").text();
    let sample = |line: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{line} not in\n{m}"))
    };
    assert_eq!(
        sample("heavylift_job_cpu_seconds_count{route=\"spin\"}"),
        1.0
    );
    // The metric measures the same thread's clock around the whole job.
    let spin_cpu = sample("heavylift_job_cpu_seconds_sum{route=\"spin\"}");
    assert!((spin_cpu - cpu).abs() < 0.01, "{spin_cpu} vs {cpu}\n{m}");
    assert!(
        sample("heavylift_job_run_seconds_sum{route=\"nap\"}") >= 0.29,
        "{m}"
    );
    assert!(
        sample("heavylift_job_cpu_seconds_sum{route=\"nap\"}") < 0.05,
        "{m}"
    );
    assert_eq!(
        sample("heavylift_job_queue_seconds_count{route=\"nap\"}"),
        1.0
    );
    assert_eq!(
        sample("heavylift_job_run_seconds_bucket{route=\"nap\",le=\"0.25\"}"),
        0.0
    );
    assert_eq!(
        sample("heavylift_job_run_seconds_bucket{route=\"nap\",le=\"0.5\"}"),
        1.0
    );
    // Routes that never ran a job have no series.
    assert!(!m.contains("route=\"fast\",le="), "{m}");
}

/// Deadline-aware admission: once run times are known, a job whose deadline
/// falls before the work queued ahead could finish is answered 503 at once
/// (and never runs); `Retry-After` grows with that work; a generous
/// deadline is admitted.
#[test]
fn admission_refuses_what_cannot_start_in_time() {
    // A job timeout far past the queue, so only the caller's deadline binds.
    let server = TestServer::start_with(|c| c.job_timeout = Duration::from_secs(300));
    let long = "/slow_threaded?id=w&n=12000";
    // Teach the estimator what this route's jobs take.
    assert_eq!(get(server.addr, long, &[]).status, 200);
    // Five long jobs ahead: seconds of work.
    let mut ahead = Vec::new();
    for i in 0..5 {
        let mut s = connect(server.addr, SLOW);
        std::io::Write::write_all(
            &mut s,
            format!("GET /slow_threaded?id=ahead{i}&n=12000 HTTP/1.1\r\nHost: t\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        ahead.push(s);
    }
    wait_for_stats(&server, 10, |s| s["jobs"]["accepted"] == 6);
    let before = server.stats()["jobs"]["accepted"].clone();
    let started = Instant::now();
    let refused = get(
        server.addr,
        long,
        &[("x-envoy-expected-rq-timeout-ms", "500")],
    );
    let took = started.elapsed();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.text().contains("deadline"), "{}", refused.text());
    assert!(
        took < Duration::from_secs(2),
        "at once, not after the queue: {took:?}"
    );
    let after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((2..=60).contains(&after), "seconds of work ahead: {after}");
    let stats = server.stats();
    assert_eq!(
        stats["jobs"]["accepted"], before,
        "the refused job never queued: {stats}"
    );
    let wait = stats["compute_cores"][0]["expected_wait_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(wait > 1.0, "{stats}");
    // A deadline past the queue is admitted (it waits its turn).
    let generous = get(
        server.addr,
        "/slow_threaded?id=g&n=10",
        &[("x-envoy-expected-rq-timeout-ms", "280000")],
    );
    assert_eq!(generous.status, 200, "{}", generous.text());
    drop(ahead);
    let metrics = server.get("/metrics").text();
    let deadline_refusals: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("heavylift_admission_refusals_total{reason=\"deadline\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(deadline_refusals >= 1, "{metrics}");
    let stats = wait_for_stats(&server, 20, identity_holds);
    assert!(identity_holds(&stats), "{stats}");
}

/// Holds a request open on its own connection (its job queued or running).
fn hold(addr: std::net::SocketAddr, target: &str) -> std::net::TcpStream {
    let mut s = connect(addr, SLOW);
    std::io::Write::write_all(
        &mut s,
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s
}

fn retry_after(r: &Reply) -> u64 {
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {r:?}"))
}

/// `Retry-After` is the expected wait from measured run times: 1 s when
/// one short job must end first, many seconds with seconds of work queued.
#[test]
fn retry_after_grows_with_the_work_ahead() {
    let router = heavylift::Router::new()
        .get("/short", nap(0.3))
        .get("/long", nap(3.0));
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
    config.queue_depth = 1;
    let server = TestServer::start_router(config, router);
    // Teach both estimates (one run each).
    assert_eq!(server.get("/short").text(), "rested");
    assert_eq!(server.get("/long").text(), "rested");
    // One short job runs, one waits: the queue is full until the running
    // one ends, expected within its 0.3 s.
    let a = hold(server.addr, "/short");
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["running"] == true);
    let b = hold(server.addr, "/short");
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["queued"] == 1);
    let r = server.get("/short");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.text().contains("full"), "{r:?}");
    assert_eq!(retry_after(&r), 1, "{r:?}");
    drop((a, b));
    wait_for_stats(&server, 10, |s| {
        s["compute_cores"][0]["running"] == false && s["compute_cores"][0]["queued"] == 0
    });

    // One long job runs and two wait: about 8 s of work before a new job could
    // start, so a 100 ms deadline is refused with a long Retry-After.
    let server = {
        let router = heavylift::Router::new().get("/long", nap(3.0));
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
        config.queue_depth = 4;
        TestServer::start_router(config, router)
    };
    assert_eq!(server.get("/long").text(), "rested");
    let held: Vec<_> = (0..3).map(|_| hold(server.addr, "/long")).collect();
    wait_for_stats(&server, 10, |s| s["compute_cores"][0]["queued"] == 2);
    let r = get(
        server.addr,
        "/long",
        &[("x-envoy-expected-rq-timeout-ms", "100")],
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.text().contains("deadline"), "{r:?}");
    assert!((5..=60).contains(&retry_after(&r)), "{r:?}");
    drop(held);
}
