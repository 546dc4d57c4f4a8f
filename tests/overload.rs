//! Overload, time and cancellation: 503 + Retry-After, 504, hang-ups.

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use crate::util::*;

/// A job long enough to still be running after several seconds.
const LONG: &str = "n=20000";

#[test]
fn a_flood_past_the_queue_gets_503_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.queue_depth = 1;
        c.job_timeout = Duration::from_secs(2);
    });
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let addr = server.addr;
            std::thread::spawn(move || get(addr, &format!("/slow_threaded?id={i}&{LONG}"), &[]))
        })
        .collect();
    let replies: Vec<Reply> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let rejected: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        rejected.len() >= 8,
        "one runs, one waits, the rest are rejected: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &rejected {
        // Whole seconds until a slot frees, from measured run times: 1..=60.
        let after: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=60).contains(&after), "{r:?}");
    }
    for r in &replies {
        assert!([503, 504].contains(&r.status), "{r:?}");
    }
    let stats = wait_for_stats(&server, 10, |s| {
        identity_holds(s) && s["compute_cores"][0]["running"] == false
    });
    let [accepted, _, _, rejected_n, timed_out, _] = jobs(&stats);
    assert_eq!(rejected_n as usize, rejected.len());
    assert_eq!(accepted as usize, 10 - rejected.len());
    assert_eq!(timed_out, accepted, "the long jobs all ran past 2 s");
    assert!(identity_holds(&stats), "{stats}");
}

#[test]
fn a_job_past_the_timeout_is_504_and_the_core_moves_on() {
    let server = TestServer::start_with(|c| c.job_timeout = Duration::from_secs(1));
    let started = Instant::now();
    let r = server.get(&format!("/slow_threaded?id=t&{LONG}"));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "504 after about 1 s, took {took:?}"
    );
    let started = Instant::now();
    let r = server.get("/slow_threaded?id=next&n=100");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the cancelled job freed its core"
    );
    let stats = wait_for_stats(&server, 5, identity_holds);
    assert_eq!(stats["jobs"]["timed_out"], 1);
    assert_eq!(stats["jobs"]["completed"], 1);
}

#[test]
fn hanging_up_cancels_running_and_queued_jobs() {
    let server = TestServer::start();
    // One running job and one queued behind it, both abandoned.
    let mut running = connect(server.addr, QUICK);
    running
        .write_all(
            format!("GET /slow_threaded?id=run&{LONG} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap();
    wait_for_stats(&server, 5, |s| s["compute_cores"][0]["running"] == true);
    let mut queued = connect(server.addr, QUICK);
    queued
        .write_all(
            format!("GET /slow_threaded?id=wait&{LONG} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap();
    wait_for_stats(&server, 5, |s| s["compute_cores"][0]["queued"] == 1);
    drop(queued);
    drop(running);
    let stats = wait_for_stats(&server, 10, |s| {
        s["jobs"]["cancelled"] == 2 && s["compute_cores"][0]["running"] == false
    });
    assert_eq!(stats["jobs"]["cancelled"], 2, "{stats}");
    assert_eq!(stats["jobs"]["completed"], 0);
    assert!(identity_holds(&stats));
    // The core is free again.
    assert_eq!(server.get("/slow_threaded?id=again&n=50").status, 200);
    let stats = wait_for_stats(&server, 5, |s| s["compute_cores"][0]["queued"] == 0);
    assert_eq!(stats["compute_cores"][0]["queued"], 0);
}

// See: #5 (nginx retries) — with --queue-depth 1 an idle core used to take
// only one of two jobs that arrived together.
#[test]
fn queue_depth_counts_waiting_jobs_not_the_running_one() {
    let server = TestServer::start_with(|c| {
        c.queue_depth = 1;
        c.job_timeout = Duration::from_secs(1);
    });
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let addr = server.addr;
            std::thread::spawn(move || {
                get(addr, &format!("/slow_threaded?id={i}&{LONG}"), &[]).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![503, 504, 504],
        "one runs, one waits, one is rejected"
    );
}

// See: #3 (hang-ups cancel jobs) — a hang-up used to go unseen while a job
// waited behind a read buffer full of pipelined bytes (no read could reach
// the FIN): the job ran to the end.
#[test]
fn hanging_up_with_a_full_pipeline_buffer_still_cancels_the_job() {
    let server = TestServer::start();
    let mut client = connect(server.addr, QUICK);
    let mut bytes =
        format!("GET /slow_threaded?id=full&{LONG} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes();
    // Well past the 64 KiB read buffer.
    while bytes.len() < 160 * 1024 {
        bytes.extend_from_slice(b"GET /fast?id=p HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    client.write_all(&bytes).unwrap();
    wait_for_stats(&server, 5, |s| s["compute_cores"][0]["running"] == true);
    drop(client);
    let stats = wait_for_stats(&server, 10, |s| {
        s["jobs"]["cancelled"] == 1 && s["compute_cores"][0]["running"] == false
    });
    assert_eq!(stats["jobs"]["cancelled"], 1, "{stats}");
    assert_eq!(stats["jobs"]["completed"], 0, "{stats}");
    assert!(identity_holds(&stats));
}

fn policy_server(queue_depth: usize) -> TestServer {
    let router = heavylift::Router::new()
        .get("/short", nap(5.0).job_timeout(Duration::from_millis(300)))
        .get("/hog", nap(1.5).queue_share(0.5))
        .get("/other", nap(0.05));
    let mut config =
        heavylift::ServeConfig::new("127.0.0.1:0".parse().unwrap(), one_io_one_compute());
    config.queue_depth = queue_depth;
    config.job_timeout = Duration::from_secs(30);
    TestServer::start_router(config, router)
}

/// Per-route policy (library API): a route's own job timeout replaces the
/// server's, and the caller's deadline still shortens it.
#[test]
fn a_route_sets_its_own_job_timeout() {
    let server = policy_server(8);
    let started = Instant::now();
    let r = server.get("/short");
    assert_eq!(r.status, 504, "{r:?}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "504 after {took:?}, not at 0.3 s"
    );
    assert!(took >= Duration::from_millis(250), "{took:?}");
    let started = Instant::now();
    let r = get(
        server.addr,
        "/short",
        &[("x-envoy-expected-rq-timeout-ms", "100")],
    );
    assert_eq!(r.status, 504, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The other routes keep the server's 30 s.
    assert_eq!(server.get("/other").text(), "rested");
}

/// Per-route policy: a route with half of the queue cannot take the rest,
/// so other routes are still admitted while it is refused.
#[test]
fn a_route_cannot_take_more_than_its_queue_share() {
    let server = policy_server(4);
    // One hog runs, two wait: its share of a queue of 4.
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let addr = server.addr;
            let t = std::thread::spawn(move || get(addr, "/hog", &[]));
            std::thread::sleep(Duration::from_millis(100));
            t
        })
        .collect();
    let stats = wait_for_stats(&server, 10, |s| s["compute_cores"][0]["queued"] == 2);
    assert_eq!(stats["compute_cores"][0]["queued"], 2, "{stats}");
    let started = Instant::now();
    let r = server.get("/hog");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.text().contains("share"), "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Another route still finds room (and waits behind the hogs).
    let other = {
        let addr = server.addr;
        std::thread::spawn(move || get(addr, "/other", &[]))
    };
    for h in hogs {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(other.join().unwrap().text(), "rested");
    let m = server.get("/metrics").text();
    assert!(
        m.contains("heavylift_admission_refusals_total{reason=\"route_share\"} 1"),
        "{m}"
    );
    let stats = server.stats();
    assert!(identity_holds(&stats), "{stats}");
    assert_eq!(stats["jobs"]["rejected"], 1, "{stats}");
}

/// A job that stops waiting in the queue, because its client hung up or
/// its deadline passed, gives back its place at once: `queued` drops, and
/// the next job is admitted, though the running job (a `/spin`, which
/// ignores its cancel) still holds the core. Before, the dead job kept its
/// place until the core got to it, and `--queue-depth` 1 answered 503.
#[test]
fn a_job_that_stops_waiting_gives_back_its_queue_place_at_once() {
    let server = TestServer::start_with(|c| {
        c.queue_depth = 1;
        c.job_timeout = Duration::from_secs(20);
    });
    let stats = || server.stats();
    let addr = server.addr;
    let spin = std::thread::spawn(move || get(addr, "/spin?id=run&secs=4", &[]).status);
    wait_for_stats(&server, 5, |s| s["compute_cores"][0]["running"] == true);

    // Hung up while queued.
    let mut gone = connect(server.addr, QUICK);
    gone.write_all(b"GET /slow_threaded?id=gone&n=10 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    wait_for_stats(&server, 5, |s| s["compute_cores"][0]["queued"] == 1);
    drop(gone);
    let s = wait_for_stats(&server, 5, |s| s["jobs"]["cancelled"] == 1);
    assert_eq!(
        (&s["jobs"]["cancelled"], &s["compute_cores"][0]["queued"]),
        (&1.into(), &0.into()),
        "{s}"
    );

    // Its deadline passed while queued: 504, and its place is free.
    let late = get(
        server.addr,
        "/slow_threaded?id=late&n=10",
        &[("x-envoy-expected-rq-timeout-ms", "300")],
    );
    assert_eq!(late.status, 504, "{}", late.text());
    assert_eq!(stats()["compute_cores"][0]["queued"], 0);

    // So the next job is queued, not refused, and runs once the spin ends.
    let next = get(server.addr, "/slow_threaded?id=next&n=10", &[]);
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(spin.join().unwrap(), 200);
    let s = wait_for_stats(&server, 5, |s| s["compute_cores"][0]["running"] == false);
    assert!(identity_holds(&s), "{s}");
    assert_eq!(jobs(&s)[3], 0, "nothing rejected: {s}");
}

/// Jobs cancelled while they wait are skipped by their compute core only
/// when it gets to them, so admission bounds how many may be on their way
/// (4 x (`--queue-depth` + 1), at least 64): hang-ups behind a job that
/// ignores its cancel cannot pile up without bound, and a few of them never
/// lock the queue (an audit found 3 enough at the first bound). Past it,
/// 503; once the core has skipped them, jobs are admitted again.
#[test]
fn hang_ups_behind_a_stuck_job_are_bounded() {
    let server = TestServer::start_with(|c| {
        c.queue_depth = 1;
        c.job_timeout = Duration::from_secs(30);
    });
    let addr = server.addr;
    let spin = std::thread::spawn(move || get(addr, "/spin?id=run&secs=20", &[]).status);
    wait_for_stats(&server, 5, |s| s["compute_cores"][0]["running"] == true);
    let mut refused_at = None;
    for i in 0..70u64 {
        let mut s = connect(server.addr, QUICK);
        s.write_all(
            format!("GET /slow_threaded?id=h{i}&n=10 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let st = wait_for_stats(&server, 5, |s| {
            s["compute_cores"][0]["queued"] == 1 || s["jobs"]["rejected"] == 1
        });
        if st["jobs"]["rejected"] == 1 {
            let mut r = BufReader::new(s);
            assert_eq!(read_reply(&mut r, false).unwrap().status, 503);
            refused_at = Some(i);
            break;
        }
        drop(s);
        wait_for_stats(&server, 5, |s| s["jobs"]["cancelled"] == i + 1);
    }
    // 64 may wait skipped; the 65th is admitted at that bound and
    // cancelled, so the 66th is refused.
    assert_eq!(refused_at, Some(65));
    assert_eq!(spin.join().unwrap(), 200);
    // The core skipped them; the next job runs.
    assert_eq!(server.get("/slow_threaded?id=after&n=10").status, 200);
}
