//! Isolation (v2): the untrusted-job routes `/spin` and `/crash` in thread
//! mode (in-process servers), and process isolation through the real binary
//! (its `main` calls the worker hook): hard stop after the kill grace, crash
//! and memory containment, supervised restart, no orphan workers.

use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn spin_and_crash_refuse_bad_input() {
    let server = TestServer::start();
    for target in [
        "/spin?id=a",
        "/spin?id=a&secs=0",
        "/spin?id=a&secs=61",
        "/spin?id=a&secs=abc",
        "/spin?secs=1",
        "/crash?id=a",
        "/crash?id=a&how=kill",
    ] {
        let r = server.get(target);
        assert_eq!(r.status, 400, "{target}: {r:?}");
    }
    let [accepted, ..] = jobs(&server.stats());
    assert_eq!(accepted, 0, "refused at the head, never queued");
}

#[test]
fn crash_in_thread_mode_is_refused_and_never_runs() {
    let server = TestServer::start();
    for how in ["abort", "segv", "stack", "oom", "exit"] {
        let r = server.get(&format!("/crash?id=t&how={how}"));
        assert_eq!(r.status, 400, "{how}: {r:?}");
        assert!(r.text().contains("--isolation process"), "{r:?}");
        assert!(!r.text().contains('\n'));
    }
    // The server is still here.
    assert_eq!(server.get("/fast?id=1").text(), "fast result 1");
    assert_eq!(jobs(&server.stats())[0], 0);
}

#[test]
fn spin_answers_its_result() {
    let server = TestServer::start();
    let r = server.get("/spin?id=s1&secs=0.2");
    assert_eq!(r.status, 200, "{r:?}");
    let text = r.text();
    assert!(text.starts_with("spin result s1 <--- 0."), "{text}");
    assert!(text.ends_with(" s"), "{text}");
}

#[test]
fn spin_past_the_timeout_gets_504_on_time_and_keeps_the_core_in_thread_mode() {
    let server = TestServer::start_with(|c| c.job_timeout = Duration::from_millis(500));
    let addr = server.addr;
    let started = Instant::now();
    let t = std::thread::spawn(move || get(addr, "/spin?id=s&secs=3", &[]));
    let r = t.join().unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(waited < Duration::from_millis(2000), "504 after {waited:?}");
    // The job ignores its cancel flag: its core stays busy until it returns.
    let stats = server.stats();
    assert_eq!(stats["compute_cores"][0]["running"], true, "{stats}");
    let stats = wait_for_stats(&server, 10, |s| s["compute_cores"][0]["running"] == false);
    assert_eq!(stats["compute_cores"][0]["running"], false, "{stats}");
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert!(identity_holds(&stats), "{stats}");
    assert_eq!(stats["jobs"]["timed_out"], 1, "{stats}");
}

// ---- process isolation: the real binary, whose main calls the worker hook ----

use std::io::{BufReader, Write};
use std::process::Command;

#[test]
fn process_mode_contains_every_crash_and_replaces_the_worker() {
    let server = ProcessServer::start(&[]);
    let first = server.worker_pid();
    assert_ne!(first, server.child.id());
    // A panic is answered without a restart.
    let r = server.get("/fail?id=p");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.text().starts_with("Caught an exception: "), "{r:?}");
    assert_eq!(server.stats()["compute_cores"][0]["worker_restarts"], 0);
    assert_eq!(server.worker_pid(), first);
    let mut pids = vec![first];
    for (i, (how, cause)) in [
        ("abort", "SIGABRT"),
        ("segv", "SIGSEGV"),
        ("stack", "stack overflow"),
        ("oom", "out of memory"),
        ("exit", "exit status 3"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = server.get(&format!("/crash?id=c&how={how}"));
        assert_eq!(r.status, 500, "{how}: {r:?}\n{}", server.log());
        let want = format!("Caught an exception: worker died: {cause}");
        assert!(r.text().starts_with(&want), "{how}: {:?}", r.text());
        // The same core takes the next job on a new worker.
        let r = server.get("/slow_threaded?id=after&n=100");
        assert_eq!(r.status, 200, "after {how}: {r:?}\n{}", server.log());
        let stats = server.stats();
        assert_eq!(
            stats["compute_cores"][0]["worker_restarts"],
            i as u64 + 1,
            "{stats}"
        );
        let pid = server.worker_pid();
        assert!(!pids.contains(&pid), "{how}: worker {pid} was not replaced");
        assert!(!alive(pids[pids.len() - 1]), "the dead worker is reaped");
        pids.push(pid);
    }
    let stats = server.stats();
    assert!(identity_holds(&stats), "{stats}");
    assert_eq!(stats["jobs"]["failed"], 6, "{stats}");
    let m = server.metrics();
    for cause in [
        "SIGABRT",
        "SIGSEGV",
        "stack_overflow",
        "out_of_memory",
        "exit",
    ] {
        let line = format!(
            "heavylift_worker_deaths_total{{core=\"{}\",cause=\"{cause}\"}}",
            stats["compute_cores"][0]["core"]
        );
        assert_eq!(counter(&m, &line), 1, "{cause}");
    }
}

#[test]
fn process_mode_kills_a_spin_past_its_timeout_and_takes_the_next_job() {
    let server = ProcessServer::start(&["--job-timeout", "0.5", "--kill-grace", "0.3"]);
    let first = server.worker_pid();
    let started = Instant::now();
    let r = server.get("/spin?id=s&secs=30");
    let answered = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        answered < Duration::from_millis(2000),
        "504 after {answered:?}"
    );
    // The next job runs on a new worker within kill-grace + 1 s of the
    // timeout (wide margin for a loaded machine).
    let r = server.get("/slow_threaded?id=next&n=10");
    let next = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}\n{}", server.log());
    assert!(
        next < Duration::from_millis(500 + 300 + 1000 + 1500),
        "next job after {next:?}"
    );
    assert!(
        gone_within(first, Duration::from_secs(2)),
        "spinning worker killed"
    );
    let stats = server.stats();
    assert_eq!(stats["jobs"]["timed_out"], 1, "{stats}");
    assert_eq!(stats["compute_cores"][0]["worker_restarts"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
    let m = server.metrics();
    assert!(m.contains("reason=\"timeout\"} 1"), "{m}");
}

#[test]
fn process_mode_kills_a_spin_whose_client_hung_up() {
    let server = ProcessServer::start(&["--kill-grace", "0.3"]);
    let first = server.worker_pid();
    let mut stream = connect(server.addr, QUICK);
    stream
        .write_all(b"GET /spin?id=h&secs=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    server.wait_stats(10, |s| s["compute_cores"][0]["running"] == true);
    let hung_up = Instant::now();
    drop(stream);
    assert!(
        gone_within(first, Duration::from_secs(5)),
        "worker killed after the grace"
    );
    let killed = hung_up.elapsed();
    assert!(
        killed >= Duration::from_millis(250),
        "killed after {killed:?}, before the grace"
    );
    let stats = server.wait_stats(10, |s| s["compute_cores"][0]["worker_pid"].is_u64());
    assert_eq!(stats["jobs"]["cancelled"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
    assert!(server.metrics().contains("reason=\"hangup\"} 1"));
    assert_eq!(server.get("/slow_threaded?id=n&n=10").status, 200);
}

#[test]
fn job_memory_caps_a_worker() {
    let server = ProcessServer::start(&["--job-memory", "256M"]);
    assert_eq!(server.get("/slow_threaded?id=m&n=200").status, 200);
    let r = server.get("/crash?id=m&how=oom");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.text(), "Caught an exception: worker died: out of memory");
    assert_eq!(server.get("/slow_threaded?id=m2&n=200").status, 200);
    assert!(identity_holds(&server.stats()));
}

#[test]
fn job_memory_needs_process_isolation() {
    let out = Command::new(bin())
        .args(["serve", "--job-memory", "1G"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin())
        .args(["serve", "--isolation", "fork"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The socket inodes a process holds open (`/proc/PID/fd`).
fn socket_inodes(pid: u32) -> std::collections::HashSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the fd table")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("socket:"))
        .collect()
}

/// Every socket the server accepts is close-on-exec, so a worker started
/// while clients are connected holds none of them; one that did would keep
/// each connection open past the server's close, for as long as it lives.
/// Connections opened in a burst queue up before the accept loop runs, so
/// it takes them with its synchronous accept, the path that once left the
/// flag off.
#[test]
fn a_worker_holds_none_of_the_clients_sockets() {
    let server = ProcessServer::start(&[]);
    let mut held: Vec<_> = (0..40).map(|_| connect(server.addr, QUICK)).collect();
    for s in &mut held {
        s.write_all(b"GET /fast?id=h HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    for s in &mut held {
        let reply = read_reply(&mut BufReader::new(&mut *s), false).expect("answered");
        assert_eq!(reply.status, 200);
    }
    let before = server.worker_pid();
    assert_eq!(server.get("/crash?id=x&how=abort").status, 500);
    assert_eq!(server.get("/slow_threaded?id=after&n=10").status, 200);
    let worker = server.worker_pid();
    assert_ne!(worker, before, "the worker was replaced");
    let ours = socket_inodes(server.child.id());
    assert!(
        ours.len() >= held.len(),
        "the server holds its clients' sockets: {ours:?}"
    );
    let shared: Vec<_> = socket_inodes(worker).intersection(&ours).cloned().collect();
    assert!(
        shared.is_empty(),
        "worker {worker} holds the server's sockets {shared:?}"
    );
}

/// A descriptor the server inherited without FD_CLOEXEC (a supervisor's
/// pipe, here fd 9) does not reach its workers: they get their protocol
/// descriptors and stdio only.
#[test]
fn a_worker_inherits_no_stray_descriptor() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (_keep, stray) = std::os::unix::net::UnixStream::pair().unwrap();
    let stray_fd = stray.as_raw_fd();
    let server = ProcessServer::serve_with(&["--isolation", "process"], |command| {
        // SAFETY: dup2 is async-signal-safe; the result is a plain fd 9
        // without FD_CLOEXEC, as a careless parent would leave it.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(stray_fd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let inherited = std::fs::read_link(format!("/proc/{}/fd/9", server.child.id()))
        .expect("the server holds fd 9");
    let worker = server.worker_pid();
    let fds: Vec<i32> = std::fs::read_dir(format!("/proc/{worker}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert!(
        !fds.contains(&9),
        "worker {worker} inherited fd 9 ({inherited:?}): {fds:?}"
    );
    assert_eq!(server.get("/slow_threaded?id=w&n=10").status, 200);
}

#[test]
fn no_worker_outlives_its_server() {
    for sig in ["TERM", "KILL"] {
        let mut server = ProcessServer::start(&[]);
        assert_eq!(server.get("/slow_threaded?id=o&n=10").status, 200);
        let pid = server.worker_pid();
        assert!(alive(pid));
        server.signal(sig);
        let status = server
            .wait_exit(Duration::from_secs(10))
            .expect("server exits");
        if sig == "TERM" {
            assert_eq!(status.code(), Some(0));
        }
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "SIG{sig}: worker {pid} outlived the server"
        );
    }
}

/// A `--job-memory` cap too small for a worker to start in is a start-up
/// error (exit 2, naming the flag), not a server whose every job waits out
/// its timeout. (A worker that fails to start later backs off:
/// `external_workers::a_worker_that_dies_after_its_hello_backs_off`.)
#[test]
fn a_job_memory_too_small_to_start_a_worker_is_a_startup_error() {
    for cap in ["1", "1M"] {
        // `timeout`: a server that starts anyway fails the test, not hangs it.
        let out = Command::new("timeout")
            .args(["30", bin(), "serve", "--listen", "127.0.0.1:0"])
            .args(["--isolation", "process"])
            .args(["--job-memory", cap])
            .output()
            .expect("run heavylift");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cap}: {err}");
        assert!(err.contains("--job-memory"), "{cap}: {err}");
        assert!(!err.contains("listening"), "{cap}: {err}");
    }
}

#[test]
fn a_worker_that_dies_between_jobs_is_replaced_before_the_next_one() {
    let server = ProcessServer::start(&[]);
    assert_eq!(server.get("/slow_threaded?id=i&n=10").status, 200);
    let pid = server.worker_pid();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(gone_within(pid, Duration::from_secs(5)));
    // The next job once the supervisor has seen the death. (Its main thread
    // turns zombie before the process's other threads are gone and its
    // socket is closed: a job sent in that instant still goes to the dying
    // worker and is answered 500, as any job its worker dies under.)
    let seen = server.wait_stats(10, |s| s["compute_cores"][0]["worker_restarts"] == 1);
    assert_eq!(seen["compute_cores"][0]["worker_restarts"], 1, "{seen}");
    let r = server.get("/slow_threaded?id=j&n=10");
    assert_eq!(r.status, 200, "{r:?}\n{}", server.log());
    let stats = server.stats();
    assert_eq!(stats["compute_cores"][0]["worker_restarts"], 1, "{stats}");
    assert_ne!(server.worker_pid(), pid);
    assert_eq!(stats["jobs"]["failed"], 0, "no job was lost: {stats}");
    assert!(identity_holds(&stats), "{stats}");
    // It had finished a job, so its death (however soon after its start) is
    // no failed start: the replacement starts at once, with no back-off.
    assert!(
        !server.log().contains("died within"),
        "a worker that finished a job was backed off:\n{}",
        server.log()
    );
}

#[test]
fn process_mode_serves_every_offloaded_route_as_thread_mode_does() {
    let server = ProcessServer::start(&[]);
    // A body crosses the process boundary and comes back gzipped.
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = connect(server.addr, SLOW);
    write!(
        s,
        "POST /gzip HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let r = read_reply(&mut BufReader::new(s), false).expect("a reply");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut out)
        .expect("gzip");
    assert!(out == body, "gunzipped body differs");
    // JSON answers carry the worker's CPU as the compute core.
    let r = get(
        server.addr,
        "/slow_threaded?id=j&n=50",
        &[("Accept", "application/json")],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let stats = server.stats();
    assert_eq!(v["compute_core"], stats["compute_cores"][0]["core"], "{v}");
    // queued_seconds crosses the boundary in the Job frame; cpu_seconds is
    // the worker thread's own CPU clock.
    let cpu = v["cpu_seconds"].as_f64().expect("cpu_seconds");
    let queued = v["queued_seconds"].as_f64().expect("queued_seconds");
    assert!(
        cpu > 0.0 && cpu < 5.0 && (0.0..5.0).contains(&queued),
        "{v}"
    );
    assert_eq!(server.get("/spin?id=q&secs=0.3").status, 200);
    assert!(identity_holds(&server.stats()));
    // Per route CPU time is the worker process's CPU clock over the job.
    let m = server.metrics();
    let spin_cpu = counter_f64(&m, "heavylift_job_cpu_seconds_sum{route=\"spin\"}");
    assert!((0.03..=0.5).contains(&spin_cpu), "{m}");
    let runs = counter(
        &m,
        "heavylift_job_run_seconds_count{route=\"slow_threaded\"}",
    );
    assert!(runs >= 1, "{m}");
}

fn counter_f64(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} not in\n{metrics}"))
}

#[test]
fn sigterm_in_process_mode_lets_an_in_flight_job_finish() {
    let mut server = ProcessServer::start(&[]);
    let pid = server.worker_pid();
    let addr = server.addr;
    let t = std::thread::spawn(move || get(addr, "/slow_threaded?id=inflight&n=6000", &[]));
    server.wait_stats(10, |s| s["compute_cores"][0]["running"] == true);
    server.signal("TERM");
    let r = t.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", server.log());
    assert!(r.text().starts_with("slow result inflight"));
    let status = server.wait_exit(Duration::from_secs(30)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(gone_within(pid, Duration::from_secs(5)));
}

#[test]
fn a_cooperative_job_stops_at_its_cancel_frame_without_a_kill() {
    let server = ProcessServer::start(&["--job-timeout", "0.3", "--kill-grace", "5"]);
    let pid = server.worker_pid();
    let started = Instant::now();
    let r = server.get("/slow_threaded?id=c&n=20000");
    assert_eq!(r.status, 504, "{r:?}");
    // The job sees should_stop() at its next step, long before the 5 s grace.
    let r = server.get("/slow_threaded?id=d&n=10");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let stats = server.stats();
    assert_eq!(stats["compute_cores"][0]["worker_restarts"], 0, "{stats}");
    assert_eq!(server.worker_pid(), pid);
    assert_eq!(stats["jobs"]["timed_out"], 1, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
}

/// Admission counts a cancelled running job only until its worker is
/// killed (`--kill-grace`), not for the rest of its estimate: a request
/// right after a 504 is admitted when the kill leaves it time to run.
#[test]
fn a_request_right_after_a_504_is_not_refused_for_the_cancelled_job() {
    let server = ProcessServer::start(&["--kill-grace", "0.2"]);
    // /spin's estimate becomes 4 s.
    assert_eq!(server.get("/spin?id=a&secs=4").status, 200);
    let deadline = |ms: &'static str| [("x-envoy-expected-rq-timeout-ms", ms)];
    let timed_out = get(server.addr, "/spin?id=b&secs=30", &deadline("300"));
    assert_eq!(timed_out.status, 504, "{timed_out:?}");
    // About 3.7 s of the spin's estimate is left, but its worker is killed
    // 0.2 s after the 504: this job can start well within its 2 s.
    let next = get(server.addr, "/slow_threaded?id=c&n=10", &deadline("2000"));
    assert_eq!(next.status, 200, "{next:?}\n{}", server.log());
    let stats = server.wait_stats(10, |s| s["compute_cores"][0]["running"] == false);
    assert_eq!(stats["jobs"]["rejected"], 0, "{stats}");
    assert!(identity_holds(&stats), "{stats}");
}
