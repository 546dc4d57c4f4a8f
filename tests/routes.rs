//! Routes, bodies and JSON of the contract, and the seed's scenario.

use std::io::{BufReader, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn fast_echoes_the_decoded_id() {
    let server = TestServer::start();
    let r = server.get("/fast?id=7");
    assert_eq!((r.status, r.text().as_str()), (200, "fast result 7"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(server.get("/fast?id=a%20b%2Fc").text(), "fast result a b/c");
    assert_eq!(server.get("/fast?x=1&id=q&id=z").text(), "fast result q");
    // Every parameter is decoded as a form parser (Tornado's get_argument)
    // does, names included.
    let r = server.get("/slow_threaded?%69d=a&n=%31%30");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().starts_with("slow result a <--- "), "{r:?}");
    let r = server.get("/spin?id=s&secs=%30.01");
    assert!(r.text().starts_with("spin result s <--- "), "{r:?}");
}

#[test]
fn missing_or_bad_parameters_are_400() {
    let server = TestServer::start();
    for target in [
        "/fast",
        "/fast?id=",
        "/fast?id",
        "/slow_threaded?n=5",
        "/slow_threaded?id=1&n=0",
        "/slow_threaded?id=1&n=20001",
        "/slow_threaded?id=1&n=abc",
        "/slow_threaded?id=1&n=-1",
        "/slow_threaded?id=1&n=%2B5",
        "/slow_threaded?id=1&n=%3",
        "/slow_threaded?id=1&n=",
        "/slow?id=1&n=5.0",
        "/fail",
    ] {
        let r = server.get(target);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(
            !r.body.is_empty() && !r.text().contains('\n'),
            "{target}: one-line reason, got {:?}",
            r.text()
        );
    }
    let stats = server.stats();
    assert_eq!(jobs(&stats)[0], 0, "no job is accepted for a bad request");
}

#[test]
fn slow_threaded_runs_on_a_compute_core() {
    let server = TestServer::start();
    let r = server.get("/slow_threaded?id=s1&n=50");
    assert_eq!(r.status, 200);
    let text = r.text();
    let secs = text
        .strip_prefix("slow result s1 <--- ")
        .and_then(|t| t.strip_suffix(" s"))
        .expect(&text);
    assert_eq!(
        secs.len(),
        secs.find('.').unwrap() + 4,
        "three decimals: {text}"
    );
    assert!(secs.parse::<f64>().is_ok());

    let layout = one_io_one_compute();
    let r = get(
        server.addr,
        "/slow_threaded?id=j&n=10",
        &[("Accept", "application/json")],
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "j");
    assert_eq!(v["n"], 10);
    assert_eq!(v["digits"], 6, "9! = 362880");
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["io_core"], layout.io[0]);
    assert_eq!(v["compute_core"], layout.compute[0]);
}

#[test]
fn slow_runs_inline_on_the_io_core() {
    let server = TestServer::start();
    let r = get(
        server.addr,
        "/slow?id=i&n=25",
        &[("Accept", "application/json")],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["digits"], 24, "24! has 24 digits");
    assert_eq!(v["io_core"], v["compute_core"]);
    assert!(server
        .get("/slow?id=t&n=5")
        .text()
        .starts_with("slow result t <--- "));
}

#[test]
fn a_panicking_job_is_500_and_the_core_survives() {
    let server = TestServer::start();
    for i in 0..3 {
        let r = server.get(&format!("/fail?id={i}"));
        assert_eq!(r.status, 500);
        let text = r.text();
        assert!(text.starts_with("Caught an exception: "), "{text}");
        assert!(
            text.contains(&format!("id {i}")),
            "panic message kept: {text}"
        );
    }
    assert_eq!(server.get("/slow_threaded?id=after&n=20").status, 200);
    let stats = wait_for_stats(&server, 5, |s| s["compute_cores"][0]["failed"] == 3);
    assert_eq!(stats["jobs"]["failed"], 3);
    assert_eq!(stats["jobs"]["completed"], 1);
}

#[test]
fn methods_and_unknown_paths() {
    let server = TestServer::start();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "get"] {
        let mut s = connect(server.addr, QUICK);
        write!(
            s,
            "{method} /fast?id=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let r = read_reply(&mut BufReader::new(s), false).unwrap();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
    for method in ["GET", "POST", "HEAD"] {
        let mut s = connect(server.addr, QUICK);
        write!(s, "{method} /nowhere HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_reply(&mut BufReader::new(s), method == "HEAD").unwrap();
        assert_eq!(r.status, 404, "{method}");
    }
    assert_eq!(server.get("/fast/").status, 404);
    assert_eq!(server.get("/healthz").text(), "ok");
}

/// Sends `slow` requests to `slow_path`, then `fast` /fast ones, all at once on
/// their own connections; returns (kind, finish time) in completion order.
fn seed_scenario(
    server: &TestServer,
    slow_path: &str,
    n: u32,
    slow: usize,
    fast: usize,
) -> Vec<(&'static str, Instant)> {
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for i in 0..slow + fast {
        let (kind, target) = if i < slow {
            ("slow", format!("/{slow_path}?id={i}&n={n}"))
        } else {
            ("fast", format!("/fast?id={i}"))
        };
        let addr = server.addr;
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            let r = get(addr, &target, &[]);
            assert_eq!(r.status, 200, "{target}: {r:?}");
            tx.send((kind, Instant::now())).unwrap();
        }));
        if i < slow {
            // The slow ones go first, as in the seed.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    drop(tx);
    let mut done: Vec<_> = rx.iter().collect();
    done.sort_by_key(|(_, t)| *t);
    done
}

#[test]
fn seed_scenario_offloaded_every_fast_before_the_first_slow() {
    let server = TestServer::start();
    let done = seed_scenario(&server, "slow_threaded", 10000, 3, 20);
    let first_slow = done.iter().position(|(k, _)| *k == "slow").unwrap();
    assert_eq!(
        first_slow,
        20,
        "all 20 fast first: {:?}",
        done.iter().map(|d| d.0).collect::<Vec<_>>()
    );
}

#[test]
fn seed_scenario_inline_delays_the_fast_ones() {
    let server = TestServer::start();
    let done = seed_scenario(&server, "slow", 6000, 3, 20);
    let first_slow = done.iter().position(|(k, _)| *k == "slow").unwrap();
    assert!(
        first_slow < 20,
        "inline jobs block the I/O core, so some fast ones wait: {:?}",
        done.iter().map(|d| d.0).collect::<Vec<_>>()
    );
}
