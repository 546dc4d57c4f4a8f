//! Isolation (v2): the untrusted-job routes `/spin` and `/crash` in thread
//! mode (in-process servers).

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
