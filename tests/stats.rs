//! `/stats` and `/metrics`: the job identity and the exposition format.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

#[test]
fn the_job_identity_holds_after_a_mixed_run() {
    let server = TestServer::start_with(|c| {
        c.queue_depth = 2;
        c.job_timeout = Duration::from_millis(700);
    });
    let targets = [
        "/slow_threaded?id=a&n=200",
        "/fail?id=b",
        "/slow_threaded?id=c&n=20000",
        "/fast?id=d",
        "/slow_threaded?id=e&n=300",
    ];
    let threads: Vec<_> = (0..15)
        .map(|i| {
            let addr = server.addr;
            let target = targets[i % targets.len()];
            std::thread::spawn(move || get(addr, target, &[]).status)
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for s in &statuses {
        assert!([200, 500, 503, 504].contains(s), "{statuses:?}");
    }
    let stats = wait_for_stats(&server, 10, |s| {
        identity_holds(s) && s["compute_cores"][0]["queued"] == 0
    });
    assert!(identity_holds(&stats), "{stats}");
    let [accepted, completed, failed, rejected, timed_out, _] = jobs(&stats);
    let count = |code| statuses.iter().filter(|s| **s == code).count() as u64;
    assert_eq!(failed, count(500));
    assert_eq!(rejected, count(503));
    assert_eq!(timed_out, count(504));
    assert_eq!(
        accepted,
        12 - rejected,
        "every job request but the 503s entered a queue"
    );
    assert_eq!(
        completed,
        count(200) - 3,
        "the three /fast answers are not jobs"
    );
    assert!(stats["io_cores"][0]["requests"].as_u64().unwrap() >= 15);
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let server = TestServer::start();
    server.get("/fast?id=1");
    server.get("/fail?id=2");
    server.get("/nowhere");
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = reply.text();
    for family in [
        "heavylift_requests_total",
        "heavylift_jobs_total",
        "heavylift_job_duration_seconds",
        "heavylift_queue_depth",
        "heavylift_open_connections",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    assert!(text.contains("route=\"fast\",status=\"200\"} 1"));
    assert!(text.contains("route=\"other\",status=\"404\"} 1"));
    assert!(text.contains("heavylift_jobs_total{outcome=\"failed\"} 1"));

    // A real parser: prometheus_client's (installed by .ci/run).
    let script =
        "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
                  fams = {f.name: f for f in p(sys.stdin.read())}\n\
                  print(' '.join(sorted(fams)))\n\
                  assert fams['heavylift_job_duration_seconds'].type == 'histogram'\n\
                  assert fams['heavylift_requests'].type == 'counter'\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics (pip install prometheus_client): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(names.contains("heavylift_queue_depth"), "{names}");
}
