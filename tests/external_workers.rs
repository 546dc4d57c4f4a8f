//! External workers (v2): the real binary with `--worker-cmd` running the
//! repository's Python workers (`examples/python/seed_worker.py`, and
//! `tests/workers/faulty_worker.py` for every fault), over real sockets.
//! Needs only python3.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn seed_cmd() -> String {
    format!("python3 {}", repo("examples/python/seed_worker.py"))
}

fn faulty_cmd() -> String {
    format!("python3 {}", repo("tests/workers/faulty_worker.py"))
}

/// `serve --worker-cmd CMD` plus `extra`, once the worker is up.
fn serve(cmd: &str, extra: &[&str]) -> ProcessServer {
    let mut args = vec!["--worker-cmd", cmd];
    args.extend_from_slice(extra);
    ProcessServer::serve(&args)
}

/// `serve` that must fail at start-up: its exit code and stderr.
fn serve_fails(args: &[&str], limit: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run heavylift");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.and_then(|s| s.code()), err, started.elapsed())
}

fn pid_of(server: &ProcessServer) -> u32 {
    let r = server.get("/pid");
    assert_eq!(r.status, 200, "{r:?}\n{}", server.log());
    r.text().parse().expect("a pid")
}

/// The sum of the `/metrics` samples of `family` whose labels contain `label`.
fn total(metrics: &str, family: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(family) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn restarts(server: &ProcessServer) -> u64 {
    server.stats()["compute_cores"][0]["worker_restarts"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_seed_worker_serves_slow_py_with_the_slow_threaded_body() {
    let server = serve(&seed_cmd(), &[]);
    let r = server.get("/slow_py?id=a&n=50");
    assert_eq!(r.status, 200, "{r:?}\n{}", server.log());
    let text = r.text();
    assert!(text.starts_with("slow result a <--- 0.0"), "{text}");
    assert!(text.ends_with(" s"), "{text}");

    let r = get(
        server.addr,
        "/slow_py?id=j%20k&n=50",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v["id"], "j k");
    assert_eq!(v["n"], 50);
    assert_eq!(v["digits"], 63, "49! has 63 digits: {v}");
    assert_eq!(v["io_core"], server.stats()["io_cores"][0]["core"]);
    assert_eq!(
        v["compute_core"],
        server.stats()["compute_cores"][0]["core"]
    );
    assert!(v["queued_seconds"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(v["cpu_seconds"].as_f64().unwrap() >= 0.0, "{v}");

    for bad in ["/slow_py?n=5", "/slow_py?id=a&n=0", "/slow_py?id=a&n=x"] {
        let r = server.get(bad);
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    // Built-ins stay; the seed's Rust jobs are not served.
    assert_eq!(server.get("/fast?id=1").text(), "fast result 1");
    assert_eq!(server.get("/slow_threaded?id=1").status, 404);
    assert_eq!(server.get("/healthz").status, 200);
    let stats = server.stats();
    assert!(identity_holds(&stats), "{stats}");
    assert_eq!(stats["jobs"]["completed"], 5, "{stats}");
}

#[test]
fn a_two_mib_post_body_reaches_the_python_job_whole() {
    let server = serve(&seed_cmd(), &[]);
    let body: Vec<u8> = (0..2u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let expected = {
        let mut py = Command::new("python3")
            .args([
                "-c",
                "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        py.stdin.take().unwrap().write_all(&body).unwrap();
        let out = py.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let mut s = connect(server.addr, SLOW);
    let head = format!(
        "POST /sha256_py HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let r = read_reply(&mut std::io::BufReader::new(s), false).expect("a reply");
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["bytes"], body.len());
    assert_eq!(v["sha256"], expected.as_str());
}

#[test]
fn the_seed_scenario_answers_every_fast_request_before_the_first_slow_one() {
    let server = serve(&seed_cmd(), &[]);
    let out = Command::new(bin())
        .args([
            "load",
            "--target",
            &server.addr.to_string(),
            "--slow-path",
            "slow_py",
        ])
        .output()
        .expect("run heavylift load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", server.log());
    assert!(
        text.contains("every fast request finished before the first slow one: yes"),
        "{text}"
    );
    assert_eq!(text.matches("slow result").count(), 3, "{text}");
}

#[test]
fn a_python_exception_answers_500_and_keeps_the_worker() {
    let server = serve(&faulty_cmd(), &[]);
    let pid = pid_of(&server);
    // A simple command is exec'd by its shell: /stats names Python itself.
    assert_eq!(server.worker_pid(), pid);
    let r = server.get("/raise?msg=boom");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.text(), "Caught an exception: ValueError: boom");
    assert_eq!(pid_of(&server), pid, "the worker was kept");
    let stats = server.stats();
    assert_eq!(stats["jobs"]["failed"], 1, "{stats}");
    assert_eq!(restarts(&server), 0);
    assert!(identity_holds(&stats), "{stats}");
}

#[test]
fn abort_and_exit_in_a_job_cost_only_the_worker() {
    let server = serve(&faulty_cmd(), &[]);
    let first = pid_of(&server);
    let r = server.get("/abort");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.text(), "Caught an exception: worker died: SIGABRT");
    let second = pid_of(&server);
    assert_ne!(second, first);
    let r = server.get("/exit?code=3");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.text(), "Caught an exception: worker died: exit status 3");
    assert_ne!(pid_of(&server), second);
    assert_eq!(restarts(&server), 2);
    assert!(gone_within(first, Duration::from_secs(5)));
    let m = server.metrics();
    assert_eq!(
        total(&m, "heavylift_worker_deaths_total{", "cause=\"SIGABRT\""),
        1,
        "{m}"
    );
    assert_eq!(
        total(&m, "heavylift_worker_deaths_total{", "cause=\"exit\""),
        1,
        "{m}"
    );
    let stats = server.stats();
    assert!(identity_holds(&stats), "{stats}");
    assert_eq!(stats["jobs"]["failed"], 2, "{stats}");
}

#[test]
fn a_python_loop_past_its_timeout_gets_504_and_its_worker_is_killed() {
    // A long server timeout (Python starts slowly on a loaded machine); the
    // caller's deadline makes the spin's 1 s.
    let server = serve(&faulty_cmd(), &["--kill-grace", "0.3"]);
    let first = pid_of(&server);
    let started = Instant::now();
    let r = get(
        server.addr,
        "/spin",
        &[("x-envoy-expected-rq-timeout-ms", "1000")],
    );
    let waited = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(waited < Duration::from_secs(3), "504 after {waited:?}");
    // The core takes its next job within --kill-grace + 1 s (+ a Python start).
    let second = pid_of(&server);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(second, first);
    assert!(gone_within(first, Duration::from_secs(5)));
    let m = server.metrics();
    assert_eq!(
        total(&m, "heavylift_worker_kills_total{", "reason=\"timeout\""),
        1,
        "{m}"
    );
    let stats = server.stats();
    assert_eq!(stats["jobs"]["timed_out"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
}

#[test]
fn a_polite_python_job_stops_at_its_cancel_without_a_kill() {
    // The server's job timeout stays long (a Python start on a loaded
    // machine can take a while); the caller's deadline makes this one short.
    let server = serve(&faulty_cmd(), &[]);
    let pid = pid_of(&server);
    let r = get(
        server.addr,
        "/polite",
        &[("x-envoy-expected-rq-timeout-ms", "500")],
    );
    assert_eq!(r.status, 504, "{r:?}");
    // A hang-up cancels it too.
    let mut s = connect(server.addr, QUICK);
    s.write_all(b"GET /polite HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let stats = server.wait_stats(10, |s| {
        s["jobs"]["cancelled"] == 1 && s["compute_cores"][0]["running"] == false
    });
    assert_eq!(stats["jobs"]["cancelled"], 1, "{stats}");
    assert_eq!(pid_of(&server), pid, "no kill: the job stopped itself");
    assert_eq!(restarts(&server), 0);
    let stats = server.stats();
    assert_eq!(stats["jobs"]["timed_out"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
}

#[test]
fn protocol_faults_are_contained_and_the_worker_replaced() {
    let server = serve(&faulty_cmd(), &[]);
    for (route, expect) in [
        (
            "/garbage",
            "Caught an exception: worker died: protocol error: ",
        ),
        (
            "/wrong_id",
            "Caught an exception: worker died: protocol error: ",
        ),
    ] {
        let before = pid_of(&server);
        let r = server.get(route);
        assert_eq!(r.status, 500, "{route}: {r:?}");
        assert!(r.text().starts_with(expect), "{route}: {r:?}");
        assert!(gone_within(before, Duration::from_secs(5)), "{route}");
        assert_ne!(pid_of(&server), before, "{route}");
    }
    // A second answer, and an exit between jobs: the job before was
    // answered; the worker is replaced and the next job is not harmed.
    for (route, body) in [("/twice", "first"), ("/exit_after", "bye")] {
        let before = pid_of(&server);
        let r = server.get(route);
        assert_eq!(r.status, 200, "{route}: {r:?}");
        assert_eq!(r.text(), body);
        assert!(gone_within(before, Duration::from_secs(5)), "{route}");
        assert_ne!(pid_of(&server), before, "{route}\n{}", server.log());
    }
    assert_eq!(restarts(&server), 4, "{}", server.log());
    let stats = server.stats();
    assert!(identity_holds(&stats), "{stats}");
    assert_eq!(stats["jobs"]["failed"], 2, "{stats}");
    // Each fault is logged once with its cause.
    let log = server.log();
    assert_eq!(log.matches("sent a bad frame").count(), 1, "{log}");
    assert_eq!(log.matches("unexpected frame Done").count(), 2, "{log}");
}

#[test]
fn what_a_job_prints_and_answers_stays_its_own() {
    let server = serve(&faulty_cmd(), &[]);
    let pid = pid_of(&server);
    let r = server.get("/print");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "printed");
    let r = server.get("/headers");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("x-from-worker"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("text/x-test"));
    assert_eq!(r.text(), "ok");
    let r = server.get("/bad_header");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(
        r.text()
            .starts_with("Caught an exception: worker sent a bad response: "),
        "{r:?}"
    );
    // More stderr during a job than a socket buffer holds.
    let r = server.get("/flood?kb=2048");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "flooded");
    assert_eq!(
        pid_of(&server),
        pid,
        "printing and a bad answer cost no restart"
    );
    // The worker's stderr (and what it printed) is in our log, with its core.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("worker ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log().contains("compute core "), "{}", server.log());
    let r = server.get("/env");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let core = server.stats()["compute_cores"][0]["core"].clone();
    assert_eq!(v["core"], core.to_string(), "{v}");
    assert_eq!(v["protocol"], "1", "{v}");
    assert_eq!(v["affinity"], serde_json::json!([core]), "pinned: {v}");
}

#[test]
fn a_python_worker_over_its_memory_cap_dies_out_of_memory() {
    let server = serve(&faulty_cmd(), &["--job-memory", "300M"]);
    let before = pid_of(&server);
    let r = server.get("/memory?mb=600");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.text(), "Caught an exception: worker died: out of memory");
    assert_ne!(pid_of(&server), before);
    assert_eq!(server.get("/memory?mb=20").text(), "allocated");
}

#[test]
fn no_python_worker_outlives_its_server() {
    for sig in ["TERM", "KILL"] {
        let mut server = serve(&faulty_cmd(), &[]);
        let pid = pid_of(&server);
        server.signal(sig);
        server
            .wait_exit(Duration::from_secs(10))
            .expect("server exits");
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "SIG{sig}: worker {pid} outlived the server"
        );
    }
}

#[test]
fn a_worker_that_cannot_start_is_a_clear_startup_error() {
    let limit = Duration::from_secs(30);
    let cases: [(&str, &str); 4] = [
        ("echo boom >&2; exit 4", "exit status 4"),
        ("echo this is not a frame", "not a Hello"),
        (
            "python3 -c 'import time; time.sleep(60)'",
            "no Hello within 10 s",
        ),
        ("/no/such/worker", "not found"),
    ];
    for (cmd, why) in cases {
        let (code, err, took) = serve_fails(&["--worker-cmd", cmd], limit);
        assert_eq!(code, Some(2), "{cmd}: {err}");
        assert!(err.contains(why), "{cmd}: {err}");
        assert!(
            err.contains("heavylift: error: worker command"),
            "{cmd}: {err}"
        );
        assert!(took < Duration::from_secs(20), "{cmd}: {took:?}");
    }
    let (code, err, _) = serve_fails(&["--worker-cmd", "x", "--isolation", "thread"], limit);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--isolation thread"), "{err}");
    // A worker that announces a route the server serves itself.
    let clash = r"printf '\022\000\000\000\003\001\000\000\000\001\000\000\000\005\000\000\000/fast'; sleep 5";
    let (code, err, _) = serve_fails(&["--worker-cmd", clash], limit);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("announces /fast, which the server serves"),
        "{err}"
    );
}

/// A worker that exits right after its Hello is a failed start: restarted
/// with a growing back-off, not in a loop.
#[test]
fn a_worker_that_dies_after_its_hello_backs_off() {
    // Hello for "/a" (len 15), then exit.
    let hello_then_exit =
        r"printf '\017\000\000\000\003\001\000\000\000\001\000\000\000\002\000\000\000/a'";
    let server = serve(hello_then_exit, &[]);
    std::thread::sleep(Duration::from_secs(3));
    let stats = server.stats();
    let restarts = stats["compute_cores"][0]["worker_restarts"]
        .as_u64()
        .unwrap();
    // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s: about 5 in 3 s (the probe's run does
    // not count); a loop would be dozens.
    assert!(
        (1..=8).contains(&restarts),
        "{restarts} restarts in 3 s\n{}",
        server.log()
    );
    // docs/worker-protocol.md: such a death counts as a failed start too.
    let failures = stats["compute_cores"][0]["worker_start_failures"]
        .as_u64()
        .unwrap();
    assert!(failures >= 1, "{stats}");
    assert_eq!(server.get("/fast?id=1").text(), "fast result 1");
}

/// A worker that fails before its Hello (once the start-up check has
/// passed) is retried with a growing back-off and counted as a failed
/// start; meanwhile its route's jobs time out (504) and /fast is served.
#[test]
fn a_worker_that_fails_before_its_hello_backs_off() {
    let mark = std::env::temp_dir().join(format!("hl-started-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    // The check's run says Hello for "/a"; every later run exits first.
    let hello = r"printf '\017\000\000\000\003\001\000\000\000\001\000\000\000\002\000\000\000/a'";
    let cmd = format!(
        "if [ -e {m} ]; then echo not today >&2; exit 1; fi; touch {m}; {hello}; sleep 30",
        m = mark.display()
    );
    let server = serve(&cmd, &["--job-timeout", "1"]);
    std::thread::sleep(Duration::from_secs(3));
    let stats = server.stats();
    let failures = stats["compute_cores"][0]["worker_start_failures"]
        .as_u64()
        .unwrap();
    // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s: a handful in 3 s, not a loop.
    assert!((1..=8).contains(&failures), "{stats}\n{}", server.log());
    assert!(server.log().contains("failed to start"), "{}", server.log());
    assert_eq!(server.get("/a").status, 504);
    assert_eq!(server.get("/fast?id=1").text(), "fast result 1");
    let _ = std::fs::remove_file(&mark);
}

/// SIGTERM to the server and its worker at once (`pkill`, a systemd stop of
/// the whole group), with a worker whose socket closes before its process
/// ends: the stop is prompt, exit 0. A newcomer found such stops taking 35 s
/// and exiting 2 (3 in 14): the death, seen while the server stopped, asked
/// for a replacement that a stopping server does not start, and the
/// supervisor's loop spun on that without yielding to the tasks that end
/// it. That window is narrow (about 1 stop in 15 on this VM under load), so
/// this test runs the path rather than reliably reproducing the race.
#[test]
fn a_worker_that_dies_as_the_server_stops_does_not_hold_the_stop() {
    for round in 0..2 {
        let mut server = serve(&format!("FAULTY_SLOW_EXIT=1 {}", faulty_cmd()), &[]);
        let worker = pid_of(&server);
        // Older than the 1 s in which a death counts as a failed start.
        std::thread::sleep(Duration::from_millis(1200));
        let sent = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &server.child_id().to_string(), &worker.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let status = server.wait_exit(Duration::from_secs(20));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "round {round}, after {:?}\n{}",
            sent.elapsed(),
            server.log()
        );
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "round {round}: {:?}",
            sent.elapsed()
        );
    }
}
